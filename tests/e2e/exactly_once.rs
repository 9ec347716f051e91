//! Acting exactly once: the same webhook delivery reaching two function instances at once is
//! processed by one of them, with the directory store and with S3 (moto_server).

use std::sync::Arc;

use shared::digitalocean::{Client, ClientConfig, Token};
use shared::service::{handle_webhook, Deps};
use shared::store::{DirStore, S3Store, Store};
use shared::webhook::{sign, Secret};

use crate::helpers::*;
use crate::remediation::{with_orphans, ENFORCE};

use crate::store_s3::moto;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn instance(sim: &sim::Sim, store: Store) -> Deps {
    let client = Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token))).expect("client");
    let mut policy = shared::Policy::parse(ENFORCE, "enforce.toml").expect("policy");
    policy.ssh.probe = false;
    let mut deps = Deps::new(client, store, policy);
    deps.webhook_secrets = vec![Secret::parse(SECRET).expect("secret")];
    deps
}

/// Sends one signed delivery for Droplet 100 to two instances at once, `trials` times (a new
/// delivery id each time); returns how many of each pair processed it.
async fn race(sim: &sim::Sim, store: &Store, trials: usize) -> Vec<usize> {
    let mut processed = Vec::new();
    for trial in 0..trials {
        let a = Arc::new(instance(sim, store.clone()));
        let b = Arc::new(instance(sim, store.clone()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let body = br#"{"type": "droplet.updated", "data": {"droplet_id": 100}}"#.to_vec();
        let id = format!("msg_race_{trial}_{}", uuid::Uuid::new_v4().simple());
        let sig = sign(&Secret::parse(SECRET).expect("secret"), &id, now, &body);
        let headers = vec![
            ("webhook-id".to_string(), id),
            ("webhook-timestamp".to_string(), now.to_string()),
            ("webhook-signature".to_string(), sig),
        ];
        let call = |d: Arc<Deps>| {
            let (h, b) = (headers.clone(), body.clone());
            tokio::spawn(async move { handle_webhook(&d, &h, &b, now).await })
        };
        let (ra, rb) = (call(a), call(b));
        let (ra, rb) = (ra.await.expect("a"), rb.await.expect("b"));
        assert_eq!(
            (ra.status, rb.status),
            (200, 200),
            "{} {}",
            ra.body,
            rb.body
        );
        processed.push(
            [ra, rb]
                .iter()
                .filter(|r| r.body.get("duplicate").is_none())
                .count(),
        );
    }
    processed
}

fn baseline_creates(sim: &sim::Sim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/firewalls")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_to_two_instances_is_processed_once_with_a_directory_store() {
    let sim = start(with_orphans(1)).await;
    let dir = tempfile::tempdir().expect("state");
    let store = Store::Dir(DirStore::new(dir.path()));
    let processed = race(&sim, &store, 10).await;
    assert!(processed.iter().all(|n| *n == 1), "{processed:?}");
    assert_eq!(
        baseline_creates(&sim),
        1,
        "the baseline firewall was created once"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_to_two_instances_is_processed_once_with_s3() {
    let moto = moto::Moto::start().await;
    let bucket = S3Store::new("dropletguard-state/race", moto.config()).expect("store");
    bucket.ensure_bucket().await.expect("bucket");
    let sim = start(with_orphans(1)).await;
    let processed = race(&sim, &Store::S3(bucket), 10).await;
    assert!(processed.iter().all(|n| *n == 1), "{processed:?}");
    assert_eq!(baseline_creates(&sim), 1);
    sim.shutdown().await;
}
