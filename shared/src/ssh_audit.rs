//! Gathering what only a connection to the Droplet can tell: the SSH server's offered
//! authentication methods (agentless probe) and, with the management key, what listens on the
//! host. The results go into the snapshot; the rules stay pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::policy::Policy;
use crate::snapshot::{Scope, Snapshot, SshObservation};
use crate::ssh::{self, listeners, owners, ManagementKey, SshError};

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

/// The command that lists listening sockets, TCP and UDP in every form: `ss`, else `netstat`
/// wide, else `netstat` (a net-tools without `-W`); numeric, C locale. An `ss` without `-H`
/// fails and falls through to netstat.
pub const LISTENERS_COMMAND: &str = "LC_ALL=C ss -H -tulpn 2>/dev/null || \
     LC_ALL=C netstat -tulpnW 2>/dev/null || LC_ALL=C netstat -tulpn";

/// Lists the listeners over `session`, then identifies their owners on the same session.
async fn read_listeners(session: &ssh::Session) -> Result<Vec<listeners::Listener>, String> {
    let addr = session.addr();
    let out = session
        .exec(LISTENERS_COMMAND)
        .await
        .map_err(|e| format!("listing sockets on {addr}: {e}"))?;
    if out.status != 0 && out.stdout.trim().is_empty() {
        return Err(format!(
            "neither ss nor netstat worked on {addr}: {}",
            out.stderr.trim()
        ));
    }
    let mut found = listeners::parse_any(&out.stdout)
        .map_err(|e| format!("unreadable listener list from {addr}: {e}"))?;
    if !found.iter().any(|l| l.proto == listeners::Proto::Tcp) {
        return Err(format!(
            "the listener list from {addr} shows no TCP socket at all, yet sshd answered there \
             over TCP: the list is incomplete, so exposure is unknown"
        ));
    }
    identify_owners(session, &mut found).await;
    Ok(found)
}

/// Reads `/proc/<pid>/comm` for owners printed by a title or cut short, and the unit each
/// systemd-held (pid 1) socket activates. A failed look-up leaves the printed names.
async fn identify_owners(session: &ssh::Session, found: &mut [listeners::Listener]) {
    let pids = owners::pids_to_look_up(found);
    if !pids.is_empty() {
        match session.exec(&owners::comm_command(&pids)).await {
            Ok(out) => owners::apply_comms(found, &owners::parse_comms(&out.stdout)),
            Err(e) => tracing::warn!(addr = %session.addr(), "reading process names: {e}"),
        }
    }
    let held = found
        .iter()
        .flat_map(|l| &l.processes)
        .any(|p| p.is_activation_holder());
    if held {
        match session.exec(owners::LIST_SOCKETS_COMMAND).await {
            Ok(out) => owners::apply_units(found, &owners::parse_list_sockets(&out.stdout)),
            Err(e) => tracing::warn!(addr = %session.addr(), "listing socket units: {e}"),
        }
    }
}

/// The users the probe asks as: `ssh.probe_users`, or the management user.
pub fn probe_users(policy: &Policy, access: &SshAccess) -> Vec<String> {
    if policy.ssh.probe_users.is_empty() {
        vec![access.user.clone()]
    } else {
        policy.ssh.probe_users.clone()
    }
}

type UserProbes = Vec<(String, Result<ssh::ProbeResult, String>)>;

/// One round of probes per user (a connection each), the rounds [`ssh::PROBE_SPACING`] apart
/// so that no Droplet sees two unauthenticated connections from us closer than that.
async fn probe_as_users(
    targets: &[(u64, SocketAddr)],
    users: &[String],
    access: &SshAccess,
) -> BTreeMap<u64, UserProbes> {
    let mut out: BTreeMap<u64, UserProbes> = BTreeMap::new();
    for (round, user) in users.iter().enumerate() {
        if round > 0 {
            tokio::time::sleep(ssh::PROBE_SPACING).await;
        }
        let concurrency = access.concurrency.max(1);
        let probed = ssh::probe_many(targets.to_vec(), user, concurrency, access.timeout).await;
        for (id, r) in probed {
            out.entry(id)
                .or_default()
                .push((user.clone(), r.map_err(|e| e.to_string())));
        }
    }
    out
}

