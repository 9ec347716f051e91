//! The evaluation context: indexes over a snapshot, built once per evaluation and shared by
//! every rule family.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::digitalocean::{Droplet, Firewall, InboundRule, Protocol, RuleAction, Vpc};
use crate::net::{AddressSet, Cidr, Family};
use crate::policy::{Policy, PortRange};
use crate::report::{Finding, Remediation, Resource, ResourceType, Severity, Status};
use crate::snapshot::Snapshot;

/// An inbound rule, parsed once per firewall.
#[derive(Debug)]
pub(crate) struct ParsedInbound {
    pub action: RuleAction,
    pub protocol: Protocol,
    pub ports: PortRange,
    /// Address sources. Unparseable ones count as the world in a rule that allows (the safe
    /// assumption) and as nothing in a rule that denies (a deny never counts as more than
    /// it surely is); likewise unparseable ports.
    pub addresses: Vec<Cidr>,
    /// The rule in one line, for details.
    pub text: String,
}

impl ParsedInbound {
    /// Whether the rule denies (a rule of unknown action is read as allowing).
    pub fn denies(&self) -> bool {
        self.action == RuleAction::Deny
    }
}

/// Indexes over a snapshot, built once per evaluation.
pub(crate) struct Ctx<'a> {
    pub policy: &'a Policy,
    pub snapshot: &'a Snapshot,
    by_droplet: HashMap<u64, Vec<usize>>,
    by_tag: HashMap<&'a str, Vec<usize>>,
    pub parsed: Vec<Vec<ParsedInbound>>,
    pub vpcs: HashMap<&'a str, &'a Vpc>,
    default_vpc: HashMap<&'a str, &'a Vpc>,
    /// Per VPC key: environment and tenant values and how many Droplets carry each.
    pub groups: HashMap<String, VpcGroup>,
    /// The policy's management ranges as one address set.
    pub management: AddressSet,
    /// Per distinct set of covering firewalls: the exposure findings it gives a Droplet.
    /// Shared by the threads that check Droplets ([`crate::evaluate`]).
    exposure: Mutex<HashMap<Vec<usize>, Arc<Vec<Finding>>>>,
}

#[derive(Debug, Default)]
pub(crate) struct VpcGroup {
    pub envs: BTreeMap<String, usize>,
    pub tenants: BTreeMap<String, usize>,
}

pub(crate) fn parse_inbound(fw: &Firewall) -> Vec<ParsedInbound> {
    fw.inbound_rules
        .iter()
        .filter(|r| r.protocol != Protocol::Icmp)
        .map(parse_rule)
        .collect()
}

fn parse_rule(r: &InboundRule) -> ParsedInbound {
    let deny = r.action == RuleAction::Deny;
    let ports = PortRange::parse_rule(&r.ports).ok().flatten();
    let world = Family::V4.world();
    let addresses = r
        .sources
        .addresses
        .iter()
        .filter_map(|a| match Cidr::parse(a) {
            Ok(c) => Some(c),
            Err(_) => (!deny).then_some(world),
        })
        .filter(|_| !(deny && ports.is_none()))
        .collect();
    ParsedInbound {
        action: r.action.clone(),
        protocol: r.protocol,
        ports: ports.unwrap_or(PortRange::ALL),
        addresses,
        text: r.to_string(),
    }
}

