//! The quarantine firewall: its rules from the policy, ensuring it exists as the policy says,
//! and checking that a quarantined Droplet admits nothing from outside the management ranges.

use std::collections::BTreeSet;

use crate::digitalocean::{
    Client, Droplet, Firewall, FirewallRequest, FirewallRules, InboundRule, OutboundRule, Protocol,
    RuleAction, Targets,
};
use crate::net::{AddressSet, Cidr};
use crate::policy::{Policy, PortRange};
use crate::remediate::ensure::{ensure_firewall, Known};
use crate::remediate::RemediateError;
use crate::rules::firewall::{admitted, parse_all, Rule, MAX_RULES};

/// Addresses per quarantine rule. DigitalOcean documents no bound on a rule's sources; this
/// one keeps each request small. The complement of the management ranges is split across
/// rules of at most this many CIDRs.
pub const MAX_ADDRESSES_PER_RULE: usize = 100;

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp];

fn all_ports(p: Protocol) -> &'static str {
    if p == Protocol::Icmp {
        ""
    } else {
        "0"
    }
}

/// The quarantine firewall's request: inbound tcp, udp and icmp denied from every address
/// outside `management.cidrs` (IPv4 and IPv6, as CIDRs), SSH allowed from the management
/// ranges, outbound denied to every address outside them; attached by `quarantine_tag`.
/// Errors (nothing is changed): no management ranges, or ranges so fragmented that the rules
/// would pass the platform's 50-rule limit.
pub fn quarantine_request(policy: &Policy) -> Result<FirewallRequest, RemediateError> {
    let mgmt = &policy.management.cidrs;
    if mgmt.is_empty() {
        return Err(RemediateError::Refused(
            "management.cidrs is empty: the quarantine firewall would admit no SSH at all; set the management ranges in the policy".into(),
        ));
    }
    let outside: Vec<String> = AddressSet::everything()
        .difference(&AddressSet::of(mgmt))
        .cidrs()
        .iter()
        .map(Cidr::to_string)
        .collect();
    let chunks: Vec<&[String]> = outside.chunks(MAX_ADDRESSES_PER_RULE).collect();
    let needed = 1 + 2 * PROTOCOLS.len() * chunks.len();
    if needed > MAX_RULES {
        return Err(RemediateError::Refused(format!(
            "management.cidrs is too fragmented for a quarantine firewall: the {} addresses outside it need {needed} rules ({MAX_ADDRESSES_PER_RULE} addresses a rule), over the limit of {MAX_RULES}; nothing was changed",
            outside.len()
        )));
    }
    let targets = |c: &[String]| Targets::addresses(c.iter().cloned());
    let mut inbound = Vec::new();
    let mut outbound = Vec::new();
    for c in &chunks {
        for p in PROTOCOLS {
            inbound.push(InboundRule::deny(p, all_ports(p), targets(c)));
            outbound.push(OutboundRule::deny(p, all_ports(p), targets(c)));
        }
    }
    let ssh = Targets::addresses(mgmt.iter().map(Cidr::to_string));
    inbound.push(InboundRule::allow(
        Protocol::Tcp,
        policy.ssh.port.to_string(),
        ssh,
    ));
    Ok(FirewallRequest {
        name: policy.remediation.quarantine_name.clone(),
        inbound_rules: inbound,
        outbound_rules: outbound,
        droplet_ids: vec![],
        tags: vec![policy.remediation.quarantine_tag.clone()],
    })
}

/// A rule's meaning, whatever its spelling: action, protocol, ports, address set.
type Key = (RuleAction, Protocol, Option<PortRange>, BTreeSet<String>);

fn key(action: &RuleAction, p: Protocol, ports: &str, t: &Targets) -> Key {
    let ports = (p != Protocol::Icmp)
        .then(|| PortRange::parse_rule(ports).ok().flatten())
        .flatten();
    (
        action.clone(),
        p,
        ports,
        t.addresses.iter().cloned().collect(),
    )
}

