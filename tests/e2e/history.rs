//! Exemptions, the findings history, grace before acting and the EMF line: through the CLI and
//! through the library with an injected clock (never sleeping), in both store backends.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;
use shared::digitalocean::{Client, ClientConfig, Token};
use shared::history::{load_index, run_summaries, time_to_resolve};
use shared::remediate::{remediate, RemediateOptions};
use shared::report::{Report, Status};
use shared::ssh_audit::SshAccess;
use shared::store::{DirStore, S3Store, Store};
use shared::{Policy, Scope};
use sim::Sim;

use crate::fixtures;
use crate::helpers::*;
use crate::remediation::ENFORCE;

use crate::store_s3::Moto;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn finding<'a>(report: &'a Value, rule: &str, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == rule && f["resource"]["id"] == id)
        .unwrap_or_else(|| panic!("no {rule} finding on {id}"))
}

/// The CLI with its own state directory.
async fn cli_in(sim: &Sim, state: &std::path::Path, policy: &str, args: &[&str]) -> Run {
    let file = policy_file(policy);
    let mut all = args.to_vec();
    all.extend(["--policy", file.path().to_str().expect("utf-8")]);
    let dir = state.to_str().expect("utf-8");
    cli_env(
        &sim.url(),
        &sim.token,
        &all,
        &[("DROPLETGUARD_STATE_DIR", dir)],
    )
    .await
}

fn exemptions_policy(expiring: DateTime<Utc>) -> String {
    format!(
        r#"{}
[[exemptions]]
droplets = ["orph*"]
rules = ["firewall.missing"]
reason = "being rebuilt behind a load balancer"
owner = "platform-team"
expires = 2099-12-31

[[exemptions]]
tags = ["db"]
reason = "database migration window"
owner = "dba@example.com"
expires = 2020-01-01

[[exemptions]]
droplets = ["8"]
rules = ["firewall.world-open"]
reason = "vendor appliance needs 8443 open; replacement planned"
owner = "platform-team"
expires = {}
"#,
        fixtures::POLICY,
        rfc3339(expiring)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_hold_expire_match_globs_and_leave_the_exit_status_alone() {
    let sim = start(fixtures::known()).await;
    let state = tempfile::tempdir().expect("state dir");
    let policy = exemptions_policy(Utc::now() + Duration::days(3));
    let run = cli_in(&sim, state.path(), &policy, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "other findings remain: {}", run.stderr);
    let r = run.json();
    // A glob on the name, for one rule: exempt, with its exemption.
    let orphan = finding(&r, "firewall.missing", "3");
    assert_eq!(orphan["status"], "exempt");
    assert_eq!(orphan["exemption"]["owner"], "platform-team");
    assert_eq!(orphan["exemption"]["expires"], "2099-12-31");
    assert_eq!(
        finding(&r, "vpc.default", "3")["status"],
        "fail",
        "other rules still fail"
    );
    // Expired: a fail again, saying which exemption expired and when.
    let db = finding(&r, "firewall.ssh-open", "2");
    assert_eq!(db["status"], "fail");
    let detail = db["detail"].as_str().expect("detail");
    assert!(
        detail.contains("exemption expired 2020-01-01") && detail.contains("dba@example.com"),
        "{detail}"
    );
    assert_eq!(finding(&r, "firewall.world-open", "8")["status"], "exempt");
    assert_eq!(r["summary"]["exempt"], 2);
    assert!(r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(|f| f["first_seen"].is_string()));
    let soon = r["exemptions_expiring"]
        .as_array()
        .expect("expiring listed");
    assert_eq!(soon.len(), 1);
    assert_eq!(soon[0]["droplets"][0], "8");

    // Droplet 8's only finding is exempt: compliant as far as the exit status goes.
    let run = cli_in(
        &sim,
        state.path(),
        &policy,
        &["audit", "--droplet", "8", "--format", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let r = run.json();
    assert_eq!(
        (r["summary"]["pass"].as_u64(), r["summary"]["fail"].as_u64()),
        (Some(1), Some(0))
    );

    // SARIF: a result with an external suppression whose justification is the reason.
    let run = cli_in(&sim, state.path(), &policy, &["audit", "--format", "sarif"]).await;
    let sarif = run.json();
    let result = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["partialFingerprints"]["dropletguard/v1"] == "firewall.world-open:droplet/8")
        .expect("droplet 8's result");
    assert_eq!(result["suppressions"][0]["kind"], "external");
    assert_eq!(
        result["suppressions"][0]["justification"],
        "vendor appliance needs 8443 open; replacement planned"
    );
    let unsuppressed = finding_sarif(&sarif, "firewall.ssh-open:droplet/2");
    assert!(unsuppressed.get("suppressions").is_none());
    let (code, out) = validate(&[serde_json::json!({"kind": "sarif", "body": sarif})]);
    assert_eq!(code, 0, "{out}");

    // The table says so too.
    let run = cli_in(&sim, state.path(), &policy, &["audit"]).await;
    assert!(run.stdout.contains("exempt"), "{}", run.stdout);
    sim.shutdown().await;
}

fn finding_sarif<'a>(sarif: &'a Value, fingerprint: &str) -> &'a Value {
    sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["partialFingerprints"]["dropletguard/v1"] == fingerprint)
        .expect("result")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_exemption_stops_the_run_naming_key_and_line() {
    let sim = start(fixtures::known()).await;
    let state = tempfile::tempdir().expect("state dir");
    let policy = format!(
        "{}\n[[exemptions]]\ndroplets = [\"3\"]\nreason = \"r\"\nexpires = 2099-01-01\n",
        fixtures::POLICY
    );
    let run = cli_in(&sim, state.path(), &policy, &["audit"]).await;
    assert_eq!(run.code, 2);
    let line = policy
        .lines()
        .position(|l| l == "[[exemptions]]")
        .expect("header")
        + 1;
    assert!(
        run.stderr.contains(&format!(":{line}: exemptions")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("owner"), "{}", run.stderr);
    sim.shutdown().await;
}

fn client(sim: &Sim) -> Client {
    Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token))).expect("client")
}

