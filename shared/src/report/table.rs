//! The readable table (the CLI's default format).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use super::{Report, ResourceType};

/// Renders findings (most severe first), changes, and the summary.
pub fn to_table(report: &Report, width: Option<u16>) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        out.push_str("No findings: every audited Droplet is compliant.\n");
    } else {
        let mut findings: Vec<_> = report.findings.iter().collect();
        findings.sort_by(|a, b| {
            (
                a.severity,
                a.status,
                crate::catalog::order(&a.rule),
                &a.resource.id,
            )
                .cmp(&(
                    b.severity,
                    b.status,
                    crate::catalog::order(&b.rule),
                    &b.resource.id,
                ))
        });
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width.unwrap_or(160))
            .set_header(vec!["SEVERITY", "STATUS", "RULE", "RESOURCE", "DETAIL"]);
        for f in findings {
            let resource = match f.resource.kind {
                ResourceType::Account => "account".to_string(),
                k => format!("{} {} ({})", k.as_str(), f.resource.name, f.resource.id),
            };
            let mut detail = f.detail.clone();
            if let Some(p) = &f.remediation.planned {
                detail.push_str(&format!("\n→ plan: {p}"));
            }
            if let Some(r) = &f.remediation.result {
                detail.push_str(&format!(
                    "\n→ {}: {r}",
                    if f.remediation.applied {
                        "applied"
                    } else {
                        "not applied"
                    }
                ));
            }
            t.add_row(vec![
                f.severity.as_str().to_string(),
                f.status.as_str().to_string(),
                f.rule.clone(),
                resource,
                detail,
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if !report.changes.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width.unwrap_or(160))
            .set_header(vec!["CHANGED", "RESOURCE", "ACTION", "RESULT"]);
        for c in &report.changes {
            t.add_row(vec![
                c.at.clone(),
                format!("{} {}", c.resource.kind.as_str(), c.resource.id),
                c.action.clone(),
                c.result.clone(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    let s = &report.summary;
    out.push_str(&format!(
        "{} Droplets audited: {} pass, {} fail, {} unknown; {} findings; {} changes; {} API requests{}\n",
        s.droplets,
        s.pass,
        s.fail,
        s.unknown,
        report.findings.len(),
        s.changes,
        report.run.api_requests,
        if report.run.complete { "" } else { " (incomplete: some checks could not be made)" }
    ));
    out
}
