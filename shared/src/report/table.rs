//! The readable table (the CLI's default format). Every text from the account or the API is
//! shown [`printable`]: control characters escaped, so a name can neither drive the terminal
//! nor start a line of its own.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use super::{Finding, Report, ResourceType};
use crate::text::printable;

/// Renders findings (most severe first), changes, and the summary.
pub fn to_table(report: &Report, width: Option<u16>) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        if report.run.complete {
            out.push_str("No findings: every audited Droplet is compliant.\n");
        } else {
            out.push_str("No findings in what could be read; the run is incomplete.\n");
        }
    } else {
        out.push_str(&findings_table(report, width));
        out.push('\n');
    }
    if !report.changes.is_empty() {
        out.push_str(&changes_table(report, width));
        out.push('\n');
    }
    out.push_str(&summary_line(report));
    for why in &report.run.incomplete {
        out.push_str(&format!("incomplete: {}\n", printable(why)));
    }
    out
}

fn new_table(width: Option<u16>, header: Vec<&str>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width.unwrap_or(160))
        .set_header(header);
    t
}

fn findings_table(report: &Report, width: Option<u16>) -> String {
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
    let mut t = new_table(
        width,
        vec!["SEVERITY", "STATUS", "RULE", "RESOURCE", "DETAIL"],
    );
    for f in findings {
        t.add_row(vec![
            f.severity.as_str().to_string(),
            f.status.as_str().to_string(),
            printable(&f.rule).into_owned(),
            resource_cell(f),
            detail_cell(f),
        ]);
    }
    t.to_string()
}

fn resource_cell(f: &Finding) -> String {
    match f.resource.kind {
        ResourceType::Account => "account".to_string(),
        k => format!(
            "{} {} ({})",
            k.as_str(),
            printable(&f.resource.name),
            printable(&f.resource.id)
        ),
    }
}

/// The detail, then the plan and its result on lines of their own.
fn detail_cell(f: &Finding) -> String {
    let mut detail = printable(&f.detail).into_owned();
    if let Some(p) = &f.remediation.planned {
        detail.push_str(&format!("\n→ plan: {}", printable(p)));
    }
    if let Some(r) = &f.remediation.result {
        let applied = match (f.remediation.applied, &f.remediation.planned) {
            (true, _) => "applied",
            (false, Some(_)) => "not applied",
            (false, None) => "not planned",
        };
        detail.push_str(&format!("\n→ {applied}: {}", printable(r)));
    }
    detail
}

fn changes_table(report: &Report, width: Option<u16>) -> String {
    let mut t = new_table(width, vec!["CHANGED", "RESOURCE", "ACTION", "RESULT"]);
    for c in &report.changes {
        t.add_row(vec![
            printable(&c.at).into_owned(),
            format!("{} {}", c.resource.kind.as_str(), printable(&c.resource.id)),
            printable(&c.action).into_owned(),
            printable(&c.result).into_owned(),
        ]);
    }
    t.to_string()
}

fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    format!(
        "{} Droplets audited: {} pass, {} fail, {} unknown{}; {} findings; {}; {} API requests{}\n",
        s.droplets,
        s.pass,
        s.fail,
        s.unknown,
        quarantined_text(s.quarantined),
        report.findings.len(),
        changes_text(report),
        report.run.api_requests,
        match (report.run.complete, report.run.stopped_early) {
            (_, true) => " (stopped early: the rest of the hour's API requests are kept for incident response)".to_string(),
            (false, false) => " (incomplete: some checks could not be made)".to_string(),
            (true, false) => match &report.run.built_on_full_read {
                Some(at) => format!(" (a re-check over the full read of {at})"),
                None => String::new(),
            },
        }
    )
}

/// `, 2 quarantined` when some audited Droplets are quarantined.
fn quarantined_text(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} quarantined")
    }
}

/// `3 changes`, or for a dry run `dry run: 10 changes planned, 119 over the cap
/// (max_changes_per_run)`; a real run over the cap says how many it left.
fn changes_text(report: &Report) -> String {
    let planned = report.run.planned.unwrap_or_default();
    let over = if planned.over_cap > 0 {
        format!(", {} over the cap (max_changes_per_run)", planned.over_cap)
    } else {
        String::new()
    };
    if report.run.dry_run {
        format!("dry run: {} changes planned{over}", planned.within_cap)
    } else {
        format!("{} changes{over}", report.summary.changes)
    }
}
