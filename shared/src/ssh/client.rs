//! Probing and management sessions on top of `russh`.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, MethodKind, SshId};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::error::SshError;
use super::key::ManagementKey;

/// Identification string we send (RFC 4253 §4.2).
const CLIENT_ID: &str = "SSH-2.0-dropletguard";
/// Upper bound on stdout/stderr collected from one remote command.
const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// The least time between two unauthenticated connections (probes) from dropletguard to one
/// server. OpenSSH >= 9.8 (`PerSourcePenalties`) penalises each such connection by at most 5 s
/// (`authfail`, `invaliduser`; `noauth` is 1 s) and refuses the source only once 15 s (`min`)
/// are outstanding: probes 2 s apart keep at most 5 + 3 + 1 = 9 s outstanding.
pub const PROBE_SPACING: Duration = Duration::from_secs(2);
/// How long `close`/probe teardown waits for a polite disconnect.
const TEARDOWN: Duration = Duration::from_millis(500);

/// What an unauthenticated probe learned about a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeResult {
    /// Authentication methods offered after a `none` request, in server order
    /// (e.g. `["publickey", "password", "keyboard-interactive"]`). If the
    /// server *accepted* `none` (no authentication at all) this is `["none"]`.
    pub methods: Vec<String>,
    /// Host key fingerprint, `SHA256:<base64 without padding>` like `ssh-keygen -lf`.
    pub host_key_sha256: String,
    /// The server's identification line, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`.
    pub server_version: String,
}

impl ProbeResult {
    /// True if the server offers `password` or `keyboard-interactive` (or
    /// needs no authentication at all).
    pub fn offers_password(&self) -> bool {
        self.methods
            .iter()
            .any(|m| m == "password" || m == "keyboard-interactive" || m == "none")
    }
}

/// Output of a remote command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecOutput {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Default)]
struct Seen {
    host_key_sha256: Option<String>,
    server_version: Option<String>,
}

/// Accepts any host key but records its fingerprint and the server's
/// identification string.
struct RecordingHandler {
    seen: Arc<Mutex<Seen>>,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl client::Handler for RecordingHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // For a host certificate this is the certified key's fingerprint,
        // which is what `ssh-keygen -lf` prints for the plain `.pub`.
        let fp = server_public_key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        lock(&self.seen).host_key_sha256 = Some(fp);
        Ok(true)
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        _names: &russh::Names,
        session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let id = String::from_utf8_lossy(session.remote_sshid())
            .trim_end()
            .to_string();
        lock(&self.seen).server_version = Some(id);
        Ok(())
    }
}

/// `inactivity_timeout` also ends russh's background session task if the
/// server stalls in the middle of key exchange after we gave up (dropping the
/// handle alone does not stop it while a key exchange is in progress).
fn config(inactivity_timeout: Duration, keepalive: Option<Duration>) -> Arc<client::Config> {
    #[allow(unused_mut)]
    let mut preferred = russh::Preferred::default();
    // Without the `rsa` feature russh still advertises rsa-sha2-* host key
    // algorithms but cannot verify them (an RSA-only server then fails with a
    // misleading "Wrong server signature"); advertise only what we can check.
    #[cfg(not(feature = "rsa"))]
    {
        preferred.key = preferred
            .key
            .iter()
            .filter(|a| !matches!(a, russh::keys::Algorithm::Rsa { .. }))
            .cloned()
            .collect::<Vec<_>>()
            .into();
    }
    Arc::new(client::Config {
        client_id: SshId::Standard(Cow::Borrowed(CLIENT_ID)),
        preferred,
        nodelay: true,
        inactivity_timeout: Some(inactivity_timeout),
        keepalive_interval: keepalive,
        ..Default::default()
    })
}

