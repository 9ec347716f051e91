//! The developer binaries (`bench`, `invoke-local`) refuse arguments they do not know, before
//! doing anything: a mistyped flag must not start a 10-minute benchmark that overwrites
//! BENCHMARKS.md, nor run a function in a mode nobody asked for.

use std::process::Command;

fn run(bin: &str, args: &[&str], cwd: &std::path::Path) -> (i32, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary starts");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bench_refuses_an_unknown_flag_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(env!("CARGO_BIN_EXE_bench"), &["--help-me"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--help-me"), "names the flag: {stderr}");
    assert!(!dir.path().join("BENCHMARKS.md").exists());
}

#[test]
fn bench_refuses_two_sections_alone_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        env!("CARGO_BIN_EXE_bench"),
        &["--events-only", "--floor-only"],
        dir.path(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn invoke_local_refuses_an_unknown_mode_and_names_the_choices() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        env!("CARGO_BIN_EXE_invoke-local"),
        &["webhook", "event.json", "--mode", "enforcing"],
        dir.path(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("enforcing") && stderr.contains("audit, enforce"),
        "{stderr}"
    );
}

/// Runs `invoke-local webhook` with the sample `tag.changed` event and `extra` arguments:
/// (exit code, the answer's body as JSON, stderr).
fn invoke_webhook(extra: &[&str]) -> (i32, serde_json::Value, String) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_invoke-local"));
    let function = bin.with_file_name("webhook");
    assert!(
        function.exists(),
        "{} is missing: `cargo test --workspace` (make test) builds it",
        function.display()
    );
    let event = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/webhook/events/tag-changed.json"
    );
    let out = Command::new(bin)
        .args(["webhook", event, "--droplets", "40"])
        .args(extra)
        .output()
        .expect("invoke-local starts");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Stdout is the answer alone (the function's JSON logs go to stderr).
    let answer: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON answer ({e}): {stdout}"));
    let body = answer["body"].as_str().unwrap_or("null");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("body ({e}): {body}"));
    (out.status.code().unwrap_or(-1), body, stderr)
}

#[test]
fn invoke_local_keeps_a_state_dir_it_is_given_and_removes_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let state_arg = state.to_str().expect("utf-8");
    let (code, first, stderr) = invoke_webhook(&["--state", state_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        first["run"]["built_on_full_read"].is_null(),
        "{}",
        first["run"]
    );
    assert!(
        state.join("cache/snapshot.json").exists(),
        "the full read was cached"
    );
    // The same fleet again, with the same state: the re-check builds on that read.
    let (code, second, stderr) = invoke_webhook(&["--state", state_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        second["run"]["built_on_full_read"].is_string(),
        "{}",
        second["run"]
    );
    assert!(second["run"]["api_requests"].as_u64() < first["run"]["api_requests"].as_u64());
    // Without --state, its own temporary directory is gone afterwards.
    let (code, _, stderr) = invoke_webhook(&[]);
    assert_eq!(code, 0, "{stderr}");
    let own = stderr
        .split_whitespace()
        .skip_while(|w| *w != "state")
        .nth(1)
        .unwrap_or_else(|| panic!("stderr names the state dir: {stderr}"));
    assert!(!std::path::Path::new(own).exists(), "{own} was removed");
}
