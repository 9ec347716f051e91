//! Safely disabling password and keyboard-interactive logins on a remote sshd.
//!
//! Order of operations (any failure after a write rolls back):
//! 0. `sshd -t` on the untouched config: if it already fails, stop (a reload
//!    would kill the listener whatever we write).
//! 1. read `sshd -T` (effective values) and the main config file;
//! 2. plan: a drop-in that sorts first in the first `Include` directory if that
//!    `Include` comes before any of our keys / `Match`, else edit the main file
//!    (old lines commented out, our block inserted before anything else);
//! 3. write (atomic rename), then `sshd -t` and `sshd -T` on the new files;
//!    failure → restore, no reload;
//! 4. SIGHUP the sshd listening on `port` (systemctl only if no pid is found);
//! 5. verify: a probe no longer offers password/keyboard-interactive, a fresh
//!    key login works, `sshd -T` says `no`; failure → restore + reload.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{connect, probe, Session, PROBE_SPACING};
use super::error::{Rollback, SshError};
use super::key::ManagementKey;
use super::matchblocks::{match_blocks_via, read_config_files, ConnectionDefaults};
use super::pwauth_plan::*;
use super::remote::{sh_quote, Remote, SSHD};

/// What [`disable_password_auth`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasswordAuthFix {
    /// Effective `sshd -T` lines for our keys before the change.
    pub before: Vec<String>,
    /// The same lines after the change and reload.
    pub after: Vec<String>,
    /// The file written (drop-in or main config).
    pub changed_file: String,
    /// Backup of the previous content of `changed_file`, if it existed.
    pub backup: Option<String>,
    /// `"drop-in"` or `"main-config"`.
    pub method: String,
    /// Things a human should look at.
    pub warnings: Vec<String>,
    /// Other files whose `Match` blocks turned passwords on, now off inside the blocks
    /// (each backed up as `<name>.dropletguard.bak` beside the main config).
    #[serde(default)]
    pub match_block_files: Vec<String>,
}

/// Test-only fault injection.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Append an invalid directive to what we write, so `sshd -t` fails.
    BreakConfigAfterWrite,
    /// Treat post-reload verification as failed (after it really ran).
    FailVerificationAfterReload,
}

/// The sshd whose password logins are disabled, and how the change is checked from outside.
#[derive(Debug, Clone, Copy)]
pub struct PasswordAuthTarget<'a> {
    /// The sshd's address: the fresh probe and key login after the reload go there.
    pub addr: SocketAddr,
    /// The management user (`DROPLETGUARD_SSH_USER`): the fresh key login's.
    pub user: &'a str,
    pub key: &'a ManagementKey,
    /// The main configuration file (`ssh.sshd_config`, e.g. `/etc/ssh/sshd_config`).
    pub sshd_config: &'a str,
    /// The port the sshd to reload listens on (`ssh.port`).
    pub port: u16,
    /// Each connection's and each remote command's time limit.
    pub timeout: Duration,
    /// Users the verifying probe asks as (`ssh.probe_users`), one connection each,
    /// [`super::PROBE_SPACING`] apart; empty: the management user.
    pub probe_users: &'a [String],
}

/// Over a management [`Session`], disable password and keyboard-interactive authentication
/// in the sshd of `target`, then verify with a fresh probe and a fresh key login. Commands run
/// through `sudo -n` when the session's user is not root. Any failure after a write rolls
/// the files back ([`SshError::Remote`] says what happened and whether the rollback worked).
pub async fn disable_password_auth(
    session: &Session,
    target: &PasswordAuthTarget<'_>,
) -> Result<PasswordAuthFix, SshError> {
    fix(session, target, None).await
}

/// [`disable_password_auth`] with an injected fault (tests only).
#[doc(hidden)]
pub async fn disable_password_auth_with_fault(
    session: &Session,
    target: &PasswordAuthTarget<'_>,
    fault: Fault,
) -> Result<PasswordAuthFix, SshError> {
    fix(session, target, Some(fault)).await
}

async fn fix(
    session: &Session,
    target: &PasswordAuthTarget<'_>,
    fault: Option<Fault>,
) -> Result<PasswordAuthFix, SshError> {
    let probe_users = if target.probe_users.is_empty() {
        vec![target.user.to_string()]
    } else {
        target.probe_users.to_vec()
    };
    Fixer {
        remote: Remote::new(session),
        addr: target.addr,
        user: target.user,
        key: target.key,
        config: target.sshd_config,
        port: target.port,
        timeout: target.timeout,
        fault,
        probe_users,
    }
    .run()
    .await
}

