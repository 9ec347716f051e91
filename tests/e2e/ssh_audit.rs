//! The SSH checks end to end: a simulated Droplet whose public address is a throwaway sshd on
//! loopback (never the machine's own sshd, never port 22), probed, audited and fixed by the
//! real `dropletguard` binary.

use std::time::Duration;

use serde_json::Value;

use crate::fixtures;
use crate::helpers::*;
use crate::remediation::Env;

#[path = "../ssh/common.rs"]
pub(crate) mod sshd_common;

use sshd_common::{free_port, Opts, TestSshd, T};

fn find<'a>(report: &'a Value, rule: &str) -> Option<&'a Value> {
    report["findings"]
        .as_array()?
        .iter()
        .find(|f| f["rule"] == rule)
}

/// A listener on all interfaces owned by a process not in `allowed_public` (python3).
struct PublicListener {
    child: std::process::Child,
    port: u16,
}

impl Drop for PublicListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn public_listener() -> PublicListener {
    let port = free_port();
    let child = std::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "0.0.0.0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    PublicListener { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_is_found_removed_and_services_are_audited() {
    let mut sshd = TestSshd::start(Opts {
        password_in_main: true,
        ..Opts::default()
    });
    let web = public_listener().await;
    let mut state = fixtures::compliant();
    state.droplets.get_mut(&1).expect("droplet 1").public_ipv4 = "127.0.0.1".into();
    let sim = start(state).await;
    let policy = format!(
        "[management]\ncidrs = [\"203.0.113.0/24\"]\n[ssh]\nport = {}\nsshd_config = \"{}\"\n",
        sshd.port,
        sshd.config_str()
    );
    let key = sshd.key_path.to_str().expect("utf-8").to_string();
    let with_key = [("DROPLETGUARD_SSH_KEY_FILE", key.as_str())];

    // 1. The agentless probe, no key: password is offered.
    let audit = Env::new(&policy);
    let run = audit.run(&sim, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let f = find(&report, "ssh.password-auth").expect("ssh.password-auth");
    assert_eq!(f["status"], "fail");
    let detail = f["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("password") && detail.contains("SHA256:") && detail.contains("OpenSSH"),
        "{detail}"
    );
    assert!(
        find(&report, "service.exposed").is_none(),
        "no key, no service audit"
    );
    // --no-ssh leaves both checks out.
    let run = audit
        .run(&sim, &["audit", "--format", "json", "--no-ssh"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stdout);

    // 2. With the management key: the listeners, against the allowlist.
    let run = audit
        .run_env(&sim, &["audit", "--format", "json"], &with_key)
        .await;
    let report = run.json();
    let f = find(&report, "service.exposed").expect("service.exposed");
    let detail = f["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(":{}", web.port)) && detail.contains("python3"),
        "{detail}"
    );
    assert!(
        !detail.contains(&format!(":{} (sshd", sshd.port)),
        "sshd on loopback is not public: {detail}"
    );
    assert_eq!(
        f["severity"], "medium",
        "web-fw does not admit that port from the world"
    );

    // 3. Enforce without a key: nothing is changed, and the report says why.
    let enforce = format!("{policy}[remediation]\nmode = \"enforce\"\n");
    let env = Env::new(&enforce);
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 1);
    let f = find(&run.json(), "ssh.password-auth")
        .cloned()
        .expect("still failing");
    assert!(
        f["remediation"]["result"]
            .as_str()
            .unwrap_or_default()
            .contains("no management key"),
        "{f}"
    );
    assert!(env.ledger().is_empty());
    let still = shared::ssh::probe(sshd.addr, "root", T)
        .await
        .expect("probe");
    assert!(still.offers_password());

    // 4. Enforce with the key: removed safely, verified, recorded.
    let run = env
        .run_env(&sim, &["remediate", "--format", "json"], &with_key)
        .await;
    let report = run.json();
    assert!(
        find(&report, "ssh.password-auth").is_none(),
        "fixed: {report}"
    );
    let after = shared::ssh::probe(sshd.addr, "root", T)
        .await
        .expect("probe after");
    assert_eq!(after.methods, vec!["publickey".to_string()]);
    let session = shared::ssh::connect(sshd.addr, "root", &sshd.key, T)
        .await
        .expect("key login still works");
    session.close().await;
    let ledger = env.ledger();
    let c = ledger
        .iter()
        .find(|c| c["action"] == "disable-ssh-password-auth")
        .expect("ledger record");
    assert_eq!(c["result"], "ok");
    let before = c["before"]["sshd"].to_string();
    let after_lines = c["after"]["sshd"].to_string();
    assert!(before.contains("passwordauthentication yes"), "{before}");
    assert!(
        after_lines.contains("passwordauthentication no"),
        "{after_lines}"
    );

    // 5. An SSH server that is down: unknown, never a pass.
    sshd.stop();
    let run = audit.run(&sim, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1);
    let f = find(&run.json(), "ssh.password-auth")
        .cloned()
        .expect("unknown finding");
    assert_eq!(f["status"], "unknown");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_changes_nothing_and_says_why() {
    let sshd = TestSshd::start(Opts {
        password_in_main: true,
        wrong_authorized_key: true,
        ..Opts::default()
    });
    let mut state = fixtures::compliant();
    state.droplets.get_mut(&1).expect("droplet 1").public_ipv4 = "127.0.0.1".into();
    let sim = start(state).await;
    let policy = format!(
        "[management]\ncidrs = [\"203.0.113.0/24\"]\n[ssh]\nport = {}\nsshd_config = \"{}\"\n[remediation]\nmode = \"enforce\"\n",
        sshd.port,
        sshd.config_str()
    );
    let env = Env::new(&policy);
    let key = sshd.key_path.to_str().expect("utf-8").to_string();
    let run = env
        .run_env(
            &sim,
            &["remediate", "--format", "json"],
            &[("DROPLETGUARD_SSH_KEY_FILE", &key)],
        )
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let f = find(&report, "ssh.password-auth")
        .cloned()
        .expect("still failing");
    assert!(
        f["remediation"]["result"]
            .as_str()
            .unwrap_or_default()
            .contains("key login failed"),
        "{f}"
    );
    let c = env
        .ledger()
        .into_iter()
        .find(|c| c["action"] == "disable-ssh-password-auth")
        .expect("attempt recorded");
    assert!(
        c["result"]
            .as_str()
            .unwrap_or_default()
            .starts_with("failed: key login failed"),
        "{c}"
    );
    let still = shared::ssh::probe(sshd.addr, "root", T)
        .await
        .expect("probe");
    assert!(still.offers_password(), "nothing changed");
    sim.shutdown().await;
}
