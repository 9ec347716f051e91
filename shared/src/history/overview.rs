//! What `dropletguard findings` shows: open findings by age, time to resolve over a window,
//! and the exemptions in force.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use super::{open_by_age, parse_time, time_to_resolve, FindingsIndex, TimeToResolve};
use crate::policy::Exemption;
use crate::report::ExpiringExemption;
use crate::report::{Resource, Severity, Status};

/// An open finding and how long it has been open (`age_seconds`, from `first_seen` to `at`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenFinding {
    pub rule: String,
    pub severity: Severity,
    pub status: Status,
    pub resource: Resource,
    pub first_seen: String,
    pub last_seen: String,
    pub age_seconds: i64,
}

/// The overview, as `--format json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub at: String,
    /// The window `time_to_resolve` covers, in seconds back from `at`.
    pub window_seconds: i64,
    /// Oldest first.
    pub open: Vec<OpenFinding>,
    pub time_to_resolve: TimeToResolve,
    /// The policy's exemptions in force at `at`, soonest expiry first.
    pub exemptions: Vec<ExpiringExemption>,
}

/// Builds the overview at `now` over `window` (time to resolve counts episodes resolved in it).
pub fn overview(
    index: &FindingsIndex,
    exemptions: &[Exemption],
    now: DateTime<Utc>,
    window: Duration,
) -> Overview {
    let open = open_by_age(index)
        .into_iter()
        .map(|e| OpenFinding {
            rule: e.rule.clone(),
            severity: e.severity,
            status: e.status,
            resource: e.resource.clone(),
            first_seen: e.first_seen.clone(),
            last_seen: e.last_seen.clone(),
            age_seconds: parse_time(&e.first_seen).map_or(0, |t| (now - t).num_seconds().max(0)),
        })
        .collect();
    let mut in_force: Vec<&Exemption> = exemptions.iter().filter(|e| e.in_force(now)).collect();
    in_force.sort_by_key(|e| e.expires_at());
    Overview {
        at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        window_seconds: window.num_seconds(),
        open,
        time_to_resolve: time_to_resolve(index, now - window),
        exemptions: in_force.into_iter().map(Exemption::listing).collect(),
    }
}

/// `3d 4h`, `2h 5m`, `40s`: a compact age.
pub fn age_text(seconds: i64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

impl Overview {
    /// The text the CLI prints by default.
    pub fn to_text(&self) -> String {
        let mut out = format!("Open findings ({}), oldest first:\n", self.open.len());
        for f in &self.open {
            out.push_str(&format!(
                "  {:>8}  {:<8} {:<7} {:<24} {} {} ({})  since {}\n",
                age_text(f.age_seconds),
                f.severity.as_str(),
                f.status.as_str(),
                f.rule,
                f.resource.kind.as_str(),
                f.resource.name,
                f.resource.id,
                f.first_seen
            ));
        }
        let t = &self.time_to_resolve;
        let opt = |s: Option<i64>| s.map_or("-".to_string(), age_text);
        out.push_str(&format!(
            "Time to resolve over the last {}: {} resolved, median {}, p90 {}\n",
            age_text(self.window_seconds),
            t.resolved,
            opt(t.median_seconds),
            opt(t.p90_seconds)
        ));
        out.push_str(&format!(
            "Exemptions in force ({}):\n",
            self.exemptions.len()
        ));
        for e in &self.exemptions {
            let mut selectors = e.droplets.clone();
            selectors.extend(e.tags.iter().map(|t| format!("tag:{t}")));
            out.push_str(&format!(
                "  expires {}  {} [{}] rules [{}]: {}\n",
                e.exemption.expires,
                e.exemption.owner,
                selectors.join(", "),
                if e.rules.is_empty() {
                    "all".to_string()
                } else {
                    e.rules.join(", ")
                },
                e.exemption.reason
            ));
        }
        out
    }
}
