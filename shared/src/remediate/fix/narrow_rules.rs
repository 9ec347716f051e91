//! `firewall.ssh-open` and `firewall.forbidden-port`: narrow the offending inbound rules to
//! the management ranges. Only the offending ports are narrowed; the rule's other ports keep
//! their sources. New rules are added before the old one is removed, so that no moment has
//! less access than before or after.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{params, ports_text, rule_text, step, ApplyContext, Fix, PlanContext};
use crate::digitalocean::{
    ApiError, Droplet, Firewall, FirewallRules, InboundRule, Protocol, RuleAction,
};
use crate::net::Cidr;
use crate::policy::PortRange;
use crate::remediate::ledger::Entry;
use crate::remediate::step::{Planner, Step};
use crate::remediate::RemediateError;
use crate::report::{Change, Finding, ResourceType};
use crate::rules::{self, FIREWALL_FORBIDDEN_PORT, FIREWALL_SSH_OPEN};

pub struct NarrowRules;

/// One rule replaced by narrowed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEdit {
    pub before: InboundRule,
    pub after: Vec<InboundRule>,
    /// The rules this edit fixes (`firewall.ssh-open`, `firewall.forbidden-port`).
    pub fixes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Params {
    firewall_id: String,
    edits: Vec<RuleEdit>,
}

/// Per rule id, the Droplets whose finding of that rule is to be fixed.
type Failing = BTreeMap<&'static str, BTreeSet<u64>>;

impl Fix for NarrowRules {
    fn name(&self) -> &'static str {
        "narrow-rules"
    }

    fn rules(&self) -> &'static [&'static str] {
        &[FIREWALL_SSH_OPEN, FIREWALL_FORBIDDEN_PORT]
    }

    fn plan(&self, cx: &PlanContext<'_>, findings: &[&Finding], out: &mut Planner) {
        let failing: Failing = self
            .rules()
            .iter()
            .map(|&rule| {
                let ids = findings.iter().filter(|f| f.rule == rule);
                (
                    rule,
                    ids.filter_map(|f| f.resource.id.parse().ok()).collect(),
                )
            })
            .collect();
        for fw in &cx.snapshot.firewalls {
            let covered: Vec<&Droplet> = cx
                .snapshot
                .droplets
                .iter()
                .filter(|d| fw.covers(d))
                .collect();
            let edits: Vec<RuleEdit> = fw
                .inbound_rules
                .iter()
                .filter_map(|r| edit_for(cx, r, &covered, &failing))
                .collect();
            if !edits.is_empty() {
                self.plan_firewall(cx, fw, &covered, &failing, edits, out);
            }
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
                for edit in &p.edits {
                    let before = json!({"rule": edit.before});
                    cx.ledger
                        .intend(&Entry::for_step(
                            s,
                            before,
                            json!({"rules": edit.after}),
                            String::new(),
                        ))
                        .await?;
                    let result = match narrow(cx, &p.firewall_id, edit).await {
                        Ok(text) => text.to_string(),
                        Err(e) => format!("failed: {e}"),
                    };
                    let mut entry = Entry::for_step(
                        s,
                        json!({"rule": edit.before}),
                        json!({"rules": edit.after}),
                        result,
                    );
                    let rule = edit.fixes.join(",");
                    entry.rule = &rule;
                    changes.push(cx.ledger.record(entry).await?);
                }
            }
            Ok(changes)
        })
    }
}

impl NarrowRules {
    /// One step for the firewall's edits, unless narrowing it is refused.
    fn plan_firewall(
        &self,
        cx: &PlanContext<'_>,
        fw: &Firewall,
        covered: &[&Droplet],
        failing: &Failing,
        edits: Vec<RuleEdit>,
        out: &mut Planner,
    ) {
        let fixes: BTreeSet<String> = edits.iter().flat_map(|e| e.fixes.iter().cloned()).collect();
        let affected: Vec<String> = covered
            .iter()
            .filter(|d| {
                fixes
                    .iter()
                    .any(|r| failing.get(r.as_str()).is_some_and(|s| s.contains(&d.id)))
            })
            .map(|d| d.id.to_string())
            .collect();
        let description = describe(fw, &edits);
        let refusal = refusal(cx, fw, covered, &fixes, &edits);
        let ok = refusal.is_none() && out.take(ResourceType::Firewall, &fw.id);
        for id in &affected {
            for rule in &fixes {
                match &refusal {
                    Some(why) => out.note(rule, id, Some(description.clone()), Some(why.clone())),
                    None => out.note_planned(rule, id, &description, ok),
                }
            }
        }
        if refusal.is_some() {
            return;
        }
        let rule = fixes.into_iter().collect::<Vec<_>>().join(",");
        let params = Params {
            firewall_id: fw.id.clone(),
            edits,
        };
        let resource = (ResourceType::Firewall, fw.id.clone());
        out.push(step(
            self,
            "narrow-firewall-rules",
            resource,
            &rule,
            description,
            ok,
            &params,
        ));
    }
}

/// Why the firewall must not be narrowed: SSH would be cut off, a Droplet outside the run
/// or exempt is covered, or the rules would pass the platform's limit.
fn refusal(
    cx: &PlanContext<'_>,
    fw: &Firewall,
    covered: &[&Droplet],
    fixes: &BTreeSet<String>,
    edits: &[RuleEdit],
) -> Option<String> {
    let outside_scope: Vec<String> = covered
        .iter()
        .filter(|d| !cx.scope.includes(d.id) || cx.is_exempt(d))
        .map(|d| format!("{} ({})", d.name, d.id))
        .collect();
    let new_count = fw.rule_count() + edits.iter().map(|e| e.after.len()).sum::<usize>();
    if cx.policy.management.cidrs.is_empty() && fixes.contains(FIREWALL_SSH_OPEN) {
        Some("management.cidrs is empty, so narrowing SSH would cut everyone off".into())
    } else if !outside_scope.is_empty() {
        Some(format!(
            "not changed: firewall {} also covers Droplets outside this run or exempt: {}",
            fw.name,
            outside_scope.join(", ")
        ))
    } else if new_count > rules::firewall::MAX_RULES {
        Some(format!(
            "not changed: the narrowed rules would be added before the old ones are removed, and {new_count} rules exceed the limit of {}",
            rules::firewall::MAX_RULES
        ))
    } else {
        None
    }
}

