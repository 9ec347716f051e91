//! The hostile-API cases (`tests/cases/hostile-api/`):
//! the base account served by the simulator, with the case's answers injected, and the CLI's
//! answer asserted. Never a silent pass: each ends in exit 2 with an error naming the fault,
//! or in a report that says it is incomplete and never exits 0.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use sim::{Faults, Override, Sim, State, StreamedBody};

use crate::helpers::*;

/// A file of the hostile-API cases.
fn case(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/cases/hostile-api")
        .join(rel)
}

fn case_text(rel: &str) -> String {
    std::fs::read_to_string(case(rel)).expect("case file")
}

/// The base account (`fleet.json`), served on a free loopback port.
async fn base_account() -> Sim {
    let account: Value = serde_json::from_str(&case_text("fleet.json")).expect("fleet.json");
    start(State::from_account_json(&account).expect("fleet.json loads")).await
}

fn query(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

/// `GET path` (with `query`) answered with `status` and `body` as JSON.
fn answer(path: &str, q: &[(&str, Option<&str>)], status: u16, body: String) -> Override {
    Override {
        method: "GET".into(),
        path: path.into(),
        query: query(q),
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        streamed: None,
    }
}

fn inject(sim: &Sim, overrides: Vec<Override>, meta_total: &[(&str, u64)]) {
    sim.set_faults(Faults {
        overrides,
        meta_total: meta_total
            .iter()
            .map(|(p, t)| (p.to_string(), *t))
            .collect(),
        ..Default::default()
    });
}

/// `audit --policy policy.toml --format F` against the simulator.
async fn audit(sim: &Sim, format: &str, extra: &[&str]) -> Run {
    let policy = case("policy.toml");
    let mut args = vec![
        "audit",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--format",
        format,
    ];
    args.extend(extra);
    cli(sim, &args).await
}

/// An error run: exit 2, nothing on stdout, the token nowhere, `needle` on stderr.
fn assert_refused(run: &Run, sim: &Sim, needle: &str) {
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.trim().is_empty(), "no report: {}", run.stdout);
    assert!(
        run.stderr.contains(needle),
        "{needle:?} not in stderr: {}",
        run.stderr
    );
    assert!(!run.stderr.contains(&sim.token), "token leaked");
}

fn incomplete(report: &Value) -> Vec<String> {
    serde_json::from_value(report["run"]["incomplete"].clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_account_control_run() {
    let sim = base_account().await;
    let run = audit(&sim, "json", &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["run"]["complete"], true);
    assert_eq!(r["run"]["api_requests"], 5);
    assert_eq!(r["summary"]["droplets"], 80);
    assert_eq!(r["summary"]["pass"], 70);
    assert_eq!(r["summary"]["fail"], 10);
    assert_eq!(r["findings"].as_array().map(Vec::len), Some(16));
    assert!(r["run"].get("incomplete").is_none());
    sim.shutdown().await;
}

/// Case 01: every list redirects (302) to another origin that answers empty lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case01_redirect_to_another_origin_is_refused() {
    let other = Sim::start(([127, 0, 0, 2], 0).into(), "other-origin", State::default())
        .await
        .expect("second origin");
    let served = [
        ("/v2/droplets", "droplets.json"),
        ("/v2/firewalls", "firewalls.json"),
        ("/v2/vpcs", "vpcs.json"),
        ("/v2/account/keys", "account-keys.json"),
    ];
    let there = |(path, file): &(&str, &str)| {
        answer(
            path,
            &[],
            200,
            case_text(&format!("01-redirect-foreign-origin/other-origin/{file}")),
        )
    };
    inject(&other, served.iter().map(there).collect(), &[]);
    let sim = base_account().await;
    let redirect = |path: &str, q: &[(&str, Option<&str>)], query: &str| Override {
        status: 302,
        headers: vec![("location".into(), format!("{}{path}?{query}", other.url()))],
        ..answer(path, q, 302, String::new())
    };
    inject(
        &sim,
        vec![
            redirect(
                "/v2/droplets",
                &[("type", Some("gpus"))],
                "type=gpus&per_page=200&page=1",
            ),
            redirect("/v2/droplets", &[], "per_page=200&page=1"),
            redirect("/v2/firewalls", &[], "per_page=200&page=1"),
            redirect("/v2/vpcs", &[], "per_page=200&page=1"),
            redirect("/v2/account/keys", &[], "per_page=200&page=1"),
        ],
        &[],
    );
    for format in ["json", "table"] {
        let run = audit(&sim, format, &[]).await;
        assert_refused(
            &run,
            &sim,
            "error: GET /v2/droplets: the API redirected (302) to ",
        );
        assert!(
            run.stderr
                .contains(&format!("{}/v2/droplets?", other.url())),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("which is not the API origin"),
            "{}",
            run.stderr
        );
        assert!(!run.stdout.contains("compliant"));
    }
    assert!(
        other.requests().is_empty(),
        "the other origin got {:?}",
        other.requests()
    );
    sim.shutdown().await;
    other.shutdown().await;
}

/// Case 01's kind: a `links.pages.next` URL on another origin is not followed either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case01_next_link_to_another_origin_is_refused() {
    let other = Sim::start(([127, 0, 0, 2], 0).into(), "other-origin", State::default())
        .await
        .expect("second origin");
    let sim = base_account().await;
    let body = serde_json::json!({
        "firewalls": [],
        "links": {"pages": {"next": format!("{}/v2/firewalls?page=2&per_page=200", other.url())}},
    });
    inject(
        &sim,
        vec![answer("/v2/firewalls", &[], 200, body.to_string())],
        &[],
    );
    let run = audit(&sim, "json", &[]).await;
    assert_refused(
        &run,
        &sim,
        "error: GET /v2/firewalls: the API sent a link to http://127.0.0.2:",
    );
    assert!(
        run.stderr
            .contains(&format!("which is not the API origin {}", sim.url())),
        "{}",
        run.stderr
    );
    assert!(other.requests().is_empty());
    sim.shutdown().await;
    other.shutdown().await;
}

