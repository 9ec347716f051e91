//! Incident response: isolate a Droplet behind the quarantine firewall, and undo it exactly.
//!
//! Cloud Firewalls only allow, never deny: anything left attached would still admit traffic.
//! So quarantine records every membership first (no record saved, no change made), attaches
//! the quarantine firewall before detaching anything (the Droplet is never left uncovered,
//! which would mean open to all), detaches every other firewall, and checks that nothing else
//! covers the Droplet. Both directions are idempotent and resume after a crash half way.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apply::ensure_firewall;
use super::{Entry, Ledger, RemediateError};
use crate::audit::now_rfc3339;
use crate::digitalocean::{
    Client, Droplet, Firewall, FirewallRequest, InboundRule, Protocol, Targets,
};
use crate::net::Cidr;
use crate::policy::Policy;
use crate::report::{Change, ChangeResource, ResourceType};
use crate::store::Store;

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
    /// Firewalls that had the Droplet by id.
    pub firewall_ids: Vec<String>,
    /// Every tag the Droplet had.
    pub tags: Vec<String>,
    /// Those of its tags that attached firewalls (removed during quarantine).
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

fn quarantine_request(policy: &Policy) -> FirewallRequest {
    FirewallRequest {
        name: policy.remediation.quarantine_name.clone(),
        inbound_rules: vec![InboundRule {
            action: Default::default(),
            protocol: Protocol::Tcp,
            ports: policy.ssh.port.to_string(),
            sources: Targets::addresses(policy.management.cidrs.iter().map(Cidr::to_string)),
        }],
        outbound_rules: vec![],
        droplet_ids: vec![],
        tags: vec![policy.remediation.quarantine_name.clone()],
    }
}

/// Firewalls covering the Droplet other than the quarantine one.
fn others<'a>(fws: &'a [Firewall], d: &Droplet, qname: &str) -> Vec<&'a Firewall> {
    fws.iter()
        .filter(|f| f.name != qname && f.covers(d))
        .collect()
}

async fn save(store: &Store, r: &QuarantineRecord) -> Result<(), RemediateError> {
    store
        .put_json(&key(r.droplet_id), r)
        .await
        .map_err(RemediateError::from)
}

