//! `dropletguard remediate` against the simulator: plan, cap, idempotence, exemptions, ledger.

use serde_json::Value;
use sim::{fleet, Faults, FleetSpec, LoggedRequest, SimDroplet, State};

use crate::fixtures;
use crate::helpers::*;

pub const ENFORCE: &str = r#"
[management]
cidrs = ["203.0.113.0/24"]

[remediation]
mode = "enforce"
max_changes_per_run = 100

[ssh]
probe = false
"#;

fn writes(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter().filter(|r| r.method != "GET").collect()
}

/// The known fleet plus `n` Droplets without any firewall.
pub fn with_orphans(n: u64) -> State {
    let mut st = fixtures::known();
    for i in 0..n {
        let id = 100 + i;
        st.droplets.insert(
            id,
            SimDroplet {
                id,
                name: format!("orphan-{i}"),
                status: "active".into(),
                tags: vec!["env:prod".into(), "tenant:acme".into()],
                vpc_uuid: Some(fixtures::PROD_VPC.into()),
                region: "nyc3".into(),
                size_slug: "s-1vcpu-2gb".into(),
                public_ipv4: format!("127.0.3.{}", 100 + i),
                private_ipv4: format!("10.10.1.{i}"),
                ipv6: None,
                gpu: false,
                created_at: "2025-03-01T10:00:00Z".into(),
            },
        );
    }
    st
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub policy: tempfile::NamedTempFile,
}

impl Env {
    pub fn new(policy: &str) -> Self {
        Env {
            dir: tempfile::tempdir().expect("state dir"),
            policy: policy_file(policy),
        }
    }

    pub fn state_dir(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn policy(&self) -> &str {
        self.policy.path().to_str().expect("utf-8 path")
    }

    pub async fn run(&self, sim: &sim::Sim, args: &[&str]) -> Run {
        self.run_env(sim, args, &[]).await
    }

    pub async fn run_env(&self, sim: &sim::Sim, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--policy", self.policy()]);
        let mut vars = vec![("DROPLETGUARD_STATE_DIR", self.state_dir())];
        vars.extend_from_slice(env);
        cli_env(&sim.url(), &sim.token, &all, &vars).await
    }

    /// The ledger's change records, read from the state directory.
    pub fn ledger(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let root = self.dir.path().join("ledger");
        let Ok(days) = std::fs::read_dir(&root) else {
            return out;
        };
        let mut files: Vec<_> = days
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("ledger file");
            out.push(serde_json::from_str(&text).expect("ledger JSON"));
        }
        out
    }
}

