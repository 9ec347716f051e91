//! Plan examples, beside the fixes: a snapshot in, the expected steps and notes out. A test
//! plans each one, so a fix whose plan changes shape fails here first.

use crate::catalog::Mode;
use crate::digitalocean::Protocol::Tcp;
use crate::evaluate::evaluate;
use crate::net::Cidr;
use crate::policy::Policy;
use crate::remediate::plan::plan;
use crate::remediate::step::Plan;
use crate::rules::examples::{deny, droplet, firewall, inbound, policy};
use crate::snapshot::{Scope, Snapshot, SshObservation};

struct Example {
    name: &'static str,
    snapshot: Snapshot,
    policy: Policy,
    scope: Scope,
    ssh_key: bool,
    /// Each step as `action resource [over cap]`, in plan order.
    steps: &'static [&'static str],
    /// `(rule, resource id, text the note's planned or result must contain)`.
    notes: &'static [(&'static str, &'static str, &'static str)],
}

fn enforce() -> Policy {
    let mut p = policy();
    p.remediation.mode = Mode::Enforce;
    p
}

fn snap(
    droplets: Vec<crate::digitalocean::Droplet>,
    firewalls: Vec<crate::digitalocean::Firewall>,
) -> Snapshot {
    Snapshot {
        droplets,
        firewalls,
        ..Snapshot::default()
    }
}

