//! Snapshots of every output format a user reads, over the demo fleet with the management
//! range set (JSON, SARIF, the table at a fixed width; the HTML page has its own in
//! `html_report.rs`). Run ids and times are replaced by placeholders; `INSTA_UPDATE=always`
//! rewrites a snapshot after a deliberate change.

use crate::helpers::*;
use crate::html_report::normalize;

const POLICY: &str = "[management]\ncidrs = [\"203.0.113.0/24\"]\n";

/// `dropletguard audit --no-ssh ARGS` over the demo fleet, its stdout normalized.
async fn audit(args: &[&str]) -> String {
    let sim = start(sim::fleet::demo()).await;
    let mut all = vec!["audit", "--no-ssh"];
    all.extend(args);
    let file = policy_file(POLICY);
    all.extend(["--policy", file.path().to_str().expect("utf-8 path")]);
    let run = cli_env(&sim.url(), &sim.token, &all, &[("COLUMNS", "160")]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    sim.shutdown().await;
    normalize(&run.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_snapshot() {
    insta::assert_snapshot!("demo_audit_json", audit(&["--format", "json"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sarif_report_snapshot() {
    insta::assert_snapshot!("demo_audit_sarif", audit(&["--format", "sarif"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_report_snapshot() {
    insta::assert_snapshot!("demo_audit_table", audit(&["--format", "table"]).await);
}