impl<'a> Ctx<'a> {
    pub fn new(snapshot: &'a Snapshot, policy: &'a Policy) -> Self {
        let mut by_droplet: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut by_tag: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, fw) in snapshot.firewalls.iter().enumerate() {
            for id in &fw.droplet_ids {
                by_droplet.entry(*id).or_default().push(i);
            }
            for t in &fw.tags {
                by_tag.entry(t.as_str()).or_default().push(i);
            }
        }
        let parsed = snapshot.firewalls.iter().map(parse_inbound).collect();
        let mut vpcs = HashMap::new();
        let mut default_vpc = HashMap::new();
        if let Ok(list) = &snapshot.vpcs {
            for v in list {
                vpcs.insert(v.id.as_str(), v);
                if v.default {
                    default_vpc.insert(v.region.as_str(), v);
                }
            }
        }
        let mut ctx = Ctx {
            policy,
            snapshot,
            by_droplet,
            by_tag,
            parsed,
            vpcs,
            default_vpc,
            groups: HashMap::new(),
            management: AddressSet::of(&policy.management.cidrs),
            exposure: Mutex::default(),
        };
        let env_prefix = &policy.vpc.environment_tag_prefix;
        let tenant_prefix = &policy.vpc.tenant_tag_prefix;
        let mut groups: HashMap<String, VpcGroup> = HashMap::new();
        for d in &snapshot.droplets {
            let g = groups.entry(ctx.vpc_key(d)).or_default();
            for t in &d.tags {
                if let Some(v) = t
                    .strip_prefix(env_prefix.as_str())
                    .filter(|v| !v.is_empty())
                {
                    *g.envs.entry(v.to_string()).or_default() += 1;
                }
                if let Some(v) = t
                    .strip_prefix(tenant_prefix.as_str())
                    .filter(|v| !v.is_empty())
                {
                    *g.tenants.entry(v.to_string()).or_default() += 1;
                }
            }
        }
        ctx.groups = groups;
        ctx
    }

    /// Indexes of the firewalls that cover a Droplet, by id or by tag, without repeats.
    pub fn covering(&self, d: &Droplet) -> Vec<usize> {
        let mut out: Vec<usize> = self.by_droplet.get(&d.id).cloned().unwrap_or_default();
        for t in &d.tags {
            if let Some(v) = self.by_tag.get(t.as_str()) {
                out.extend(v);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The exposure findings of a set of covering firewalls (`fws`, as [`Ctx::covering`] gives
    /// it), computed by `compute` the first time the set is seen in this evaluation.
    pub fn exposure_memo(
        &self,
        fws: &[usize],
        compute: impl FnOnce() -> Vec<Finding>,
    ) -> Arc<Vec<Finding>> {
        // A poisoned memo (a thread panicked) is still a memo: each value was whole when put.
        let memo = || self.exposure.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = memo().get(fws) {
            return Arc::clone(f);
        }
        // Computed outside the lock; two threads meeting the same new set both compute it,
        // and get the same findings.
        let found = Arc::new(compute());
        memo().insert(fws.to_vec(), Arc::clone(&found));
        found
    }

    /// The region's default VPC, if known.
    pub fn default_vpc(&self, region: &str) -> Option<&'a Vpc> {
        self.default_vpc.get(region).copied()
    }

    /// The VPC a Droplet is in: its `vpc_uuid`, or its region's default VPC when it has none.
    pub fn vpc_key(&self, d: &Droplet) -> String {
        match &d.vpc_uuid {
            Some(v) if !v.is_empty() => v.clone(),
            _ => match self.default_vpc(d.region_slug()) {
                Some(v) => v.id.clone(),
                None => format!("default:{}", d.region_slug()),
            },
        }
    }

    pub fn finding(
        &self,
        rule: &str,
        status: Status,
        severity: Option<Severity>,
        resource: Resource,
        detail: String,
    ) -> Finding {
        let info = crate::catalog::info(rule);
        Finding {
            rule: rule.to_string(),
            status,
            severity: severity
                .or(info.map(|i| i.severity))
                .unwrap_or(Severity::Medium),
            resource,
            detail,
            remediation: Remediation {
                mode: self.policy.mode_for(rule),
                planned: None,
                applied: false,
                result: None,
            },
            exemption: None,
            first_seen: None,
        }
    }

    pub fn enabled(&self, rule: &str) -> bool {
        self.policy.rule_enabled(rule)
    }
}

pub(crate) fn droplet_resource(d: &Droplet) -> Resource {
    Resource {
        kind: ResourceType::Droplet,
        id: d.id.to_string(),
        name: d.name.clone(),
    }
}
