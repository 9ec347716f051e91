//! Fixture files: outputs captured on a real machine (`real_*`) and hand-made ones (`handmade_*`).
//!
//! The real captures come from a box with eth0 = 192.0.2.2/24, fd00::2/64, fe80::fc:ff:fe00:1/64,
//! with these listeners started for the occasion:
//! - `python3 -m http.server 8765 --bind 127.0.0.1` (pid 22454) and `... 8766 --bind 0.0.0.0` (22455);
//! - a process that renamed itself "web, worker 1" (prctl) and forked after `listen()` on
//!   0.0.0.0:8770, so two pids (22456, 22628) share one socket;
//! - a process started as `exec -a 'srv: my, app --flag' python3 ...` and renamed "my app (x)",
//!   pid 23636, holding the other sockets (v4-mapped, link-local, SO_BINDTODEVICE, ULA, ...);
//! - 0.0.0.0:2024 belongs to the machine and has no visible owner.

use std::net::IpAddr;

use shared::ssh::listeners::{
    parse_any, parse_netstat, parse_ss, BindAddr, Listener, Process, Proto,
};

const REAL_SS_ROOT: &str = include_str!("fixtures/real_ss_root.txt");
const REAL_SS_NONROOT: &str = include_str!("fixtures/real_ss_nonroot.txt");
const REAL_SS_WITH_HEADER: &str = include_str!("fixtures/real_ss_with_header.txt");
const REAL_SS_TCP_ONLY: &str = include_str!("fixtures/real_ss_tcp_only.txt");
const REAL_NETSTAT_ROOT: &str = include_str!("fixtures/real_netstat_root.txt");
const REAL_NETSTAT_NONROOT: &str = include_str!("fixtures/real_netstat_nonroot.txt");
const REAL_NETSTAT_WIDE: &str = include_str!("fixtures/real_netstat_wide.txt");
const HANDMADE_SS_FORMS: &str = include_str!("fixtures/handmade_ss_forms.txt");
const HANDMADE_SS_OLD: &str = include_str!("fixtures/handmade_ss_old_iproute.txt");
const HANDMADE_NETSTAT_FORMS: &str = include_str!("fixtures/handmade_netstat_forms.txt");

use Proto::{Tcp, Udp};

fn ip(s: &str) -> BindAddr {
    BindAddr::Ip(s.parse::<IpAddr>().expect("test address"))
}

/// A listener with processes given as (name, pid).
fn l(
    proto: Proto,
    addr: BindAddr,
    port: u16,
    iface: Option<&str>,
    procs: &[(&str, u32)],
) -> Listener {
    Listener {
        proto,
        addr,
        port,
        iface: iface.map(str::to_string),
        processes: procs
            .iter()
            .map(|(name, pid)| Process::new(name, Some(*pid)))
            .collect(),
    }
}

fn without_processes(v: &[Listener]) -> Vec<Listener> {
    v.iter()
        .map(|x| Listener {
            processes: Vec::new(),
            ..x.clone()
        })
        .collect()
}

const APP: &[(&str, u32)] = &[("my app (x", 23636)];
const APP_NETSTAT: &[(&str, u32)] = &[("srv: my, app", 23636)];

fn expected_real_ss() -> Vec<Listener> {
    vec![
        l(Udp, ip("127.0.0.53"), 15353, Some("lo"), APP),
        l(Udp, BindAddr::AnyV4, 15363, None, APP),
        l(Udp, ip("::1"), 15354, None, APP),
        l(Udp, BindAddr::Any, 15355, None, APP),
        l(Udp, ip("fe80::fc:ff:fe00:1"), 15546, Some("eth0"), APP),
        l(Tcp, BindAddr::AnyV4, 2024, None, &[]),
        l(Tcp, ip("192.0.2.2"), 8776, None, APP),
        l(Tcp, ip("127.0.0.1"), 8765, None, &[("python3", 22454)]),
        l(
            Tcp,
            BindAddr::AnyV4,
            8770,
            None,
            &[("web, worker 1", 22628), ("web, worker 1", 22456)],
        ),
        l(Tcp, BindAddr::AnyV4, 8773, Some("eth0"), APP),
        l(Tcp, BindAddr::AnyV4, 8766, None, &[("python3", 22455)]),
        l(Tcp, ip("fe80::fc:ff:fe00:1"), 8772, Some("eth0"), APP),
        l(Tcp, ip("::ffff:127.0.0.1"), 8771, None, APP),
        l(Tcp, ip("fd00::2"), 8775, None, APP),
        l(Tcp, BindAddr::AnyV6, 8774, None, APP),
    ]
}

