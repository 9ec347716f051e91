//! What the Lambda functions do, without Lambda: scheduled run, webhook, incident response,
//! actions poller. The function crates only parse the event, call these, and shape the answer.

mod config;
mod fit;
mod notify;
mod publish;

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use config::{parse_secret_list, policy_from_env};
pub use fit::{fit_response, LAMBDA_RESPONSE_LIMIT};
pub use notify::Notifier;
pub use publish::{dated_key, publish_html, LATEST_KEY, LINK_VALIDITY};

use crate::audit::{now_rfc3339, AuditError, Run};
use crate::digitalocean::{ApiError, Client, Droplet};
use crate::evaluate::Scope;
use crate::policy::{Policy, PolicyError};
use crate::remediate::{self, RemediateError, RemediateOptions};
use crate::report::{Report, Severity, Status};
use crate::snapshot::cache::SeenBudget;
use crate::ssh_audit::SshAccess;
use crate::store::{StateStore, Store, StoreError};
use crate::webhook::{self, Event, ReplayGuard, Secret};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Remediate(#[from] RemediateError),
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Html(#[from] crate::report::html::HtmlError),
    /// The answer could not be encoded as JSON.
    #[error("encoding the answer: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<crate::aws::AwsError> for ServiceError {
    fn from(e: crate::aws::AwsError) -> Self {
        ServiceError::Config(e.to_string())
    }
}

impl From<AuditError> for ServiceError {
    fn from(e: AuditError) -> Self {
        ServiceError::Remediate(RemediateError::Audit(e))
    }
}

impl ServiceError {
    /// Worth retrying (the API or the store failed), as opposed to a bad request or config.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ServiceError::Api(_) | ServiceError::Store(_))
            || matches!(
                self,
                ServiceError::Remediate(RemediateError::Api(_) | RemediateError::Store(_))
            )
    }

    /// The `errorType` a function reports to Lambda (the Runtime API's error body): whether
    /// the same invocation may succeed later, then the kind, e.g. `Retryable.Api`,
    /// `Permanent.BadRequest`, `Permanent.Config`. Lambda's asynchronous retries and a
    /// dead-letter queue's readers can route on the prefix.
    pub fn error_type(&self) -> String {
        let kind = match self {
            ServiceError::Config(_) => "Config",
            ServiceError::Policy(_) => "Policy",
            ServiceError::Api(_) | ServiceError::Remediate(RemediateError::Api(_)) => "Api",
            ServiceError::Store(_) | ServiceError::Remediate(RemediateError::Store(_)) => "Store",
            ServiceError::Remediate(_) => "Remediate",
            ServiceError::BadRequest(_) => "BadRequest",
            ServiceError::Html(_) => "Html",
            ServiceError::Encode(_) => "Encode",
        };
        let when = if self.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        };
        format!("{when}.{kind}")
    }
}

/// What every function needs, built once at cold start.
pub struct Deps {
    pub client: Client,
    pub store: Store,
    pub policy: Policy,
    pub webhook_secrets: Vec<Secret>,
    pub notifier: Option<Notifier>,
    /// Webhook ids seen by this warm instance (the store keeps them across instances).
    pub replay: Mutex<ReplayGuard>,
    /// How Droplets are reached over SSH (with the management key, when configured).
    pub ssh: SshAccess,
}

impl Deps {
    /// Deps from parts (tests, and the CLI): no webhook secrets, notifier or SSH key. The
    /// client keeps the policy's incident-response reserve (`[api] reserve_percent`).
    pub fn new(client: Client, store: Store, policy: Policy) -> Self {
        Deps {
            client: client.keeping_reserve(policy.api.reserve_percent),
            store,
            policy,
            webhook_secrets: Vec::new(),
            notifier: None,
            replay: Default::default(),
            ssh: SshAccess::default(),
        }
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("client", &self.client)
            .field("store", &self.store.location())
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("ssh", &self.ssh)
            .finish()
    }
}

fn finding_key(f: &crate::report::Finding) -> String {
    format!("{}:{}:{}", f.rule, f.resource.kind.as_str(), f.resource.id)
}

