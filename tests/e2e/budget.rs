//! The API budget (issue 10): runs other than incident response stop before they spend the
//! requests kept for it (`[api] reserve_percent` of `ratelimit-limit`), saying why;
//! incident response may spend them.

use shared::digitalocean::{Client, ClientConfig, Token};
use shared::service::{
    handle_webhook, incident, poll_actions, scheduled_run, Deps, IncidentAction, IncidentRequest,
};
use shared::store::{DirStore, Store};
use shared::webhook::{sign, Secret};
use shared::Policy;
use sim::fleet::generate;
use sim::{Faults, FleetSpec, Sim, FLEET_POLICY};

use crate::helpers::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A fleet of 500 Droplets (3 pages) whose token has `remaining` requests left this hour.
async fn sim_with(remaining: u64) -> Sim {
    let sim = start(generate(&FleetSpec::new(500, 5))).await;
    sim.set_faults(Faults {
        ratelimit_remaining: Some(remaining),
        ..Default::default()
    });
    sim
}

fn deps(sim: &Sim, dir: &tempfile::TempDir, policy_extra: &str) -> Deps {
    let client = Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token))).expect("client");
    let policy =
        Policy::parse(&format!("{FLEET_POLICY}\n{policy_extra}"), "p.toml").expect("policy");
    let mut d = Deps::new(client, Store::Dir(DirStore::new(dir.path())), policy);
    d.webhook_secrets = vec![Secret::parse(SECRET).expect("secret")];
    d
}

fn writes(sim: &Sim) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_stops_at_the_reserve_and_incident_response_goes_on() {
    // 980 left: below the 1,000 (20% of 5,000) kept for incident response.
    let sim = sim_with(980).await;
    let dir = tempfile::tempdir().expect("state");
    let d = deps(&sim, &dir, "[remediation]\nmode = \"enforce\"\n");
    let report = scheduled_run(&d, "schedule").await.expect("a report");
    assert!(!report.run.complete);
    assert!(report.run.stopped_early);
    let why = report.run.incomplete.join("; ");
    assert!(
        why.contains("of the token's 5000 requests this hour are left (ratelimit-remaining)")
            && why.contains("1000 are kept for incident response"),
        "{why}"
    );
    // The first requests went out before the API said how much was left; nothing after them.
    let sent = sim.requests();
    assert!(sent.len() <= 5, "{sent:?}");
    assert!(writes(&sim).is_empty(), "no write: {:?}", writes(&sim));

    // Incident response spends the reserve: the quarantine is done.
    let id = sim.with_state(|st| st.droplets.keys().next().copied().expect("id"));
    let out = incident(
        &d,
        IncidentRequest {
            action: IncidentAction::Quarantine,
            droplet_ids: vec![id],
            dry_run: false,
            reason: Some("compromised".into()),
        },
    )
    .await
    .expect("incident response");
    assert_eq!(out["results"][0]["ok"], true, "{out}");
    let tags = sim.with_state(|st| st.droplets[&id].tags.clone());
    assert!(
        tags.contains(&"dropletguard-quarantine".to_string()),
        "{tags:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_is_configurable_and_above_it_runs_complete() {
    let sim = sim_with(980).await;
    let dir = tempfile::tempdir().expect("state");
    let d = deps(&sim, &dir, "[api]\nreserve_percent = 10\n");
    let report = scheduled_run(&d, "schedule").await.expect("a report");
    assert!(report.run.complete, "{:?}", report.run.incomplete);
    assert!(!report.run.stopped_early);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_keeps_its_cursor_and_a_webhook_asks_to_be_sent_again() {
    let sim = sim_with(900).await;
    let dir = tempfile::tempdir().expect("state");
    let d = deps(&sim, &dir, "");
    d.store
        .put_json(
            shared::service::CURSOR_KEY,
            &shared::service::Cursor {
                last_action_id: 1,
                updated_at: String::new(),
            },
        )
        .await
        .expect("cursor");
    // A Droplet was rebooted: the poll's first request learns the budget; the re-check's
    // requests are not sent.
    let id = sim.with_state(|st| {
        let id = st.droplets.keys().next().copied().expect("id");
        st.record_action("reboot", Some(id), "nyc3", "completed");
        id
    });
    let out = poll_actions(&d, 5).await.expect("poll");
    assert!(out.report.run.stopped_early, "{:?}", out.report.run);
    assert_eq!(out.cursor, 1, "the cursor stays");
    let kept: shared::service::Cursor = d
        .store
        .get_json(shared::service::CURSOR_KEY)
        .await
        .expect("read")
        .expect("cursor");
    assert_eq!(kept.last_action_id, 1);

    let body = format!(r#"{{"type":"droplet.updated","data":{{"droplet_id":{id}}}}}"#);
    let now = chrono::Utc::now().timestamp();
    let headers = |wid: &str| {
        let sig = sign(
            &Secret::parse(SECRET).expect("secret"),
            wid,
            now,
            body.as_bytes(),
        );
        vec![
            ("webhook-id".to_string(), wid.to_string()),
            ("webhook-timestamp".to_string(), now.to_string()),
            ("webhook-signature".to_string(), sig),
        ]
    };
    let r = handle_webhook(&d, &headers("msg_budget"), body.as_bytes(), now).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("kept for incident response"));
    // The claim was released: the sender's retry, once the budget allows (a new hour), is
    // processed (here by another instance, which has not seen the budget run low).
    sim.set_faults(Faults::default());
    let d = deps(&sim, &dir, "");
    let r = handle_webhook(&d, &headers("msg_budget"), body.as_bytes(), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.body["duplicate"], true);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_audit_exits_2_at_the_reserve() {
    let sim = sim_with(500).await;
    let run = cli(&sim, &["audit", "--no-ssh", "--format", "json"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["run"]["complete"], false);
    assert_eq!(r["run"]["stopped_early"], true);
    let table = cli(&sim, &["audit", "--no-ssh"]).await;
    assert_eq!(table.code, 2, "{}", table.stderr);
    assert!(
        table.stdout.contains(
            "(stopped early: the rest of the hour's API requests are kept for incident response)"
        ) && table
            .stdout
            .contains("kept for incident response ([api] reserve_percent)"),
        "{}",
        table.stdout
    );
    sim.shutdown().await;
}
