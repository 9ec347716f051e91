//! What the Lambda functions do, without Lambda: scheduled run, webhook, incident response,
//! actions poller. The function crates only parse the event, call these, and shape the answer.

mod config;
mod delivery;
mod fit;
mod incident;
mod notify;
mod poll;
mod publish;
mod schedule;

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use config::{parse_secret_list, policy_from_env};
pub use delivery::{handle_webhook, touched_droplets, HttpReply};
pub use fit::{fit_response, LAMBDA_RESPONSE_LIMIT};
pub use incident::{incident, IncidentAction, IncidentRequest};
pub use notify::Notifier;
pub use poll::{poll_actions, Cursor, PollOutcome, CURSOR_KEY};
pub use publish::{dated_key, publish_html, LATEST_KEY, LINK_VALIDITY};
pub use schedule::scheduled_run;

use crate::audit::{now_rfc3339, AuditError, Run};
use crate::digitalocean::{ApiError, Client, Droplet};
use crate::policy::{Policy, PolicyError};
use crate::remediate::{self, RemediateError, RemediateOptions};
use crate::report::{FindingKey, Report, Severity, Status};
use crate::snapshot::cache::SeenBudget;
use crate::snapshot::Scope;
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

const CRITICAL_KEY: &str = "state/critical-findings.json";

/// After a run: publish its HTML report, remember the critical findings, and notify (with a
/// link to the report) when something changed or a critical finding is new. A failed
/// notification is logged, never fatal.
async fn after_run(deps: &Deps, report: &Report, scope: &Scope) -> Result<(), ServiceError> {
    let previous: BTreeSet<FindingKey> =
        deps.store.get_json(CRITICAL_KEY).await?.unwrap_or_default();
    let current: BTreeSet<FindingKey> = report
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail && f.severity == Severity::Critical)
        .map(FindingKey::of)
        .collect();
    let new: Vec<&FindingKey> = current.difference(&previous).collect();
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
    let in_scope = |key: &FindingKey| match &scope.droplet_ids {
        None => true,
        Some(ids) => key.droplet_id().is_some_and(|id| ids.contains(&id)),
    };
    let next: BTreeSet<FindingKey> = previous
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
