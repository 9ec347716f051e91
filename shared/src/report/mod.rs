//! The run report (CONTRACT.md): findings, changes and a summary, rendered as JSON, a table,
//! SARIF 2.1.0 or a self-contained HTML page.

pub mod html;
mod key;
mod sarif;
mod table;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use html::{to_html, HtmlContext, RunPoint};
pub use key::{BadFindingKey, FindingKey};
pub use sarif::to_sarif;
pub use table::to_table;

pub use crate::catalog::{Mode, Severity};

/// What an exempted finding carries as `exemption`: `{reason, owner, expires}`, `expires` as
/// written in the policy (`2027-01-31` or an RFC 3339 date-time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExemptionRef {
    pub reason: String,
    pub owner: String,
    pub expires: String,
}

/// An exemption that expires soon, as the report lists it (`exemptions_expiring`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringExemption {
    #[serde(flatten)]
    pub exemption: ExemptionRef,
    pub droplets: Vec<String>,
    pub tags: Vec<String>,
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Fail,
    Unknown,
    /// Held by an exemption in force (`finding.exemption`): neither `fail` nor `unknown`.
    Exempt,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Fail => "fail",
            Status::Unknown => "unknown",
            Status::Exempt => "exempt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Droplet,
    Firewall,
    Vpc,
    Account,
}

impl ResourceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceType::Droplet => "droplet",
            ResourceType::Firewall => "firewall",
            ResourceType::Vpc => "vpc",
            ResourceType::Account => "account",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remediation {
    pub mode: Mode,
    /// What remediation would do or did (set by `remediate`, and by `--dry-run`).
    pub planned: Option<String>,
    pub applied: bool,
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub status: Status,
    pub severity: Severity,
    pub resource: Resource,
    pub detail: String,
    pub remediation: Remediation,
    /// The exemption that holds it (status `exempt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionRef>,
    /// When the state store first saw it open (RFC 3339), once a store is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeResource {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub id: String,
}

/// One change made to the account, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub at: String,
    pub resource: ChangeResource,
    pub action: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// `ok` or `failed: <reason>`.
    pub result: String,
    /// The rule whose finding the change fixes (or `quarantine`, `restore`).
    #[serde(default)]
    pub rule: String,
    /// Why: the finding's detail, or the operator's reason.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub trigger: String,
    #[serde(default)]
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    /// `schedule`, `webhook`, `manual` or `cli`.
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    pub api_requests: u64,
    pub complete: bool,
    /// Why the run is not complete: each reason names the list or check that fell short
    /// (`GET /v2/droplets: read 78 items, the API announced 1000`). Empty when complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// Whether `max_changes_per_run` stopped planned changes in this run.
    #[serde(default)]
    pub cap_reached: bool,
    /// `true` for `remediate --dry-run`: nothing was written.
    #[serde(default)]
    pub dry_run: bool,
    /// A re-check that read only what it touched: when the full read it built on was taken
    /// (RFC 3339; the state store's `cache/snapshot.json`). Absent when the run read the whole
    /// account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_on_full_read: Option<String>,
    /// The run stopped before it checked what it set out to, to keep the API requests held
    /// for incident response (`[api] reserve_percent`); `incomplete` says so. Absent: `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
    /// A remediation's plan, counted in changes (one per step; `max_changes_per_run` counts
    /// resources): how many fit under the cap and how many it held back. Absent for an audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<PlannedChanges>,
}

/// The size of a remediation's plan (`run.planned` in the JSON report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChanges {
    /// Changes the run applies (or, in a dry run, would apply).
    pub within_cap: usize,
    /// Changes left for a later run because `max_changes_per_run` was reached.
    pub over_cap: usize,
}