/// (is_public, is_all_interfaces) for each row of [`expected_real_ss`].
const REAL_SS_CLASSES: &[(bool, bool)] = &[
    (false, false), // 127.0.0.53%lo
    (true, true),   // 0.0.0.0
    (false, false), // ::1
    (true, true),   // *
    (false, false), // fe80::%eth0
    (true, true),   // 0.0.0.0:2024
    (true, false),  // 192.0.2.2 (not in any excluded class)
    (false, false), // 127.0.0.1
    (true, true),   // 0.0.0.0:8770
    (true, false),  // 0.0.0.0%eth0: bound to one device
    (true, true),   // 0.0.0.0:8766
    (false, false), // fe80::%eth0
    (false, false), // ::ffff:127.0.0.1
    (false, false), // fd00::2 (ULA)
    (true, true),   // [::]
];

fn expected_real_netstat() -> Vec<Listener> {
    vec![
        l(Tcp, BindAddr::AnyV4, 2024, None, &[]),
        l(Tcp, ip("192.0.2.2"), 8776, None, APP_NETSTAT),
        l(Tcp, ip("127.0.0.1"), 8765, None, &[("python3", 22454)]),
        // netstat names only one of the two processes, and by command line, not comm
        l(Tcp, BindAddr::AnyV4, 8770, None, &[("python3", 22456)]),
        // netstat does not show the device binding
        l(Tcp, BindAddr::AnyV4, 8773, None, APP_NETSTAT),
        l(Tcp, BindAddr::AnyV4, 8766, None, &[("python3", 22455)]),
        l(Tcp, ip("fe80::fc:ff:fe00:1"), 8772, None, APP_NETSTAT),
        // ::ffff:127.0.0.1 is printed as plain IPv4 under tcp6
        l(Tcp, ip("127.0.0.1"), 8771, None, APP_NETSTAT),
        l(Tcp, ip("fd00::2"), 8775, None, APP_NETSTAT),
        l(Tcp, BindAddr::AnyV6, 8774, None, APP_NETSTAT),
        l(Udp, ip("127.0.0.53"), 15353, None, APP_NETSTAT),
        l(Udp, BindAddr::AnyV4, 15363, None, APP_NETSTAT),
        l(Udp, ip("::1"), 15354, None, APP_NETSTAT),
        l(Udp, BindAddr::AnyV6, 15355, None, APP_NETSTAT),
        // "fe80::fc:ff:fe00::15546": the host was cut to fit 23 columns, completed with 0
        l(Udp, ip("fe80::fc:ff:fe00:0"), 15546, None, APP_NETSTAT),
    ]
}

#[test]
fn real_ss_as_root() {
    let got = parse_ss(REAL_SS_ROOT).expect("parses");
    assert_eq!(got, expected_real_ss());
    let classes: Vec<_> = got
        .iter()
        .map(|x| (x.is_public(), x.is_all_interfaces()))
        .collect();
    assert_eq!(classes, REAL_SS_CLASSES);
    assert_eq!(parse_any(REAL_SS_ROOT).expect("parses"), got);
}

#[test]
fn real_ss_with_header_line() {
    assert!(REAL_SS_WITH_HEADER.starts_with("Netid State"));
    assert_eq!(
        parse_ss(REAL_SS_WITH_HEADER).expect("parses"),
        expected_real_ss()
    );
    assert_eq!(
        parse_any(REAL_SS_WITH_HEADER).expect("parses"),
        expected_real_ss()
    );
}

