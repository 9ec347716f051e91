//! Planning (pure): findings, policy and snapshot in, the list of changes out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::digitalocean::{
    Droplet, Firewall, FirewallRequest, InboundRule, OutboundRule, Protocol, Targets,
};
use crate::evaluate::{Scope, Snapshot};
use crate::net::Cidr;
use crate::policy::{Mode, Policy, PortRange};
use crate::report::{ChangeResource, Finding, ResourceType, Status};
use crate::rules::{
    self, FIREWALL_FORBIDDEN_PORT, FIREWALL_MISSING, FIREWALL_SSH_OPEN, SSH_PASSWORD_AUTH,
};

const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// One change the plan makes.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Create the baseline firewall (by tag) when no firewall of that name exists.
    CreateBaseline { request: FirewallRequest },
    /// The baseline firewall exists but does not carry the baseline tag.
    TagBaseline { firewall_id: String, tag: String },
    /// Tag a Droplet with the baseline tag, which attaches the baseline firewall.
    AttachBaseline {
        droplet_id: u64,
        tag: String,
        before: Value,
        after: Value,
    },
    /// Replace offending rules of a firewall by narrowed ones (added first, then removed).
    NarrowRules {
        firewall_id: String,
        edits: Vec<RuleEdit>,
    },
    /// Log in with the management key and turn password and keyboard-interactive auth off.
    DisablePasswordAuth {
        droplet_id: u64,
        target: std::net::SocketAddr,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleEdit {
    pub before: InboundRule,
    pub after: Vec<InboundRule>,
    /// The rules this edit fixes (`firewall.ssh-open`, `firewall.forbidden-port`).
    pub fixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub resource: ChangeResource,
    /// The action name in the ledger.
    pub action: String,
    /// The rule whose finding this step fixes.
    pub rule: String,
    pub description: String,
    /// False when `max_changes_per_run` was reached before this step.
    pub within_cap: bool,
}

/// What remediation says about one finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Note {
    pub planned: Option<String>,
    pub result: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Keyed by (rule, resource id).
    pub notes: HashMap<(String, String), Note>,
    pub cap_reached: bool,
}

impl Plan {
    /// Writes the plan's notes into the findings' `remediation` fields.
    pub fn annotate(&self, findings: &mut [Finding]) {
        for f in findings {
            if let Some(n) = self.notes.get(&(f.rule.clone(), f.resource.id.clone())) {
                if f.remediation.planned.is_none() {
                    f.remediation.planned = n.planned.clone();
                }
                if f.remediation.result.is_none() {
                    f.remediation.result = n.result.clone();
                }
            }
        }
    }

    pub fn applicable(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.within_cap)
    }
}

fn ports_text(r: &PortRange) -> String {
    if *r == PortRange::ALL {
        "0".into()
    } else if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    }
}

fn rule_text(r: &InboundRule) -> String {
    let mut sources: Vec<String> = r.sources.addresses.clone();
    sources.extend(r.sources.tags.iter().map(|t| format!("tag:{t}")));
    sources.extend(r.sources.droplet_ids.iter().map(|d| format!("droplet:{d}")));
    sources.extend(
        r.sources
            .load_balancer_uids
            .iter()
            .map(|l| format!("lb:{l}")),
    );
    sources.extend(r.sources.kubernetes_ids.iter().map(|k| format!("k8s:{k}")));
    format!(
        "{} {} from {}",
        r.protocol,
        if r.ports.is_empty() { "all" } else { &r.ports },
        sources.join(", ")
    )
}

