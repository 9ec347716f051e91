//! Findings with a history: the state store's findings index and per-run summaries.
//!
//! `history/findings.json` holds, for each (rule, resource), when it was first seen, last seen
//! and resolved; `history/runs.json` one [`RunSummary`] per recorded run (newest last), enough
//! to draw a trend. Both are read and written whole (a JSON object each); two runs writing at
//! the same moment may lose one update, which the next full run corrects.

mod overview;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::digitalocean::Droplet;
use crate::policy::Policy;
use crate::report::{Finding, Report, Resource, ResourceType, Severity, Status};
use crate::rules;
use crate::snapshot::Scope;
use crate::store::{Store, StoreError};

pub use overview::{overview, OpenFinding, Overview};

pub use crate::report::{Episode, RunSummary, SeverityCounts};

pub const INDEX_KEY: &str = "history/findings.json";
pub const RUNS_KEY: &str = "history/runs.json";
/// Resolved episodes kept in the index (oldest dropped first).
pub const MAX_RESOLVED: usize = 10_000;
/// Run summaries kept (oldest dropped first): about 83 days of hourly runs.
pub const MAX_RUNS: usize = 2_000;

/// The findings index: open findings by key, and the latest resolved episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingsIndex {
    /// Keyed `rule|type|id`.
    pub open: BTreeMap<String, Episode>,
    /// Oldest first.
    pub resolved: Vec<Episode>,
}

/// What a run looked at: which Droplets (`None`: the whole account) and whether the checks
/// that need a connection to the Droplet ran. Only what a run looked at can be resolved by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub droplet_ids: Option<BTreeSet<u64>>,
    pub ssh_checks: bool,
}

impl Coverage {
    pub fn of(scope: &Scope, policy: &Policy) -> Self {
        Coverage {
            droplet_ids: scope.droplet_ids.clone(),
            ssh_checks: !scope.no_ssh && policy.ssh.probe,
        }
    }

    fn covers(&self, e: &Episode, policy: &Policy) -> bool {
        let info = rules::info(&e.rule);
        if !policy.rule_enabled(&e.rule) || info.is_some_and(|i| i.needs_ssh && !self.ssh_checks) {
            return false;
        }
        match &self.droplet_ids {
            None => true,
            Some(ids) => {
                e.resource.kind == ResourceType::Droplet
                    && e.resource.id.parse().is_ok_and(|id: u64| ids.contains(&id))
            }
        }
    }
}

/// The key of a finding in the index ([`crate::report::FindingKey`], `rule|type|id`).
pub fn key(rule: &str, resource: &Resource) -> String {
    crate::report::FindingKey::new(rule, resource).to_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads the findings index (empty when none was written yet).
pub async fn load_index(store: &Store) -> Result<FindingsIndex, StoreError> {
    Ok(store.get_json(INDEX_KEY).await?.unwrap_or_default())
}

/// Reads the run summaries, oldest first: the public API the trend is drawn from.
pub async fn run_summaries(store: &Store) -> Result<Vec<RunSummary>, StoreError> {
    Ok(store.get_json(RUNS_KEY).await?.unwrap_or_default())
}

/// The longest resource name the index keeps, in characters. Names come from the API (a
/// Droplet's name is a hostname, at most 255 characters); a longer one is cut, so that a
/// hostile name cannot bloat the index every later run reads.
pub const MAX_NAME_CHARS: usize = 255;

/// The resource as the index keeps it: its name cut to [`MAX_NAME_CHARS`].
fn bounded(r: &crate::report::Resource) -> crate::report::Resource {
    crate::report::Resource {
        kind: r.kind,
        id: r.id.clone(),
        name: crate::text::first_chars(&r.name, MAX_NAME_CHARS).to_string(),
    }
}

/// Each finding's [`key`], in order.
fn keys_of(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(|f| key(&f.rule, &f.resource)).collect()
}

/// How many past runs the HTML report's trend shows.
pub const TREND_RUNS: usize = 60;

/// The recent runs as the HTML report's trend, oldest first (at most [`TREND_RUNS`]): open
/// `fail` findings by severity, new and resolved per run. A store that cannot be read gives no
/// trend (logged), never a failed report.
pub async fn trend(store: &Store) -> Vec<crate::report::RunPoint> {
    let runs = match run_summaries(store).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "no trend: the run summaries could not be read");
            return Vec::new();
        }
    };
    let skip = runs.len().saturating_sub(TREND_RUNS);
    runs.into_iter().skip(skip).map(|r| point(&r)).collect()
}

fn point(r: &RunSummary) -> crate::report::RunPoint {
    crate::report::RunPoint {
        at: r.at.clone(),
        open: r.fail,
        new: r.new as u64,
        resolved: r.resolved as u64,
    }
}

/// A run's view of the history: the index and the run summaries as they were when the run
/// started, and the run's clock.
#[derive(Debug, Clone)]
pub struct Tracker {
    index: FindingsIndex,
    runs: Vec<RunSummary>,
    now: DateTime<Utc>,
}

