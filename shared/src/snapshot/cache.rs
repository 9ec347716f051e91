//! The last full read of the account, kept compact in the state store
//! (`cache/snapshot.json`) so that a re-check reads only what it touches and builds on it.
//!
//! It holds what a re-check cannot cheaply read again: every Droplet's name, region, VPC and
//! tags (for the `vpc.mixed-*` rules' neighbours and for exemptions), every firewall's id,
//! name and tags (to find the baseline firewall and size the firewall list), and the
//! account's SSH keys (`GET /v2/account/keys` allows only 10 requests a minute).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::digitalocean::{Client, Droplet, Networks, RateLimit, RegionRef, SshKey};
use crate::store::{Store, StoreError};

/// Where the cache lives in the state store.
pub const CACHE_KEY: &str = "cache/snapshot.json";

/// The cache's format; a cache of another version is not used (the next full read rewrites it).
pub const CACHE_VERSION: u32 = 1;

/// The largest cache read, in bytes (64 MiB; 10,000 Droplets take about 1.5 MiB). A larger
/// object in the store is not parsed: the re-check reads the whole account instead.
pub const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Where the lists' sizes at the last complete full read live ([`ListSizes`]).
pub const SIZES_KEY: &str = "cache/list-sizes.json";

/// How many items each list held at the last complete full read. The next full read asks for
/// all the pages these fill at once, with each list's first page, instead of waiting for the
/// first page's `meta.total`: one round trip instead of two. Kept apart from the cache, a few
/// bytes, so that reading it costs next to nothing before the first request. `None`: unknown
/// (that list is read as without it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSizes {
    pub droplets: Option<u64>,
    pub gpus: Option<u64>,
    pub firewalls: Option<u64>,
    pub vpcs: Option<u64>,
    pub ssh_keys: Option<u64>,
}

/// The largest sizes object read, in bytes; a larger one is not used.
const MAX_SIZES_BYTES: usize = 4096;

impl ListSizes {
    /// The sizes of a full read's lists (the regular Droplet list holds no GPU Droplet).
    pub fn of(snapshot: &Snapshot) -> Self {
        let gpus = snapshot.droplets.iter().filter(|d| d.is_gpu()).count() as u64;
        ListSizes {
            droplets: Some(snapshot.droplets.len() as u64 - gpus),
            gpus: Some(gpus),
            firewalls: Some(snapshot.firewalls.len() as u64),
            vpcs: snapshot.vpcs.as_ref().ok().map(|v| v.len() as u64),
            ssh_keys: snapshot.ssh_keys.as_ref().ok().map(|k| k.len() as u64),
        }
    }

    /// The sizes the last complete full read left, or none known (no object yet, or one
    /// that cannot be read or is not valid: the read then goes as without it; logged).
    pub async fn load(store: &Store) -> Self {
        let sizes = match crate::store::StateStore::get(store, SIZES_KEY).await {
            Ok(Some(b)) if b.len() <= MAX_SIZES_BYTES => {
                serde_json::from_slice(&b).map_err(|e| format!("not valid: {e}"))
            }
            Ok(Some(b)) => Err(format!("{} bytes, more than {MAX_SIZES_BYTES}", b.len())),
            Ok(None) => return ListSizes::default(),
            Err(e) => Err(e.to_string()),
        };
        sizes.unwrap_or_else(|why| {
            tracing::warn!(reason = %why, key = SIZES_KEY, "the lists' sizes are not used");
            ListSizes::default()
        })
    }

    /// Writes the sizes to the store.
    pub async fn save(&self, store: &Store) -> Result<(), StoreError> {
        let body = serde_json::to_vec(self).map_err(|e| encode_failed(&e.to_string()))?;
        crate::store::StateStore::put(store, SIZES_KEY, &body).await
    }

