//! Grace before acting: a finding is fixed only once it has been open for the rule's grace
//! period (`[remediation] grace`, `[rules."<id>"] grace`), so that automation does not fight a
//! person in the middle of a change. Pure: the time is given. Incident response ignores it.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::policy::{Mode, Policy};
use crate::report::{Finding, Status};

/// Until when `finding` is held back: `Some(first_seen + grace)` while that is still ahead of
/// `now`, else `None` (act now). Only `fail` findings of `enforce` rules with a grace period
/// are held; a finding without `first_seen` counts as first seen `now`.
pub fn hold(finding: &Finding, policy: &Policy, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if finding.status != Status::Fail || policy.mode_for(&finding.rule) != Mode::Enforce {
        return None;
    }
    let grace = chrono::Duration::from_std(policy.grace_for(&finding.rule)).ok()?;
    if grace.is_zero() {
        return None;
    }
    let first = finding
        .first_seen
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    let until = first + grace;
    (until > now).then_some(until)
}

/// A finding held back: `(rule, resource id, until)`.
pub type Held = (String, String, DateTime<Utc>);

/// The findings the planner may act on now (every finding except those [`hold`] holds back),
/// and the held ones with until when.
pub fn split(
    findings: &[Finding],
    policy: &Policy,
    now: DateTime<Utc>,
) -> (Vec<Finding>, Vec<Held>) {
    let mut actionable = Vec::with_capacity(findings.len());
    let mut held = Vec::new();
    for f in findings {
        match hold(f, policy, now) {
            Some(until) => held.push((f.rule.clone(), f.resource.id.clone(), until)),
            None => actionable.push(f.clone()),
        }
    }
    (actionable, held)
}

/// Marks held findings (matched by rule and resource) as planned "waiting until …".
pub fn annotate(findings: &mut [Finding], held: &[Held]) {
    for f in findings.iter_mut() {
        let Some((_, _, until)) = held
            .iter()
            .find(|(rule, id, _)| *rule == f.rule && *id == f.resource.id)
        else {
            continue;
        };
        let until = until.to_rfc3339_opts(SecondsFormat::Secs, true);
        f.remediation.planned = Some(format!(
            "waiting until {until}: within the grace period (first seen {})",
            f.first_seen.as_deref().unwrap_or("now")
        ));
        f.remediation.result = Some(format!("not applied: grace period until {until}"));
    }
}
