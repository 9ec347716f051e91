//! The S3 state store against a real S3 API on loopback (moto_server).

use shared::store::{S3Store, StateStore, Store};

use crate::fixtures;
use crate::helpers::*;
use crate::remediation::{with_orphans, ENFORCE};

#[path = "../common/moto.rs"]
pub(crate) mod moto;
pub use moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_keeps_the_ledger_and_quarantine_records() {
    let moto = Moto::start().await;
    let bucket = S3Store::new("dropletguard-state/prod", moto.config()).expect("store");
    bucket.ensure_bucket().await.expect("bucket");
    let store = Store::S3(bucket);
    // Round trip and listing, with a key that needs encoding.
    store
        .put("check/a b+c&d.json", b"{\"x\":1}")
        .await
        .expect("put");
    assert_eq!(
        store.get("check/a b+c&d.json").await.expect("get"),
        Some(b"{\"x\":1}".to_vec())
    );
    assert_eq!(store.get("check/missing.json").await.expect("get"), None);
    assert_eq!(
        store.list("check/").await.expect("list"),
        vec!["check/a b+c&d.json"]
    );
    store.delete("check/a b+c&d.json").await.expect("delete");
    assert!(store.list("check/").await.expect("list").is_empty());

    // The CLI with DROPLETGUARD_STATE_BUCKET writes its records to S3.
    let sim = start(with_orphans(3)).await;
    let policy = policy_file(ENFORCE);
    let p = policy.path().to_str().expect("utf-8");
    let env = moto.env();
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("DROPLETGUARD_STATE_BUCKET", "dropletguard-state/prod"));
    let run = cli_env(
        &sim.url(),
        &sim.token,
        &["remediate", "--format", "json", "--policy", p],
        &vars,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    let changes = report["changes"].as_array().expect("changes").len();
    assert!(changes >= 5, "baseline plus 4 Droplets");
    let ledger = shared::remediate::ledger_entries(&store)
        .await
        .expect("ledger");
    assert_eq!(
        ledger.len(),
        changes,
        "every applied change is in the S3 ledger"
    );
    assert!(ledger
        .iter()
        .all(|c| c.result == "ok" && c.run_id == report["run"]["id"].as_str().unwrap_or_default()));
    let runs = store.list("runs/").await.expect("runs");
    assert_eq!(runs.len(), 1);
    let saved: serde_json::Value = store
        .get_json(&runs[0])
        .await
        .expect("get")
        .expect("report");
    assert_eq!(saved["run"]["id"], report["run"]["id"]);

    let q = cli_env(
        &sim.url(),
        &sim.token,
        &[
            "quarantine",
            "--droplet",
            "7",
            "--reason",
            "INC-7",
            "--policy",
            p,
        ],
        &vars,
    )
    .await;
    assert_eq!(q.code, 0, "{}", q.stderr);
    let rec: serde_json::Value = store
        .get_json("quarantine/7.json")
        .await
        .expect("get")
        .expect("record");
    assert_eq!(rec["status"], "quarantined");
    let r = cli_env(
        &sim.url(),
        &sim.token,
        &["restore", "--droplet", "7", "--policy", p],
        &vars,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rec: serde_json::Value = store
        .get_json("quarantine/7.json")
        .await
        .expect("get")
        .expect("record");
    assert_eq!(rec["status"], "restored");
    sim.shutdown().await;

    // A bucket that does not exist: the run fails loudly before changing anything.
    let sim = start(fixtures::known()).await;
    vars.retain(|(k, _)| *k != "DROPLETGUARD_STATE_BUCKET");
    vars.push(("DROPLETGUARD_STATE_BUCKET", "no-such-bucket"));
    let run = cli_env(&sim.url(), &sim.token, &["remediate", "--policy", p], &vars).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("no-such-bucket"), "{}", run.stderr);
    assert!(!sim.requests().iter().any(|r| r.method != "GET"));
    sim.shutdown().await;
}