const CRITICAL_KEY: &str = "state/critical-findings.json";

/// After a run: publish its HTML report, remember the critical findings, and notify (with a
/// link to the report) when something changed or a critical finding is new. A failed
/// notification is logged, never fatal.
async fn after_run(deps: &Deps, report: &Report, scope: &Scope) -> Result<(), ServiceError> {
    let previous: BTreeSet<String> = deps.store.get_json(CRITICAL_KEY).await?.unwrap_or_default();
    let current: BTreeSet<String> = report
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail && f.severity == Severity::Critical)
        .map(finding_key)
        .collect();
    let new: Vec<&String> = current.difference(&previous).collect();
    let expiring = expiry_news(deps, report).await?;
    let resolved = report.history.as_ref().is_some_and(|h| h.resolved > 0);
    let link = publish_html(deps, report, scope.droplet_ids.is_none()).await?;
    if let Some(n) = &deps.notifier {
        if report.summary.changes > 0 || !new.is_empty() || resolved || expiring {
            if let Err(e) = n.send(report, &new, link.as_deref()).await {
                tracing::error!(error = %e, "notification failed");
            }
        }
    }
    // Keep what is outside this run's scope; replace what is inside.
    let in_scope = |key: &String| match &scope.droplet_ids {
        None => true,
        Some(ids) => key
            .split(':')
            .nth(2)
            .and_then(|id| id.parse::<u64>().ok())
            .is_some_and(|id| ids.contains(&id)),
    };
    let next: BTreeSet<String> = previous
        .into_iter()
        .filter(|k| !in_scope(k))
        .chain(current)
        .collect();
    deps.store.put_json(CRITICAL_KEY, &next).await?;
    Ok(())
}

const EXPIRING_KEY: &str = "state/exemptions-expiring.json";

/// Whether an exemption entered the 7-day expiry notice since the last run (remembered in
/// `state/exemptions-expiring.json`), so that the notice is sent once, not every run.
async fn expiry_news(deps: &Deps, report: &Report) -> Result<bool, ServiceError> {
    let known: BTreeSet<String> = deps.store.get_json(EXPIRING_KEY).await?.unwrap_or_default();
    let now: BTreeSet<String> = report
        .exemptions_expiring
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect();
    if now != known {
        deps.store.put_json(EXPIRING_KEY, &now).await?;
    }
    Ok(now.difference(&known).next().is_some())
}

/// The scheduled run: the whole account, remediation per policy, report and ledger stored.
pub async fn scheduled_run(deps: &Deps, trigger: &str) -> Result<Report, ServiceError> {
    SeenBudget::seed(&deps.store, &deps.client).await;
    let scope = Scope::all();
    let opts = RemediateOptions {
        scope: scope.clone(),
        dry_run: false,
        trigger,
        ssh: &deps.ssh,
        now: None,
        ignore_grace: false,
        started: None,
    };
    let report = remediate::remediate(&deps.client, &deps.policy, &deps.store, opts).await?;
    after_run(deps, &report, &scope).await?;
    Ok(report)
}

/// Audit and remediate only `droplets`, as just read from the API, in `run` (begun before
/// the reads that found them, which count in it).
async fn recheck(deps: &Deps, droplets: Vec<Droplet>, run: &Run) -> Result<Report, ServiceError> {
    let scope = Scope {
        droplet_ids: Some(droplets.iter().map(|d| d.id).collect()),
        no_ssh: false,
        fresh: droplets,
    };
    let opts = RemediateOptions {
        scope: scope.clone(),
        dry_run: false,
        trigger: &run.trigger,
        ssh: &deps.ssh,
        now: None,
        ignore_grace: false,
        started: Some(run.clone()),
    };
    let report = remediate::remediate(&deps.client, &deps.policy, &deps.store, opts).await?;
    after_run(deps, &report, &scope).await?;
    Ok(report)
}

/// An empty report, for a run that had nothing to check.
fn empty_report(run: &Run, client: &Client) -> Report {
    Report::new(run.finish(client, Vec::new()), &[], vec![], vec![])
}

