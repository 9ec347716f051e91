//! Re-checks read only what they touch (issue 10): the same findings as a full audit of the
//! same account state, for every rule, also after changes made since the cached full read;
//! a handful of requests whatever the account's size; a stale cache means a full read.

use std::collections::BTreeSet;

use serde_json::Value;
use shared::audit::{audit, AuditError};
use shared::digitalocean::{
    Client, ClientConfig, FirewallRequest, InboundRule, Protocol, Targets, Token,
};
use shared::report::{Finding, Report, ResourceType};
use shared::ssh_audit::SshAccess;
use shared::store::{DirStore, Store};
use shared::{Policy, Scope};
use sim::fleet::generate;
use sim::Sim;
use sim::{FleetSpec, FLEET_POLICY};

use crate::helpers::*;

fn client(sim: &Sim) -> Client {
    Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token))).expect("client")
}

fn policy() -> Policy {
    Policy::parse(FLEET_POLICY, "fleet.toml").expect("fleet policy")
}

fn no_ssh(ids: Option<BTreeSet<u64>>) -> Scope {
    Scope {
        droplet_ids: ids,
        no_ssh: true,
        ..Scope::default()
    }
}

/// A full audit of `sim`'s account, with `store` (or none).
async fn full_audit(sim: &Sim, store: Option<&Store>) -> Result<Report, AuditError> {
    let scope = no_ssh(None);
    audit(
        &client(sim),
        &policy(),
        store,
        &scope,
        "cli",
        &SshAccess::default(),
    )
    .await
}

/// A full audit that leaves the cache alone (no store): the reference.
async fn reference(sim: &Sim) -> Report {
    full_audit(sim, None).await.expect("full audit")
}

/// A simulator serving [`spec`]`(droplets)`.
async fn sim_of(droplets: usize) -> Sim {
    Sim::start_local(&token(), generate(&spec(droplets)))
        .await
        .expect("sim")
}

/// A re-check of one Droplet over the store's cached full read.
async fn recheck(sim: &Sim, store: &Store, id: u64) -> Report {
    let scope = no_ssh(Some([id].into()));
    audit(
        &client(sim),
        &policy(),
        Some(store),
        &scope,
        "cli",
        &SshAccess::default(),
    )
    .await
    .expect("re-check")
}

/// What a finding says, minus what a re-check adds on purpose (the age of the account's keys).
fn said(f: &Finding) -> (String, String, String, String, String) {
    let detail = match f.detail.split_once(" (as the full read of") {
        Some((d, _)) => d.to_string(),
        None => f.detail.clone(),
    };
    (
        f.rule.clone(),
        f.resource.kind.as_str().to_string(),
        f.resource.id.clone(),
        format!("{:?}", f.status),
        detail,
    )
}

/// The reference's findings about the re-check's resources: the Droplet, the firewalls the
/// re-check reported on, the account.
fn matching(
    full: &Report,
    recheck: &Report,
    id: u64,
) -> Vec<(String, String, String, String, String)> {
    let firewalls: BTreeSet<&str> = recheck
        .findings
        .iter()
        .filter(|f| f.resource.kind == ResourceType::Firewall)
        .map(|f| f.resource.id.as_str())
        .collect();
    full.findings
        .iter()
        .filter(|f| match f.resource.kind {
            ResourceType::Droplet => f.resource.id == id.to_string(),
            ResourceType::Firewall => firewalls.contains(f.resource.id.as_str()),
            _ => true,
        })
        .map(said)
        .collect()
}

async fn assert_same(sim: &Sim, store: &Store, id: u64, when: &str) {
    let full = reference(sim).await;
    let r = recheck(sim, store, id).await;
    assert!(
        r.run.built_on_full_read.is_some(),
        "{when}: Droplet {id} was re-checked over the cached full read"
    );
    let got: Vec<_> = r.findings.iter().map(said).collect();
    assert_eq!(got, matching(&full, &r, id), "{when}: Droplet {id}");
}

fn spec(droplets: usize) -> FleetSpec {
    FleetSpec {
        every_defect: true,
        gpu_every: 7,
        defect_rate: 0.8,
        ..FleetSpec::new(droplets, 3)
    }
}

