//! Shared helpers: a simulator per test, the CLI as a process, JSON validation.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use sim::{Sim, State};

pub const BIN: &str = env!("CARGO_BIN_EXE_dropletguard");

/// A token unique to the test, so leaks are easy to spot.
pub fn token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("dop_v1_secret{nanos:x}")
}

pub async fn start(state: State) -> Sim {
    Sim::start_local(&token(), state)
        .await
        .expect("simulator starts")
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `dropletguard ARGS` against the simulator.
pub async fn cli(sim: &Sim, args: &[&str]) -> Run {
    cli_env(&sim.url(), &sim.token, args, &[]).await
}

pub async fn cli_env(url: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    // Every run gets a state store of its own unless the test names one: never the user's.
    let own_state = tempfile::tempdir().expect("state dir");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env("DROPLETGUARD_STATE_DIR", own_state.path());
    cmd.args(args)
        .env_remove("DROPLETGUARD_POLICY")
        .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("DROPLETGUARD_WEBHOOK_SECRETS")
        .env("DIGITALOCEAN_API_URL", url)
        .env("DIGITALOCEAN_TOKEN", token)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("dropletguard runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `dropletguard ARGS --policy <a file holding policy>` against the simulator.
pub async fn cli_with_policy(sim: &Sim, policy: &str, args: &[&str]) -> Run {
    let file = policy_file(policy);
    let mut all = args.to_vec();
    all.extend(["--policy", file.path().to_str().expect("utf-8 path")]);
    cli(sim, &all).await
}

/// A policy file in a temporary directory.
pub fn policy_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp policy file");
    f.write_all(text.as_bytes()).expect("write policy");
    f
}

/// `(rule, resource type, resource id)` of every finding in a JSON report.
pub fn finding_keys(report: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["resource"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                f["resource"]["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn expected_keys(sim: &Sim) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = sim
        .expected()
        .into_iter()
        .map(|e| (e.rule, e.resource_type, e.resource_id))
        .collect();
    v.sort();
    v
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// DigitalOcean's OpenAPI subset, from the material folder beside the checkout.
pub fn openapi_path() -> PathBuf {
    if let Ok(p) = std::env::var("DO_OPENAPI") {
        return PathBuf::from(p);
    }
    workspace_root().join("tests/fixtures/do-api/openapi-subset.json")
}

pub fn sarif_schema_path() -> PathBuf {
    if let Ok(p) = std::env::var("SARIF_SCHEMA") {
        return PathBuf::from(p);
    }
    workspace_root().join(".tools/sarif-2.1.0-rtm.5.json")
}

/// Runs `tests/tools/validate.py` over the items; returns (exit code, output).
pub fn validate(items: &[Value]) -> (i32, String) {
    let openapi = openapi_path();
    let sarif = sarif_schema_path();
    assert!(
        openapi.exists(),
        "{} is missing (the material folder beside the checkout)",
        openapi.display()
    );
    assert!(
        sarif.exists(),
        "{} is missing: run `make setup`",
        sarif.display()
    );
    let mut child = std::process::Command::new("python3")
        .arg(workspace_root().join("tests/tools/validate.py"))
        .env("DO_OPENAPI", &openapi)
        .env("SARIF_SCHEMA", &sarif)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for item in items {
            writeln!(stdin, "{item}").expect("write item");
        }
    }
    let out = child.wait_with_output().expect("validator finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A raw HTTP client for the simulator, with its token.
pub struct Raw {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Raw {
    pub fn new(sim: &Sim) -> Self {
        Raw {
            http: reqwest::Client::new(),
            base: sim.url(),
            token: sim.token.clone(),
        }
    }

    /// Sends a request; returns status and JSON body (Null when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body read");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
}