impl RunInfo {
    /// Marks the run as stopped early to keep the incident-response reserve, `why` (the
    /// [`crate::digitalocean::ApiError::Reserve`] message) among its incomplete reasons.
    pub fn stop_early(&mut self, why: String) {
        tracing::warn!(error = %why, "the run stopped early to keep the incident-response reserve");
        self.incomplete.push(why);
        self.complete = false;
        self.stopped_early = true;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub droplets: usize,
    pub pass: usize,
    pub fail: usize,
    pub unknown: usize,
    pub changes: usize,
    /// Findings held by an exemption.
    #[serde(default)]
    pub exempt: usize,
    /// Audited Droplets that carry `remediation.quarantine_tag` (isolated by `quarantine`).
    #[serde(default)]
    pub quarantined: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run: RunInfo,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    pub changes: Vec<Change>,
    /// Findings resolved since the previous full run (from the state store's findings index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<Episode>,
    /// Exemptions in force that expire within 7 days, soonest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemptions_expiring: Vec<ExpiringExemption>,
    /// This run as the findings index recorded it (new and resolved counts), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<RunSummary>,
    /// The VPC of each Droplet with a finding (Droplet id → VPC label), from the run's own
    /// read, for the HTML report's matrix. Not part of the JSON report.
    #[serde(skip)]
    pub vpc_of: BTreeMap<String, String>,
}

impl Report {
    /// Builds the report of a run over `droplets` audited Droplets.
    pub fn new(
        run: RunInfo,
        droplet_ids: &[u64],
        findings: Vec<Finding>,
        changes: Vec<Change>,
    ) -> Self {
        let summary = summarize(
            droplet_ids,
            &findings,
            changes.iter().filter(|c| c.result == "ok").count(),
        );
        Report {
            run,
            summary,
            findings,
            changes,
            resolved: Vec::new(),
            exemptions_expiring: Vec::new(),
            history: None,
            vpc_of: BTreeMap::new(),
        }
    }

    /// Any `fail` or `unknown` finding (exempted ones are neither).
    pub fn has_findings(&self) -> bool {
        self.findings.iter().any(|f| f.status != Status::Exempt)
    }
}

/// Counts Droplets that pass, fail (at least one fail) or are unknown (the rest).
pub fn summarize(droplet_ids: &[u64], findings: &[Finding], changes: usize) -> Summary {
    let mut worst: BTreeMap<&str, Status> = BTreeMap::new();
    for f in findings
        .iter()
        .filter(|f| f.resource.kind == ResourceType::Droplet && f.status != Status::Exempt)
    {
        let e = worst.entry(f.resource.id.as_str()).or_insert(f.status);
        if f.status == Status::Fail {
            *e = Status::Fail;
        }
    }
    let mut s = Summary {
        droplets: droplet_ids.len(),
        changes,
        exempt: findings
            .iter()
            .filter(|f| f.status == Status::Exempt)
            .count(),
        ..Default::default()
    };
    for id in droplet_ids {
        match worst.get(id.to_string().as_str()) {
            None => s.pass += 1,
            Some(Status::Fail) => s.fail += 1,
            Some(Status::Unknown | Status::Exempt) => s.unknown += 1,
        }
    }
    s
}

/// One stretch of time a finding was open: `first_seen` to `resolved` (RFC 3339 times).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub rule: String,
    pub resource: Resource,
    pub severity: Severity,
    /// Its status when last seen (`fail`, `unknown` or `exempt`).
    pub status: Status,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

/// Open findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl SeverityCounts {
    /// The counts, worst severity first.
    pub fn by_severity(&self) -> [(&'static str, u64); 4] {
        [
            ("critical", self.critical as u64),
            ("high", self.high as u64),
            ("medium", self.medium as u64),
            ("low", self.low as u64),
        ]
    }
}

/// One run, as the trend needs it. `at` is the run's clock (RFC 3339); `full` means the whole
/// account was audited and the run was complete; `fail` counts `fail` findings by severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub trigger: String,
    pub at: String,
    pub full: bool,
    pub complete: bool,
    pub droplets: usize,
    pub fail: SeverityCounts,
    pub unknown: usize,
    pub exempt: usize,
    /// Findings not open before this run.
    pub new: usize,
    /// Of those, `fail` findings of severity critical.
    pub new_critical: usize,
    /// Findings this run saw resolved.
    pub resolved: usize,
    pub changes_applied: usize,
    pub changes_failed: usize,
    pub api_requests: u64,
}
