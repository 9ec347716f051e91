//! `scheduled-audit` as a real process under the Runtime API emulator, configured the way it
//! is in AWS: token from Secrets Manager, state in S3 (both moto_server), policy and mode from
//! the environment, notifications to a loopback receiver.

#[path = "common.rs"]
mod common;

use common::*;
use serde_json::Value;
use shared::store::StateStore;

const POLICY: &str =
    "[management]\ncidrs = [\"203.0.113.0/24\"]\n[ssh]\nprobe = false\n[remediation]\nmax_changes_per_run = 500\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_run_fixes_a_fleet() {
    let token = token();
    let sim = sim::Sim::start_local(&token, sim::fleet::generate(&sim::FleetSpec::new(150, 8)))
        .await
        .expect("sim");
    let moto = Moto::start().await;
    let arn = moto.create_secret("dropletguard/do-token", &token).await;
    // As the stack creates it: a placeholder until an operator puts a key there.
    let ssh_arn = moto
        .create_secret(
            "dropletguard/ssh-key",
            "REPLACE_ME_WITH_THE_SSH_PRIVATE_KEY",
        )
        .await;
    moto.create_bucket("dg-state").await;
    let slack = Receiver::start().await;
    let mut env = moto.env();
    env.extend(
        [
            ("DIGITALOCEAN_API_URL", sim.url()),
            ("DROPLETGUARD_TOKEN_SECRET", arn),
            ("DROPLETGUARD_SSH_KEY_SECRET", ssh_arn),
            ("DROPLETGUARD_STATE_BUCKET", "dg-state".to_string()),
            ("DROPLETGUARD_POLICY_TOML", POLICY.to_string()),
            ("DROPLETGUARD_MODE", "enforce".to_string()),
            ("DROPLETGUARD_SLACK_WEBHOOK_URL", slack.url.clone()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let f = Function::start(
        env!("CARGO_BIN_EXE_scheduled-audit"),
        "scheduled-audit",
        &env,
    )
    .await;
    let event = fixture("eventbridge/example-eventbridge-schedule.json");
    let report = f.ok(&event).await;
    assert_eq!(report["run"]["trigger"], "schedule");
    assert_eq!(report["summary"]["droplets"], 150);
    let changes = report["changes"].as_array().expect("changes").len();
    assert!(changes > 5, "it fixed things: {changes}");
    let has = |r: &Value, rule: &str| {
        r["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["rule"] == rule))
    };
    assert!(!has(&report, "firewall.missing"));
    assert!(!has(&report, "firewall.ssh-open"));
    // The ledger is in S3.
    let store = shared::store::Store::S3(
        shared::store::S3Store::new(
            "dg-state",
            shared::aws::AwsConfig::new(
                "us-east-1",
                "testing",
                "testing-secret",
                Some(moto.url.clone()),
            ),
        )
        .expect("store"),
    );
    let ledger = shared::remediate::ledger_entries(&store)
        .await
        .expect("ledger");
    assert_eq!(ledger.len(), changes);
    // A notification went out, naming the changes.
    let msgs = slack.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("changes applied"),
        "{msgs:?}"
    );
    // The run's HTML report is in the bucket, dated and as the latest, and the notification
    // links to it with a presigned URL valid for 7 days that fetches it.
    let text = msgs[0]["text"].as_str().unwrap_or_default();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("Report: "))
        .unwrap_or_else(|| panic!("no report link in {text}"));
    assert!(
        url.starts_with(&format!("{}/dg-state/reports/", moto.url)),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=604800") && url.contains("X-Amz-Signature="));
    let page = reqwest::get(url).await.expect("GET the presigned URL");
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-type"].to_str().ok(),
        Some("text/html; charset=utf-8")
    );
    let html = page.text().await.expect("page");
    assert!(html.contains(r#"id="tile-droplets">150<"#), "{html}");
    assert!(html.contains(&format!(r#"id="tile-changes">{changes}<"#)));
    let dated =
        shared::service::dated_key(&serde_json::from_value(report.clone()).expect("report"));
    assert!(url.contains(&dated), "{url} is not {dated}");
    let stored = |key: &str| {
        let store = &store;
        let key = key.to_string();
        async move {
            store
                .get(&key)
                .await
                .expect("get")
                .map(|b| String::from_utf8(b).expect("utf-8"))
        }
    };
    assert_eq!(stored(&dated).await.as_deref(), Some(html.as_str()));
    assert_eq!(
        stored("reports/latest.html").await.as_deref(),
        Some(html.as_str())
    );
    // A second run: nothing left to change, no notification.
    let again = f
        .ok(&serde_json::json!({"custom": "input from a Scheduler schedule"}))
        .await;
    assert_eq!(again["changes"].as_array().map(Vec::len), Some(0));
    assert_eq!(slack.messages().len(), 1);
    // Its page is the latest now.
    let latest = stored("reports/latest.html").await.expect("latest.html");
    assert!(latest.contains(&again["run"]["id"].as_str().expect("run id").to_string()));
    let logs = f.stop().await;
    assert_logs_clean(&logs, &[&token]);
    // One CloudWatch EMF line per run, with what the run did.
    let emf: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2, "{emf:?}");
    assert_eq!(emf[0]["Function"], "scheduled-audit");
    assert_eq!(emf[0]["DropletsAudited"], 150.0);
    assert_eq!(emf[0]["ChangesApplied"], changes as f64);
    assert!(emf[0]["NewFindings"].as_f64() > Some(0.0));
    assert!(
        emf[0]["ResolvedFindings"].as_f64() > Some(0.0),
        "what it fixed is resolved"
    );
    assert_eq!(
        (
            emf[1]["NewFindings"].as_f64(),
            emf[1]["ChangesApplied"].as_f64()
        ),
        (Some(0.0), Some(0.0))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_the_start_clearly() {
    let moto = Moto::start().await;
    let mut env = moto.env();
    env.push(("DROPLETGUARD_TOKEN_SECRET".into(), "no-such-secret".into()));
    let f = Function::start(
        env!("CARGO_BIN_EXE_scheduled-audit"),
        "scheduled-audit",
        &env,
    )
    .await;
    let out = f.invoke(&serde_json::json!({})).await;
    let text = format!("{out:?}");
    assert!(
        text.contains("DROPLETGUARD_TOKEN_SECRET") && text.contains("ResourceNotFound"),
        "{text}"
    );
    f.stop().await;
}

/// 12,000 Droplets: a 2.2 MB report, over the 2 MB the emulator took before (it answered
/// 413 and the invocation never ended) and under Lambda's 6 MB; it comes back whole. Larger
/// reports are cut to fit (`shared::service::fit_response`, unit-tested).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twelve_thousand_droplet_report_comes_back() {
    let account = Account::start(12_000, 1).await;
    let f = Function::start(
        env!("CARGO_BIN_EXE_scheduled-audit"),
        "scheduled-audit",
        &account.env(&[]),
    )
    .await;
    let event = fixture("eventbridge/example-eventbridge-schedule.json");
    let report = f.ok(&event).await;
    let size = serde_json::to_vec(&report).expect("json").len();
    assert!(size > 2 * 1024 * 1024, "{size} bytes");
    assert!(size <= sim::lambda::RESPONSE_LIMIT);
    assert_eq!(report["summary"]["droplets"], 12_000);
    assert!(report.get("findings_omitted").is_none(), "nothing left out");
    let _ = f.stop().await;
}

/// A policy that does not parse is reported on every invocation with what is wrong, as a
/// permanent error Lambda can tell from a transient one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_is_a_permanent_error_that_names_the_key() {
    let account = Account::start(5, 1).await;
    let f = Function::start(
        env!("CARGO_BIN_EXE_scheduled-audit"),
        "scheduled-audit",
        &account.env(&[(
            "DROPLETGUARD_POLICY_TOML",
            "[management]\ncidrs = [\"nope\"]\n",
        )]),
    )
    .await;
    let event = fixture("eventbridge/example-eventbridge-schedule.json");
    for _ in 0..2 {
        match f.invoke(&event).await {
            sim::lambda::Outcome::Error(e) => {
                assert_eq!(e["errorType"], "Permanent.Policy", "{e}");
                let message = e["errorMessage"].as_str().unwrap_or_default();
                assert!(message.contains("DROPLETGUARD_POLICY_TOML:2"), "{message}");
                assert!(message.contains("nope"), "{message}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    f.stop().await;
}
