//! Who really owns a listening socket: the kernel's process names (`/proc/<pid>/comm`) for
//! processes that the listener tool printed by a title or cut short, and the service unit that
//! a socket held by systemd (pid 1) activates (`systemctl list-sockets`).
//!
//! The commands run over the same management session as the listener command; the parsers
//! here are pure.

use std::collections::BTreeMap;

use super::listeners::{Listener, Proto};

/// The pids whose printed name is a title or may be cut short
/// ([`super::listeners::Process::name_is_title_or_cut`]), each once, ascending.
pub fn pids_to_look_up(listeners: &[Listener]) -> Vec<u32> {
    let mut pids: Vec<u32> = listeners
        .iter()
        .flat_map(|l| &l.processes)
        .filter(|p| p.name_is_title_or_cut())
        .filter_map(|p| p.pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A shell command printing `PID COMM` per line for each pid (an empty COMM when the process
/// is gone). Pids are numbers, so nothing needs quoting.
pub fn comm_command(pids: &[u32]) -> String {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(
        "for p in {}; do printf '%s ' \"$p\"; cat /proc/$p/comm 2>/dev/null || echo; done",
        list.join(" ")
    )
}

/// Parses the output of [`comm_command`]: pid → name (names are at most 15 bytes and may hold
/// spaces; lines without a name are left out).
pub fn parse_comms(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let (pid, comm) = line.split_once(' ')?;
            let comm = comm.trim_end();
            let pid = pid.parse().ok()?;
            (!comm.is_empty()).then(|| (pid, comm.to_string()))
        })
        .collect()
}

/// Records each process's kernel name from `comms` (see [`parse_comms`]).
pub fn apply_comms(listeners: &mut [Listener], comms: &BTreeMap<u32, String>) {
    for p in listeners.iter_mut().flat_map(|l| l.processes.iter_mut()) {
        if let Some(comm) = p.pid.and_then(|pid| comms.get(&pid)) {
            p.comm = Some(comm.clone());
        }
    }
}

/// Lists socket units with their listen addresses, types and the units they activate.
pub const LIST_SOCKETS_COMMAND: &str =
    "LC_ALL=C systemctl list-sockets --all --full --no-legend --no-pager --show-types";

/// One row of `systemctl list-sockets --show-types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationSocket {
    /// The LISTEN column as printed (`[::]:22`, `0.0.0.0:53`, `/run/dbus/system_bus_socket`).
    pub listen: String,
    /// `Stream` is tcp, `Datagram` udp; `None` for other types (unix sockets, netlink, FIFOs).
    pub proto: Option<Proto>,
    /// `ssh.socket`
    pub socket_unit: String,
    /// `ssh.service` (several when one socket triggers more than one unit).
    pub activates: Vec<String>,
}

impl ActivationSocket {
    /// The port of an IP listen address (`[::]:22` → 22, `22` → 22); `None` for paths.
    pub fn port(&self) -> Option<u16> {
        let port = self.listen.rsplit(':').next()?;
        port.parse().ok()
    }
}

/// Parses `systemctl list-sockets --no-legend --show-types` (with or without the TYPE column;
/// the header line is skipped). A row is recognised by its `*.socket` unit column.
pub fn parse_list_sockets(text: &str) -> Vec<ActivationSocket> {
    text.lines().filter_map(parse_list_sockets_row).collect()
}

fn parse_list_sockets_row(line: &str) -> Option<ActivationSocket> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let unit_at = cols.iter().position(|c| c.ends_with(".socket"))?;
    let listen = (*cols.first()?).to_string();
    let proto = match cols.get(1).filter(|_| unit_at == 2) {
        Some(&"Stream") => Some(Proto::Tcp),
        Some(&"Datagram") => Some(Proto::Udp),
        _ => None,
    };
    let activates = cols[unit_at + 1..]
        .iter()
        .flat_map(|c| c.split(','))
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    Some(ActivationSocket {
        listen,
        proto,
        socket_unit: cols[unit_at].to_string(),
        activates,
    })
}

/// Names, on each systemd (pid 1) owner, the unit its socket activates: the socket unit
/// listening on the same port and protocol (any protocol when list-sockets gave no type).
pub fn apply_units(listeners: &mut [Listener], sockets: &[ActivationSocket]) {
    for l in listeners.iter_mut() {
        let found = sockets
            .iter()
            .find(|s| s.port() == Some(l.port) && s.proto.is_none_or(|p| p == l.proto));
        let Some(socket) = found else {
            continue;
        };
        let unit = if socket.activates.is_empty() {
            socket.socket_unit.clone()
        } else {
            socket.activates.join(", ")
        };
        for p in l.processes.iter_mut().filter(|p| p.is_activation_holder()) {
            p.unit = Some(unit.clone());
        }
    }
}

