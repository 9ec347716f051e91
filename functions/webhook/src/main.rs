//! Lambda `webhook` (HTTP API or Function URL): verifies a Standard Webhooks delivery on the
//! exact bytes received and re-checks only the Droplets the event touches.

mod handler;

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let deps = shared::service::Deps::from_env(true).await?;
    run(service_fn(|req: Request| handler::handle(&deps, req))).await
}
