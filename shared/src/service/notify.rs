//! Optional notifications to a Slack-compatible incoming webhook.

use std::time::Duration;

use crate::report::{FindingKey, Report};

use super::ServiceError;

/// Posts `{"text": ...}` to an incoming-webhook URL.
pub struct Notifier {
    url: reqwest::Url,
    http: reqwest::Client,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is a credential: show only its host.
        f.debug_struct("Notifier")
            .field("host", &self.url.host_str())
            .finish()
    }
}

impl Notifier {
    pub fn new(url: &str) -> Result<Self, ServiceError> {
        let url = reqwest::Url::parse(url).map_err(|e| {
            ServiceError::Config(format!("DROPLETGUARD_SLACK_WEBHOOK_URL is not a URL: {e}"))
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ServiceError::Config(e.to_string()))?;
        Ok(Notifier { url, http })
    }

    /// The message: what changed, the new critical findings, and a link to the run's HTML
    /// report when there is one.
    pub fn text(report: &Report, new_critical: &[&FindingKey], link: Option<&str>) -> String {
        let s = &report.summary;
        let mut lines = vec![format!(
            "dropletguard {} run {}: {} Droplets audited, {} fail, {} unknown; {} changes applied.",
            report.run.trigger, report.run.id, s.droplets, s.fail, s.unknown, s.changes
        )];
        for c in report.changes.iter().take(10) {
            lines.push(format!(
                "• {} {} {}: {}",
                c.action,
                c.resource.kind.as_str(),
                c.resource.id,
                c.result
            ));
        }
        if report.changes.len() > 10 {
            lines.push(format!(
                "• … and {} more changes",
                report.changes.len() - 10
            ));
        }
        lines.extend(resolved_and_expiring(report));
        if !new_critical.is_empty() {
            lines.push(format!("New critical findings ({}):", new_critical.len()));
            for key in new_critical.iter().take(10) {
                let detail = report
                    .findings
                    .iter()
                    .find(|f| FindingKey::of(f) == **key)
                    .map(|f| {
                        format!(
                            "{} on {} {} ({})",
                            f.rule,
                            f.resource.kind.as_str(),
                            f.resource.name,
                            f.resource.id
                        )
                    })
                    .unwrap_or_else(|| key.to_string());
                lines.push(format!("• {detail}"));
            }
        }
        if let Some(url) = link {
            lines.push(format!("Report: {url}"));
        }
        lines.join("\n")
    }

    /// Sends the run's message (see [`Notifier::text`]).
    pub async fn send(
        &self,
        report: &Report,
        new_critical: &[&FindingKey],
        link: Option<&str>,
    ) -> Result<(), String> {
        let body = serde_json::json!({ "text": Notifier::text(report, new_critical, link) });
        let r = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "notification to {}: {}",
                    self.url.host_str().unwrap_or("?"),
                    e.without_url()
                )
            })?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "notification answered HTTP {}",
                r.status().as_u16()
            ))
        }
    }
}

/// Lines for the findings resolved since the previous full run and the exemptions that expire
/// within 7 days (at most 10 of each).
fn resolved_and_expiring(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if !report.resolved.is_empty() {
        lines.push(format!(
            "Resolved since the previous full run ({}):",
            report.resolved.len()
        ));
        for e in report.resolved.iter().take(10) {
            lines.push(format!(
                "• {} on {} {} ({}), open since {}",
                e.rule,
                e.resource.kind.as_str(),
                e.resource.name,
                e.resource.id,
                e.first_seen
            ));
        }
    }
    if !report.exemptions_expiring.is_empty() {
        lines.push(format!(
            "Exemptions expiring within 7 days ({}):",
            report.exemptions_expiring.len()
        ));
        for e in report.exemptions_expiring.iter().take(10) {
            lines.push(format!(
                "• expires {} (owner {}): {}",
                e.exemption.expires, e.exemption.owner, e.exemption.reason
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RunInfo;

    #[test]
    fn the_message_names_resolved_findings_and_exemptions_about_to_expire() {
        let run = RunInfo {
            id: "r1".into(),
            trigger: "schedule".into(),
            started_at: String::new(),
            finished_at: String::new(),
            api_requests: 3,
            complete: true,
            cap_reached: false,
            dry_run: false,
            incomplete: Vec::new(),
            built_on_full_read: None,
            stopped_early: false,
            planned: None,
        };
        let mut report = Report::new(run, &[1], Vec::new(), Vec::new());
        report.resolved = serde_json::from_value(serde_json::json!([{
            "rule": "firewall.ssh-open", "severity": "high", "status": "fail",
            "resource": {"type": "droplet", "id": "7", "name": "web-7"},
            "first_seen": "2026-11-29T10:00:00Z", "last_seen": "2026-11-30T09:00:00Z",
            "resolved": "2026-11-30T10:00:00Z"
        }]))
        .expect("episodes");
        report.exemptions_expiring = serde_json::from_value(serde_json::json!([{
            "reason": "vendor appliance", "owner": "platform-team", "expires": "2026-12-03",
            "droplets": ["4011"], "tags": [], "rules": []
        }]))
        .expect("exemptions");
        let text = Notifier::text(&report, &[], None);
        assert!(
            text.contains("Resolved since the previous full run (1):"),
            "{text}"
        );
        assert!(
            text.contains(
                "firewall.ssh-open on droplet web-7 (7), open since 2026-11-29T10:00:00Z"
            ),
            "{text}"
        );
        assert!(
            text.contains("Exemptions expiring within 7 days (1):"),
            "{text}"
        );
        assert!(
            text.contains("expires 2026-12-03 (owner platform-team): vendor appliance"),
            "{text}"
        );
    }
}
