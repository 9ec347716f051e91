//! Incident response: isolate a Droplet, and undo it exactly.
//!
//! Quarantine changes one tag and nothing else. The quarantine firewall
//! (`remediation.quarantine_name`) is attached by `remediation.quarantine_tag` and denies
//! everything outside `management.cidrs`, inbound (tcp, udp, icmp) and outbound, while it
//! allows SSH from the management ranges. A deny wins over any allow of any firewall
//! (`do-api/README.md`), so the Droplet's other firewalls can stay attached and its other tags
//! stay as they are: load balancers and anything else that selects by tag see no change, and
//! `restore` (removing the tag) is exact by construction.
//!
//! Records written by the earlier method, which detached every firewall and removed firewall
//! tags, are still restored by that method (`detach`).

mod detach;
mod firewall;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use firewall::{quarantine_request, MAX_ADDRESSES_PER_RULE};

use super::{Entry, Ledger, RemediateError};
use crate::audit::now_rfc3339;
use crate::digitalocean::{Client, Droplet};
use crate::policy::Policy;
use crate::report::{Change, ChangeResource, ResourceType};
use crate::snapshot::cache::SeenBudget;
use crate::store::{StateStore, Store};

/// The method of a quarantine recorded by this version.
pub const METHOD_DENY_TAG: &str = "deny-tag";
/// The earlier method: every firewall detached, firewall tags removed.
pub const METHOD_DETACH: &str = "detach";

fn detach_method() -> String {
    METHOD_DETACH.into()
}

/// What the Droplet looked like before quarantine: the state store's `quarantine/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub droplet_id: u64,
    pub droplet_name: String,
    pub reason: String,
    pub trigger: String,
    /// `quarantining`, `quarantined`, `restoring` or `restored`.
    pub status: String,
    pub quarantined_at: String,
    #[serde(default)]
    pub restored_at: Option<String>,
    /// `deny-tag`, or `detach` for records of the earlier method (absent in them).
    #[serde(default = "detach_method")]
    pub method: String,
    /// The tag that attached the quarantine firewall (`deny-tag`).
    #[serde(default)]
    pub quarantine_tag: String,
    /// Firewalls that had the Droplet by id (`detach` only).
    #[serde(default)]
    pub firewall_ids: Vec<String>,
    /// Every tag the Droplet had.
    pub tags: Vec<String>,
    /// Those of its tags that attached firewalls, removed during quarantine (`detach` only).
    #[serde(default)]
    pub firewall_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineOutcome {
    pub record: QuarantineRecord,
    pub changes: Vec<Change>,
    /// Whether this call changed anything (false on a repeat).
    pub changed: bool,
}

fn key(id: u64) -> String {
    format!("quarantine/{id}.json")
}

async fn save(store: &Store, r: &QuarantineRecord) -> Result<(), RemediateError> {
    store
        .put_json(&key(r.droplet_id), r)
        .await
        .map_err(RemediateError::from)
}

/// The change record of a quarantine or a restore.
fn entry<'a>(d: &Droplet, action: &'a str, rule: &'a str, reason: &'a str) -> Entry<'a> {
    Entry {
        resource: ChangeResource {
            kind: ResourceType::Droplet,
            id: d.id.to_string(),
        },
        action,
        before: json!(null),
        after: json!(null),
        result: "ok".into(),
        rule,
        reason,
    }
}

/// Quarantines Droplet `droplet_id`: ensures the quarantine firewall (with its tag), then tags
/// the Droplet, then verifies from a fresh read that the quarantine firewall covers it.
/// Idempotent. Errors: no reason, no management ranges (the Droplet would be cut off from its
/// owners), management ranges too fragmented for the 50-rule limit (nothing is changed), the
/// Droplet does not exist, an API or store failure, or the verification failed. Incident
/// response spends the reserve; the budget it saw is kept for the runs after it
/// ([`SeenBudget`]).
pub async fn quarantine(
    client: &Client,
    policy: &Policy,
    store: &Store,
    droplet_id: u64,
    reason: &str,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    let out = quarantine_once(client, policy, store, droplet_id, reason, trigger, run_id).await;
    SeenBudget::save(store, client).await;
    out
}