/// russh's own inactivity timer (which we set to the caller's timeout) can
/// fire a moment before our deadline: report that as a timeout too.
fn protocol_error(
    addr: SocketAddr,
    phase: &'static str,
    total: Duration,
    source: russh::Error,
) -> SshError {
    match source {
        russh::Error::InactivityTimeout | russh::Error::ConnectionTimeout => SshError::Timeout {
            addr,
            phase,
            after: total,
        },
        source => SshError::Protocol {
            addr,
            phase,
            source: Box::new(source),
        },
    }
}

/// Run `fut` but give up at `deadline`.
async fn bounded<T>(
    addr: SocketAddr,
    phase: &'static str,
    deadline: Instant,
    total: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, SshError> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| SshError::Timeout {
            addr,
            phase,
            after: total,
        })
}

/// TCP connect + key exchange, all before `deadline`.
async fn handshake(
    addr: SocketAddr,
    deadline: Instant,
    total: Duration,
    keepalive: Option<Duration>,
) -> Result<(client::Handle<RecordingHandler>, Arc<Mutex<Seen>>), SshError> {
    let tcp = bounded(
        addr,
        "connecting",
        deadline,
        total,
        TcpStream::connect(addr),
    )
    .await?
    .map_err(|source| SshError::Connect { addr, source })?;
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%addr, "set_nodelay failed: {e}");
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handler = RecordingHandler {
        seen: Arc::clone(&seen),
    };
    let handle = bounded(
        addr,
        "reading the server banner / exchanging keys",
        deadline,
        total,
        client::connect_stream(config(total, keepalive), tcp, handler),
    )
    .await?
    .map_err(|source| {
        protocol_error(
            addr,
            "reading the server banner / exchanging keys",
            total,
            source,
        )
    })?;
    Ok((handle, seen))
}

/// Send SSH_MSG_DISCONNECT and wait (bounded) for russh's session task to
/// end, so the socket is closed when we return: `probe_many`'s concurrency
/// bound then really bounds open connections.
/// Waits at most `TEARDOWN`, and never past `deadline` (plus a few ms so a
/// healthy server still gets its DISCONNECT).
async fn teardown<H: client::Handler>(handle: client::Handle<H>, deadline: Option<Instant>) {
    let mut until = Instant::now() + TEARDOWN;
    if let Some(d) = deadline {
        until = until.min(d.max(Instant::now() + Duration::from_millis(20)));
    }
    let _ = tokio::time::timeout_at(
        until,
        handle.disconnect(Disconnect::ByApplication, "", "en"),
    )
    .await;
    let _ = tokio::time::timeout_at(until, handle).await;
}