async fn run_at(
    sim: &Sim,
    store: &Store,
    policy: &Policy,
    now: DateTime<Utc>,
    scope: Scope,
    ignore_grace: bool,
) -> Report {
    let ssh = SshAccess::default();
    let opts = RemediateOptions {
        scope,
        dry_run: false,
        trigger: "cli",
        ssh: &ssh,
        now: Some(now),
        ignore_grace,
        started: None,
    };
    remediate(&client(sim), policy, store, opts)
        .await
        .expect("run")
}

fn first_seen(r: &Report, rule: &str, id: &str) -> Option<String> {
    r.findings
        .iter()
        .find(|f| f.rule == rule && f.resource.id == id)
        .and_then(|f| f.first_seen.clone())
}

/// Three runs an hour apart, a defect removed between the first two, the third only one
/// Droplet: `first_seen` survives, the removed one is resolved once, the partial run resolves
/// nothing outside its scope.
async fn first_seen_survives_across_runs(store: Store) {
    let sim = start(fixtures::known()).await;
    let policy = Policy::parse(fixtures::POLICY, "p").expect("policy");
    let t0 = Utc::now() - Duration::hours(3);
    let r1 = run_at(&sim, &store, &policy, t0, Scope::all(), false).await;
    assert!(r1
        .findings
        .iter()
        .all(|f| f.first_seen == Some(rfc3339(t0))));
    assert_eq!(r1.history.as_ref().map(|h| h.new), Some(r1.findings.len()));
    sim.with_state(|s| s.droplets.remove(&8));
    let t1 = t0 + Duration::hours(1);
    let r2 = run_at(&sim, &store, &policy, t1, Scope::all(), false).await;
    assert_eq!(first_seen(&r2, "firewall.missing", "3"), Some(rfc3339(t0)));
    assert_eq!(
        first_seen(&r2, "firewall.world-open", "8"),
        None,
        "Droplet 8 is gone"
    );
    let resolved: Vec<(&str, &str)> = r2
        .resolved
        .iter()
        .map(|e| (e.rule.as_str(), e.resource.id.as_str()))
        .collect();
    assert_eq!(resolved, [("firewall.world-open", "8")]);
    assert_eq!(r2.resolved[0].resolved, Some(rfc3339(t1)));
    let h2 = r2.history.clone().expect("history");
    assert_eq!((h2.new, h2.resolved, h2.full), (0, 1, true));
    let scope = Scope {
        droplet_ids: Some([1].into()),
        no_ssh: false,
        ..Scope::default()
    };
    let r3 = run_at(&sim, &store, &policy, t1 + Duration::hours(1), scope, false).await;
    assert_eq!(
        r3.history.as_ref().map(|h| (h.resolved, h.full)),
        Some((0, false))
    );
    let index = load_index(&store).await.expect("index");
    assert!(index.open.values().all(|e| e.first_seen == rfc3339(t0)));
    assert_eq!(
        index.open.len(),
        r2.findings.len(),
        "the partial run resolved nothing"
    );
    let ttr = time_to_resolve(&index, t0);
    assert_eq!(
        (ttr.resolved, ttr.median_seconds, ttr.p90_seconds),
        (1, Some(3600), Some(3600))
    );
    let runs = run_summaries(&store).await.expect("runs");
    let shape: Vec<(bool, usize, usize)> =
        runs.iter().map(|r| (r.full, r.new, r.resolved)).collect();
    assert_eq!(
        shape,
        [(true, r1.findings.len(), 0), (true, 0, 1), (false, 0, 0)]
    );
    assert_eq!(runs[0].fail.critical, r1.findings.iter().filter(|f| f.status == Status::Fail && f.severity == shared::report::Severity::Critical).count());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_seen_survives_in_the_directory_store() {
    let dir = tempfile::tempdir().expect("dir");
    first_seen_survives_across_runs(Store::Dir(DirStore::new(dir.path()))).await;
    // The command reads the same store.
    let sim = start(fixtures::compliant()).await;
    let run = cli_env(
        &sim.url(),
        &sim.token,
        &["findings", "--format", "json", "--window", "1d"],
        &[(
            "DROPLETGUARD_STATE_DIR",
            dir.path().to_str().expect("utf-8"),
        )],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let view = run.json();
    let open = view["open"].as_array().expect("open");
    assert!(!open.is_empty());
    assert!(open
        .iter()
        .all(|f| f["age_seconds"].as_i64().unwrap_or(0) >= 3 * 3600 - 60));
    assert_eq!(view["time_to_resolve"]["resolved"], 1);
    assert_eq!(view["time_to_resolve"]["median_seconds"], 3600);
    let text = cli_env(
        &sim.url(),
        &sim.token,
        &["findings"],
        &[(
            "DROPLETGUARD_STATE_DIR",
            dir.path().to_str().expect("utf-8"),
        )],
    )
    .await;
    assert!(text.stdout.contains("median 1h 0m"), "{}", text.stdout);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_seen_survives_in_the_s3_store() {
    let moto = Moto::start().await;
    let bucket = S3Store::new("dropletguard-history/prod", moto.config()).expect("store");
    bucket.ensure_bucket().await.expect("bucket");
    first_seen_survives_across_runs(Store::S3(bucket)).await;
}

fn writes(sim: &Sim) -> usize {
    sim.requests().iter().filter(|r| r.method != "GET").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_holds_a_fix_back_then_allows_it() {
    let sim = start(fixtures::known()).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::Dir(DirStore::new(dir.path()));
    let policy = Policy::parse(
        &ENFORCE.replace(
            "max_changes_per_run = 100",
            "max_changes_per_run = 100\ngrace = \"2h\"",
        ),
        "p",
    )
    .expect("policy");
    let t0 = Utc::now();
    let r = run_at(&sim, &store, &policy, t0, Scope::all(), false).await;
    assert_eq!(
        writes(&sim),
        0,
        "nothing is written within the grace period"
    );
    let until = rfc3339(t0 + Duration::hours(2));
    let held = r
        .findings
        .iter()
        .find(|f| f.rule == "firewall.missing" && f.resource.id == "3")
        .expect("finding");
    let planned = held.remediation.planned.as_deref().unwrap_or_default();
    assert!(
        planned.starts_with(&format!("waiting until {until}")),
        "{planned}"
    );
    run_at(
        &sim,
        &store,
        &policy,
        t0 + Duration::minutes(119),
        Scope::all(),
        false,
    )
    .await;
    assert_eq!(writes(&sim), 0, "still within the grace period");
    let r = run_at(
        &sim,
        &store,
        &policy,
        t0 + Duration::hours(2),
        Scope::all(),
        false,
    )
    .await;
    assert!(
        r.changes
            .iter()
            .any(|c| c.action == "attach-baseline-firewall" && c.resource.id == "3"),
        "{:?}",
        r.changes
    );
    assert!(
        !r.findings.iter().any(|f| f.rule == "firewall.missing"),
        "fixed once the grace period is over"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_grace_overrides_and_incident_response_ignores_grace() {
    let text = ENFORCE.replace(
        "max_changes_per_run = 100",
        "max_changes_per_run = 100\ngrace = \"1d\"",
    ) + "\n[rules.\"firewall.missing\"]\ngrace = \"0m\"\n";
    let policy = Policy::parse(&text, "p").expect("policy");
    let sim = start(fixtures::known()).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::Dir(DirStore::new(dir.path()));
    let r = run_at(&sim, &store, &policy, Utc::now(), Scope::all(), false).await;
    let rules: Vec<&str> = r.changes.iter().map(|c| c.rule.as_str()).collect();
    assert!(rules.contains(&"firewall.missing"), "{rules:?}");
    assert!(
        !rules.contains(&"firewall.ssh-open"),
        "the other rules wait a day: {rules:?}"
    );
    // Found and fixed in the same run: recorded, and resolved at once.
    let fixed = r
        .resolved
        .iter()
        .find(|e| e.rule == "firewall.missing" && e.resource.id == "3")
        .expect("resolved");
    assert_eq!(fixed.resolved.as_deref(), Some(fixed.first_seen.as_str()));
    let r = run_at(&sim, &store, &policy, Utc::now(), Scope::all(), true).await;
    assert!(
        r.changes.iter().any(|c| c.rule == "firewall.ssh-open"),
        "incident response acts at once: {:?}",
        r.changes
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emf_line_validates_against_the_specification() {
    let sim = start(fixtures::known()).await;
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::Dir(DirStore::new(dir.path()));
    let policy = Policy::parse(ENFORCE, "p").expect("policy");
    let report = run_at(&sim, &store, &policy, Utc::now(), Scope::all(), true).await;
    let value = serde_json::to_value(&report).expect("json");
    let doc = shared::metrics::emf_for_output(
        "scheduled-audit",
        Some(&value),
        std::time::Duration::from_millis(1234),
        Utc::now(),
    );
    // What JSON Schema cannot say: every declared metric is a number at the root, every
    // dimension a string.
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    for m in directive["Metrics"].as_array().expect("metrics") {
        let name = m["Name"].as_str().expect("name");
        assert!(doc[name].is_number(), "{name} is not a number at the root");
    }
    for d in directive["Dimensions"][0].as_array().expect("dimensions") {
        assert!(doc[d.as_str().expect("name")].is_string());
    }
    assert_eq!(doc["DropletsAudited"], 8.0);
    assert_eq!(
        doc["ChangesApplied"],
        report.changes.iter().filter(|c| c.result == "ok").count() as f64
    );
    assert_eq!(
        doc["NewCriticalFindings"],
        report.history.as_ref().map_or(0, |h| h.new_critical) as f64
    );
    assert_eq!(doc["Duration"], 1234.0);
    assert_eq!(
        (doc["RunComplete"].as_f64(), doc["RunIncomplete"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    let failed =
        shared::metrics::emf_for_output("webhook", None, std::time::Duration::ZERO, Utc::now());
    assert_eq!(failed["RunIncomplete"], 1.0);
    let mut bad = doc.clone();
    bad["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Counts".into();
    let (code, out) = validate(&[
        serde_json::json!({"kind": "emf", "body": doc}),
        serde_json::json!({"kind": "emf", "body": failed}),
        serde_json::json!({"kind": "emf", "body": bad}),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("2 passed, 1 failed") && out.contains("#3 emf"),
        "the schema accepts ours and rejects a bad unit: {out}"
    );
    sim.shutdown().await;
}
