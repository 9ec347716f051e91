//! `actions-poller` as a real process under the Runtime API emulator.

#[path = "common.rs"]
mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn droplets_created_since_the_cursor_are_rechecked() {
    let account = Account::start(20, 5).await;
    let (sim, token, state) = (&account.sim, &account.token, &account.state);
    let env = account.env(&[("DROPLETGUARD_MODE", "enforce")]);
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
    assert_logs_clean(&logs, &[token]);
}