/// Case 02: a Droplet or firewall page without its list as an array is a decode error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case02_list_without_its_array_is_a_decode_error() {
    let sim = base_account().await;
    let cases = [
        ("/v2/droplets", case_text("02-list-key-missing/droplets.json"), "error: GET /v2/droplets: could not decode the response: the answer has no \"droplets\" array"),
        ("/v2/droplets", r#"{"droplets":{"id":7001},"meta":{"total":1}}"#.to_string(), "error: GET /v2/droplets: could not decode the response: invalid type: map"),
        ("/v2/droplets", r#"{"droplets":null,"meta":{"total":0}}"#.to_string(), "error: GET /v2/droplets: could not decode the response: invalid type: null"),
        ("/v2/firewalls", r#"{"droplets":[],"meta":{"total":0}}"#.to_string(), "error: GET /v2/firewalls: could not decode the response: the answer has no \"firewalls\" array"),
    ];
    for (path, body, needle) in cases {
        inject(&sim, vec![answer(path, &[], 200, body)], &[]);
        let run = audit(&sim, "json", &[]).await;
        assert_refused(&run, &sim, needle);
    }
    sim.shutdown().await;
}

/// Case 02 for the lists the run can do without: `unknown` findings, `complete: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case02_vpc_and_key_lists_without_their_array_make_checks_unknown() {
    let sim = base_account().await;
    inject(
        &sim,
        vec![
            answer("/v2/vpcs", &[], 200, r#"{"meta":{"total":3}}"#.into()),
            answer(
                "/v2/account/keys",
                &[],
                200,
                r#"{"keys":[],"meta":{"total":1}}"#.into(),
            ),
        ],
        &[],
    );
    let run = audit(&sim, "json", &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["run"]["complete"], false);
    let why = incomplete(&r);
    assert!(
        why.iter()
            .any(|w| w.contains("GET /v2/vpcs") && w.contains("no \"vpcs\" array")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.contains("GET /v2/account/keys") && w.contains("no \"ssh_keys\" array")),
        "{why:?}"
    );
    let findings = r["findings"].as_array().expect("findings");
    let keys = findings
        .iter()
        .find(|f| f["rule"] == "ssh.no-account-keys")
        .expect("account check");
    assert_eq!(keys["status"], "unknown");
    let vpc: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"].as_str().is_some_and(|r| r.starts_with("vpc.")))
        .collect();
    assert_eq!(vpc.len(), 80, "every Droplet's VPC check is unknown");
    assert!(vpc.iter().all(|f| f["status"] == "unknown"));
    sim.shutdown().await;
}

/// Case 03: `meta.total` says 1000 while 80 Droplets exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case03_total_not_reached_is_never_complete() {
    let sim = base_account().await;
    inject(&sim, vec![], &[("/v2/droplets", 1000)]);
    let run = audit(&sim, "json", &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["run"]["complete"], false);
    assert_eq!(
        incomplete(&r),
        vec![
            "GET /v2/droplets: read 78 items, the API announced 1000".to_string(),
            "GET /v2/droplets?type=gpus: read 2 items, the API announced 1000".to_string(),
        ]
    );
    // Page 1 of each Droplet list, and of the pages 2 to 5 it announced only those already
    // on their way when the first short page came back (the VPC, firewall and key lists: 3).
    let requests = r["run"]["api_requests"].as_u64().expect("api_requests");
    assert!((2 + 3..=13).contains(&requests), "{requests} requests");
    assert_eq!(r["summary"]["droplets"], 80);
    assert_eq!(r["findings"].as_array().map(Vec::len), Some(16));
    // A Droplet that passes still gives no exit 0 when the list was short; the table says why.
    let run = audit(&sim, "table", &["--droplet", "7001"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("GET /v2/droplets: read 78 items, the API announced 1000"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("every audited Droplet is compliant"),
        "{}",
        run.stdout
    );
    sim.shutdown().await;
}

/// Case 04: `meta.total` of 10^12 stops the run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case04_huge_total_stops_at_once() {
    let sim = base_account().await;
    inject(&sim, vec![], &[("/v2/droplets", 1_000_000_000_000)]);
    let run = audit(&sim, "json", &[]).await;
    assert_refused(
        &run,
        &sim,
        "error: GET /v2/droplets: the API announced 1000000000000 items, more than the 1000000 this tool will read",
    );
    let droplet_requests = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/droplets")
        .count();
    assert_eq!(
        droplet_requests, 2,
        "only the first page of each Droplet list"
    );
    sim.shutdown().await;
}

/// Case 04's kind, just under the cap: a total of 999,999 that the pages do not bear out. The
/// first short page ends the list: at most one wave of pages past the honest read, and the
/// report names the list and both counts (it used to send about 3,300 requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_the_pages_contradict_costs_at_most_one_more_wave() {
    // `/v2/droplets` holds two lists (the regular one and `type=gpus`), both told 999,999.
    for (path, key, lists) in [
        ("/v2/droplets", "droplets", 2),
        ("/v2/firewalls", "firewalls", 1),
    ] {
        let sim = base_account().await;
        inject(&sim, vec![], &[(path, 999_999)]);
        let run = audit(&sim, "json", &[]).await;
        assert_eq!(run.code, 1, "{}", run.stderr);
        let r = run.json();
        assert_eq!(r["run"]["complete"], false);
        let why = incomplete(&r);
        assert!(
            why.iter()
                .any(|w| w.starts_with(&format!("GET {path}")) && w.contains("999999")),
            "{key}: {why:?}"
        );
        let sent = sim.requests().iter().filter(|q| q.path == path).count();
        // The honest read: one page a list (80 Droplets, a few firewalls), plus one wave of 50.
        assert!(sent <= lists * (1 + 50), "{key}: {sent} requests");
        sim.shutdown().await;
    }
}

/// Case 04's kind: a list paged only by `next` links that never end is bounded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case04_endless_next_links_stop_at_the_bound() {
    let sim = base_account().await;
    let body = serde_json::json!({
        "ssh_keys": [{"id": 1, "name": "k", "public_key": "ssh-ed25519 AAAA k"}],
        "links": {"pages": {"next": format!("{}/v2/account/keys?page=2&per_page=200", sim.url())}},
    });
    // 5,000 pages is more than an hour's budget: this token is given ten hours' worth, so
    // that the list's own bound, not the budget's reserve, is what stops it.
    sim.set_faults(Faults {
        overrides: vec![answer("/v2/account/keys", &[], 200, body.to_string())],
        ratelimit_remaining: Some(50_000),
        ..Default::default()
    });
    let run = audit(&sim, "json", &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["run"]["complete"], false);
    let why = incomplete(&r);
    assert!(
        why.iter()
            .any(|w| w.contains("GET /v2/account/keys: the list goes on past 5000 pages")),
        "{why:?}"
    );
    let key_requests = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/account/keys")
        .count();
    assert_eq!(key_requests, 5000);
    sim.shutdown().await;
}

