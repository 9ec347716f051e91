//! Deny rules end to end: the generated fleet's deny cases give their findings, remediation
//! never removes or changes a deny rule, the simulator refuses unknown actions, and the demo's
//! Droplet behind a deny is compliant.

use serde_json::json;
use sim::{fleet, FleetSpec};

use crate::helpers::*;
use crate::remediation::{Env, ENFORCE};

/// Per firewall, how many deny rules it has.
fn deny_counts(sim: &sim::Sim) -> Vec<(String, usize)> {
    use shared::digitalocean::RuleAction;
    sim.with_state(|s| {
        s.firewalls
            .iter()
            .map(|f| {
                let n = f
                    .inbound_rules
                    .iter()
                    .filter(|r| r.action == RuleAction::Deny)
                    .count();
                (f.id.clone(), n)
            })
            .collect()
    })
}

/// A fleet where every Droplet has a defect, deny cases among them.
fn deny_fleet() -> sim::State {
    let mut spec = FleetSpec::new(240, 11);
    spec.defect_rate = 1.0;
    fleet::generate(&spec)
}

fn deny_tagged(sim: &sim::Sim, tag: &str) -> Vec<String> {
    sim.with_state(|s| {
        s.droplets
            .values()
            .filter(|d| d.tags.iter().any(|t| t == tag))
            .map(|d| d.id.to_string())
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_deny_case_gives_its_findings() {
    let sim = start(deny_fleet()).await;
    let run = cli_with_policy(&sim, sim::FLEET_POLICY, &["audit", "--format", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        finding_keys(&report),
        expected_keys(&sim),
        "the oracle, deny cases included"
    );
    let keys = finding_keys(&report);
    let rules_of = |id: &str| -> Vec<String> {
        keys.iter()
            .filter(|k| k.2 == id)
            .map(|k| k.0.clone())
            .collect()
    };
    for (tag, want) in [
        ("deny:ssh-world", vec![]),
        (
            "deny:ssh-ipv4",
            vec!["firewall.ssh-open", "firewall.world-open"],
        ),
        (
            "deny:db-partner",
            vec!["firewall.world-open", "firewall.forbidden-port"],
        ),
        (
            "deny:from-web",
            vec!["firewall.ssh-open", "firewall.world-open"],
        ),
    ] {
        let ids = deny_tagged(&sim, tag);
        assert!(!ids.is_empty(), "the fleet has {tag} Droplets");
        for id in ids {
            let mut got = rules_of(&id);
            got.retain(|r| r.starts_with("firewall."));
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "Droplet {id} ({tag})");
        }
    }
    // The detail says why: the allow rule and the deny rule that narrowed it.
    let id = &deny_tagged(&sim, "deny:ssh-ipv4")[0];
    let detail = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "firewall.ssh-open" && f["resource"]["id"] == id.as_str())
        .map(|f| f["detail"].as_str().unwrap_or_default().to_string())
        .expect("ssh-open");
    assert!(detail.contains("open to ::/0"), "{detail}");
    assert!(
        detail.contains("narrowed by firewall deny-ssh-ipv4"),
        "{detail}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediation_never_removes_or_changes_a_deny_rule() {
    let sim = start(deny_fleet()).await;
    let denies_before = deny_counts(&sim);
    assert!(denies_before.iter().any(|(_, n)| *n > 0));
    let env = Env::new(&ENFORCE.replace("max_changes_per_run = 100", "max_changes_per_run = 1000"));
    let run = env.run(&sim, &["remediate", "--format", "json"]).await;
    assert!(run.code <= 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let narrowed = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "narrow-firewall-rules" && c["result"] == "ok")
        .count();
    assert!(
        narrowed > 0,
        "the run narrowed allow rules: {}",
        report["changes"]
    );
    assert_eq!(
        sim.with_state(|s| s.deny_rules_lost.clone()),
        Vec::<String>::new()
    );
    let denies_after = deny_counts(&sim);
    for (id, n) in denies_before.iter().filter(|(_, n)| *n > 0) {
        assert!(
            denies_after.contains(&(id.clone(), *n)),
            "firewall {id} keeps its {n} deny rules"
        );
    }
    // Every narrowed rule body sent to the API named its action.
    for c in report["changes"].as_array().expect("changes") {
        if c["action"] == "narrow-firewall-rules" {
            assert_eq!(c["before"]["rule"]["action"], "allow", "{c}");
            for r in c["after"]["rules"].as_array().expect("rules") {
                assert_eq!(r["action"], "allow", "{c}");
            }
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_keeps_action_and_refuses_unknown_values() {
    let sim = start(deny_fleet()).await;
    let api = Raw::new(&sim);
    let body = |action: &str| {
        json!({"name": "t", "inbound_rules": [{"protocol": "tcp", "ports": "22", "action": action,
               "sources": {"addresses": ["0.0.0.0/0"]}}], "outbound_rules": [], "tags": [], "droplet_ids": []})
    };
    let (status, v) = api
        .send(reqwest::Method::POST, "/v2/firewalls", Some(body("reject")))
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("action"),
        "{v}"
    );
    let (status, v) = api
        .send(reqwest::Method::POST, "/v2/firewalls", Some(body("deny")))
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["firewall"]["id"].as_str().expect("id").to_string();
    let (_, got) = api.get(&format!("/v2/firewalls/{id}")).await;
    assert_eq!(got["firewall"]["inbound_rules"][0]["action"], "deny");
    let mut no_action = body("allow");
    no_action["inbound_rules"][0]
        .as_object_mut()
        .expect("rule")
        .remove("action");
    no_action["name"] = json!("u");
    let (status, v) = api
        .send(reqwest::Method::POST, "/v2/firewalls", Some(no_action))
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        v["firewall"]["inbound_rules"][0]["action"], "allow",
        "absent means allow"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_droplet_behind_a_deny_is_compliant() {
    let sim = start(fleet::demo()).await;
    let id = sim
        .with_state(|s| {
            s.droplets
                .values()
                .find(|d| d.name.ends_with("-ssh-denied"))
                .map(|d| d.id)
        })
        .expect("the demo has a Droplet whose SSH another firewall denies");
    let run = cli_with_policy(
        &sim,
        sim::FLEET_POLICY,
        &["audit", "--droplet", &id.to_string(), "--format", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["summary"]["pass"], 1);
    sim.shutdown().await;
}