fn method_names(methods: &[MethodKind]) -> Vec<String> {
    methods
        .iter()
        .map(|m| <&'static str>::from(m).to_string())
        .collect()
}

/// Connect (TCP_NODELAY), complete key exchange, send a `none` userauth
/// request as `user` and return the methods the server offers.
///
/// The whole probe (connect, banner, key exchange, auth reply) is bounded by
/// `timeout`. Any host key is accepted; only its fingerprint is recorded.
pub async fn probe(
    addr: SocketAddr,
    user: &str,
    timeout: Duration,
) -> Result<ProbeResult, SshError> {
    let deadline = Instant::now() + timeout;
    let (mut handle, seen) = handshake(addr, deadline, timeout, None).await?;
    let phase = "asking for authentication methods";
    let reply = bounded(
        addr,
        phase,
        deadline,
        timeout,
        handle.authenticate_none(user),
    )
    .await;
    let methods = match reply {
        Ok(Ok(client::AuthResult::Success)) => vec!["none".to_string()],
        Ok(Ok(client::AuthResult::Failure {
            remaining_methods, ..
        })) => method_names(&remaining_methods),
        Ok(Err(source)) => {
            teardown(handle, Some(deadline)).await;
            return Err(protocol_error(addr, phase, timeout, source));
        }
        Err(timeout_err) => return Err(timeout_err),
    };
    teardown(handle, Some(deadline)).await;
    let seen = lock(&seen);
    Ok(ProbeResult {
        methods,
        host_key_sha256: seen.host_key_sha256.clone().unwrap_or_default(),
        server_version: seen.server_version.clone().unwrap_or_default(),
    })
}

/// Probe many targets with at most `concurrency` probes in flight. Results
/// come back in the order of `targets`, one per key.
///
/// Must be called within a Tokio runtime (probes run as spawned tasks;
/// dropping the returned future aborts them).
pub async fn probe_many<K>(
    targets: Vec<(K, SocketAddr)>,
    user: &str,
    concurrency: usize,
    timeout: Duration,
) -> Vec<(K, Result<ProbeResult, SshError>)> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let user: Arc<str> = Arc::from(user);
    let mut keys = Vec::with_capacity(targets.len());
    let mut tasks = tokio::task::JoinSet::new();
    for (idx, (key, addr)) in targets.into_iter().enumerate() {
        keys.push(key);
        let semaphore = Arc::clone(&semaphore);
        let user = Arc::clone(&user);
        tasks.spawn(async move {
            let result = match semaphore.acquire_owned().await {
                Ok(_permit) => probe(addr, &user, timeout).await,
                Err(_) => Err(SshError::Internal("probe semaphore closed".into())),
            };
            (idx, result)
        });
    }
    let mut results: Vec<Option<Result<ProbeResult, SshError>>> =
        keys.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((idx, result)) => {
                if let Some(slot) = results.get_mut(idx) {
                    *slot = Some(result);
                }
            }
            Err(e) => tracing::error!("probe task failed: {e}"),
        }
    }
    keys.into_iter()
        .zip(results)
        .map(|(key, result)| {
            let result = result
                .unwrap_or_else(|| Err(SshError::Internal("probe task panicked".to_string())));
            (key, result)
        })
        .collect()
}

/// A logged-in management session (public-key auth with a [`ManagementKey`]).
pub struct Session {
    handle: client::Handle<RecordingHandler>,
    addr: SocketAddr,
    user: String,
    timeout: Duration,
    host_key_sha256: String,
    server_version: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("host_key_sha256", &self.host_key_sha256)
            .finish_non_exhaustive()
    }
}

/// Log in as `user` with the management key. Connect, key exchange and
/// authentication together are bounded by `timeout`; each later
/// [`Session::exec`] is bounded by the same `timeout`.
///
/// If the server refuses the key, the error is [`SshError::AuthRejected`]
/// with the key's fingerprint and the methods the server still offers.
pub async fn connect(
    addr: SocketAddr,
    user: &str,
    key: &ManagementKey,
    timeout: Duration,
) -> Result<Session, SshError> {
    let deadline = Instant::now() + timeout;
    // A management session may sit idle between commands: keepalives (answered
    // by the server) keep the inactivity timeout from closing a healthy one,
    // while a dead or stalled server is dropped after `timeout`.
    let keepalive = (timeout / 3).max(Duration::from_millis(200));
    let (mut handle, seen) = handshake(addr, deadline, timeout, Some(keepalive)).await?;
    if let Err(e) = authenticate(&mut handle, addr, user, key, (deadline, timeout)).await {
        teardown(handle, Some(deadline)).await;
        return Err(e);
    }
    let (host_key_sha256, server_version) = {
        let seen = lock(&seen);
        (
            seen.host_key_sha256.clone().unwrap_or_default(),
            seen.server_version.clone().unwrap_or_default(),
        )
    };
    Ok(Session {
        handle,
        addr,
        user: user.to_string(),
        timeout,
        host_key_sha256,
        server_version,
    })
}

