//! The listener cases under `tests/ssh/fixtures/cases/`: the listener
//! output as the Droplet printed it, parsed, its owners identified the way the management
//! session does it, and judged by `service.exposed` against the case's fleet and policy.

use std::collections::BTreeMap;

use shared::evaluate::evaluate;
use shared::policy::Policy;
use shared::report::Finding;
use shared::snapshot::{Scope, Snapshot, SshObservation};
use shared::ssh::listeners::{parse_any, Listener};
use shared::ssh::owners;

/// The case's Droplets and firewalls, its policy (placeholders filled in), and a snapshot in
/// which the management session listed `listeners` on the one Droplet.
fn judge(case: &str, listeners: Vec<Listener>) -> Vec<Finding> {
    let dir = format!(
        "{}/../tests/ssh/fixtures/cases/{case}",
        env!("CARGO_MANIFEST_DIR")
    );
    let fleet = std::fs::read_to_string(format!("{dir}/fleet.json"))
        .expect("fleet.json")
        .replace("@ADDR@", "192.0.2.10");
    let fleet: serde_json::Value = serde_json::from_str(&fleet).expect("fleet json");
    let policy = std::fs::read_to_string(format!("{dir}/policy.toml"))
        .expect("policy.toml")
        .replace("@PORT@", "22");
    let policy = Policy::parse(&policy, "policy.toml").expect("policy");
    let droplets: Vec<shared::digitalocean::Droplet> =
        serde_json::from_value(fleet["droplets"].clone()).expect("droplets");
    let firewalls = serde_json::from_value(fleet["firewalls"].clone()).expect("firewalls");
    let id = droplets[0].id;
    let observation = SshObservation {
        target: Some("192.0.2.10:22".into()),
        probe: None,
        listeners: Some(Ok(listeners)),
        ..SshObservation::default()
    };
    let snapshot = Snapshot {
        droplets,
        firewalls,
        ssh: BTreeMap::from([(id, observation)]),
        ..Snapshot::default()
    };
    evaluate(&snapshot, &policy, &Scope::all())
        .into_iter()
        .filter(|f| f.rule == "service.exposed")
        .collect()
}

fn fixture(case: &str, file: &str) -> String {
    let path = format!(
        "{}/../tests/ssh/fixtures/cases/{case}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("fixture")
}

/// `/proc/<pid>/comm` on the Droplet of the netstat-titles case, as the look-up prints it.
const NETSTAT_TITLES_COMMS: &str = "733 sshd\n905 redis-server\n1022 nginx\n";

#[test]
fn netstat_titles_are_resolved_by_pid_and_allowed() {
    let mut ls = parse_any(&fixture("netstat-titles", "netstat-plunW.txt")).expect("parses");
    assert_eq!(ls.len(), 5);
    // The look-up asks for exactly the pids whose printed name is a title or cut short.
    assert_eq!(owners::pids_to_look_up(&ls), vec![733, 905, 1022]);
    owners::apply_comms(&mut ls, &owners::parse_comms(NETSTAT_TITLES_COMMS));
    let names: Vec<String> = ls.iter().map(|l| l.processes[0].to_string()).collect();
    assert_eq!(names[0], "sshd (printed \"sshd: /usr/sbin\")");
    assert_eq!(names[1], "nginx (printed \"nginx: master\")");
    let findings = judge("netstat-titles", ls);
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn netstat_titles_keep_the_printed_name_in_a_finding() {
    let mut ls = parse_any(&fixture("netstat-titles", "netstat-plunW.txt")).expect("parses");
    // nginx turns out to be something else: the finding names both.
    owners::apply_comms(&mut ls, &owners::parse_comms("733 sshd\n1022 python3\n"));
    let findings = judge("netstat-titles", ls);
    assert_eq!(findings.len(), 1, "{findings:?}");
    let detail = &findings[0].detail;
    assert!(
        detail.contains("tcp 0.0.0.0:80 (python3 (printed \"nginx: master\"))"),
        "{detail}"
    );
    assert!(!detail.contains(":22"), "sshd is allowed: {detail}");
    assert_eq!(findings[0].severity, shared::report::Severity::High);
}

#[test]
fn socket_activated_sshd_is_judged_by_sshd_not_systemd() {
    let ls = parse_any(&fixture("socket-activated", "ss-tulpn.txt")).expect("parses");
    assert_eq!(ls.len(), 7);
    let findings = judge("socket-activated", ls);
    assert!(findings.is_empty(), "{findings:?}");
}

/// Before the first connection, systemd alone holds port 22: judged by the unit it activates.
#[test]
fn socket_held_by_systemd_alone_is_judged_by_its_unit() {
    let text = fixture("socket-activated", "ss-tulpn.txt")
        .replace("((\"sshd\",pid=1047,fd=3),", "(")
        .replace("((\"sshd\",pid=1047,fd=4),", "(");
    let ls = parse_any(&text).expect("parses");
    // Unit unknown (systemctl gave nothing): systemd is not allowed by its own name.
    let findings = judge("socket-activated", ls.clone());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].detail.contains("tcp 0.0.0.0:22 (systemd)"),
        "{}",
        findings[0].detail
    );
    // `systemctl list-sockets` names ssh.service: allowed as `ssh` only if the policy says so.
    let sockets = owners::parse_list_sockets(
        "[::]:22 Stream ssh.socket ssh.service\n/run/dbus/system_bus_socket Stream dbus.socket dbus.service\n",
    );
    let mut with_unit = ls;
    owners::apply_units(&mut with_unit, &sockets);
    let findings = judge("socket-activated", with_unit.clone());
    assert_eq!(
        findings.len(),
        1,
        "sshd allowed, ssh.service not: {findings:?}"
    );
    let detail = &findings[0].detail;
    assert!(
        detail.contains("tcp 0.0.0.0:22 (systemd (pid 1, socket of ssh.service))"),
        "{detail}"
    );
}
