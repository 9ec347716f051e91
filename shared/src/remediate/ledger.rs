//! The change record: every change remediation makes, written to the state store as it
//! happens, under `ledger/<date>/<time>-<run id>-<n>.json` (names sort in time order).
//!
//! Two phases, so that no change escapes the record: before a change, its record is written
//! with the result `intended` (and an index entry under `intents/`); after it, the same record
//! gets its result and the index entry is deleted. A store that cannot take records stops the
//! run before its first write. A crash between the two leaves the intent, which a later run
//! reconciles ([`Ledger::reconcile`]) once the intent's lease ([`INTENT_LEASE`]) has run out:
//! the record's result becomes `interrupted: …`, saying who decided it and when the lease
//! ended, and the run reports it. An intent whose lease still runs belongs to a live run (runs
//! overlap: the schedule, webhooks, the CLI) and is left alone.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

use super::step::Step;
use crate::audit::now_rfc3339;
use crate::report::{Change, ChangeResource};
use crate::store::{StateStore, Store, StoreError};

/// Writes change records for one run.
pub struct Ledger<'a> {
    store: &'a Store,
    run_id: String,
    trigger: String,
    seq: usize,
    /// Intents written and not yet completed.
    pending: Vec<Intent>,
    /// How long this run's intents are taken to be alive ([`INTENT_LEASE`] unless the policy
    /// says otherwise).
    lease: Duration,
}

/// An announced change: the ledger record holding it, its index entry, and until when the run
/// that announced it is taken to be alive.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Intent {
    ledger_key: String,
    intent_key: String,
    change: Change,
    /// RFC 3339; absent in intents of earlier versions, whose lease is counted from the
    /// change's `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<String>,
}

pub use crate::policy::INTENT_LEASE;