async fn quarantine_once(
    client: &Client,
    policy: &Policy,
    store: &Store,
    droplet_id: u64,
    reason: &str,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    if reason.trim().is_empty() {
        return Err(RemediateError::Refused("a reason is required".into()));
    }
    let request = quarantine_request(policy)?;
    let droplet = client.get_droplet(droplet_id).await?;
    let existing: Option<QuarantineRecord> = store.get_json(&key(droplet_id)).await?;
    if let Some(r) = existing
        .as_ref()
        .filter(|r| r.method == METHOD_DETACH && r.status != "restored")
    {
        return detach::resume(client, policy, store, r.clone(), run_id).await;
    }
    let tag = policy.remediation.quarantine_tag.clone();
    let mut record = match existing {
        Some(r) if r.status == "quarantining" || r.status == "quarantined" => r,
        _ => new_record(&droplet, &tag, reason, trigger),
    };
    save(store, &record).await?;
    let fw = firewall::ensure(client, &request).await?;
    let changed = !droplet.has_tag(&tag);
    if changed {
        client.create_tag(&tag).await?;
        client.tag_droplets(&tag, &[droplet_id]).await?;
    }
    let now = firewall::verify(client, policy, droplet_id, &fw.id).await?;
    let mut changes = Vec::new();
    if changed || record.status != "quarantined" {
        record.status = "quarantined".into();
        save(store, &record).await?;
        let mut e = entry(&now, "quarantine-droplet", "quarantine", reason);
        e.before = json!({"tags": record.tags});
        e.after = json!({"tags": now.tags, "firewall": {"id": fw.id, "name": fw.name}, "method": METHOD_DENY_TAG});
        changes.push(Ledger::new(store, run_id, trigger).record(e).await?);
    }
    Ok(QuarantineOutcome {
        record,
        changes,
        changed,
    })
}

fn new_record(d: &Droplet, tag: &str, reason: &str, trigger: &str) -> QuarantineRecord {
    QuarantineRecord {
        droplet_id: d.id,
        droplet_name: d.name.clone(),
        reason: reason.to_string(),
        trigger: trigger.to_string(),
        status: "quarantining".into(),
        quarantined_at: now_rfc3339(),
        restored_at: None,
        method: METHOD_DENY_TAG.into(),
        quarantine_tag: tag.to_string(),
        firewall_ids: vec![],
        tags: d.tags.iter().filter(|t| *t != tag).cloned().collect(),
        firewall_tags: vec![],
    }
}

/// Undoes a quarantine: removes the quarantine tag (or, for a `detach` record, puts back the
/// recorded firewalls and tags), then verifies the Droplet's tags are as recorded. Errors: no
/// record, an unfinished quarantine, an API or store failure, or the verification failed.
/// The budget it saw is kept for the runs after it ([`SeenBudget`]).
pub async fn restore(
    client: &Client,
    policy: &Policy,
    store: &Store,
    droplet_id: u64,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    let out = restore_once(client, policy, store, droplet_id, trigger, run_id).await;
    SeenBudget::save(store, client).await;
    out
}

async fn restore_once(
    client: &Client,
    policy: &Policy,
    store: &Store,
    droplet_id: u64,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    let Some(mut record) = store.get_json::<QuarantineRecord>(&key(droplet_id)).await? else {
        return Err(RemediateError::Refused(format!(
            "Droplet {droplet_id} has no quarantine record in {}; nothing to restore",
            store.location()
        )));
    };
    if record.status == "restored" {
        return Ok(QuarantineOutcome {
            record,
            changes: vec![],
            changed: false,
        });
    }
    if record.status == "quarantining" {
        return Err(RemediateError::Refused(format!(
            "the quarantine of Droplet {droplet_id} did not finish; run quarantine again first, then restore"
        )));
    }
    if record.method == METHOD_DETACH {
        return detach::restore(client, policy, store, record, trigger, run_id).await;
    }
    record.status = "restoring".into();
    save(store, &record).await?;
    let tag = record.quarantine_tag.clone();
    let droplet = client.get_droplet(droplet_id).await?;
    if droplet.has_tag(&tag) && !record.tags.contains(&tag) {
        client.untag_droplets(&tag, &[droplet_id]).await?;
    }
    let now = client.get_droplet(droplet_id).await?;
    let tags_now: std::collections::BTreeSet<&String> = now.tags.iter().collect();
    if tags_now != record.tags.iter().collect() {
        return Err(RemediateError::Verify(format!(
            "Droplet {droplet_id} has tags {tags_now:?}; expected {:?}",
            record.tags
        )));
    }
    record.status = "restored".into();
    record.restored_at = Some(now_rfc3339());
    save(store, &record).await?;
    let mut e = entry(&now, "restore-droplet", "restore", &record.reason);
    e.before = json!({"tags": droplet.tags});
    e.after = json!({"tags": now.tags});
    let change = Ledger::new(store, run_id, trigger).record(e).await?;
    Ok(QuarantineOutcome {
        record,
        changes: vec![change],
        changed: true,
    })
}