impl Tracker {
    /// Reads the index and the run summaries (both at once).
    pub async fn load(store: &Store, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let (index, runs) = tokio::try_join!(load_index(store), run_summaries(store))?;
        Ok(Tracker { index, runs, now })
    }

    /// A tracker with no history (when no store can be used).
    pub fn empty(now: DateTime<Utc>) -> Self {
        Tracker {
            index: FindingsIndex::default(),
            runs: Vec::new(),
            now,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The post-pass after evaluation: the policy's exemptions at the run's time, then each
    /// finding's `first_seen` (from the index, else now).
    pub fn prepare(&self, findings: &mut [Finding], droplets: &[Droplet], policy: &Policy) {
        crate::exemptions::apply(findings, droplets, &policy.exemptions, self.now);
        for f in findings.iter_mut() {
            let seen = self.index.open.get(&key(&f.rule, &f.resource));
            f.first_seen = Some(seen.map_or_else(|| rfc3339(self.now), |e| e.first_seen.clone()));
        }
    }

    /// The report's additions (`first_seen`, `resolved`, `exemptions_expiring`), the index and
    /// the run summaries brought up to date and written. `earlier`: what the run saw before it
    /// changed anything (a finding it fixed is recorded, then resolved). Resolves only what the
    /// run covered, and nothing when the run was incomplete.
    pub async fn commit(
        mut self,
        store: &Store,
        report: &mut Report,
        policy: &Policy,
        (coverage, earlier): (&Coverage, &[Finding]),
    ) -> Result<RunSummary, StoreError> {
        let mut runs = std::mem::take(&mut self.runs);
        let (new, new_critical) = self.record_seen(earlier, &keys_of(earlier));
        let keys = keys_of(&report.findings);
        let (later, later_critical) = self.record_seen(&report.findings, &keys);
        let new = (new + later, new_critical + later_critical);
        let resolved_now = if report.run.complete {
            self.resolve_unseen(&keys, policy, coverage)
        } else {
            0
        };
        for (f, k) in report.findings.iter_mut().zip(&keys) {
            f.first_seen = self.index.open.get(k).map(|e| e.first_seen.clone());
        }
        report.resolved = self.resolved_since(runs.iter().rev().find(|r| r.full));
        report.exemptions_expiring = crate::exemptions::expiring(&policy.exemptions, self.now);
        let summary = self.summary(report, coverage, new, resolved_now);
        runs.push(summary.clone());
        let excess = runs.len().saturating_sub(MAX_RUNS);
        runs.drain(..excess);
        tokio::try_join!(
            store.put_json(INDEX_KEY, &self.index),
            store.put_json(RUNS_KEY, &runs)
        )?;
        report.history = Some(summary.clone());
        Ok(summary)
    }

    /// Upserts every finding (its key in `keys`, in order) as open; returns how many were not
    /// open before, and how many of those are critical `fail` findings.
    fn record_seen(&mut self, findings: &[Finding], keys: &[String]) -> (usize, usize) {
        let now = rfc3339(self.now);
        let (mut new, mut new_critical) = (0, 0);
        for (f, k) in findings.iter().zip(keys) {
            let name = crate::text::first_chars(&f.resource.name, MAX_NAME_CHARS);
            if let Some(e) = self.index.open.get_mut(k) {
                e.last_seen.clone_from(&now);
                e.status = f.status;
                e.severity = f.severity;
                if e.resource.name != name {
                    e.resource.name = name.to_string();
                }
                continue;
            }
            new += 1;
            if f.status == Status::Fail && f.severity == Severity::Critical {
                new_critical += 1;
            }
            let episode = Episode {
                rule: f.rule.clone(),
                resource: bounded(&f.resource),
                severity: f.severity,
                status: f.status,
                first_seen: now.clone(),
                last_seen: now.clone(),
                resolved: None,
            };
            self.index.open.insert(k.clone(), episode);
        }
        (new, new_critical)
    }

    /// Closes the open episodes the run covered but did not see (`seen`: the keys of what it
    /// saw); returns how many.
    fn resolve_unseen(&mut self, seen: &[String], policy: &Policy, coverage: &Coverage) -> usize {
        let seen: HashSet<&str> = seen.iter().map(String::as_str).collect();
        let gone: Vec<String> = self
            .index
            .open
            .iter()
            .filter(|(k, e)| !seen.contains(k.as_str()) && coverage.covers(e, policy))
            .map(|(k, _)| k.clone())
            .collect();
        let now = rfc3339(self.now);
        for k in &gone {
            if let Some(mut e) = self.index.open.remove(k) {
                e.resolved = Some(now.clone());
                self.index.resolved.push(e);
            }
        }
        let excess = self.index.resolved.len().saturating_sub(MAX_RESOLVED);
        self.index.resolved.drain(..excess);
        gone.len()
    }

    /// Episodes resolved after the previous full run (all kept ones when there was none).
    fn resolved_since(&self, previous_full: Option<&RunSummary>) -> Vec<Episode> {
        let since = previous_full.and_then(|r| parse_time(&r.at));
        self.index
            .resolved
            .iter()
            .filter(
                |e| match (since, e.resolved.as_deref().and_then(parse_time)) {
                    (Some(s), Some(t)) => t > s,
                    (None, _) => true,
                    (Some(_), None) => false,
                },
            )
            .cloned()
            .collect()
    }

    fn summary(
        &self,
        report: &Report,
        coverage: &Coverage,
        (new, new_critical): (usize, usize),
        resolved: usize,
    ) -> RunSummary {
        let mut fail = SeverityCounts::default();
        for f in report.findings.iter().filter(|f| f.status == Status::Fail) {
            *match f.severity {
                Severity::Critical => &mut fail.critical,
                Severity::High => &mut fail.high,
                Severity::Medium => &mut fail.medium,
                Severity::Low => &mut fail.low,
            } += 1;
        }
        let count = |s: Status| report.findings.iter().filter(|f| f.status == s).count();
        RunSummary {
            run_id: report.run.id.clone(),
            trigger: report.run.trigger.clone(),
            at: rfc3339(self.now),
            full: coverage.droplet_ids.is_none() && report.run.complete,
            complete: report.run.complete,
            droplets: report.summary.droplets,
            fail,
            unknown: count(Status::Unknown),
            exempt: count(Status::Exempt),
            new,
            new_critical,
            resolved,
            changes_applied: report.changes.iter().filter(|c| c.result == "ok").count(),
            changes_failed: report.changes.iter().filter(|c| c.result != "ok").count(),
            api_requests: report.run.api_requests,
        }
    }
}

/// An RFC 3339 time, as UTC.
pub fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Time from first seen to resolved over episodes resolved at or after `since`: how many,
/// the median (mean of the two middle values for an even count) and the 90th percentile
/// (nearest rank). `None` values when nothing was resolved in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeToResolve {
    pub resolved: usize,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

pub fn time_to_resolve(index: &FindingsIndex, since: DateTime<Utc>) -> TimeToResolve {
    let mut secs: Vec<i64> = index
        .resolved
        .iter()
        .filter_map(|e| {
            let resolved = parse_time(e.resolved.as_deref()?)?;
            let first = parse_time(&e.first_seen)?;
            (resolved >= since).then(|| (resolved - first).num_seconds().max(0))
        })
        .collect();
    secs.sort_unstable();
    let n = secs.len();
    let median = match n {
        0 => None,
        _ if n % 2 == 1 => Some(secs[n / 2]),
        _ => Some((secs[n / 2 - 1] + secs[n / 2]) / 2),
    };
    let p90 = (n > 0).then(|| secs[(n * 9).div_ceil(10).max(1) - 1]);
    TimeToResolve {
        resolved: n,
        median_seconds: median,
        p90_seconds: p90,
    }
}

/// The open findings, oldest first.
pub fn open_by_age(index: &FindingsIndex) -> Vec<&Episode> {
    let mut open: Vec<&Episode> = index.open.values().collect();
    open.sort_by(|a, b| (&a.first_seen, &a.rule).cmp(&(&b.first_seen, &b.rule)));
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode(first: &str, resolved: &str) -> Episode {
        Episode {
            rule: "firewall.missing".into(),
            resource: Resource {
                kind: ResourceType::Droplet,
                id: "1".into(),
                name: "d".into(),
            },
            severity: Severity::Critical,
            status: Status::Fail,
            first_seen: first.into(),
            last_seen: first.into(),
            resolved: Some(resolved.into()),
        }
    }

    #[test]
    fn median_and_p90_of_time_to_resolve_within_the_window() {
        let mut index = FindingsIndex::default();
        // 1h, 2h, ..., 10h; and one resolved before the window.
        for h in 1..=10 {
            index.resolved.push(episode(
                "2026-11-01T00:00:00Z",
                &format!("2026-11-01T{h:02}:00:00Z"),
            ));
        }
        index
            .resolved
            .push(episode("2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"));
        let since = parse_time("2026-10-31T00:00:00Z").expect("time");
        let t = time_to_resolve(&index, since);
        assert_eq!(t.resolved, 10);
        assert_eq!(t.median_seconds, Some(5 * 3600 + 1800), "mean of 5h and 6h");
        assert_eq!(t.p90_seconds, Some(9 * 3600), "nearest rank: the 9th of 10");
        index.resolved.truncate(3);
        let t = time_to_resolve(&index, since);
        assert_eq!(
            (t.median_seconds, t.p90_seconds),
            (Some(7200), Some(3 * 3600))
        );
        let none = time_to_resolve(&FindingsIndex::default(), since);
        assert_eq!((none.resolved, none.median_seconds), (0, None));
    }
}

#[cfg(test)]
mod bounded_names {
    use super::*;

    #[test]
    fn a_hostile_name_is_cut_in_the_index() {
        let r = crate::report::Resource {
            kind: crate::report::ResourceType::Droplet,
            id: "1".into(),
            name: "é".repeat(7 * 1024 * 1024),
        };
        let kept = bounded(&r);
        assert_eq!(kept.name.chars().count(), MAX_NAME_CHARS);
        assert_eq!(bounded(&kept), kept, "a short name is kept whole");
    }
}
