//! Cloud Firewall rules: coverage, exposure (what the covering firewalls allow minus what
//! they deny, `exposure`), state, limits.

mod exposure;

use crate::digitalocean::{Droplet, Firewall, Protocol};
use crate::net::{AddressSet, Family};
use crate::policy::PortRange;
use crate::report::{Finding, Resource, ResourceType, Severity, Status};
use crate::rules::{
    droplet_resource, Ctx, FIREWALL_FORBIDDEN_PORT, FIREWALL_LIMITS, FIREWALL_MISSING,
    FIREWALL_NOT_APPLIED, FIREWALL_SSH_OPEN, FIREWALL_WORLD_OPEN,
};
pub(crate) use exposure::{admitted, denying, exposure_text, parse_all, Admitted, Rule};

pub const MAX_DROPLETS_BY_ID: usize = 10;
pub const MAX_TAGS: usize = 5;
pub const MAX_RULES: usize = 50;

/// The status values under which a firewall's rules are in force (DigitalOcean's `status`).
pub const APPLIED_STATUSES: [&str; 2] = ["succeeded", "waiting"];

fn fw_label(fw: &Firewall) -> String {
    format!("firewall {} ({})", fw.name, fw.id)
}

/// Every inbound rule of the firewalls covering a Droplet.
pub(crate) fn covering_rules<'a>(ctx: &'a Ctx<'_>, fws: &[usize]) -> Vec<Rule<'a>> {
    fws.iter()
        .flat_map(|&i| {
            let fw = &ctx.snapshot.firewalls[i];
            ctx.parsed[i].iter().map(move |r| (fw, r))
        })
        .collect()
}

/// One run of ports that offends, with the addresses it is open to.
struct Hit<'a> {
    admitted: Admitted<'a>,
    open: AddressSet,
}