/// The rules of `have` that `want` lacks (by meaning, not spelling).
fn missing_from(want: &FirewallRules, have: &FirewallRules) -> FirewallRules {
    let inb = |r: &InboundRule| key(&r.action, r.protocol, &r.ports, &r.sources);
    let out = |r: &OutboundRule| key(&r.action, r.protocol, &r.ports, &r.destinations);
    let have_in: BTreeSet<Key> = have.inbound_rules.iter().map(inb).collect();
    let have_out: BTreeSet<Key> = have.outbound_rules.iter().map(out).collect();
    FirewallRules {
        inbound_rules: want
            .inbound_rules
            .iter()
            .filter(|r| !have_in.contains(&inb(r)))
            .cloned()
            .collect(),
        outbound_rules: want
            .outbound_rules
            .iter()
            .filter(|r| !have_out.contains(&out(r)))
            .cloned()
            .collect(),
    }
}

fn is_empty(r: &FirewallRules) -> bool {
    r.inbound_rules.is_empty() && r.outbound_rules.is_empty()
}

/// Finds or creates the quarantine firewall, then brings its rules to the request's (after
/// the management ranges changed): missing rules are added before stale ones are removed.
pub(super) async fn ensure(
    client: &Client,
    request: &FirewallRequest,
) -> Result<Firewall, RemediateError> {
    let fw = ensure_firewall(client, request, Known::Nothing).await?.kept;
    let rules = |i: &[InboundRule], o: &[OutboundRule]| FirewallRules {
        inbound_rules: i.to_vec(),
        outbound_rules: o.to_vec(),
    };
    let want = rules(&request.inbound_rules, &request.outbound_rules);
    let have = rules(&fw.inbound_rules, &fw.outbound_rules);
    let (add, stale) = (missing_from(&want, &have), missing_from(&have, &want));
    if is_empty(&add) && is_empty(&stale) {
        return Ok(fw);
    }
    let total = fw.rule_count() + add.inbound_rules.len() + add.outbound_rules.len();
    if total > MAX_RULES {
        return Err(RemediateError::Refused(format!(
            "firewall {} ({}) holds rules for other management ranges, and adding the new ones before removing the old would make {total} rules, over the limit of {MAX_RULES}; delete it and quarantine again",
            fw.name, fw.id
        )));
    }
    if !is_empty(&add) {
        client.add_firewall_rules(&fw.id, &add).await?;
    }
    if !is_empty(&stale) {
        client.remove_firewall_rules(&fw.id, &stale).await?;
    }
    Ok(client.get_firewall(&fw.id).await?)
}

/// From a fresh read: the quarantine firewall covers the Droplet, and no covering firewall
/// admits any address outside the management ranges, on any tcp or udp port.
pub(super) async fn verify(
    client: &Client,
    policy: &Policy,
    droplet_id: u64,
    fw_id: &str,
) -> Result<Droplet, RemediateError> {
    let now = client.get_droplet(droplet_id).await?;
    let fws = client.list_firewalls().await?;
    let covering: Vec<&Firewall> = fws.iter().filter(|f| f.covers(&now)).collect();
    if !covering.iter().any(|f| f.id == fw_id) {
        return Err(RemediateError::Verify(format!(
            "the quarantine firewall {fw_id} does not cover Droplet {droplet_id}"
        )));
    }
    let parsed = parse_all(&covering);
    let rules: Vec<Rule<'_>> = parsed.iter().map(|(f, r)| (*f, r)).collect();
    let mgmt = AddressSet::of(&policy.management.cidrs);
    for p in [Protocol::Tcp, Protocol::Udp] {
        for a in admitted(&rules, p, PortRange::ALL) {
            let open = a.set.difference(&mgmt);
            if !open.is_empty() {
                return Err(RemediateError::Verify(format!(
                    "Droplet {droplet_id} still admits {p} {} from {open}; its quarantine record is kept, re-run quarantine",
                    a.ports
                )));
            }
        }
    }
    Ok(now)
}