fn big_body(fill_bytes: u64, unannounced: bool) -> Override {
    let mut o = answer("/v2/droplets", &[("type", None)], 200, String::new());
    o.streamed = Some(StreamedBody {
        head: r#"{"droplets":[{"id":7999,"name":""#.into(),
        fill: b'a',
        fill_bytes,
        tail: r#""}],"links":{},"meta":{"total":1}}"#.into(),
        unannounced,
    });
    o
}

/// Case 05: a 200 MiB answer is refused, with or without a `Content-Length`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case05_huge_body_is_refused() {
    let sim = base_account().await;
    for unannounced in [false, true] {
        inject(&sim, vec![big_body(200 << 20, unannounced)], &[]);
        let run = audit(&sim, "json", &[]).await;
        assert_refused(
            &run,
            &sim,
            "error: GET /v2/droplets: the answer is larger than 8 MiB; refusing to read it",
        );
    }
    // Just under the cap is read.
    inject(&sim, vec![big_body(7 << 20, true)], &[]);
    let run = audit(&sim, "json", &["--droplet", "7999"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json()["summary"]["droplets"], 1);
    sim.shutdown().await;
}

/// No byte a terminal acts on: C0 controls but newline, DEL, C1 controls.
fn assert_printable(text: &str, what: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        bad.is_empty(),
        "{what} holds control characters {bad:?}:\n{text}"
    );
}

