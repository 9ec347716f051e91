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
