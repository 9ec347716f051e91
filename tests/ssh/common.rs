//! Throwaway OpenSSH servers on loopback for the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::ssh::ManagementKey;

pub const SSHD: &str = "/usr/sbin/sshd";
pub const T: Duration = Duration::from_secs(5);

/// How the throwaway sshd is configured.
#[derive(Clone, Default)]
pub struct Opts {
    /// `PasswordAuthentication yes` + `KbdInteractiveAuthentication yes` in the main file.
    pub password_in_main: bool,
    /// Put those two lines BEFORE the Include line (forces main-config mode).
    pub settings_before_include: bool,
    /// Drop-in `50-cloud-init.conf` with `PasswordAuthentication yes`.
    pub cloud_init_dropin: bool,
    /// Authorize a different key than the management key.
    pub wrong_authorized_key: bool,
    /// RSA host key and RSA management key instead of ed25519.
    pub rsa: bool,
    /// Lines appended to the generated main file (e.g. `SetEnv PATH=…`).
    pub extra_config: String,
    /// A whole configuration instead of the generated one, with the placeholders of
    /// `tests/ssh/fixtures/cases/` (`@DIR@`, `@ADDR@` = 127.0.0.1, `@PORT@`); the host key is at
    /// `@DIR@/hostkey`.
    pub config_template: Option<String>,
    /// Another OpenSSH build's root (an extracted package: `usr/sbin/sshd`,
    /// `usr/lib/openssh/sshd-session`, `sshd-auth`) instead of the system's sshd.
    pub sshd_root: Option<PathBuf>,
}

pub struct TestSshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub dropin_dir: PathBuf,
    pub host_key: PathBuf,
    pub key_path: PathBuf,
    pub key: ManagementKey,
    pub log: PathBuf,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub fn keygen(path: &Path) {
    keygen_type(path, "ed25519");
}

pub fn keygen_type(path: &Path, kind: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "sshkit-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

impl TestSshd {
    pub fn start(opts: Opts) -> TestSshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} missing: apt-get install -y openssh-server"
        );
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let dropin_dir = d.join("sshd_config.d");
        std::fs::create_dir_all(&dropin_dir).expect("mkdir drop-in dir");
        let kind = if opts.rsa { "rsa" } else { "ed25519" };
        let host_key = d.join(format!("ssh_host_{kind}_key"));
        keygen_type(&host_key, kind);
        let key_path = d.join("mgmt_key");
        keygen_type(&key_path, kind);
        let authorized = if opts.wrong_authorized_key {
            let other = d.join("other_key");
            keygen(&other);
            other.with_extension("pub")
        } else {
            key_path.with_extension("pub")
        };
        std::fs::copy(&authorized, d.join("authorized_keys")).expect("authorized_keys");
        // RSA keys only load with the `rsa` feature; tests that use them load
        // the key themselves, the others get an ed25519 key.
        let key = if opts.rsa {
            let spare = d.join("spare_key");
            keygen(&spare);
            ManagementKey::from_file(&spare).expect("load spare key")
        } else {
            ManagementKey::from_file(&key_path).expect("load management key")
        };

        let port = free_port();
        let pw = if opts.password_in_main {
            "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\n"
        } else {
            ""
        };
        let include = format!("Include {}/*.conf\n", dropin_dir.display());
        let (first, second) = if opts.settings_before_include {
            (pw.to_string(), include)
        } else {
            (include, pw.to_string())
        };
        let body = format!(
            "# throwaway sshd for sshkit tests\n{first}Port {port}\nListenAddress 127.0.0.1\n\
             HostKey {hk}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             MaxStartups 100:30:200\nLogLevel VERBOSE\n{second}{extra}",
            hk = host_key.display(),
            d = d.display(),
            extra = opts.extra_config,
        );
        let body = match &opts.config_template {
            Some(template) => {
                std::fs::copy(&host_key, d.join("hostkey")).expect("copy host key");
                template
                    .replace("@DIR@", &d.display().to_string())
                    .replace("@ADDR@", "127.0.0.1")
                    .replace("@PORT@", &port.to_string())
            }
            None => body,
        };
        let config = d.join("sshd_config");
        std::fs::write(&config, body).expect("write sshd_config");
        if opts.cloud_init_dropin {
            std::fs::write(
                dropin_dir.join("50-cloud-init.conf"),
                "PasswordAuthentication yes\n",
            )
            .expect("write cloud-init drop-in");
        }
        let log = d.join("sshd.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let sshd = match &opts.sshd_root {
            Some(root) => {
                let lib = root.join("usr/lib/openssh");
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&config)
                    .expect("config");
                let paths = format!(
                    "SshdSessionPath {}\nSshdAuthPath {}\n",
                    lib.join("sshd-session").display(),
                    lib.join("sshd-auth").display()
                );
                std::io::Write::write_all(&mut f, paths.as_bytes()).expect("append paths");
                root.join("usr/sbin/sshd")
            }
            None => PathBuf::from(SSHD),
        };
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn sshd");
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TestSshd {
            dir,
            port,
            addr,
            config,
            dropin_dir,
            host_key,
            key_path,
            key,
            log,
            child: Some(child),
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("sshd exited early ({status}): {}", self.log_text());
                }
            }
            if let Ok(mut s) = TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 8];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-2.0-" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sshd not ready: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn config_str(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    /// `sshd -T -f config`, our keys only.
    pub fn effective(&self) -> Vec<String> {
        let out = Command::new(SSHD)
            .arg("-T")
            .arg("-f")
            .arg(&self.config)
            .output()
            .expect("sshd -T");
        assert!(
            out.status.success(),
            "sshd -T failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.starts_with("passwordauthentication ")
                    || l.starts_with("kbdinteractiveauthentication ")
            })
            .map(str::to_string)
            .collect()
    }

    pub fn config_valid(&self) -> bool {
        Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&self.config)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Snapshot of the main config and every file in the drop-in dir.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let mut files = vec![(
            "sshd_config".to_string(),
            std::fs::read_to_string(&self.config).expect("read config"),
        )];
        let mut names: Vec<_> = std::fs::read_dir(&self.dropin_dir)
            .expect("read drop-in dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            files.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap_or_default(),
            ));
        }
        files
    }

    /// Stop the server (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// sha256 fingerprint of a public key file as printed by `ssh-keygen -lf`.
pub fn keygen_fingerprint(pub_path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_path)
        .output()
        .expect("ssh-keygen -lf");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}
