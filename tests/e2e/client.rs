//! The DigitalOcean client against the simulator: retries, backoff bounds, pagination.

use std::time::{Duration, Instant};

use shared::digitalocean::{ApiError, Client, ClientConfig, FirewallRequest, Token};
use sim::{fleet, Faults, FleetSpec};

use crate::fixtures;
use crate::helpers::*;

fn client(sim: &sim::Sim) -> Client {
    let mut cfg = ClientConfig::new(sim.url(), Token::new(&sim.token));
    cfg.base_backoff = Duration::from_millis(10);
    cfg.max_backoff = Duration::from_millis(50);
    Client::new(cfg).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_all_read_once() {
    let sim = start(fleet::generate(&FleetSpec::new(1001, 5))).await;
    let c = client(&sim);
    let droplets = c.list_droplets().await.expect("droplets");
    let gpus = c.list_gpu_droplets().await.expect("gpus");
    assert_eq!(droplets.len() + gpus.len(), 1001);
    assert_eq!(gpus.len(), 40, "every 25th is a GPU Droplet");
    assert!(gpus.iter().all(|d| d.is_gpu()) && droplets.iter().all(|d| !d.is_gpu()));
    let mut ids: Vec<u64> = droplets.iter().map(|d| d.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), droplets.len(), "no page read twice");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "pages kept in order");
    let log = sim.requests();
    let pages: Vec<_> = log
        .iter()
        .filter(|r| r.query.contains("type=gpus"))
        .collect();
    assert_eq!(pages.len(), 1);
    assert!(log.iter().all(|r| r.query.contains("per_page=200")));
    assert_eq!(
        log.len(),
        5 + 1,
        "961 regular Droplets in 5 pages, 40 GPU in 1"
    );
    assert_eq!(c.requests(), 6);
    sim.shutdown().await;
}

/// The simulator works out its Droplet lists once for all their pages; a change to the
/// Droplets must show in the next read, never the lists as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_lists_follow_changes_to_the_droplets() {
    let sim = start(fleet::generate(&FleetSpec::new(450, 5))).await;
    let c = client(&sim);
    let count = |c: &Client| {
        let c = c.clone();
        async move {
            let regular = c.list_droplets().await.expect("droplets");
            let gpus = c.list_gpu_droplets().await.expect("gpus");
            (regular.len(), gpus.len())
        }
    };
    let (regular, gpus) = count(&c).await;
    assert_eq!(regular + gpus, 450);
    let new_id = sim.with_state(|st| {
        let mut d = st.droplets.values().find(|d| !d.gpu).expect("one").clone();
        d.id = 0;
        st.create_droplet(d)
    });
    assert_eq!(
        count(&c).await,
        (regular + 1, gpus),
        "a new Droplet is listed"
    );
    sim.with_state(|st| st.droplets.get_mut(&new_id).expect("new").gpu = true);
    assert_eq!(
        count(&c).await,
        (regular, gpus + 1),
        "it moved to the GPU list"
    );
    sim.with_state(|st| st.droplets.remove(&new_id));
    assert_eq!(
        count(&c).await,
        (regular, gpus),
        "a removed Droplet is gone"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let sim = start(fixtures::known()).await;
    sim.set_faults(Faults {
        rate_limit_next: 1,
        retry_after_secs: 1,
        ..Default::default()
    });
    let c = client(&sim);
    let t = Instant::now();
    let fws = c.list_firewalls().await.expect("firewalls after one 429");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "waited as retry-after said"
    );
    assert_eq!(fws.len(), 5);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let sim = start(fixtures::known()).await;
    // Always 429: gives up after max_attempts with a typed error.
    sim.set_faults(Faults {
        rate_limit_every: 1,
        retry_after_secs: 0,
        ..Default::default()
    });
    let mut cfg = ClientConfig::new(sim.url(), Token::new(&sim.token));
    cfg.max_attempts = 3;
    cfg.base_backoff = Duration::from_millis(5);
    let c = Client::new(cfg).expect("client");
    match c.list_vpcs().await {
        Err(ApiError::RateLimited { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(sim.requests().len(), 3);

    // A retry-after longer than the time budget: no waiting at all, a typed error at once.
    sim.clear_requests();
    sim.set_faults(Faults {
        rate_limit_every: 1,
        retry_after_secs: 600,
        ..Default::default()
    });
    let mut cfg = ClientConfig::new(sim.url(), Token::new(&sim.token));
    cfg.max_retry_time = Duration::from_secs(5);
    let c = Client::new(cfg).expect("client");
    let t = Instant::now();
    match c.list_vpcs().await {
        Err(ApiError::RateLimited { wait, .. }) => assert_eq!(wait, Duration::from_secs(600)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(sim.requests().len(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_retry_but_501_and_writes_do_not() {
    let sim = start(fixtures::known()).await;
    let c = client(&sim);
    sim.set_faults(Faults {
        fail_next: 2,
        error_status: Some(503),
        ..Default::default()
    });
    assert_eq!(
        c.list_ssh_keys().await.expect("keys after two 503s").len(),
        1
    );
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);

    sim.clear_requests();
    sim.set_faults(Faults {
        fail_next: 1,
        error_status: Some(501),
        ..Default::default()
    });
    match c.list_ssh_keys().await {
        Err(e @ ApiError::Api { .. }) => {
            assert_eq!(e.status(), Some(501));
            assert!(e.to_string().contains("request id"), "{e}");
        }
        other => panic!("expected a 501 API error, got {other:?}"),
    }
    assert_eq!(sim.requests().len(), 1, "501 is not retried");

    // A POST that reached the server is not blindly retried (remediation re-reads state).
    sim.clear_requests();
    sim.set_faults(Faults {
        fail_next: 1,
        error_status: Some(503),
        ..Default::default()
    });
    let req = FirewallRequest {
        name: "x".into(),
        tags: vec!["web".into()],
        ..Default::default()
    };
    let err = c.create_firewall(&req).await.expect_err("503 on create");
    assert_eq!(err.status(), Some(503));
    assert_eq!(sim.requests().len(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_typed_and_token_free() {
    let sim = start(fixtures::known()).await;
    let c = client(&sim);
    let err = c.get_firewall("no-such-firewall").await.expect_err("404");
    assert!(err.is_not_found());
    let text = err.to_string();
    assert!(
        text.contains("not_found") && text.contains("/v2/firewalls/no-such-firewall"),
        "{text}"
    );
    let mut cfg = ClientConfig::new(sim.url(), Token::new("dop_v1_leaky"));
    cfg.max_attempts = 1;
    let bad = Client::new(cfg.clone()).expect("client");
    let err = bad.list_droplets().await.expect_err("401");
    assert_eq!(err.status(), Some(401));
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        format!("{cfg:?}"),
        format!("{bad:?}"),
    ] {
        assert!(!shown.contains("dop_v1_leaky"), "token shown in {shown}");
    }
    let err = Client::new(ClientConfig::new("not a url", Token::new("t"))).expect_err("bad url");
    assert!(err.to_string().contains("not a url"));
    sim.shutdown().await;
}
