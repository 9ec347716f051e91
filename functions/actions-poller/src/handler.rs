use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::service::{fit_response, poll_actions, Deps, ServiceError, LAMBDA_RESPONSE_LIMIT};

/// Pages of `/v2/actions` read at most per poll (200 actions a page).
const MAX_PAGES: u64 = 10;

pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let started = std::time::Instant::now();
    let (payload, ctx) = event.into_parts();
    let event_id = serde_json::from_value::<EventBridgeEvent<Value>>(payload)
        .ok()
        .and_then(|e| e.id);
    tracing::info!(request_id = %ctx.request_id, event_id = ?event_id, "poll");
    let out = poll_actions(deps, MAX_PAGES).await;
    let value = out.as_ref().ok().and_then(|o| serde_json::to_value(o).ok());
    shared::metrics::emit("actions-poller", value.as_ref(), started.elapsed());
    let out = out.map_err(diagnostic)?;
    tracing::info!(
        actions = out.actions_seen,
        droplets = out.droplets.len(),
        cursor = out.cursor,
        "poll finished"
    );
    Ok(fit_response(
        serde_json::to_value(out).map_err(diagnostic)?,
        LAMBDA_RESPONSE_LIMIT,
    ))
}

/// A [`ServiceError`] as Lambda reports it: `errorType` says retryable or permanent and the
/// kind ([`ServiceError::error_type`]), `errorMessage` the whole reason.
pub fn diagnostic(e: impl Into<ServiceError>) -> Diagnostic {
    let e = e.into();
    Diagnostic {
        error_type: e.error_type(),
        error_message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default policy, without SSH probes (simulated Droplets have no SSH servers).
    fn no_probe_policy() -> shared::Policy {
        let mut p = shared::Policy::default();
        p.ssh.probe = false;
        p
    }
    use lambda_runtime::Context;
    use shared::digitalocean::{Client, ClientConfig, Token};
    use shared::store::{DirStore, Store};

    #[tokio::test]
    async fn new_actions_are_rechecked_once() {
        let s = sim::Sim::start_local("t0k", sim::fleet::generate(&sim::FleetSpec::new(10, 2)))
            .await
            .expect("sim");
        let client = Client::new(ClientConfig::new(s.url(), Token::new("t0k"))).expect("client");
        let dir = tempfile::tempdir().expect("dir");
        let deps = Deps::new(
            client,
            Store::Dir(DirStore::new(dir.path())),
            no_probe_policy(),
        );
        let first = s.with_state(|st| *st.droplets.keys().next().expect("a droplet"));
        s.with_state(|st| st.record_action("rebuild", Some(first), "nyc3", "completed"));
        let payload = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        let out = handle(&deps, LambdaEvent::new(payload.clone(), Context::default()))
            .await
            .expect("poll");
        assert_eq!(out["droplets"], serde_json::json!([first]));
        let again = handle(&deps, LambdaEvent::new(payload, Context::default()))
            .await
            .expect("poll");
        assert_eq!(again["actions_seen"], 0, "the cursor moved past it");
        s.shutdown().await;
    }
}
