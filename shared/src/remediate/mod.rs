//! Remediation: plan (pure), then apply through the client, then re-read the account and
//! report what is now true. Every change goes to the ledger in the state store as it happens.

mod apply;
mod ensure;
pub mod fix;
mod ledger;
pub mod plan;
mod quarantine;
pub mod step;

use chrono::{DateTime, Utc};
use serde_json::json;

pub use fix::{baseline_request, Fix, RuleEdit, FIXES};
pub use ledger::{ledger_entries, Entry, Ledger, INTENT_LEASE};
pub use plan::plan;
pub use quarantine::{
    quarantine, quarantine_request, restore, QuarantineOutcome, QuarantineRecord,
    MAX_ADDRESSES_PER_RULE, METHOD_DENY_TAG, METHOD_DETACH,
};
pub use step::{Note, Plan, Planner, Step};

use crate::audit::{check_scope, AuditError, Run};
use crate::digitalocean::{ApiError, Client};
use crate::evaluate::evaluate;
use crate::exemptions::{self, expiring};
use crate::grace;
use crate::history::{Coverage, Tracker};
use crate::policy::Policy;
use crate::report::{Change, Finding, FindingKey, Report};
use crate::snapshot::{Scope, Snapshot};
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
    /// The run's clock (exemption expiry, `first_seen`, grace); `None` is the system clock.
    pub now: Option<DateTime<Utc>>,
    /// Act on findings still within their grace period (incident response).
    pub ignore_grace: bool,
    /// The run, when it began before remediation: an event's own reads (the touched
    /// Droplets, a tag's members) then count in its `run.api_requests`. `None`: it starts
    /// here.
    pub started: Option<Run>,
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
    let run = opts
        .started
        .clone()
        .unwrap_or_else(|| Run::start(opts.trigger, client));
    let tracker = Tracker::load(store, opts.now.unwrap_or_else(Utc::now)).await?;
    let mut snapshot = match read(client, store, policy, &opts.scope).await {
        Ok(s) => s,
        Err(e) if e.is_reserve() => return Ok(run.stopped(client, &e)),
        Err(e) => return Err(e.into()),
    };
    let ids = check_scope(&snapshot, &opts.scope)?;
    observe(&mut snapshot, policy, &opts.scope, opts.ssh).await;
    let mut findings = evaluate(&snapshot, policy, &opts.scope);
    tracker.prepare(&mut findings, &snapshot.droplets, policy);
    // Grace and exemptions: what the planner may act on now, and what it must leave.
    let (actionable, kept) = for_the_planner(&findings, &snapshot, policy, &opts, tracker.now());
    let plan = plan::plan(
        &snapshot,
        policy,
        &actionable,
        &opts.scope,
        opts.ssh.key.is_some(),
    );
    if opts.dry_run {
        annotate(&plan, &kept, &mut findings, None);
        let over = ReportOver::new(&run, policy, client, &snapshot, &ids, &plan);
        let mut report = over.report(findings, Vec::new());
        report.run.dry_run = true;
        report.exemptions_expiring = expiring(&policy.exemptions, tracker.now());
        return Ok(report);
    }
    let earlier = findings.clone();
    let (run_key, changes) = act(client, policy, store, (&run, &plan), opts.ssh).await?;
    let changed = !changes.is_empty();
    let (snapshot, mut findings, stopped) = now_true(
        (client, store, policy),
        (&opts, &tracker),
        (snapshot, findings),
        changed,
    )
    .await?;
    annotate(&plan, &kept, &mut findings, Some(&changes));
    let over = ReportOver::new(&run, policy, client, &snapshot, &ids, &plan);
    let mut report = over.report(findings, changes);
    if let Some(why) = stopped {
        report.run.stop_early(why);
    }
    let coverage = Coverage::of(&opts.scope, policy);
    tracker
        .commit(store, &mut report, policy, (&coverage, &earlier))
        .await?;
    store.put_json(&run_key, &report).await?;
    Ok(report)
}

/// Records the plan, then applies it (after recording the changes a stopped run announced and
/// never recorded); the run's record key and every change.
async fn act(
    client: &Client,
    policy: &Policy,
    store: &Store,
    (run, plan): (&Run, &Plan),
    ssh: &SshAccess,
) -> Result<(String, Vec<Change>), RemediateError> {
    let run_key = record_plan(store, run, plan).await?;
    let ledger =
        Ledger::new(store, &run.id, &run.trigger).with_lease(policy.remediation.intent_lease.0);
    let mut cx = ApplyContext {
        client,
        policy,
        ledger,
        ssh,
    };
    let mut changes = cx.ledger.reconcile().await?;
    changes.extend(apply::apply(&mut cx, plan).await?);
    Ok((run_key, changes))
}

/// The account for the run (its cache write finished).
async fn read(
    client: &Client,
    store: &Store,
    policy: &Policy,
    scope: &Scope,
) -> Result<Snapshot, ApiError> {
    let (snapshot, pending) = crate::snapshot::read(client, Some(store), policy, scope).await?;
    pending.start(&snapshot).finish().await;
    Ok(snapshot)
}

