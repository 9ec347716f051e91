//! `incident-response` as a real process under the Runtime API emulator.

#[path = "common.rs"]
mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_and_restore_round_trip() {
    let account = Account::start(40, 21).await;
    let (sim, token) = (&account.sim, &account.token);
    let env = account.env(&[]);
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
    assert!(
        covering.contains(&"dropletguard-quarantine".to_string()),
        "{covering:?}"
    );
    let tags = sim.with_state(|s| s.droplets[&id].tags.clone());
    assert_eq!(
        tags.len(),
        before.len() + 1,
        "one tag added, none removed: {tags:?}"
    );
    assert!(tags.contains(&"dropletguard-quarantine".to_string()));

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
            assert!(e.to_string().contains("reason is required"), "{e}");
            // Lambda's errorType says what kind of failure it is and that a retry cannot help.
            assert_eq!(e["errorType"], "Permanent.BadRequest", "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let logs = f.stop().await;
    assert_logs_clean(&logs, &[token]);
}