/// The baseline firewall's request, from the policy.
pub fn baseline_request(policy: &Policy) -> FirewallRequest {
    let mgmt: Vec<String> = policy
        .management
        .cidrs
        .iter()
        .map(Cidr::to_string)
        .collect();
    let mut inbound = vec![InboundRule {
        protocol: Protocol::Tcp,
        ports: policy.ssh.port.to_string(),
        sources: Targets::addresses(mgmt),
    }];
    for p in &policy.firewall.world_open_allowed {
        inbound.push(InboundRule {
            protocol: Protocol::Tcp,
            ports: ports_text(p),
            sources: Targets::addresses(WORLD),
        });
    }
    inbound.push(InboundRule {
        protocol: Protocol::Icmp,
        ports: "0".into(),
        sources: Targets::addresses(WORLD),
    });
    let outbound = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp]
        .into_iter()
        .map(|protocol| OutboundRule {
            protocol,
            ports: "0".into(),
            destinations: Targets::addresses(WORLD),
        })
        .collect();
    FirewallRequest {
        name: policy.firewall.baseline_name.clone(),
        inbound_rules: inbound,
        outbound_rules: outbound,
        droplet_ids: vec![],
        tags: vec![policy.firewall.baseline_tag.clone()],
    }
}

/// The firewall named `name`: the oldest when races left several.
pub fn find_named<'a>(firewalls: &'a [Firewall], name: &str) -> Option<&'a Firewall> {
    firewalls
        .iter()
        .filter(|f| f.name == name)
        .min_by(|a, b| (a.created_at.as_deref(), &a.id).cmp(&(b.created_at.as_deref(), &b.id)))
}

fn covered_droplets<'a>(snapshot: &'a Snapshot, fw: &Firewall) -> Vec<&'a Droplet> {
    snapshot.droplets.iter().filter(|d| fw.covers(d)).collect()
}

/// Counts resources against `max_changes_per_run`.
struct Budget {
    max: usize,
    used: BTreeSet<(ResourceType, String)>,
    reached: bool,
}

impl Budget {
    fn take(&mut self, kind: ResourceType, id: &str) -> bool {
        let key = (kind, id.to_string());
        if self.used.contains(&key) {
            return true;
        }
        if self.used.len() < self.max {
            self.used.insert(key);
            true
        } else {
            self.reached = true;
            false
        }
    }
}

fn enforced<'a>(
    findings: &'a [Finding],
    policy: &'a Policy,
    rule: &'a str,
) -> impl Iterator<Item = &'a Finding> {
    findings.iter().filter(move |f| {
        f.rule == rule && f.status == Status::Fail && policy.mode_for(rule) == Mode::Enforce
    })
}

