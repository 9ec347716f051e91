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
    pub fn to_json(&self) -> Value {
        let (memory, vcpus, disk) = if self.gpu {
            (245_760, 20, 720)
        } else {
            (2048, 1, 50)
        };
        let mut v4 = vec![
            json!({"ip_address": self.public_ipv4, "netmask": "255.255.240.0", "gateway": "192.0.2.1", "type": "public"}),
        ];
        v4.push(json!({"ip_address": self.private_ipv4, "netmask": "255.255.0.0", "gateway": "10.0.0.1", "type": "private"}));
        let v6: Vec<Value> = self
            .ipv6
            .iter()
            .map(|ip| json!({"ip_address": ip, "netmask": 64, "gateway": "2001:db8::1", "type": "public"}))
            .collect();
        let mut d = json!({
            "id": self.id,
            "name": self.name,
            "memory": memory,
            "vcpus": vcpus,
            "disk": disk,
            "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}],
            "locked": false,
            "status": self.status,
            "kernel": null,
            "created_at": self.created_at,
            "features": if self.ipv6.is_some() { json!(["private_networking", "ipv6"]) } else { json!(["private_networking"]) },
            "backup_ids": [],
            "next_backup_window": null,
            "snapshot_ids": [],
            "image": {
                "id": 129211873, "name": "24.04 (LTS) x64", "distribution": "Ubuntu", "slug": "ubuntu-24-04-x64",
                "public": true, "regions": [self.region], "created_at": "2024-04-24T17:21:48Z", "type": "base",
                "min_disk_size": 7, "size_gigabytes": 2.44, "description": "Ubuntu 24.04 (LTS) x64",
                "tags": [], "status": "available", "error_message": ""
            },
            "volume_ids": [],
            "size": {
                "slug": self.size_slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": 2.0,
                "price_monthly": if self.gpu { 3000.0 } else { 12.0 }, "price_hourly": if self.gpu { 4.5 } else { 0.01786 },
                "regions": [self.region], "available": true, "description": if self.gpu { "GPU" } else { "Basic" }
            },
            "size_slug": self.size_slug,
            "networks": {"v4": v4, "v6": v6},
            "region": {
                "name": region_name(&self.region), "slug": self.region, "features": ["private_networking", "backups", "ipv6", "metadata"],
                "available": true, "sizes": [self.size_slug]
            },
            "tags": self.tags,
        });
        if let Some(vpc) = &self.vpc_uuid {
            d["vpc_uuid"] = json!(vpc);
        }
        if self.gpu {
            d["gpu_info"] =
                json!({"count": 1, "model": "nvidia_h100", "vram": {"amount": 80, "unit": "gib"}});
        }
        d
    }
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