#[test]
fn real_ss_as_non_root_has_no_process_column() {
    let got = parse_ss(REAL_SS_NONROOT).expect("parses");
    assert_eq!(got, without_processes(&expected_real_ss()));
    assert_eq!(parse_any(REAL_SS_NONROOT).expect("parses"), got);
}

#[test]
fn real_ss_tcp_only_has_no_netid_column() {
    let got = parse_ss(REAL_SS_TCP_ONLY).expect("parses");
    let tcp: Vec<_> = expected_real_ss()
        .into_iter()
        .filter(|x| x.proto == Tcp)
        .collect();
    assert_eq!(got, tcp);
    assert_eq!(parse_any(REAL_SS_TCP_ONLY).expect("parses"), got);
}

#[test]
fn real_netstat_as_root() {
    let got = parse_netstat(REAL_NETSTAT_ROOT).expect("parses");
    assert_eq!(got, expected_real_netstat());
    assert_eq!(parse_any(REAL_NETSTAT_ROOT).expect("parses"), got);
    let public: Vec<_> = got.iter().map(Listener::is_public).collect();
    assert_eq!(
        public,
        [
            true, true, false, true, true, true, false, false, false, true, false, true, false,
            true, false
        ]
    );
}

#[test]
fn real_netstat_wide_keeps_whole_addresses() {
    let got = parse_netstat(REAL_NETSTAT_WIDE).expect("parses");
    let mut expected = expected_real_netstat();
    expected[14].addr = ip("fe80::fc:ff:fe00:1");
    assert_eq!(got, expected);
    assert_eq!(parse_any(REAL_NETSTAT_WIDE).expect("parses"), got);
}

#[test]
fn real_netstat_as_non_root_shows_dashes() {
    let got = parse_netstat(REAL_NETSTAT_NONROOT).expect("parses");
    assert_eq!(got, without_processes(&expected_real_netstat()));
    assert_eq!(parse_any(REAL_NETSTAT_NONROOT).expect("parses"), got);
}

#[test]
fn real_ss_and_netstat_agree_on_ports() {
    let key = |v: Vec<Listener>| {
        let mut k: Vec<_> = v.into_iter().map(|x| (x.proto == Tcp, x.port)).collect();
        k.sort_unstable();
        k
    };
    assert_eq!(
        key(parse_any(REAL_SS_ROOT).expect("ss")),
        key(parse_any(REAL_NETSTAT_ROOT).expect("netstat"))
    );
}

#[test]
fn handmade_ss_forms() {
    let got = parse_ss(HANDMADE_SS_FORMS).expect("parses");
    let expected = vec![
        l(
            Tcp,
            BindAddr::AnyV4,
            22,
            None,
            &[("sshd", 812), ("sshd", 900)],
        ),
        l(
            Tcp,
            BindAddr::AnyV6,
            22,
            None,
            &[("sshd", 812), ("sshd", 900)],
        ),
        l(
            Tcp,
            BindAddr::Any,
            80,
            None,
            &[("nginx: worker, 1", 1201), ("nginx: master", 1199)],
        ),
        l(
            Udp,
            ip("127.0.0.53"),
            53,
            Some("lo"),
            &[("systemd-resolve", 620)],
        ),
        l(Tcp, ip("::1"), 631, None, &[("cupsd", 1000)]),
        l(Tcp, ip("::ffff:10.0.0.5"), 8080, None, &[("java", 4242)]),
        l(Udp, ip("10.0.0.5"), 68, Some("eth0"), &[("dhclient", 700)]),
        l(Udp, ip("fe80::1"), 546, Some("eth0"), &[("dhclient", 701)]),
        l(Tcp, ip("100.64.1.2"), 9100, None, &[]),
        l(Udp, ip("169.254.10.1"), 123, None, &[]),
        l(
            Tcp,
            ip("2a03:b0c0:3:d0::1e:2001"),
            443,
            None,
            &[("caddy", 555)],
        ),
        l(Tcp, ip("fd12:3456::9"), 5432, None, &[("postgres", 321)]),
    ];
    assert_eq!(got, expected);
    let public: Vec<_> = got.iter().map(Listener::is_public).collect();
    assert_eq!(
        public,
        [true, true, true, false, false, false, false, false, false, false, true, false]
    );
    assert_eq!(parse_any(HANDMADE_SS_FORMS).expect("parses"), got);
}

