//! Remediation: plan (pure), then apply through the client, then re-read the account and
//! report what is now true. Every change goes to the ledger in the state store as it happens.

mod apply;
pub mod plan;
mod quarantine;

use chrono::Utc;
use serde_json::{json, Value};

pub use plan::{baseline_request, plan, Note, Plan, RuleEdit, Step, StepKind};
pub use quarantine::{quarantine, restore, QuarantineOutcome, QuarantineRecord};

use crate::audit::{check_scope, now_rfc3339, AuditError, Run};
use crate::digitalocean::{ApiError, Client};
use crate::evaluate::{evaluate, Scope, Snapshot};
use crate::policy::Policy;
use crate::report::{Change, ChangeResource, Report};
use crate::ssh_audit::{observe, SshAccess};
use crate::store::{StateStore, Store, StoreError};

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

/// Writes change records to `ledger/<date>/<time>-<run id>-<n>.json` as they happen.
pub struct Ledger<'a> {
    store: &'a Store,
    run_id: String,
    trigger: String,
    seq: usize,
}

impl<'a> Ledger<'a> {
    pub fn new(store: &'a Store, run_id: &str, trigger: &str) -> Self {
        Ledger {
            store,
            run_id: run_id.to_string(),
            trigger: trigger.to_string(),
            seq: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &mut self,
        resource: ChangeResource,
        action: &str,
        before: Value,
        after: Value,
        result: String,
        rule: &str,
        reason: &str,
    ) -> Result<Change, StoreError> {
        self.seq += 1;
        let change = Change {
            at: now_rfc3339(),
            resource,
            action: action.to_string(),
            before,
            after,
            result,
            rule: rule.to_string(),
            reason: reason.to_string(),
            trigger: self.trigger.clone(),
            run_id: self.run_id.clone(),
        };
        // Names sort in time order: date folder, then a millisecond timestamp.
        let now = Utc::now();
        let key = format!(
            "ledger/{}/{}-{}-{:04}.json",
            now.format("%Y-%m-%d"),
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            self.run_id,
            self.seq
        );
        self.store.put_json(&key, &change).await?;
        tracing::info!(action, resource = %change.resource.id, result = %change.result, "change recorded");
        Ok(change)
    }
}

/// Every change record in the store, oldest first.
pub async fn ledger_entries(store: &Store) -> Result<Vec<Change>, StoreError> {
    let mut out = Vec::new();
    for key in store.list("ledger/").await? {
        if let Some(c) = store.get_json::<Change>(&key).await? {
            out.push(c);
        }
    }
    Ok(out)
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
        let mut info = run.finish(client, snapshot.incomplete_reasons());
        info.dry_run = true;
        info.cap_reached = plan.cap_reached;
        return Ok(Report::new(info, &ids, findings, Vec::new()));
    }
    let run_key = format!("runs/{}-{}.json", run.started_at.replace(':', ""), run.id);
    // The store must take records before anything changes.
    store
        .put_json(
            &run_key,
            &json!({"run": {"id": run.id, "trigger": run.trigger, "started_at": run.started_at, "status": "started"},
                    "plan": plan.steps.iter().map(|s| json!({"action": s.action, "resource": s.resource, "description": s.description, "within_cap": s.within_cap})).collect::<Vec<_>>()}),
        )
        .await?;
    let mut ledger = Ledger::new(store, &run.id, &run.trigger);
    let changes = if plan.applicable().next().is_some() {
        apply::apply(client, policy, &plan, &mut ledger, opts.ssh).await?
    } else {
        Vec::new()
    };
    // What is true now.
    let (snapshot, findings) = if changes.is_empty() {
        (snapshot, findings)
    } else {
        let mut s = Snapshot::fetch(client).await?;
        observe(&mut s, policy, &opts.scope, opts.ssh).await;
        let f = evaluate(&s, policy, &opts.scope);
        (s, f)
    };
    let mut findings = findings;
    plan.annotate(&mut findings);
    for f in &mut findings {
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
    let mut info = run.finish(client, snapshot.incomplete_reasons());
    info.cap_reached = plan.cap_reached;
    let report = Report::new(info, &ids, findings, changes);
    store.put_json(&run_key, &report).await?;
    Ok(report)
}