async fn cached(sim: &Sim) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("state");
    let store = Store::Dir(DirStore::new(dir.path()));
    let full = full_audit(sim, Some(&store)).await.expect("full audit");
    assert!(full.run.built_on_full_read.is_none());
    assert!(
        dir.path().join("cache/snapshot.json").is_file(),
        "the full read is cached"
    );
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_droplet_rechecked_alone_gets_the_full_audits_findings() {
    // No account keys, so that `ssh.no-account-keys` is among the rules compared.
    let sim = start(generate(&FleetSpec {
        ssh_keys: false,
        ..spec(80)
    }))
    .await;
    let (_dir, store) = cached(&sim).await;
    let full = reference(&sim).await;
    let rules: BTreeSet<&str> = full.findings.iter().map(|f| f.rule.as_str()).collect();
    for r in shared::rules::RULES.iter().filter(|r| !r.needs_ssh) {
        assert!(rules.contains(r.id), "the fleet shows {}: {rules:?}", r.id);
    }
    let ids: Vec<u64> = sim.with_state(|st| st.droplets.keys().copied().collect());
    for id in ids {
        assert_same(&sim, &store, id, "unchanged account").await;
    }
    sim.shutdown().await;
}

/// The first Droplet the full audit finds with `rule` failing.
fn failing(full: &Report, rule: &str) -> u64 {
    full.findings
        .iter()
        .find(|f| f.rule == rule && f.resource.kind == ResourceType::Droplet)
        .and_then(|f| f.resource.id.parse().ok())
        .unwrap_or_else(|| panic!("no Droplet fails {rule}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rechecks_see_changes_made_since_the_cached_full_read() {
    let sim = start(generate(&spec(80))).await;
    let (_dir, store) = cached(&sim).await;
    let full = reference(&sim).await;
    let c = client(&sim);

    // A new firewall, attached by a tag the uncovered Droplet already carries.
    let bare = failing(&full, "firewall.missing");
    let tag = format!("team-{bare}");
    c.create_tag(&tag).await.expect("tag");
    c.tag_droplets(&tag, &[bare]).await.expect("tagged");
    assert_same(&sim, &store, bare, "after a tag was added").await;
    let fw = FirewallRequest {
        name: "late-web".into(),
        inbound_rules: vec![InboundRule::allow(
            Protocol::Tcp,
            "22",
            Targets {
                addresses: vec!["0.0.0.0/0".into()],
                ..Targets::default()
            },
        )],
        outbound_rules: vec![],
        droplet_ids: vec![],
        tags: vec![tag.clone()],
    };
    c.create_firewall(&fw).await.expect("firewall");
    assert_same(&sim, &store, bare, "after a firewall attached by tag").await;
    let r = recheck(&sim, &store, bare).await;
    assert!(
        r.findings.iter().any(|f| f.rule == "firewall.ssh-open"),
        "the new firewall's world-open SSH is seen: {:?}",
        r.findings
    );

    // An environment tag that mixes the Droplet's VPC.
    let clean = failing(&full, "vpc.mixed-environments");
    c.create_tag("env:sandbox").await.expect("tag");
    c.tag_droplets("env:sandbox", &[clean])
        .await
        .expect("tagged");
    assert_same(&sim, &store, clean, "after an environment tag was added").await;

    // A Droplet moved to another VPC (the simulator's state, as a migration would leave it).
    let moved = failing(&full, "vpc.default");
    let target = sim.with_state(|st| {
        let vpc = st
            .vpcs
            .iter()
            .find(|v| !v.default)
            .map(|v| v.id.clone())
            .expect("a VPC");
        st.droplets.get_mut(&moved).expect("droplet").vpc_uuid = Some(vpc.clone());
        vpc
    });
    assert_same(&sim, &store, moved, &format!("after a move to {target}")).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_costs_the_same_requests_whatever_the_account_size() {
    let mut costs = Vec::new();
    for size in [100, 1200] {
        let sim = start(generate(&spec(size))).await;
        let (_dir, store) = cached(&sim).await;
        let id = sim.with_state(|st| st.droplets.keys().nth(size / 2).copied().expect("id"));
        sim.clear_requests();
        let r = recheck(&sim, &store, id).await;
        let paths: Vec<String> = sim
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(r.run.api_requests as usize, paths.len());
        assert!(paths.len() <= 6, "{size} Droplets: {paths:?}");
        for p in &paths {
            assert!(
                p != "GET /v2/droplets" && p != "GET /v2/account/keys" && p != "GET /v2/firewalls",
                "{size} Droplets: a re-check never lists the account: {paths:?}"
            );
        }
        costs.push(paths.len());
        sim.shutdown().await;
    }
    assert_eq!(
        costs[0], costs[1],
        "the cost does not grow with the account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cache_means_a_full_read() {
    let sim = start(generate(&spec(30))).await;
    let (dir, store) = cached(&sim).await;
    let path = dir.path().join("cache/snapshot.json");
    let mut cache: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("cache")).expect("json");
    let old = chrono::Utc::now() - chrono::Duration::minutes(61);
    cache["taken_at"] = Value::String(old.to_rfc3339());
    std::fs::write(&path, serde_json::to_vec(&cache).expect("json")).expect("write");
    sim.clear_requests();
    let id = sim.with_state(|st| st.droplets.keys().next().copied().expect("id"));
    let r = recheck(&sim, &store, id).await;
    assert!(
        r.run.built_on_full_read.is_none(),
        "past 1h the cache is not used"
    );
    assert!(
        sim.requests()
            .iter()
            .any(|q| q.path == "/v2/droplets" && q.query.contains("page=1")),
        "the whole account is read"
    );
    // ... and that read is cached again: the next re-check builds on it.
    let again = recheck(&sim, &store, id).await;
    assert!(again.run.built_on_full_read.is_some());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_says_how_old_the_account_keys_are() {
    let sim = start(generate(&FleetSpec {
        ssh_keys: false,
        ..spec(10)
    }))
    .await;
    let (_dir, store) = cached(&sim).await;
    sim.clear_requests();
    let id = sim.with_state(|st| st.droplets.keys().next().copied().expect("id"));
    let r = recheck(&sim, &store, id).await;
    let keys = r
        .findings
        .iter()
        .find(|f| f.rule == "ssh.no-account-keys")
        .expect("no-account-keys finding");
    let at = r
        .run
        .built_on_full_read
        .clone()
        .expect("built on the cache");
    assert!(
        keys.detail
            .contains(&format!("as the full read of {at} found them")),
        "{}",
        keys.detail
    );
    assert!(!sim.requests().iter().any(|q| q.path == "/v2/account/keys"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rechecks_that_attach_the_baseline_create_it_once_within_their_budget() {
    let sim = start(generate(&FleetSpec {
        extra_firewalls: 250,
        ..spec(500)
    }))
    .await;
    let (_dir, store) = cached(&sim).await;
    let full = reference(&sim).await;
    let first = failing(&full, "firewall.missing");
    let second = sim
        .with_state(|st| st.uncover_one(first))
        .expect("a Droplet to uncover");
    let policy = Policy::parse(
        &format!("{FLEET_POLICY}\n[rules.\"firewall.missing\"]\nmode = \"enforce\"\n"),
        "p.toml",
    )
    .expect("policy");
    let ssh = SshAccess::default();
    for id in [first, second] {
        sim.clear_requests();
        let opts = shared::remediate::RemediateOptions {
            scope: no_ssh(Some([id].into())),
            dry_run: false,
            trigger: "cli",
            ssh: &ssh,
            now: None,
            ignore_grace: false,
            started: None,
        };
        let r = shared::remediate::remediate(&client(&sim), &policy, &store, opts)
            .await
            .expect("remediate");
        let sent: Vec<String> = sim
            .requests()
            .iter()
            .map(|q| format!("{} {}", q.method, q.path))
            .collect();
        assert!(sent.len() <= 16, "Droplet {id}: {sent:?}");
        assert!(
            !sent.iter().any(|s| s.starts_with("DELETE")),
            "no duplicate made and removed: {sent:?}"
        );
        assert!(
            r.changes.iter().all(|c| c.result == "ok"),
            "{:?}",
            r.changes
        );
        assert!(
            !r.findings.iter().any(|f| f.rule == "firewall.missing"),
            "Droplet {id} is covered: {:?}",
            r.findings
        );
    }
    let baselines = sim.with_state(|st| {
        st.firewalls
            .iter()
            .filter(|f| f.name == "dropletguard-baseline")
            .count()
    });
    assert_eq!(
        baselines, 1,
        "the second re-check found the first one's baseline"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_reads_each_page_once_and_a_tag_event_what_it_touches() {
    use shared::service::{handle_webhook, scheduled_run, Deps};
    use shared::webhook::{sign, Secret};
    let sim = start(generate(&FleetSpec {
        extra_firewalls: 300,
        ..FleetSpec::new(1_000, 4)
    }))
    .await;
    let dir = tempfile::tempdir().expect("state");
    let mut deps = Deps::new(
        client(&sim),
        Store::Dir(DirStore::new(dir.path())),
        policy(),
    );
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    deps.webhook_secrets = vec![Secret::parse(secret).expect("secret")];
    let report = scheduled_run(&deps, "schedule").await.expect("run");
    let log = sim.requests();
    let asked: BTreeSet<(String, String, String)> = log
        .iter()
        .map(|q| (q.method.clone(), q.path.clone(), q.query.clone()))
        .collect();
    assert_eq!(
        asked.len(),
        log.len(),
        "each page once (the HTML report reads nothing more): {log:?}"
    );
    assert_eq!(report.run.api_requests as usize, log.len());

    let ids: Vec<u64> = sim.with_state(|st| st.droplets.keys().copied().take(50).collect());
    let c = client(&sim);
    c.create_tag("batch-50").await.expect("tag");
    c.tag_droplets("batch-50", &ids).await.expect("tagged");
    sim.clear_requests();
    let body = r#"{"type":"tag.changed","data":{"tag":"batch-50"}}"#;
    let now = chrono::Utc::now().timestamp();
    let sig = sign(
        &Secret::parse(secret).expect("secret"),
        "msg_tag50",
        now,
        body.as_bytes(),
    );
    let headers = vec![
        ("webhook-id".to_string(), "msg_tag50".to_string()),
        ("webhook-timestamp".to_string(), now.to_string()),
        ("webhook-signature".to_string(), sig),
    ];
    let r = handle_webhook(&deps, &headers, body.as_bytes(), now).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["summary"]["droplets"], 50);
    let reads: Vec<String> = sim
        .requests()
        .iter()
        .filter(|q| q.method == "GET")
        .map(|q| format!("{}?{}", q.path, q.query))
        .collect();
    assert!(reads.len() <= 12, "{reads:?}");
    assert!(
        !reads.iter().any(|q| q.starts_with("/v2/droplets/")),
        "the tag's list already gave the Droplets: {reads:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rechecks_over_the_full_read_in_its_state_directory() {
    let sim = start(generate(&spec(40))).await;
    let state = tempfile::tempdir().expect("state");
    let dir = state.path().to_str().expect("utf-8");
    let env = [("DROPLETGUARD_STATE_DIR", dir)];
    let policy = tempfile::NamedTempFile::new().expect("policy");
    std::fs::write(policy.path(), FLEET_POLICY).expect("write");
    let p = policy.path().to_str().expect("utf-8");
    let full = cli_env(&sim.url(), &sim.token, &["audit", "--policy", p], &env).await;
    assert_eq!(full.code, 1, "{}", full.stderr);
    assert!(!full.stdout.contains("a re-check over"), "{}", full.stdout);
    let id = sim
        .with_state(|st| st.droplets.keys().next().copied())
        .expect("id")
        .to_string();
    let args = ["audit", "--policy", p, "--droplet", &id];
    let one = cli_env(&sim.url(), &sim.token, &args, &env).await;
    assert!(
        one.stdout
            .contains("3 API requests (a re-check over the full read of 20"),
        "{}",
        one.stdout
    );
    sim.shutdown().await;
}

/// The pages of the regular Droplet list (`GET /v2/droplets` without `type` or `tag_name`)
/// the simulator was asked for.
fn droplet_pages(sim: &Sim) -> BTreeSet<u64> {
    sim.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/droplets")
        .filter(|r| !r.query.contains("type=") && !r.query.contains("tag_name="))
        .filter_map(|r| {
            r.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("page="))
                .and_then(|p| p.parse().ok())
        })
        .collect()
}

/// Page 1 of the regular Droplet list answers 403: a read that waits for it asks for no
/// other page of that list.
fn first_droplet_page_refused(sim: &Sim) {
    let mut query = std::collections::BTreeMap::new();
    query.insert("page".to_string(), Some("1".to_string()));
    query.insert("type".to_string(), None);
    sim.set_faults(sim::Faults {
        overrides: vec![sim::Override {
            method: "GET".into(),
            path: "/v2/droplets".into(),
            query,
            status: 403,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"id":"forbidden","message":"no"}"#.into(),
            streamed: None,
        }],
        ..Default::default()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_after_another_asks_for_every_page_with_the_first() {
    let sim = sim_of(1_000).await;
    let regular = sim.with_state(|st| st.droplets.values().filter(|d| !d.gpu).count()) as u64;
    let pages: BTreeSet<u64> = (1..=regular.div_ceil(200)).collect();
    assert!(
        pages.len() >= 4,
        "a list of several pages: {regular} Droplets"
    );

    // Without the last read's sizes, the other pages wait for page 1's meta.total.
    first_droplet_page_refused(&sim);
    let cold = tempfile::tempdir().expect("state");
    let cold = Store::Dir(DirStore::new(cold.path()));
    let scope = no_ssh(None);
    let (c, p, a) = (client(&sim), policy(), SshAccess::default());
    assert!(audit(&c, &p, Some(&cold), &scope, "cli", &a).await.is_err());
    assert_eq!(
        droplet_pages(&sim),
        [1].into(),
        "a first read waits for page 1"
    );

    // After a complete full read, the next asks for them all at once with page 1.
    sim.set_faults(sim::Faults::default());
    let (dir, store) = cached(&sim).await;
    let sizes: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("cache/list-sizes.json")).expect("sizes written"),
    )
    .expect("JSON");
    assert_eq!(sizes["droplets"], regular, "{sizes}");
    first_droplet_page_refused(&sim);
    sim.clear_requests();
    assert!(full_audit(&sim, Some(&store)).await.is_err());
    assert_eq!(
        droplet_pages(&sim),
        pages,
        "every page went out with page 1"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_over_sizes_that_changed_finds_what_a_first_read_does() {
    let sim = sim_of(1_000).await;
    // The sizes are written by a read of a smaller account; then it grows back, then shrinks.
    let away: Vec<_> = sim.with_state(|st| {
        let ids: Vec<u64> = st.droplets.keys().copied().take(600).collect();
        ids.iter().filter_map(|id| st.droplets.remove(id)).collect()
    });
    let (_dir, store) = cached(&sim).await;
    // What a full read over the store's sizes finds, and of how many Droplets.
    async fn full_read(
        sim: &Sim,
        store: &Store,
    ) -> (Vec<(String, String, String, String, String)>, usize) {
        let r = full_audit(sim, Some(store)).await.expect("full audit");
        (r.findings.iter().map(said).collect(), r.summary.droplets)
    }
    sim.with_state(|st| st.droplets.extend(away.iter().map(|d| (d.id, d.clone()))));
    let grown = reference(&sim).await;
    let got = full_read(&sim, &store).await;
    assert_eq!(
        got.1, 1_000,
        "the pages past the last read's sizes were read"
    );
    assert_eq!(
        got.0,
        grown.findings.iter().map(said).collect::<Vec<_>>(),
        "grown"
    );

    sim.with_state(|st| {
        st.droplets
            .retain(|id, _| !away.iter().any(|d| d.id == *id))
    });
    let shrunk = reference(&sim).await;
    sim.clear_requests();
    let got = full_read(&sim, &store).await;
    assert_eq!(got.1, 400);
    assert_eq!(
        got.0,
        shrunk.findings.iter().map(said).collect::<Vec<_>>(),
        "shrunk"
    );
    let asked = droplet_pages(&sim).len() as u64;
    let needed = shrunk.summary.droplets as u64;
    assert!(
        asked <= 1_000u64.div_ceil(200),
        "at most the pages of the last read: {asked}"
    );
    assert!(asked >= needed.div_ceil(200), "{asked}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_far_larger_than_the_account_cost_a_bounded_few_requests() {
    let sim = sim_of(1_000).await;
    let (dir, store) = cached(&sim).await;
    // A store that says the account had 100,000 regular Droplets (500 pages): wrong, or
    // written by someone else.
    std::fs::write(
        dir.path().join("cache/list-sizes.json"),
        r#"{"droplets":100000,"gpus":null,"firewalls":3,"vpcs":1,"ssh_keys":1}"#,
    )
    .expect("sizes");
    let full = reference(&sim).await;
    sim.clear_requests();
    let r = full_audit(&sim, Some(&store)).await.expect("full audit");
    let asked = droplet_pages(&sim).len();
    assert!(
        asked <= 52,
        "at most page_concurrency (50) pages past the end, not 500: {asked}"
    );
    let said_all = |r: &Report| r.findings.iter().map(said).collect::<Vec<_>>();
    assert_eq!(said_all(&r), said_all(&full));
    sim.shutdown().await;
}
