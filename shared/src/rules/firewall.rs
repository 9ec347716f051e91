//! Cloud Firewall rules: coverage, exposure (the union of every covering firewall), state, limits.

use crate::digitalocean::{Droplet, Firewall, Protocol};
use crate::net::Cidr;
use crate::policy::PortRange;
use crate::report::{Finding, Resource, ResourceType, Severity, Status};
use crate::rules::{droplet_resource, Ctx, ParsedInbound};
use crate::rules::{
    FIREWALL_FORBIDDEN_PORT, FIREWALL_LIMITS, FIREWALL_MISSING, FIREWALL_NOT_APPLIED,
    FIREWALL_SSH_OPEN, FIREWALL_WORLD_OPEN,
};

pub const MAX_DROPLETS_BY_ID: usize = 10;
pub const MAX_TAGS: usize = 5;
pub const MAX_RULES: usize = 50;

fn fw_label(fw: &Firewall) -> String {
    format!("firewall {} ({})", fw.name, fw.id)
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One offending rule: which firewall, which rule, which sources.
struct Hit<'a> {
    fw: &'a Firewall,
    rule: &'a ParsedInbound,
    sources: Vec<Cidr>,
    /// The ports of the rule that offend (may be narrower than the rule).
    ports: Vec<PortRange>,
}