fn ex(name: &'static str, snapshot: Snapshot, steps: &'static [&'static str]) -> Example {
    Example {
        name,
        snapshot,
        policy: enforce(),
        scope: Scope::all(),
        ssh_key: false,
        steps,
        notes: &[],
    }
}

fn attach_examples() -> Vec<Example> {
    let orphan = || snap(vec![droplet(1, &["web"], None)], vec![]);
    let baseline = |tags: &[&str]| {
        let mut fw = firewall("fw-base", vec![], &[], tags);
        fw.name = "dropletguard-baseline".into();
        fw
    };
    let mut exempt = orphan();
    exempt.droplets[0].tags.push("dropletguard-exempt".into());
    let mut no_mgmt = ex("firewall.missing without management ranges", orphan(), &[]);
    no_mgmt.policy.management.cidrs.clear();
    no_mgmt.notes = &[("firewall.missing", "1", "management.cidrs is empty")];
    let mut capped = ex(
        "the cap stops the second Droplet",
        snap(
            vec![droplet(1, &[], None), droplet(2, &[], None)],
            vec![baseline(&["dropletguard-baseline"])],
        ),
        &[
            "attach-baseline-firewall 1",
            "attach-baseline-firewall 2 over cap",
        ],
    );
    capped.policy.remediation.max_changes_per_run = 1;
    capped.notes = &[("firewall.missing", "2", "max_changes_per_run (1) reached")];
    vec![
        ex(
            "firewall.missing, no baseline yet",
            orphan(),
            &[
                "create-baseline-firewall dropletguard-baseline",
                "attach-baseline-firewall 1",
            ],
        ),
        ex(
            "firewall.missing, baseline tagged",
            snap(
                orphan().droplets,
                vec![baseline(&["dropletguard-baseline"])],
            ),
            &["attach-baseline-firewall 1"],
        ),
        ex(
            "firewall.missing, baseline untagged",
            snap(orphan().droplets, vec![baseline(&[])]),
            &[
                "tag-baseline-firewall fw-base",
                "attach-baseline-firewall 1",
            ],
        ),
        Example {
            notes: &[("firewall.missing", "1", "exempt (tag dropletguard-exempt)")],
            ..ex("firewall.missing, exempt", exempt, &[])
        },
        no_mgmt,
        capped,
    ]
}

/// One Droplet behind firewall `fw-1` (by id) with the given inbound rules.
fn behind(rules: Vec<crate::digitalocean::InboundRule>) -> Snapshot {
    snap(
        vec![droplet(1, &[], None)],
        vec![firewall("fw-1", rules, &[1], &[])],
    )
}

fn narrow_examples() -> Vec<Example> {
    let world_ssh = || behind(vec![inbound(Tcp, "22", &["0.0.0.0/0"])]);
    let mut shared_fw = world_ssh();
    shared_fw.droplets.push(droplet(2, &[], None));
    shared_fw.firewalls[0].droplet_ids.push(2);
    let mut with_deny = world_ssh();
    with_deny.firewalls[0]
        .inbound_rules
        .push(deny(Tcp, "22", &["198.51.100.0/24"]));
    let narrow = &["narrow-firewall-rules fw-1"];
    vec![
        Example {
            notes: &[("firewall.ssh-open", "1", "replace rule \"tcp 22 from 0.0.0.0/0\" by \"tcp 22 from 203.0.113.0/24\"")],
            ..ex("ssh open to the world", world_ssh(), narrow)
        },
        Example {
            notes: &[("firewall.ssh-open", "1", "by \"tcp 1-21 from 0.0.0.0/0\", \"tcp 23-24 from 0.0.0.0/0\"")],
            ..ex("every port open: only the offending ones narrow", behind(vec![inbound(Tcp, "0", &["0.0.0.0/0"])]), narrow)
        },
        Example {
            notes: &[("firewall.ssh-open", "1", "on firewall fw-1-name (fw-1): replace rule \"tcp 22 from 0.0.0.0/0\" by \"tcp 22 from 203.0.113.0/24\"")],
            ..ex("the allow is narrowed; the deny beside it is left as it is", with_deny, narrow)
        },
        Example {
            scope: Scope::droplets([1]),
            notes: &[("firewall.ssh-open", "1", "also covers Droplets outside this run or exempt: droplet-2 (2)")],
            ..ex("a firewall shared with a Droplet outside the run is left alone", shared_fw, &[])
        },
    ]
}

fn password_examples() -> Vec<Example> {
    let mut s = snap(
        vec![droplet(1, &[], None)],
        vec![firewall("fw-1", vec![], &[1], &[])],
    );
    let probe = crate::ssh::ProbeResult {
        methods: vec!["publickey".into(), "password".into()],
        host_key_sha256: "SHA256:x".into(),
        server_version: "SSH-2.0-OpenSSH_9.2p1".into(),
    };
    s.ssh.insert(
        1,
        SshObservation {
            target: Some("127.0.0.1:2222".into()),
            probe: Some(Ok(probe)),
            listeners: None,
            ..SshObservation::default()
        },
    );
    let mut denied = s.clone();
    let deny_mgmt = vec![deny(Tcp, "22", &["203.0.113.7"])];
    denied
        .firewalls
        .push(firewall("fw-2", deny_mgmt, &[1], &[]));
    vec![
        Example {
            ssh_key: true,
            ..ex(
                "password login, with a management key",
                s.clone(),
                &["disable-ssh-password-auth 1"],
            )
        },
        Example {
            notes: &[("ssh.password-auth", "1", "no management key")],
            ..ex("password login, no management key", s.clone(), &[])
        },
        Example {
            ssh_key: true,
            notes: &[("ssh.password-auth", "1", "not tried: firewall fw-2-name (fw-2) rule \"deny tcp 22 from 203.0.113.7\" denies the management ranges")],
            ..ex("password login behind a deny of the management ranges", denied, &[])
        },
    ]
}

fn render(plan: &Plan) -> Vec<String> {
    let over = |ok: bool| if ok { "" } else { " over cap" };
    plan.steps
        .iter()
        .map(|s| format!("{} {}{}", s.action, s.resource.id, over(s.within_cap)))
        .collect()
}

#[test]
fn every_fix_plans_as_its_examples_say() {
    let all: Vec<Example> = [attach_examples(), narrow_examples(), password_examples()]
        .into_iter()
        .flatten()
        .collect();
    let mut wrong = Vec::new();
    for e in all {
        let findings = evaluate(&e.snapshot, &e.policy, &e.scope);
        let p = plan(&e.snapshot, &e.policy, &findings, &e.scope, e.ssh_key);
        // No plan ever removes, narrows or rewrites a deny rule.
        for step in &p.steps {
            let edits = step.params["edits"].as_array().cloned().unwrap_or_default();
            if edits.iter().any(|ed| ed["before"]["action"] != "allow") {
                wrong.push(format!(
                    "{}: a step edits a rule that is not an allow: {}",
                    e.name, step.params
                ));
            }
        }
        if render(&p) != e.steps {
            wrong.push(format!(
                "{}: steps {:?}, expected {:?}",
                e.name,
                render(&p),
                e.steps
            ));
        }
        for (rule, id, text) in e.notes {
            let note = p.notes.get(&crate::report::FindingKey::droplet(rule, id));
            let said = note
                .map(|n| {
                    format!(
                        "{} | {}",
                        n.planned.as_deref().unwrap_or(""),
                        n.result.as_deref().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            if !said.contains(text) {
                wrong.push(format!(
                    "{}: note on {rule} {id} is {said:?}, expected it to say {text:?}",
                    e.name
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "plans that differ from their examples:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_registered_fix_has_an_example_and_a_unique_name() {
    let names: Vec<&str> = super::FIXES.iter().map(|f| f.name()).collect();
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "fix names repeat: {names:?}");
    let mgmt = Cidr::parse("203.0.113.0/24").expect("cidr");
    assert!(policy().management.cidrs.contains(&mgmt));
    let planned: Vec<&str> = [attach_examples(), narrow_examples(), password_examples()]
        .into_iter()
        .flatten()
        .flat_map(|e| {
            let f = evaluate(&e.snapshot, &e.policy, &e.scope);
            plan(&e.snapshot, &e.policy, &f, &e.scope, e.ssh_key)
                .steps
                .into_iter()
                .map(|s| s.fix)
                .collect::<Vec<_>>()
        })
        .collect();
    for name in names {
        assert!(
            planned.contains(&name),
            "fix {name} has no plan example that plans a step"
        );
    }
}
