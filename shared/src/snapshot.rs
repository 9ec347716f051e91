//! What the API told us about the account (the snapshot), which Droplets a run looks at
//! (the scope), and reading a snapshot: a handful of list requests, never one per Droplet.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::digitalocean::{ApiError, Client, Droplet, Firewall, SshKey, Vpc};

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
}

impl Scope {
    pub fn all() -> Self {
        Scope::default()
    }

    pub fn droplets(ids: impl IntoIterator<Item = u64>) -> Self {
        Scope {
            droplet_ids: Some(ids.into_iter().collect()),
            no_ssh: false,
        }
    }

    pub fn includes(&self, id: u64) -> bool {
        self.droplet_ids.as_ref().is_none_or(|s| s.contains(&id))
    }
}

impl Snapshot {
    /// Droplets (regular and GPU), firewalls, VPCs and the account's SSH keys, read
    /// concurrently. Droplets and firewalls are required; a VPC or SSH key list that cannot
    /// be read makes only the checks that need it `unknown`.
    pub async fn fetch(client: &Client) -> Result<Snapshot, ApiError> {
        let (droplets, gpus, firewalls, vpcs, keys) = tokio::join!(
            client.list_droplets(),
            client.list_gpu_droplets(),
            client.list_firewalls(),
            client.list_vpcs(),
            client.list_ssh_keys(),
        );
        let mut seen = HashSet::new();
        let droplets: Vec<Droplet> = droplets?
            .into_iter()
            .chain(gpus?)
            .filter(|d| seen.insert(d.id))
            .collect();
        Ok(Snapshot {
            droplets,
            firewalls: unique_firewalls(firewalls?),
            vpcs: vpcs.map_err(|e| e.to_string()),
            ssh_keys: keys.map_err(|e| e.to_string()),
            ssh: Default::default(),
        })
    }
}

/// The firewalls, each once: a list that names one twice (a page boundary moving under
/// concurrent changes, or a faulty API) must not give one finding twice.
fn unique_firewalls(firewalls: Vec<Firewall>) -> Vec<Firewall> {
    let mut seen = HashSet::new();
    firewalls
        .into_iter()
        .filter(|f| seen.insert(f.id.clone()))
        .collect()
}
