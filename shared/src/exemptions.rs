//! Accepted risks that expire: the policy's `[[exemptions]]`.
//!
//! An exemption names Droplets (ids or name globs), tags, or both, optionally the rules it
//! covers, and carries a reason, an owner and an expiry. While it holds, the matching findings
//! are reported with status `exempt` (neither `fail` nor `unknown`, never remediated); once it
//! has expired the finding is a `fail` again and its detail says which exemption expired.
//! Applied after evaluation, as a post-pass over the findings (pure, with the time given).

use chrono::{DateTime, Duration, Utc};

use crate::digitalocean::{Droplet, Firewall};
pub use crate::policy::Exemption;
use crate::report::{ExpiringExemption, Finding, FindingKey, ResourceType, Status};

/// How far ahead an exemption's expiry is announced in reports and notifications.
pub const EXPIRY_NOTICE_DAYS: i64 = 7;

/// Applies the exemptions to the findings at `now`: a finding on a Droplet that an exemption in
/// force covers becomes `exempt` with its `exemption`; one that only expired exemptions cover
/// stays as it is, its detail naming the exemption that expired (the latest) and when.
pub fn apply(
    findings: &mut [Finding],
    droplets: &[Droplet],
    exemptions: &[Exemption],
    now: DateTime<Utc>,
) {
    if exemptions.is_empty() {
        return;
    }
    for f in findings.iter_mut() {
        if f.resource.kind != ResourceType::Droplet || f.status == Status::Exempt {
            continue;
        }
        let Some(d) = droplets.iter().find(|d| d.id.to_string() == f.resource.id) else {
            continue;
        };
        let covering = exemptions.iter().filter(|e| e.matches(&f.rule, d));
        let (active, expired): (Vec<&Exemption>, Vec<&Exemption>) =
            covering.partition(|e| e.in_force(now));
        if let Some(e) = active.first() {
            f.status = Status::Exempt;
            f.exemption = Some(e.reference());
        } else if let Some(e) = expired.iter().max_by_key(|e| e.expires_at()) {
            f.detail.push_str(&format!(
                " (exemption expired {}: owner {}, reason {:?})",
                e.expires, e.owner, e.reason
            ));
        }
    }
}

/// The exemptions in force at `now` that expire within [`EXPIRY_NOTICE_DAYS`], soonest first.
pub fn expiring(exemptions: &[Exemption], now: DateTime<Utc>) -> Vec<ExpiringExemption> {
    let horizon = now + Duration::days(EXPIRY_NOTICE_DAYS);
    let mut soon: Vec<&Exemption> = exemptions
        .iter()
        .filter(|e| e.in_force(now) && e.expires_at().is_some_and(|t| t <= horizon))
        .collect();
    soon.sort_by_key(|e| e.expires_at());
    soon.into_iter().map(Exemption::listing).collect()
}

/// The firewall-narrowing findings (`firewall.ssh-open`, `firewall.forbidden-port`) that must
/// not be acted on because a firewall covering their Droplet also covers a Droplet whose
/// finding of the same rule is exempt: narrowing the shared rule would change the exempted
/// Droplet too. Returns each such finding's key and why.
pub fn shielded(findings: &[Finding], firewalls: &[Firewall], droplets: &[Droplet]) -> Vec<Held> {
    let droplet = |id: &str| droplets.iter().find(|d| d.id.to_string() == id);
    let exempt: Vec<(&str, &Droplet)> = findings
        .iter()
        .filter(|f| f.status == Status::Exempt && NARROWING.contains(&f.rule.as_str()))
        .filter_map(|f| Some((f.rule.as_str(), droplet(&f.resource.id)?)))
        .collect();
    let mut out = Vec::new();
    for f in findings.iter().filter(|f| f.status == Status::Fail) {
        let Some(d) = droplet(&f.resource.id) else {
            continue;
        };
        let shared = firewalls.iter().filter(|fw| fw.covers(d)).find_map(|fw| {
            exempt
                .iter()
                .find(|(rule, other)| *rule == f.rule && other.id != d.id && fw.covers(other))
                .map(|(_, other)| (fw, other))
        });
        if let Some((fw, other)) = shared {
            let why = format!(
                "firewall {} ({}) also covers Droplet {} ({}), whose {} finding is exempt",
                fw.name, fw.id, other.name, other.id, f.rule
            );
            out.push((FindingKey::of(f), why));
        }
    }
    out
}

