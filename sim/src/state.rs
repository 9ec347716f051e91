//! The simulator's account state, and how it renders as the API's JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::digitalocean::{Action, Firewall, SshKey, Vpc};

use crate::inject::Override;

/// A Droplet as the simulator keeps it; rendered with every field the spec requires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimDroplet {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub tags: Vec<String>,
    pub vpc_uuid: Option<String>,
    pub region: String,
    pub size_slug: String,
    pub public_ipv4: String,
    pub private_ipv4: String,
    pub ipv6: Option<String>,
    pub gpu: bool,
    pub created_at: String,
}

impl SimDroplet {
    /// The Droplet as the API renders it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.rendered()).unwrap_or(Value::Null)
    }

    /// The Droplet as the API renders it, serialised straight from borrowed fields (a page
    /// of 200 renders without building a JSON tree per Droplet).
    pub fn rendered(&self) -> DropletJson<'_> {
        let (memory, vcpus, disk) = self.dimensions();
        let region = std::slice::from_ref(&self.region);
        let size_slug = std::slice::from_ref(&self.size_slug);
        DropletJson {
            id: self.id,
            name: &self.name,
            memory,
            vcpus,
            disk,
            disk_info: [DiskInfoJson {
                kind: "local",
                size: AmountJson {
                    amount: disk,
                    unit: "gib",
                },
            }],
            locked: false,
            status: &self.status,
            kernel: (),
            created_at: &self.created_at,
            features: if self.ipv6.is_some() {
                &["private_networking", "ipv6"]
            } else {
                &["private_networking"]
            },
            backup_ids: [],
            next_backup_window: (),
            snapshot_ids: [],
            image: ImageJson::ubuntu(region),
            volume_ids: [],
            size: self.size(region),
            size_slug: &self.size_slug,
            networks: self.networks(),
            region: RegionJson {
                name: region_name(&self.region),
                slug: &self.region,
                features: &["private_networking", "backups", "ipv6", "metadata"],
                available: true,
                sizes: size_slug,
            },
            tags: &self.tags,
            vpc_uuid: self.vpc_uuid.as_deref(),
            gpu_info: self.gpu.then_some(GpuJson {
                count: 1,
                model: "nvidia_h100",
                vram: AmountJson {
                    amount: 80,
                    unit: "gib",
                },
            }),
        }
    }

    /// The Droplet's size as the API renders it.
    fn size<'a>(&'a self, region: &'a [String]) -> SizeJson<'a> {
        let (memory, vcpus, disk) = self.dimensions();
        SizeJson {
            slug: &self.size_slug,
            memory,
            vcpus,
            disk,
            transfer: 2.0,
            price_monthly: if self.gpu { 3000.0 } else { 12.0 },
            price_hourly: if self.gpu { 4.5 } else { 0.01786 },
            regions: region,
            available: true,
            description: if self.gpu { "GPU" } else { "Basic" },
        }
    }

    /// Memory (MiB), vCPUs and disk (GiB) of the Droplet's size.
    fn dimensions(&self) -> (u64, u64, u64) {
        if self.gpu {
            (245_760, 20, 720)
        } else {
            (2048, 1, 50)
        }
    }

    /// The Droplet's addresses: a public and a private IPv4, an IPv6 for every third.
    fn networks(&self) -> NetworksJson<'_> {
        let v4 = [
            NetJson {
                ip_address: &self.public_ipv4,
                netmask: NetmaskJson::V4("255.255.240.0"),
                gateway: "192.0.2.1",
                kind: "public",
            },
            NetJson {
                ip_address: &self.private_ipv4,
                netmask: NetmaskJson::V4("255.255.0.0"),
                gateway: "10.0.0.1",
                kind: "private",
            },
        ];
        let v6: Vec<NetJson<'_>> = self
            .ipv6
            .as_deref()
            .map(|ip| NetJson {
                ip_address: ip,
                netmask: NetmaskJson::V6(64),
                gateway: "2001:db8::1",
                kind: "public",
            })
            .into_iter()
            .collect();
        NetworksJson { v4, v6 }
    }
}

