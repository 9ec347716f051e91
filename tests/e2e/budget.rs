//! The API budget (issue 10): runs other than incident response stop before they spend the
//! requests kept for it (`[api] reserve_percent` of `ratelimit-limit`), saying why;
//! incident response may spend them.

use shared::digitalocean::{Client, ClientConfig, Token};
use shared::service::{
    handle_webhook, incident, poll_actions, scheduled_run, Deps, IncidentAction, IncidentRequest,
};
use shared::snapshot::cache::{ListSizes, SeenBudget, BUDGET_KEY, SIZES_KEY};
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

/// The headers of a delivery `id` of `body`, signed at `now` as Standard Webhooks says.
fn signed(id: &str, body: &str, now: i64) -> Vec<(String, String)> {
    let secret = Secret::parse(SECRET).expect("secret");
    vec![
        ("webhook-id".to_string(), id.to_string()),
        ("webhook-timestamp".to_string(), now.to_string()),
        (
            "webhook-signature".to_string(),
            sign(&secret, id, now, body.as_bytes()),
        ),
    ]
}

/// Incident response quarantines the simulator's first Droplet (it may spend the reserve);
/// its id.
async fn quarantine_first(sim: &Sim, d: &Deps) -> u64 {
    let id = sim.with_state(|st| st.droplets.keys().next().copied().expect("id"));
    let request = IncidentRequest {
        action: IncidentAction::Quarantine,
        droplet_ids: vec![id],
        dry_run: false,
        reason: Some("compromised".into()),
    };
    let out = incident(d, request).await.expect("incident response");
    assert_eq!(out["results"][0]["ok"], true, "{out}");
    id
}

/// A fleet of 500 Droplets with the whole budget, and a state store holding the complete
/// full read a scheduled run cached there (with the lists' sizes and the budget it saw).
async fn after_a_full_read() -> (Sim, tempfile::TempDir) {
    let sim = start(generate(&FleetSpec::new(500, 5))).await;
    let dir = tempfile::tempdir().expect("state");
    let full = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(full.run.complete, "{:?}", full.run.incomplete);
    (sim, dir)
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
    let id = quarantine_first(&sim, &d).await;
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
    let headers = |wid: &str| signed(wid, &body, now);
    let r = handle_webhook(&d, &headers("msg_budget"), body.as_bytes(), now).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("kept for incident response"));
    // The claim was released: the sender's retry, once the budget allows (a new hour: the
    // reset time the last run kept has passed), is processed.
    sim.set_faults(Faults::default());
    let d = deps(&sim, &dir, "");
    hour_over(&d).await;
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

