//! Events that select Droplets by tag re-check GPU Droplets too
//! (`tests/cases/gpu-droplet-tag-event/`): the API's `tag_name`
//! filter leaves GPU Droplets out, and the simulator answers as the API does.

use std::path::PathBuf;

use serde_json::Value;
use shared::digitalocean::{Client, ClientConfig, Token};
use shared::service::{handle_webhook, Deps};
use shared::store::{DirStore, Store};
use shared::webhook::{sign, Secret};

use crate::helpers::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn case(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/cases/gpu-droplet-tag-event")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(case(rel)).expect("case file")
}

/// (rule, Droplet id, severity, status) of each Droplet finding.
fn keys(report: &Value) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["resource"]["type"] == "droplet")
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (
                s("rule"),
                f["resource"]["id"].as_str().unwrap_or_default().to_string(),
                s("severity"),
                s("status"),
            )
        })
        .collect();
    v.sort();
    v
}

async fn deliver(deps: &Deps, body: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let sig = sign(
        &Secret::parse(SECRET).expect("secret"),
        &id,
        now,
        body.as_bytes(),
    );
    let headers = vec![
        ("webhook-id".to_string(), id),
        ("webhook-timestamp".to_string(), now.to_string()),
        ("webhook-signature".to_string(), sig),
    ];
    let r = handle_webhook(deps, &headers, body.as_bytes(), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_firewall_events_recheck_gpu_droplets_as_a_full_audit_would() {
    let account: Value = serde_json::from_str(&read("fleet.json")).expect("fleet.json");
    let sim = start(sim::State::from_account_json(&account).expect("loads")).await;
    // The simulator answers `tag_name` as the API does: no GPU Droplet.
    let (_, by_tag) = Raw::new(&sim).get("/v2/droplets?tag_name=web").await;
    let listed: Vec<u64> = by_tag["droplets"]
        .as_array()
        .expect("droplets")
        .iter()
        .filter_map(|d| d["id"].as_u64())
        .collect();
    assert_eq!(listed, vec![5001]);

    let policy_text = read("policy.toml");
    let full = cli_with_policy(&sim, &policy_text, &["audit", "--format", "json"]).await;
    let want = keys(&full.json());
    assert!(
        want.iter().any(|k| k.1 == "5002"),
        "the full audit sees the GPU Droplet: {want:?}"
    );

    let state = tempfile::tempdir().expect("state");
    let client = Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token))).expect("client");
    let policy = shared::Policy::parse(&policy_text, "policy.toml").expect("policy");
    let mut deps = Deps::new(client, Store::Dir(DirStore::new(state.path())), policy);
    deps.webhook_secrets = vec![Secret::parse(SECRET).expect("secret")];
    for event in ["event-tag-changed.json", "event-firewall-changed.json"] {
        let report = deliver(&deps, &read(event)).await;
        assert_eq!(report["summary"]["droplets"], 2, "{event}: {report}");
        assert_eq!(
            keys(&report),
            want,
            "{event}: the same findings as the full audit"
        );
    }
    sim.shutdown().await;
}
