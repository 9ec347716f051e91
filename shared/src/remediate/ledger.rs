//! The change record: every change remediation makes, written to the state store as it
//! happens, under `ledger/<date>/<time>-<run id>-<n>.json` (names sort in time order).

use chrono::Utc;
use serde_json::Value;

use super::plan::Step;
use crate::audit::now_rfc3339;
use crate::report::{Change, ChangeResource};
use crate::store::{StateStore, Store, StoreError};

/// Writes change records for one run.
pub struct Ledger<'a> {
    store: &'a Store,
    run_id: String,
    trigger: String,
    seq: usize,
}

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
    pub fn new(store: &'a Store, run_id: &str, trigger: &str) -> Self {
        Ledger {
            store,
            run_id: run_id.to_string(),
            trigger: trigger.to_string(),
            seq: 0,
        }
    }

    /// Saves one change record. Errors: the store could not take it (the caller stops).
    pub async fn record(&mut self, entry: Entry<'_>) -> Result<Change, StoreError> {
        self.seq += 1;
        let change = Change {
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
        };
        let now = Utc::now();
        let key = format!(
            "ledger/{}/{}-{}-{:04}.json",
            now.format("%Y-%m-%d"),
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            self.run_id,
            self.seq
        );
        self.store.put_json(&key, &change).await?;
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
