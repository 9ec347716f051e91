//! Exposure: what the firewalls covering a Droplet admit, per protocol and port, as address
//! sets. DigitalOcean's rule (`do-api/README.md`, "Since the subset was cut"): a Droplet's
//! effective inbound access is what its firewalls allow minus what any of them denies, and a
//! deny wins across firewalls.
//!
//! Only address sources count. Tag, Droplet, load-balancer and Kubernetes sources are peers
//! inside the account: allowing them never exposes a Droplet to an outside address, and
//! denying them never makes an outside address count as closed.

use crate::digitalocean::{Firewall, Protocol};
use crate::net::{AddressSet, Family};
use crate::policy::PortRange;
use crate::rules::ParsedInbound;

/// A rule with its firewall.
pub(crate) type Rule<'a> = (&'a Firewall, &'a ParsedInbound);

/// What the covering firewalls admit on one protocol over one run of ports, where the same
/// rules apply to every port.
#[derive(Debug)]
pub(crate) struct Admitted<'a> {
    pub protocol: Protocol,
    pub ports: PortRange,
    /// Allowed minus denied.
    pub set: AddressSet,
    /// The rules that allow these ports from addresses (unknown actions included).
    pub allows: Vec<Rule<'a>>,
    /// The deny rules on these ports that take addresses away from what is allowed.
    pub denies: Vec<Rule<'a>>,
}

impl Admitted<'_> {
    /// The families some allow rule opens to the whole family (`0.0.0.0/0`, `::/0`) and
    /// that the deny rules leave partly admitted.
    pub fn world_families(&self) -> Vec<Family> {
        [Family::V4, Family::V6]
            .into_iter()
            .filter(|&f| self.set.has(f))
            .filter(|&f| {
                let world = f.world();
                self.allows
                    .iter()
                    .any(|(_, r)| r.addresses.contains(&world))
            })
            .collect()
    }
}

/// The port runs of `within` over which the rules of `protocol` do not change, each with
/// what is admitted. Runs that no rule allows are left out; neighbouring
/// runs with the same result are merged.
pub(crate) fn admitted<'a>(
    rules: &[Rule<'a>],
    protocol: Protocol,
    within: PortRange,
) -> Vec<Admitted<'a>> {
    let mine: Vec<Rule<'a>> = rules
        .iter()
        .filter(|(_, r)| r.protocol == protocol && r.ports.overlaps(&within))
        .copied()
        .collect();
    let mut out: Vec<Admitted<'a>> = Vec::new();
    for run in runs(&mine, within) {
        let Some(a) = admitted_on(&mine, protocol, run) else {
            continue;
        };
        match out.last_mut() {
            Some(prev) if same(prev, &a) && u32::from(prev.ports.hi) + 1 == u32::from(run.lo) => {
                prev.ports.hi = run.hi;
            }
            _ => out.push(a),
        }
    }
    out
}

/// `within` cut at every rule's edges.
fn runs(rules: &[Rule<'_>], within: PortRange) -> Vec<PortRange> {
    let ranges = rules.iter().map(|(_, r)| r.ports);
    let mut starts: Vec<u32> = vec![u32::from(within.lo), u32::from(within.hi) + 1];
    for p in ranges {
        starts.extend([u32::from(p.lo), u32::from(p.hi) + 1]);
    }
    starts.retain(|s| *s >= u32::from(within.lo) && *s <= u32::from(within.hi) + 1);
    starts.sort_unstable();
    starts.dedup();
    starts
        .windows(2)
        .filter_map(|w| {
            let lo = u16::try_from(w[0]).ok()?;
            let hi = u16::try_from(w[1] - 1).ok()?;
            Some(PortRange { lo, hi })
        })
        .collect()
}

/// What the rules admit on one run of ports (every rule covers all of it or none of it).
fn admitted_on<'a>(rules: &[Rule<'a>], protocol: Protocol, run: PortRange) -> Option<Admitted<'a>> {
    let here = |r: &&Rule<'a>| r.1.ports.contains(run.lo) && !r.1.addresses.is_empty();
    let allows: Vec<Rule<'a>> = rules
        .iter()
        .filter(here)
        .filter(|(_, r)| !r.denies())
        .copied()
        .collect();
    if allows.is_empty() {
        return None;
    }
    let allowed = AddressSet::of(allows.iter().flat_map(|(_, r)| r.addresses.iter()));
    let mut set = allowed.clone();
    let mut denies = Vec::new();
    for d in rules.iter().filter(here).filter(|(_, r)| r.denies()) {
        let removed = AddressSet::of(&d.1.addresses);
        if !allowed.intersection(&removed).is_empty() {
            set = set.difference(&removed);
            denies.push(*d);
        }
    }
    Some(Admitted {
        protocol,
        ports: run,
        set,
        allows,
        denies,
    })
}