/// Case 07: a Droplet name with ESC sequences, a window-title sequence and `\r\n`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case07_control_characters_are_escaped_in_the_table_only() {
    let sim = base_account().await;
    let gpus = case_text("07-control-chars-in-name/droplets-gpus.json");
    inject(
        &sim,
        vec![answer("/v2/droplets", &[("type", Some("gpus"))], 200, gpus)],
        &[],
    );
    let policy = case("policy.toml");
    let args = ["audit", "--policy", policy.to_str().expect("utf-8")];
    // A terminal wide enough that the name is not wrapped.
    let table = cli_env(&sim.url(), &sim.token, &args, &[("COLUMNS", "400")]).await;
    assert_eq!(table.code, 1, "{}", table.stderr);
    assert_printable(&table.stdout, "the table");
    assert!(
        table.stdout.contains(
            r"gpu-01.example\u{1b}[2J\u{1b}[H\u{1b}]0;dropletguard: all clear\u{7}\r\n80 Droplets"
        ),
        "{}",
        table.stdout
    );
    assert!(
        !table
            .stdout
            .lines()
            .any(|l| l.starts_with("80 Droplets audited: 80 pass")),
        "{}",
        table.stdout
    );
    // JSON and SARIF keep the exact name (escaped as JSON requires).
    let exact = "gpu-01.example\u{1b}[2J\u{1b}[H\u{1b}]0;dropletguard: all clear\u{7}\r\n80 Droplets audited: 80 pass, 0 fail, 0 unknown; 0 findings; 0 changes; 5 API requests";
    let json = audit(&sim, "json", &[]).await;
    assert_printable(&json.stdout, "the JSON");
    let r = json.json();
    let f = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["resource"]["id"] == "7079")
        .expect("7079");
    assert_eq!(f["resource"]["name"], exact);
    let sarif = audit(&sim, "sarif", &[]).await;
    assert_printable(&sarif.stdout, "the SARIF");
    assert!(
        sarif.stdout.contains(r"gpu-01.example\u001b[2J"),
        "SARIF keeps the name"
    );
    sim.shutdown().await;
}

/// Case 07 on stderr: an API error message with control characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case07_control_characters_are_escaped_in_errors() {
    let sim = base_account().await;
    let body = serde_json::json!({"id": "forbidden", "message": "denied\u{1b}[2J\u{1b}]0;all clear\u{7}\r\nNo findings: every audited Droplet is compliant."});
    inject(
        &sim,
        vec![answer("/v2/droplets", &[], 403, body.to_string())],
        &[],
    );
    let run = audit(&sim, "table", &[]).await;
    assert_refused(
        &run,
        &sim,
        r"denied\u{1b}[2J\u{1b}]0;all clear\u{7}\r\nNo findings",
    );
    assert_printable(&run.stderr, "stderr");
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("No findings")),
        "{}",
        run.stderr
    );
    sim.shutdown().await;
}

