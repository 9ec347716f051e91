//! Each run's HTML report, published to the state store: `reports/<date>/<run id>.html` for
//! every run, and `reports/latest.html` for the runs over the whole account.

use std::time::Duration;

use crate::report::Report;
use crate::report_page::to_html_by_vpc;
use crate::store::Store;

use super::{Deps, ServiceError};

/// The page of the latest run over the whole account.
pub const LATEST_KEY: &str = "reports/latest.html";

/// How long the link in a notification is valid: 7 days, the most S3 allows.
pub const LINK_VALIDITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// `reports/YYYY-MM-DD/<run id>.html`, dated by the run's start (UTC).
pub fn dated_key(report: &Report) -> String {
    let date = report
        .run
        .started_at
        .get(..10)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .unwrap_or("undated");
    format!("reports/{date}/{}.html", report.run.id)
}

/// Renders the run's page, stores the dated copy (and `reports/latest.html` when
/// `whole_account`), and returns a link to the dated copy: a presigned GET URL valid for
/// [`LINK_VALIDITY`] on S3, `None` for a directory store.
pub async fn publish_html(
    deps: &Deps,
    report: &Report,
    whole_account: bool,
) -> Result<Option<String>, ServiceError> {
    let trend = crate::history::trend(&deps.store).await;
    let html = to_html_by_vpc(&deps.client, report, &trend).await?;
    let key = dated_key(report);
    store_page(&deps.store, &key, &html).await?;
    if whole_account {
        store_page(&deps.store, LATEST_KEY, &html).await?;
    }
    Ok(deps.store.presigned_get(&key, LINK_VALIDITY)?)
}

async fn store_page(store: &Store, key: &str, html: &str) -> Result<(), ServiceError> {
    store.put_html(key, html).await?;
    tracing::info!(key, bytes = html.len(), "HTML report stored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RunInfo;

    fn report(started_at: &str) -> Report {
        let run = RunInfo {
            id: "0b0e7f5c-1d2e-4f00-9a00-000000000001".into(),
            trigger: "schedule".into(),
            started_at: started_at.into(),
            finished_at: started_at.into(),
            api_requests: 5,
            complete: true,
            cap_reached: false,
            dry_run: false,
            incomplete: Vec::new(),
            built_on_full_read: None,
            stopped_early: false,
            planned: None,
        };
        Report::new(run, &[], vec![], vec![])
    }

    #[test]
    fn pages_are_dated_by_the_run_start() {
        assert_eq!(
            dated_key(&report("2026-11-30T19:00:00Z")),
            "reports/2026-11-30/0b0e7f5c-1d2e-4f00-9a00-000000000001.html"
        );
        // A start time that is not RFC 3339 never makes a key outside reports/<date>/.
        assert_eq!(
            dated_key(&report("../../etc")),
            "reports/undated/0b0e7f5c-1d2e-4f00-9a00-000000000001.html"
        );
    }
}