/// A Droplet as `GET /v2/droplets` renders it (every field the spec requires).
#[derive(Debug, Serialize)]
pub struct DropletJson<'a> {
    id: u64,
    name: &'a str,
    memory: u64,
    vcpus: u64,
    disk: u64,
    disk_info: [DiskInfoJson; 1],
    locked: bool,
    status: &'a str,
    kernel: (),
    created_at: &'a str,
    features: &'static [&'static str],
    backup_ids: [u64; 0],
    next_backup_window: (),
    snapshot_ids: [u64; 0],
    image: ImageJson<'a>,
    volume_ids: [u64; 0],
    size: SizeJson<'a>,
    size_slug: &'a str,
    networks: NetworksJson<'a>,
    region: RegionJson<'a>,
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    vpc_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_info: Option<GpuJson>,
}

#[derive(Debug, Serialize)]
struct DiskInfoJson {
    #[serde(rename = "type")]
    kind: &'static str,
    size: AmountJson,
}

#[derive(Debug, Serialize)]
struct AmountJson {
    amount: u64,
    unit: &'static str,
}

#[derive(Debug, Serialize)]
struct GpuJson {
    count: u64,
    model: &'static str,
    vram: AmountJson,
}

/// Every Droplet's image: Ubuntu 24.04, as the spec's example.
#[derive(Debug, Serialize)]
struct ImageJson<'a> {
    id: u64,
    name: &'static str,
    distribution: &'static str,
    slug: &'static str,
    public: bool,
    regions: &'a [String],
    created_at: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    min_disk_size: u64,
    size_gigabytes: f64,
    description: &'static str,
    tags: [u8; 0],
    status: &'static str,
    error_message: &'static str,
}

impl<'a> ImageJson<'a> {
    fn ubuntu(regions: &'a [String]) -> Self {
        ImageJson {
            id: 129211873,
            name: "24.04 (LTS) x64",
            distribution: "Ubuntu",
            slug: "ubuntu-24-04-x64",
            public: true,
            regions,
            created_at: "2024-04-24T17:21:48Z",
            kind: "base",
            min_disk_size: 7,
            size_gigabytes: 2.44,
            description: "Ubuntu 24.04 (LTS) x64",
            tags: [],
            status: "available",
            error_message: "",
        }
    }
}

#[derive(Debug, Serialize)]
struct SizeJson<'a> {
    slug: &'a str,
    memory: u64,
    vcpus: u64,
    disk: u64,
    transfer: f64,
    price_monthly: f64,
    price_hourly: f64,
    regions: &'a [String],
    available: bool,
    description: &'static str,
}

#[derive(Debug, Serialize)]
struct NetworksJson<'a> {
    v4: [NetJson<'a>; 2],
    v6: Vec<NetJson<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum NetmaskJson {
    V4(&'static str),
    V6(u8),
}

#[derive(Debug, Serialize)]
struct NetJson<'a> {
    ip_address: &'a str,
    netmask: NetmaskJson,
    gateway: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
struct RegionJson<'a> {
    name: &'static str,
    slug: &'a str,
    features: &'static [&'static str],
    available: bool,
    sizes: &'a [String],
}

pub fn region_name(slug: &str) -> &'static str {
    match slug {
        "nyc1" => "New York 1",
        "nyc3" => "New York 3",
        "sfo3" => "San Francisco 3",
        "ams3" => "Amsterdam 3",
        "fra1" => "Frankfurt 1",
        "sgp1" => "Singapore 1",
        "lon1" => "London 1",
        "tor1" => "Toronto 1",
        _ => "Region",
    }
}

/// Faults the simulator injects, switched on by tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before every API answer.
    pub latency_ms: u64,
    /// Every Nth API request answers 429 (0: never).
    pub rate_limit_every: u64,
    /// The next N API requests answer 429.
    pub rate_limit_next: u64,
    /// `retry-after` seconds sent with those 429s.
    pub retry_after_secs: u64,
    /// Every Nth API request answers `error_status` (0: never).
    pub error_every: u64,
    /// Status of injected errors (default 503).
    pub error_status: Option<u16>,
    /// The next N API requests answer `error_status` (an outage).
    pub fail_next: u64,
    /// Paths that answer 403, as for a token without the scope to read them.
    pub forbidden_paths: Vec<String>,
    /// The next `POST /v2/firewalls` stores the firewall, then answers 500.
    pub create_commits_then_fails: bool,
    /// Fixed answers for the requests they match, the first match winning, whatever the token.
    pub overrides: Vec<Override>,
    /// `meta.total` rewritten in every normal `GET` answer of these paths (path → total).
    pub meta_total: BTreeMap<String, u64>,
    /// The `ratelimit-remaining` the next API answer reports, one less for each answer after
    /// it (as for a token that spent the rest of its hour elsewhere). Unset: the hourly limit
    /// minus the API requests answered since the top of the hour.
    #[serde(default)]
    pub ratelimit_remaining: Option<u64>,
}