/// The Droplets carrying any of `tags`, GPU Droplets included. The API's `tag_name` filter
/// never returns GPU Droplets and cannot be combined with `type=gpus` (`do-api`,
/// `GET /v2/droplets`), so the GPU list is read once and filtered here.
async fn tagged_droplets(client: &Client, tags: &[String]) -> Result<Vec<Droplet>, ServiceError> {
    let mut out: Vec<Droplet> = Vec::new();
    if tags.is_empty() {
        return Ok(out);
    }
    for t in tags {
        out.extend(client.list_droplets_by_tag(t).await?);
    }
    let gpus = client.list_gpu_droplets().await?;
    out.extend(
        gpus.into_iter()
            .filter(|d| tags.iter().any(|t| d.has_tag(t))),
    );
    let mut seen = HashSet::new();
    out.retain(|d| seen.insert(d.id));
    Ok(out)
}

/// The Droplets an event touches: their ids, and those of them the event's reads already
/// returned (a tag's list), which a re-check need not read again.
#[derive(Debug, Default)]
pub struct Touched {
    pub ids: BTreeSet<u64>,
    pub read: Vec<Droplet>,
}

impl Touched {
    fn ids(ids: impl IntoIterator<Item = u64>) -> Self {
        Touched {
            ids: ids.into_iter().collect(),
            read: Vec::new(),
        }
    }

    fn read(read: Vec<Droplet>) -> Self {
        Touched {
            ids: read.iter().map(|d| d.id).collect(),
            read,
        }
    }
}

/// The Droplets an event touches.
pub async fn touched_droplets(client: &Client, event: &Event) -> Result<Touched, ServiceError> {
    Ok(match event {
        Event::DropletCreated { droplet_id } | Event::DropletUpdated { droplet_id } => {
            Touched::ids([*droplet_id])
        }
        Event::FirewallChanged { firewall_id } => match client.get_firewall(firewall_id).await {
            Ok(fw) => {
                let mut t = Touched::read(tagged_droplets(client, &fw.tags).await?);
                t.ids.extend(fw.droplet_ids.iter().copied());
                t
            }
            Err(e) if e.is_not_found() => Touched::default(),
            Err(e) => return Err(e.into()),
        },
        Event::TagChanged { tag } => {
            Touched::read(tagged_droplets(client, std::slice::from_ref(tag)).await?)
        }
        Event::VpcChanged { vpc_id } => match client.vpc_members(vpc_id).await {
            Ok(m) => Touched::ids(m.iter().filter_map(|m| m.droplet_id())),
            Err(e) if e.is_not_found() => Touched::default(),
            Err(e) => return Err(e.into()),
        },
        Event::Action {
            resource_type,
            resource_id,
            ..
        } => match (resource_type.as_deref(), resource_id) {
            (Some("droplet"), Some(id)) => Touched::ids([*id]),
            _ => Touched::default(),
        },
    })
}

/// A reply to an HTTP request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpReply {
    pub status: u16,
    pub body: Value,
}

fn reply(status: u16, body: Value) -> HttpReply {
    HttpReply { status, body }
}

fn replay_key(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("webhooks/{hex}.json")
}

/// A signed delivery: verify the exact bytes, claim its id, re-check the touched Droplets.
/// 401 for any signature failure (no detail), 413 over 256 KiB, 400 for a malformed event,
/// 200 with `{"duplicate": true}` for a delivery already claimed (by this instance or any
/// other), 200 with the report.
pub async fn handle_webhook(
    deps: &Deps,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> HttpReply {
    let (verified, event) = match accept(deps, headers, body, now) {
        Ok(accepted) => accepted,
        Err(reply) => return reply,
    };
    let key = replay_key(&verified.id);
    match claim(deps, &verified, &event, &key, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(webhook_id = %verified.id, "repeated delivery not processed");
            return reply(200, json!({"duplicate": true, "webhook_id": verified.id}));
        }
        Err(e) => return reply(500, json!({"error": e.to_string()})),
    }
    let processed = process_event(deps, &event).await;
    SeenBudget::save(&deps.store, &deps.client).await;
    match processed {
        // Held back to keep the incident-response reserve: the sender retries later.
        Ok(report) if report.run.stopped_early => {
            release(deps, &key).await;
            reply(
                503,
                json!({"error": report.run.incomplete.join("; "), "retry": true}),
            )
        }
        Ok(report) => reply(200, serde_json::to_value(&report).unwrap_or(Value::Null)),
        Err(e) => {
            release(deps, &key).await;
            tracing::error!(error = %e, "webhook processing failed");
            let status = if reserve_error(&e).is_some() {
                503
            } else {
                500
            };
            reply(status, json!({"error": e.to_string()}))
        }
    }
}