/// The hour the budget kept in the state store counted is over (its reset time has passed).
async fn hour_over(d: &Deps) {
    let mut seen: SeenBudget = d
        .store
        .get_json(BUDGET_KEY)
        .await
        .expect("read")
        .expect("a run kept the budget it saw");
    seen.rate.reset = (chrono::Utc::now().timestamp() - 1) as u64;
    d.store.put_json(BUDGET_KEY, &seen).await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_one_run_saw_holds_the_next_runs_first_requests() {
    // Each Lambda instance and CLI process starts with a client of its own: without the
    // budget kept in the state store, each sent its first requests (a whole re-check) blind.
    let sim = sim_with(980).await;
    let dir = tempfile::tempdir().expect("state");
    let first = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(first.run.stopped_early);
    let sent = sim.requests().len();
    let d = deps(&sim, &dir, "");
    let next = scheduled_run(&d, "schedule").await.expect("report");
    assert!(next.run.stopped_early, "{:?}", next.run);
    assert!(
        next.run
            .incomplete
            .join("; ")
            .contains("kept for incident response"),
        "{:?}",
        next.run.incomplete
    );
    let id = sim.with_state(|st| st.droplets.keys().next().copied().expect("id"));
    let body = format!(r#"{{"type":"droplet.updated","data":{{"droplet_id":{id}}}}}"#);
    let now = chrono::Utc::now().timestamp();
    let headers = signed("msg_seen", &body, now);
    let r = handle_webhook(&deps(&sim, &dir, ""), &headers, body.as_bytes(), now).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(sim.requests().len(), sent, "nothing more was sent");
    // Once the hour it counted is over, the next run goes ahead.
    sim.set_faults(Faults::default());
    hour_over(&d).await;
    let later = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(later.run.complete, "{:?}", later.run.incomplete);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_sends_the_remembered_pages_at_once_only_with_room_for_them() {
    let (sim, dir) = after_a_full_read().await;
    let d = deps(&sim, &dir, "");
    let sizes: ListSizes = d
        .store
        .get_json(SIZES_KEY)
        .await
        .expect("read")
        .expect("sizes");
    assert_eq!(sizes.droplets, Some(500 - sizes.gpus.unwrap_or(0)));
    // One round trip while the budget allows: every page in one wave of 7.
    let before = sim.requests().len();
    let again = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(again.run.complete);
    let wave = sim.requests().len() - before;
    assert_eq!(wave, 7, "{:?}", &sim.requests()[before..]);

    // The last run saw 1,004 left: the wave's 7 would end below the 1,000 kept. Only the
    // first page of each list goes; their answers (1,000 left by now) stop the rest.
    sim.set_faults(Faults {
        ratelimit_remaining: Some(1_000),
        ..Default::default()
    });
    let mut seen: SeenBudget = d
        .store
        .get_json(BUDGET_KEY)
        .await
        .expect("read")
        .expect("kept");
    seen.rate.remaining = 1_004;
    d.store.put_json(BUDGET_KEY, &seen).await.expect("write");
    let before = sim.requests().len();
    let low = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(low.run.stopped_early, "{:?}", low.run);
    let sent: Vec<String> = sim.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.path, r.query))
        .collect();
    assert!(sent.len() <= 5, "{sent:?}");
    assert!(sent.iter().all(|r| r.ends_with("&page=1")), "{sent:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_far_larger_than_the_account_cost_what_a_first_read_costs() {
    // A stale, foreign or hostile cache/list-sizes.json: 1,000,000 of everything. It sent
    // 50 empty pages per list (about 260 requests, 50 of them to /v2/account/keys, which
    // allows 10 a minute).
    let sim = start(generate(&FleetSpec::new(500, 5))).await;
    let first_dir = tempfile::tempdir().expect("state");
    let first = scheduled_run(&deps(&sim, &first_dir, ""), "schedule")
        .await
        .expect("report");
    let first_read = sim.requests().len();
    let dir = tempfile::tempdir().expect("state");
    let d = deps(&sim, &dir, "");
    let huge = ListSizes {
        droplets: Some(1_000_000),
        gpus: Some(1_000_000),
        firewalls: Some(1_000_000),
        vpcs: Some(1_000_000),
        ssh_keys: Some(1_000_000),
    };
    d.store.put_json(SIZES_KEY, &huge).await.expect("write");
    let before = sim.requests().len();
    let report = scheduled_run(&d, "schedule").await.expect("report");
    assert!(report.run.complete);
    assert_eq!(sim.requests().len() - before, first_read);
    assert_eq!(report.findings.len(), first.findings.len());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_run_counts_the_events_own_reads() {
    // The tag's members and the GPU list, or the Droplet an event names, are read before
    // the re-check: `run.api_requests` left them out (a tag event on 60,000 Droplets said
    // 303 of its 413 requests; a Droplet that no longer exists said 0).
    let (sim, dir) = after_a_full_read().await;
    let d = deps(&sim, &dir, "");
    for (n, body) in [
        r#"{"type":"tag.changed","data":{"tag":"env:prod"}}"#,
        r#"{"type":"droplet.updated","data":{"droplet_id":999999999}}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let now = chrono::Utc::now().timestamp();
        let id = format!("msg_count_{n}");
        let headers = signed(&id, body, now);
        let before = sim.requests().len();
        let r = handle_webhook(&d, &headers, body.as_bytes(), now).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let sent = (sim.requests().len() - before) as u64;
        assert!(sent >= 1, "{body}");
        assert_eq!(
            r.body["run"]["api_requests"], sent,
            "{body}: {}",
            r.body["run"]
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_never_spends_the_reserve_on_requests_already_on_their_way() {
    // 3,000 Droplets: the Droplet list's 14 further pages go out at once after its first.
    // Each was checked against the last answer's 1,004 left, so all went and the run ended
    // below the 1,000 kept. Now the requests on their way count: 4 go, the rest are held.
    let sim = start(generate(&FleetSpec::new(3_000, 5))).await;
    sim.set_faults(Faults {
        ratelimit_remaining: Some(1_008),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("state");
    let report = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(report.run.stopped_early, "{:?}", report.run);
    // Its first answer says 1,008 are left after it: 1,009 before the run. Every request
    // the run sent counts (one cancelled when the run stopped may or may not have reached
    // the simulator by now).
    let left = 1_009 - report.run.api_requests;
    assert!(left >= 1_000, "the reserve was spent: {left} left");
    let next = sim
        .with_state(|st| st.faults.ratelimit_remaining)
        .expect("counting down");
    assert!(1_008 - next <= report.run.api_requests);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_keeps_the_budget_it_spent_for_the_runs_after_it() {
    // The last run saw 4,000 left; a quarantine then ran with 950 left. It kept nothing, so
    // the next scheduled run started from 4,000 and sent its whole first wave.
    let sim = start(generate(&FleetSpec::new(500, 5))).await;
    let dir = tempfile::tempdir().expect("state");
    let d = deps(&sim, &dir, "");
    let seen = SeenBudget {
        rate: shared::digitalocean::RateLimit {
            limit: 5_000,
            remaining: 4_000,
            reset: (chrono::Utc::now().timestamp() + 1_800) as u64,
        },
        seen_at: chrono::Utc::now(),
    };
    d.store.put_json(BUDGET_KEY, &seen).await.expect("write");
    sim.set_faults(Faults {
        ratelimit_remaining: Some(950),
        ..Default::default()
    });
    quarantine_first(&sim, &d).await;
    let kept: SeenBudget = d
        .store
        .get_json(BUDGET_KEY)
        .await
        .expect("read")
        .expect("kept");
    assert!(kept.rate.remaining < 950, "{kept:?}");
    let before = sim.requests().len();
    let next = scheduled_run(&deps(&sim, &dir, ""), "schedule")
        .await
        .expect("report");
    assert!(next.run.stopped_early, "{:?}", next.run);
    assert_eq!(sim.requests().len(), before, "nothing sent");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_only_some_checks_need_stops_the_run_at_the_reserve_too() {
    // 1,001 left: the event's read of the Droplet and the re-check's firewall read go (the
    // API then says 1,001 and 1,000 left after them); the VPC list would spend the reserve. That refusal made `vpc.default` unknown in a run that said it was complete
    // enough to answer 200; it stops the run early like any other.
    let (sim, dir) = after_a_full_read().await;
    let mut seen: SeenBudget = d_budget(&dir).await;
    seen.rate.remaining = 1_001;
    seen.seen_at = chrono::Utc::now();
    let d = deps(&sim, &dir, "");
    d.store.put_json(BUDGET_KEY, &seen).await.expect("write");
    sim.set_faults(Faults {
        ratelimit_remaining: Some(1_001),
        ..Default::default()
    });
    let id = sim.with_state(|st| st.droplets.keys().next().copied().expect("id"));
    let body = format!(r#"{{"type":"droplet.updated","data":{{"droplet_id":{id}}}}}"#);
    let now = chrono::Utc::now().timestamp();
    let r = handle_webhook(&d, &signed("msg_vpcs", &body, now), body.as_bytes(), now).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("GET /v2/vpcs: not sent"),
        "{}",
        r.body
    );
    sim.shutdown().await;
}

/// The budget the runs over `dir` kept.
async fn d_budget(dir: &tempfile::TempDir) -> SeenBudget {
    Store::Dir(DirStore::new(dir.path()))
        .get_json(BUDGET_KEY)
        .await
        .expect("read")
        .expect("a run kept the budget it saw")
}