/// Public-key authentication as `user`, bounded by `deadline`. On refusal the error names the
/// key's fingerprint and what the server still offers (the caller tears the connection down).
async fn authenticate(
    handle: &mut client::Handle<RecordingHandler>,
    addr: SocketAddr,
    user: &str,
    key: &ManagementKey,
    (deadline, timeout): (Instant, Duration),
) -> Result<(), SshError> {
    let phase = "authenticating with the management key";
    // For RSA keys pick rsa-sha2-512/256 if the server announced them; for
    // other key types the hash is ignored.
    let private = key.private();
    let hash = if private.algorithm().is_rsa() {
        bounded(
            addr,
            phase,
            deadline,
            timeout,
            handle.best_supported_rsa_hash(),
        )
        .await?
        .map_err(|source| protocol_error(addr, phase, timeout, source))?
        .flatten()
    } else {
        None
    };
    let auth = bounded(
        addr,
        phase,
        deadline,
        timeout,
        handle.authenticate_publickey(user, PrivateKeyWithHashAlg::new(private, hash)),
    )
    .await?;
    match auth {
        Ok(client::AuthResult::Success) => Ok(()),
        Ok(client::AuthResult::Failure {
            remaining_methods, ..
        }) => Err(SshError::AuthRejected {
            addr,
            user: user.to_string(),
            fingerprint: key.fingerprint().to_string(),
            remaining_methods: method_names(&remaining_methods),
        }),
        Err(source) => Err(protocol_error(addr, phase, timeout, source)),
    }
}

/// Reads a channel until it closes: stdout, stderr (each capped), exit status, signal.
/// Errors: the server refused the exec request.
async fn collect(
    channel: &mut russh::Channel<client::Msg>,
) -> Result<(Vec<u8>, Vec<u8>, Option<u32>, Option<String>), String> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status = None;
    let mut signal = None;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => push_capped(&mut stdout, &data),
            ChannelMsg::ExtendedData { data, ext: 1 } => push_capped(&mut stderr, &data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::ExitSignal {
                signal_name,
                error_message,
                ..
            } => signal = Some(format!("{signal_name:?} {error_message}")),
            ChannelMsg::Failure => {
                return Err("the server refused the exec request".into());
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    Ok((stdout, stderr, status, signal))
}

fn push_capped(buf: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_OUTPUT.saturating_sub(buf.len());
    buf.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
}

impl Session {
    /// Run `cmd` (through the login user's shell) and collect exit status,
    /// stdout and stderr (each capped at 4 MiB). Bounded by the session's
    /// timeout. A command killed by a signal is an error.
    pub async fn exec(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        let deadline = Instant::now() + self.timeout;
        bounded(
            self.addr,
            "running a remote command",
            deadline,
            self.timeout,
            self.exec_inner(cmd),
        )
        .await?
    }

    async fn exec_inner(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        let exec_err = |reason: String| SshError::Exec {
            addr: self.addr,
            command: cmd.to_string(),
            reason,
        };
        let mut channel = self.handle.channel_open_session().await.map_err(|e| {
            if self.handle.is_closed() {
                exec_err(format!(
                    "the SSH session is closed (server gone, connection lost or \
                         keepalives unanswered) ({e})"
                ))
            } else {
                exec_err(format!("cannot open a session channel: {e}"))
            }
        })?;
        channel
            .exec(true, cmd)
            .await
            .map_err(|e| exec_err(format!("cannot send exec request: {e}")))?;
        let (stdout, stderr, status, signal) = collect(&mut channel).await.map_err(exec_err)?;
        let _ = channel.close().await;
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        match (status, signal) {
            (Some(status), _) => Ok(ExecOutput {
                status,
                stdout,
                stderr,
            }),
            (None, Some(sig)) => Err(exec_err(format!(
                "killed by signal {}; stderr: {}",
                sig.trim(),
                stderr.trim()
            ))),
            (None, None) => Err(exec_err(format!(
                "channel closed without an exit status; stderr: {}",
                stderr.trim()
            ))),
        }
    }

    /// Address this session is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Per-operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Host key fingerprint seen during this session's key exchange.
    pub fn host_key_sha256(&self) -> &str {
        &self.host_key_sha256
    }

    /// The server's identification string.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// True once the connection is gone (server closed it, network lost,
    /// keepalives unanswered).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Disconnect politely (bounded; never hangs).
    pub async fn close(self) {
        teardown(self.handle, None).await;
    }
}
