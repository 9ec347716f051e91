use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::service::{
    fit_response, incident, Deps, IncidentRequest, ServiceError, LAMBDA_RESPONSE_LIMIT,
};

pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let started = std::time::Instant::now();
    let (payload, ctx) = event.into_parts();
    let req: IncidentRequest = serde_json::from_value(payload)
        .map_err(|e| diagnostic(ServiceError::BadRequest(format!("payload: {e}"))))?;
    tracing::info!(request_id = %ctx.request_id, action = ?req.action, droplets = req.droplet_ids.len(), "incident response");
    let out = incident(deps, req).await;
    shared::metrics::emit("incident-response", out.as_ref().ok(), started.elapsed());
    Ok(fit_response(
        out.map_err(diagnostic)?,
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
    async fn malformed_payloads_are_refused_by_name() {
        let s = sim::Sim::start_local("t0k", sim::State::default())
            .await
            .expect("sim");
        let client = Client::new(ClientConfig::new(s.url(), Token::new("t0k"))).expect("client");
        let dir = tempfile::tempdir().expect("dir");
        let deps = Deps::new(
            client,
            Store::Dir(DirStore::new(dir.path())),
            no_probe_policy(),
        );
        for (payload, needle) in [
            (
                serde_json::json!({"action": "nuke"}),
                "unknown variant `nuke`",
            ),
            (
                serde_json::json!({"action": "audit", "droplets": [1]}),
                "unknown field `droplets`",
            ),
            (
                serde_json::json!({"action": "quarantine", "droplet_ids": []}),
                "droplet_ids",
            ),
            (
                serde_json::json!({"action": "quarantine", "droplet_ids": [1]}),
                "reason is required",
            ),
        ] {
            let err = handle(&deps, LambdaEvent::new(payload, Context::default()))
                .await
                .expect_err("refused");
            assert!(err.error_message.contains(needle), "{err:?}");
            assert_eq!(err.error_type, "Permanent.BadRequest");
        }
        assert!(s.requests().iter().all(|r| r.method == "GET"));
        s.shutdown().await;
    }
}
