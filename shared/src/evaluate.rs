//! Evaluation: an account snapshot and a policy in, findings out. Pure: no I/O.

use std::collections::BTreeSet;

use crate::digitalocean::Droplet;
use crate::policy::Policy;
use crate::report::{Finding, ResourceType};
use crate::rules::{self, account, firewall, ssh, vpc, Ctx};
use crate::snapshot::{Scope, Snapshot};

/// Evaluates the policy over the Droplets in scope. Findings are sorted by resource, then rule.
/// From [`PARALLEL_FROM`] Droplets on, the per-Droplet checks run on as many threads as the
/// machine has cores (at most 8).
pub fn evaluate(snapshot: &Snapshot, policy: &Policy, scope: &Scope) -> Vec<Finding> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    evaluate_on(snapshot, policy, scope, threads)
}

/// [`evaluate`] on at most `threads` threads.
fn evaluate_on(
    snapshot: &Snapshot,
    policy: &Policy,
    scope: &Scope,
    threads: usize,
) -> Vec<Finding> {
    let ctx = Ctx::new(snapshot, policy);
    let droplets: Vec<&Droplet> = snapshot
        .droplets
        .iter()
        .filter(|d| scope.includes(d.id))
        .collect();
    let (mut out, relevant_fws) = if droplets.len() >= PARALLEL_FROM && threads > 1 {
        let chunk = droplets.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = droplets
                .chunks(chunk)
                .map(|part| s.spawn(|| check_droplets(&ctx, part, scope)))
                .collect();
            let mut all = (Vec::new(), BTreeSet::new());
            for part in parts {
                let (findings, fws) = part
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                all.0.extend(findings);
                all.1.extend(fws);
            }
            all
        })
    } else {
        check_droplets(&ctx, &droplets, scope)
    };
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

/// Droplets in scope at or above which [`evaluate`] checks them on several threads.
pub const PARALLEL_FROM: usize = 2_000;

/// The per-Droplet checks of `droplets`: their findings, and the firewalls that cover them.
fn check_droplets(
    ctx: &Ctx,
    droplets: &[&Droplet],
    scope: &Scope,
) -> (Vec<Finding>, BTreeSet<usize>) {
    let mut out = Vec::new();
    let mut relevant_fws = BTreeSet::new();
    for d in droplets {
        let first = out.len();
        let fws = ctx.covering(d);
        firewall::check_droplet(ctx, d, &fws, &mut out);
        vpc::check_droplet(ctx, d, &mut out);
        if !scope.no_ssh {
            ssh::check_droplet(ctx, d, &fws, &mut out);
        }
        if d.has_tag(&ctx.policy.remediation.quarantine_tag) {
            mark_quarantined(&mut out[first..], &ctx.policy.remediation.quarantine_tag);
        }
        relevant_fws.extend(fws);
    }
    (out, relevant_fws)
}

/// Says on each finding of a quarantined Droplet (one that carries `remediation.quarantine_tag`)
/// that it is quarantined, so a reader knows the Droplet is already isolated.
fn mark_quarantined(findings: &mut [Finding], tag: &str) {
    for f in findings {
        f.detail.push_str(&format!(
            " (the Droplet is quarantined: tag {tag} attaches the quarantine firewall)"
        ));
    }
}

/// How many of the Droplets `ids` carry the quarantine tag (`summary.quarantined`).
pub fn quarantined(snapshot: &Snapshot, policy: &Policy, ids: &[u64]) -> usize {
    let ids: std::collections::HashSet<u64> = ids.iter().copied().collect();
    snapshot
        .droplets
        .iter()
        .filter(|d| ids.contains(&d.id) && d.has_tag(&policy.remediation.quarantine_tag))
        .count()
}

/// Stable order: account, then Droplets by id, then firewalls; rules in catalogue order.
pub fn sort_findings(findings: &mut [Finding]) {
    // Keys borrow from the findings: a comparison allocates nothing.
    fn key(f: &Finding) -> (u8, u64, &str, usize) {
        (
            match f.resource.kind {
                ResourceType::Account => 0,
                ResourceType::Droplet => 1,
                ResourceType::Vpc => 2,
                ResourceType::Firewall => 3,
            },
            f.resource.id.parse::<u64>().unwrap_or(u64::MAX),
            &f.resource.id,
            rules::order(&f.rule),
        )
    }
    findings.sort_by(|a, b| key(a).cmp(&key(b)));
}

#[cfg(test)]
mod tests {
    use super::{evaluate, evaluate_on, Scope, PARALLEL_FROM};
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

    #[test]
    fn several_threads_find_what_one_finds() {
        use crate::digitalocean::Protocol;
        let mut snapshot = super::Snapshot::default();
        let world = ["0.0.0.0/0", "::/0"];
        let n = PARALLEL_FROM as u64 + 501;
        for id in 1..=n {
            let tags: Vec<String> = match id % 4 {
                0 => vec![],
                1 => vec![
                    "web".into(),
                    format!("env:{}", ["prod", "staging"][(id % 2) as usize]),
                ],
                2 => vec!["db".into(), format!("tenant:t{}", id % 3)],
                _ => vec!["web".into()],
            };
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            snapshot.droplets.push(examples::droplet(
                id,
                &tags,
                Some(["vpc-a", "vpc-b"][(id % 2) as usize]),
            ));
        }
        snapshot.firewalls = vec![
            examples::firewall(
                "fw-web",
                vec![examples::inbound(Protocol::Tcp, "22", &world)],
                &[],
                &["web"],
            ),
            examples::firewall(
                "fw-db",
                vec![examples::inbound(Protocol::Tcp, "5432", &world)],
                &[],
                &["db"],
            ),
        ];
        // Firewalls by id over a few Droplets each: many distinct covering sets.
        for (i, ids) in (1..=n).collect::<Vec<_>>().chunks(7).enumerate().take(300) {
            let rules = vec![examples::inbound(
                Protocol::Tcp,
                &(8000 + i).to_string(),
                &world,
            )];
            snapshot
                .firewalls
                .push(examples::firewall(&format!("fw-{i}"), rules, ids, &[]));
        }
        let policy = examples::policy();
        let one = evaluate_on(&snapshot, &policy, &Scope::all(), 1);
        let rules: std::collections::BTreeSet<&str> = one.iter().map(|f| f.rule.as_str()).collect();
        assert!(rules.len() >= 4, "a varied fleet: {rules:?}");
        for threads in [2, 3, 8] {
            assert_eq!(
                evaluate_on(&snapshot, &policy, &Scope::all(), threads),
                one,
                "{threads} threads"
            );
        }
    }
}