    /// These sizes as a full read may use them: all its hinted pages go out before any
    /// answer, so they are dropped (the read goes in two round trips, the first pages'
    /// answers telling the budget and the sizes) unless
    /// - the pages past the lists' first ones are at most two rounds of
    ///   `page_concurrency` (100), so that sizes far larger than the account (stale or
    ///   foreign) cost at most that many empty pages;
    /// - the client knows a budget seen within [`BLIND_WAVE_BUDGET_AGE`] (by this run, or an
    ///   earlier one: [`SeenBudget`]) that leaves room for the whole wave above the reserve
    ///   ([`Client::has_room_for`]).
    ///
    /// The SSH key list is hinted for at most [`MAX_BLIND_KEY_PAGES`] pages
    /// (`GET /v2/account/keys` allows 10 requests a minute).
    pub fn usable(&self, client: &Client) -> ListSizes {
        let per_page = u64::from(client.config().per_page.max(1));
        let pages = |n: Option<u64>| n.map_or(1, |n| n.div_ceil(per_page).max(1));
        let mut sizes = self.clone();
        if pages(sizes.ssh_keys) > MAX_BLIND_KEY_PAGES {
            sizes.ssh_keys = None;
        }
        let lists = [
            sizes.droplets,
            sizes.gpus,
            sizes.firewalls,
            sizes.vpcs,
            sizes.ssh_keys,
        ];
        let wave: u64 = lists.iter().map(|n| pages(*n)).sum();
        let past_first = wave - lists.len() as u64;
        let most = 2 * client.config().page_concurrency.max(1) as u64;
        let now = Utc::now().timestamp().max(0) as u64;
        let max_age = BLIND_WAVE_BUDGET_AGE.num_seconds() as u64;
        let recent = client
            .rate_limit_at()
            .is_some_and(|at| at <= now && now - at <= max_age);
        let why = if past_first == 0 {
            return sizes;
        } else if past_first > most {
            format!("they fill {past_first} pages past the first ones, more than {most}")
        } else if !recent {
            let age = BLIND_WAVE_BUDGET_AGE.num_minutes();
            format!("no budget seen in the last {age} minutes to send them against")
        } else if !client.has_room_for(wave) {
            format!("the budget last seen has no room for {wave} requests above the reserve")
        } else {
            return sizes;
        };
        tracing::info!(reason = %why, "the lists' sizes are not used: the first pages go first");
        ListSizes::default()
    }
}

/// The most pages of the account's SSH keys asked for before the first answers
/// (`GET /v2/account/keys` allows 10 requests a minute; DigitalOcean API reference, Introduction, "Rate Limit").
pub const MAX_BLIND_KEY_PAGES: u64 = 2;

/// How recent a budget must be for a full read to send its pages before any answer.
pub const BLIND_WAVE_BUDGET_AGE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Where the budget the API last told a run is kept ([`SeenBudget`]).
pub const BUDGET_KEY: &str = "cache/ratelimit.json";

/// The token's budget as a run's answers last gave it (`ratelimit-*`), kept in the state
/// store so that the next run (another Lambda instance, the CLI) holds its first requests to
/// the reserve before any answer of its own. A few dozen bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenBudget {
    #[serde(flatten)]
    pub rate: RateLimit,
    pub seen_at: DateTime<Utc>,
}

impl SeenBudget {
    /// Seeds `client` with the budget kept in `store` when it is newer than what the client
    /// knows ([`Client::seed_rate_limit`]). A missing, oversized or invalid object seeds
    /// nothing (logged). Call it where a run starts, before its first request.
    pub async fn seed(store: &Store, client: &Client) {
        let seen: Result<Option<SeenBudget>, String> =
            match crate::store::StateStore::get(store, BUDGET_KEY).await {
                Ok(Some(b)) if b.len() <= MAX_SIZES_BYTES => {
                    serde_json::from_slice(&b).map_err(|e| format!("not valid: {e}"))
                }
                Ok(Some(b)) => Err(format!("{} bytes, more than {MAX_SIZES_BYTES}", b.len())),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            };
        match seen {
            Ok(Some(seen)) => {
                let at = seen.seen_at.timestamp().max(0) as u64;
                if !seen.rate.plausible(at)
                    || seen.seen_at > Utc::now() + chrono::TimeDelta::minutes(5)
                {
                    tracing::warn!(key = BUDGET_KEY, limit = seen.rate.limit, remaining = seen.rate.remaining,
                        reset = seen.rate.reset, seen_at = %seen.seen_at,
                        "the budget last seen is not used: it cannot be true (more left than the limit, \
                         no limit, a reset more than an hour after the look, or a look in the future)");
                    return;
                }
                client.seed_rate_limit(seen.rate, at);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(reason = %why, key = BUDGET_KEY, "the budget last seen is not used")
            }
        }
    }

