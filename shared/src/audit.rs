//! The audit engine that every entry point calls: snapshot, evaluate, report.

use std::collections::HashSet;

use chrono::{SecondsFormat, Utc};

use crate::digitalocean::{ApiError, Client};
use crate::evaluate::evaluate;
use crate::history::{Coverage, Tracker};
use crate::policy::Policy;
use crate::report::{Report, RunInfo};
use crate::snapshot::CacheWrite;
use crate::snapshot::{Scope, Snapshot};
use crate::ssh_audit::{observe, SshAccess};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("no Droplet with id {} in this account", .0.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    UnknownDroplets(Vec<u64>),
}

/// RFC 3339 time, UTC, seconds.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A run of the engine: what triggered it, and when it started.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub trigger: String,
    pub started_at: String,
    requests_at_start: u64,
}

impl Run {
    pub fn start(trigger: &str, client: &Client) -> Self {
        Run {
            id: uuid::Uuid::new_v4().to_string(),
            trigger: trigger.to_string(),
            started_at: now_rfc3339(),
            requests_at_start: client.requests(),
        }
    }

    /// The run's record over what `snapshot` read: incomplete by its reasons, and naming the
    /// full read a re-check built on.
    pub fn finish_over(&self, client: &Client, snapshot: &Snapshot) -> RunInfo {
        let mut info = self.finish(client, snapshot.incomplete_reasons());
        info.built_on_full_read = snapshot
            .full_read_at()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        info
    }

    /// The record of a run that stopped before reading the account, to keep the requests
    /// held for incident response (`e` is the [`ApiError::Reserve`] that stopped it).
    pub fn stopped(&self, client: &Client, e: &ApiError) -> Report {
        let mut info = self.finish(client, Vec::new());
        info.stop_early(e.to_string());
        Report::new(info, &[], Vec::new(), Vec::new())
    }

    /// The run's record. It is complete when `incomplete` (why not) is empty.
    pub fn finish(&self, client: &Client, incomplete: Vec<String>) -> RunInfo {
        RunInfo {
            id: self.id.clone(),
            trigger: self.trigger.clone(),
            started_at: self.started_at.clone(),
            finished_at: now_rfc3339(),
            api_requests: client.requests().saturating_sub(self.requests_at_start),
            complete: incomplete.is_empty(),
            incomplete,
            cap_reached: false,
            dry_run: false,
            built_on_full_read: None,
            stopped_early: false,
            planned: None,
        }
    }
}

/// Checks that every Droplet the scope names exists in the snapshot.
pub fn check_scope(snapshot: &Snapshot, scope: &Scope) -> Result<Vec<u64>, AuditError> {
    let present: HashSet<u64> = snapshot.droplets.iter().map(|d| d.id).collect();
    if let Some(ids) = &scope.droplet_ids {
        let missing: Vec<u64> = ids
            .iter()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(AuditError::UnknownDroplets(missing));
        }
    }
    Ok(snapshot
        .droplets
        .iter()
        .filter(|d| scope.includes(d.id))
        .map(|d| d.id)
        .collect())
}

/// An audit: reads the account ([`crate::snapshot::read`]: a re-check with a `store` builds
/// on its cached full read), probes the Droplets over SSH (unless `--no-ssh` or
/// `ssh.probe = false`), evaluates the policy over the Droplets in scope. A run the
/// incident-response reserve stops is a report with `complete: false` and `stopped_early`.
pub async fn audit(
    client: &Client,
    policy: &Policy,
    store: Option<&Store>,
    scope: &Scope,
    trigger: &str,
    ssh: &SshAccess,
) -> Result<Report, AuditError> {
    let (report, cache_write) = audit_run(client, policy, store, scope, trigger, ssh).await?;
    cache_write.finish().await;
    Ok(report)
}

/// [`audit`], leaving the write of the full read to the cache running: the caller awaits it
/// before the run ends, after whatever else it does with the report.
async fn audit_run(
    client: &Client,
    policy: &Policy,
    store: Option<&Store>,
    scope: &Scope,
    trigger: &str,
    ssh: &SshAccess,
) -> Result<(Report, CacheWrite), AuditError> {
    let run = Run::start(trigger, client);
    let started = std::time::Instant::now();
    let (mut snapshot, pending) = match crate::snapshot::read(client, store, policy, scope).await {
        Ok(s) => s,
        Err(e) if e.is_reserve() => return Ok((run.stopped(client, &e), CacheWrite::default())),
        Err(e) => return Err(e.into()),
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        droplets = snapshot.droplets.len(),
        "account read"
    );
    let ids = match check_scope(&snapshot, scope) {
        Ok(ids) => ids,
        Err(e) => {
            // The full read is still good for the re-checks that follow.
            pending.start(&snapshot).finish().await;
            return Err(e);
        }
    };
    observe(&mut snapshot, policy, scope, ssh).await;
    let (mut findings, cache_write) =
        pending.start_beside(&snapshot, || evaluate(&snapshot, policy, scope));
    let now = Utc::now();
    crate::exemptions::apply(&mut findings, &snapshot.droplets, &policy.exemptions, now);
    tracing::info!(
        droplets = ids.len(),
        firewalls = snapshot.firewalls.len(),
        findings = findings.len(),
        ms = started.elapsed().as_millis() as u64,
        "audit evaluated"
    );
    let mut report = Report::new(
        run.finish_over(client, &snapshot),
        &ids,
        findings,
        Vec::new(),
    );
    report.summary.quarantined = crate::evaluate::quarantined(&snapshot, policy, &ids);
    report.exemptions_expiring = crate::exemptions::expiring(&policy.exemptions, now);
    report.vpc_of = crate::report_page::vpc_labels(&snapshot, &report.findings);
    drop_aside(snapshot);
    Ok((report, cache_write))
}

/// Frees `value` on a blocking thread, beside the rest of the run. A full read of 10,000
/// Droplets is over 100,000 allocations; freeing them in line was about 8% of such an audit's
/// CPU time under `perf` (some 25 ms on the bench machine), all of it on the run's path.
/// Must be called within a Tokio runtime.
pub fn drop_aside<T: Send + 'static>(value: T) {
    tokio::task::spawn_blocking(move || drop(value));
}

/// [`audit`], then the state store's findings index (each finding's `first_seen`, what was
/// resolved, the run's summary). The audit does not depend on the store: when it cannot be
/// read or written, the report goes without history and a warning is logged.
pub async fn audit_recorded(
    client: &Client,
    policy: &Policy,
    store: &Store,
    scope: &Scope,
    trigger: &str,
    ssh: &SshAccess,
) -> Result<Report, AuditError> {
    let started = std::time::Instant::now();
    let (tracker, audited) = tokio::join!(
        Tracker::load(store, Utc::now()),
        audit_run(client, policy, Some(store), scope, trigger, ssh)
    );
    let (mut report, cache_write) = audited?;
    if report.run.stopped_early {
        return Ok(report);
    }
    let recorded = match tracker {
        Ok(t) => t
            .commit(
                store,
                &mut report,
                policy,
                (&Coverage::of(scope, policy), &[]),
            )
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "findings history not updated");
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "findings history recorded"
    );
    cache_write.finish().await;
    Ok(report)
}