fn baseline_count(sim: &sim::Sim) -> usize {
    sim.with_state(|s| {
        s.firewalls
            .iter()
            .filter(|f| f.name == "dropletguard-baseline")
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_no_write_and_shows_the_plan() {
    let sim = start(with_orphans(3)).await;
    let env = Env::new(ENFORCE);
    let run = env
        .run(&sim, &["remediate", "--dry-run", "--format", "json"])
        .await;
    assert_eq!(
        run.code, 1,
        "dry-run exits as the audit would: {}",
        run.stderr
    );
    assert!(
        writes(&sim.requests()).is_empty(),
        "no write request at all"
    );
    let report = run.json();
    assert_eq!(report["run"]["dry_run"], true);
    let missing: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "firewall.missing")
        .collect();
    assert_eq!(missing.len(), 4);
    for f in missing {
        let planned = f["remediation"]["planned"].as_str().expect("a plan");
        assert!(
            planned.contains("dropletguard-baseline") && planned.contains("exposed before"),
            "{planned}"
        );
        assert_eq!(f["remediation"]["applied"], false);
    }
    assert!(env.ledger().is_empty());
    // The table shows the plan too.
    let table = env.run(&sim, &["remediate", "--dry-run"]).await;
    assert!(
        table
            .stdout
            .contains("plan: attach firewall dropletguard-baseline"),
        "{}",
        table.stdout
    );
    assert!(writes(&sim.requests()).is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_fixes_missing_firewalls_with_one_baseline() {
    let sim = start(with_orphans(12)).await;
    let env = Env::new(ENFORCE);
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 1, "other findings remain: {}", run.stderr);
    let report = run.json();
    assert!(
        !report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["rule"] == "firewall.missing"),
        "no firewall.missing left"
    );
    assert_eq!(baseline_count(&sim), 1);
    // Attached by tag, never by id; SSH only from the management range.
    let fw = sim
        .with_state(|s| {
            s.firewalls
                .iter()
                .find(|f| f.name == "dropletguard-baseline")
                .cloned()
        })
        .expect("baseline");
    assert!(fw.droplet_ids.is_empty());
    assert_eq!(fw.tags, vec!["dropletguard-baseline".to_string()]);
    let ssh = fw
        .inbound_rules
        .iter()
        .find(|r| r.ports == "22")
        .expect("ssh rule");
    assert_eq!(ssh.sources.addresses, vec!["203.0.113.0/24".to_string()]);
    // A fresh audit agrees.
    let audit = env.run(&sim, &["audit", "--format", "json"]).await;
    let keys = finding_keys(&audit.json());
    assert!(
        !keys.iter().any(|(r, _, _)| r == "firewall.missing"),
        "{keys:?}"
    );
    // Every applied change is in the ledger, with why.
    let ledger = env.ledger();
    let changes = report["changes"].as_array().expect("changes");
    assert_eq!(ledger.len(), changes.len());
    assert_eq!(report["summary"]["changes"], changes.len());
    let attached: Vec<&Value> = ledger
        .iter()
        .filter(|c| c["action"] == "attach-baseline-firewall")
        .collect();
    assert_eq!(attached.len(), 13, "12 orphans and Droplet 3");
    for c in &ledger {
        assert_eq!(c["result"], "ok");
        assert_eq!(c["trigger"], "cli");
        assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    // A second run changes nothing more.
    sim.clear_requests();
    let again = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(again.json()["changes"].as_array().map(Vec::len), Some(0));
    assert!(
        writes(&sim.requests()).is_empty(),
        "nothing left to do, nothing written"
    );
    assert_eq!(baseline_count(&sim), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_limits_how_many_resources_change() {
    let sim = start(with_orphans(10)).await;
    let env = Env::new(&ENFORCE.replace("max_changes_per_run = 100", "max_changes_per_run = 3"));
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(report["run"]["cap_reached"], true);
    let tagged: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/tags/dropletguard-baseline/resources")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(tagged.len(), 1, "one tag request");
    let covered = sim.with_state(|s| {
        s.droplets
            .values()
            .filter(|d| d.tags.iter().any(|t| t == "dropletguard-baseline"))
            .count()
    });
    assert!(covered <= 3, "{covered} Droplets changed");
    assert_eq!(
        covered, 2,
        "the baseline firewall counts as one of the three resources"
    );
    let not_applied = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "firewall.missing")
        .filter(|f| {
            f["remediation"]["result"]
                .as_str()
                .unwrap_or_default()
                .contains("max_changes_per_run (3)")
        })
        .count();
    assert_eq!(
        not_applied, 9,
        "the rest are reported as planned, not applied"
    );
    let table = env.run(&sim, &["remediate", "--dry-run"]).await;
    assert!(
        table.stdout.contains("max_changes_per_run"),
        "{}",
        table.stdout
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_commits_then_fails_leaves_one_firewall() {
    let sim = start(with_orphans(2)).await;
    sim.set_faults(Faults {
        create_commits_then_fails: true,
        ..Default::default()
    });
    let env = Env::new(ENFORCE);
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let creates = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/firewalls")
        .count();
    assert_eq!(creates, 1, "not created twice");
    assert_eq!(baseline_count(&sim), 1);
    let report = run.json();
    assert!(!report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["rule"] == "firewall.missing"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_converge() {
    let sim = start(with_orphans(6)).await;
    sim.set_faults(Faults {
        latency_ms: 30,
        ..Default::default()
    });
    let a = Env::new(ENFORCE);
    let b = Env::new(ENFORCE);
    let (ra, rb) = tokio::join!(
        a.run(&sim, &["remediate", "--format", "json"]),
        b.run(&sim, &["remediate", "--format", "json"])
    );
    assert!(ra.code == 1 && rb.code == 1, "{}\n{}", ra.stderr, rb.stderr);
    assert_eq!(baseline_count(&sim), 1, "one baseline firewall");
    // Each run's record says what that run itself did: at most one claims to have created the
    // surviving firewall; one that created another says it removed it as a duplicate, or that
    // the other run removes it.
    let survivor = sim.with_state(|s| {
        s.firewalls
            .iter()
            .find(|f| f.name == "dropletguard-baseline")
            .map(|f| f.id.clone())
            .unwrap_or_default()
    });
    let creates: Vec<Value> = a
        .ledger()
        .into_iter()
        .chain(b.ledger())
        .filter(|c| c["action"] == "create-baseline-firewall")
        .collect();
    let claims_survivor = creates
        .iter()
        .filter(|c| c["after"]["created"] == survivor.as_str())
        .count();
    assert!(claims_survivor <= 1, "{creates:?}");
    for c in &creates {
        let did = c["after"]["did"].as_str().unwrap_or_default();
        match c["after"]["created"].as_str() {
            Some(id) if id == survivor => {
                assert_eq!(did, format!("created {id}"));
                assert_eq!(c["resource"]["id"], id);
            }
            Some(id) => {
                assert!(did.starts_with(&format!("created {id}")), "{did}");
                assert!(did.contains(&survivor), "{did}");
                assert_eq!(
                    c["resource"]["id"], id,
                    "the record is about the firewall this run made"
                );
            }
            None => assert_eq!(did, format!("found {survivor}")),
        }
    }
    let tags = sim.with_state(|s| {
        s.tags
            .iter()
            .filter(|t| *t == "dropletguard-baseline")
            .count()
    });
    assert_eq!(tags, 1, "one tag");
    sim.set_faults(Faults::default());
    let audit = a.run(&sim, &["audit", "--format", "json"]).await;
    assert!(!finding_keys(&audit.json())
        .iter()
        .any(|(r, _, _)| r == "firewall.missing"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_droplets_are_never_written_to() {
    let mut st = with_orphans(2);
    // Droplet 100 (no firewall) and Droplet 2 (behind db-fw, which narrows) are exempt.
    for id in [100, 2] {
        st.droplets
            .get_mut(&id)
            .expect("droplet")
            .tags
            .push("dropletguard-exempt".into());
    }
    st.tags.insert("dropletguard-exempt".into());
    let sim = start(st).await;
    let env = Env::new(ENFORCE);
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 1);
    let report = run.json();
    let log = sim.requests();
    let db_fw = "dd44dd44-0000-4000-8000-000000000004";
    assert!(
        !log.iter()
            .any(|r| r.method != "GET" && r.path.contains(db_fw)),
        "db-fw covers an exempt Droplet"
    );
    let d100 = sim.with_state(|s| s.droplets[&100].tags.clone());
    assert!(!d100.contains(&"dropletguard-baseline".to_string()));
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "firewall.missing" && f["resource"]["id"] == "100")
        .expect("still reported");
    assert!(f["remediation"]["result"]
        .as_str()
        .unwrap_or_default()
        .contains("exempt"));
    // The non-exempt orphan was fixed.
    let d101 = sim.with_state(|s| s.droplets[&101].tags.clone());
    assert!(d101.contains(&"dropletguard-baseline".to_string()));
    for c in env.ledger() {
        assert!(
            c["resource"]["id"] != "100"
                && c["resource"]["id"] != "2"
                && c["resource"]["id"] != db_fw
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offending_rules_are_narrowed_keeping_management_access() {
    let sim = start(fixtures::known()).await;
    let env = Env::new(ENFORCE);
    let run = env
        .run(&sim, &["remediate", "--format", "json", "--droplet", "2"])
        .await;
    assert_eq!(
        run.code, 0,
        "Droplet 2 had only fixable findings: {}",
        run.stdout
    );
    let fw = sim
        .with_state(|s| s.firewalls.iter().find(|f| f.name == "db-fw").cloned())
        .expect("db-fw");
    let texts: Vec<(String, Vec<String>)> = fw
        .inbound_rules
        .iter()
        .map(|r| (r.ports.clone(), r.sources.addresses.clone()))
        .collect();
    assert!(
        texts.contains(&("22".into(), vec!["203.0.113.0/24".into()])),
        "{texts:?}"
    );
    assert!(
        texts.contains(&("5432".into(), vec!["203.0.113.0/24".into()])),
        "{texts:?}"
    );
    assert_eq!(texts.len(), 2, "old rules removed: {texts:?}");
    // Rules were changed through the rules endpoints, added before removed, never a full PUT.
    let log = sim.requests();
    let w: Vec<(String, String)> = writes(&log)
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert!(!w.iter().any(|(m, _)| m == "PUT"));
    let first_add = w
        .iter()
        .position(|(m, p)| m == "POST" && p.ends_with("/rules"))
        .expect("add");
    let first_del = w
        .iter()
        .position(|(m, p)| m == "DELETE" && p.ends_with("/rules"))
        .expect("remove");
    assert!(first_add < first_del, "{w:?}");
    let ledger = env.ledger();
    let narrow: Vec<&Value> = ledger
        .iter()
        .filter(|c| c["action"] == "narrow-firewall-rules")
        .collect();
    assert_eq!(narrow.len(), 2);
    assert!(narrow
        .iter()
        .any(|c| c["before"]["rule"]["sources"]["addresses"][0] == "0.0.0.0/0"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_firewall_is_not_narrowed_for_part_of_its_droplets() {
    // ssh-anywhere covers several Droplets by tag; a run over one of them must not change it.
    let sim = start(fleet::generate(&FleetSpec::new(120, 4))).await;
    let (fw_id, targets): (String, Vec<u64>) = sim.with_state(|s| {
        let fw = s
            .firewalls
            .iter()
            .find(|f| f.name == "ssh-anywhere")
            .expect("fw")
            .clone();
        let ids = s
            .droplets
            .values()
            .filter(|d| d.tags.contains(&"bad:ssh-world".to_string()))
            .map(|d| d.id)
            .collect();
        (fw.id, ids)
    });
    assert!(
        targets.len() >= 2,
        "the fleet has several ssh-world Droplets"
    );
    let env = Env::new(ENFORCE);
    let one = targets[0].to_string();
    let run = env
        .run(&sim, &["remediate", "--format", "json", "--droplet", &one])
        .await;
    assert_eq!(run.code, 1);
    assert!(!sim
        .requests()
        .iter()
        .any(|r| r.method != "GET" && r.path.contains(&fw_id)));
    let f = run.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "firewall.ssh-open")
        .cloned()
        .expect("still failing");
    assert!(
        f["remediation"]["result"]
            .as_str()
            .unwrap_or_default()
            .contains("outside this run"),
        "{f}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_write_stops_the_run_before_any_change() {
    let sim = start(with_orphans(2)).await;
    let file = tempfile::NamedTempFile::new().expect("file");
    let policy = policy_file(ENFORCE);
    let run = cli_env(
        &sim.url(),
        &sim.token,
        &[
            "remediate",
            "--policy",
            policy.path().to_str().expect("utf-8"),
        ],
        &[(
            "DROPLETGUARD_STATE_DIR",
            file.path().to_str().expect("utf-8"),
        )],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("state store"), "{}", run.stderr);
    assert!(
        writes(&sim.requests()).is_empty(),
        "no record saved, no change made"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_management_ranges_nothing_risks_a_lockout() {
    let sim = start(with_orphans(1)).await;
    let env = Env::new("[remediation]\nmode = \"enforce\"\n[ssh]\nprobe = false\n");
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 1);
    assert!(writes(&sim.requests()).is_empty());
    let report = run.json();
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "firewall.missing")
        .expect("reported");
    assert!(f["remediation"]["result"]
        .as_str()
        .unwrap_or_default()
        .contains("management.cidrs is empty"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_cannot_take_records_stops_the_run_before_the_first_change() {
    // A case of the project's hostile-store cases: `<state>/ledger` unwritable while the rest of the store works.
    let sim = start(with_orphans(2)).await;
    let env = Env::new(ENFORCE);
    std::fs::write(env.dir.path().join("ledger"), b"not a directory").expect("block ledger/");
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("state store"), "{}", run.stderr);
    assert!(
        writes(&sim.requests())
            .iter()
            .all(|r| r.path == "/v2/tags" && r.method == "POST")
            && baseline_count(&sim) == 0,
        "no change without its record: {:?}",
        writes(&sim.requests())
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_left_by_a_stopped_run_is_reconciled_and_reported() {
    let sim = start(with_orphans(1)).await;
    let env = Env::new(ENFORCE);
    // What a run that stopped between announcing a change and recording it leaves behind.
    let change = serde_json::json!({
        "at": "2026-11-30T10:00:00Z", "resource": {"type": "droplet", "id": "100"},
        "action": "attach-baseline-firewall", "before": null, "after": null, "result": "intended",
        "rule": "firewall.missing", "reason": "attach", "trigger": "schedule", "run_id": "stopped-run"
    });
    let ledger_key = "ledger/2026-11-30/20261130T100000.000Z-stopped-run-0001.json";
    let intent = serde_json::json!({"ledger_key": ledger_key, "intent_key": "intents/stopped-run-0001.json", "change": change});
    for (key, body) in [
        (ledger_key, &change),
        ("intents/stopped-run-0001.json", &intent),
    ] {
        let path = env.dir.path().join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, body.to_string()).expect("write");
    }
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert!(run.code <= 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let interrupted: Vec<_> = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["run_id"] == "stopped-run")
        .collect();
    assert_eq!(interrupted.len(), 1, "{}", report["changes"]);
    assert!(interrupted[0]["result"]
        .as_str()
        .unwrap_or_default()
        .starts_with("interrupted"));
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join(ledger_key)).expect("record"),
    )
    .expect("json");
    assert!(
        stored["result"]
            .as_str()
            .unwrap_or_default()
            .starts_with("interrupted"),
        "{stored}"
    );
    assert_eq!(
        std::fs::read_dir(env.dir.path().join("intents"))
            .expect("intents")
            .count(),
        0,
        "no intent left"
    );
    // This run's own changes completed their intents.
    assert!(env.ledger().iter().all(|c| c["result"] != "intended"));
    sim.shutdown().await;
}

/// Runs that overlap on one state store (the schedule, webhooks, the CLI) never call each
/// other's changes interrupted: each ledger record says what its own run did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_on_one_store_never_call_a_live_change_interrupted() {
    for (runs, trials) in [(2usize, 20usize), (3, 20), (8, 20)] {
        for trial in 0..trials {
            let sim = start(with_orphans(6)).await;
            sim.set_faults(Faults {
                latency_ms: if trial % 2 == 0 { 20 } else { 0 },
                ..Default::default()
            });
            let env = Env::new(ENFORCE);
            let all = futures::future::join_all(
                (0..runs).map(|_| env.run(&sim, &["remediate", "--format", "json"])),
            )
            .await;
            for r in &all {
                assert!(r.code <= 1, "{}{}", r.stdout, r.stderr);
                let changes = r.json()["changes"].clone();
                let interrupted: Vec<&Value> = changes
                    .as_array()
                    .expect("changes")
                    .iter()
                    .filter(|c| {
                        c["result"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("interrupted")
                    })
                    .collect();
                assert!(
                    interrupted.is_empty(),
                    "{runs} runs, trial {trial}: {interrupted:?}"
                );
            }
            for record in env.ledger() {
                let result = record["result"].as_str().unwrap_or_default();
                assert!(
                    result != "intended" && !result.starts_with("interrupted"),
                    "{runs} runs, trial {trial}: {record}"
                );
            }
            assert_eq!(baseline_count(&sim), 1, "one baseline firewall");
            sim.shutdown().await;
        }
    }
}

/// An intent whose lease still runs is a live run's and is left alone; one whose lease ran
/// out is called interrupted, and the record says who decided it and when the lease ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_intent_whose_lease_ran_out_is_interrupted() {
    let sim = start(with_orphans(1)).await;
    let env = Env::new(ENFORCE);
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut keys = Vec::new();
    for (run, lease) in [
        ("live-run", Some(soon.as_str())),
        ("dead-run", Some("2026-11-30T10:20:00Z")),
    ] {
        let change = serde_json::json!({
            "at": "2026-11-30T10:00:00Z", "resource": {"type": "droplet", "id": "999"},
            "action": "attach-baseline-firewall", "before": null, "after": null, "result": "intended",
            "rule": "firewall.missing", "reason": "attach", "trigger": "schedule", "run_id": run
        });
        let ledger_key = format!("ledger/2026-11-30/20261130T100000.000Z-{run}-0001.json");
        let intent_key = format!("intents/{run}-0001.json");
        let intent = serde_json::json!({"ledger_key": ledger_key, "intent_key": intent_key,
                                        "change": change, "lease_until": lease});
        for (key, body) in [(&ledger_key, &change), (&intent_key, &intent)] {
            let path = env.dir.path().join(key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, body.to_string()).expect("write");
        }
        keys.push((ledger_key, intent_key));
    }
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert!(run.code <= 1, "{}{}", run.stdout, run.stderr);
    let read = |key: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join(key)).expect("record"))
            .expect("json")
    };
    // The live run's intent and record are untouched.
    assert_eq!(read(&keys[0].0)["result"], "intended");
    assert!(
        env.dir.path().join(&keys[0].1).exists(),
        "a live intent stays"
    );
    // The dead run's is interrupted, saying how that was decided.
    let dead = read(&keys[1].0);
    let result = dead["result"].as_str().unwrap_or_default();
    assert!(result.starts_with("interrupted"), "{result}");
    assert!(
        result.contains(
            "the lease of run dead-run ended at 2026-11-30T10:20:00Z with no result recorded"
        ),
        "{result}"
    );
    assert!(!env.dir.path().join(&keys[1].1).exists());
    let reported: Vec<String> = run.json()["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["run_id"].as_str().map(String::from))
        .filter(|r| r.ends_with("-run"))
        .collect();
    assert_eq!(reported, vec!["dead-run".to_string()]);
    sim.shutdown().await;
}

/// A run killed (SIGKILL) between announcing a change and recording it: its intent stays;
/// once its lease has run out, the next run calls the change interrupted and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_change_is_called_interrupted_once_its_lease_ran_out() {
    let sim = start(with_orphans(1)).await;
    let policy = ENFORCE.replace(
        "max_changes_per_run = 100\n",
        "max_changes_per_run = 100\nintent_lease = \"1s\"\n",
    );
    let env = Env::new(&policy);
    // Every answer takes 2 s: the run is inside a write when it is killed.
    sim.set_faults(Faults {
        latency_ms: 2_000,
        ..Default::default()
    });
    let mut child = tokio::process::Command::new(BIN)
        .args(["remediate", "--no-ssh", "--policy", env.policy()])
        .env("DROPLETGUARD_STATE_DIR", env.state_dir())
        .env("DIGITALOCEAN_API_URL", sim.url())
        .env("DIGITALOCEAN_TOKEN", &sim.token)
        .env_remove("DROPLETGUARD_POLICY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("dropletguard starts");
    let intents = env.dir.path().join("intents");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(&intents).map_or(0, |d| d.count()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no intent was written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().await.expect("SIGKILL");
    let left: Vec<Value> = env.ledger();
    let killed = left
        .iter()
        .find(|c| c["result"] == "intended")
        .cloned()
        .expect("the killed run's record says intended");
    sim.set_faults(Faults::default());
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let next = env
        .run(&sim, &["remediate", "--no-ssh", "--format", "json"])
        .await;
    assert!(next.code <= 1, "{}{}", next.stdout, next.stderr);
    let record = env
        .ledger()
        .into_iter()
        .find(|c| c["run_id"] == killed["run_id"] && c["action"] == killed["action"])
        .expect("the killed run's record");
    let result = record["result"].as_str().unwrap_or_default();
    assert!(result.starts_with("interrupted"), "{result}");
    assert!(result.contains("with no result recorded"), "{result}");
    assert!(next.json()["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["run_id"] == killed["run_id"]));
    sim.shutdown().await;
}

/// The same through the functions' own code: scheduled runs of separate function instances
/// (each its own client) at once on one state store, 20 trials each for 2, 3 and 8 instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_function_runs_on_one_store_never_call_a_live_change_interrupted() {
    use shared::digitalocean::{Client, ClientConfig, Token};
    use shared::service::{scheduled_run, Deps};
    use shared::store::{DirStore, Store};
    for (runs, trials) in [(2usize, 20usize), (3, 20), (8, 20)] {
        for trial in 0..trials {
            let sim = start(with_orphans(6)).await;
            if trial % 2 == 0 {
                sim.set_faults(Faults {
                    latency_ms: 5,
                    ..Default::default()
                });
            }
            let dir = tempfile::tempdir().expect("state dir");
            let instances: Vec<Deps> = (0..runs)
                .map(|_| {
                    let client = Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token)))
                        .expect("client");
                    let policy = shared::Policy::parse(ENFORCE, "p.toml").expect("policy");
                    Deps::new(client, Store::Dir(DirStore::new(dir.path())), policy)
                })
                .collect();
            let reports =
                futures::future::join_all(instances.iter().map(|d| scheduled_run(d, "schedule")))
                    .await;
            for r in reports {
                let r = r.expect("a report");
                let bad: Vec<_> = r
                    .changes
                    .iter()
                    .filter(|c| c.result.starts_with("interrupted"))
                    .collect();
                assert!(bad.is_empty(), "{runs} instances, trial {trial}: {bad:?}");
            }
            let store = Store::Dir(DirStore::new(dir.path()));
            for c in shared::remediate::ledger_entries(&store)
                .await
                .expect("ledger")
            {
                assert!(
                    c.result != "intended" && !c.result.starts_with("interrupted"),
                    "{runs} instances, trial {trial}: {c:?}"
                );
            }
            assert_eq!(baseline_count(&sim), 1, "one baseline firewall");
            sim.shutdown().await;
        }
    }
}
