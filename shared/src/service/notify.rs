//! Optional notifications to a Slack-compatible incoming webhook.

use std::time::Duration;

use crate::report::Report;

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
    pub fn text(report: &Report, new_critical: &[&String], link: Option<&str>) -> String {
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
        if !new_critical.is_empty() {
            lines.push(format!("New critical findings ({}):", new_critical.len()));
            for key in new_critical.iter().take(10) {
                let detail = report
                    .findings
                    .iter()
                    .find(|f| {
                        format!("{}:{}:{}", f.rule, f.resource.kind.as_str(), f.resource.id)
                            == **key
                    })
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

    pub async fn send(
        &self,
        report: &Report,
        new_critical: &[&String],
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
