//! `make invoke-local`: runs one function binary under the Lambda Runtime API emulator against
//! the simulator (a generated fleet), sends it one event, prints the answer.
//!
//! Usage: invoke-local FUNCTION EVENT_FILE [--droplets N] [--mode audit|enforce] [--state DIR]
//! The answer is printed on stdout; the function's logs and the setup go to stderr.
//! For `webhook`, EVENT_FILE is the event body: it is signed and wrapped in an HTTP API payload.

use std::process::Stdio;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use sim::lambda::{Emulator, Outcome};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The function's `DROPLETGUARD_MODE`.
#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Audit,
    Enforce,
}

/// One function binary under the Lambda Runtime API emulator, with one event.
#[derive(Parser)]
#[command(name = "invoke-local")]
struct Args {
    /// The function: scheduled-audit, webhook, incident-response or actions-poller.
    function: String,
    /// The event (for `webhook`, the body to sign and wrap in an HTTP API payload).
    event_file: String,
    /// Droplets in the simulated fleet.
    #[arg(long, default_value_t = 25)]
    droplets: usize,
    #[arg(long, value_enum, default_value = "audit")]
    mode: Mode,
    /// The function's state store (a directory), kept: a second invocation with the same
    /// DIR and fleet builds on the full read the first one cached. Without it, a temporary
    /// directory, removed at the end.
    #[arg(long, value_name = "DIR")]
    state: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Res<()> {
    let args = Args::parse();
    let function = &args.function;
    let payload = payload(function, &args.event_file)?;
    let bin = std::env::current_exe()?
        .parent()
        .ok_or("no bin dir")?
        .join(function);
    if !bin.exists() {
        return Err(format!("{} is missing: cargo build -p {function}", bin.display()).into());
    }
    let token = "invoke-local-token";
    let fleet = sim::fleet::generate(&sim::FleetSpec::new(args.droplets, 1));
    let s = sim::Sim::start_local(token, fleet).await?;
    let emu = Emulator::start(function).await?;
    let temporary = args.state.is_none();
    let state = args.state.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("dropletguard-invoke-local-{}", std::process::id()))
    });
    eprintln!(
        "simulator {} ({} Droplets), runtime API {}, state {}",
        s.url(),
        args.droplets,
        emu.runtime_api(),
        state.display()
    );
    let mut child = tokio::process::Command::new(&bin)
        .envs(emu.env())
        .env("DIGITALOCEAN_API_URL", s.url())
        .env("DIGITALOCEAN_TOKEN", token)
        .env("DROPLETGUARD_STATE_DIR", &state)
        .env("DROPLETGUARD_WEBHOOK_SECRETS", SECRET)
        .env("DROPLETGUARD_POLICY_TOML", sim::FLEET_POLICY)
        .env("DROPLETGUARD_MODE", args.mode.as_str())
        // The function's logs go to stderr, so that stdout is the answer alone.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let out = emu
        .invoke(payload.to_string().as_bytes(), Duration::from_secs(120))
        .await;
    let _ = child.kill().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&state);
    }
    s.shutdown().await;
    answer(out)
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Enforce => "enforce",
        }
    }
}

/// The invocation's payload: the event file as it is, or for `webhook` its body signed and
/// wrapped in an HTTP API (payload format 2.0) request.
fn payload(function: &str, event_file: &str) -> Res<Value> {
    let body = std::fs::read(event_file).map_err(|e| format!("{event_file}: {e}"))?;
    if function != "webhook" {
        return Ok(
            serde_json::from_slice(&body).map_err(|e| format!("{event_file}: not JSON: {e}"))?
        );
    }
    let ts = chrono::Utc::now().timestamp();
    let id = format!("msg_local_{}", uuid::Uuid::new_v4().simple());
    let secret = shared::webhook::Secret::parse(SECRET)?;
    let sig = shared::webhook::sign(&secret, &id, ts, &body);
    Ok(json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"webhook-id": id, "webhook-timestamp": ts.to_string(), "webhook-signature": sig, "content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "local", "domainName": "local.example.com", "domainPrefix": "local",
                           "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "invoke-local"},
                           "requestId": "local", "routeKey": "POST /webhook", "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": String::from_utf8_lossy(&body), "isBase64Encoded": false
    }))
}

/// Prints the function's answer (or its error) on stdout; an error answer fails the run.
fn answer(out: Result<Outcome, String>) -> Res<()> {
    match out {
        Ok(Outcome::Response(v)) => println!("{}", serde_json::to_string_pretty(&v)?),
        Ok(Outcome::Error(e)) => {
            println!("{}", serde_json::to_string_pretty(&e)?);
            return Err("the function answered with an error".into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
