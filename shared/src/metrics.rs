//! One CloudWatch Embedded Metric Format (EMF) line per function run: CloudWatch Logs turns it
//! into metrics with no API call (a JSON object on stdout is enough on Lambda).
//!
//! Shape (CloudWatch's EMF specification): `{"_aws": {"Timestamp": <ms>, "CloudWatchMetrics":
//! [{"Namespace": "dropletguard", "Dimensions": [["Function"]], "Metrics": [{"Name", "Unit"}]}]},
//! "Function": "<name>", "<metric>": <number>, …}`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::report::{Report, RunInfo, Severity, Status};

/// The metric namespace.
pub const NAMESPACE: &str = "dropletguard";

/// The metrics every line carries, with their CloudWatch units.
pub const METRICS: &[(&str, &str)] = &[
    ("DropletsAudited", "Count"),
    ("FindingsCritical", "Count"),
    ("FindingsHigh", "Count"),
    ("FindingsMedium", "Count"),
    ("FindingsLow", "Count"),
    ("FindingsUnknown", "Count"),
    ("FindingsExempt", "Count"),
    ("NewFindings", "Count"),
    ("NewCriticalFindings", "Count"),
    ("ResolvedFindings", "Count"),
    ("ChangesApplied", "Count"),
    ("ChangesFailed", "Count"),
    ("ApiRequests", "Count"),
    ("Duration", "Milliseconds"),
    ("RunComplete", "Count"),
    ("RunIncomplete", "Count"),
];

/// The values of [`METRICS`] for a run, in that order. `fail` findings count by severity; new
/// and resolved come from the findings index (0 when the run kept no history).
fn values(report: &Report, duration: Duration) -> Vec<f64> {
    let fail = |s: Severity| {
        report
            .findings
            .iter()
            .filter(|f| f.status == Status::Fail && f.severity == s)
            .count()
    };
    let status = |s: Status| report.findings.iter().filter(|f| f.status == s).count();
    let h = report.history.as_ref();
    let failed = report.changes.iter().filter(|c| c.result != "ok").count();
    let complete = usize::from(report.run.complete);
    [
        report.summary.droplets,
        fail(Severity::Critical),
        fail(Severity::High),
        fail(Severity::Medium),
        fail(Severity::Low),
        status(Status::Unknown),
        status(Status::Exempt),
        h.map_or(0, |h| h.new),
        h.map_or(0, |h| h.new_critical),
        h.map_or(0, |h| h.resolved),
        report.changes.len() - failed,
        failed,
        report.run.api_requests as usize,
    ]
    .into_iter()
    .map(|n| n as f64)
    .chain([
        duration.as_secs_f64() * 1000.0,
        complete as f64,
        (1 - complete) as f64,
    ])
    .collect()
}

/// The EMF document of one run of `function` (the `Function` dimension), at `at`.
pub fn emf(function: &str, report: &Report, duration: Duration, at: DateTime<Utc>) -> Value {
    let definitions: Vec<Value> = METRICS
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions
            }]
        }),
    );
    doc.insert("Function".into(), json!(function));
    for ((name, _), v) in METRICS.iter().zip(values(report, duration)) {
        doc.insert((*name).into(), json!(v));
    }
    doc.insert("RunId".into(), json!(report.run.id));
    doc.insert("Trigger".into(), json!(report.run.trigger));
    Value::Object(doc)
}

/// The EMF document of a function invocation from what it answered: the report in it (the
/// answer itself, or its `report`), else a run with nothing audited. `None` (the invocation
/// failed) counts as an incomplete run.
pub fn emf_for_output(
    function: &str,
    output: Option<&Value>,
    duration: Duration,
    at: DateTime<Utc>,
) -> Value {
    let found = output.and_then(|v| {
        [v, &v["report"]]
            .into_iter()
            .find_map(|c| serde_json::from_value::<Report>(c.clone()).ok())
    });
    let report = found.unwrap_or_else(|| {
        let run = RunInfo {
            id: String::new(),
            trigger: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            api_requests: 0,
            complete: output.is_some(),
            cap_reached: false,
            dry_run: false,
            incomplete: Vec::new(),
            built_on_full_read: None,
            stopped_early: false,
            planned: None,
        };
        Report::new(run, &[], Vec::new(), Vec::new())
    });
    emf(function, &report, duration, at)
}

/// Writes the invocation's EMF line to stdout (where Lambda sends it to CloudWatch Logs).
pub fn emit(function: &str, output: Option<&Value>, duration: Duration) {
    println!("{}", emf_for_output(function, output, duration, Utc::now()));
}
