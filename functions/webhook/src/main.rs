//! Lambda `webhook` (HTTP API or Function URL): verifies a Standard Webhooks delivery on the
//! exact bytes received and re-checks only the Droplets the event touches.

mod handler;

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A configuration error is reported on every invocation, with its reason.
    let deps = shared::service::Deps::from_env(true)
        .await
        .map_err(handler::diagnostic);
    if let Err(e) = &deps {
        tracing::error!(error = %e.error_message, "configuration");
    }
    run(service_fn(|req: Request| async {
        match &deps {
            Ok(d) => handler::handle(d, req).await,
            Err(e) => Err(e.clone()),
        }
    }))
    .await
}
