//! Lambda `scheduled-audit`: on an EventBridge schedule, audits the whole account, remediates
//! per policy, and stores the report and the ledger.

mod handler;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = shared::service::Deps::from_env(false).await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        handler::handle(&deps, event)
    }))
    .await
}