/// The Droplets in scope with an address to probe; the others get an observation that says
/// why they were not probed.
fn probe_targets(snapshot: &mut Snapshot, port: u16, scope: &Scope) -> Vec<(u64, SocketAddr)> {
    let mut targets = Vec::new();
    for d in snapshot.droplets.iter().filter(|d| scope.includes(d.id)) {
        match ssh_target(d, port) {
            Some(addr) => targets.push((d.id, addr)),
            None => {
                let why = "the Droplet has no public IPv4 address to probe".to_string();
                let observation = SshObservation {
                    probe: Some(Err(why)),
                    ..SshObservation::default()
                };
                snapshot.ssh.insert(d.id, observation);
            }
        }
    }
    targets
}

/// Probes every Droplet in scope as each probe user (and, when a key is configured, lists its
/// listeners and reads its `Match` blocks over one management session), unless `--no-ssh` or
/// `ssh.probe = false`.
pub async fn observe(snapshot: &mut Snapshot, policy: &Policy, scope: &Scope, access: &SshAccess) {
    if scope.no_ssh || !policy.ssh.probe {
        return;
    }
    let targets = probe_targets(snapshot, policy.ssh.port, scope);
    let users = probe_users(policy, access);
    let mut probed = probe_as_users(&targets, &users, access).await;
    let mut reachable = Vec::new();
    for (id, addr) in &targets {
        let results = probed.remove(id).unwrap_or_default();
        if results.iter().any(|(_, r)| r.is_ok()) {
            reachable.push((*id, *addr));
        }
        let observation = SshObservation {
            target: Some(addr.to_string()),
            probe: results.first().map(|(_, r)| r.clone()),
            user_probes: results,
            ..SshObservation::default()
        };
        snapshot.ssh.insert(*id, observation);
    }
    let Some(key) = &access.key else {
        return;
    };
    let read_blocks = policy.ssh.password_auth == crate::policy::PasswordAuth::Forbid
        && policy.rule_enabled(crate::rules::SSH_PASSWORD_AUTH);
    let managed: Vec<(u64, Managed)> = stream::iter(reachable)
        .map(|(id, addr)| async move { (id, manage(addr, access, key, policy, read_blocks).await) })
        .buffer_unordered(access.concurrency.clamp(1, 8))
        .collect()
        .await;
    for (id, (listed, blocks)) in managed {
        if let Some(o) = snapshot.ssh.get_mut(&id) {
            o.listeners = Some(listed);
            o.match_blocks = blocks;
        }
    }
}

type Managed = (
    Result<Vec<listeners::Listener>, String>,
    Option<Result<Vec<ssh::MatchBlock>, String>>,
);

/// One management session: the listeners, then (when `read_blocks`) the `Match` blocks.
async fn manage(
    addr: SocketAddr,
    access: &SshAccess,
    key: &ManagementKey,
    policy: &Policy,
    read_blocks: bool,
) -> Managed {
    let session = match ssh::connect(addr, &access.user, key, access.timeout).await {
        Ok(s) => s,
        Err(e) => {
            let why = format!("management login to {addr} failed: {e}");
            return (Err(why.clone()), read_blocks.then_some(Err(why)));
        }
    };
    let listed = read_listeners(&session).await;
    let blocks = if read_blocks {
        let defaults = ssh::ConnectionDefaults {
            user: access.user.clone(),
            laddr: addr.ip().to_string(),
            lport: policy.ssh.port,
        };
        let read = ssh::read_match_blocks(&session, &policy.ssh.sshd_config, &defaults).await;
        Some(read.map_err(|e| format!("reading Match blocks on {addr}: {e}")))
    } else {
        None
    };
    session.close().await;
    (listed, blocks)
}
