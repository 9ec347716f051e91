//! Rules that need a connection to the Droplet: `ssh.password-auth` (the agentless probe) and
//! `service.exposed` (the listeners the management session saw).

use crate::digitalocean::{Droplet, Protocol};
use crate::policy::PasswordAuth;
use crate::report::{Finding, Severity, Status};
use crate::rules::{droplet_resource, Ctx};
use crate::rules::{SERVICE_EXPOSED, SSH_PASSWORD_AUTH};
use crate::ssh::listeners::{Listener, Proto};

/// Whether the Droplet's firewalls admit `port` over `proto` from the world (no firewall at
/// all admits everything).
fn world_reachable(ctx: &Ctx<'_>, fws: &[usize], proto: Proto, port: u16) -> Option<String> {
    if fws.is_empty() {
        return Some("no firewall covers the Droplet".into());
    }
    let want = match proto {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
    };
    fws.iter().find_map(|&i| {
        let fw = &ctx.snapshot.firewalls[i];
        ctx.parsed[i]
            .iter()
            .any(|r| {
                r.protocol == want
                    && r.ports.contains(port)
                    && r.addresses.iter().any(|a| a.is_world())
            })
            .then(|| format!("firewall {} ({}) admits it from the world", fw.name, fw.id))
    })
}

fn process_names(l: &Listener) -> Vec<String> {
    l.processes.iter().map(|p| p.name.clone()).collect()
}

pub(crate) fn check_droplet(ctx: &Ctx<'_>, d: &Droplet, fws: &[usize], out: &mut Vec<Finding>) {
    let Some(obs) = ctx.snapshot.ssh.get(&d.id) else {
        return;
    };
    let policy = ctx.policy;
    let target = obs.target.clone().unwrap_or_else(|| "the Droplet".into());
    if policy.ssh.password_auth == PasswordAuth::Forbid && ctx.enabled(SSH_PASSWORD_AUTH) {
        match &obs.probe {
            Some(Ok(p)) if p.offers_password() => out.push(ctx.finding(
                SSH_PASSWORD_AUTH,
                Status::Fail,
                None,
                droplet_resource(d),
                format!(
                    "the SSH server at {target} offers {} (host key {}, {})",
                    p.methods.join(", "),
                    p.host_key_sha256,
                    p.server_version
                ),
            )),
            Some(Ok(_)) | None => {}
            Some(Err(e)) => out.push(ctx.finding(
                SSH_PASSWORD_AUTH,
                Status::Unknown,
                None,
                droplet_resource(d),
                format!("could not probe the SSH server at {target}: {e}"),
            )),
        }
    }
    if !ctx.enabled(SERVICE_EXPOSED) {
        return;
    }
    match &obs.listeners {
        None => {}
        Some(Err(e)) => out.push(ctx.finding(
            SERVICE_EXPOSED,
            Status::Unknown,
            None,
            droplet_resource(d),
            e.clone(),
        )),
        Some(Ok(ls)) => {
            let allowed = &policy.services.allowed_public;
            let mut world = false;
            let mut items = Vec::new();
            for l in ls.iter().filter(|l| l.is_public()) {
                let names = process_names(l);
                if !names.is_empty() && names.iter().all(|n| allowed.contains(n)) {
                    continue;
                }
                let who = if names.is_empty() {
                    "an unidentified process".to_string()
                } else {
                    names.join(", ")
                };
                let reach = world_reachable(ctx, fws, l.proto, l.port);
                world |= reach.is_some();
                items.push(format!(
                    "{l} ({who}){}",
                    reach
                        .map(|r| format!(": {r}"))
                        .unwrap_or_else(|| ": firewalls block it from the world".into())
                ));
            }
            if !items.is_empty() {
                out.push(ctx.finding(
                    SERVICE_EXPOSED,
                    Status::Fail,
                    Some(if world {
                        Severity::High
                    } else {
                        Severity::Medium
                    }),
                    droplet_resource(d),
                    format!(
                        "not in services.allowed_public and listening publicly: {}",
                        items.join("; ")
                    ),
                ));
            }
        }
    }
}
