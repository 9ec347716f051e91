//! SSH: the agentless probe of offered authentication methods, management sessions with the
//! management key, safe removal of password authentication, and the listening-socket parser
//! for the service audit. Built on `russh` with its `ring` backend.

mod client;
mod error;
mod key;
pub mod listeners;
mod matchblocks;
pub mod owners;
mod pwauth;
mod pwauth_plan;
mod remote;
mod sshd_config;

pub use client::{connect, probe, probe_many, ExecOutput, ProbeResult, Session, PROBE_SPACING};
pub use error::{Rollback, SshError};
pub use key::ManagementKey;
pub use matchblocks::{read_match_blocks, ConnectionDefaults, MatchBlock};
pub use pwauth::{disable_password_auth, PasswordAuthFix, PasswordAuthTarget};
#[doc(hidden)]
pub use pwauth::{disable_password_auth_with_fault, Fault};