    /// Keeps the budget `client`'s answers gave (nothing when none did, or when it was kept
    /// already); a failure is logged.
    pub async fn save(store: &Store, client: &Client) {
        let Some((rate, at)) = client.rate_limit_to_keep() else {
            return;
        };
        let seen = SeenBudget {
            rate,
            seen_at: DateTime::from_timestamp(at as i64, 0).unwrap_or_else(Utc::now),
        };
        if let Err(e) = store.put_json(BUDGET_KEY, &seen).await {
            tracing::warn!(error = %e, key = BUDGET_KEY, "the budget seen was not kept");
        }
    }
}

/// Longest Droplet or firewall name kept, in characters (DigitalOcean allows 255).
const MAX_NAME_CHARS: usize = 255;

/// The last full read, compact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAccount {
    pub version: u32,
    /// When the full read finished.
    pub taken_at: DateTime<Utc>,
    pub droplets: Vec<CachedDroplet>,
    pub firewalls: Vec<CachedFirewall>,
    /// The account's SSH keys as that read found them.
    pub ssh_keys: Vec<SshKey>,
}

/// What the cache keeps of a Droplet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedDroplet {
    pub id: u64,
    pub name: String,
    /// Region slug.
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// What the cache keeps of a firewall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedFirewall {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

fn cut(name: &str) -> String {
    crate::text::first_chars(name, MAX_NAME_CHARS).to_string()
}

/// [`CachedAccount`] as [`CachedAccount::encode_of`] writes it: the same fields, borrowed.
#[derive(Serialize)]
struct AccountView<'a> {
    version: u32,
    taken_at: DateTime<Utc>,
    droplets: Vec<DropletView<'a>>,
    firewalls: Vec<FirewallView<'a>>,
    ssh_keys: &'a [SshKey],
}

/// [`CachedDroplet`], borrowed from a [`Droplet`].
#[derive(Serialize)]
struct DropletView<'a> {
    id: u64,
    name: &'a str,
    region: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vpc_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

impl<'a> DropletView<'a> {
    fn of(d: &'a Droplet) -> Self {
        DropletView {
            id: d.id,
            name: crate::text::first_chars(&d.name, MAX_NAME_CHARS),
            region: crate::text::first_chars(d.region_slug(), MAX_NAME_CHARS),
            vpc_uuid: d.vpc_uuid.as_deref(),
            tags: &d.tags,
        }
    }
}

/// [`CachedFirewall`], borrowed from a [`crate::digitalocean::Firewall`].
#[derive(Serialize)]
struct FirewallView<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

impl<'a> FirewallView<'a> {
    fn of(f: &'a crate::digitalocean::Firewall) -> Self {
        FirewallView {
            id: &f.id,
            name: crate::text::first_chars(&f.name, MAX_NAME_CHARS),
            tags: &f.tags,
        }
    }
}

/// The error of a cache that could not be encoded.
pub(crate) fn encode_failed(message: &str) -> StoreError {
    StoreError::Decode {
        location: CACHE_KEY.into(),
        message: message.to_string(),
    }
}

impl CachedAccount {
    /// The compact form of a full read taken at `taken_at`, encoded as the store keeps it
    /// (what [`CachedAccount::load`] reads back), straight from the snapshot's fields:
    /// encoding 10,000 Droplets allocates no string. `None` when the read was not complete (a
    /// short list, or SSH keys that could not be read): a re-check must not build on a
    /// partial view.
    pub fn encode_of(
        snapshot: &Snapshot,
        taken_at: DateTime<Utc>,
    ) -> Option<Result<Vec<u8>, StoreError>> {
        if !snapshot.incomplete_reasons().is_empty() {
            return None;
        }
        let view = AccountView {
            version: CACHE_VERSION,
            taken_at,
            droplets: snapshot.droplets.iter().map(DropletView::of).collect(),
            firewalls: snapshot.firewalls.iter().map(FirewallView::of).collect(),
            ssh_keys: snapshot.ssh_keys.as_ref().ok()?,
        };
        Some(serde_json::to_vec(&view).map_err(|e| encode_failed(&e.to_string())))
    }