/// The policy cases (`policies/`): each refused before any API request, with one line
/// `FILE:LINE: key: message`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_cases_are_refused_with_file_line_and_key() {
    let sim = base_account().await;
    let cases = [
        (
            "baseline-name-space.toml",
            5,
            r#"firewall.baseline_name: "has space" is not a valid firewall name (a letter or digit first, then letters, digits, '.' or '-')"#,
        ),
        (
            "sshd-config-empty.toml",
            6,
            r#"ssh.sshd_config: must be an absolute path, not """#,
        ),
        (
            "port-plus-sign.toml",
            6,
            r#"firewall.forbidden_ports: "+25" is not a port or a range A-B (1-65535)"#,
        ),
        (
            "exempt-tag-is-baseline-tag.toml",
            12,
            r#"remediation.exempt_tag: must differ from firewall.baseline_tag ("dropletguard-baseline")"#,
        ),
        (
            "not-utf8-line5.toml",
            5,
            "the policy is not valid UTF-8 (byte 0xE9 at column 10)",
        ),
    ];
    for (file, line, message) in cases {
        let path = case(&format!("policies/{file}"));
        let path = path.to_str().expect("utf-8");
        for command in ["audit", "remediate"] {
            let run = cli(&sim, &[command, "--policy", path, "--no-ssh"]).await;
            assert_eq!(run.code, 2, "{file}: {}", run.stderr);
            assert_eq!(
                run.stderr,
                format!("error: {path}:{line}: {message}\n"),
                "{file}"
            );
        }
    }
    assert!(
        sim.requests().is_empty(),
        "no API request: {:?}",
        sim.requests()
    );
    sim.shutdown().await;
}

/// Case 12: a FIFO or a device as the policy is refused at once; a huge file is capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_must_be_a_small_regular_file() {
    let sim = base_account().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("policy.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let big = dir.path().join("big.toml");
    let mut text = "# padding\n".repeat(110_000);
    text.push_str("[ssh]\nprobe = false\n");
    std::fs::write(&big, text).expect("write");
    let cases = [
        (
            fifo.to_str().expect("utf-8").to_string(),
            "not a regular file (a FIFO)",
        ),
        ("/dev/zero".to_string(), "not a regular file (a device)"),
        (
            dir.path().to_str().expect("utf-8").to_string(),
            "not a regular file (a directory)",
        ),
        (
            big.to_str().expect("utf-8").to_string(),
            "larger than 1 MiB",
        ),
    ];
    for (path, needle) in cases {
        let run = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            cli(&sim, &["audit", "--policy", &path]),
        )
        .await
        .expect("refused at once, never blocked");
        assert_eq!(run.code, 2, "{path}: {}", run.stderr);
        assert!(
            run.stderr
                .starts_with(&format!("error: {path}: cannot read the policy: {needle}")),
            "{}",
            run.stderr
        );
    }
    assert!(sim.requests().is_empty());
    sim.shutdown().await;
}

/// The base account with the firewall list answered from a case file, audited as JSON
/// (exit 1: the base account has findings).
async fn audit_with_firewalls(file: &str) -> (Sim, Value) {
    let sim = base_account().await;
    let q = [("per_page", Some("200")), ("page", Some("1"))];
    inject(
        &sim,
        vec![answer("/v2/firewalls", &q, 200, case_text(file))],
        &[],
    );
    let run = audit(&sim, "json", &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    (sim, report)
}

/// Case 06: the only firewall covering Droplet 7070 has `"status": "weird"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case06_unknown_firewall_status_is_unknown_never_applied() {
    let (sim, r) = audit_with_firewalls("06-firewall-status-unknown/firewalls.json").await;
    let f = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["resource"]["id"] == "7070")
        .cloned()
        .expect("a finding on Droplet 7070");
    assert_eq!(f["rule"], "firewall.not-applied");
    assert_eq!(f["status"], "unknown");
    let detail = f["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("firewall bastion (f1000000-0000-4000-8000-000000000004)"),
        "{detail}"
    );
    assert!(detail.contains("\"weird\""), "{detail}");
    assert_eq!(
        (
            r["summary"]["pass"].as_u64(),
            r["summary"]["fail"].as_u64(),
            r["summary"]["unknown"].as_u64()
        ),
        (Some(69), Some(10), Some(1))
    );
    sim.shutdown().await;
}

/// Case 08: firewall `partners` (at the 5-tag limit) is listed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case08_a_firewall_listed_twice_gives_one_finding() {
    let (sim, r) = audit_with_firewalls("08-firewall-listed-twice/firewalls.json").await;
    let limits: Vec<&Value> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "firewall.limits")
        .collect();
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(
        limits[0]["resource"]["id"],
        "f1000000-0000-4000-8000-000000000007"
    );
    assert_eq!(
        r["findings"].as_array().map(Vec::len),
        Some(17),
        "the base account's 16, and this one"
    );
    sim.shutdown().await;
}
