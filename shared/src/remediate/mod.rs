//! Remediation: plan (pure), then apply through the client, then re-read the account and
//! report what is now true. Every change goes to the ledger in the state store as it happens.

mod apply;
pub mod fix;
mod ledger;
pub mod plan;
mod quarantine;

use serde_json::json;

pub use fix::{baseline_request, Fix, RuleEdit, FIXES};
pub use ledger::{ledger_entries, Entry, Ledger};
pub use plan::{plan, Note, Plan, Planner, Step};
pub use quarantine::{
    quarantine, quarantine_request, restore, QuarantineOutcome, QuarantineRecord,
    MAX_ADDRESSES_PER_RULE, METHOD_DENY_TAG, METHOD_DETACH,
};

use crate::audit::{check_scope, AuditError, Run};
use crate::digitalocean::{ApiError, Client};
use crate::evaluate::{evaluate, Scope, Snapshot};
use crate::policy::Policy;
use crate::report::{Change, Finding, Report};
use crate::ssh_audit::{observe, SshAccess};
use crate::store::{Store, StoreError};
use fix::ApplyContext;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemediateError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A record could not be saved: the run stops rather than act without a record.
    #[error("{0} (the run stopped: no change is made without its record)")]
    Store(#[from] StoreError),
    /// The operation would be unsafe, or makes no sense.
    #[error("{0}")]
    Refused(String),
    /// After acting, the account is not in the state it should be.
    #[error("verification failed: {0}")]
    Verify(String),
}

pub struct RemediateOptions<'a> {
    pub scope: Scope,
    pub dry_run: bool,
    pub trigger: &'a str,
    /// How to reach Droplets over SSH (the probe, the service audit, password-auth removal).
    pub ssh: &'a SshAccess,
}

/// Audit, plan, apply (unless dry-run), re-read, report. The report's findings are what is
/// still wrong afterwards, each with what remediation planned and why it did not fix it.
/// Errors: the Droplets or firewalls could not be read, a `--droplet` id is not in the
/// account, or the state store refused a record (nothing is changed without its record).
pub async fn remediate(
    client: &Client,
    policy: &Policy,
    store: &Store,
    opts: RemediateOptions<'_>,
) -> Result<Report, RemediateError> {
    let run = Run::start(opts.trigger, client);
    let mut snapshot = Snapshot::fetch(client).await?;
    let ids = check_scope(&snapshot, &opts.scope)?;
    observe(&mut snapshot, policy, &opts.scope, opts.ssh).await;
    let mut findings = evaluate(&snapshot, policy, &opts.scope);
    let plan = plan::plan(
        &snapshot,
        policy,
        &findings,
        &opts.scope,
        opts.ssh.key.is_some(),
    );
    if opts.dry_run {
        plan.annotate(&mut findings);
        let mut info = run.finish(client, snapshot.vpcs.is_ok() && snapshot.ssh_keys.is_ok());
        info.dry_run = true;
        info.cap_reached = plan.cap_reached;
        return Ok(Report::new(info, &ids, findings, Vec::new()));
    }
    let run_key = format!("runs/{}-{}.json", run.started_at.replace(':', ""), run.id);
    // The store must take records before anything changes.
    store.put_json(&run_key, &run_record(&run, &plan)).await?;
    let mut cx = ApplyContext {
        client,
        policy,
        ledger: Ledger::new(store, &run.id, &run.trigger),
        ssh: opts.ssh,
    };
    // Changes a stopped run announced and never recorded: recorded now, and reported.
    let mut changes = cx.ledger.reconcile().await?;
    changes.extend(apply::apply(&mut cx, &plan).await?);
    // What is true now.
    let (snapshot, mut findings) = if changes.is_empty() {
        (snapshot, findings)
    } else {
        let mut s = Snapshot::fetch(client).await?;
        observe(&mut s, policy, &opts.scope, opts.ssh).await;
        let f = evaluate(&s, policy, &opts.scope);
        (s, f)
    };
    plan.annotate(&mut findings);
    note_results(&mut findings, &changes);
    let mut info = run.finish(client, snapshot.vpcs.is_ok() && snapshot.ssh_keys.is_ok());
    info.cap_reached = plan.cap_reached;
    let report = Report::new(info, &ids, findings, changes);
    store.put_json(&run_key, &report).await?;
    Ok(report)
}

/// The run's record before anything changes: who started it, and its plan.
fn run_record(run: &Run, plan: &Plan) -> serde_json::Value {
    let steps: Vec<_> = plan
        .steps
        .iter()
        .map(|s| json!({"action": s.action, "resource": s.resource, "description": s.description, "within_cap": s.within_cap}))
        .collect();
    json!({"run": {"id": run.id, "trigger": run.trigger, "started_at": run.started_at, "status": "started"},
           "plan": steps})
}

/// A finding still failing after its planned change: the change's failure, or that it was
/// applied and the finding remains.
fn note_results(findings: &mut [Finding], changes: &[Change]) {
    for f in findings {
        if f.remediation.planned.is_some() && f.remediation.result.is_none() {
            let failed = changes
                .iter()
                .find(|c| c.resource.id == f.resource.id && c.result.starts_with("failed"));
            f.remediation.result = Some(match failed {
                Some(c) => c.result.clone(),
                None => "applied, but the finding remains".into(),
            });
        }
    }
}