    /// Writes the cache to the store.
    pub async fn save(&self, store: &Store) -> Result<(), StoreError> {
        Self::save_encoded(store, &self.encode()?).await
    }

    /// The cache as the store keeps it (compact JSON).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| encode_failed(&e.to_string()))
    }

    /// Writes a cache [`CachedAccount::encode`] made.
    pub async fn save_encoded(store: &Store, body: &[u8]) -> Result<(), StoreError> {
        crate::store::StateStore::put(store, CACHE_KEY, body).await
    }

    /// The cache, if there is one of this version no older than `max_age` at `now`; otherwise
    /// why not (for the log: the re-check then reads the whole account).
    pub async fn load(
        store: &Store,
        now: DateTime<Utc>,
        max_age: std::time::Duration,
    ) -> Result<CachedAccount, String> {
        let bytes = crate::store::StateStore::get(store, CACHE_KEY)
            .await
            .map_err(|e| format!("the cached full read could not be read: {e}"))?
            .ok_or_else(|| "no full read is cached yet".to_string())?;
        if bytes.len() > MAX_CACHE_BYTES {
            return Err(format!(
                "the cached full read is {} bytes, more than the {MAX_CACHE_BYTES} this tool reads",
                bytes.len()
            ));
        }
        let cache: CachedAccount = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the cached full read is not valid: {e}"))?;
        if cache.version != CACHE_VERSION {
            return Err(format!(
                "the cached full read is of version {}, not {CACHE_VERSION}",
                cache.version
            ));
        }
        let age = now.signed_duration_since(cache.taken_at);
        let bound = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        if age < -chrono::Duration::minutes(5) {
            return Err(format!(
                "the cached full read says it was taken at {}, in the future (a clock or the \
                 store is wrong)",
                cache.taken_at.to_rfc3339()
            ));
        }
        if age > bound {
            return Err(format!(
                "the cached full read was taken at {}, beyond the {} bound ([api] snapshot_max_age)",
                cache.taken_at.to_rfc3339(),
                humantime::format_duration(max_age)
            ));
        }
        Ok(cache)
    }

    /// Adds (or updates) a firewall this tool just created or changed in the cached full read,
    /// so that re-checks until the next full read know it (the baseline firewall above all:
    /// without it, each re-check would plan to create it again). A missing or unreadable
    /// cache is left alone; a cache that cannot be written is logged.
    pub async fn remember_firewall(store: &Store, fw: &crate::digitalocean::Firewall) {
        let Ok(Some(bytes)) = crate::store::StateStore::get(store, CACHE_KEY).await else {
            return;
        };
        let Ok(mut cache) = serde_json::from_slice::<CachedAccount>(&bytes) else {
            return;
        };
        if cache.version != CACHE_VERSION || bytes.len() > MAX_CACHE_BYTES {
            return;
        }
        cache.firewalls.retain(|f| f.id != fw.id);
        cache.firewalls.insert(
            0,
            CachedFirewall {
                id: fw.id.clone(),
                name: cut(&fw.name),
                tags: fw.tags.clone(),
            },
        );
        if let Err(e) = cache.save(store).await {
            tracing::warn!(error = %e, firewall = %fw.id, "the cached full read does not know the new firewall");
        }
    }

    /// The id of a firewall named `name` as the full read found it (the first in its list).
    pub fn firewall_named(&self, name: &str) -> Option<&str> {
        self.firewalls
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.id.as_str())
    }
}

