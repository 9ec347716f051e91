//! `dropletguard sim` as a process of its own: for benchmarks whose own work must not slow the
//! simulator down (a remote API's rendering is never the client's CPU), and for tests of the
//! command itself.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

/// A running `dropletguard sim` child, killed when dropped.
pub struct SimProcess {
    _child: tokio::process::Child,
    /// Where it listens, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bearer token it accepts.
    pub token: String,
}

impl SimProcess {
    /// Starts `dg sim` (the `dropletguard` binary at `dg`) on a free loopback port with `token`
    /// and `args` (fleet size, latency...); its URL is read from the first line it prints on
    /// stderr, and the rest of its stderr is read as it comes, so that it never meets a full
    /// or closed pipe. Errors when it cannot start or exits before it says where it listens.
    pub async fn start(dg: &Path, token: &str, args: &[&str]) -> std::io::Result<Self> {
        let mut child = tokio::process::Command::new(dg)
            .args(["sim", "--listen", "127.0.0.1:0", "--token", token])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("the simulator's stderr"))?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let first = lines.next_line().await?.ok_or_else(|| {
            std::io::Error::other("the simulator exited before it said where it listens")
        })?;
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "the simulator did not say where it listens: {first}"
                ))
            })?
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(SimProcess {
            _child: child,
            url,
            token: token.to_string(),
        })
    }
}
