use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::service::{fit_response, scheduled_run, Deps, ServiceError, LAMBDA_RESPONSE_LIMIT};

/// Accepts the EventBridge "Scheduled Event" envelope, or whatever constant input a
/// Scheduler schedule sends: either way, the whole account is checked.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let started = std::time::Instant::now();
    let (payload, ctx) = event.into_parts();
    match serde_json::from_value::<EventBridgeEvent<Value>>(payload) {
        Ok(e) => {
            tracing::info!(request_id = %ctx.request_id, event_id = ?e.id, detail_type = %e.detail_type, "scheduled run")
        }
        Err(_) => tracing::info!(request_id = %ctx.request_id, "scheduled run (custom input)"),
    }
    let report = scheduled_run(deps, "schedule").await;
    let out = report
        .as_ref()
        .ok()
        .and_then(|r| serde_json::to_value(r).ok());
    shared::metrics::emit("scheduled-audit", out.as_ref(), started.elapsed());
    let report = report.map_err(diagnostic)?;
    tracing::info!(
        run_id = %report.run.id,
        droplets = report.summary.droplets,
        fail = report.summary.fail,
        changes = report.summary.changes,
        api_requests = report.run.api_requests,
        "run finished"
    );
    Ok(fit_response(
        serde_json::to_value(report).map_err(diagnostic)?,
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
    use lambda_runtime::Context;
    use shared::digitalocean::{Client, ClientConfig, Token};
    use shared::store::{DirStore, Store};

    #[tokio::test]
    async fn scheduled_event_runs_a_full_audit() {
        let s = sim::Sim::start_local("t0k", sim::fleet::generate(&sim::FleetSpec::new(30, 1)))
            .await
            .expect("sim");
        let client = Client::new(ClientConfig::new(s.url(), Token::new("t0k"))).expect("client");
        let dir = tempfile::tempdir().expect("dir");
        let policy = shared::Policy::parse(sim::FLEET_POLICY, "p").expect("policy");
        let deps = Deps::new(client, Store::Dir(DirStore::new(dir.path())), policy);
        let fixture = include_str!(
            "../../../tests/fixtures/lambda-events/eventbridge/example-eventbridge-schedule.json"
        );
        let payload: Value = serde_json::from_str(fixture).expect("fixture");
        let out = handle(&deps, LambdaEvent::new(payload, Context::default()))
            .await
            .expect("handled");
        assert_eq!(out["summary"]["droplets"], 30);
        assert_eq!(out["run"]["trigger"], "schedule");
        assert!(dir.path().join("runs").exists(), "report stored");
        s.shutdown().await;
    }
}