impl CachedDroplet {
    /// A Droplet as the full read saw it, with what the cache keeps (no addresses).
    pub fn to_droplet(&self) -> Droplet {
        Droplet {
            id: self.id,
            name: self.name.clone(),
            status: String::new(),
            tags: self.tags.clone(),
            vpc_uuid: self.vpc_uuid.clone(),
            networks: Networks::default(),
            region: Some(RegionRef {
                slug: self.region.clone(),
            }),
            gpu_info: None,
            locked: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digitalocean::{ClientConfig, Token};
    use crate::rules::examples;
    use crate::store::StateStore;

    fn client() -> Client {
        // Never sends: these tests look only at what it knows of the budget.
        let cfg = ClientConfig::new("http://127.0.0.1:9", Token::new("t"));
        Client::new(cfg).expect("client").keeping_reserve(20)
    }

    fn in_an_hour() -> u64 {
        (Utc::now().timestamp() + 3600) as u64
    }

    fn now() -> u64 {
        Utc::now().timestamp() as u64
    }

    fn budget(remaining: u64) -> RateLimit {
        RateLimit {
            limit: 5_000,
            remaining,
            reset: in_an_hour(),
        }
    }

    /// The sizes of a 10,000-Droplet account of section 7 of BENCHMARKS.md.
    fn ten_thousand() -> ListSizes {
        ListSizes {
            droplets: Some(9_950),
            gpus: Some(50),
            firewalls: Some(1_020),
            vpcs: Some(30),
            ssh_keys: Some(3),
        }
    }

    #[test]
    fn sizes_go_out_before_any_answer_only_against_a_recent_budget_with_room() {
        // Nothing known of the budget: the first pages go first.
        assert_eq!(ten_thousand().usable(&client()), ListSizes::default());
        // Known, but from 16 minutes ago: not recent enough to send 59 requests against.
        let c = client();
        c.seed_rate_limit(budget(4_000), now() - 16 * 60);
        assert_eq!(ten_thousand().usable(&c), ListSizes::default());
        // 59 requests at once: 1,058 left is room above the 1,000 kept, 1,058 - 59 is not.
        let c = client();
        c.seed_rate_limit(budget(1_058), now());
        assert_eq!(ten_thousand().usable(&c), ListSizes::default());
        let c = client();
        c.seed_rate_limit(budget(1_060), now());
        assert_eq!(ten_thousand().usable(&c), ten_thousand());
        // Incident response may spend the reserve.
        let c = client().spending_reserve();
        c.seed_rate_limit(budget(10), now());
        assert_eq!(ten_thousand().usable(&c), ten_thousand());
    }

    #[test]
    fn sizes_far_larger_than_any_account_cost_no_blind_pages() {
        let c = client();
        c.seed_rate_limit(budget(5_000), now());
        let huge = ListSizes {
            droplets: Some(1_000_000),
            gpus: Some(1_000_000),
            firewalls: Some(1_000_000),
            vpcs: Some(1_000_000),
            ssh_keys: Some(1_000_000),
        };
        assert_eq!(huge.usable(&c), ListSizes::default());
        // 101 pages past the first ones: one more than two rounds of 50.
        let over = ListSizes {
            droplets: Some(200 * 102),
            ..ListSizes::default()
        };
        assert_eq!(over.usable(&c), ListSizes::default());
        let at = ListSizes {
            droplets: Some(200 * 101),
            ..ListSizes::default()
        };
        assert_eq!(at.usable(&c), at);
        // The SSH key list (10 requests a minute) is hinted for two pages at most.
        let keys = ListSizes {
            ssh_keys: Some(401),
            ..ten_thousand()
        };
        let used = keys.usable(&c);
        assert_eq!(used.ssh_keys, None);
        assert_eq!(used.droplets, Some(9_950));
    }

    #[tokio::test]
    async fn a_cache_from_the_future_or_past_the_bound_is_not_used_and_says_which() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::Dir(crate::store::DirStore::new(dir.path()));
        let now = Utc::now();
        let hour = std::time::Duration::from_secs(3600);
        for (taken_at, says) in [
            (now + chrono::TimeDelta::days(1), "in the future"),
            (now - chrono::TimeDelta::hours(2), "beyond the 1h bound"),
        ] {
            let cache = CachedAccount {
                version: CACHE_VERSION,
                taken_at,
                droplets: vec![],
                firewalls: vec![],
                ssh_keys: vec![],
            };
            store.put_json(CACHE_KEY, &cache).await.expect("put");
            let why = CachedAccount::load(&store, now, hour)
                .await
                .expect_err("not used");
            assert!(why.contains(says), "{why}");
        }
        let recent = CachedAccount {
            version: CACHE_VERSION,
            taken_at: now - chrono::TimeDelta::minutes(59),
            droplets: vec![],
            firewalls: vec![],
            ssh_keys: vec![],
        };
        store.put_json(CACHE_KEY, &recent).await.expect("put");
        assert!(CachedAccount::load(&store, now, hour).await.is_ok());
    }

    #[tokio::test]
    async fn the_budget_a_run_heard_seeds_the_next_run_unless_newer_is_known() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::Dir(crate::store::DirStore::new(dir.path()));
        let c = client();
        // Nothing kept yet; and a seed alone is not kept (only what a run's answers said).
        SeenBudget::seed(&store, &c).await;
        assert_eq!(c.rate_limit(), None);
        c.seed_rate_limit(budget(900), now());
        SeenBudget::save(&store, &c).await;
        assert_eq!(store.get(BUDGET_KEY).await.expect("get"), None);
        let seen = SeenBudget {
            rate: budget(900),
            seen_at: Utc::now(),
        };
        store.put_json(BUDGET_KEY, &seen).await.expect("put");
        let next = client();
        SeenBudget::seed(&store, &next).await;
        assert_eq!(next.rate_limit(), Some(seen.rate));
        assert!(!next.has_room_for(1));
        // A client that knows a newer budget keeps it.
        let warm = client();
        warm.seed_rate_limit(budget(3_000), now() + 5);
        SeenBudget::seed(&store, &warm).await;
        assert_eq!(warm.rate_limit(), Some(budget(3_000)));
        // An hour that is over holds nothing back.
        let over = SeenBudget {
            rate: RateLimit {
                reset: now() - 1,
                ..seen.rate
            },
            seen_at: Utc::now(),
        };
        store.put_json(BUDGET_KEY, &over).await.expect("put");
        let next = client();
        SeenBudget::seed(&store, &next).await;
        assert_eq!(next.rate_limit(), None);
        assert!(next.has_room_for(1_000_000));
        // Not valid: ignored.
        store
            .put(BUDGET_KEY, b"{\"limit\": -1}")
            .await
            .expect("put");
        let next = client();
        SeenBudget::seed(&store, &next).await;
        assert_eq!(next.rate_limit(), None);
    }

