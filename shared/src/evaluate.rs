//! Evaluation: an account snapshot and a policy in, findings out. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::digitalocean::{Droplet, Firewall, Protocol, SshKey, Vpc};
use crate::net::Cidr;
use crate::policy::{Policy, PortRange};
use crate::report::{Finding, Remediation, Resource, ResourceType, Severity, Status};
use crate::rules::{self, account, firewall, ssh, vpc};

/// What the API told us about the account, read in a handful of list requests.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub droplets: Vec<Droplet>,
    pub firewalls: Vec<Firewall>,
    /// VPCs, or why they could not be listed (the VPC checks then report `unknown`).
    pub vpcs: Result<Vec<Vpc>, String>,
    /// Account SSH keys, or why they could not be listed.
    pub ssh_keys: Result<Vec<SshKey>, String>,
    /// Per Droplet: what the SSH probe and the service audit saw (empty when not run).
    pub ssh: BTreeMap<u64, SshObservation>,
    /// Why the lists read may not be the whole account (e.g. a list short of its `meta.total`).
    pub incomplete: Vec<String>,
}

/// What a connection to one Droplet showed.
#[derive(Debug, Clone, Default)]
pub struct SshObservation {
    /// `ip:port` probed.
    pub target: Option<String>,
    /// The offered authentication methods, or why the probe failed; `None`: not probed.
    pub probe: Option<Result<crate::ssh::ProbeResult, String>>,
    /// The listening sockets, or why they could not be listed; `None`: not listed.
    pub listeners: Option<Result<Vec<crate::ssh::listeners::Listener>, String>>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            droplets: Vec::new(),
            firewalls: Vec::new(),
            vpcs: Ok(Vec::new()),
            ssh_keys: Ok(Vec::new()),
            ssh: BTreeMap::new(),
            incomplete: Vec::new(),
        }
    }
}

/// Which checks to run on which Droplets.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these Droplets (all when `None`).
    pub droplet_ids: Option<BTreeSet<u64>>,
    /// Leave out the checks that need a connection to the Droplet.
    pub no_ssh: bool,
}

impl Scope {
    pub fn all() -> Self {
        Scope::default()
    }

    pub fn droplets(ids: impl IntoIterator<Item = u64>) -> Self {
        Scope {
            droplet_ids: Some(ids.into_iter().collect()),
            no_ssh: false,
        }
    }

    pub fn includes(&self, id: u64) -> bool {
        self.droplet_ids.as_ref().is_none_or(|s| s.contains(&id))
    }
}

/// A firewall rule's address sources, parsed once per firewall.
#[derive(Debug)]
pub(crate) struct ParsedInbound {
    pub protocol: Protocol,
    pub ports: PortRange,
    /// The rule's `ports` text, for details.
    pub ports_text: String,
    /// Address sources; unparseable ones count as the world (the safe assumption).
    pub addresses: Vec<Cidr>,
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
}

#[derive(Debug, Default)]
pub(crate) struct VpcGroup {
    pub envs: BTreeMap<String, usize>,
    pub tenants: BTreeMap<String, usize>,
}

fn parse_inbound(fw: &Firewall) -> Vec<ParsedInbound> {
    fw.inbound_rules
        .iter()
        .filter(|r| r.protocol != Protocol::Icmp)
        .map(|r| ParsedInbound {
            protocol: r.protocol,
            ports: PortRange::parse_rule(&r.ports)
                .ok()
                .flatten()
                .unwrap_or(PortRange::ALL),
            ports_text: if r.ports.is_empty() {
                "all".into()
            } else {
                r.ports.clone()
            },
            addresses: r
                .sources
                .addresses
                .iter()
                .map(|a| {
                    Cidr::parse(a).unwrap_or_else(|_| Cidr::parse("0.0.0.0/0").expect("literal"))
                })
                .collect(),
        })
        .collect()
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
        let info = rules::info(rule);
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

/// Evaluates the policy over the Droplets in scope. Findings are sorted by resource, then rule.
pub fn evaluate(snapshot: &Snapshot, policy: &Policy, scope: &Scope) -> Vec<Finding> {
    let ctx = Ctx::new(snapshot, policy);
    let mut out = Vec::new();
    let mut relevant_fws: BTreeSet<usize> = BTreeSet::new();
    for d in snapshot.droplets.iter().filter(|d| scope.includes(d.id)) {
        let fws = ctx.covering(d);
        firewall::check_droplet(&ctx, d, &fws, &mut out);
        vpc::check_droplet(&ctx, d, &mut out);
        if !scope.no_ssh {
            ssh::check_droplet(&ctx, d, &fws, &mut out);
        }
        relevant_fws.extend(fws);
    }
    let fw_indexes: Vec<usize> = if scope.droplet_ids.is_some() {
        relevant_fws.into_iter().collect()
    } else {
        (0..snapshot.firewalls.len()).collect()
    };
    for i in fw_indexes {
        firewall::check_limits(&ctx, &snapshot.firewalls[i], &mut out);
    }
    account::check(&ctx, &mut out);
    sort_findings(&mut out);
    out
}

/// Stable order: account, then Droplets by id, then firewalls; rules in catalogue order.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                match f.resource.kind {
                    ResourceType::Account => 0,
                    ResourceType::Droplet => 1,
                    ResourceType::Vpc => 2,
                    ResourceType::Firewall => 3,
                },
                f.resource.id.parse::<u64>().unwrap_or(u64::MAX),
                f.resource.id.clone(),
                rules::order(&f.rule),
            )
        };
        key(a).cmp(&key(b))
    });
}
