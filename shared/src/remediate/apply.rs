//! Applying a plan through the client, one ledger record per change.

use serde_json::json;

use super::plan::{find_named, Plan, RuleEdit, Step, StepKind};
use super::{Ledger, RemediateError};
use crate::digitalocean::{
    ApiError, Client, Firewall, FirewallRequest, FirewallRules, InboundRule,
};
use crate::policy::{Policy, PortRange};
use crate::report::{Change, ChangeResource, ResourceType};
use crate::ssh_audit::SshAccess;

/// Whether an error may hide a write that happened (the API answered 5xx or the connection broke).
pub(crate) fn maybe_committed(e: &ApiError) -> bool {
    match e {
        ApiError::Transport { .. } => true,
        ApiError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Finds or creates the firewall `request.name`, makes sure it carries `request.tags`, and
/// removes duplicates left by concurrent runs (the oldest is kept). Idempotent by re-reading:
/// a create that answered 5xx but committed is found on the re-read, not created twice.
pub(crate) async fn ensure_firewall(
    client: &Client,
    request: &FirewallRequest,
) -> Result<(Firewall, bool, Vec<String>), ApiError> {
    for t in &request.tags {
        client.create_tag(t).await?;
    }
    let fws = client.list_firewalls().await?;
    let mut created = false;
    let fw = match find_named(&fws, &request.name) {
        Some(fw) => fw.clone(),
        None => {
            created = true;
            match client.create_firewall(request).await {
                Ok(fw) => fw,
                Err(e) if maybe_committed(&e) => {
                    tracing::warn!(error = %e, name = %request.name, "firewall create failed; re-reading to see whether it committed");
                    let fws = client.list_firewalls().await?;
                    match find_named(&fws, &request.name) {
                        Some(fw) => fw.clone(),
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    // Converge: concurrent runs may each have created one.
    let fws = client.list_firewalls().await?;
    let keep = find_named(&fws, &request.name).cloned().unwrap_or(fw);
    let mut removed = Vec::new();
    for dup in fws
        .iter()
        .filter(|f| f.name == request.name && f.id != keep.id)
    {
        match client.delete_firewall(&dup.id).await {
            Ok(()) => removed.push(dup.id.clone()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let missing: Vec<String> = request
        .tags
        .iter()
        .filter(|t| !keep.tags.contains(t))
        .cloned()
        .collect();
    if !missing.is_empty() {
        client.add_tags_to_firewall(&keep.id, &missing).await?;
    }
    Ok((keep, created, removed))
}

fn same_rule(a: &InboundRule, b: &InboundRule) -> bool {
    use std::collections::BTreeSet;
    fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
        v.iter().cloned().collect()
    }
    let ports = |p: &str| PortRange::parse_rule(p).ok().flatten();
    a.protocol == b.protocol
        && ports(&a.ports) == ports(&b.ports)
        && set(&a.sources.addresses) == set(&b.sources.addresses)
        && set(&a.sources.tags) == set(&b.sources.tags)
        && set(&a.sources.droplet_ids) == set(&b.sources.droplet_ids)
        && set(&a.sources.load_balancer_uids) == set(&b.sources.load_balancer_uids)
        && set(&a.sources.kubernetes_ids) == set(&b.sources.kubernetes_ids)
}

/// Adds the narrowed rules first, then removes the old one, so that no moment is left with
/// less access than either before or after (removing first could cut off management SSH).
async fn narrow(
    client: &Client,
    firewall_id: &str,
    edit: &RuleEdit,
) -> Result<&'static str, ApiError> {
    let fw = client.get_firewall(firewall_id).await?;
    if !fw.inbound_rules.iter().any(|r| same_rule(r, &edit.before)) {
        return Ok("ok (already narrowed)");
    }
    let missing: Vec<InboundRule> = edit
        .after
        .iter()
        .filter(|a| !fw.inbound_rules.iter().any(|r| same_rule(r, a)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        client
            .add_firewall_rules(
                firewall_id,
                &FirewallRules {
                    inbound_rules: missing,
                    outbound_rules: vec![],
                },
            )
            .await?;
    }
    client
        .remove_firewall_rules(
            firewall_id,
            &FirewallRules {
                inbound_rules: vec![edit.before.clone()],
                outbound_rules: vec![],
            },
        )
        .await?;
    Ok("ok")
}

fn result_of<T>(r: &Result<T, ApiError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {e}"),
    }
}

/// Applies the steps within the cap. Every change is written to the ledger as it happens;
/// a ledger write that fails stops the run with an error.
pub(crate) async fn apply(
    client: &Client,
    policy: &Policy,
    plan: &Plan,
    ledger: &mut Ledger<'_>,
    access: &SshAccess,
) -> Result<Vec<Change>, RemediateError> {
    let mut changes = Vec::new();
    let mut baseline_error: Option<String> = None;
    let steps: Vec<&Step> = plan.applicable().collect();
    let mut i = 0;
    while i < steps.len() {
        let step = steps[i];
        match &step.kind {
            StepKind::CreateBaseline { request } => {
                let r = ensure_firewall(client, request).await;
                let (after, result) = match &r {
                    Ok((fw, created, removed)) => (
                        json!({"id": fw.id, "name": fw.name, "tags": fw.tags, "inbound_rules": fw.inbound_rules,
                               "outbound_rules": fw.outbound_rules, "created": created, "duplicates_removed": removed}),
                        "ok".to_string(),
                    ),
                    Err(e) => {
                        baseline_error = Some(e.to_string());
                        (json!(null), format!("failed: {e}"))
                    }
                };
                let id = r
                    .as_ref()
                    .map(|(fw, _, _)| fw.id.clone())
                    .unwrap_or_else(|_| step.resource.id.clone());
                changes.push(
                    ledger
                        .record(
                            ChangeResource {
                                kind: ResourceType::Firewall,
                                id,
                            },
                            &step.action,
                            json!(null),
                            after,
                            result,
                            &step.rule,
                            &step.description,
                        )
                        .await?,
                );
                i += 1;
            }
            StepKind::TagBaseline { firewall_id, tag } => {
                let r = async {
                    client.create_tag(tag).await?;
                    client
                        .add_tags_to_firewall(firewall_id, std::slice::from_ref(tag))
                        .await
                }
                .await;
                if let Err(e) = &r {
                    baseline_error = Some(e.to_string());
                }
                changes.push(
                    ledger
                        .record(
                            step.resource.clone(),
                            &step.action,
                            json!({"tags_added": []}),
                            json!({"tags_added": [tag]}),
                            result_of(&r),
                            &step.rule,
                            &step.description,
                        )
                        .await?,
                );
                i += 1;
            }
            StepKind::AttachBaseline { tag, .. } => {
                // Consecutive attach steps go out as one tag request.
                let mut batch = Vec::new();
                while i < steps.len() {
                    if let StepKind::AttachBaseline {
                        droplet_id,
                        before,
                        after,
                        ..
                    } = &steps[i].kind
                    {
                        batch.push((steps[i], *droplet_id, before.clone(), after.clone()));
                        i += 1;
                    } else {
                        break;
                    }
                }
                let result = match &baseline_error {
                    Some(e) => format!("failed: the baseline firewall is not available: {e}"),
                    None => {
                        let ids: Vec<u64> = batch.iter().map(|b| b.1).collect();
                        let mut res = Ok(());
                        for chunk in ids.chunks(50) {
                            res = async {
                                client.create_tag(tag).await?;
                                client.tag_droplets(tag, chunk).await
                            }
                            .await;
                            if res.is_err() {
                                break;
                            }
                        }
                        result_of(&res)
                    }
                };
                for (s, _, before, after) in batch {
                    changes.push(
                        ledger
                            .record(
                                s.resource.clone(),
                                &s.action,
                                before,
                                after,
                                result.clone(),
                                &s.rule,
                                &s.description,
                            )
                            .await?,
                    );
                }
            }
            StepKind::DisablePasswordAuth { target, .. } => {
                let r = disable_password_auth(policy, access, *target).await;
                let (before, after, result) = match &r {
                    Ok(fix) => (
                        json!({"sshd": fix.before}),
                        json!({"sshd": fix.after, "file": fix.changed_file, "backup": fix.backup, "method": fix.method, "warnings": fix.warnings}),
                        "ok".to_string(),
                    ),
                    Err(e) => (json!(null), json!(null), format!("failed: {e}")),
                };
                changes.push(
                    ledger
                        .record(
                            step.resource.clone(),
                            &step.action,
                            before,
                            after,
                            result,
                            &step.rule,
                            &step.description,
                        )
                        .await?,
                );
                i += 1;
            }
            StepKind::NarrowRules { firewall_id, edits } => {
                for edit in edits {
                    let r = narrow(client, firewall_id, edit).await;
                    let result = match &r {
                        Ok(s) => s.to_string(),
                        Err(e) => format!("failed: {e}"),
                    };
                    changes.push(
                        ledger
                            .record(
                                step.resource.clone(),
                                &step.action,
                                json!({"rule": edit.before}),
                                json!({"rules": edit.after}),
                                result,
                                &edit.fixes.join(","),
                                &step.description,
                            )
                            .await?,
                    );
                }
                i += 1;
            }
        }
    }
    Ok(changes)
}

/// Over SSH: log in with the management key, then the safe removal (`ssh::disable_password_auth`).
async fn disable_password_auth(
    policy: &Policy,
    access: &SshAccess,
    target: std::net::SocketAddr,
) -> Result<crate::ssh::PasswordAuthFix, String> {
    let key = access.key.as_ref().ok_or("no management key")?;
    let session = crate::ssh::connect(target, &access.user, key, access.timeout)
        .await
        .map_err(|e| format!("key login failed, nothing changed (password login may be the owners' only way in): {e}"))?;
    let fix = crate::ssh::disable_password_auth_probing(
        &session,
        target,
        &access.user,
        key,
        &policy.ssh.sshd_config,
        policy.ssh.port,
        access.timeout,
        &policy.ssh.probe_users,
    )
    .await;
    session.close().await;
    fix.map_err(|e| e.to_string())
}
