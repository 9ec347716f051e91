//! Lambda `actions-poller`: on a schedule, reads `/v2/actions` newer than its stored cursor and
//! re-checks the Droplets those actions touched. Near-real-time enforcement without webhooks.

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
