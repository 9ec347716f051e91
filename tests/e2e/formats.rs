//! The report's three formats: JSON shape, SARIF 2.1.0 validity, the readable table.

use serde_json::json;

use crate::fixtures;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_has_the_contract_shape() {
    let sim = start(fixtures::known()).await;
    let policy = policy_file(fixtures::POLICY);
    // A state store of its own: a first run, with nothing resolved before it.
    let state = tempfile::tempdir().expect("state dir");
    let report = cli_env(
        &sim.url(),
        &sim.token,
        &[
            "audit",
            "--format",
            "json",
            "--policy",
            policy.path().to_str().expect("utf-8 path"),
        ],
        &[(
            "DROPLETGUARD_STATE_DIR",
            state.path().to_str().expect("utf-8"),
        )],
    )
    .await
    .json();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    // The contract's keys, and the run as the findings history recorded it.
    assert_eq!(
        keys(&report),
        ["changes", "findings", "history", "run", "summary"]
    );
    // The contract's keys, and the extensions (cap_reached, dry_run) beside them.
    assert_eq!(
        keys(&report["run"]),
        [
            "api_requests",
            "cap_reached",
            "complete",
            "dry_run",
            "finished_at",
            "id",
            "started_at",
            "trigger"
        ]
    );
    assert_eq!(
        keys(&report["summary"]),
        [
            "changes",
            "droplets",
            "exempt",
            "fail",
            "pass",
            "quarantined",
            "unknown"
        ]
    );
    let f = &report["findings"][0];
    assert_eq!(
        keys(f),
        [
            "detail",
            "first_seen",
            "remediation",
            "resource",
            "rule",
            "severity",
            "status"
        ]
    );
    assert_eq!(keys(&f["resource"]), ["id", "name", "type"]);
    assert_eq!(
        keys(&f["remediation"]),
        ["applied", "mode", "planned", "result"]
    );
    for f in report["findings"].as_array().expect("findings") {
        assert!(["fail", "unknown"].contains(&f["status"].as_str().unwrap_or_default()));
        assert!(["critical", "high", "medium", "low"]
            .contains(&f["severity"].as_str().unwrap_or_default()));
        assert!(["droplet", "firewall", "vpc", "account"]
            .contains(&f["resource"]["type"].as_str().unwrap_or_default()));
    }
    for t in ["started_at", "finished_at"] {
        let s = report["run"][t].as_str().expect("time");
        assert!(chrono_like(s), "{t} is RFC 3339: {s}");
    }
    sim.shutdown().await;
}

fn chrono_like(s: &str) -> bool {
    s.len() == 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sarif_validates_against_the_schema() {
    let sim = start(fixtures::known()).await;
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit", "--format", "sarif"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let sarif = run.json();
    let (code, out) = validate(&[json!({"kind": "sarif", "body": sarif})]);
    assert_eq!(code, 0, "SARIF does not validate:\n{out}");
    // The validator itself rejects a broken log (so the check above can fail).
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = json!("catastrophic");
    let (code, out) = validate(&[json!({"kind": "sarif", "body": broken})]);
    assert_eq!(code, 1, "a bad level must not validate:\n{out}");

    let run0 = &sarif["runs"][0];
    let rules = run0["tool"]["driver"]["rules"].as_array().expect("rules");
    assert!(rules
        .iter()
        .any(|r| r["id"] == "firewall.missing" && r["help"]["text"].is_string()));
    let results = run0["results"].as_array().expect("results");
    assert_eq!(results.len(), fixtures::known_expected().len());
    let missing = results
        .iter()
        .find(|r| r["ruleId"] == "firewall.missing")
        .expect("firewall.missing result");
    assert_eq!(
        missing["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "droplet/3"
    );
    assert_eq!(
        missing["locations"][0]["logicalLocations"][0]["name"],
        "orphan"
    );
    assert_eq!(missing["level"], "error");
    let idx = missing["ruleIndex"].as_u64().expect("ruleIndex") as usize;
    assert_eq!(rules[idx]["id"], "firewall.missing");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_is_readable() {
    let sim = start(fixtures::known()).await;
    let run = cli_with_policy(&sim, fixtures::POLICY, &["audit"]).await;
    assert_eq!(run.code, 1);
    let out = &run.stdout;
    assert!(
        out.contains("SEVERITY") && out.contains("RULE") && out.contains("DETAIL"),
        "{out}"
    );
    assert!(out.contains("droplet orphan (3)"), "{out}");
    assert!(
        out.contains("8 Droplets audited: 1 pass, 7 fail, 0 unknown; 13 findings"),
        "{out}"
    );
    // Most severe first.
    let crit = out.find("critical").expect("a critical row");
    let medium = out.find("medium").expect("a medium row");
    assert!(crit < medium);
    sim.shutdown().await;
}