/// Builds the plan. `findings` are those of the audit just made over `scope`.
/// `ssh_key`: whether a management key is configured (password-auth removal needs one).
pub fn plan(
    snapshot: &Snapshot,
    policy: &Policy,
    findings: &[Finding],
    scope: &Scope,
    ssh_key: bool,
) -> Plan {
    let mut out = Plan::default();
    let mut budget = Budget {
        max: policy.remediation.max_changes_per_run as usize,
        used: BTreeSet::new(),
        reached: false,
    };
    let cap_note = format!(
        "not applied: max_changes_per_run ({}) reached in this run",
        policy.remediation.max_changes_per_run
    );
    let droplets: BTreeMap<u64, &Droplet> = snapshot.droplets.iter().map(|d| (d.id, d)).collect();
    let exempt_tag = &policy.remediation.exempt_tag;
    let is_exempt = |d: &Droplet| d.has_tag(exempt_tag);
    let mgmt_empty = policy.management.cidrs.is_empty();
    // The Droplet a finding is about (none for firewall and account findings).
    let droplet_of = |f: &Finding| -> Option<&Droplet> {
        if f.resource.kind != ResourceType::Droplet {
            return None;
        }
        f.resource
            .id
            .parse()
            .ok()
            .and_then(|id: u64| droplets.get(&id).copied())
    };
    let note =
        |out: &mut Plan, rule: &str, id: &str, planned: Option<String>, result: Option<String>| {
            out.notes
                .insert((rule.to_string(), id.to_string()), Note { planned, result });
        };

    // firewall.missing: attach the baseline firewall by tag.
    let mut to_attach: Vec<&Droplet> = Vec::new();
    for f in enforced(findings, policy, FIREWALL_MISSING) {
        let Some(d) = droplet_of(f) else {
            continue;
        };
        if is_exempt(d) {
            note(
                &mut out,
                FIREWALL_MISSING,
                &f.resource.id,
                None,
                Some(format!(
                    "exempt (tag {exempt_tag}): reported, never changed"
                )),
            );
        } else if mgmt_empty {
            note(
                &mut out,
                FIREWALL_MISSING,
                &f.resource.id,
                None,
                Some("not planned: management.cidrs is empty, so the baseline firewall would block SSH for everyone".into()),
            );
        } else {
            to_attach.push(d);
        }
    }
    if !to_attach.is_empty() {
        let tag = policy.firewall.baseline_tag.clone();
        let request = baseline_request(policy);
        let after_rules: Vec<String> = request.inbound_rules.iter().map(rule_text).collect();
        let baseline = find_named(&snapshot.firewalls, &policy.firewall.baseline_name);
        let prerequisite_ok = match baseline {
            None => {
                let ok = budget.take(
                    ResourceType::Firewall,
                    &format!("new:{}", policy.firewall.baseline_name),
                );
                out.steps.push(Step {
                    description: format!(
                        "create firewall {} attached by tag {tag}: inbound {}; outbound all to the world",
                        request.name,
                        after_rules.join("; ")
                    ),
                    kind: StepKind::CreateBaseline { request: request.clone() },
                    resource: ChangeResource {
                        kind: ResourceType::Firewall,
                        id: policy.firewall.baseline_name.clone(),
                    },
                    action: "create-baseline-firewall".into(),
                    rule: FIREWALL_MISSING.into(),
                    within_cap: ok,
                });
                ok
            }
            Some(fw) if !fw.tags.contains(&tag) => {
                let ok = budget.take(ResourceType::Firewall, &fw.id);
                out.steps.push(Step {
                    description: format!("add tag {tag} to firewall {} ({})", fw.name, fw.id),
                    kind: StepKind::TagBaseline {
                        firewall_id: fw.id.clone(),
                        tag: tag.clone(),
                    },
                    resource: ChangeResource {
                        kind: ResourceType::Firewall,
                        id: fw.id.clone(),
                    },
                    action: "tag-baseline-firewall".into(),
                    rule: FIREWALL_MISSING.into(),
                    within_cap: ok,
                });
                ok
            }
            Some(_) => true,
        };
        for d in to_attach {
            let ok = prerequisite_ok && budget.take(ResourceType::Droplet, &d.id.to_string());
            let planned = format!(
                "attach firewall {} by tag {tag}: exposed before: every port from anywhere (no firewall); after: {}",
                policy.firewall.baseline_name,
                after_rules.join("; ")
            );
            let mut tags_after = d.tags.clone();
            tags_after.push(tag.clone());
            out.steps.push(Step {
                kind: StepKind::AttachBaseline {
                    droplet_id: d.id,
                    tag: tag.clone(),
                    before: json!({"firewalls": [], "tags": d.tags, "exposed": "every port from anywhere"}),
                    after: json!({"firewalls": [policy.firewall.baseline_name], "tags": tags_after, "exposed": after_rules}),
                },
                resource: ChangeResource {
                    kind: ResourceType::Droplet,
                    id: d.id.to_string(),
                },
                action: "attach-baseline-firewall".into(),
                rule: FIREWALL_MISSING.into(),
                description: planned.clone(),
                within_cap: ok,
            });
            note(
                &mut out,
                FIREWALL_MISSING,
                &d.id.to_string(),
                Some(planned),
                (!ok).then(|| cap_note.clone()),
            );
        }
    }

    // firewall.ssh-open and firewall.forbidden-port: narrow the offending rules.
    let failing: BTreeMap<&str, BTreeSet<u64>> = [FIREWALL_SSH_OPEN, FIREWALL_FORBIDDEN_PORT]
        .into_iter()
        .map(|rule| {
            (
                rule,
                enforced(findings, policy, rule)
                    .filter_map(|f| f.resource.id.parse().ok())
                    .collect(),
            )
        })
        .collect();
    for fw in &snapshot.firewalls {
        let covered = covered_droplets(snapshot, fw);
        let mut edits: Vec<RuleEdit> = Vec::new();
        for r in &fw.inbound_rules {
            if r.protocol == Protocol::Icmp {
                continue;
            }
            let Some(range) = PortRange::parse_rule(&r.ports).ok().flatten() else {
                continue;
            };
            let outside: Vec<&String> = r
                .sources
                .addresses
                .iter()
                .filter(|a| {
                    Cidr::parse(a)
                        .map(|c| !c.inside_any(&policy.management.cidrs))
                        .unwrap_or(true)
                })
                .collect();
            if outside.is_empty() {
                continue;
            }
            let mut offending: Vec<PortRange> = Vec::new();
            let mut fixes = Vec::new();
            let covers_failing = |rule: &str| {
                covered
                    .iter()
                    .any(|d| failing.get(rule).is_some_and(|s| s.contains(&d.id)))
            };
            if r.protocol == Protocol::Tcp
                && range.contains(policy.ssh.port)
                && covers_failing(FIREWALL_SSH_OPEN)
            {
                offending.push(PortRange::single(policy.ssh.port));
                fixes.push(FIREWALL_SSH_OPEN.to_string());
            }
            if covers_failing(FIREWALL_FORBIDDEN_PORT) {
                let hit: Vec<PortRange> = policy
                    .firewall
                    .forbidden_ports
                    .iter()
                    .filter_map(|p| p.intersection(&range))
                    .collect();
                if !hit.is_empty() {
                    offending.extend(hit);
                    fixes.push(FIREWALL_FORBIDDEN_PORT.to_string());
                }
            }
            if offending.is_empty() {
                continue;
            }
            offending.sort();
            // Merge overlapping offending ranges.
            let mut merged: Vec<PortRange> = Vec::new();
            for p in offending {
                match merged.last_mut() {
                    Some(last) if u32::from(p.lo) <= u32::from(last.hi) + 1 => {
                        last.hi = last.hi.max(p.hi)
                    }
                    _ => merged.push(p),
                }
            }
            let mut after = Vec::new();
            for keep in range.uncovered_by(&merged) {
                after.push(InboundRule {
                    protocol: r.protocol,
                    ports: ports_text(&keep),
                    sources: r.sources.clone(),
                });
            }
            let mut narrowed = r.sources.clone();
            narrowed.addresses = r
                .sources
                .addresses
                .iter()
                .filter(|a| {
                    Cidr::parse(a)
                        .map(|c| c.inside_any(&policy.management.cidrs))
                        .unwrap_or(false)
                })
                .cloned()
                .chain(policy.management.cidrs.iter().map(Cidr::to_string))
                .collect::<BTreeSet<String>>()
                .into_iter()
                .collect();
            if !narrowed.is_empty() {
                for p in &merged {
                    after.push(InboundRule {
                        protocol: r.protocol,
                        ports: ports_text(p),
                        sources: narrowed.clone(),
                    });
                }
            }
            edits.push(RuleEdit {
                before: r.clone(),
                after,
                fixes,
            });
        }
        if edits.is_empty() {
            continue;
        }
        let fixes: BTreeSet<String> = edits.iter().flat_map(|e| e.fixes.iter().cloned()).collect();
        let affected: Vec<&&Droplet> = covered
            .iter()
            .filter(|d| {
                fixes.iter().any(|rule| {
                    failing
                        .get(rule.as_str())
                        .is_some_and(|s| s.contains(&d.id))
                })
            })
            .collect();
        let description = edits
            .iter()
            .map(|e| {
                format!(
                    "on firewall {} ({}): replace rule \"{}\" by {}",
                    fw.name,
                    fw.id,
                    rule_text(&e.before),
                    if e.after.is_empty() {
                        "nothing (removed)".to_string()
                    } else {
                        e.after
                            .iter()
                            .map(|a| format!("\"{}\"", rule_text(a)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        // Refusals: SSH would be cut off, a Droplet outside the run or exempt is covered, limits.
        let outside_scope: Vec<String> = covered
            .iter()
            .filter(|d| !scope.includes(d.id) || is_exempt(d))
            .map(|d| format!("{} ({})", d.name, d.id))
            .collect();
        let new_count = fw.rule_count() + edits.iter().map(|e| e.after.len()).sum::<usize>();
        let refusal = if mgmt_empty && fixes.contains(FIREWALL_SSH_OPEN) {
            Some(
                "not planned: management.cidrs is empty, so narrowing SSH would cut everyone off"
                    .to_string(),
            )
        } else if !outside_scope.is_empty() {
            Some(format!(
                "not changed: firewall {} also covers Droplets outside this run or exempt: {}",
                fw.name,
                outside_scope.join(", ")
            ))
        } else if new_count > rules::firewall::MAX_RULES {
            Some(format!(
                "not changed: the narrowed rules would be added before the old ones are removed, and {} rules exceed the limit of {}",
                new_count,
                rules::firewall::MAX_RULES
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            for d in &affected {
                for rule in &fixes {
                    note(
                        &mut out,
                        rule,
                        &d.id.to_string(),
                        Some(description.clone()),
                        Some(reason.clone()),
                    );
                }
            }
            continue;
        }
        let ok = budget.take(ResourceType::Firewall, &fw.id);
        for d in &affected {
            for rule in &fixes {
                note(
                    &mut out,
                    rule,
                    &d.id.to_string(),
                    Some(description.clone()),
                    (!ok).then(|| cap_note.clone()),
                );
            }
        }
        out.steps.push(Step {
            kind: StepKind::NarrowRules {
                firewall_id: fw.id.clone(),
                edits,
            },
            resource: ChangeResource {
                kind: ResourceType::Firewall,
                id: fw.id.clone(),
            },
            action: "narrow-firewall-rules".into(),
            rule: fixes.into_iter().collect::<Vec<_>>().join(","),
            description,
            within_cap: ok,
        });
    }

    // ssh.password-auth: over SSH with the management key, never without one.
    for f in enforced(findings, policy, SSH_PASSWORD_AUTH) {
        let Some(d) = droplet_of(f) else {
            continue;
        };
        let target = snapshot
            .ssh
            .get(&d.id)
            .and_then(|o| o.target.as_deref())
            .and_then(|t| t.parse().ok());
        if is_exempt(d) {
            continue;
        }
        let Some(target) = target else {
            continue;
        };
        if !ssh_key {
            note(
                &mut out,
                SSH_PASSWORD_AUTH,
                &f.resource.id,
                None,
                Some("not planned: no management key (DROPLETGUARD_SSH_KEY_FILE) to log in with; password login may be the owners' only way in".into()),
            );
            continue;
        }
        let ok = budget.take(ResourceType::Droplet, &d.id.to_string());
        let planned = format!(
            "log in to {target} with the management key and turn password and keyboard-interactive login off (checked with sshd -t, reloaded, verified by a fresh key login and a probe; rolled back on any failure)"
        );
        out.steps.push(Step {
            kind: StepKind::DisablePasswordAuth {
                droplet_id: d.id,
                target,
            },
            resource: ChangeResource {
                kind: ResourceType::Droplet,
                id: d.id.to_string(),
            },
            action: "disable-ssh-password-auth".into(),
            rule: SSH_PASSWORD_AUTH.into(),
            description: planned.clone(),
            within_cap: ok,
        });
        note(
            &mut out,
            SSH_PASSWORD_AUTH,
            &f.resource.id,
            Some(planned),
            (!ok).then(|| cap_note.clone()),
        );
    }

    // Enforced findings with no automatic fix, and exempt Droplets.
    for f in findings
        .iter()
        .filter(|f| f.status == Status::Fail && policy.mode_for(&f.rule) == Mode::Enforce)
    {
        let key = (f.rule.clone(), f.resource.id.clone());
        let exempt = droplet_of(f).is_some_and(is_exempt);
        if exempt {
            out.notes.entry(key).or_insert_with(|| Note {
                planned: None,
                result: Some(format!(
                    "exempt (tag {exempt_tag}): reported, never changed"
                )),
            });
            continue;
        }
        out.notes.entry(key).or_insert_with(|| Note {
            planned: None,
            result: Some(
                if matches!(
                    f.rule.as_str(),
                    FIREWALL_SSH_OPEN | FIREWALL_FORBIDDEN_PORT | FIREWALL_MISSING
                ) {
                    "no change planned for this finding".into()
                } else {
                    "no automatic fix for this rule; see its help".into()
                },
            ),
        });
    }
    out.cap_reached = budget.reached;
    out
}
