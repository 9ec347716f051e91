//! Evaluation: an account snapshot and a policy in, findings out. Pure: no I/O.

use std::collections::BTreeSet;

use crate::policy::Policy;
use crate::report::{Finding, ResourceType};
use crate::rules::{self, account, firewall, ssh, vpc, Ctx};
pub use crate::snapshot::{Scope, Snapshot, SshObservation};

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

#[cfg(test)]
mod tests {
    use super::{evaluate, Scope};
    use crate::report::Status;
    use crate::rules::examples;

    #[test]
    fn every_rule_has_positive_and_negative_examples() {
        let all = examples::all();
        for r in crate::rules::RULES.iter().filter(|r| !r.needs_ssh) {
            assert!(
                all.iter().any(|e| e.rule == r.id && e.fails),
                "{} has no failing example",
                r.id
            );
            assert!(
                all.iter().any(|e| e.rule == r.id && !e.fails),
                "{} has no passing example",
                r.id
            );
        }
    }

    #[test]
    fn examples_evaluate_as_they_say() {
        let mut wrong = Vec::new();
        for e in examples::all() {
            let findings = evaluate(&e.snapshot, &e.policy, &Scope::all());
            let target = examples::target(e.rule);
            let failed = findings
                .iter()
                .any(|f| f.rule == e.rule && f.resource.id == target && f.status == Status::Fail);
            if failed != e.fails {
                wrong.push(format!(
                    "{} / {}: expected {}, findings: {:?}",
                    e.rule,
                    e.name,
                    if e.fails { "fail" } else { "pass" },
                    findings
                        .iter()
                        .map(|f| (&f.rule, &f.resource.id, &f.detail))
                        .collect::<Vec<_>>()
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "examples that evaluate wrongly:\n{}",
            wrong.join("\n")
        );
    }
}