fn describe(fw: &Firewall, edits: &[RuleEdit]) -> String {
    let one = |e: &RuleEdit| {
        let after = if e.after.is_empty() {
            "nothing (removed)".to_string()
        } else {
            let quoted: Vec<String> = e
                .after
                .iter()
                .map(|a| format!("\"{}\"", rule_text(a)))
                .collect();
            quoted.join(", ")
        };
        format!(
            "on firewall {} ({}): replace rule \"{}\" by {after}",
            fw.name,
            fw.id,
            rule_text(&e.before)
        )
    };
    edits.iter().map(one).collect::<Vec<_>>().join("; ")
}

/// The edit for one rule: its offending ports narrowed to the management ranges, its other
/// ports kept as they were. None when the rule offends no failing Droplet it covers.
fn edit_for(
    cx: &PlanContext<'_>,
    r: &InboundRule,
    covered: &[&Droplet],
    failing: &Failing,
) -> Option<RuleEdit> {
    // Never remove, narrow or rewrite a deny rule (nor one of an action this tool does not
    // know): only allow rules are edited.
    if r.protocol == Protocol::Icmp || r.action != RuleAction::Allow {
        return None;
    }
    let range = PortRange::parse_rule(&r.ports).ok().flatten()?;
    let mgmt = &cx.policy.management.cidrs;
    let outside = |a: &String| Cidr::parse(a).map(|c| !c.inside_any(mgmt)).unwrap_or(true);
    if !r.sources.addresses.iter().any(outside) {
        return None;
    }
    let (offending, fixes) = offending_ports(cx, r, range, covered, failing);
    if offending.is_empty() {
        return None;
    }
    let mut after: Vec<InboundRule> = range
        .uncovered_by(&offending)
        .iter()
        .map(|keep| InboundRule {
            ports: ports_text(keep),
            ..r.clone()
        })
        .collect();
    let mut narrowed = r.sources.clone();
    narrowed.addresses = r
        .sources
        .addresses
        .iter()
        .filter(|a| !outside(a))
        .cloned()
        .chain(mgmt.iter().map(Cidr::to_string))
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    if !narrowed.is_empty() {
        after.extend(offending.iter().map(|p| InboundRule {
            action: r.action.clone(),
            protocol: r.protocol,
            ports: ports_text(p),
            sources: narrowed.clone(),
        }));
    }
    Some(RuleEdit {
        before: r.clone(),
        after,
        fixes,
    })
}

/// The rule's ports that offend a failing Droplet it covers (merged), and the rules fixed.
fn offending_ports(
    cx: &PlanContext<'_>,
    r: &InboundRule,
    range: PortRange,
    covered: &[&Droplet],
    failing: &Failing,
) -> (Vec<PortRange>, Vec<String>) {
    let policy = cx.policy;
    let covers_failing = |rule: &str| {
        covered
            .iter()
            .any(|d| failing.get(rule).is_some_and(|s| s.contains(&d.id)))
    };
    let mut offending = Vec::new();
    let mut fixes = Vec::new();
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
    (merge(offending), fixes)
}

/// Sorts port ranges and merges the overlapping and adjacent ones.
fn merge(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut merged: Vec<PortRange> = Vec::new();
    for p in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(p.lo) <= u32::from(last.hi) + 1 => last.hi = last.hi.max(p.hi),
            _ => merged.push(p),
        }
    }
    merged
}

fn same_rule(a: &InboundRule, b: &InboundRule) -> bool {
    fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
        v.iter().cloned().collect()
    }
    let ports = |p: &str| PortRange::parse_rule(p).ok().flatten();
    let (x, y) = (&a.sources, &b.sources);
    a.action == b.action
        && a.protocol == b.protocol
        && ports(&a.ports) == ports(&b.ports)
        && set(&x.addresses) == set(&y.addresses)
        && set(&x.tags) == set(&y.tags)
        && set(&x.droplet_ids) == set(&y.droplet_ids)
        && set(&x.load_balancer_uids) == set(&y.load_balancer_uids)
        && set(&x.kubernetes_ids) == set(&y.kubernetes_ids)
}

/// Adds the narrowed rules first, then removes the old one, re-reading the firewall so that
/// a repeat finds the work done.
async fn narrow(
    cx: &ApplyContext<'_>,
    firewall_id: &str,
    edit: &RuleEdit,
) -> Result<&'static str, ApiError> {
    let fw = cx.client.get_firewall(firewall_id).await?;
    if !fw.inbound_rules.iter().any(|r| same_rule(r, &edit.before)) {
        return Ok("ok (already narrowed)");
    }
    let missing: Vec<InboundRule> = edit
        .after
        .iter()
        .filter(|a| !fw.inbound_rules.iter().any(|r| same_rule(r, a)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let add = FirewallRules {
            inbound_rules: missing,
            outbound_rules: vec![],
        };
        cx.client.add_firewall_rules(firewall_id, &add).await?;
    }
    let remove = FirewallRules {
        inbound_rules: vec![edit.before.clone()],
        outbound_rules: vec![],
    };
    cx.client
        .remove_firewall_rules(firewall_id, &remove)
        .await?;
    Ok("ok")
}