fn describe(hits: &[Hit<'_>]) -> String {
    hits.iter()
        .map(|h| {
            let ports = if h.ports.len() == 1 && h.ports[0] == h.rule.ports {
                h.rule.ports_text.clone()
            } else {
                format!("{} (rule ports {})", join(&h.ports), h.rule.ports_text)
            };
            format!(
                "{} allows {} {} from {}",
                fw_label(h.fw),
                h.rule.protocol,
                ports,
                join(&h.sources)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn check_droplet(ctx: &Ctx<'_>, d: &Droplet, fws: &[usize], out: &mut Vec<Finding>) {
    let policy = ctx.policy;
    if fws.is_empty() {
        if policy.firewall.required && ctx.enabled(FIREWALL_MISSING) {
            out.push(ctx.finding(
                FIREWALL_MISSING,
                Status::Fail,
                None,
                droplet_resource(d),
                "no firewall covers this Droplet, by id or by any of its tags".to_string()
                    + &if d.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", d.tags.join(", "))
                    },
            ));
        }
        return;
    }
    let mgmt = &policy.management.cidrs;
    let rules: Vec<(&Firewall, &ParsedInbound)> = fws
        .iter()
        .flat_map(|&i| {
            let fw = &ctx.snapshot.firewalls[i];
            ctx.parsed[i].iter().map(move |r| (fw, r))
        })
        .collect();

    // firewall.ssh-open
    if ctx.enabled(FIREWALL_SSH_OPEN) {
        let port = policy.ssh.port;
        let hits: Vec<Hit<'_>> = rules
            .iter()
            .filter(|(_, r)| r.protocol == Protocol::Tcp && r.ports.contains(port))
            .filter_map(|(fw, r)| {
                let sources: Vec<Cidr> = r
                    .addresses
                    .iter()
                    .filter(|a| !a.inside_any(mgmt))
                    .copied()
                    .collect();
                (!sources.is_empty()).then(|| Hit {
                    fw,
                    rule: r,
                    sources,
                    ports: vec![PortRange::single(port)],
                })
            })
            .collect();
        if !hits.is_empty() {
            let world = hits.iter().any(|h| h.sources.iter().any(Cidr::is_world));
            out.push(ctx.finding(
                FIREWALL_SSH_OPEN,
                Status::Fail,
                Some(if world {
                    Severity::Critical
                } else {
                    Severity::High
                }),
                droplet_resource(d),
                format!(
                    "SSH port {port} is reachable from outside the management ranges: {}",
                    describe(&hits)
                ),
            ));
        }
    }

    // firewall.world-open
    if ctx.enabled(FIREWALL_WORLD_OPEN) {
        let allowed = &policy.firewall.world_open_allowed;
        let hits: Vec<Hit<'_>> = rules
            .iter()
            .filter_map(|(fw, r)| {
                let sources: Vec<Cidr> = r
                    .addresses
                    .iter()
                    .filter(|a| a.is_world())
                    .copied()
                    .collect();
                if sources.is_empty() {
                    return None;
                }
                // world_open_allowed lists tcp ports; nothing over udp may be open to the world.
                let ports = match r.protocol {
                    Protocol::Tcp => r.ports.uncovered_by(allowed),
                    _ => vec![r.ports],
                };
                (!ports.is_empty()).then_some(Hit {
                    fw,
                    rule: r,
                    sources,
                    ports,
                })
            })
            .collect();
        if !hits.is_empty() {
            out.push(ctx.finding(
                FIREWALL_WORLD_OPEN,
                Status::Fail,
                None,
                droplet_resource(d),
                format!(
                    "ports outside world_open_allowed are open to the world: {}",
                    describe(&hits)
                ),
            ));
        }
    }

    // firewall.forbidden-port
    if ctx.enabled(FIREWALL_FORBIDDEN_PORT) {
        let forbidden = &policy.firewall.forbidden_ports;
        let hits: Vec<Hit<'_>> = rules
            .iter()
            .filter_map(|(fw, r)| {
                let ports: Vec<PortRange> = forbidden
                    .iter()
                    .filter_map(|f| f.intersection(&r.ports))
                    .collect();
                if ports.is_empty() {
                    return None;
                }
                let sources: Vec<Cidr> = r
                    .addresses
                    .iter()
                    .filter(|a| !a.inside_any(mgmt))
                    .copied()
                    .collect();
                (!sources.is_empty()).then_some(Hit {
                    fw,
                    rule: r,
                    sources,
                    ports,
                })
            })
            .collect();
        if !hits.is_empty() {
            let world = hits.iter().any(|h| h.sources.iter().any(Cidr::is_world));
            out.push(ctx.finding(
                FIREWALL_FORBIDDEN_PORT,
                Status::Fail,
                Some(if world {
                    Severity::Critical
                } else {
                    Severity::High
                }),
                droplet_resource(d),
                format!(
                    "forbidden ports are open beyond the management ranges: {}",
                    describe(&hits)
                ),
            ));
        }
    }

    // firewall.not-applied
    if ctx.enabled(FIREWALL_NOT_APPLIED) {
        let mut problems = Vec::new();
        for &i in fws {
            let fw = &ctx.snapshot.firewalls[i];
            if fw.status.as_deref() == Some("failed") {
                problems.push(format!("{} has status failed", fw_label(fw)));
            }
            for p in fw
                .pending_changes
                .iter()
                .filter(|p| p.droplet_id == Some(d.id))
            {
                problems.push(format!(
                    "{} has a pending change for this Droplet ({}{})",
                    fw_label(fw),
                    if p.removing == Some(true) {
                        "removing"
                    } else {
                        "adding"
                    },
                    p.status
                        .as_deref()
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default()
                ));
            }
        }
        if !problems.is_empty() {
            out.push(ctx.finding(
                FIREWALL_NOT_APPLIED,
                Status::Fail,
                None,
                droplet_resource(d),
                problems.join("; "),
            ));
        }
    }
}

/// `firewall.limits`, on the firewall itself.
pub(crate) fn check_limits(ctx: &Ctx<'_>, fw: &Firewall, out: &mut Vec<Finding>) {
    if !ctx.enabled(FIREWALL_LIMITS) {
        return;
    }
    let mut at = Vec::new();
    let mut over = false;
    for (what, n, max) in [
        ("Droplets by id", fw.droplet_ids.len(), MAX_DROPLETS_BY_ID),
        ("tags", fw.tags.len(), MAX_TAGS),
        ("rules (inbound plus outbound)", fw.rule_count(), MAX_RULES),
    ] {
        if n >= max {
            over |= n > max;
            at.push(format!("{n} {what} (limit {max})"));
        }
    }
    if !at.is_empty() {
        out.push(ctx.finding(
            FIREWALL_LIMITS,
            Status::Fail,
            Some(if over {
                Severity::Medium
            } else {
                Severity::Low
            }),
            Resource {
                kind: ResourceType::Firewall,
                id: fw.id.clone(),
                name: fw.name.clone(),
            },
            format!("{} is at a platform limit: {}", fw_label(fw), at.join(", ")),
        ));
    }
}
