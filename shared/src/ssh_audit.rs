//! Gathering what only a connection to the Droplet can tell: the SSH server's offered
//! authentication methods (agentless probe) and, with the management key, what listens on the
//! host. The results go into the snapshot; the rules stay pure.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::evaluate::{Scope, Snapshot, SshObservation};
use crate::policy::Policy;
use crate::ssh::{self, listeners, ManagementKey, SshError};

/// How dropletguard reaches Droplets over SSH.
#[derive(Debug, Clone)]
pub struct SshAccess {
    /// The management key; without it the service audit and password-auth removal are not run.
    pub key: Option<ManagementKey>,
    pub user: String,
    pub timeout: Duration,
    /// Probes (and management sessions) at once.
    pub concurrency: usize,
}

impl Default for SshAccess {
    fn default() -> Self {
        SshAccess {
            key: None,
            user: "root".into(),
            timeout: Duration::from_secs(8),
            concurrency: 32,
        }
    }
}

impl SshAccess {
    /// `DROPLETGUARD_SSH_KEY_FILE` (the management private key) and `DROPLETGUARD_SSH_USER`.
    pub fn from_env() -> Result<Self, SshError> {
        let mut a = SshAccess::default();
        if let Some(path) = std::env::var_os("DROPLETGUARD_SSH_KEY_FILE").filter(|p| !p.is_empty())
        {
            a.key = Some(ManagementKey::from_file(std::path::Path::new(&path))?);
        }
        if let Some(u) = std::env::var("DROPLETGUARD_SSH_USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            a.user = u.trim().to_string();
        }
        Ok(a)
    }

    /// With the key given as text (Secrets Manager).
    pub fn with_key_text(text: &str) -> Result<Self, SshError> {
        let mut a = SshAccess::from_env()?;
        a.key = Some(ManagementKey::from_openssh_str(text)?);
        Ok(a)
    }
}

/// The address a Droplet's SSH server is probed at: its first public IPv4, on `ssh.port`.
pub fn ssh_target(d: &crate::digitalocean::Droplet, port: u16) -> Option<SocketAddr> {
    let ip: IpAddr = d.public_ipv4()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The command that lists listening sockets: `ss`, else `netstat` (both numeric, C locale).
pub const LISTENERS_COMMAND: &str =
    "LC_ALL=C ss -H -tulpn 2>/dev/null || LC_ALL=C netstat -plunW 2>/dev/null || LC_ALL=C netstat -plunt";

async fn list_listeners(
    addr: SocketAddr,
    access: &SshAccess,
    key: &ManagementKey,
) -> Result<Vec<listeners::Listener>, String> {
    let session = ssh::connect(addr, &access.user, key, access.timeout)
        .await
        .map_err(|e| format!("management login to {addr} failed: {e}"))?;
    let out = session.exec(LISTENERS_COMMAND).await;
    session.close().await;
    let out = out.map_err(|e| format!("listing sockets on {addr}: {e}"))?;
    if out.status != 0 && out.stdout.trim().is_empty() {
        return Err(format!(
            "neither ss nor netstat worked on {addr}: {}",
            out.stderr.trim()
        ));
    }
    listeners::parse_any(&out.stdout)
        .map_err(|e| format!("unreadable listener list from {addr}: {e}"))
}

/// Probes every Droplet in scope (and lists its listeners when a key is configured), unless
/// `--no-ssh` or `ssh.probe = false`.
pub async fn observe(snapshot: &mut Snapshot, policy: &Policy, scope: &Scope, access: &SshAccess) {
    if scope.no_ssh || !policy.ssh.probe {
        return;
    }
    let port = policy.ssh.port;
    let mut targets = Vec::new();
    for d in snapshot.droplets.iter().filter(|d| scope.includes(d.id)) {
        match ssh_target(d, port) {
            Some(addr) => targets.push((d.id, addr)),
            None => {
                snapshot.ssh.insert(
                    d.id,
                    SshObservation {
                        target: None,
                        probe: Some(Err("the Droplet has no public IPv4 address to probe".into())),
                        listeners: None,
                    },
                );
            }
        }
    }
    let addrs: std::collections::HashMap<u64, SocketAddr> = targets.iter().copied().collect();
    let probed = ssh::probe_many(
        targets,
        &access.user,
        access.concurrency.max(1),
        access.timeout,
    )
    .await;
    let mut reachable = BTreeSet::new();
    for (id, r) in probed {
        if r.is_ok() {
            reachable.insert(id);
        }
        snapshot.ssh.insert(
            id,
            SshObservation {
                target: addrs.get(&id).map(ToString::to_string),
                probe: Some(r.map_err(|e| e.to_string())),
                listeners: None,
            },
        );
    }
    let Some(key) = &access.key else {
        return;
    };
    let addrs = &addrs;
    let listed: Vec<(u64, Result<Vec<listeners::Listener>, String>)> = stream::iter(reachable)
        .map(|id| async move {
            let addr = addrs.get(&id).copied();
            let r = match addr {
                Some(a) => list_listeners(a, access, key).await,
                None => Err("no address".into()),
            };
            (id, r)
        })
        .buffer_unordered(access.concurrency.clamp(1, 8))
        .collect()
        .await;
    for (id, r) in listed {
        if let Some(o) = snapshot.ssh.get_mut(&id) {
            o.listeners = Some(r);
        }
    }
}