#[test]
fn handmade_old_iproute_ss() {
    let got = parse_ss(HANDMADE_SS_OLD).expect("parses");
    let expected = vec![
        l(Udp, BindAddr::Any, 68, None, &[("dhclient", 700)]),
        l(Tcp, BindAddr::Any, 22, None, &[("sshd", 1100)]),
        l(Tcp, BindAddr::AnyV6, 22, None, &[("sshd", 1100)]),
        l(Tcp, ip("127.0.0.1"), 25, None, &[("master", 1300)]),
        l(Tcp, ip("::1"), 25, None, &[("master", 1300)]),
        l(Udp, ip("fe80::1"), 546, Some("eth0"), &[("dhclient", 701)]),
    ];
    assert_eq!(got, expected);
    assert_eq!(parse_any(HANDMADE_SS_OLD).expect("parses"), got);
}

#[test]
fn handmade_netstat_forms() {
    let got = parse_netstat(HANDMADE_NETSTAT_FORMS).expect("parses");
    let expected = vec![
        l(Tcp, BindAddr::AnyV4, 22, None, &[("sshd: /usr/sbin", 812)]),
        l(Tcp, ip("127.0.0.1"), 6379, None, &[]),
        l(Tcp, ip("10.0.0.5"), 9100, None, &[("node_exporter", 999)]),
        l(Tcp, BindAddr::AnyV6, 22, None, &[("sshd", 812)]),
        l(Tcp, ip("::1"), 631, None, &[("cupsd", 1000)]),
        l(Tcp, BindAddr::AnyV6, 443, None, &[("caddy", 555)]),
        l(Udp, ip("127.0.0.53"), 53, None, &[("systemd-resolve", 620)]),
        l(Udp, BindAddr::AnyV4, 68, None, &[("dhclient", 700)]),
        l(Udp, ip("fe80::1"), 546, None, &[("dhclient", 701)]),
        // really fe80::601:2cff:fe3f:1a01, cut by netstat to a prefix that still parses
        l(
            Udp,
            ip("fe80::601:2cff:fe3f"),
            546,
            None,
            &[("systemd-network", 702)],
        ),
    ];
    assert_eq!(got, expected);
    let public: Vec<_> = got.iter().map(Listener::is_public).collect();
    assert_eq!(
        public,
        [true, false, false, true, false, true, false, true, false, false]
    );
    assert_eq!(parse_any(HANDMADE_NETSTAT_FORMS).expect("parses"), got);
}

#[test]
fn a_garbage_line_in_a_real_capture_is_reported_by_number() {
    let mut lines: Vec<&str> = REAL_SS_ROOT.lines().collect();
    lines.insert(
        6,
        "bash: warning: setlocale: LC_ALL: cannot change locale (xx)",
    );
    let err = parse_ss(&lines.join("\n")).expect_err("garbage");
    assert_eq!(err.line, 7);
    assert!(err.to_string().contains("line 7"), "{err}");
    assert!(err.to_string().contains("setlocale"), "{err}");
    let err = parse_any(&lines.join("\n")).expect_err("garbage");
    assert_eq!(err.line, 7);

    let mut lines: Vec<&str> = REAL_NETSTAT_ROOT.lines().collect();
    lines.insert(
        10,
        "tcp        0      0 0.0.0.0:ssh             0.0.0.0:*               LISTEN      1/x",
    );
    let err = parse_any(&lines.join("\n")).expect_err("garbage");
    assert_eq!(err.line, 11);
    assert!(err.to_string().contains("-n"), "{err}");
}
