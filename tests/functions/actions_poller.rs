//! `actions-poller` as a real process under the Runtime API emulator.

#[path = "common.rs"]
mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn droplets_created_since_the_cursor_are_rechecked() {
    let token = token();
    let sim = sim::Sim::start_local(&token, sim::fleet::generate(&sim::FleetSpec::new(20, 5)))
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
        ("DROPLETGUARD_MODE", "enforce".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    let f = Function::start(env!("CARGO_BIN_EXE_actions-poller"), "actions-poller", &env).await;
    let event = fixture("eventbridge/example-eventbridge-schedule.json");
    // First poll: nothing has happened yet; the cursor starts.
    let out = f.ok(&event).await;
    assert_eq!(out["droplets"], serde_json::json!([]));

    // Someone creates a Droplet without a firewall, and another action is still running.
    let new_id = sim.with_state(|s| {
        let template = s.droplets.values().next().expect("droplet").clone();
        let mut d = template;
        d.id = 0;
        d.name = "fresh-web".into();
        d.tags = vec!["env:prod".into(), "tenant:acme".into()];
        s.create_droplet(d)
    });
    let busy = sim.with_state(|s| *s.droplets.keys().next().expect("droplet"));
    let in_progress =
        sim.with_state(|s| s.record_action("resize", Some(busy), "nyc3", "in-progress"));
    sim.clear_requests();
    let out = f.ok(&event).await;
    assert_eq!(out["droplets"], serde_json::json!([new_id]), "{out}");
    assert_eq!(out["report"]["summary"]["droplets"], 1);
    assert!(
        out["cursor"].as_u64().expect("cursor") < in_progress,
        "the running action is left for later"
    );
    let tags = sim.with_state(|s| s.droplets[&new_id].tags.clone());
    assert!(
        tags.contains(&"dropletguard-baseline".to_string()),
        "the new Droplet was protected"
    );
    assert!(sim.requests().iter().any(|r| r.path == "/v2/actions"));

    // The resize completes: the next poll re-checks that Droplet, then nothing more.
    sim.with_state(|s| {
        if let Some(a) = s.actions.iter_mut().find(|a| a.id == in_progress) {
            a.status = "completed".into();
        }
    });
    let out = f.ok(&event).await;
    assert_eq!(out["droplets"], serde_json::json!([busy]), "{out}");
    let out = f.ok(&event).await;
    assert_eq!(out["actions_seen"], 0);
    assert!(state.path().join("cursors/actions-poller.json").exists());
    let logs = f.stop().await;
    assert_logs_clean(&logs, &[&token]);
    sim.shutdown().await;
}