/// What a remediation's report is made over: the run, its policy and client, the account as
/// read, the Droplets in scope and the plan.
struct ReportOver<'a> {
    run: &'a Run,
    policy: &'a Policy,
    client: &'a Client,
    snapshot: &'a Snapshot,
    ids: &'a [u64],
    plan: &'a Plan,
}

impl<'a> ReportOver<'a> {
    fn new(
        run: &'a Run,
        policy: &'a Policy,
        client: &'a Client,
        snapshot: &'a Snapshot,
        ids: &'a [u64],
        plan: &'a Plan,
    ) -> Self {
        ReportOver {
            run,
            policy,
            client,
            snapshot,
            ids,
            plan,
        }
    }

    /// The run's report: its record, the findings and changes, the plan's size and cap, the
    /// quarantined Droplets, and each Droplet's VPC for the HTML page.
    fn report(&self, findings: Vec<Finding>, changes: Vec<Change>) -> Report {
        let mut info = self.run.finish_over(self.client, self.snapshot);
        info.cap_reached = self.plan.cap_reached;
        let within_cap = self.plan.applicable().count();
        info.planned = Some(crate::report::PlannedChanges {
            within_cap,
            over_cap: self.plan.steps.len() - within_cap,
        });
        let mut report = Report::new(info, self.ids, findings, changes);
        report.summary.quarantined =
            crate::evaluate::quarantined(self.snapshot, self.policy, self.ids);
        report.vpc_of = crate::report_page::vpc_labels(self.snapshot, &report.findings);
        report
    }
}

/// What is true after the changes: the account read again when something `changed`. When the
/// reserve stops that read, what was found `before` the changes, and why.
async fn now_true(
    (client, store, policy): (&Client, &Store, &Policy),
    (opts, tracker): (&RemediateOptions<'_>, &Tracker),
    before: (Snapshot, Vec<Finding>),
    changed: bool,
) -> Result<(Snapshot, Vec<Finding>, Option<String>), RemediateError> {
    if !changed {
        return Ok((before.0, before.1, None));
    }
    match reread(client, store, policy, opts, tracker).await {
        Err(RemediateError::Api(e)) if e.is_reserve() => {
            Ok((before.0, before.1, Some(e.to_string())))
        }
        r => r.map(|(s, f)| (s, f, None)),
    }
}

/// The account as it is after the changes, evaluated (a re-check reads its Droplets again).
async fn reread(
    client: &Client,
    store: &Store,
    policy: &Policy,
    opts: &RemediateOptions<'_>,
    tracker: &Tracker,
) -> Result<(Snapshot, Vec<Finding>), RemediateError> {
    let scope = Scope {
        fresh: Vec::new(),
        ..opts.scope.clone()
    };
    let mut s = read(client, store, policy, &scope).await?;
    observe(&mut s, policy, &opts.scope, opts.ssh).await;
    let mut f = evaluate(&s, policy, &opts.scope);
    tracker.prepare(&mut f, &s.droplets, policy);
    Ok((s, f))
}

/// What grace ([`grace::split`]) and exemptions ([`exemptions::shielded`]: a firewall shared with
/// an exempted Droplet is not narrowed) leave the planner to act on, and what they kept from it.
fn for_the_planner(
    findings: &[Finding],
    snapshot: &Snapshot,
    policy: &Policy,
    opts: &RemediateOptions<'_>,
    now: DateTime<Utc>,
) -> (Vec<Finding>, Kept) {
    let (mut actionable, held) = match opts.ignore_grace {
        true => (findings.to_vec(), Vec::new()),
        false => grace::split(findings, policy, now),
    };
    let shielded = exemptions::shielded(findings, &snapshot.firewalls, &snapshot.droplets);
    actionable.retain(|f| {
        let key = FindingKey::of(f);
        !shielded.iter().any(|(k, _)| *k == key)
    });
    (actionable, (held, shielded))
}

/// Findings kept from the planner: held by grace, and shielded by an exemption.
type Kept = (Vec<grace::Held>, Vec<exemptions::Held>);

/// Writes the run's plan to `runs/<start>-<id>.json` (the store must take records before
/// anything changes); returns the key, which later receives the report.
async fn record_plan(store: &Store, run: &Run, plan: &Plan) -> Result<String, StoreError> {
    let run_key = format!("runs/{}-{}.json", run.started_at.replace(':', ""), run.id);
    store
        .put_json(
            &run_key,
            &json!({"run": {"id": run.id, "trigger": run.trigger, "started_at": run.started_at, "status": "started"},
                    "plan": plan.steps.iter().map(|s| json!({"action": s.action, "resource": s.resource, "description": s.description, "within_cap": s.within_cap})).collect::<Vec<_>>()}),
        )
        .await?;
    Ok(run_key)
}

/// Writes what remediation planned, held back (grace) and did into the findings.
/// `changes`: `None` for a dry run.
fn annotate(
    plan: &Plan,
    (held, shielded): &Kept,
    findings: &mut [Finding],
    changes: Option<&[Change]>,
) {
    plan.annotate(findings);
    grace::annotate(findings, held);
    exemptions::annotate(findings, shielded);
    let Some(changes) = changes else {
        return;
    };
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