/// Releases a delivery's claim so that the sender's retry is processed.
async fn release(deps: &Deps, key: &str) {
    let _ = deps.store.delete(key).await;
    if let Ok(mut g) = deps.replay.lock() {
        *g = ReplayGuard::new();
    }
}

/// The [`ApiError::Reserve`] a run failed with, when it failed only to keep the
/// incident-response reserve.
fn reserve_error(e: &ServiceError) -> Option<&ApiError> {
    let api = match e {
        ServiceError::Api(e) | ServiceError::Remediate(RemediateError::Api(e)) => e,
        ServiceError::Remediate(RemediateError::Audit(AuditError::Api(e))) => e,
        _ => return None,
    };
    api.is_reserve().then_some(api)
}

/// The size limit, the signature over the exact bytes, then the event.
fn accept(
    deps: &Deps,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<(webhook::Verified, webhook::Event), HttpReply> {
    if body.len() > webhook::MAX_BODY {
        let error = format!("body larger than {} bytes", webhook::MAX_BODY);
        return Err(reply(413, json!({"error": error})));
    }
    let verified = webhook::verify(&deps.webhook_secrets, headers, body, now).map_err(|e| {
        tracing::warn!(reason = %e, "webhook rejected");
        reply(401, json!({"error": "unauthorized"}))
    })?;
    let event =
        webhook::parse_event(body).map_err(|e| reply(400, json!({"error": e.to_string()})))?;
    Ok((verified, event))
}

/// Claims the delivery id: this instance's memory first, then an atomic create-if-absent in
/// the state store, so that of two instances receiving the same delivery at once exactly one
/// processes it. `false`: already claimed.
async fn claim(
    deps: &Deps,
    verified: &webhook::Verified,
    event: &webhook::Event,
    key: &str,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    let fresh = deps
        .replay
        .lock()
        .map(|mut g| g.check_and_remember(&verified.id, verified.timestamp, now))
        .unwrap_or(true);
    if !fresh {
        return Ok(false);
    }
    let marker = json!({"webhook_id": verified.id, "timestamp": verified.timestamp,
                        "received_at": now_rfc3339(), "type": event.type_name()});
    deps.store.put_new_json(key, &marker).await
}

/// Re-checks the Droplets an event touched that still exist.
async fn process_event(deps: &Deps, event: &webhook::Event) -> Result<Report, ServiceError> {
    SeenBudget::seed(&deps.store, &deps.client).await;
    let run = Run::start("webhook", &deps.client);
    let touched = touched_droplets(&deps.client, event).await?;
    tracing::info!(
        event = event.type_name(),
        droplets = touched.ids.len(),
        "webhook event"
    );
    // Only Droplets that still exist (a deleted one has nothing left to check).
    let existing = existing_droplets(&deps.client, touched).await?;
    if existing.is_empty() {
        return Ok(empty_report(&run, &deps.client));
    }
    recheck(deps, existing, &run).await
}

/// The touched Droplets that still exist, as the API has them now: those already read, and
/// the others read one by one (a 404 leaves one out).
async fn existing_droplets(
    client: &Client,
    touched: Touched,
) -> Result<Vec<Droplet>, ServiceError> {
    let mut out = touched.read;
    let have: HashSet<u64> = out.iter().map(|d| d.id).collect();
    for id in touched.ids.iter().filter(|id| !have.contains(id)) {
        match client.get_droplet(*id).await {
            Ok(d) => out.push(d),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The incident-response payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    pub action: IncidentAction,
    #[serde(default)]
    pub droplet_ids: Vec<u64>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentAction {
    Audit,
    Remediate,
    Quarantine,
    Restore,
}

/// Incident response's audit or remediation (which ignores grace periods) of `ids` (all
/// Droplets when empty).
async fn incident_report(
    deps: &Deps,
    req: &IncidentRequest,
    ids: BTreeSet<u64>,
) -> Result<Report, ServiceError> {
    let scope = Scope {
        droplet_ids: (!ids.is_empty()).then_some(ids),
        ..Scope::default()
    };
    // Incident response may spend the requests the other runs keep for it.
    let client = &deps.client.spending_reserve();
    if req.action == IncidentAction::Audit {
        let (policy, store) = (&deps.policy, &deps.store);
        return Ok(crate::audit::audit_recorded(
            client, policy, store, &scope, "manual", &deps.ssh,
        )
        .await?);
    }
    let opts = RemediateOptions {
        scope: scope.clone(),
        dry_run: req.dry_run,
        trigger: "manual",
        ssh: &deps.ssh,
        now: None,
        ignore_grace: true,
        started: None,
    };
    let r = remediate::remediate(client, &deps.policy, &deps.store, opts).await?;
    if !req.dry_run {
        after_run(deps, &r, &scope).await?;
    }
    Ok(r)
}

/// Incident response: audit or remediate the given Droplets (all when none is given), or
/// quarantine / restore each of them.
pub async fn incident(deps: &Deps, req: IncidentRequest) -> Result<Value, ServiceError> {
    let ids: BTreeSet<u64> = req.droplet_ids.iter().copied().collect();
    match req.action {
        IncidentAction::Audit | IncidentAction::Remediate => {
            let report = incident_report(deps, &req, ids).await?;
            Ok(json!({"action": req.action, "report": report}))
        }
        IncidentAction::Quarantine | IncidentAction::Restore => {
            if ids.is_empty() {
                return Err(ServiceError::BadRequest(
                    "droplet_ids must name at least one Droplet".into(),
                ));
            }
            let reason = req.reason.clone().unwrap_or_default();
            if req.action == IncidentAction::Quarantine && reason.trim().is_empty() {
                return Err(ServiceError::BadRequest(
                    "reason is required for quarantine".into(),
                ));
            }
            if req.dry_run {
                return Err(ServiceError::BadRequest(
                    "dry_run applies to audit and remediate, not quarantine or restore".into(),
                ));
            }
            let run_id = uuid::Uuid::new_v4().to_string();
            let client = &deps.client.spending_reserve();
            let mut results = Vec::new();
            for id in ids {
                let r = if req.action == IncidentAction::Quarantine {
                    remediate::quarantine(
                        client,
                        &deps.policy,
                        &deps.store,
                        id,
                        &reason,
                        "manual",
                        &run_id,
                    )
                    .await
                } else {
                    remediate::restore(client, &deps.policy, &deps.store, id, "manual", &run_id)
                        .await
                };
                results.push(match r {
                    Ok(o) => json!({"droplet_id": id, "ok": true, "changed": o.changed, "status": o.record.status, "record": o.record, "changes": o.changes}),
                    Err(e) => json!({"droplet_id": id, "ok": false, "error": e.to_string()}),
                });
            }
            Ok(json!({"action": req.action, "results": results}))
        }
    }
}

/// The actions poller's cursor: the newest action id already handled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub last_action_id: u64,
    pub updated_at: String,
}

pub const CURSOR_KEY: &str = "cursors/actions-poller.json";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PollOutcome {
    pub actions_seen: usize,
    pub droplets: Vec<u64>,
    pub cursor: u64,
    pub report: Report,
}

/// `/v2/actions` newer than `last`, newest first, page by page until the cursor (only the
/// newest page without one).
async fn newer_actions(
    deps: &Deps,
    last: Option<u64>,
    max_pages: u64,
) -> Result<Vec<crate::digitalocean::Action>, ServiceError> {
    let mut fresh = Vec::new();
    let mut page = 1;
    'pages: loop {
        let (actions, more) = deps.client.actions_page(page).await?;
        for a in actions {
            if last.is_some_and(|l| a.id <= l) {
                break 'pages;
            }
            fresh.push(a);
        }
        if !more || last.is_none() || page >= max_pages {
            break;
        }
        page += 1;
    }
    Ok(fresh)
}

/// The Droplets that finished actions touched, and the next cursor: the newest action seen,
/// but never past one still in progress (it is read again next time).
fn touched_and_cursor(
    fresh: &[crate::digitalocean::Action],
    last: Option<u64>,
) -> (BTreeSet<u64>, u64) {
    let in_progress_min = fresh
        .iter()
        .filter(|a| a.status == "in-progress")
        .map(|a| a.id)
        .min();
    let done: Vec<_> = fresh.iter().filter(|a| a.status != "in-progress").collect();
    let ids: BTreeSet<u64> = done
        .iter()
        .filter(|a| a.resource_type.as_deref() == Some("droplet"))
        .filter_map(|a| a.resource_id)
        .collect();
    let newest = fresh.iter().map(|a| a.id).max();
    let mut next = match (newest, in_progress_min) {
        (Some(n), Some(p)) => n.min(p.saturating_sub(1)),
        (Some(n), None) => n,
        (None, _) => last.unwrap_or(0),
    };
    next = next.max(last.unwrap_or(0));
    (ids, next)
}

/// Reads `/v2/actions` newer than the stored cursor (newest first, page by page, stopping at
/// the cursor), re-checks the Droplets those actions touched, then moves the cursor. Actions
/// still in progress are left for the next poll. Without a cursor, only the newest page is read.
pub async fn poll_actions(deps: &Deps, max_pages: u64) -> Result<PollOutcome, ServiceError> {
    SeenBudget::seed(&deps.store, &deps.client).await;
    let run = Run::start("schedule", &deps.client);
    let cursor: Option<Cursor> = deps.store.get_json(CURSOR_KEY).await?;
    let last = cursor.as_ref().map(|c| c.last_action_id);
    let polled = poll_once(deps, &run, last, max_pages).await;
    SeenBudget::save(&deps.store, &deps.client).await;
    let (outcome, report) = match polled {
        Ok((outcome, report)) => (Some(outcome), report),
        Err(e) => match reserve_error(&e) {
            Some(reserve) => (None, run.stopped(&deps.client, reserve)),
            None => return Err(e),
        },
    };
    // Only after a re-check that finished: a failed or stopped one is retried from the same
    // cursor.
    let Some((seen, droplets, next)) = outcome.filter(|_| !report.run.stopped_early) else {
        return Ok(PollOutcome {
            actions_seen: 0,
            droplets: Vec::new(),
            cursor: last.unwrap_or(0),
            report,
        });
    };
    let updated_at = now_rfc3339();
    let c = Cursor {
        last_action_id: next,
        updated_at,
    };
    deps.store.put_json(CURSOR_KEY, &c).await?;
    Ok(PollOutcome {
        actions_seen: seen,
        droplets,
        cursor: next,
        report,
    })
}

/// One poll: the new actions, the re-check of the Droplets they touched; (actions seen,
/// Droplets re-checked, the next cursor) and the report.
async fn poll_once(
    deps: &Deps,
    run: &Run,
    last: Option<u64>,
    max_pages: u64,
) -> Result<((usize, Vec<u64>, u64), Report), ServiceError> {
    let fresh = newer_actions(deps, last, max_pages).await?;
    let (ids, next) = touched_and_cursor(&fresh, last);
    let existing = existing_droplets(&deps.client, Touched::ids(ids)).await?;
    let droplets: Vec<u64> = existing.iter().map(|d| d.id).collect();
    let report = if existing.is_empty() {
        empty_report(run, &deps.client)
    } else {
        recheck(deps, existing, run).await?
    };
    let seen: HashSet<u64> = fresh.iter().map(|a| a.id).collect();
    Ok(((seen.len(), droplets, next), report))
}
