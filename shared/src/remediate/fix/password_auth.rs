//! `ssh.password-auth`: log in with the management key and turn password and
//! keyboard-interactive login off (`ssh::disable_password_auth`: validate, reload, verify,
//! roll back). Never planned without a management key: password login may be the owners'
//! only way in.

use std::net::SocketAddr;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{params, step, ApplyContext, Fix, PlanContext};
use crate::digitalocean::{Droplet, Firewall, Protocol};
use crate::net::AddressSet;
use crate::remediate::ledger::Entry;
use crate::remediate::step::{Planner, Step};
use crate::remediate::RemediateError;
use crate::report::{Change, Finding, ResourceType};
use crate::rules::firewall::{denying, parse_all, Rule};
use crate::rules::SSH_PASSWORD_AUTH;

pub struct DisablePasswordAuth;

#[derive(Debug, Serialize, Deserialize)]
struct Params {
    droplet_id: u64,
    target: SocketAddr,
}

impl Fix for DisablePasswordAuth {
    fn name(&self) -> &'static str {
        "disable-password-auth"
    }

    fn rules(&self) -> &'static [&'static str] {
        &[SSH_PASSWORD_AUTH]
    }

    fn plan(&self, cx: &PlanContext<'_>, findings: &[&Finding], out: &mut Planner) {
        for f in findings {
            let Some(d) = cx.droplet_of(f) else { continue };
            let observed = cx.snapshot.ssh.get(&d.id).and_then(|o| o.target.as_deref());
            let Some(target) = observed.and_then(|t| t.parse::<SocketAddr>().ok()) else {
                continue;
            };
            if !cx.ssh_key {
                let why = "no management key (DROPLETGUARD_SSH_KEY_FILE) to log in with; password login may be the owners' only way in";
                out.note(SSH_PASSWORD_AUTH, &f.resource.id, None, Some(why.into()));
                continue;
            }
            if let Some(why) = management_denied(cx, d) {
                out.note(SSH_PASSWORD_AUTH, &f.resource.id, None, Some(why));
                continue;
            }
            let id = d.id.to_string();
            let ok = out.take(ResourceType::Droplet, &id);
            let planned = format!(
                "log in to {target} with the management key and turn password and keyboard-interactive login off (checked with sshd -t, reloaded, verified by a fresh key login and a probe; rolled back on any failure)"
            );
            out.note_planned(SSH_PASSWORD_AUTH, &id, &planned, ok);
            let params = Params {
                droplet_id: d.id,
                target,
            };
            let resource = (ResourceType::Droplet, id);
            out.push(step(
                self,
                "disable-ssh-password-auth",
                resource,
                SSH_PASSWORD_AUTH,
                planned,
                ok,
                &params,
            ));
        }
    }

    fn apply<'a>(
        &'a self,
        cx: &'a mut ApplyContext<'_>,
        steps: &'a [&'a Step],
    ) -> BoxFuture<'a, Result<Vec<Change>, RemediateError>> {
        Box::pin(async move {
            let mut changes = Vec::new();
            for s in steps {
                let p: Params = params(s)?;
                cx.ledger.intend_step(s).await?;
                let (before, after, result) = match disable(cx, p.target).await {
                    Ok(fix) => (
                        json!({"sshd": fix.before}),
                        json!({"sshd": fix.after, "file": fix.changed_file, "backup": fix.backup, "method": fix.method, "warnings": fix.warnings}),
                        "ok".to_string(),
                    ),
                    Err(e) => (Value::Null, Value::Null, format!("failed: {e}")),
                };
                changes.push(
                    cx.ledger
                        .record(Entry::for_step(s, before, after, result))
                        .await?,
                );
            }
            Ok(changes)
        })
    }
}

/// Why not to try: a covering firewall denies the management ranges on the SSH port, so the
/// management login has no way in.
fn management_denied(cx: &PlanContext<'_>, d: &Droplet) -> Option<String> {
    let fws: Vec<&Firewall> = cx
        .snapshot
        .firewalls
        .iter()
        .filter(|f| f.covers(d))
        .collect();
    let parsed = parse_all(&fws);
    let rules: Vec<Rule<'_>> = parsed.iter().map(|(f, r)| (*f, r)).collect();
    let mgmt = AddressSet::of(&cx.policy.management.cidrs);
    let port = cx.policy.ssh.port;
    let denied = denying(&rules, Protocol::Tcp, port, &mgmt);
    (!denied.is_empty()).then(|| {
        format!("not tried: {} denies the management ranges on SSH port {port}, so the management login has no way in", denied.join(", "))
    })
}

/// Over SSH: log in with the management key, then the safe removal.
async fn disable(
    cx: &ApplyContext<'_>,
    target: SocketAddr,
) -> Result<crate::ssh::PasswordAuthFix, String> {
    let access = cx.ssh;
    let key = access.key.as_ref().ok_or("no management key")?;
    let session = crate::ssh::connect(target, &access.user, key, access.timeout)
        .await
        .map_err(|e| format!("key login failed, nothing changed (password login may be the owners' only way in): {e}"))?;
    let policy = cx.policy;
    let sshd = crate::ssh::PasswordAuthTarget {
        addr: target,
        user: &access.user,
        key,
        sshd_config: &policy.ssh.sshd_config,
        port: policy.ssh.port,
        timeout: access.timeout,
        probe_users: &policy.ssh.probe_users,
    };
    let fix = crate::ssh::disable_password_auth(&session, &sshd).await;
    session.close().await;
    fix.map_err(|e| e.to_string())
}