fn describe(hits: &[Hit<'_>]) -> String {
    hits.iter()
        .map(|h| {
            let a = &h.admitted;
            format!(
                "{} {} open to {} ({})",
                a.protocol,
                a.ports,
                h.open,
                exposure::because(a)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Critical when some hit is open to the world (a `/0` allow the denies leave partly open).
fn world_severity(hits: &[Hit<'_>]) -> Severity {
    let world = hits
        .iter()
        .any(|h| h.admitted.world_families().iter().any(|f| h.open.has(*f)));
    if world {
        Severity::Critical
    } else {
        Severity::High
    }
}

/// The runs of `within` on `protocol` that admit an address outside the management ranges.
fn outside_management<'a>(
    ctx: &Ctx<'_>,
    rules: &[Rule<'a>],
    protocol: Protocol,
    within: PortRange,
) -> Vec<Hit<'a>> {
    admitted(rules, protocol, within)
        .into_iter()
        .filter_map(|a| {
            let open = a.set.difference(&ctx.management);
            (!open.is_empty()).then_some(Hit { admitted: a, open })
        })
        .collect()
}

/// A check of a Droplet's exposure, given its covering firewalls' rules.
type ExposureCheck = fn(&Ctx<'_>, &Droplet, &[Rule<'_>]) -> Option<Finding>;

pub(crate) fn check_droplet(ctx: &Ctx<'_>, d: &Droplet, fws: &[usize], out: &mut Vec<Finding>) {
    if fws.is_empty() {
        check_missing(ctx, d, out);
        return;
    }
    // The exposure depends only on the covering firewalls: worked out once per distinct set
    // (most Droplets share theirs), then given to each Droplet.
    let shared = ctx.exposure_memo(fws, || {
        let rules = covering_rules(ctx, fws);
        let checks: [(&str, ExposureCheck); 3] = [
            (FIREWALL_SSH_OPEN, check_ssh_open),
            (FIREWALL_WORLD_OPEN, check_world_open),
            (FIREWALL_FORBIDDEN_PORT, check_forbidden_port),
        ];
        checks
            .into_iter()
            .filter(|(rule, _)| ctx.enabled(rule))
            .filter_map(|(_, check)| check(ctx, d, &rules))
            .collect()
    });
    out.extend(shared.iter().map(|f| Finding {
        resource: droplet_resource(d),
        ..f.clone()
    }));
    if ctx.enabled(FIREWALL_NOT_APPLIED) {
        out.extend(check_not_applied(ctx, d, fws));
    }
}

fn check_missing(ctx: &Ctx<'_>, d: &Droplet, out: &mut Vec<Finding>) {
    if !ctx.policy.firewall.required || !ctx.enabled(FIREWALL_MISSING) {
        return;
    }
    let tags = if d.tags.is_empty() {
        String::new()
    } else {
        format!(" ({})", d.tags.join(", "))
    };
    let detail = format!("no firewall covers this Droplet, by id or by any of its tags{tags}");
    out.push(ctx.finding(
        FIREWALL_MISSING,
        Status::Fail,
        None,
        droplet_resource(d),
        detail,
    ));
}

/// `firewall.ssh-open`: the SSH port admits an address outside the management ranges.
fn check_ssh_open(ctx: &Ctx<'_>, d: &Droplet, rules: &[Rule<'_>]) -> Option<Finding> {
    let port = ctx.policy.ssh.port;
    let hits = outside_management(ctx, rules, Protocol::Tcp, PortRange::single(port));
    if hits.is_empty() {
        return None;
    }
    let detail = format!(
        "SSH port {port} is reachable from outside the management ranges: {}",
        describe(&hits)
    );
    Some(ctx.finding(
        FIREWALL_SSH_OPEN,
        Status::Fail,
        Some(world_severity(&hits)),
        droplet_resource(d),
        detail,
    ))
}

/// `firewall.forbidden-port`: a forbidden port (tcp or udp) admits an address outside the
/// management ranges.
fn check_forbidden_port(ctx: &Ctx<'_>, d: &Droplet, rules: &[Rule<'_>]) -> Option<Finding> {
    let mut hits = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        for f in &ctx.policy.firewall.forbidden_ports {
            hits.extend(outside_management(ctx, rules, protocol, *f));
        }
    }
    if hits.is_empty() {
        return None;
    }
    let detail = format!(
        "forbidden ports are open beyond the management ranges: {}",
        describe(&hits)
    );
    Some(ctx.finding(
        FIREWALL_FORBIDDEN_PORT,
        Status::Fail,
        Some(world_severity(&hits)),
        droplet_resource(d),
        detail,
    ))
}

/// `firewall.world-open`: a port outside `world_open_allowed` (any udp port) is allowed from a
/// `/0`, and the deny rules leave some of that family admitted.
fn check_world_open(ctx: &Ctx<'_>, d: &Droplet, rules: &[Rule<'_>]) -> Option<Finding> {
    let allowed = &ctx.policy.firewall.world_open_allowed;
    let mut parts = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        for a in admitted(rules, protocol, PortRange::ALL) {
            // world_open_allowed lists tcp ports; nothing over udp may be open to the world.
            let ports = match protocol {
                Protocol::Tcp => a.ports.uncovered_by(allowed),
                _ => vec![a.ports],
            };
            // What the denies leave only to the management ranges (a quarantined Droplet's)
            // is not open to the world.
            let outside = a.set.difference(&ctx.management);
            let families: Vec<Family> = a
                .world_families()
                .into_iter()
                .filter(|&f| outside.has(f))
                .collect();
            if !ports.is_empty() && !families.is_empty() {
                parts.push(world_text(&a, &ports, &families));
            }
        }
    }
    if parts.is_empty() {
        return None;
    }
    let detail = format!(
        "ports outside world_open_allowed are open to the world: {}",
        parts.join("; ")
    );
    Some(ctx.finding(
        FIREWALL_WORLD_OPEN,
        Status::Fail,
        None,
        droplet_resource(d),
        detail,
    ))
}

/// `tcp 8080 open to the world (0.0.0.0/0 except 198.51.100.0/24) (allowed by …)`.
fn world_text(a: &Admitted<'_>, ports: &[PortRange], families: &[Family]) -> String {
    let worlds: Vec<String> = families
        .iter()
        .map(|&f| a.set.only(f).to_string())
        .collect();
    let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
    let (protocol, ports, worlds) = (a.protocol, ports.join(", "), worlds.join(", "));
    format!(
        "{protocol} {ports} open to the world ({worlds}) ({})",
        exposure::because(a)
    )
}

