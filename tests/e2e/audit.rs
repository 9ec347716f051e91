//! `dropletguard audit` as a process against the simulator.

use serde_json::Value;
use sim::{fleet, Faults, FleetSpec};

use crate::fixtures;
use crate::helpers::*;

fn find<'a>(report: &'a Value, rule: &str, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["rule"] == rule && f["resource"]["id"] == id)
        })
        .unwrap_or_else(|| panic!("no {rule} finding on {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_fleet_yields_exactly_its_findings() {
    let sim = start(fixtures::known()).await;
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "findings exit 1; stderr: {}", run.stderr);
    let report = run.json();
    assert_eq!(finding_keys(&report), fixtures::known_expected());
    assert_eq!(report["summary"]["droplets"], 8);
    assert_eq!(report["summary"]["pass"], 1);
    assert_eq!(report["summary"]["fail"], 7);
    assert_eq!(report["summary"]["unknown"], 0);
    assert_eq!(report["summary"]["changes"], 0);
    assert_eq!(report["run"]["trigger"], "cli");
    assert_eq!(report["run"]["complete"], true);
    assert!(report["changes"].as_array().is_some_and(|c| c.is_empty()));

    // Details name the firewall, the rule and the sources that caused them.
    let ssh = find(&report, "firewall.ssh-open", "2");
    assert_eq!(ssh["severity"], "high", "SSH from a range, not the world");
    let detail = ssh["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("db-fw") && detail.contains("198.51.100.0/24"),
        "{detail}"
    );
    let forbidden = find(&report, "firewall.forbidden-port", "2");
    assert_eq!(forbidden["severity"], "critical");
    assert!(forbidden["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("5432"));
    let mixed = find(&report, "vpc.mixed-tenants", "4");
    let detail = mixed["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("shared")
            && detail.contains("tenant:acme")
            && detail.contains("tenant:globex"),
        "{detail}"
    );
    let udp = find(&report, "firewall.world-open", "8");
    assert!(udp["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("udp 53"));
    assert_eq!(
        find(&report, "firewall.missing", "3")["resource"]["name"],
        "orphan"
    );
    assert_eq!(
        find(&report, "firewall.not-applied", "7")["remediation"]["mode"],
        "audit"
    );

    // Every request was a list or a read; the GPU list was asked for.
    let log = sim.requests();
    assert!(log.iter().all(|r| r.method == "GET"));
    assert!(log
        .iter()
        .any(|r| r.path == "/v2/droplets" && r.query.contains("type=gpus")));
    assert!(
        !log.iter().any(|r| r.path.starts_with("/v2/droplets/")),
        "no per-Droplet requests"
    );
    assert_eq!(report["run"]["api_requests"], log.len());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_droplets_only() {
    let sim = start(fixtures::known()).await;
    let policy = policy_file(fixtures::POLICY);
    let p = policy.path().to_str().expect("utf-8 path");
    let run = cli(
        &sim,
        &[
            "audit",
            "--format",
            "json",
            "--policy",
            p,
            "--droplet",
            "2",
            "--droplet",
            "4",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let keys = finding_keys(&report);
    let expected: Vec<_> = fixtures::known_expected()
        .into_iter()
        .filter(|(_, t, id)| t == "droplet" && (id == "2" || id == "4"))
        .collect();
    assert_eq!(
        keys, expected,
        "only the named Droplets, and no unrelated firewall's limits"
    );
    assert_eq!(report["summary"]["droplets"], 2);

    let clean = cli(
        &sim,
        &["audit", "--format", "json", "--policy", p, "--droplet", "1"],
    )
    .await;
    assert_eq!(
        clean.code, 0,
        "a compliant Droplet exits 0: {}",
        clean.stdout
    );

    let missing = cli(&sim, &["audit", "--policy", p, "--droplet", "12345"]).await;
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no Droplet with id 12345"),
        "{}",
        missing.stderr
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliant_account_exits_zero() {
    let sim = start(fixtures::compliant()).await;
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit"]).await;
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("No findings"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("1 Droplets audited: 1 pass, 0 fail, 0 unknown"),
        "{}",
        run.stdout
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_from_environment_and_default_policy() {
    let sim = start(fixtures::compliant()).await;
    // Without the management ranges, the built-in default policy sees SSH open to outsiders.
    let run = cli(&sim, &["audit", "--format", "json", "--no-ssh"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        finding_keys(&run.json()),
        vec![(
            "firewall.ssh-open".to_string(),
            "droplet".to_string(),
            "1".to_string()
        )]
    );
    let policy = policy_file(fixtures::POLICY);
    let p = policy.path().to_str().expect("utf-8 path");
    let run = cli_env(
        &sim.url(),
        &sim.token,
        &["audit"],
        &[("DROPLETGUARD_POLICY", p)],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_fleet_matches_its_oracle() {
    let sim = start(fleet::generate(&FleetSpec::new(400, 42))).await;
    let run = cli_with_policy(&sim, sim::FLEET_POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let expected = expected_keys(&sim);
    assert!(expected.len() > 50, "the fleet has defects of every kind");
    assert_eq!(finding_keys(&report), expected);
    assert_eq!(report["summary"]["droplets"], 400, "GPU Droplets included");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_do_not_change_the_findings() {
    // 1,200 Droplets; every 4th request rate limited, every 7th a 503.
    let sim = start(fleet::generate(&FleetSpec::new(1200, 9))).await;
    sim.set_faults(Faults {
        rate_limit_every: 4,
        retry_after_secs: 1,
        error_every: 7,
        error_status: Some(503),
        ..Default::default()
    });
    let run = cli_with_policy(&sim, sim::FLEET_POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(
        run.code, 1,
        "findings (1), not an error (2): {}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(finding_keys(&report), expected_keys(&sim));
    assert_eq!(report["summary"]["droplets"], 1200);
    let log = sim.requests();
    assert!(log.iter().any(|r| r.status == 429), "429s were served");
    assert!(log.iter().any(|r| r.status == 503), "503s were served");
    assert_eq!(
        report["run"]["api_requests"],
        log.len(),
        "retries are counted"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_droplets_in_at_most_sixty_requests() {
    let sim = start(fleet::generate(&FleetSpec::new(10_000, 3))).await;
    let run = cli_with_policy(&sim, sim::FLEET_POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let requests = report["run"]["api_requests"]
        .as_u64()
        .expect("api_requests");
    assert!(requests <= 60, "{requests} requests");
    assert_eq!(requests as usize, sim.requests().len());
    assert_eq!(report["summary"]["droplets"], 10_000);
    assert_eq!(finding_keys(&report), expected_keys(&sim));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_two_and_never_show_the_token() {
    let sim = start(fixtures::known()).await;
    // Wrong token: 401.
    let run = cli_env(&sim.url(), "dop_v1_wrongtoken", &["audit", "-vv"], &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(!run.stderr.contains("dop_v1_wrongtoken") && !run.stdout.contains("dop_v1_wrongtoken"));
    // Debug logs of a good run never show the token either.
    let run = cli_env(
        &sim.url(),
        &sim.token,
        &["audit", "-vv", "--format", "json", "--no-ssh"],
        &[("RUST_LOG", "trace")],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(
        !run.stderr.contains(&sim.token) && !run.stdout.contains(&sim.token),
        "token leaked"
    );
    // No token at all.
    let mut cmd = tokio::process::Command::new(BIN);
    let out = cmd
        .arg("audit")
        .env_remove("DIGITALOCEAN_TOKEN")
        .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
        .env("DIGITALOCEAN_API_URL", sim.url())
        .output()
        .await
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DIGITALOCEAN_TOKEN"));
    // DIGITALOCEAN_ACCESS_TOKEN works too.
    let run = cli_env(
        &sim.url(),
        "",
        &["audit", "--no-ssh"],
        &[("DIGITALOCEAN_ACCESS_TOKEN", &sim.token)],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    sim.shutdown().await;
    // Nothing listening: a transport error after retries, exit 2.
    let run = cli_env("http://127.0.0.1:9", "t", &["audit"], &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/v2/"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policy_is_rejected_with_file_line_and_key() {
    let sim = start(fixtures::known()).await;
    let policy = policy_file("[management]\ncidrs = [\"203.0.113.0/24\"]\n\n[firewall]\nworld_open_allowed = [\"80\", \"http\"]\n");
    let p = policy.path().to_str().expect("utf-8 path");
    let run = cli(&sim, &["audit", "--policy", p]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains(&format!("{p}:5: firewall.world_open_allowed")),
        "{}",
        run.stderr
    );
    assert!(
        sim.requests().is_empty(),
        "a bad policy stops the run before any request"
    );
    let missing = cli(&sim, &["audit", "--policy", "/nonexistent/policy.toml"]).await;
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("/nonexistent/policy.toml"),
        "{}",
        missing.stderr
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_without_keys_fails_the_account_check() {
    let mut state = fixtures::compliant();
    state.ssh_keys.clear();
    let sim = start(state).await;
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(
        finding_keys(&report),
        vec![(
            "ssh.no-account-keys".to_string(),
            "account".to_string(),
            "account".to_string()
        )]
    );
    assert_eq!(report["findings"][0]["status"], "fail");
    assert_eq!(
        report["summary"]["pass"], 1,
        "account findings do not fail a Droplet"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlistable_ssh_keys_and_vpcs_make_those_checks_unknown() {
    // A scoped token without ssh_key:read or vpc:read: the audit still runs, those checks are
    // unknown (never a pass), and the run says it is incomplete.
    let sim = start(fixtures::compliant()).await;
    sim.set_faults(Faults {
        forbidden_paths: vec!["/v2/account/keys".into(), "/v2/vpcs".into()],
        ..Default::default()
    });
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        finding_keys(&report),
        vec![
            (
                "ssh.no-account-keys".to_string(),
                "account".to_string(),
                "account".to_string()
            ),
            (
                "vpc.default".to_string(),
                "droplet".to_string(),
                "1".to_string()
            ),
        ]
    );
    assert!(report["findings"]
        .as_array()
        .is_some_and(|f| f.iter().all(|f| f["status"] == "unknown")));
    assert!(report["findings"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("403"));
    assert_eq!(report["run"]["complete"], false);
    assert_eq!(report["summary"]["unknown"], 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_the_insecure_fleet() {
    let out = tokio::process::Command::new(BIN)
        .arg("demo")
        .output()
        .await
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rule in [
        "firewall.missing",
        "firewall.ssh-open",
        "firewall.forbidden-port",
        "vpc.default",
    ] {
        assert!(stdout.contains(rule), "demo shows {rule}:\n{stdout}");
    }
    assert!(stdout.contains("Droplets audited"), "{stdout}");
    // The before and after HTML reports are written, and their paths printed.
    let page = |label: &str| {
        let path = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} path in:\n{stdout}"))
            .trim();
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let (before, after) = (page("before:"), page("after:"));
    assert!(before.contains(r#"id="tile-changes">0<"#));
    assert!(before.contains("This run changed nothing."));
    assert!(!after.contains(r#"id="tile-changes">0<"#));
    assert!(after.contains(r#"id="changes-table""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firewall_listed_twice_gives_one_finding() {
    // tests/cases/hostile-api/08: the firewall list names one firewall twice.
    let mut st = fixtures::known();
    let heavy = st
        .firewalls
        .iter()
        .find(|f| f.id == fixtures::TAG_HEAVY)
        .cloned()
        .expect("tag-heavy");
    st.firewalls.push(heavy);
    let sim = start(st).await;
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit", "--format", "json"]).await;
    let limits: Vec<_> = run.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "firewall.limits")
        .cloned()
        .collect();
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(finding_keys(&run.json()), fixtures::known_expected());
    sim.shutdown().await;
}
