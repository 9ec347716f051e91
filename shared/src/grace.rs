//! Grace before acting: a finding is fixed only once it has been open for the rule's grace
//! period (`[remediation] grace`, `[rules."<id>"] grace`), so that automation does not fight a
//! person in the middle of a change. Pure: the time is given. Incident response ignores it.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::policy::{Mode, Policy};
use crate::report::{Finding, FindingKey, Status};

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

/// A finding held back, and until when.
pub type Held = (FindingKey, DateTime<Utc>);

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
            Some(until) => held.push((FindingKey::of(f), until)),
            None => actionable.push(f.clone()),
        }
    }
    (actionable, held)
}

/// Marks held findings (matched by rule and resource) as planned "waiting until …".
pub fn annotate(findings: &mut [Finding], held: &[Held]) {
    for f in findings.iter_mut() {
        let key = FindingKey::of(f);
        let Some((_, until)) = held.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let until = until.to_rfc3339_opts(SecondsFormat::Secs, true);
        f.remediation.planned = Some(format!(
            "waiting until {until} (first seen {})",
            f.first_seen.as_deref().unwrap_or("now")
        ));
        f.remediation.result = Some("within the grace period".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Remediation, Resource, ResourceType, Severity};

    fn finding(rule: &str, status: Status, first_seen: Option<&str>) -> Finding {
        Finding {
            rule: rule.into(),
            status,
            severity: Severity::Critical,
            resource: Resource {
                kind: ResourceType::Droplet,
                id: "3".into(),
                name: "orphan".into(),
            },
            detail: String::new(),
            remediation: Remediation {
                mode: Mode::Enforce,
                planned: None,
                applied: false,
                result: None,
            },
            exemption: None,
            first_seen: first_seen.map(str::to_string),
        }
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t)
            .expect("time")
            .with_timezone(&Utc)
    }

    const POLICY: &str = "[remediation]\nmode = \"enforce\"\ngrace = \"2h\"\n[rules.\"vpc.default\"]\nmode = \"audit\"\n[rules.\"firewall.ssh-open\"]\ngrace = \"0m\"\n";

    #[test]
    fn held_until_first_seen_plus_grace_then_released() {
        let p = Policy::parse(POLICY, "p.toml").expect("policy");
        let f = finding(
            "firewall.missing",
            Status::Fail,
            Some("2026-11-30T10:00:00Z"),
        );
        assert_eq!(
            hold(&f, &p, at("2026-11-30T11:59:59Z")),
            Some(at("2026-11-30T12:00:00Z"))
        );
        assert_eq!(hold(&f, &p, at("2026-11-30T12:00:00Z")), None);
        let unseen = finding("firewall.missing", Status::Fail, None);
        assert_eq!(
            hold(&unseen, &p, at("2026-11-30T10:00:00Z")),
            Some(at("2026-11-30T12:00:00Z")),
            "never seen before: the grace starts now"
        );
    }

    #[test]
    fn only_enforced_fail_findings_of_rules_with_a_grace_are_held() {
        let p = Policy::parse(POLICY, "p.toml").expect("policy");
        let now = at("2026-11-30T10:00:00Z");
        assert_eq!(
            hold(&finding("firewall.ssh-open", Status::Fail, None), &p, now),
            None
        );
        assert_eq!(
            hold(&finding("vpc.default", Status::Fail, None), &p, now),
            None
        );
        assert_eq!(
            hold(&finding("firewall.missing", Status::Exempt, None), &p, now),
            None
        );
        assert_eq!(
            hold(
                &finding("firewall.missing", Status::Fail, None),
                &Policy::default(),
                now
            ),
            None,
            "no grace by default"
        );
        let fs = [
            finding("firewall.missing", Status::Fail, None),
            finding("firewall.ssh-open", Status::Fail, None),
        ];
        let (actionable, held) = split(&fs, &p, now);
        assert_eq!(actionable.len(), 1);
        assert_eq!(actionable[0].rule, "firewall.ssh-open");
        let mut fs = fs.to_vec();
        annotate(&mut fs, &held);
        assert_eq!(
            fs[0].remediation.planned.as_deref(),
            Some("waiting until 2026-11-30T12:00:00Z (first seen now)")
        );
        assert!(fs[1].remediation.planned.is_none());
    }
}