pub async fn quarantine(
    client: &Client,
    policy: &Policy,
    store: &Store,
    droplet_id: u64,
    reason: &str,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    if policy.management.cidrs.is_empty() {
        return Err(RemediateError::Refused(
            "management.cidrs is empty: the quarantine firewall would admit no SSH at all; set the management ranges in the policy".into(),
        ));
    }
    if reason.trim().is_empty() {
        return Err(RemediateError::Refused("a reason is required".into()));
    }
    let qname = policy.remediation.quarantine_name.clone();
    let droplet = client.get_droplet(droplet_id).await?;
    let fws = client.list_firewalls().await?;
    let existing: Option<QuarantineRecord> = store.get_json(&key(droplet_id)).await?;
    let mut record = match existing {
        // Resume: the recorded memberships are the truth, not the half-changed current state.
        Some(r) if r.status == "quarantining" || r.status == "quarantined" => r,
        _ => {
            let covering = others(&fws, &droplet, &qname);
            let attaching: BTreeSet<&String> =
                covering.iter().flat_map(|f| f.tags.iter()).collect();
            let r = QuarantineRecord {
                droplet_id,
                droplet_name: droplet.name.clone(),
                reason: reason.to_string(),
                trigger: trigger.to_string(),
                status: "quarantining".into(),
                quarantined_at: now_rfc3339(),
                restored_at: None,
                firewall_ids: covering
                    .iter()
                    .filter(|f| f.droplet_ids.contains(&droplet_id))
                    .map(|f| f.id.clone())
                    .collect(),
                tags: droplet
                    .tags
                    .iter()
                    .filter(|t| **t != qname)
                    .cloned()
                    .collect(),
                firewall_tags: droplet
                    .tags
                    .iter()
                    .filter(|t| attaching.contains(t))
                    .cloned()
                    .collect(),
            };
            save(store, &r).await?;
            r
        }
    };
    let mut changed = false;
    // 1. The quarantine firewall first, so the Droplet is never left without a firewall.
    let (qfw, _, _) = ensure_firewall(client, &quarantine_request(policy)).await?;
    if !droplet.has_tag(&qname) {
        client.tag_droplets(&qname, &[droplet_id]).await?;
        changed = true;
    }
    // 2. Detach everything else, by id and by tag.
    for fw in fws
        .iter()
        .filter(|f| f.name != qname && f.droplet_ids.contains(&droplet_id))
    {
        client
            .remove_droplets_from_firewall(&fw.id, &[droplet_id])
            .await?;
        changed = true;
    }
    let attaching: BTreeSet<&String> = fws
        .iter()
        .filter(|f| f.name != qname)
        .flat_map(|f| f.tags.iter())
        .collect();
    for t in droplet
        .tags
        .iter()
        .filter(|t| attaching.contains(t) && **t != qname)
    {
        client.untag_droplets(t, &[droplet_id]).await?;
        changed = true;
    }
    // 3. Verify: only the quarantine firewall covers it.
    let now = client.get_droplet(droplet_id).await?;
    let fws_now = client.list_firewalls().await?;
    let left: Vec<String> = others(&fws_now, &now, &qname)
        .iter()
        .map(|f| format!("{} ({})", f.name, f.id))
        .collect();
    if !left.is_empty() {
        return Err(RemediateError::Verify(format!(
            "Droplet {droplet_id} is still covered by {}; its quarantine record is kept, re-run quarantine",
            left.join(", ")
        )));
    }
    if !fws_now.iter().any(|f| f.id == qfw.id && f.covers(&now)) {
        return Err(RemediateError::Verify(format!(
            "the quarantine firewall {} does not cover Droplet {droplet_id}",
            qfw.id
        )));
    }
    let mut changes = Vec::new();
    if changed || record.status != "quarantined" {
        record.status = "quarantined".into();
        save(store, &record).await?;
        let mut ledger = Ledger::new(store, run_id, trigger);
        changes.push(
            ledger
                .record(Entry {
                    resource: ChangeResource { kind: ResourceType::Droplet, id: droplet_id.to_string() },
                    action: "quarantine-droplet",
                    before: json!({"firewall_ids": record.firewall_ids, "firewall_tags": record.firewall_tags, "tags": record.tags}),
                    after: json!({"firewalls": [qfw.id], "tags": now.tags}),
                    result: "ok".into(),
                    rule: "quarantine",
                    reason,
                })
                .await?,
        );
    }
    Ok(QuarantineOutcome {
        record,
        changes,
        changed,
    })
}

pub async fn restore(
    client: &Client,
    policy: &Policy,
    store: &Store,
    droplet_id: u64,
    trigger: &str,
    run_id: &str,
) -> Result<QuarantineOutcome, RemediateError> {
    let qname = policy.remediation.quarantine_name.clone();
    let Some(mut record) = store.get_json::<QuarantineRecord>(&key(droplet_id)).await? else {
        return Err(RemediateError::Refused(format!(
            "Droplet {droplet_id} has no quarantine record in {}; nothing to restore",
            crate::store::StateStore::location(store)
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
    record.status = "restoring".into();
    save(store, &record).await?;
    let droplet = client.get_droplet(droplet_id).await?;
    let fws = client.list_firewalls().await?;
    let mut missing = Vec::new();
    // 1. Put the original firewalls back first; the quarantine one goes last.
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
    if droplet.has_tag(&qname) && !record.tags.contains(&qname) {
        client.untag_droplets(&qname, &[droplet_id]).await?;
    }
    // 2. Verify: exactly the recorded memberships and tags.
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
