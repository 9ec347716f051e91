//! What the API told us about the account (the snapshot), which Droplets a run looks at
//! (the scope), and reading a snapshot: the whole account in a handful of list requests
//! (never one per Droplet), or, for a re-check, only what it touches ([`targeted`]) on top of
//! the last full read ([`cache`]).

pub mod cache;
pub mod targeted;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use crate::digitalocean::{ApiError, Client, Droplet, Firewall, Listed, SshKey, Vpc};
use crate::policy::Policy;
use crate::store::{Store, StoreError};
use cache::{CachedAccount, ListSizes, SeenBudget};

/// What the API told us about the account, read in a handful of list requests.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub droplets: Vec<Droplet>,
    pub firewalls: Vec<Firewall>,
    /// VPCs, or why they could not be listed (the VPC checks then report `unknown`).
    pub vpcs: Result<Vec<Vpc>, String>,
    /// Account SSH keys, or why they could not be listed.
    pub ssh_keys: Result<Vec<SshKey>, String>,
    /// Per Droplet: what the SSH probe and the service audit saw (empty when not run).
    pub ssh: BTreeMap<u64, SshObservation>,
    /// Why the lists read may not be the whole account (e.g. a list short of its `meta.total`).
    pub incomplete: Vec<String>,
    /// How it was read.
    pub read: ReadKind,
}

/// How a snapshot was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadKind {
    /// Every list of the account, now.
    #[default]
    Full,
    /// A re-check's read ([`targeted`]): the touched Droplets, their firewalls and the VPC
    /// list now; the other Droplets and the account's SSH keys as the full read taken at
    /// `full_read_at` saw them.
    Targeted { full_read_at: DateTime<Utc> },
}

/// What a connection to one Droplet showed.
#[derive(Debug, Clone, Default)]
pub struct SshObservation {
    /// `ip:port` probed.
    pub target: Option<String>,
    /// The offered authentication methods, or why the probe failed; `None`: not probed.
    pub probe: Option<Result<crate::ssh::ProbeResult, String>>,
    /// The listening sockets, or why they could not be listed; `None`: not listed.
    pub listeners: Option<Result<Vec<crate::ssh::listeners::Listener>, String>>,
    /// Every `ssh.probe_users` probe, in order: (user, offered methods or why it failed).
    pub user_probes: Vec<(String, Result<crate::ssh::ProbeResult, String>)>,
    /// With the management key: each `Match` block's effective methods, or why they could not
    /// be read; `None`: not read.
    pub match_blocks: Option<Result<Vec<crate::ssh::MatchBlock>, String>>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            droplets: Vec::new(),
            firewalls: Vec::new(),
            vpcs: Ok(Vec::new()),
            ssh_keys: Ok(Vec::new()),
            ssh: BTreeMap::new(),
            incomplete: Vec::new(),
            read: ReadKind::Full,
        }
    }
}

/// Which checks to run on which Droplets.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these Droplets (all when `None`).
    pub droplet_ids: Option<BTreeSet<u64>>,
    /// Leave out the checks that need a connection to the Droplet.
    pub no_ssh: bool,
    /// Droplets of the scope the caller has just read from the API (an event's tag list):
    /// a re-check's read takes them as they are instead of reading them again.
    pub fresh: Vec<Droplet>,
}

impl Scope {
    pub fn all() -> Self {
        Scope::default()
    }

    pub fn droplets(ids: impl IntoIterator<Item = u64>) -> Self {
        Scope {
            droplet_ids: Some(ids.into_iter().collect()),
            ..Scope::default()
        }
    }

    pub fn includes(&self, id: u64) -> bool {
        self.droplet_ids.as_ref().is_none_or(|s| s.contains(&id))
    }
}

/// A full read not yet written to the cache: [`PendingCache::start_beside`] builds the cache
/// on a second thread while the run evaluates, then starts its write; [`PendingCache::start`]
/// builds it at once. Empty for a re-check's read, without a state store, and for an
/// incomplete read (a re-check must never build on a partial view).
#[derive(Debug, Default)]
#[must_use = "start the cache write (start or start_beside), then await its finish()"]
pub struct PendingCache(Option<(Store, DateTime<Utc>, Client)>);

