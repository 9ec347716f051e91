//! Reading an account snapshot: a handful of list requests, never one per Droplet.

use std::collections::HashSet;

use crate::digitalocean::{ApiError, Client, Droplet};
use crate::evaluate::Snapshot;

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
            firewalls: firewalls?,
            vpcs: vpcs.map_err(|e| e.to_string()),
            ssh_keys: keys.map_err(|e| e.to_string()),
            ssh: Default::default(),
        })
    }
}
