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

/// Every firewall as it is (rules, Droplets, tags), but the quarantine firewall.
fn other_firewalls(sim: &sim::Sim) -> Vec<shared::digitalocean::Firewall> {
    sim.with_state(|s| {
        s.firewalls
            .iter()
            .filter(|f| f.name != "dropletguard-quarantine")
            .cloned()
            .collect()
    })
}

fn quarantine_firewall(sim: &sim::Sim) -> shared::digitalocean::Firewall {
    sim.with_state(|s| {
        s.firewalls
            .iter()
            .find(|f| f.name == "dropletguard-quarantine")
            .cloned()
    })
    .expect("quarantine firewall")
}

/// Writes that touch a firewall other than the quarantine one.
fn writes_to_others(sim: &sim::Sim, quarantine_id: &str) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/v2/firewalls/"))
        .filter(|r| !r.path.contains(quarantine_id))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_then_restore_changes_one_tag_and_nothing_else() {
    // Droplet 7: by id in legacy-fw, by tag (web) in web-fw, which other Droplets share.
    let sim = start(fixtures::known()).await;
    let env = Env::new(POLICY);
    let before = memberships(&sim, 7);
    let firewalls_before = other_firewalls(&sim);
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
    let qfw = quarantine_firewall(&sim);
    assert_eq!(qfw.tags, vec!["dropletguard-quarantine".to_string()]);
    assert!(qfw.droplet_ids.is_empty(), "attached by tag, never by id");
    let (by_id, tags) = memberships(&sim, 7);
    assert_eq!(by_id, before.0, "still in every firewall it was in by id");
    let mut want_tags = before.1.clone();
    want_tags.insert("dropletguard-quarantine".into());
    assert_eq!(tags, want_tags, "one tag added, none removed");
    assert_eq!(
        other_firewalls(&sim),
        firewalls_before,
        "no other firewall changed"
    );
    assert!(
        writes_to_others(&sim, &qfw.id).is_empty(),
        "{:?}",
        writes_to_others(&sim, &qfw.id)
    );
    assert_eq!(
        covering(&sim, 7),
        BTreeSet::from(["dropletguard-quarantine", "legacy-fw", "web-fw"].map(String::from)),
        "its firewalls stay; the quarantine firewall's denies win over their allows"
    );
    // Its rules: deny everything outside the management range both ways, SSH from it allowed.
    use shared::digitalocean::{Protocol, RuleAction};
    let allows: Vec<_> = qfw
        .inbound_rules
        .iter()
        .filter(|r| r.action == RuleAction::Allow)
        .collect();
    assert_eq!(allows.len(), 1);
    assert_eq!(
        (allows[0].protocol, allows[0].ports.as_str()),
        (Protocol::Tcp, "22")
    );
    assert_eq!(
        allows[0].sources.addresses,
        vec!["203.0.113.0/24".to_string()]
    );
    for rules in [
        qfw.inbound_rules
            .iter()
            .filter(|r| r.action == RuleAction::Deny)
            .map(|r| (r.protocol, &r.sources))
            .collect::<Vec<_>>(),
        qfw.outbound_rules
            .iter()
            .map(|r| (r.protocol, &r.destinations))
            .collect(),
    ] {
        let protocols: BTreeSet<Protocol> = rules.iter().map(|r| r.0).collect();
        assert_eq!(
            protocols,
            BTreeSet::from([Protocol::Tcp, Protocol::Udp, Protocol::Icmp])
        );
        let addresses: Vec<&String> = rules.iter().flat_map(|r| r.1.addresses.iter()).collect();
        assert!(
            addresses.contains(&&"203.0.112.0/24".to_string()),
            "{addresses:?}"
        );
        assert!(
            addresses.contains(&&"::/1".to_string()) || addresses.contains(&&"::/0".to_string())
        );
        assert!(
            !addresses.iter().any(|a| a.starts_with("203.0.113.")),
            "management stays open"
        );
    }
    assert!(qfw
        .outbound_rules
        .iter()
        .all(|r| r.action == RuleAction::Deny));
    // The audit now sees nothing open on it from outside the management range.
    let audit = env
        .run(
            &sim,
            &["audit", "--droplet", "7", "--format", "json", "--no-ssh"],
        )
        .await;
    let open: Vec<String> = audit.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| {
            f["rule"]
                .as_str()
                .is_some_and(|r| r.ends_with("-open") || r == "firewall.forbidden-port")
        })
        .map(|f| f["detail"].to_string())
        .collect();
    assert!(open.is_empty(), "{open:?}");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("quarantine/7.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(record["status"], "quarantined");
    assert_eq!(record["method"], "deny-tag");
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

    sim.clear_requests();
    let r = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        memberships(&sim, 7),
        before,
        "firewalls and tags exactly as they were"
    );
    assert_eq!(other_firewalls(&sim), firewalls_before);
    assert!(writes_to_others(&sim, &qfw.id).is_empty());
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
async fn a_crash_half_way_resumes_and_restores_exactly() {
    let sim = start(fixtures::known()).await;
    let env = Env::new(POLICY);
    let before = memberships(&sim, 7);
    // Break the API after the quarantine firewall exists, before the Droplet is tagged.
    sim.with_state(|s| s.api_requests = 0);
    sim.set_faults(Faults {
        error_every: 6,
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
    let q = env
        .run(
            &sim,
            &["quarantine", "--droplet", "7", "--reason", "crash test"],
        )
        .await;
    assert_eq!(q.code, 0, "{}{}", q.stdout, q.stderr);
    assert!(memberships(&sim, 7).1.contains("dropletguard-quarantine"));
    assert_eq!(
        sim.with_state(|s| s
            .firewalls
            .iter()
            .filter(|f| f.name == "dropletguard-quarantine")
            .count()),
        1
    );
    let r = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(memberships(&sim, 7), before);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_recorded_by_the_detach_method_is_still_restored() {
    let mut st = fixtures::known();
    // As the earlier method left Droplet 7: out of legacy-fw, its web tag removed, tagged
    // with the quarantine name, which attached a quarantine firewall.
    st.firewalls
        .iter_mut()
        .filter(|f| f.name == "legacy-fw")
        .for_each(|f| f.droplet_ids.clear());
    let d = st.droplets.get_mut(&7).expect("droplet 7");
    d.tags.retain(|t| t != "web");
    d.tags.push("dropletguard-quarantine".into());
    st.tags.insert("dropletguard-quarantine".into());
    let sim = start(st).await;
    let env = Env::new(POLICY);
    let record = serde_json::json!({
        "droplet_id": 7, "droplet_name": "legacy", "reason": "INC-1", "trigger": "cli",
        "status": "quarantined", "quarantined_at": "2026-08-01T00:00:00Z",
        "firewall_ids": ["bb22bb22-0000-4000-8000-000000000002"],
        "tags": ["env:prod", "tenant:acme", "web"], "firewall_tags": ["web"]
    });
    std::fs::create_dir_all(env.dir.path().join("quarantine")).expect("dir");
    std::fs::write(env.dir.path().join("quarantine/7.json"), record.to_string()).expect("record");
    let r = env.run(&sim, &["restore", "--droplet", "7"]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("detach method"), "{}", r.stdout);
    assert_eq!(
        memberships(&sim, 7),
        (
            BTreeSet::from(["legacy-fw".to_string()]),
            BTreeSet::from(["env:prod", "tenant:acme", "web"].map(String::from))
        )
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_needs_a_record_and_management_ranges_that_fit() {
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
    // 300 scattered single addresses: their complement needs far more than 50 rules.
    let scattered: Vec<String> = (0..300)
        .map(|i| format!("\"{}.{}.7.9\"", 11 + i / 200, i % 200))
        .collect();
    let env = Env::new(&format!(
        "[management]\ncidrs = [{}]\n",
        scattered.join(", ")
    ));
    let q = env
        .run(&sim, &["quarantine", "--droplet", "7", "--reason", "x"])
        .await;
    assert_eq!(q.code, 2);
    assert!(q.stderr.contains("too fragmented"), "{}", q.stderr);
    assert!(
        !sim.requests().iter().any(|r| r.method != "GET"),
        "nothing changed"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_droplet_is_not_open_to_the_world_and_says_it_is_quarantined() {
    // Droplet 8 has a port open to the world; Droplet 7's firewall failed (a finding that stays).
    let sim = start(fixtures::known()).await;
    let env = Env::new(POLICY);
    let rules_of = |report: &serde_json::Value, id: &str| -> Vec<String> {
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["resource"]["id"] == id)
            .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let before = env
        .run(&sim, &["audit", "--format", "json", "--no-ssh"])
        .await
        .json();
    assert!(rules_of(&before, "8").contains(&"firewall.world-open".to_string()));
    assert_eq!(before["summary"]["quarantined"], 0);
    for id in ["7", "8"] {
        let q = env
            .run(&sim, &["quarantine", "--droplet", id, "--reason", "INC-7"])
            .await;
        assert_eq!(q.code, 0, "{}{}", q.stdout, q.stderr);
    }
    let after = env
        .run(&sim, &["audit", "--format", "json", "--no-ssh"])
        .await
        .json();
    assert!(
        rules_of(&after, "8").is_empty(),
        "what the quarantine leaves open is the management range only: {:?}",
        rules_of(&after, "8")
    );
    assert_eq!(after["summary"]["quarantined"], 2);
    let on_7: Vec<&serde_json::Value> = after["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["resource"]["id"] == "7")
        .collect();
    assert!(!on_7.is_empty());
    for f in on_7 {
        let detail = f["detail"].as_str().unwrap_or_default();
        assert!(
            detail.ends_with("(the Droplet is quarantined: tag dropletguard-quarantine attaches the quarantine firewall)"),
            "{detail}"
        );
    }
    let table = env.run(&sim, &["audit", "--no-ssh"]).await;
    assert!(
        table.stdout.contains("unknown, 2 quarantined;"),
        "{}",
        table.stdout
    );
    sim.shutdown().await;
}