    #[test]
    fn a_full_read_encodes_to_the_cache_that_loads_back() {
        let taken_at = "2026-12-01T00:00:00Z".parse().expect("time");
        let mut long = examples::droplet(2, &[], None);
        long.name = "é".repeat(MAX_NAME_CHARS + 45);
        let key = SshKey {
            id: Some(7),
            fingerprint: Some("aa:bb".into()),
            public_key: "ssh-ed25519 AAAA owner".into(),
            name: "owner".into(),
        };
        let mut snapshot = Snapshot {
            droplets: vec![examples::droplet(1, &["env:prod"], Some("vpc-1")), long],
            firewalls: vec![examples::firewall("fw-1", vec![], &[1], &["web"])],
            ssh_keys: Ok(vec![key.clone()]),
            ..Snapshot::default()
        };
        let body = CachedAccount::encode_of(&snapshot, taken_at)
            .expect("a complete read is cached")
            .expect("encoded");
        let cache: CachedAccount = serde_json::from_slice(&body).expect("it loads back");
        let expected = CachedAccount {
            version: CACHE_VERSION,
            taken_at,
            droplets: vec![
                CachedDroplet {
                    id: 1,
                    name: "droplet-1".into(),
                    region: "nyc3".into(),
                    vpc_uuid: Some("vpc-1".into()),
                    tags: vec!["env:prod".into()],
                },
                CachedDroplet {
                    id: 2,
                    name: "é".repeat(MAX_NAME_CHARS),
                    region: "nyc3".into(),
                    vpc_uuid: None,
                    tags: vec![],
                },
            ],
            firewalls: vec![CachedFirewall {
                id: "fw-1".into(),
                name: snapshot.firewalls[0].name.clone(),
                tags: vec!["web".into()],
            }],
            ssh_keys: vec![key],
        };
        assert_eq!(cache, expected);

        snapshot.ssh_keys = Err("GET /v2/account/keys: 429".into());
        assert!(
            CachedAccount::encode_of(&snapshot, taken_at).is_none(),
            "a read without the SSH keys is not cached"
        );
        snapshot.ssh_keys = Ok(vec![]);
        snapshot.incomplete = vec!["droplets: 200 of 400".into()];
        assert!(CachedAccount::encode_of(&snapshot, taken_at).is_none());
    }
}
