//! Incident response (`incident-response`): audit, remediate, quarantine or restore the named
//! Droplets, spending the reserve when it must.

use super::*;

/// The incident-response payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    pub action: IncidentAction,
    #[serde(default)]
    pub droplet_ids: Vec<u64>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentAction {
    Audit,
    Remediate,
    Quarantine,
    Restore,
}

/// Incident response's audit or remediation (which ignores grace periods) of `ids` (all
/// Droplets when empty).
pub(super) async fn incident_report(
    deps: &Deps,
    req: &IncidentRequest,
    ids: BTreeSet<u64>,
) -> Result<Report, ServiceError> {
    let scope = Scope {
        droplet_ids: (!ids.is_empty()).then_some(ids),
        ..Scope::default()
    };
    // Incident response may spend the requests the other runs keep for it.
    let client = &deps.client.spending_reserve();
    if req.action == IncidentAction::Audit {
        let (policy, store) = (&deps.policy, &deps.store);
        return Ok(crate::audit::audit_recorded(
            client, policy, store, &scope, "manual", &deps.ssh,
        )
        .await?);
    }
    let opts = RemediateOptions {
        scope: scope.clone(),
        dry_run: req.dry_run,
        trigger: "manual",
        ssh: &deps.ssh,
        now: None,
        ignore_grace: true,
        started: None,
    };
    let r = remediate::remediate(client, &deps.policy, &deps.store, opts).await?;
    if !req.dry_run {
        after_run(deps, &r, &scope).await?;
    }
    Ok(r)
}

/// Incident response: audit or remediate the given Droplets (all when none is given), or
/// quarantine / restore each of them.
pub async fn incident(deps: &Deps, req: IncidentRequest) -> Result<Value, ServiceError> {
    let ids: BTreeSet<u64> = req.droplet_ids.iter().copied().collect();
    match req.action {
        IncidentAction::Audit | IncidentAction::Remediate => {
            let report = incident_report(deps, &req, ids).await?;
            Ok(json!({"action": req.action, "report": report}))
        }
        IncidentAction::Quarantine | IncidentAction::Restore => {
            if ids.is_empty() {
                return Err(ServiceError::BadRequest(
                    "droplet_ids must name at least one Droplet".into(),
                ));
            }
            let reason = req.reason.clone().unwrap_or_default();
            if req.action == IncidentAction::Quarantine && reason.trim().is_empty() {
                return Err(ServiceError::BadRequest(
                    "reason is required for quarantine".into(),
                ));
            }
            if req.dry_run {
                return Err(ServiceError::BadRequest(
                    "dry_run applies to audit and remediate, not quarantine or restore".into(),
                ));
            }
            let run_id = uuid::Uuid::new_v4().to_string();
            let client = &deps.client.spending_reserve();
            let mut results = Vec::new();
            for id in ids {
                let r = if req.action == IncidentAction::Quarantine {
                    remediate::quarantine(
                        client,
                        &deps.policy,
                        &deps.store,
                        id,
                        &reason,
                        "manual",
                        &run_id,
                    )
                    .await
                } else {
                    remediate::restore(client, &deps.policy, &deps.store, id, "manual", &run_id)
                        .await
                };
                results.push(match r {
                    Ok(o) => json!({"droplet_id": id, "ok": true, "changed": o.changed, "status": o.record.status, "record": o.record, "changes": o.changes}),
                    Err(e) => json!({"droplet_id": id, "ok": false, "error": e.to_string()}),
                });
            }
            Ok(json!({"action": req.action, "results": results}))
        }
    }
}
