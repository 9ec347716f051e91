//! Rules that need a connection to the Droplet: `ssh.password-auth` (the agentless probe) and
//! `service.exposed` (the listeners the management session saw).

use crate::digitalocean::{Droplet, Protocol};
use crate::policy::{PasswordAuth, PortRange};
use crate::report::{Finding, Severity, Status};
use crate::rules::{droplet_resource, firewall, Ctx};
use crate::rules::{SERVICE_EXPOSED, SSH_PASSWORD_AUTH};
use crate::snapshot::SshObservation;
use crate::ssh::listeners::{Listener, Proto};
use crate::ssh::owners::owners_allowed;
use crate::ssh::ProbeResult;

/// Whether the Droplet's firewalls admit `port` over `proto` from the world, deny rules
/// included (no firewall at all admits everything); `Some(why)` when they do.
fn world_reachable(ctx: &Ctx<'_>, fws: &[usize], proto: Proto, port: u16) -> Option<String> {
    if fws.is_empty() {
        return Some("no firewall covers the Droplet".into());
    }
    let protocol = match proto {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
    };
    let rules = firewall::covering_rules(ctx, fws);
    firewall::admitted(&rules, protocol, PortRange::single(port))
        .into_iter()
        .find(|a| !a.world_families().is_empty())
        .map(|a| {
            let by: Vec<String> = a
                .allows
                .iter()
                .map(|(f, _)| format!("firewall {} ({})", f.name, f.id))
                .collect();
            format!(
                "{} admit it from the world (open to {})",
                by.join(", "),
                a.set
            )
        })
}

/// The owners as the finding names them: kernel name, printed name when it differs, unit.
fn process_names(l: &Listener) -> Vec<String> {
    l.processes.iter().map(ToString::to_string).collect()
}

/// The probes to judge: every probe user's, or the single probe of an older observation.
fn probes(obs: &SshObservation) -> Vec<(Option<&str>, &Result<ProbeResult, String>)> {
    if obs.user_probes.is_empty() {
        obs.probe.iter().map(|p| (None, p)).collect()
    } else {
        obs.user_probes
            .iter()
            .map(|(u, p)| (Some(u.as_str()), p))
            .collect()
    }
}

/// Why the server offers passwords: each probe user offered one, each `Match` block that
/// turns one on. Empty when nothing does.
fn password_offers(obs: &SshObservation) -> Vec<String> {
    let mut why = Vec::new();
    for (user, p) in probes(obs) {
        if let Some(p) = p.as_ref().ok().filter(|p| p.offers_password()) {
            let to = user.map(|u| format!(" to {u}")).unwrap_or_default();
            why.push(format!(
                "{}{to} (host key {}, {})",
                p.methods.join(", "),
                p.host_key_sha256,
                p.server_version
            ));
        }
    }
    if let Some(Ok(blocks)) = &obs.match_blocks {
        why.extend(blocks.iter().filter(|b| !b.offers.is_empty()).map(|b| {
            format!(
                "{} to a connection like {}: {} turned on",
                b.describe(),
                b.spec,
                b.offers.join(" and ")
            )
        }));
    }
    why
}

/// What kept a check from seeing: failed probes, unreadable `Match` blocks.
fn password_unknowns(obs: &SshObservation) -> Vec<String> {
    let mut why: Vec<String> = probes(obs)
        .into_iter()
        .filter_map(|(user, p)| {
            let as_user = user.map(|u| format!(" as {u}")).unwrap_or_default();
            p.as_ref()
                .err()
                .map(|e| format!("could not probe{as_user}: {e}"))
        })
        .collect();
    if let Some(Err(e)) = &obs.match_blocks {
        why.push(e.clone());
    }
    why
}

fn check_password_auth(ctx: &Ctx<'_>, d: &Droplet, obs: &SshObservation, out: &mut Vec<Finding>) {
    let target = obs.target.clone().unwrap_or_else(|| "the Droplet".into());
    let offers = password_offers(obs);
    let unknowns = password_unknowns(obs);
    let (status, detail) = if !offers.is_empty() {
        let detail = format!("the SSH server at {target} offers {}", offers.join("; "));
        (Status::Fail, detail)
    } else if !unknowns.is_empty() {
        let detail = format!("the SSH server at {target}: {}", unknowns.join("; "));
        (Status::Unknown, detail)
    } else {
        return;
    };
    out.push(ctx.finding(SSH_PASSWORD_AUTH, status, None, droplet_resource(d), detail));
}

pub(crate) fn check_droplet(ctx: &Ctx<'_>, d: &Droplet, fws: &[usize], out: &mut Vec<Finding>) {
    let Some(obs) = ctx.snapshot.ssh.get(&d.id) else {
        return;
    };
    let policy = ctx.policy;
    if policy.ssh.password_auth == PasswordAuth::Forbid && ctx.enabled(SSH_PASSWORD_AUTH) {
        check_password_auth(ctx, d, obs, out);
    }
    if ctx.enabled(SERVICE_EXPOSED) {
        out.extend(check_service_exposed(ctx, d, fws, obs));
    }
}

/// `service.exposed`: a listener on a public address whose owners are not all allowed.
fn check_service_exposed(
    ctx: &Ctx<'_>,
    d: &Droplet,
    fws: &[usize],
    obs: &SshObservation,
) -> Option<Finding> {
    let ls = match obs.listeners.as_ref()? {
        Err(e) => {
            return Some(ctx.finding(
                SERVICE_EXPOSED,
                Status::Unknown,
                None,
                droplet_resource(d),
                e.clone(),
            ))
        }
        Ok(ls) => ls,
    };
    let allowed = &ctx.policy.services.allowed_public;
    let mut world = false;
    let mut items = Vec::new();
    for l in ls
        .iter()
        .filter(|l| l.is_public() && !owners_allowed(l, allowed))
    {
        let names = process_names(l);
        let who = if names.is_empty() {
            "an unidentified process".to_string()
        } else {
            names.join(", ")
        };
        let reach = world_reachable(ctx, fws, l.proto, l.port);
        world |= reach.is_some();
        let reach = reach
            .map(|r| format!(": {r}"))
            .unwrap_or_else(|| ": firewalls block it from the world".into());
        items.push(format!("{l} ({who}){reach}"));
    }
    if items.is_empty() {
        return None;
    }
    let severity = if world {
        Severity::High
    } else {
        Severity::Medium
    };
    let detail = format!(
        "not in services.allowed_public and listening publicly: {}",
        items.join("; ")
    );
    Some(ctx.finding(
        SERVICE_EXPOSED,
        Status::Fail,
        Some(severity),
        droplet_resource(d),
        detail,
    ))
}
