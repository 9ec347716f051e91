//! What a new user meets in the first hour: a closed pipe, a dry run over the cap, empty
//! management ranges, the demo's files.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use crate::fixtures;
use crate::helpers::*;

const POLICY: &str = "[management]\ncidrs = [\"203.0.113.0/24\"]\n";

/// Runs `dropletguard ARGS` with its stdout read for `keep` bytes and then closed, as
/// `dropletguard ARGS | head -c KEEP` does; the exit code and stderr.
async fn closed_early(sim: &sim::Sim, args: &[&str], keep: usize) -> (i32, String) {
    let state = tempfile::tempdir().expect("state dir");
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env("DROPLETGUARD_STATE_DIR", state.path())
        .env("DIGITALOCEAN_API_URL", sim.url())
        .env("DIGITALOCEAN_TOKEN", &sim.token)
        .env_remove("DROPLETGUARD_POLICY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dropletguard starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut head = vec![0u8; keep];
    stdout.read_exact(&mut head).await.expect("the first bytes");
    drop(stdout);
    let out = child.wait_with_output().await.expect("dropletguard ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_ends_the_run_quietly_with_its_usual_status() {
    // 400 Droplets: every format's output is far larger than a pipe's buffer.
    let sim = start(sim::fleet::generate(&sim::FleetSpec::new(400, 3))).await;
    let file = policy_file(sim::FLEET_POLICY);
    let policy = file.path().to_str().expect("utf-8");
    for format in ["table", "json", "sarif", "html"] {
        let args = ["audit", "--policy", policy, "--format", format];
        let (code, stderr) = closed_early(&sim, &args, 64).await;
        assert_eq!(
            code, 1,
            "{format}: the audit's own status (findings); {stderr}"
        );
        assert!(stderr.is_empty(), "{format}: nothing on stderr: {stderr}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_over_the_cap_says_what_it_planned_and_what_the_cap_held_back() {
    let sim = start(fixtures::known()).await;
    let policy = format!("{POLICY}[remediation]\nmode = \"enforce\"\nmax_changes_per_run = 1\n");
    let table = cli_with_policy(&sim, &policy, &["remediate", "--dry-run", "--no-ssh"]).await;
    assert_eq!(table.code, 1, "{}", table.stderr);
    let json = cli_with_policy(
        &sim,
        &policy,
        &["remediate", "--dry-run", "--no-ssh", "--format", "json"],
    )
    .await
    .json();
    let planned = &json["run"]["planned"];
    let (within, over) = (
        planned["within_cap"].as_u64().expect("within_cap"),
        planned["over_cap"].as_u64().expect("over_cap"),
    );
    assert_eq!(within, 1, "{planned}");
    assert!(over >= 1, "{planned}");
    let summary =
        format!("dry run: {within} changes planned, {over} over the cap (max_changes_per_run)");
    assert!(table.stdout.contains(&summary), "{}", table.stdout);
    // Each held-back finding says why once.
    assert!(
        !table.stdout.contains("not applied: not applied"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("→ not applied: max_changes_per_run (1) reached in this run"),
        "{}",
        table.stdout
    );
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "a dry run writes nothing"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_management_ranges_are_explained_once_before_the_report() {
    let sim = start(fixtures::known()).await;
    let run = cli(&sim, &["audit", "--no-ssh"]).await;
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: management.cidrs is empty"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("quarantine refuses"),
        "{}",
        warnings[0]
    );
    let set = cli_with_policy(&sim, POLICY, &["audit", "--no-ssh"]).await;
    assert!(!set.stderr.contains("management.cidrs"), "{}", set.stderr);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_its_files_in_one_place_and_says_where() {
    let parent = tempfile::tempdir().expect("dir");
    let out = parent.path().join("demo");
    let out_s = out.to_str().expect("utf-8");
    for _ in 0..2 {
        let run = cli_env(
            "http://127.0.0.1:9",
            "unused",
            &["demo", "--out", out_s],
            &[],
        )
        .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout
                .contains(&format!("The demo's files are in {out_s}")),
            "{}",
            run.stdout
        );
    }
    // The second demo emptied the first's directory: one run's records, not two.
    let runs = std::fs::read_dir(out.join("runs")).expect("runs").count();
    assert_eq!(runs, 1);
    assert!(out.join("before.html").is_file() && out.join("after.html").is_file());
    // A directory the demo did not make is never emptied.
    let foreign = parent.path().join("mine");
    std::fs::create_dir(&foreign).expect("dir");
    std::fs::write(foreign.join("notes.txt"), "keep").expect("write");
    let refused = cli_env(
        "http://127.0.0.1:9",
        "unused",
        &["demo", "--out", foreign.to_str().expect("utf-8")],
        &[],
    )
    .await;
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("was not made by the demo"),
        "{}",
        refused.stderr
    );
    assert!(foreign.join("notes.txt").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_address_other_tools_read_differently_is_refused_by_line_and_key() {
    let sim = start(fixtures::known()).await;
    for (cidr, words) in [
        ("010.0.0.0/8", "leading zero"),
        ("::ffff:203.0.113.1", "embeds an IPv4 address"),
        ("203.0.113.5/24", "host bits set"),
    ] {
        let policy = format!("[management]\ncidrs = [\"{cidr}\"]\n");
        let run = cli_with_policy(&sim, &policy, &["audit", "--no-ssh"]).await;
        assert_eq!(run.code, 2, "{cidr}: {}", run.stderr);
        assert!(
            run.stderr.contains(":2: management.cidrs"),
            "{cidr}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(words), "{cidr}: {}", run.stderr);
        assert!(sim.requests().is_empty(), "refused before any request");
    }
    sim.shutdown().await;
}