/// The same addresses by the same rules (firewall id and rule text, in order). Called for
/// every pair of neighbouring runs: it compares in place, allocating nothing.
fn same(a: &Admitted<'_>, b: &Admitted<'_>) -> bool {
    let rules_eq = |x: &[Rule<'_>], y: &[Rule<'_>]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|((fx, rx), (fy, ry))| fx.id == fy.id && rx.text == ry.text)
    };
    a.set == b.set && rules_eq(&a.allows, &b.allows) && rules_eq(&a.denies, &b.denies)
}

/// The rules named in a detail: `allowed by firewall web (fw-1) rule "tcp 22 from 0.0.0.0/0";
/// narrowed by firewall edge (fw-2) rule "deny tcp 22 from 198.51.100.0/24"`.
pub(crate) fn because(a: &Admitted<'_>) -> String {
    let name = |(f, r): &Rule<'_>| format!("firewall {} ({}) rule \"{}\"", f.name, f.id, r.text);
    let mut text = format!(
        "allowed by {}",
        a.allows.iter().map(name).collect::<Vec<_>>().join(", ")
    );
    if !a.denies.is_empty() {
        text += &format!(
            "; narrowed by {}",
            a.denies.iter().map(name).collect::<Vec<_>>().join(", ")
        );
    }
    let unknown: Vec<&str> = a
        .allows
        .iter()
        .filter_map(|(_, r)| match &r.action {
            crate::digitalocean::RuleAction::Other(x) => Some(x.as_str()),
            _ => None,
        })
        .collect();
    if !unknown.is_empty() {
        text += &format!(
            "; rule action {unknown:?} is unknown and read as allow (the conservative reading)"
        );
    }
    text
}

/// The inbound rules of `firewalls`, parsed (ICMP left out), each with its firewall.
pub(crate) fn parse_all<'a>(firewalls: &[&'a Firewall]) -> Vec<(&'a Firewall, ParsedInbound)> {
    firewalls
        .iter()
        .flat_map(|fw| {
            crate::rules::parse_inbound(fw)
                .into_iter()
                .map(move |r| (*fw, r))
        })
        .collect()
}

/// What `rules` admit from addresses, run by run, denies included:
/// `tcp 22 from 203.0.113.0/24; tcp 80 from 0.0.0.0/0, ::/0`; `nothing` when nothing.
pub(crate) fn exposure_text(rules: &[Rule<'_>]) -> String {
    let runs: Vec<String> = [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .flat_map(|p| admitted(rules, p, PortRange::ALL))
        .filter(|a| !a.set.is_empty())
        .map(|a| format!("{} {} from {}", a.protocol, a.ports, a.set))
        .collect();
    if runs.is_empty() {
        "nothing".into()
    } else {
        runs.join("; ")
    }
}

/// The deny rules that take an address of `addresses` away on `protocol` `port`, named.
pub(crate) fn denying(
    rules: &[Rule<'_>],
    protocol: Protocol,
    port: u16,
    addresses: &AddressSet,
) -> Vec<String> {
    rules
        .iter()
        .filter(|(_, r)| r.denies() && r.protocol == protocol && r.ports.contains(port))
        .filter(|(_, r)| {
            !AddressSet::of(&r.addresses)
                .intersection(addresses)
                .is_empty()
        })
        .map(|(f, r)| format!("firewall {} ({}) rule \"{}\"", f.name, f.id, r.text))
        .collect()
}