/// `firewall.not-applied`: a covering firewall failed, has a status this tool does not know
/// (`unknown`: its rules may or may not be in force), or a change for this Droplet pends.
fn check_not_applied(ctx: &Ctx<'_>, d: &Droplet, fws: &[usize]) -> Option<Finding> {
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for &i in fws {
        let fw = &ctx.snapshot.firewalls[i];
        match fw.status.as_deref() {
            Some("failed") => failed.push(format!("{} has status failed", fw_label(fw))),
            Some(s) if APPLIED_STATUSES.contains(&s) => {}
            Some(s) => unknown.push(format!(
                "{} has status {s:?}, which is neither succeeded nor waiting",
                fw_label(fw)
            )),
            None => unknown.push(format!("{} has no status", fw_label(fw))),
        }
        failed.extend(
            fw.pending_changes
                .iter()
                .filter(|p| p.droplet_id == Some(d.id))
                .map(|p| {
                    let what = if p.removing == Some(true) {
                        "removing"
                    } else {
                        "adding"
                    };
                    let status = p
                        .status
                        .as_deref()
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default();
                    format!(
                        "{} has a pending change for this Droplet ({what}{status})",
                        fw_label(fw)
                    )
                }),
        );
    }
    let status = if failed.is_empty() {
        Status::Unknown
    } else {
        Status::Fail
    };
    failed.extend(unknown);
    (!failed.is_empty()).then(|| {
        ctx.finding(
            FIREWALL_NOT_APPLIED,
            status,
            None,
            droplet_resource(d),
            failed.join("; "),
        )
    })
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

#[cfg(test)]
mod tests {
    use crate::digitalocean::Protocol::Tcp;
    use crate::evaluate::evaluate;
    use crate::report::{Finding, Severity, Status};
    use crate::rules::examples::{deny, droplet, firewall, inbound, policy};
    use crate::snapshot::{Scope, Snapshot};

    fn findings(fws: Vec<crate::digitalocean::Firewall>) -> Vec<Finding> {
        let snapshot = Snapshot {
            droplets: vec![droplet(1, &["web"], Some("vpc-a"))],
            firewalls: fws,
            ..Snapshot::default()
        };
        evaluate(&snapshot, &policy(), &Scope::all())
    }

    fn detail<'a>(f: &'a [Finding], rule: &str) -> &'a Finding {
        f.iter()
            .find(|f| f.rule == rule)
            .unwrap_or_else(|| panic!("no {rule} finding in {f:?}"))
    }

    #[test]
    fn details_name_the_allow_and_the_deny_that_narrowed_it() {
        let f = findings(vec![
            firewall(
                "fw-1",
                vec![inbound(Tcp, "8080", &["0.0.0.0/0"])],
                &[1],
                &[],
            ),
            firewall(
                "fw-2",
                vec![deny(Tcp, "8000-8100", &["198.51.100.0/24"])],
                &[],
                &["web"],
            ),
        ]);
        let w = detail(&f, "firewall.world-open");
        assert!(
            w.detail
                .contains("tcp 8080 open to the world (0.0.0.0/0 except 198.51.100.0/24)"),
            "{}",
            w.detail
        );
        assert!(
            w.detail
                .contains("allowed by firewall fw-1-name (fw-1) rule \"tcp 8080 from 0.0.0.0/0\""),
            "{}",
            w.detail
        );
        assert!(w.detail.contains("narrowed by firewall fw-2-name (fw-2) rule \"deny tcp 8000-8100 from 198.51.100.0/24\""), "{}", w.detail);
    }

    #[test]
    fn ssh_open_to_ipv6_only_is_still_critical_from_the_world() {
        let f = findings(vec![firewall(
            "fw-1",
            vec![
                inbound(Tcp, "22", &["0.0.0.0/0", "::/0"]),
                deny(Tcp, "22", &["0.0.0.0/0"]),
            ],
            &[1],
            &[],
        )]);
        let s = detail(&f, "firewall.ssh-open");
        assert_eq!(s.severity, Severity::Critical);
        assert!(s.detail.contains("tcp 22 open to ::/0"), "{}", s.detail);
    }

    #[test]
    fn an_unknown_firewall_status_is_unknown_never_applied() {
        let mut fw = firewall(
            "fw-1",
            vec![inbound(Tcp, "22", &["203.0.113.0/24"])],
            &[1],
            &[],
        );
        fw.status = Some("weird".into());
        let f = findings(vec![fw]);
        let n = detail(&f, "firewall.not-applied");
        assert_eq!(n.status, Status::Unknown);
        assert!(n.detail.contains("status \"weird\""), "{}", n.detail);
        for ok in ["succeeded", "waiting"] {
            let mut fw = firewall("fw-1", vec![], &[1], &[]);
            fw.status = Some(ok.into());
            assert!(
                !findings(vec![fw])
                    .iter()
                    .any(|f| f.rule == "firewall.not-applied"),
                "{ok}"
            );
        }
    }
}
