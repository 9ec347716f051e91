//! A root shell on a Droplet over a management session: POSIX `sh` scripts run as root
//! (through `sudo -n` for another user), with a fixed `PATH` and the C locale.

use super::client::{ExecOutput, Session};
use super::error::SshError;

pub(crate) const SSHD: &str = "\"$(command -v sshd || echo /usr/sbin/sshd)\"";

/// Quote `s` for a POSIX shell.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub(crate) struct Remote<'a> {
    session: &'a Session,
    sudo: bool,
}

impl<'a> Remote<'a> {
    pub(crate) fn new(session: &'a Session) -> Self {
        Remote {
            session,
            sudo: session.user() != "root",
        }
    }

    /// Run a POSIX shell script as root (via `sudo -n` if needed).
    pub(crate) async fn sh(&self, script: &str) -> Result<ExecOutput, SshError> {
        let script = format!(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; \
             export PATH; LC_ALL=C; export LC_ALL; {script}"
        );
        let cmd = if self.sudo {
            format!("sudo -n sh -c {}", sh_quote(&script))
        } else {
            format!("sh -c {}", sh_quote(&script))
        };
        self.session.exec(&cmd).await
    }

    /// Like `sh` but a non-zero exit is an error with `what` and stderr.
    pub(crate) async fn sh_ok(&self, what: &str, script: &str) -> Result<String, String> {
        match self.sh(script).await {
            Ok(out) if out.status == 0 => Ok(out.stdout),
            Ok(out) => Err(format!(
                "{what} exited with {}: {}",
                out.status,
                first_lines(&format!("{}{}", out.stderr, out.stdout), 6)
            )),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }
}

fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).take(n).collect();
    lines.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }
}
