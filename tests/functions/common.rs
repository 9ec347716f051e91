//! Shared by the function tests: a function binary as a real process under the Lambda Runtime
//! API emulator, talking to the simulator (and to moto_server for AWS), over loopback.
#![allow(dead_code)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sim::lambda::{Emulator, Outcome};
use tokio::io::AsyncBufReadExt;

pub const MATERIAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/lambda-events"
);

pub fn fixture(path: &str) -> Value {
    let p = format!("{MATERIAL}/{path}");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub fn token() -> String {
    format!("dop_v1_fn{}", uuid_like())
}

pub fn uuid_like() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{n:x}")
}

/// The policy the function tests run with: SSH only from the management range, and no SSH
/// probes (simulated Droplets have no SSH servers).
pub const POLICY: &str = "[management]\ncidrs = [\"203.0.113.0/24\"]\n[ssh]\nprobe = false\n";

/// A simulated account: the simulator with a generated fleet, its token, a state directory.
pub struct Account {
    pub sim: sim::Sim,
    pub token: String,
    pub state: tempfile::TempDir,
}

impl Account {
    pub async fn start(droplets: usize, seed: u64) -> Account {
        let token = token();
        let sim = sim::Sim::start_local(
            &token,
            sim::fleet::generate(&sim::FleetSpec::new(droplets, seed)),
        )
        .await
        .expect("sim");
        Account {
            sim,
            token,
            state: tempfile::tempdir().expect("state"),
        }
    }

    /// A function's environment: the simulator, the token, the state directory and `POLICY`,
    /// then `extra`.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("DIGITALOCEAN_API_URL", self.sim.url()),
            ("DIGITALOCEAN_TOKEN", self.token.clone()),
            (
                "DROPLETGUARD_STATE_DIR",
                self.state.path().display().to_string(),
            ),
            ("DROPLETGUARD_POLICY_TOML", POLICY.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }
}

/// A function process and its emulator; stdout (the JSON logs) is kept.
pub struct Function {
    child: tokio::process::Child,
    pub emulator: Emulator,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Function {
    pub async fn start(bin: &str, name: &str, env: &[(String, String)]) -> Function {
        let emulator = Emulator::start(name).await.expect("emulator");
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(emulator.env())
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("function starts");
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if let Ok(mut g) = logs.lock() {
                        g.push(l);
                    }
                }
            });
        }
        Function {
            child,
            emulator,
            logs,
        }
    }

    pub async fn invoke(&self, payload: &Value) -> Outcome {
        self.emulator
            .invoke(payload.to_string().as_bytes(), Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("invocation: {e}; logs:\n{}", self.logs().join("\n")))
    }

    /// The response, or a panic showing the error and the logs.
    pub async fn ok(&self, payload: &Value) -> Value {
        match self.invoke(payload).await {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("function error {e}; logs:\n{}", self.logs().join("\n")),
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|g| g.clone()).unwrap_or_default()
    }

    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.logs()
    }
}

/// Logs are JSON lines and never show a secret.
pub fn assert_logs_clean(logs: &[String], secrets: &[&str]) {
    assert!(!logs.is_empty(), "the function logged");
    for l in logs {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "not a JSON log line: {l}"
        );
        for s in secrets {
            assert!(!l.contains(s), "secret in logs: {l}");
        }
    }
}

#[path = "../common/moto.rs"]
mod moto;
#[allow(unused_imports)]
pub use moto::Moto;

/// A loopback receiver for Slack-style notifications; collects the bodies it gets.
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/services/T000/B000/XXXX",
            listener.local_addr().expect("addr")
        );
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let b = bodies.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    break;
                };
                let b = b.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(pos) = text.find("\r\n\r\n") {
                            let len: usize = text[..pos]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buf.len() >= pos + 4 + len {
                                if let Ok(v) = serde_json::from_slice(&buf[pos + 4..pos + 4 + len])
                                {
                                    if let Ok(mut g) = b.lock() {
                                        g.push(v);
                                    }
                                }
                                let _ = sock
                                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                    .await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Receiver { url, bodies }
    }

    pub fn messages(&self) -> Vec<Value> {
        self.bodies.lock().map(|g| g.clone()).unwrap_or_default()
    }
}