/// One request the simulator answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

/// A finding the fleet generator meant to plant: the oracle for end-to-end tests.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExpectedFinding {
    pub rule: String,
    pub resource_type: String,
    pub resource_id: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub droplets: BTreeMap<u64, SimDroplet>,
    /// In creation order.
    pub firewalls: Vec<Firewall>,
    pub vpcs: Vec<Vpc>,
    pub ssh_keys: Vec<SshKey>,
    pub tags: BTreeSet<String>,
    pub actions: Vec<Action>,
    pub expected: Vec<ExpectedFinding>,
    pub log: Vec<LoggedRequest>,
    /// Deny rules that a write removed or changed (`<firewall id> inbound <rule>`): the API
    /// allows it, dropletguard must never do it.
    pub deny_rules_lost: Vec<String>,
    pub faults: Faults,
    /// API requests seen (for fault schedules).
    pub api_requests: u64,
    /// The clock hour (Unix seconds at its start) and the API requests answered in it, for
    /// the `ratelimit-remaining` header.
    pub hour: (u64, u64),
    pub next_id: u64,
}

impl State {
    /// Adds a Droplet as a create would, with a completed `create` action; returns its id.
    pub fn create_droplet(&mut self, mut d: SimDroplet) -> u64 {
        if d.id == 0 || self.droplets.contains_key(&d.id) {
            self.next_id = self.next_id.max(900_000_000) + 1;
            d.id = self.next_id;
        }
        let id = d.id;
        self.tags.extend(d.tags.iter().cloned());
        let region = d.region.clone();
        self.droplets.insert(id, d);
        self.record_action("create", Some(id), &region, "completed");
        id
    }

    /// Leaves one regular Droplet other than `not` without a firewall: it loses the tags that
    /// attach firewalls (one no firewall holds by id is chosen). Its id, if there was one.
    pub fn uncover_one(&mut self, not: u64) -> Option<u64> {
        let by_id: BTreeSet<u64> = self
            .firewalls
            .iter()
            .flat_map(|f| f.droplet_ids.iter().copied())
            .collect();
        let fw_tags: BTreeSet<String> = self
            .firewalls
            .iter()
            .flat_map(|f| f.tags.iter().cloned())
            .collect();
        let d = self
            .droplets
            .values_mut()
            .find(|d| d.id != not && !by_id.contains(&d.id) && !d.gpu)?;
        d.tags.retain(|t| !fw_tags.contains(t));
        Some(d.id)
    }

    /// Appends an action to `/v2/actions`; returns its id.
    pub fn record_action(
        &mut self,
        kind: &str,
        droplet_id: Option<u64>,
        region: &str,
        status: &str,
    ) -> u64 {
        let id = self
            .actions
            .last()
            .map(|a| a.id + 1)
            .unwrap_or(1_000_000_001);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.actions.push(Action {
            id,
            status: status.into(),
            kind: kind.into(),
            started_at: Some(now.clone()),
            completed_at: (status == "completed").then_some(now),
            resource_id: droplet_id,
            resource_type: Some(
                if droplet_id.is_some() {
                    "droplet"
                } else {
                    "backend"
                }
                .into(),
            ),
            region_slug: Some(region.into()),
        });
        id
    }

    pub fn firewall_mut(&mut self, id: &str) -> Option<&mut Firewall> {
        self.firewalls.iter_mut().find(|f| f.id == id)
    }

    /// Tags' JSON as `GET /v2/tags` renders it, with resource counts.
    pub fn tag_json(&self, name: &str) -> Value {
        let count = self
            .droplets
            .values()
            .filter(|d| d.tags.iter().any(|t| t == name))
            .count();
        let last = self
            .droplets
            .values()
            .rev()
            .find(|d| d.tags.iter().any(|t| t == name))
            .map(|d| format!("https://api.digitalocean.com/v2/droplets/{}", d.id));
        let mut droplets = json!({"count": count});
        let mut resources = json!({"count": count, "droplets": droplets.clone(),
            "images": {"count": 0}, "volumes": {"count": 0}, "volume_snapshots": {"count": 0}, "databases": {"count": 0}});
        if let Some(l) = last {
            droplets["last_tagged_uri"] = json!(l);
            resources["last_tagged_uri"] = json!(l);
            resources["droplets"] = droplets;
        }
        json!({"name": name, "resources": resources})
    }
}