// ---------------------------------------------------------------------------
// The procedure

struct Fixer<'a> {
    remote: Remote<'a>,
    addr: SocketAddr,
    user: &'a str,
    key: &'a ManagementKey,
    config: &'a str,
    port: u16,
    timeout: Duration,
    fault: Option<Fault>,
    /// Users the outside probe verifies as, the management user first.
    probe_users: Vec<String>,
}

/// A file to write: where, what, what it held before, and why.
struct Edit {
    path: String,
    content: String,
    /// Previous content, if the file existed.
    original: Option<String>,
    /// `drop-in`, `main-config` or `match-blocks`.
    method: &'static str,
}

/// A file we wrote and how to undo it.
struct Written {
    path: String,
    /// Previous content, if the file existed.
    original: Option<String>,
    backup: Option<String>,
}

/// The untouched server.
struct Before {
    /// Methods the management user's probe saw (what a rollback must bring back).
    baseline: Vec<String>,
    /// Effective `sshd -T` lines for our keys.
    lines: Vec<String>,
    with_challenge: bool,
    main: String,
}

impl Fixer<'_> {
    fn not_started(&self, step: &'static str, detail: String) -> SshError {
        SshError::FixNotStarted {
            addr: self.addr,
            step,
            detail,
        }
    }

    async fn sshd_test(&self) -> Result<(), String> {
        self.remote
            .sh_ok(
                "sshd -t",
                &format!("{SSHD} -t -f {}", sh_quote(self.config)),
            )
            .await
            .map(|_| ())
    }

    /// `sshd -T` (falls back to `-C ...` for sshd versions that want it).
    async fn sshd_dump(&self) -> Result<String, String> {
        let cfg = sh_quote(self.config);
        let spec = sh_quote(&format!("user={},host=localhost,addr=127.0.0.1", self.user));
        self.remote
            .sh_ok(
                "sshd -T",
                &format!("{SSHD} -T -f {cfg} 2>/dev/null || {SSHD} -T -C {spec} -f {cfg}"),
            )
            .await
    }

    async fn read_file(&self, path: &str) -> Result<Option<String>, String> {
        let p = sh_quote(path);
        let out = self
            .remote
            .sh_ok(
                &format!("reading {path}"),
                &format!("if [ -e {p} ]; then echo EXISTS; cat {p}; else echo MISSING; fi"),
            )
            .await?;
        match out.split_once('\n') {
            Some(("EXISTS", body)) => Ok(Some(body.to_string())),
            _ if out.trim() == "MISSING" => Ok(None),
            _ => Err(format!("unexpected output while reading {path}")),
        }
    }

    /// Atomically replace `path` with `content`, keeping mode/owner of an
    /// existing file.
    async fn write_file(&self, path: &str, content: &str) -> Result<(), String> {
        let p = sh_quote(path);
        let tmp = sh_quote(&format!("{path}.dropletguard.tmp"));
        let script = format!(
            "set -e; umask 022; if [ -e {p} ]; then cp -p {p} {tmp}; fi; \
             printf '%s' {c} > {tmp}; mv -f {tmp} {p}",
            c = sh_quote(content)
        );
        self.remote
            .sh_ok(&format!("writing {path}"), &script)
            .await
            .map(|_| ())
    }

    /// Steps 0 and 1: the untouched config is valid, the probe works, effective values.
    async fn preflight(&self) -> Result<Before, SshError> {
        if let Err(detail) = self.sshd_test().await {
            return Err(SshError::ConfigInvalidBeforeChange {
                addr: self.addr,
                config: self.config.to_string(),
                detail,
            });
        }
        // The probe we verify with must work before we change anything.
        let baseline = probe(self.addr, self.user, self.timeout)
            .await
            .map_err(|e| self.not_started("baseline probe", e.to_string()))?
            .methods;
        let dump = self
            .sshd_dump()
            .await
            .map_err(|d| self.not_started("reading effective config", d))?;
        let lines = effective_lines(&dump);
        let with_challenge = lines
            .iter()
            .any(|l| l.starts_with("challengeresponseauthentication "));
        let main = self
            .read_file(self.config)
            .await
            .map_err(|d| self.not_started("reading main config", d))?
            .ok_or_else(|| {
                let missing = format!("{} does not exist", self.config);
                self.not_started("reading main config", missing)
            })?;
        Ok(Before {
            baseline,
            lines,
            with_challenge,
            main,
        })
    }

    /// Step 2: the drop-in or the main file, then every other file with a `Match` block that
    /// turns one of our keys on.
    async fn plan_edits(&self, before: &Before) -> Result<Vec<Edit>, SshError> {
        let mut primary = match plan(&before.main, before.with_challenge) {
            Plan::DropIn { dir, path, content } => {
                let mkdir = format!("mkdir -p {}", sh_quote(&dir));
                self.remote
                    .sh_ok("creating drop-in dir", &mkdir)
                    .await
                    .map_err(|d| self.not_started("creating drop-in directory", d))?;
                let original = self
                    .read_file(&path)
                    .await
                    .map_err(|d| self.not_started("reading existing drop-in", d))?;
                let method = "drop-in";
                Edit {
                    path,
                    content,
                    original,
                    method,
                }
            }
            Plan::MainConfig { content } => Edit {
                path: self.config.to_string(),
                content,
                original: Some(before.main.clone()),
                method: "main-config",
            },
        };
        if self.fault == Some(Fault::BreakConfigAfterWrite) {
            primary.content.push_str("ThisIsNotAnSshdKeyword yes\n");
        }
        let mut edits = self.match_block_edits(&primary).await?;
        edits.insert(0, primary);
        Ok(edits)
    }

    /// Files other than `primary` whose `Match` blocks turn passwords on, rewritten with
    /// those lines off ([`disable_in_match_blocks`]).
    async fn match_block_edits(&self, primary: &Edit) -> Result<Vec<Edit>, SshError> {
        let files = read_config_files(&self.remote, self.config)
            .await
            .map_err(|d| self.not_started("reading the configuration files", d))?;
        let mut edits = Vec::new();
        for (path, _) in files.iter().filter(|(p, _)| *p != primary.path) {
            let Some(text) = self
                .read_file(path)
                .await
                .map_err(|d| self.not_started("reading a configuration file", d))?
            else {
                continue;
            };
            let content = disable_in_match_blocks(&text);
            if content != text {
                let (path, original) = (path.clone(), Some(text));
                edits.push(Edit {
                    path,
                    content,
                    original,
                    method: "match-blocks",
                });
            }
        }
        Ok(edits)
    }

    /// Backs up and writes each edit; a failure restores what was written (no reload).
    async fn write_edits(&self, edits: &[Edit]) -> Result<Vec<Written>, SshError> {
        let mut written = Vec::new();
        for edit in edits {
            let backup = match &edit.original {
                Some(_) => {
                    let bak = backup_path(self.config, &edit.path);
                    let cp = format!("cp -p {} {}", sh_quote(&edit.path), sh_quote(&bak));
                    if let Err(d) = self.remote.sh_ok("backing up", &cp).await {
                        return Err(self
                            .rollback("writing backup", d, &written, &[], false)
                            .await);
                    }
                    Some(bak)
                }
                None => None,
            };
            let (path, original) = (edit.path.clone(), edit.original.clone());
            written.push(Written {
                path,
                original,
                backup,
            });
            tracing::info!(addr = %self.addr, file = %edit.path, method = edit.method, "disabling password auth");
            if let Err(d) = self.write_file(&edit.path, &edit.content).await {
                // A failed write may still have replaced the file: restore.
                return Err(self.rollback("write", d, &written, &[], false).await);
            }
        }
        Ok(written)
    }

    /// Step 3: the new files pass `sshd -t`, and `sshd -T` says `no` globally and for every
    /// `Match` block's connection.
    async fn validate(&self) -> Result<(), (&'static str, String)> {
        self.sshd_test()
            .await
            .map_err(|d| ("validate (sshd -t)", d))?;
        let step = "check effective config";
        let dump = self.sshd_dump().await.map_err(|d| (step, d))?;
        if !all_disabled(&effective_lines(&dump)) {
            let d = format!(
                "after writing, sshd -T still says [{}] (another file that sshd reads earlier \
                 sets these keys?)",
                effective_lines(&dump).join(", ")
            );
            return Err((step, d));
        }
        self.match_blocks_off().await.map_err(|d| (step, d))
    }

    /// `sshd -T -C` for each `Match` block's criteria: none may offer a password.
    async fn match_blocks_off(&self) -> Result<(), String> {
        let defaults = ConnectionDefaults {
            user: self.user.to_string(),
            laddr: self.addr.ip().to_string(),
            lport: self.port,
        };
        let blocks = match_blocks_via(&self.remote, self.config, &defaults).await?;
        let on: Vec<String> = blocks
            .iter()
            .filter(|b| !b.offers.is_empty())
            .map(|b| format!("{} still offers {}", b.describe(), b.offers.join(", ")))
            .collect();
        if on.is_empty() {
            Ok(())
        } else {
            Err(on.join("; "))
        }
    }

    async fn run(&self) -> Result<PasswordAuthFix, SshError> {
        let before = self.preflight().await?;
        let edits = self.plan_edits(&before).await?;
        let written = self.write_edits(&edits).await?;
        let baseline = &before.baseline;
        if let Err((step, d)) = self.validate().await {
            return Err(self.rollback(step, d, &written, baseline, false).await);
        }
        // 4. Reload. On failure we may or may not have signalled sshd: restore and reload.
        if let Err(d) = self.reload().await {
            return Err(self.rollback("reload", d, &written, baseline, true).await);
        }
        // 5. Verify.
        let after = match self.verify().await {
            Ok(after) => after,
            Err(d) => return Err(self.rollback("verify", d, &written, baseline, true).await),
        };
        if self.fault == Some(Fault::FailVerificationAfterReload) {
            let d = "injected verification failure".to_string();
            return Err(self.rollback("verify", d, &written, baseline, true).await);
        }
        Ok(PasswordAuthFix {
            before: before.lines,
            after,
            changed_file: edits[0].path.clone(),
            backup: written[0].backup.clone(),
            method: edits[0].method.to_string(),
            warnings: Vec::new(),
            match_block_files: edits[1..].iter().map(|e| e.path.clone()).collect(),
        })
    }

    /// Send SIGHUP to the sshd listening on our port; systemctl only if no
    /// such pid exists.
    async fn reload(&self) -> Result<(), String> {
        let mut pids = match self
            .remote
            .sh(&format!("ss -H -tlpn 'sport = :{}'", self.port))
            .await
        {
            Ok(out) if out.status == 0 => sshd_pids_from_ss(&out.stdout),
            _ => Vec::new(),
        };
        if pids.is_empty() {
            // Fall back to the pid file sshd -T reports.
            if let Ok(dump) = self.sshd_dump().await {
                if let Some(pidfile) = dump
                    .lines()
                    .find_map(|l| l.strip_prefix("pidfile "))
                    .map(str::trim)
                {
                    if let Ok(Some(text)) = self.read_file(pidfile).await {
                        pids.extend(text.trim().parse::<u32>().ok().filter(|p| *p > 1));
                    }
                }
            }
        }
        let mut signalled = 0;
        for pid in &pids {
            // Only signal a process that really is sshd.
            let script = format!(
                "c=$(cat /proc/{pid}/comm 2>/dev/null || ps -o comm= -p {pid}); \
                 case \"$c\" in sshd*) kill -HUP {pid};; *) echo \"pid {pid} is '$c', not sshd\" >&2; exit 3;; esac"
            );
            match self.remote.sh_ok("kill -HUP", &script).await {
                Ok(_) => signalled += 1,
                Err(e) => tracing::warn!(addr = %self.addr, "not signalling pid {pid}: {e}"),
            }
        }
        if signalled > 0 {
            tracing::info!(addr = %self.addr, ?pids, "sent SIGHUP to sshd");
            return Ok(());
        }
        tracing::info!(addr = %self.addr, "no sshd pid found for port {}, using systemctl", self.port);
        self.remote
            .sh_ok(
                "systemctl reload",
                "systemctl reload ssh 2>/dev/null || systemctl reload sshd",
            )
            .await
            .map(|_| ())
    }

    /// Poll until a probe as `user` answers and `pred` holds for it, within `timeout`.
    /// sshd re-execs itself on SIGHUP, so the first probes may still see the
    /// old process or a closed port for a moment. Probes are [`PROBE_SPACING`] apart, so the
    /// polling never earns a `PerSourcePenalties` refusal.
    async fn wait_for_probe(
        &self,
        user: &str,
        pred: impl Fn(&super::client::ProbeResult) -> bool,
    ) -> Result<super::client::ProbeResult, String> {
        let deadline = Instant::now() + self.timeout;
        let mut last = String::from("no probe ran");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last);
            }
            match probe(self.addr, user, left).await {
                Ok(p) if pred(&p) => return Ok(p),
                Ok(p) => last = format!("probe as {user} still offers {:?}", p.methods),
                Err(e) => last = format!("probe as {user} failed: {e}"),
            }
            tokio::time::sleep(PROBE_SPACING.min(left)).await;
        }
    }

    /// Step 5: every probe user is offered no password, a fresh key login works, `sshd -T`
    /// says `no` globally and for every `Match` block.
    async fn verify(&self) -> Result<Vec<String>, String> {
        for (i, user) in self.probe_users.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(PROBE_SPACING).await;
            }
            self.wait_for_probe(user, |p| !p.offers_password())
                .await
                .map_err(|e| format!("after reload: {e}"))?;
        }
        let fresh = connect(self.addr, self.user, self.key, self.timeout)
            .await
            .map_err(|e| format!("fresh key login failed: {e}"))?;
        let ran = fresh.exec("true").await;
        fresh.close().await;
        match ran {
            Ok(out) if out.status == 0 => {}
            Ok(out) => return Err(format!("fresh login: `true` exited {}", out.status)),
            Err(e) => return Err(format!("fresh login cannot run commands: {e}")),
        }
        let after = effective_lines(&self.sshd_dump().await?);
        if !all_disabled(&after) {
            return Err(format!("sshd -T says [{}]", after.join(", ")));
        }
        self.match_blocks_off().await?;
        Ok(after)
    }

    /// Restore the previous state; reload again if sshd may have loaded the
    /// change. Returns the error to report.
    async fn rollback(
        &self,
        step: &'static str,
        detail: String,
        written: &[Written],
        baseline: &[String],
        reloaded: bool,
    ) -> SshError {
        tracing::warn!(addr = %self.addr, step, %detail, "rolling back password-auth change");
        let rollback = match self
            .restore_and_maybe_reload(written, baseline, reloaded)
            .await
        {
            Ok(r) => r,
            Err(why) => {
                tracing::error!(addr = %self.addr, %why, "ROLLBACK FAILED");
                Rollback::Failed(why)
            }
        };
        SshError::FixRolledBack {
            addr: self.addr,
            step,
            detail,
            rollback,
        }
    }

    /// Puts one file back: from its backup, its original text, or removes a new file.
    async fn restore_file(&self, w: &Written) -> Result<(), String> {
        let p = sh_quote(&w.path);
        let tmp = sh_quote(&format!("{}.dropletguard.tmp", w.path));
        match (&w.original, &w.backup) {
            (Some(_), Some(bak)) => {
                let b = sh_quote(bak);
                let script = format!("set -e; cp -p {b} {tmp}; mv -f {tmp} {p}");
                self.remote.sh_ok("restoring backup", &script).await?;
            }
            (Some(original), None) => self.write_file(&w.path, original).await?,
            (None, _) => {
                let script = format!("rm -f {p} {tmp}");
                self.remote.sh_ok("removing drop-in", &script).await?;
            }
        }
        Ok(())
    }

    async fn restore_and_maybe_reload(
        &self,
        written: &[Written],
        baseline: &[String],
        reloaded: bool,
    ) -> Result<Rollback, String> {
        for w in written.iter().rev() {
            self.restore_file(w).await?;
        }
        if !reloaded {
            return Ok(Rollback::RestoredNoReloadNeeded);
        }
        self.sshd_test()
            .await
            .map_err(|e| format!("restored config fails validation, NOT reloading: {e}"))?;
        self.reload().await?;
        // Right after SIGHUP the old process may still answer (or the port
        // may be closed while sshd re-execs): wait for the old behaviour.
        self.wait_for_probe(self.user, |p| p.methods == baseline)
            .await
            .map_err(|e| {
                format!(
                    "after the rollback reload sshd does not behave as before \
                     (expected methods {baseline:?}): {e}"
                )
            })?;
        Ok(Rollback::RestoredAndReloaded)
    }
}

/// `<file>.dropletguard.bak`; for any file but the main config (a drop-in), next to the
/// main config so a broad glob (`Include dir/*`) never reads the backup.
fn backup_path(main_config: &str, path: &str) -> String {
    if path == main_config {
        return format!("{path}.dropletguard.bak");
    }
    let dir = main_config.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
    let name = path.rsplit('/').next().unwrap_or(path);
    format!("{dir}/{name}.dropletguard.bak")
}