impl PendingCache {
    /// Runs `work`, and meanwhile builds the cache of `snapshot` and encodes it on a scoped
    /// thread; then starts the write. Blocks the calling thread for as long as the longer of
    /// the two: for CPU-bound work (evaluation) that a run does there anyway.
    pub fn start_beside<R>(self, snapshot: &Snapshot, work: impl FnOnce() -> R) -> (R, CacheWrite) {
        let Some((store, taken_at, client)) = self.0 else {
            return (work(), CacheWrite::default());
        };
        let (out, body) = std::thread::scope(|s| {
            let body = s.spawn(|| {
                let cache = CachedAccount::encode_of(snapshot, taken_at)?;
                Some(cache.map(|c| (c, ListSizes::of(snapshot))))
            });
            (work(), body.join())
        });
        let body = match body {
            Ok(body) => body,
            Err(_) => Some(Err(cache::encode_failed("the cache's encoder panicked"))),
        };
        (out, CacheWrite::spawn(store, client, body))
    }

    /// Builds the cache of `snapshot` now and starts its write.
    pub fn start(self, snapshot: &Snapshot) -> CacheWrite {
        self.start_beside(snapshot, || ()).1
    }
}

/// The write of a full read to the cache, running beside the rest of the run. Await
/// [`CacheWrite::finish`] before the run ends (a Lambda is frozen once it answers).
#[derive(Debug, Default)]
#[must_use = "the cache write must be awaited with finish() before the run ends"]
pub struct CacheWrite(Option<tokio::task::JoinHandle<()>>);

impl CacheWrite {
    /// Writes the encoded cache and the lists' sizes (`None`: nothing to cache), and beside
    /// them the budget the read saw ([`SeenBudget`]), on a task; a failure is logged, never
    /// fatal.
    fn spawn(
        store: Store,
        client: Client,
        body: Option<Result<(Vec<u8>, ListSizes), StoreError>>,
    ) -> Self {
        CacheWrite(Some(tokio::spawn(async move {
            let budget = SeenBudget::save(&store, &client);
            let Some(body) = body else {
                return budget.await;
            };
            let cached = async {
                let saved = match body {
                    Ok((body, sizes)) => CachedAccount::save_encoded(&store, &body)
                        .await
                        .map(|()| sizes),
                    Err(e) => Err(e),
                };
                let sizes = match saved {
                    Ok(sizes) => sizes,
                    Err(e) => {
                        tracing::warn!(error = %e, "the full read was not cached; re-checks read the whole account");
                        return;
                    }
                };
                if let Err(e) = sizes.save(&store).await {
                    tracing::warn!(error = %e, "the lists' sizes were not kept; the next full read goes in two round trips");
                }
            };
            tokio::join!(cached, budget);
        })))
    }

    /// Waits for the write (its failure was logged).
    pub async fn finish(self) {
        if let Some(h) = self.0 {
            let _ = h.await;
        }
    }
}

/// Reads the account for a run over `scope`. A re-check (`scope` names Droplets) with a state
/// store builds on the last full read when one no older than `[api] snapshot_max_age` is
/// cached there ([`targeted::read`]); otherwise, and for whole-account runs, everything is
/// read ([`Snapshot::fetch`]) and, with a store, handed back as a [`PendingCache`] for the
/// re-checks that follow (written only when complete). With a store, the client starts from
/// the budget the last run saw and the budget this read saw is kept for the next
/// ([`SeenBudget`]); the lists' sizes are used only as [`ListSizes::usable`] allows.
pub async fn read(
    client: &Client,
    store: Option<&Store>,
    policy: &Policy,
    scope: &Scope,
) -> Result<(Snapshot, PendingCache), ApiError> {
    let Some(store) = store else {
        let snapshot = Snapshot::fetch(client, &ListSizes::default()).await?;
        return Ok((snapshot, PendingCache::default()));
    };
    // A run that started elsewhere (the functions) seeded its client where it began.
    let seed = || async {
        if client.rate_limit().is_none() {
            SeenBudget::seed(store, client).await;
        }
    };
    if let Some(ids) = &scope.droplet_ids {
        let max_age = policy.api.snapshot_max_age.0;
        let (cache, ()) = tokio::join!(CachedAccount::load(store, Utc::now(), max_age), seed());
        match cache {
            Ok(cache) => {
                let read = targeted::read(client, &cache, policy, ids, &scope.fresh).await;
                SeenBudget::save(store, client).await;
                return Ok((read?, PendingCache::default()));
            }
            Err(why) => tracing::info!(reason = %why, "the re-check reads the whole account"),
        }
    }
    let started = std::time::Instant::now();
    let (sizes, ()) = tokio::join!(ListSizes::load(store), seed());
    let sizes = sizes.usable(client);
    let snapshot = match Snapshot::fetch(client, &sizes).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            SeenBudget::save(store, client).await;
            return Err(e);
        }
    };
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "lists read");
    // The budget is kept beside the cache, while the run evaluates.
    let pending = (store.clone(), Utc::now(), client.clone());
    Ok((snapshot, PendingCache(Some(pending))))
}