/// Whether a listener's owners are allowed by `allowed` (process names or unit names; a unit
/// may be named with or without `.service`).
///
/// systemd as pid 1 only holds activation sockets, so it is never judged by its own name: the
/// listener is allowed when every other owner is allowed (by its kernel name when known), or
/// when the unit the socket activates is allowed. A listener without a known owner is not
/// allowed.
pub fn owners_allowed(l: &Listener, allowed: &[String]) -> bool {
    let is_allowed = |name: &str| allowed.iter().any(|a| a == name);
    let unit_allowed = |unit: &str| {
        unit.split(", ")
            .all(|u| is_allowed(u) || u.strip_suffix(".service").is_some_and(is_allowed))
    };
    let mut others = l.processes.iter().filter(|p| !p.is_activation_holder());
    let units: Vec<&str> = l
        .processes
        .iter()
        .filter_map(|p| p.unit.as_deref())
        .collect();
    let by_others = others.clone().next().is_some() && others.all(|p| is_allowed(p.judged_name()));
    by_others || units.iter().any(|u| unit_allowed(u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::listeners::parse_any;

    #[test]
    fn comm_output_is_parsed_and_applied() {
        let mut ls = parse_any(
            "tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 733/sshd: /usr/sbin\n\
             tcp 0 0 0.0.0.0:8080 0.0.0.0:* LISTEN 9/java\n",
        )
        .expect("parses");
        assert_eq!(pids_to_look_up(&ls), vec![733]);
        assert_eq!(
            comm_command(&[733, 905]),
            "for p in 733 905; do printf '%s ' \"$p\"; cat /proc/$p/comm 2>/dev/null || echo; done"
        );
        let comms = parse_comms("733 sshd\n905 \n1 my daemon\n");
        assert_eq!(comms.get(&733).map(String::as_str), Some("sshd"));
        assert_eq!(
            comms.get(&905),
            None,
            "a process gone keeps its printed name"
        );
        assert_eq!(comms.get(&1).map(String::as_str), Some("my daemon"));
        apply_comms(&mut ls, &comms);
        assert_eq!(ls[0].processes[0].judged_name(), "sshd");
        assert_eq!(
            ls[0].processes[0].to_string(),
            "sshd (printed \"sshd: /usr/sbin\")"
        );
        assert_eq!(ls[1].processes[0].to_string(), "java");
    }

    #[test]
    fn list_sockets_rows() {
        let text = "LISTEN TYPE UNIT ACTIVATES\n\
                    /run/dbus/system_bus_socket Stream dbus.socket dbus.service\n\
                    [::]:22 Stream ssh.socket ssh.service\n\
                    0.0.0.0:514 Datagram syslog.socket rsyslog.service\n\
                    kobject-uevent 1 Netlink systemd-udevd-kernel.socket systemd-udevd.service\n";
        let rows = parse_list_sockets(text);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].port(), Some(22));
        assert_eq!(rows[1].proto, Some(Proto::Tcp));
        assert_eq!(rows[1].activates, vec!["ssh.service".to_string()]);
        assert_eq!(rows[2].proto, Some(Proto::Udp));
        assert_eq!(rows[0].port(), None);
        assert_eq!(rows[3].proto, None);
        // without --show-types
        let rows = parse_list_sockets("[::]:22 ssh.socket ssh.service\n");
        assert_eq!((rows[0].port(), rows[0].proto), (Some(22), None));
    }

    fn listener(procs: &[(&str, u32)]) -> Listener {
        let line = format!(
            "tcp LISTEN 0 4096 0.0.0.0:22 0.0.0.0:* users:({})",
            procs
                .iter()
                .map(|(n, p)| format!("(\"{n}\",pid={p},fd=3)"))
                .collect::<Vec<_>>()
                .join(",")
        );
        parse_any(&line).expect("parses").remove(0)
    }

    #[test]
    fn systemd_is_judged_by_the_other_owners_or_by_its_unit() {
        let allowed = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = listener(&[("sshd", 1047), ("systemd", 1)]);
        assert!(owners_allowed(&both, &allowed(&["sshd"])));
        assert!(!owners_allowed(&both, &allowed(&["nginx"])));
        let mut alone = listener(&[("systemd", 1)]);
        assert!(!owners_allowed(&alone, &allowed(&["sshd"])), "unit unknown");
        assert!(
            !owners_allowed(&alone, &allowed(&["systemd"])),
            "never by its own name"
        );
        let sockets = parse_list_sockets("[::]:22 Stream ssh.socket ssh.service\n");
        apply_units(std::slice::from_mut(&mut alone), &sockets);
        assert!(owners_allowed(&alone, &allowed(&["ssh.service"])));
        assert!(owners_allowed(&alone, &allowed(&["ssh"])));
        assert!(!owners_allowed(&alone, &allowed(&["sshd"])));
        assert_eq!(
            alone.processes[0].to_string(),
            "systemd (pid 1, socket of ssh.service)"
        );
        // systemd as another pid (a user manager) is judged like any process
        let user_manager = listener(&[("systemd", 4242)]);
        assert!(owners_allowed(&user_manager, &allowed(&["systemd"])));
        let nobody = parse_any("tcp LISTEN 0 1 0.0.0.0:22 0.0.0.0:*").expect("parses");
        assert!(!owners_allowed(&nobody[0], &allowed(&["sshd"])));
    }
}
