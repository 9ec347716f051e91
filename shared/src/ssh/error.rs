//! The one error type of the SSH kit.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything that can go wrong in the SSH kit.
///
/// No variant ever carries private key material: key loading errors only say
/// *where* the key came from and *why* it could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The TCP connection could not be made (refused, unreachable, ...).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// A step did not finish within the caller's timeout.
    #[error("timed out after {after:?} while {phase} ({addr})")]
    Timeout {
        addr: SocketAddr,
        phase: &'static str,
        after: Duration,
    },

    /// The SSH protocol failed (bad banner, key exchange, disconnect, ...).
    #[error("SSH error with {addr} while {phase}: {source}")]
    Protocol {
        addr: SocketAddr,
        phase: &'static str,
        #[source]
        source: Box<russh::Error>,
    },

    /// The server refused public-key authentication with the management key.
    #[error(
        "{addr} refused public-key login for user '{user}' with management key {fingerprint} \
         (server still offers: {})",
        if remaining_methods.is_empty() { "nothing".to_string() } else { remaining_methods.join(",") }
    )]
    AuthRejected {
        addr: SocketAddr,
        user: String,
        fingerprint: String,
        remaining_methods: Vec<String>,
    },

    /// The management key could not be loaded. `origin` is a path or "string";
    /// `reason` never contains key material.
    #[error("cannot load management key from {origin}: {reason}")]
    KeyLoad { origin: String, reason: String },

    /// A remote command could not be run or was killed.
    #[error("remote command `{command}` on {addr} failed: {reason}")]
    Exec {
        addr: SocketAddr,
        command: String,
        reason: String,
    },

    /// The remote sshd configuration was already invalid before we changed
    /// anything; nothing was written and sshd was not reloaded.
    #[error(
        "sshd config {config} on {addr} is already invalid before any change \
         (nothing changed, no reload): {detail}"
    )]
    ConfigInvalidBeforeChange {
        addr: SocketAddr,
        config: String,
        detail: String,
    },

    /// Disabling password authentication failed before anything was written.
    #[error("cannot disable password auth on {addr} (nothing changed): {step}: {detail}")]
    FixNotStarted {
        addr: SocketAddr,
        step: &'static str,
        detail: String,
    },

    /// Disabling password authentication failed after a write; the change was
    /// rolled back. `rollback` says how the rollback went.
    #[error("disabling password auth on {addr} failed at step '{step}': {detail}; {rollback}")]
    FixRolledBack {
        addr: SocketAddr,
        step: &'static str,
        detail: String,
        rollback: Rollback,
    },

    /// An internal task failed (panic or cancellation).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Outcome of a rollback after a failed password-auth change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rollback {
    /// Files restored; sshd had not been reloaded with the new config, so no
    /// reload was needed.
    RestoredNoReloadNeeded,
    /// Files restored, config validated and sshd reloaded with the old config.
    RestoredAndReloaded,
    /// The rollback itself failed: the host needs a human.
    Failed(String),
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::RestoredNoReloadNeeded => {
                f.write_str("rolled back (files restored; sshd was never reloaded with the change)")
            }
            Rollback::RestoredAndReloaded => {
                f.write_str("rolled back (files restored, validated and sshd reloaded)")
            }
            Rollback::Failed(why) => write!(f, "ROLLBACK FAILED, needs manual repair: {why}"),
        }
    }
}

impl SshError {
    /// True if this error happened after a write and the write was rolled back
    /// successfully.
    pub fn rolled_back(&self) -> bool {
        matches!(
            self,
            SshError::FixRolledBack {
                rollback: Rollback::RestoredNoReloadNeeded | Rollback::RestoredAndReloaded,
                ..
            }
        )
    }
}
