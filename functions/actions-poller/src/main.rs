//! Lambda `actions-poller`: on a schedule, reads `/v2/actions` newer than its stored cursor and
//! re-checks the Droplets those actions touched. Near-real-time enforcement without webhooks.

mod handler;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A configuration error is reported on every invocation, with its reason.
    let deps = shared::service::Deps::from_env(false)
        .await
        .map_err(handler::diagnostic);
    if let Err(e) = &deps {
        tracing::error!(error = %e.error_message, "configuration");
    }
    run(service_fn(|event: LambdaEvent<Value>| async {
        match &deps {
            Ok(d) => handler::handle(d, event).await,
            Err(e) => Err(e.clone()),
        }
    }))
    .await
}
