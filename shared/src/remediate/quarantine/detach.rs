//! Restoring a quarantine recorded by the earlier method (`detach`), which detached every
//! firewall by id and removed the tags that attached firewalls. Restore puts the recorded
//! memberships and tags back, then removes the quarantine tag (the quarantine name, then).

use std::collections::BTreeSet;

use serde_json::json;

use super::{save, QuarantineOutcome, QuarantineRecord};
use crate::audit::now_rfc3339;
use crate::digitalocean::Client;
use crate::policy::Policy;
use crate::remediate::{Entry, Ledger, RemediateError};
use crate::report::{ChangeResource, ResourceType};
use crate::store::Store;

/// A quarantine call on a Droplet that an earlier version quarantined by detaching: nothing
/// to do when it finished; restore first when it did not (its record is the truth).
pub(super) async fn resume(
    _client: &Client,
    _policy: &Policy,
    _store: &Store,
    record: QuarantineRecord,
    _run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    if record.status == "quarantined" {
        return Ok(QuarantineOutcome {
            record,
            changes: vec![],
            changed: false,
        });
    }
    Err(RemediateError::Refused(format!(
        "Droplet {} has an unfinished quarantine by the earlier method (detach); run restore first, then quarantine again",
        record.droplet_id
    )))
}

/// Puts back the recorded firewalls (by id) and tags, then removes the quarantine tag, and
/// verifies both from a fresh read.
pub(super) async fn restore(
    client: &Client,
    policy: &Policy,
    store: &Store,
    mut record: QuarantineRecord,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    let droplet_id = record.droplet_id;
    let qname = policy.remediation.quarantine_name.clone();
    record.status = "restoring".into();
    save(store, &record).await?;
    let droplet = client.get_droplet(droplet_id).await?;
    let missing = put_back(client, &record, &droplet, &qname).await?;
    let now = verify(client, &record, &missing).await?;
    record.status = "restored".into();
    record.restored_at = Some(now_rfc3339());
    save(store, &record).await?;
    let mut ledger = Ledger::new(store, run_id, trigger);
    let result = if missing.is_empty() {
        "ok".to_string()
    } else {
        format!(
            "ok; firewalls deleted since the quarantine were not restored: {}",
            missing.join(", ")
        )
    };
    let change = ledger
        .record(Entry {
            resource: ChangeResource {
                kind: ResourceType::Droplet,
                id: droplet_id.to_string(),
            },
            action: "restore-droplet",
            before: json!({"firewalls": [qname], "tags": droplet.tags}),
            after: json!({"firewall_ids": record.firewall_ids, "tags": now.tags}),
            result,
            rule: "restore",
            reason: &record.reason,
        })
        .await?;
    Ok(QuarantineOutcome {
        record,
        changes: vec![change],
        changed: true,
    })
}

/// Puts the recorded firewalls (by id) and tags back first, then removes the quarantine tag.
/// Returns the recorded firewalls deleted since the quarantine.
async fn put_back(
    client: &Client,
    record: &QuarantineRecord,
    droplet: &crate::digitalocean::Droplet,
    qname: &str,
) -> Result<Vec<String>, RemediateError> {
    let droplet_id = record.droplet_id;
    let fws = client.list_firewalls().await?;
    let mut missing = Vec::new();
    for id in &record.firewall_ids {
        match fws.iter().find(|f| f.id == *id) {
            Some(f) if !f.droplet_ids.contains(&droplet_id) => {
                client.add_droplets_to_firewall(id, &[droplet_id]).await?
            }
            Some(_) => {}
            None => missing.push(id.clone()),
        }
    }
    for t in record.tags.iter().filter(|t| !droplet.has_tag(t)) {
        client.create_tag(t).await?;
        client.tag_droplets(t, &[droplet_id]).await?;
    }
    if droplet.has_tag(qname) && !record.tags.iter().any(|t| t == qname) {
        client.untag_droplets(qname, &[droplet_id]).await?;
    }
    Ok(missing)
}

/// From a fresh read: exactly the recorded memberships (less the firewalls deleted since) and
/// tags.
async fn verify(
    client: &Client,
    record: &QuarantineRecord,
    missing: &[String],
) -> Result<crate::digitalocean::Droplet, RemediateError> {
    let droplet_id = record.droplet_id;
    let now = client.get_droplet(droplet_id).await?;
    let fws_now = client.list_firewalls().await?;
    let by_id: BTreeSet<String> = fws_now
        .iter()
        .filter(|f| f.droplet_ids.contains(&droplet_id))
        .map(|f| f.id.clone())
        .collect();
    let want_ids: BTreeSet<String> = record
        .firewall_ids
        .iter()
        .filter(|id| !missing.contains(id))
        .cloned()
        .collect();
    let tags_now: BTreeSet<&String> = now.tags.iter().collect();
    let tags_want: BTreeSet<&String> = record.tags.iter().collect();
    if by_id != want_ids || tags_now != tags_want {
        return Err(RemediateError::Verify(format!(
            "Droplet {droplet_id} is by id in {by_id:?} with tags {tags_now:?}; expected {want_ids:?} and {tags_want:?}"
        )));
    }
    Ok(now)
}
