//! Against real throwaway OpenSSH servers on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{keygen_fingerprint, Opts, TestSshd, T};
use shared::ssh::{Fault, Rollback, SshError};

fn password_on() -> Opts {
    Opts {
        password_in_main: true,
        ..Opts::default()
    }
}

/// The throwaway sshd `s` as the fix's target, its management user `user`.
fn target<'a>(
    s: &'a TestSshd,
    user: &'a str,
    probe_users: &'a [String],
) -> shared::ssh::PasswordAuthTarget<'a> {
    shared::ssh::PasswordAuthTarget {
        addr: s.addr,
        user,
        key: &s.key,
        sshd_config: s.config_str(),
        port: s.port,
        timeout: T,
        probe_users,
    }
}

async fn fix(s: &TestSshd) -> Result<shared::ssh::PasswordAuthFix, SshError> {
    let session = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect("management login");
    let r = shared::ssh::disable_password_auth(&session, &target(s, "root", &[])).await;
    session.close().await;
    r
}

async fn fix_with_fault(
    s: &TestSshd,
    fault: Fault,
) -> Result<shared::ssh::PasswordAuthFix, SshError> {
    let session = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect("management login");
    let r = shared::ssh::disable_password_auth_with_fault(&session, &target(s, "root", &[]), fault)
        .await;
    session.close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_on_is_disabled_via_dropin() {
    let s = TestSshd::start(password_on());
    let before = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe before");
    assert!(before.offers_password(), "{before:?}");
    assert!(before.methods.iter().any(|m| m == "password"), "{before:?}");
    assert_eq!(
        s.effective(),
        vec![
            "passwordauthentication yes",
            "kbdinteractiveauthentication yes"
        ]
    );

    let done = fix(&s)
        .await
        .unwrap_or_else(|e| panic!("fix failed: {e}\n{}", s.log_text()));
    assert_eq!(done.method, "drop-in");
    let dropin = s.dropin_dir.join("00-dropletguard.conf");
    assert_eq!(done.changed_file, dropin.display().to_string());
    assert_eq!(done.backup, None);
    assert_eq!(
        done.before,
        vec![
            "passwordauthentication yes",
            "kbdinteractiveauthentication yes"
        ]
    );
    assert_eq!(
        done.after,
        vec![
            "passwordauthentication no",
            "kbdinteractiveauthentication no"
        ]
    );
    assert!(std::fs::read_to_string(&dropin)
        .expect("drop-in")
        .contains("PasswordAuthentication no"));

    let after = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe after");
    assert_eq!(after.methods, vec!["publickey"], "{after:?}");
    assert!(!after.offers_password());
    assert_eq!(after.host_key_sha256, before.host_key_sha256);
    assert_eq!(
        s.effective(),
        vec![
            "passwordauthentication no",
            "kbdinteractiveauthentication no"
        ]
    );
    let again = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect("key login after");
    let out = again.exec("echo still-in").await.expect("exec");
    assert_eq!(out.stdout.trim(), "still-in");
    again.close().await;
    // The same sshd process (SIGHUP re-execs in place) is still the listener.
    assert!(s.log_text().contains("Received SIGHUP"), "{}", s.log_text());

    // Running it again is harmless (idempotent) and keeps the result.
    let twice = fix(&s).await.expect("second run");
    assert_eq!(twice.method, "drop-in");
    assert!(
        twice.backup.is_some(),
        "second run backs up our own previous drop-in"
    );
    let p = shared::ssh::probe(s.addr, "root", T).await.expect("probe");
    assert_eq!(p.methods, vec!["publickey"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_init_dropin_is_beaten() {
    let s = TestSshd::start(Opts {
        cloud_init_dropin: true,
        ..Opts::default()
    });
    let before = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe before");
    assert!(before.methods.iter().any(|m| m == "password"), "{before:?}");
    let done = fix(&s)
        .await
        .unwrap_or_else(|e| panic!("fix failed: {e}\n{}", s.log_text()));
    assert_eq!(done.method, "drop-in");
    assert!(done.changed_file.ends_with("/00-dropletguard.conf"));
    // cloud-init's file is untouched but loses: sshd keeps the first value.
    let cloud = std::fs::read_to_string(s.dropin_dir.join("50-cloud-init.conf")).expect("cloud");
    assert_eq!(cloud, "PasswordAuthentication yes\n");
    let after = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe after");
    assert_eq!(after.methods, vec!["publickey"], "{after:?}");
    assert_eq!(
        s.effective(),
        vec![
            "passwordauthentication no",
            "kbdinteractiveauthentication no"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_before_include_edit_main_config_with_backup() {
    let s = TestSshd::start(Opts {
        password_in_main: true,
        settings_before_include: true,
        cloud_init_dropin: true,
        ..Opts::default()
    });
    let original = std::fs::read_to_string(&s.config).expect("config");
    let done = fix(&s)
        .await
        .unwrap_or_else(|e| panic!("fix failed: {e}\n{}", s.log_text()));
    assert_eq!(done.method, "main-config");
    assert_eq!(done.changed_file, s.config_str());
    let bak = format!("{}.dropletguard.bak", s.config_str());
    assert_eq!(done.backup.as_deref(), Some(bak.as_str()));
    assert_eq!(std::fs::read_to_string(&bak).expect("backup"), original);
    let edited = std::fs::read_to_string(&s.config).expect("config");
    assert!(
        edited.contains("#dropletguard-disabled# PasswordAuthentication yes"),
        "{edited}"
    );
    let after = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe after");
    assert_eq!(after.methods, vec!["publickey"], "{after:?}");
    assert!(s.config_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_after_write_is_rolled_back_without_reload() {
    let s = TestSshd::start(password_on());
    let before = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe before");
    let files_before = s.snapshot();
    let err = fix_with_fault(&s, Fault::BreakConfigAfterWrite)
        .await
        .expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains("validate (sshd -t)"), "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert!(err.rolled_back(), "{err:?}");
    assert!(
        matches!(
            &err,
            SshError::FixRolledBack {
                rollback: Rollback::RestoredNoReloadNeeded,
                ..
            }
        ),
        "{err:?}"
    );
    // Files exactly as before, config valid, no reload happened, still serving.
    assert_eq!(s.snapshot(), files_before);
    assert!(s.config_valid());
    assert!(!s.log_text().contains("Received SIGHUP"));
    let after = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("sshd keeps serving");
    assert_eq!(after.methods, before.methods);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_verification_after_reload_restores_and_reloads() {
    let s = TestSshd::start(password_on());
    let before = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe before");
    let files_before = s.snapshot();
    let err = fix_with_fault(&s, Fault::FailVerificationAfterReload)
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            &err,
            SshError::FixRolledBack {
                step: "verify",
                rollback: Rollback::RestoredAndReloaded,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("rolled back"), "{err}");
    assert_eq!(s.snapshot(), files_before);
    // sshd really re-read the old config: password is offered again.
    let after = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe after");
    assert_eq!(after.methods, before.methods);
    assert!(after.offers_password());
    assert!(
        s.log_text().matches("Received SIGHUP").count() >= 2,
        "{}",
        s.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_broken_config_is_refused_and_untouched() {
    let s = TestSshd::start(password_on());
    let before = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("probe before");
    // A broken file appears after sshd started; the Include picks it up.
    std::fs::write(s.dropin_dir.join("99-broken.conf"), "NoSuchOption yes\n").expect("write");
    let files_before = s.snapshot();
    let err = fix(&s).await.expect_err("must refuse");
    assert!(
        matches!(err, SshError::ConfigInvalidBeforeChange { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing changed"), "{err}");
    assert_eq!(s.snapshot(), files_before);
    assert!(!s.log_text().contains("Received SIGHUP"));
    let after = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect("sshd keeps serving");
    assert_eq!(after.methods, before.methods);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_management_key_is_a_clear_error() {
    let s = TestSshd::start(Opts {
        password_in_main: true,
        wrong_authorized_key: true,
        ..Opts::default()
    });
    let files_before = s.snapshot();
    let err = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect_err("key must be refused");
    let text = err.to_string();
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err:?}");
    assert!(text.contains("refused public-key login"), "{text}");
    assert!(text.contains(s.key.fingerprint()), "{text}");
    assert!(
        text.contains("password"),
        "lists what the server still offers: {text}"
    );
    assert_eq!(s.snapshot(), files_before);
    let p = shared::ssh::probe(s.addr, "root", T).await.expect("probe");
    assert!(p.offers_password());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_sshd_fails_fast() {
    let mut s = TestSshd::start(Opts::default());
    s.stop();
    let t0 = Instant::now();
    let err = shared::ssh::probe(s.addr, "root", T)
        .await
        .expect_err("nobody listens");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_times_out_within_timeout() {
    // Accepts connections but never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let timeout = Duration::from_millis(800);
    let t0 = Instant::now();
    let err = shared::ssh::probe(addr, "root", timeout)
        .await
        .expect_err("must time out");
    let took = t0.elapsed();
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );
    assert!(err.to_string().contains("banner"), "{err}");
    // connect() is bounded the same way.
    let key = common_key();
    let t0 = Instant::now();
    let err = shared::ssh::connect(addr, "root", &key, timeout)
        .await
        .expect_err("must time out");
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(t0.elapsed() < timeout + Duration::from_millis(500));
    hold.abort();
}

fn common_key() -> shared::ssh::ManagementKey {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("k");
    crate::common::keygen(&p);
    shared::ssh::ManagementKey::from_file(&p).expect("key")
}

/// A loopback TCP proxy that holds every new connection for `HOLD` before
/// forwarding it, and records how many connections were held at once. A held
/// connection is certainly an unfinished probe (it has not even seen the
/// banner), so the maximum is a strict lower bound of probes in flight that
/// never counts connections that are merely closing.
const HOLD: Duration = Duration::from_millis(250);

async fn counting_proxy(
    target: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let max = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(AtomicUsize::new(0));
    let max2 = Arc::clone(&max);
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
            max2.fetch_max(now, Ordering::SeqCst);
            let held = Arc::clone(&held);
            tokio::spawn(async move {
                tokio::time::sleep(HOLD).await;
                held.fetch_sub(1, Ordering::SeqCst);
                if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (addr, max, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_many_bounded_concurrency() {
    let s = TestSshd::start(password_on());
    let (proxy, max_seen, task) = counting_proxy(s.addr).await;
    let dead = SocketAddr::from(([127, 0, 0, 1], crate::common::free_port()));
    let mut targets: Vec<(String, SocketAddr)> =
        (0..20).map(|i| (format!("droplet-{i}"), proxy)).collect();
    targets.insert(7, ("dead".to_string(), dead));
    let t0 = Instant::now();
    let results = shared::ssh::probe_many(targets, "root", 4, T).await;
    let took = t0.elapsed();
    assert_eq!(results.len(), 21);
    for (i, (k, r)) in results.iter().enumerate() {
        if i == 7 {
            assert_eq!(k, "dead");
            assert!(matches!(r, Err(SshError::Connect { .. })), "{r:?}");
        } else {
            let expect = format!("droplet-{}", if i < 7 { i } else { i - 1 });
            assert_eq!(k, &expect, "order kept");
            let p = r.as_ref().unwrap_or_else(|e| panic!("{k}: {e}"));
            assert!(p.offers_password());
        }
    }
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= 4, "at most 4 probes in flight, saw {max}");
    assert!(max >= 2, "probes ran concurrently, saw {max}");
    // 20 held connections, 4 at a time: at least 5 rounds of HOLD.
    assert!(took >= HOLD * 5, "{took:?}");
    eprintln!("probe_many: 21 targets, concurrency 4, {took:?}, max in flight {max}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_fingerprint_and_version() {
    let s = TestSshd::start(Opts::default());
    let p = shared::ssh::probe(s.addr, "root", T).await.expect("probe");
    let expected = keygen_fingerprint(&s.host_key.with_extension("pub"));
    assert!(expected.starts_with("SHA256:"));
    assert_eq!(p.host_key_sha256, expected);
    assert!(
        p.server_version.starts_with("SSH-2.0-OpenSSH_"),
        "{:?}",
        p.server_version
    );
    assert!(!p.server_version.ends_with('\r') && !p.server_version.ends_with('\n'));
    let sshd_v = std::process::Command::new(crate::common::SSHD)
        .arg("-V")
        .output()
        .expect("sshd -V");
    let v = String::from_utf8_lossy(&sshd_v.stderr);
    let short = v.split(',').next().unwrap_or_default().trim().to_string(); // OpenSSH_9.2
    assert!(
        p.server_version.contains(&short),
        "{} vs {short}",
        p.server_version
    );
    eprintln!(
        "server_version = {:?}, host key = {}",
        p.server_version, p.host_key_sha256
    );
    // The logged-in session sees the same key.
    let session = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect("login");
    assert_eq!(session.host_key_sha256(), expected);
    assert_eq!(session.server_version(), p.server_version);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_status_and_timeout() {
    let s = TestSshd::start(Opts::default());
    let session = shared::ssh::connect(s.addr, "root", &s.key, Duration::from_secs(2))
        .await
        .expect("login");
    let out = session
        .exec("echo out; echo err >&2; exit 3")
        .await
        .expect("exec");
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let big = session
        .exec("head -c 300000 /dev/zero | tr '\\0' x")
        .await
        .expect("big");
    assert_eq!(big.stdout.len(), 300_000);
    let ok = session.exec("id -u").await.expect("id");
    assert_eq!((ok.status, ok.stdout.trim()), (0, "0"));
    let t0 = Instant::now();
    let err = session.exec("sleep 30").await.expect_err("must time out");
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // The session is still usable after a timed-out command.
    let out = session
        .exec("echo alive")
        .await
        .expect("exec after timeout");
    assert_eq!(out.stdout, "alive\n");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_key_debug_never_shows_private_key() {
    let s = TestSshd::start(Opts::default());
    let text = std::fs::read_to_string(&s.key_path).expect("key");
    let dbg = format!("{:?}", s.key);
    for line in text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!dbg.contains(line), "{dbg}");
    }
    assert_eq!(
        s.key.fingerprint(),
        keygen_fingerprint(&s.key_path.with_extension("pub"))
    );
    let session = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect("login");
    let sdbg = format!("{session:?}");
    assert!(!sdbg.contains("PRIVATE"), "{sdbg}");
    session.close().await;
}

/// Needs a local user with passwordless sudo whose name is in
/// `SSHKIT_SUDO_USER` (e.g. `useradd -m dgtest; echo 'dgtest ALL=(ALL)
/// NOPASSWD:ALL' > /etc/sudoers.d/dgtest`). The test sshd accepts the
/// management key for every user (AuthorizedKeysFile is one absolute path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a sudo-capable local user in SSHKIT_SUDO_USER"]
async fn non_root_user_with_passwordless_sudo() {
    let user = std::env::var("SSHKIT_SUDO_USER").expect("SSHKIT_SUDO_USER");
    let s = TestSshd::start(password_on());
    let session = shared::ssh::connect(s.addr, &user, &s.key, T)
        .await
        .expect("login as sudo user");
    let who = session.exec("id -un").await.expect("id");
    assert_eq!(who.stdout.trim(), user);
    let done = shared::ssh::disable_password_auth(&session, &target(&s, &user, &[]))
        .await
        .unwrap_or_else(|e| panic!("fix as {user} failed: {e}\n{}", s.log_text()));
    session.close().await;
    assert_eq!(done.method, "drop-in");
    let meta = std::fs::metadata(&done.changed_file).expect("drop-in");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), 0, "written as root through sudo");
    let p = shared::ssh::probe(s.addr, &user, T).await.expect("probe");
    assert_eq!(p.methods, vec!["publickey"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_key_exchange_times_out_and_does_not_leak_the_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Sends a banner, then never answers the key exchange.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        sock.write_all(b"SSH-2.0-Stall_1.0\r\n")
            .await
            .expect("banner");
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        // Read (and ignore) the client's KEXINIT until the client closes.
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            }
        }
    });
    let timeout = Duration::from_millis(800);
    let t0 = Instant::now();
    let err = shared::ssh::probe(addr, "root", timeout)
        .await
        .expect_err("must time out");
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(t0.elapsed() < timeout + Duration::from_millis(500));
    // russh's background task must not keep the connection open forever.
    let closed_after = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("client closed the socket within 5 s")
        .expect("server task");
    assert!(
        closed_after < timeout * 2 + Duration::from_millis(500),
        "{closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_management_session_survives_longer_than_timeout() {
    let s = TestSshd::start(Opts::default());
    let timeout = Duration::from_secs(1);
    let session = shared::ssh::connect(s.addr, "root", &s.key, timeout)
        .await
        .expect("login");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let out = session
        .exec("echo awake")
        .await
        .expect("exec after idling 3.5 x timeout");
    assert_eq!(out.stdout, "awake\n");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_host_key_and_rsa_management_key() {
    let s = TestSshd::start(Opts {
        rsa: true,
        ..Opts::default()
    });
    let probed = shared::ssh::probe(s.addr, "root", T).await;
    let key = shared::ssh::ManagementKey::from_file(&s.key_path);
    eprintln!("rsa: probe={probed:?}\nkey={key:?}");
    if cfg!(feature = "rsa") {
        let p = probed.expect("probe with RSA-only host key");
        assert_eq!(
            p.host_key_sha256,
            keygen_fingerprint(&s.host_key.with_extension("pub"))
        );
        let key = key.expect("RSA key loads");
        let session = shared::ssh::connect(s.addr, "root", &key, T)
            .await
            .expect("RSA login (rsa-sha2-*)");
        assert_eq!(session.exec("echo ok").await.expect("exec").stdout, "ok\n");
        session.close().await;
    } else {
        // Clear errors instead of russh's "Wrong server signature".
        let err = probed.expect_err("an RSA-only host cannot be probed without the rsa feature");
        let text = format!("{err} / {err:?}");
        assert!(
            text.contains("NoCommonAlgo") || text.contains("No common"),
            "{text}"
        );
        let err = key.expect_err("RSA key refused without the rsa feature");
        assert!(err.to_string().contains("`rsa` feature"), "{err}");
    }
}

/// `sshd -T -C user=…` on the test server: our two keys' lines.
fn effective_as(s: &TestSshd, user: &str, addr: &str) -> Vec<String> {
    let spec = format!(
        "user={user},host=h.example,addr={addr},laddr=127.0.0.1,lport={}",
        s.port
    );
    let out = std::process::Command::new(crate::common::SSHD)
        .args(["-T", "-C", &spec, "-f", s.config_str()])
        .output()
        .expect("sshd -T -C");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("passwordauthentication ")
                || l.starts_with("kbdinteractiveauthentication ")
        })
        .map(str::to_string)
        .collect()
}

/// A cloud-init style drop-in ending in `Match` blocks (a user, an address): the audit names
/// each block with its file and line, and the removal turns passwords off inside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_blocks_in_a_dropin_are_read_and_turned_off() {
    let s = TestSshd::start(Opts::default());
    let dropin = s.dropin_dir.join("60-deploy.conf");
    std::fs::write(
        &dropin,
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User www-data\n    \
         PasswordAuthentication yes\nMatch Address 10.0.0.0/8\n    KbdInteractiveAuthentication yes\n\
         Match Group nogroup\n    KbdInteractiveAuthentication yes\n",
    )
    .expect("write drop-in");
    let session = shared::ssh::connect(s.addr, "root", &s.key, T)
        .await
        .expect("login");
    let defaults = shared::ssh::ConnectionDefaults {
        user: "root".into(),
        laddr: "127.0.0.1".into(),
        lport: s.port,
    };
    let blocks = shared::ssh::read_match_blocks(&session, s.config_str(), &defaults)
        .await
        .expect("blocks read");
    let seen: Vec<(String, Vec<String>)> = blocks
        .iter()
        .map(|b| (b.describe(), b.offers.clone()))
        .collect();
    let file = dropin.display().to_string();
    assert_eq!(
        seen,
        vec![
            (
                format!("Match User www-data ({file}:3)"),
                vec!["password".to_string()]
            ),
            (
                format!("Match Address 10.0.0.0/8 ({file}:5)"),
                vec!["keyboard-interactive".to_string()]
            ),
            // a member of the group (`nobody`, whose primary group it is) is looked up
            (
                format!("Match Group nogroup ({file}:7)"),
                vec!["keyboard-interactive".to_string()]
            ),
        ]
    );
    assert_eq!(
        effective_as(&s, "www-data", "198.51.100.7")[0],
        "passwordauthentication yes"
    );

    let users = ["root".to_string(), "www-data".to_string()];
    let done = shared::ssh::disable_password_auth(&session, &target(&s, "root", &users))
        .await
        .expect("fixed");
    session.close().await;
    assert_eq!(done.match_block_files, vec![file.clone()]);
    for (user, addr) in [
        ("www-data", "198.51.100.7"),
        ("root", "10.1.2.3"),
        ("nobody", "198.51.100.7"),
    ] {
        assert_eq!(
            effective_as(&s, user, addr),
            vec![
                "passwordauthentication no",
                "kbdinteractiveauthentication no"
            ],
            "{user} from {addr}"
        );
    }
    let text = std::fs::read_to_string(&dropin).expect("drop-in");
    assert!(text.contains("#dropletguard-disabled#     PasswordAuthentication yes\n    PasswordAuthentication no\n"), "{text}");
    let bak = s.dir.path().join("60-deploy.conf.dropletguard.bak");
    assert!(std::fs::read_to_string(bak)
        .expect("backup")
        .contains("PasswordAuthentication yes"));
    assert!(s.config_valid());
}

/// A change that spans the drop-in and another file's `Match` block is undone as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_match_block_change_restores_every_file() {
    let s = TestSshd::start(password_on());
    std::fs::write(
        s.dropin_dir.join("60-deploy.conf"),
        "Match User www-data\n    PasswordAuthentication yes\n",
    )
    .expect("write drop-in");
    let files_before = s.snapshot();
    let err = fix_with_fault(&s, Fault::BreakConfigAfterWrite)
        .await
        .expect_err("must fail");
    assert!(
        matches!(
            &err,
            SshError::FixRolledBack {
                rollback: Rollback::RestoredNoReloadNeeded,
                ..
            }
        ),
        "{err:?}"
    );
    // The Match block's file was written (its backup proves it), then put back.
    assert!(s
        .dir
        .path()
        .join("60-deploy.conf.dropletguard.bak")
        .exists());
    assert_eq!(s.snapshot(), files_before);
    assert!(s.config_valid());
}
