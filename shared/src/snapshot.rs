//! Reading an account snapshot: a handful of list requests, never one per Droplet.

use std::collections::HashSet;

use crate::digitalocean::{ApiError, Client, Droplet, Listed};
use crate::evaluate::Snapshot;

impl Snapshot {
    /// Droplets (regular and GPU), firewalls, VPCs and the account's SSH keys, read
    /// concurrently. Droplets and firewalls are required: an error reading them is the
    /// snapshot's error. A list short of its `meta.total` is kept, and its shortfall goes to
    /// [`Snapshot::incomplete`]. A VPC or SSH key list that cannot be read, or is short, makes
    /// only the checks that need it `unknown`.
    pub async fn fetch(client: &Client) -> Result<Snapshot, ApiError> {
        let (droplets, gpus, firewalls, vpcs, keys) = tokio::join!(
            client.read_list::<Droplet>("/v2/droplets", "droplets", &[]),
            client.read_list::<Droplet>("/v2/droplets", "droplets", &[("type", "gpus")]),
            client.read_list("/v2/firewalls", "firewalls", &[]),
            client.read_list("/v2/vpcs", "vpcs", &[]),
            client.read_list("/v2/account/keys", "ssh_keys", &[]),
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
            firewalls: kept(firewalls?, &mut incomplete),
            vpcs: vpcs.and_then(Listed::complete).map_err(|e| e.to_string()),
            ssh_keys: keys.and_then(Listed::complete).map_err(|e| e.to_string()),
            ssh: Default::default(),
            incomplete,
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

/// The items of a list, noting its shortfall (if any) in `incomplete`.
fn kept<T>(listed: Listed<T>, incomplete: &mut Vec<String>) -> Vec<T> {
    incomplete.extend(listed.shortfall());
    listed.items
}