impl Snapshot {
    /// When the full read this snapshot builds on was taken, for a re-check's read.
    pub fn full_read_at(&self) -> Option<DateTime<Utc>> {
        match self.read {
            ReadKind::Full => None,
            ReadKind::Targeted { full_read_at } => Some(full_read_at),
        }
    }

    /// Droplets (regular and GPU), firewalls, VPCs and the account's SSH keys, read
    /// concurrently. Droplets and firewalls are required: an error reading them is the
    /// snapshot's error. A list short of its `meta.total` is kept, and its shortfall goes to
    /// [`Snapshot::incomplete`]. A VPC or SSH key list that cannot be read, or is short, makes
    /// only the checks that need it `unknown`.
    ///
    /// `sizes`: each list's length at the last complete full read, if known; its pages are
    /// then asked for at once ([`Client::read_list_expecting`]).
    pub async fn fetch(client: &Client, sizes: &ListSizes) -> Result<Snapshot, ApiError> {
        let (droplets, gpus, firewalls, vpcs, keys) = tokio::join!(
            client.read_list_expecting::<Droplet>("/v2/droplets", "droplets", &[], sizes.droplets),
            client.read_list_expecting::<Droplet>(
                "/v2/droplets",
                "droplets",
                &[("type", "gpus")],
                sizes.gpus
            ),
            client.read_list_expecting("/v2/firewalls", "firewalls", &[], sizes.firewalls),
            client.read_list_expecting("/v2/vpcs", "vpcs", &[], sizes.vpcs),
            client.read_list_expecting("/v2/account/keys", "ssh_keys", &[], sizes.ssh_keys),
        );
        let mut incomplete = Vec::new();
        let mut seen = HashSet::new();
        let droplets: Vec<Droplet> = kept(droplets?, &mut incomplete)
            .into_iter()
            .chain(kept(gpus?, &mut incomplete))
            .filter(|d| seen.insert(d.id))
            .collect();
        Ok(Snapshot {
            droplets,
            firewalls: unique_firewalls(kept(firewalls?, &mut incomplete)),
            vpcs: optional(vpcs)?,
            ssh_keys: optional(keys)?,
            ssh: Default::default(),
            incomplete,
            read: ReadKind::Full,
        })
    }

    /// Every reason the snapshot may not show the whole account: lists short of their
    /// `meta.total`, and VPC or SSH key lists that could not be read. Empty when complete.
    pub fn incomplete_reasons(&self) -> Vec<String> {
        let mut out = self.incomplete.clone();
        out.extend(self.vpcs.as_ref().err().cloned());
        out.extend(self.ssh_keys.as_ref().err().cloned());
        out
    }
}

/// A list only some checks need (VPCs, SSH keys): its items, or why not (those checks are then
/// `unknown`). A request held back for the incident-response reserve is the run's error
/// instead: the run stops early, as it would on any other list.
pub(crate) fn optional<T>(
    listed: Result<Listed<T>, ApiError>,
) -> Result<Result<Vec<T>, String>, ApiError> {
    match listed.and_then(Listed::complete) {
        Err(e) if e.is_reserve() => Err(e),
        other => Ok(other.map_err(|e| e.to_string())),
    }
}

/// The items of a list, noting its shortfall (if any) in `incomplete`.
fn kept<T>(listed: Listed<T>, incomplete: &mut Vec<String>) -> Vec<T> {
    incomplete.extend(listed.shortfall());
    listed.items
}

/// The firewalls, each once: a list that names one twice (a page boundary moving under
/// concurrent changes, or a faulty API) must not give one finding twice.
pub(crate) fn unique_firewalls(firewalls: Vec<Firewall>) -> Vec<Firewall> {
    let mut seen = HashSet::new();
    firewalls
        .into_iter()
        .filter(|f| seen.insert(f.id.clone()))
        .collect()
}
