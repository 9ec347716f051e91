//! `incident-response` as a real process under the Runtime API emulator.

#[path = "common.rs"]
mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_and_restore_round_trip() {
    let token = token();
    let sim = sim::Sim::start_local(&token, sim::fleet::generate(&sim::FleetSpec::new(40, 21)))
        .await
        .expect("sim");
    let state = tempfile::tempdir().expect("state");
    let env: Vec<(String, String)> = [
        ("DIGITALOCEAN_API_URL", sim.url()),
        ("DIGITALOCEAN_TOKEN", token.clone()),
        ("DROPLETGUARD_STATE_DIR", state.path().display().to_string()),
        (
            "DROPLETGUARD_POLICY_TOML",
            "[management]\ncidrs = [\"203.0.113.0/24\"]\n[ssh]\nprobe = false\n".to_string(),
        ),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    let f = Function::start(
        env!("CARGO_BIN_EXE_incident-response"),
        "incident-response",
        &env,
    )
    .await;
    let (id, before) = sim.with_state(|s| {
        let d = s
            .droplets
            .values()
            .find(|d| d.tags.iter().any(|t| t.starts_with("fw:")))
            .expect("protected");
        (d.id, d.tags.clone())
    });
    let out = f.ok(&json!({"action": "audit", "droplet_ids": [id]})).await;
    assert_eq!(out["report"]["summary"]["droplets"], 1);
    assert_eq!(out["report"]["run"]["trigger"], "manual");

    let out = f
        .ok(&json!({"action": "quarantine", "droplet_ids": [id], "reason": "INC-9 beaconing"}))
        .await;
    assert_eq!(out["results"][0]["ok"], true, "{out}");
    assert_eq!(out["results"][0]["status"], "quarantined");
    let covering = sim.with_state(|s| {
        let d = &s.droplets[&id];
        s.firewalls
            .iter()
            .filter(|f| f.droplet_ids.contains(&id) || f.tags.iter().any(|t| d.tags.contains(t)))
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(covering, vec!["dropletguard-quarantine".to_string()]);

    let out = f
        .ok(&json!({"action": "restore", "droplet_ids": [id]}))
        .await;
    assert_eq!(out["results"][0]["ok"], true, "{out}");
    let after = sim.with_state(|s| s.droplets[&id].tags.clone());
    let (mut a, mut b) = (after.clone(), before.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // A bad payload is an error that names the problem.
    match f
        .invoke(&json!({"action": "quarantine", "droplet_ids": [id]}))
        .await
    {
        sim::lambda::Outcome::Error(e) => {
            assert!(e.to_string().contains("reason is required"), "{e}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let logs = f.stop().await;
    assert_logs_clean(&logs, &[&token]);
    sim.shutdown().await;
}
