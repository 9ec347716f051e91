//! A re-check's read: only what the touched Droplets need, fresh, on top of the last full
//! read (the cache) for what it does not read again.
//!
//! Fresh: each touched Droplet (`GET /v2/droplets/{id}`, unless the caller just read it), the
//! firewalls that cover them (`GET /v2/droplets/{id}/firewalls` each, or the firewall list
//! when that takes fewer requests), the baseline firewall when `firewall.missing` is
//! enforced, and the VPC list. From the cache: the other Droplets (what the VPC rules know of
//! the neighbours) and the account's SSH keys.

use std::collections::{BTreeSet, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::cache::CachedAccount;
use super::{unique_firewalls, ReadKind, Snapshot};
use crate::catalog::{Mode, FIREWALL_MISSING};
use crate::digitalocean::{ApiError, Client, Droplet, Firewall};
use crate::policy::Policy;

/// Requests sent at once for per-Droplet reads.
const CONCURRENCY: usize = 8;

/// Reads `ids` (those in `fresh` are taken as given) and what covers them, over `cache`.
/// A touched Droplet the API no longer has is left out of [`Snapshot::droplets`] (the caller's
/// scope check reports it). Errors: a Droplet, firewall or VPC read that failed.
pub async fn read(
    client: &Client,
    cache: &CachedAccount,
    policy: &Policy,
    ids: &BTreeSet<u64>,
    fresh: &[Droplet],
) -> Result<Snapshot, ApiError> {
    let (touched, firewalls, vpcs) = tokio::join!(
        droplets(client, ids, fresh),
        covering(client, cache, policy, ids),
        client.read_list("/v2/vpcs", "vpcs", &[]),
    );
    let touched = touched?;
    let read: HashSet<u64> = ids.iter().copied().collect();
    let neighbours = cache
        .droplets
        .iter()
        .filter(|d| !read.contains(&d.id))
        .map(|d| d.to_droplet());
    Ok(Snapshot {
        droplets: touched.into_iter().chain(neighbours).collect(),
        firewalls: unique_firewalls(firewalls?),
        vpcs: super::optional(vpcs)?,
        ssh_keys: Ok(cache.ssh_keys.clone()),
        ssh: Default::default(),
        incomplete: Vec::new(),
        read: ReadKind::Targeted {
            full_read_at: cache.taken_at,
        },
    })
}

/// The touched Droplets that still exist: those given, and the others read one by one.
async fn droplets(
    client: &Client,
    ids: &BTreeSet<u64>,
    fresh: &[Droplet],
) -> Result<Vec<Droplet>, ApiError> {
    let given: Vec<Droplet> = fresh
        .iter()
        .filter(|d| ids.contains(&d.id))
        .cloned()
        .collect();
    let have: HashSet<u64> = given.iter().map(|d| d.id).collect();
    let missing: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !have.contains(id))
        .collect();
    let read: Vec<Option<Droplet>> = stream::iter(missing)
        .map(|id| async move {
            match client.get_droplet(id).await {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(given
        .into_iter()
        .chain(read.into_iter().flatten())
        .collect())
}

/// The firewalls covering `ids` (by id or tag), read the cheaper way: one request per
/// Droplet, or the whole list when the last full read says it takes fewer pages. Plus the
/// baseline firewall when remediation may attach it (its plan needs to know it exists).
async fn covering(
    client: &Client,
    cache: &CachedAccount,
    policy: &Policy,
    ids: &BTreeSet<u64>,
) -> Result<Vec<Firewall>, ApiError> {
    let per_page = client.config().per_page.max(1) as usize;
    let list_pages = cache.firewalls.len().div_ceil(per_page).max(1);
    if ids.len() > list_pages {
        return client.list_firewalls().await;
    }
    let mut fws: Vec<Firewall> = stream::iter(ids.iter().copied())
        .map(|id| async move {
            match client.droplet_firewalls(id).await {
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                r => r,
            }
        })
        .buffered(CONCURRENCY)
        .try_concat()
        .await?;
    let baseline = &policy.firewall.baseline_name;
    let wanted =
        policy.rule_enabled(FIREWALL_MISSING) && policy.mode_for(FIREWALL_MISSING) == Mode::Enforce;
    if let Some(id) = cache.firewall_named(baseline).filter(|_| wanted) {
        if !fws.iter().any(|f| f.id == id) {
            match client.get_firewall(id).await {
                Ok(fw) => fws.push(fw),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(fws)
}
