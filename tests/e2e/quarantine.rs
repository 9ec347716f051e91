//! Incident response: quarantine and restore, round trip and crash safety.

use std::collections::BTreeSet;

use sim::Faults;

use crate::fixtures;
use crate::helpers::*;
use crate::remediation::Env;

const POLICY: &str = "[management]\ncidrs = [\"203.0.113.0/24\"]\n";

/// (firewalls covering by id, tags) of a Droplet.
fn memberships(sim: &sim::Sim, id: u64) -> (BTreeSet<String>, BTreeSet<String>) {
    sim.with_state(|s| {
        let d = &s.droplets[&id];
        let by_id = s
            .firewalls
            .iter()
            .filter(|f| f.droplet_ids.contains(&id))
            .map(|f| f.name.clone())
            .collect();
        (by_id, d.tags.iter().cloned().collect())
    })
}

fn covering(sim: &sim::Sim, id: u64) -> BTreeSet<String> {
    sim.with_state(|s| {
        let d = &s.droplets[&id];
        s.firewalls
            .iter()
            .filter(|f| f.droplet_ids.contains(&id) || f.tags.iter().any(|t| d.tags.contains(t)))
            .map(|f| f.name.clone())
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_then_restore_round_trips() {
    // Droplet 7: by id in legacy-fw, by tag (web) in web-fw, plus other tags.
    let sim = start(fixtures::known()).await;
    let env = Env::new(POLICY);
    let before = memberships(&sim, 7);
    assert_eq!(
        covering(&sim, 7),
        BTreeSet::from(["legacy-fw".to_string(), "web-fw".to_string()])
    );

    let q = env
        .run(
            &sim,
            &[
                "quarantine",
                "--droplet",
                "7",
                "--reason",
                "suspected compromise INC-42",
            ],
        )
        .await;
    assert_eq!(q.code, 0, "{}{}", q.stdout, q.stderr);
    assert_eq!(
        covering(&sim, 7),
        BTreeSet::from(["dropletguard-quarantine".to_string()]),
        "nothing else admits traffic"
    );
    let qfw = sim
        .with_state(|s| {
            s.firewalls
                .iter()
                .find(|f| f.name == "dropletguard-quarantine")
                .cloned()
        })
        .expect("quarantine firewall");
    assert_eq!(qfw.inbound_rules.len(), 1);
    assert_eq!(qfw.inbound_rules[0].ports, "22");
    assert_eq!(
        qfw.inbound_rules[0].sources.addresses,
        vec!["203.0.113.0/24".to_string()]
    );
    assert!(qfw.outbound_rules.is_empty());
    // Other Droplets behind web-fw are untouched.
    assert!(covering(&sim, 1).contains("web-fw"));
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("quarantine/7.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(record["status"], "quarantined");
    assert_eq!(record["reason"], "suspected compromise INC-42");

    // Quarantine again: nothing changes.
    sim.clear_requests();
    let again = env
        .run(&sim, &["quarantine", "--droplet", "7", "--reason", "again"])
        .await;
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("already quarantined"),
        "{}",
        again.stdout
    );
    assert!(!sim
        .requests()
        .iter()
        .any(|r| r.method != "GET" && r.path != "/v2/tags"));

    let r = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        memberships(&sim, 7),
        before,
        "firewalls and tags exactly as they were"
    );
    assert_eq!(
        covering(&sim, 7),
        BTreeSet::from(["legacy-fw".to_string(), "web-fw".to_string()])
    );
    let again = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("already restored"));

    let actions: Vec<String> = env
        .ledger()
        .iter()
        .map(|c| c["action"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(actions, vec!["quarantine-droplet", "restore-droplet"]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_half_way_resumes_from_the_record() {
    let sim = start(fixtures::known()).await;
    let env = Env::new(POLICY);
    let before = memberships(&sim, 7);
    // Let the quarantine start, then break the API part way: the quarantine firewall is
    // attached, but the Droplet is not yet detached from the others.
    let reads_and_setup = 7;
    sim.with_state(|s| s.api_requests = 0);
    sim.set_faults(Faults {
        error_every: reads_and_setup + 1,
        error_status: Some(501),
        ..Default::default()
    });
    let q = env
        .run(
            &sim,
            &["quarantine", "--droplet", "7", "--reason", "crash test"],
        )
        .await;
    assert_eq!(q.code, 2, "the injected failure stops it: {}", q.stdout);
    sim.set_faults(Faults::default());
    let half = covering(&sim, 7);
    assert_eq!(
        half,
        BTreeSet::from([
            "dropletguard-quarantine".to_string(),
            "legacy-fw".to_string(),
            "web-fw".to_string()
        ]),
        "stopped after attaching the quarantine firewall, before detaching the others"
    );
    // Re-run: it resumes with the recorded memberships, not the half-changed state.
    let q = env
        .run(
            &sim,
            &["quarantine", "--droplet", "7", "--reason", "crash test"],
        )
        .await;
    assert_eq!(q.code, 0, "{}{}", q.stdout, q.stderr);
    assert_eq!(
        covering(&sim, 7),
        BTreeSet::from(["dropletguard-quarantine".to_string()])
    );
    let r = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(memberships(&sim, 7), before);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_needs_a_record_and_management_ranges() {
    let sim = start(fixtures::known()).await;
    let env = Env::new("");
    let q = env
        .run(&sim, &["quarantine", "--droplet", "7", "--reason", "x"])
        .await;
    assert_eq!(q.code, 2);
    assert!(
        q.stderr.contains("management.cidrs is empty"),
        "{}",
        q.stderr
    );
    assert!(!sim.requests().iter().any(|r| r.method != "GET"));
    let env = Env::new(POLICY);
    let r = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no quarantine record"), "{}", r.stderr);
    let q = env
        .run(
            &sim,
            &["quarantine", "--droplet", "424242", "--reason", "x"],
        )
        .await;
    assert_eq!(q.code, 2);
    assert!(q.stderr.contains("404"), "{}", q.stderr);
    sim.shutdown().await;
}