/// A finding kept from the planner, and why.
pub type Held = (FindingKey, String);

const NARROWING: [&str; 2] = [
    crate::rules::FIREWALL_SSH_OPEN,
    crate::rules::FIREWALL_FORBIDDEN_PORT,
];

/// Writes `why` as the result of the [`shielded`] findings.
pub fn annotate(findings: &mut [Finding], shielded: &[Held]) {
    for f in findings.iter_mut() {
        let key = FindingKey::of(f);
        if let Some((_, why)) = shielded.iter().find(|(k, _)| *k == key) {
            f.remediation.result = Some(why.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Mode, Policy};
    use crate::report::{Remediation, Resource, Severity};

    pub(crate) fn finding(rule: &str, id: u64, name: &str) -> Finding {
        Finding {
            rule: rule.into(),
            status: Status::Fail,
            severity: Severity::High,
            resource: Resource {
                kind: ResourceType::Droplet,
                id: id.to_string(),
                name: name.into(),
            },
            detail: "port 8443 open to the world".into(),
            remediation: Remediation {
                mode: Mode::Audit,
                planned: None,
                applied: false,
                result: None,
            },
            exemption: None,
            first_seen: None,
        }
    }

    fn droplet(id: u64, name: &str, tags: &[&str]) -> Droplet {
        serde_json::from_value(serde_json::json!({"id": id, "name": name, "tags": tags}))
            .expect("droplet")
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text, "p.toml").expect("policy parses")
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t)
            .expect("time")
            .with_timezone(&Utc)
    }

    const POLICY: &str = r#"
[[exemptions]]
droplets = ["4011", "legacy-*"]
rules = ["firewall.world-open"]
reason = "vendor appliance needs 8443 open; replacement planned"
owner = "platform-team"
expires = 2027-01-31

[[exemptions]]
tags = ["vendor-appliance"]
reason = "old deal"
owner = "sec@example.com"
expires = 2026-11-01T12:00:00+02:00
"#;

    #[test]
    fn a_date_holds_through_that_day_and_a_date_time_to_its_instant() {
        let p = policy(POLICY);
        assert_eq!(
            p.exemptions[0].expires_at(),
            Some(at("2027-02-01T00:00:00Z"))
        );
        assert_eq!(
            p.exemptions[1].expires_at(),
            Some(at("2026-11-01T10:00:00Z"))
        );
        assert!(p.exemptions[0].in_force(at("2027-01-31T23:59:59Z")));
        assert!(!p.exemptions[0].in_force(at("2027-02-01T00:00:00Z")));
    }

    #[test]
    fn active_exemption_by_id_and_by_glob_makes_findings_exempt() {
        let p = policy(POLICY);
        let droplets = [
            droplet(4011, "appliance", &[]),
            droplet(7, "legacy-db", &[]),
            droplet(8, "web", &[]),
        ];
        let mut fs = vec![
            finding("firewall.world-open", 4011, "appliance"),
            finding("firewall.world-open", 7, "legacy-db"),
            finding("firewall.world-open", 8, "web"),
            finding("firewall.ssh-open", 7, "legacy-db"),
        ];
        apply(
            &mut fs,
            &droplets,
            &p.exemptions,
            at("2026-12-01T00:00:00Z"),
        );
        let statuses: Vec<Status> = fs.iter().map(|f| f.status).collect();
        assert_eq!(
            statuses,
            [Status::Exempt, Status::Exempt, Status::Fail, Status::Fail],
            "id and glob match; another Droplet and another rule do not"
        );
        let e = fs[1].exemption.as_ref().expect("exemption");
        assert_eq!(e.owner, "platform-team");
        assert_eq!(e.expires, "2027-01-31");
        assert!(e.reason.starts_with("vendor appliance"));
    }

    #[test]
    fn an_expired_exemption_no_longer_applies_and_the_detail_says_so() {
        let p = policy(POLICY);
        let droplets = [droplet(9, "vendor-1", &["vendor-appliance"])];
        let mut fs = vec![finding("firewall.ssh-open", 9, "vendor-1")];
        apply(
            &mut fs,
            &droplets,
            &p.exemptions,
            at("2026-10-31T00:00:00Z"),
        );
        assert_eq!(fs[0].status, Status::Exempt, "before expiry, by tag");
        let mut fs = vec![finding("firewall.ssh-open", 9, "vendor-1")];
        apply(
            &mut fs,
            &droplets,
            &p.exemptions,
            at("2026-11-01T10:00:00Z"),
        );
        assert_eq!(fs[0].status, Status::Fail);
        assert!(fs[0].exemption.is_none());
        assert!(
            fs[0]
                .detail
                .contains("exemption expired 2026-11-01T12:00:00+02:00")
                && fs[0].detail.contains("sec@example.com"),
            "{}",
            fs[0].detail
        );
    }

    #[test]
    fn exemptions_expiring_within_seven_days_are_listed_soonest_first() {
        let p = policy(POLICY);
        let soon = expiring(&p.exemptions, at("2026-10-28T00:00:00Z"));
        assert_eq!(soon.len(), 1);
        assert_eq!(soon[0].exemption.owner, "sec@example.com");
        assert_eq!(soon[0].tags, ["vendor-appliance"]);
        assert!(expiring(&p.exemptions, at("2026-10-20T00:00:00Z")).is_empty());
        assert!(
            expiring(&p.exemptions, at("2026-11-02T00:00:00Z")).is_empty(),
            "expired ones are not 'expiring'"
        );
        let late = expiring(&p.exemptions, at("2027-01-30T00:00:00Z"));
        assert_eq!(late[0].exemption.owner, "platform-team");
    }

    #[test]
    fn a_firewall_shared_with_an_exempted_droplet_is_not_narrowed_for_the_others() {
        let p = policy(
            "[[exemptions]]\ndroplets = [\"legacy-*\"]\nreason = \"r\"\nowner = \"o\"\nexpires = 2099-01-01\n",
        );
        let droplets = [
            droplet(1, "legacy-1", &[]),
            droplet(2, "web-2", &["web"]),
            droplet(3, "web-3", &[]),
        ];
        let fw = |id: &str, ids: &[u64], tags: &[&str]| -> Firewall {
            serde_json::from_value(serde_json::json!({
                "id": id, "name": format!("fw-{id}"), "droplet_ids": ids, "tags": tags,
                "inbound_rules": [], "outbound_rules": []
            }))
            .expect("firewall")
        };
        let firewalls = [fw("shared", &[1], &["web"]), fw("own", &[3], &[])];
        let mut fs = vec![
            finding("firewall.ssh-open", 1, "legacy-1"),
            finding("firewall.ssh-open", 2, "web-2"),
            finding("firewall.ssh-open", 3, "web-3"),
            finding("firewall.world-open", 2, "web-2"),
        ];
        apply(
            &mut fs,
            &droplets,
            &p.exemptions,
            at("2026-12-01T00:00:00Z"),
        );
        let kept = shielded(&fs, &firewalls, &droplets);
        let keys: Vec<String> = kept.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys,
            ["firewall.ssh-open|droplet|2"],
            "only the Droplet sharing fw-shared, only that rule"
        );
        assert!(
            kept[0].1.contains("fw-shared") && kept[0].1.contains("legacy-1"),
            "{}",
            kept[0].1
        );
        annotate(&mut fs, &kept);
        assert_eq!(
            fs[1].remediation.result.as_deref(),
            Some(kept[0].1.as_str())
        );
    }
}