impl Intent {
    /// When the lease ends: `lease_until`, else the change's time plus [`INTENT_LEASE`]; an
    /// intent whose times do not parse has no lease left.
    fn lease_end(&self) -> DateTime<Utc> {
        let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
        self.lease_until
            .as_deref()
            .and_then(parse)
            .or_else(|| parse(&self.change.at).map(|at| at + lease(INTENT_LEASE)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

fn lease(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// The result of a change whose run stopped between its intent and its record.
pub const INTERRUPTED: &str = "interrupted: the run stopped after announcing this change and before recording its result; re-read the resource to see whether it happened";

/// One change as it is recorded: what, on which resource, before and after, and why.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub resource: ChangeResource,
    /// The action name, e.g. `attach-baseline-firewall`.
    pub action: &'a str,
    pub before: Value,
    pub after: Value,
    /// `ok`, `ok (…)` or `failed: <reason>`.
    pub result: String,
    /// The rule whose finding the change fixes (or `quarantine`, `restore`).
    pub rule: &'a str,
    /// Why: the plan's description, or the operator's reason.
    pub reason: &'a str,
}

impl<'a> Entry<'a> {
    /// An entry for a planned step, on the step's own resource.
    pub fn for_step(step: &'a Step, before: Value, after: Value, result: String) -> Self {
        Entry {
            resource: step.resource.clone(),
            action: &step.action,
            before,
            after,
            result,
            rule: &step.rule,
            reason: &step.description,
        }
    }
}

impl<'a> Ledger<'a> {
    /// The state store the ledger writes to.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    pub fn new(store: &'a Store, run_id: &str, trigger: &str) -> Self {
        Ledger {
            store,
            run_id: run_id.to_string(),
            trigger: trigger.to_string(),
            seq: 0,
            pending: Vec::new(),
            lease: lease(INTENT_LEASE),
        }
    }

    /// This run's intents live for `lease` (`[remediation] intent_lease`).
    pub fn with_lease(mut self, lease_for: std::time::Duration) -> Self {
        self.lease = lease(lease_for);
        self
    }

    fn change(&self, entry: Entry<'_>) -> Change {
        Change {
            at: now_rfc3339(),
            resource: entry.resource,
            action: entry.action.to_string(),
            before: entry.before,
            after: entry.after,
            result: entry.result,
            rule: entry.rule.to_string(),
            reason: entry.reason.to_string(),
            trigger: self.trigger.clone(),
            run_id: self.run_id.clone(),
        }
    }

    /// Announces a change before it is made: its ledger record, with the result `intended`.
    /// Errors: the store could not take it (the caller stops before changing anything).
    pub async fn intend(&mut self, entry: &Entry<'_>) -> Result<(), StoreError> {
        self.seq += 1;
        let mut change = self.change(entry.clone());
        change.result = "intended".into();
        let lease_until = (Utc::now() + self.lease).to_rfc3339_opts(SecondsFormat::Secs, true);
        let intent = Intent {
            ledger_key: self.ledger_key(),
            intent_key: format!("intents/{}-{:04}.json", self.run_id, self.seq),
            change,
            lease_until: Some(lease_until),
        };
        self.store
            .put_json(&intent.ledger_key, &intent.change)
            .await?;
        self.store.put_json(&intent.intent_key, &intent).await?;
        self.pending.push(intent);
        Ok(())
    }

    /// [`Ledger::intend`] for a planned step, on its own resource, before and after unknown yet.
    pub async fn intend_step(&mut self, step: &Step) -> Result<(), StoreError> {
        self.intend(&Entry::for_step(
            step,
            Value::Null,
            Value::Null,
            String::new(),
        ))
        .await
    }

    /// Completes every intent a stopped run left: another run's intent whose lease has run out
    /// and whose record still says `intended`. Its record's result becomes `interrupted: …`,
    /// with who decided it and when the lease ended. An intent whose lease still runs is a live
    /// run's and is left alone; one whose record already has its result (the run finished just
    /// after its lease) only loses its index entry. Returns the records made `interrupted`.
    pub async fn reconcile(&mut self) -> Result<Vec<Change>, StoreError> {
        let now = Utc::now();
        let mut out = Vec::new();
        for key in self.store.list("intents/").await? {
            let Some(intent) = self.store.get_json::<Intent>(&key).await? else {
                continue;
            };
            if intent.change.run_id == self.run_id {
                continue;
            }
            let ends = intent.lease_end();
            if now < ends {
                tracing::debug!(run = %intent.change.run_id, lease_until = %ends, "a live run's intent left alone");
                continue;
            }
            if let Some(c) = self.interrupt(&key, intent, ends, now).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Marks `intent` (at index `key`) interrupted, unless its run recorded it meanwhile.
    async fn interrupt(
        &self,
        key: &str,
        mut intent: Intent,
        ends: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Change>, StoreError> {
        let recorded = self.store.get_json::<Change>(&intent.ledger_key).await?;
        if recorded.is_some_and(|c| c.result != "intended") {
            self.store.delete(key).await?;
            return Ok(None);
        }
        let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        intent.change.result = format!(
            "{INTERRUPTED} (decided by run {} at {}: the lease of run {} ended at {} with no result recorded)",
            self.run_id,
            secs(now),
            intent.change.run_id,
            secs(ends)
        );
        self.store
            .put_json(&intent.ledger_key, &intent.change)
            .await?;
        self.store.delete(key).await?;
        let c = intent.change;
        tracing::warn!(action = %c.action, resource = %c.resource.id, run = %c.run_id, "interrupted change reconciled");
        Ok(Some(c))
    }

    fn ledger_key(&self) -> String {
        let now = Utc::now();
        format!(
            "ledger/{}/{}-{}-{:04}.json",
            now.format("%Y-%m-%d"),
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            self.run_id,
            self.seq
        )
    }

    /// Saves one change record, completing its intent when one was announced (the same
    /// resource and action; a create names the firewall only once it exists). Errors: the
    /// store could not take it (the caller stops).
    pub async fn record(&mut self, entry: Entry<'_>) -> Result<Change, StoreError> {
        let change = self.change(entry);
        let (id, action) = (&change.resource.id, &change.action);
        let same = |i: &Intent| i.change.resource.id == *id && i.change.action == *action;
        let found = self.pending.iter().position(same);
        let found = found.or_else(|| self.pending.iter().position(|i| i.change.action == *action));
        let intent = found.map(|i| self.pending.remove(i));
        let key = match &intent {
            Some(i) => i.ledger_key.clone(),
            None => {
                self.seq += 1;
                self.ledger_key()
            }
        };
        self.store.put_json(&key, &change).await?;
        if let Some(i) = intent {
            self.store.delete(&i.intent_key).await?;
        }
        tracing::info!(action = %change.action, resource = %change.resource.id, result = %change.result, "change recorded");
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
