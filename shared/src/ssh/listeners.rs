//! Listening sockets of a Droplet, parsed from the text of `ss -H -tulpn` or `netstat -plunt`.
//!
//! The parsers are pure: they take the command's standard output as text and return one
//! [`Listener`] per listening socket, in the order printed. They are strict about what they
//! do not understand (a line that cannot be read is a [`ParseError`] naming its 1-based line)
//! and lenient about what is known to be harmless (blank lines, column headers, netstat's
//! "Active Internet connections" banner and its "not all processes could be identified" notes).
//!
//! Sockets that are not listening (`ESTAB`, `TIME-WAIT`, ... as printed with `-a`) are parsed
//! and then left out: a TCP socket counts when its state is `LISTEN`, a UDP socket when it is
//! unconnected (`UNCONN` in ss, an empty state in netstat, or no state column at all).
//!
//! Format notes worth knowing (all covered by tests):
//! - ss prints a link-local scope *outside* the brackets (`[fe80::1]%eth0:546`); the form
//!   inside (`[fe80::1%eth0]:546`) and old ss's unbracketed IPv6 (`:::22`) are accepted too.
//! - ss prints a dual-stack `::` socket (IPV6_V6ONLY off) as `*:port`, a v6-only one as `[::]:port`.
//! - ss cuts a process name at its first `)` (it reads `/proc/PID/stat` with `%[^)]`), and
//!   lists every process sharing a socket; netstat lists only one, and cuts `PID/name` to 19
//!   characters, taking the name from the command line (so it may hold spaces and `:`).
//! - netstat shows a v4-mapped IPv6 socket (`::ffff:127.0.0.1`) as plain IPv4 under `tcp6`.
//! - netstat without `-W` cuts the local address to 23 characters by shortening the *host*
//!   (the port is kept whole), e.g. `fe80::fc:ff:fe00::15546`. A host cut so that it no longer
//!   parses is completed with zeros (`fe80::fc:ff:fe00:0`); one that still parses cannot be
//!   told from a real address. The prefix, and so [`Listener::is_public`], stays right either
//!   way; run `netstat -plunW` (or prefer ss) to get whole addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// Transport protocol. `tcp6`/`udp6` map to `Tcp`/`Udp`; the family is in [`Listener::addr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// The local address a socket is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindAddr {
    /// `0.0.0.0`
    AnyV4,
    /// `::` (shown `[::]` by ss, `::` by netstat)
    AnyV6,
    /// `*`: ss's dual-stack wildcard (old ss also used it for `0.0.0.0`)
    Any,
    /// A specific address, kept as printed (a v4-mapped IPv6 address stays IPv6).
    Ip(IpAddr),
}

/// A process holding the socket open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Process {
    /// As printed: possibly cut short by the tool, may contain spaces, commas or `:`.
    pub name: String,
    pub pid: Option<u32>,
    /// The kernel's name for the process (`/proc/<pid>/comm`, at most 15 bytes), read over the
    /// management session when `name` is a title or may be cut short; `None` when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// For systemd (pid 1) holding a socket-activation socket: the service unit the socket
    /// activates, as `systemctl list-sockets` names it (`ssh.service`); `None` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Listener {
    pub proto: Proto,
    pub addr: BindAddr,
    pub port: u16,
    /// The `%eth0` suffix: a link-local scope, or a device the socket is bound to (SO_BINDTODEVICE).
    pub iface: Option<String>,
    /// Empty when the tool could not see the owner (not root) or was run without `-p`.
    /// A process appearing with several descriptors on the same socket is listed once.
    pub processes: Vec<Process>,
}

/// netstat's `PID/Program name` column: at most 19 characters, the name taken from the command
/// line; a cut may leave a trailing space that the parser trims.
const NETSTAT_PROGRAM_WIDTH: usize = 19;

impl Process {
    /// A process as the listener tool printed it (`comm` and `unit` not read yet).
    pub fn new(name: &str, pid: Option<u32>) -> Self {
        Process {
            name: name.to_string(),
            pid,
            comm: None,
            unit: None,
        }
    }

    /// The name to judge the process by: the kernel's (`comm`) when it was read, else as printed.
    pub fn judged_name(&self) -> &str {
        self.comm.as_deref().unwrap_or(&self.name)
    }

    /// The printed name may not be the process's own: it is a title a daemon set for itself
    /// (`sshd: /usr/sbin…`, `nginx: master`: spaces or `:`), or it fills netstat's 19-character
    /// `PID/name` column (less the trailing space a cut can leave) and may be cut short.
    /// Only a process with a pid can be looked up.
    pub fn name_is_title_or_cut(&self) -> bool {
        let Some(pid) = self.pid else {
            return false;
        };
        let title = self.name.contains(|c: char| c.is_whitespace() || c == ':');
        let width = pid.to_string().len() + 1 + self.name.len();
        title || width + 1 >= NETSTAT_PROGRAM_WIDTH
    }

    /// systemd as pid 1: it holds socket-activation sockets on behalf of the unit they activate.
    pub fn is_activation_holder(&self) -> bool {
        self.pid == Some(1) && self.name == "systemd"
    }
}

impl fmt::Display for Process {
    /// `sshd`; `nginx (printed "nginx: master")`; `systemd (pid 1, socket of ssh.service)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.judged_name())?;
        if self.comm.as_deref().is_some_and(|c| c != self.name) {
            write!(f, " (printed {:?})", self.name)?;
        }
        if let Some(unit) = &self.unit {
            write!(f, " (pid 1, socket of {unit})")?;
        }
        Ok(())
    }
}

impl BindAddr {
    /// `0.0.0.0`, `::`, `*`, or an address that is unspecified once un-mapped (`::ffff:0.0.0.0`).
    pub fn is_wildcard(&self) -> bool {
        match self {
            BindAddr::AnyV4 | BindAddr::AnyV6 | BindAddr::Any => true,
            BindAddr::Ip(ip) => ip.to_canonical().is_unspecified(),
        }
    }

    /// A wildcard, or a public address (see [`is_public_ip`]).
    pub fn is_public(&self) -> bool {
        match self {
            BindAddr::Ip(ip) => is_public_ip(*ip),
            _ => true,
        }
    }
}

/// Whether an address is reachable from outside as far as its class says: not loopback,
/// not private (RFC 1918, IPv6 ULA `fc00::/7`), not link-local (`169.254/16`, `fe80::/10`),
/// not CGNAT (`100.64/10`). A v4-mapped IPv6 address is judged by the IPv4 inside.
/// The unspecified address counts as public (it means every interface).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => !is_non_public_v4(v4),
        IpAddr::V6(v6) => !is_non_public_v6(v6),
    }
}

fn is_non_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    v4.is_loopback() || v4.is_private() || v4.is_link_local() || cgnat
}

fn is_non_public_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    let ula = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    v6.is_loopback() || ula || link_local
}

impl Listener {
    /// Listens on all interfaces (0.0.0.0, ::, *), or on a public (not loopback, not private
    /// RFC1918/ULA fc00::/7, not link-local, not CGNAT 100.64/10) address.
    ///
    /// A socket bound to the loopback device (`%lo`) is never public. A wildcard bound to
    /// another device (`0.0.0.0%eth0`) is public: which devices face the Internet is not known here.
    pub fn is_public(&self) -> bool {
        if self.iface.as_deref() == Some("lo") {
            return false;
        }
        self.addr.is_public()
    }

    /// Bound to a wildcard address and not restricted to one device.
    pub fn is_all_interfaces(&self) -> bool {
        self.addr.is_wildcard() && self.iface.is_none()
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::AnyV4 => f.write_str("0.0.0.0"),
            BindAddr::AnyV6 => f.write_str("[::]"),
            BindAddr::Any => f.write_str("*"),
            BindAddr::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            BindAddr::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
        }
    }
}

/// `tcp 0.0.0.0:22`, `udp [fe80::1]%eth0:546`, the way ss writes addresses.
impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.proto, self.addr)?;
        if let Some(iface) = &self.iface {
            write!(f, "%{iface}")?;
        }
        write!(f, ":{}", self.port)
    }
}

/// What was wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ParseErrorKind {
    #[error("not a line of {0} output")]
    Unrecognized(&'static str),
    #[error("unsupported protocol {0:?} (only tcp and udp)")]
    UnsupportedProtocol(String),
    #[error("unknown socket state {0:?}")]
    UnknownState(String),
    #[error("missing {0} column")]
    MissingColumn(&'static str),
    #[error("{column} {value:?} is not a number")]
    BadNumber { column: &'static str, value: String },
    #[error("bad local address {0:?}")]
    BadAddress(String),
    #[error("bad port {0:?} (ports must be numeric: run the tool with -n)")]
    BadPort(String),
    #[error("peer address {0:?} has no port")]
    BadPeer(String),
    #[error("bad process column {0:?}")]
    BadProcess(String),
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}: {kind}: {text:?}")]
pub struct ParseError {
    /// 1-based, counting every line of the input (blank ones too).
    pub line: usize,
    pub kind: ParseErrorKind,
    /// The offending line, trimmed (and cut to 200 characters).
    pub text: String,
}

impl ParseError {
    fn new(line: usize, kind: ParseErrorKind, text: &str) -> Self {
        let text = text.trim();
        let text = match text.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        };
        ParseError { line, kind, text }
    }
}

type LineResult = Result<Line, ParseErrorKind>;

/// What one line of output turned out to be.
enum Line {
    /// Blank, header, or a known harmless note.
    Skip,
    /// A socket that is not listening.
    NotListening,
    Listener(Listener),
}

fn parse_lines(
    text: &str,
    parse_line: fn(&str) -> LineResult,
) -> Result<Vec<Listener>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw) {
            Ok(Line::Listener(l)) => out.push(l),
            Ok(Line::Skip | Line::NotListening) => {}
            Err(kind) => return Err(ParseError::new(i + 1, kind, raw)),
        }
    }
    Ok(out)
}

/// Parses `ss -H -tulpn` output (with or without the header line; with or without the Netid
/// column, as `ss -tlpn` prints for a single protocol, where `LISTEN` means tcp and `UNCONN` udp).
/// Older forms are accepted: a UDP row without a state, unbracketed IPv6 (`:::22`), and
/// `users:(("sshd",812,3))` without `pid=`/`fd=`.
pub fn parse_ss(text: &str) -> Result<Vec<Listener>, ParseError> {
    parse_lines(text, parse_ss_line)
}

/// Parses `netstat -plunt` output (net-tools; `-W` wide output too).
pub fn parse_netstat(text: &str) -> Result<Vec<Listener>, ParseError> {
    parse_lines(text, parse_netstat_line)
}

/// Tries ss format, then netstat format (detects by header/shape).
///
/// A recognised header picks the parser. Otherwise ss is tried, then netstat; when both fail,
/// the error of the one that got further into the text is returned (ss's on a tie).
pub fn parse_any(text: &str) -> Result<Vec<Listener>, ParseError> {
    match detect_by_header(text) {
        Some(Format::Ss) => parse_ss(text),
        Some(Format::Netstat) => parse_netstat(text),
        None => match parse_ss(text) {
            Ok(v) => Ok(v),
            Err(ss_err) => match parse_netstat(text) {
                Ok(v) => Ok(v),
                Err(ns_err) if ns_err.line > ss_err.line => Err(ns_err),
                Err(_) => Err(ss_err),
            },
        },
    }
}

enum Format {
    Ss,
    Netstat,
}

fn detect_by_header(text: &str) -> Option<Format> {
    text.lines().find_map(|line| {
        if is_ss_header(line) {
            Some(Format::Ss)
        } else if is_netstat_header(line) {
            Some(Format::Netstat)
        } else {
            None
        }
    })
}

/// Splits a line into whitespace-separated columns while keeping the rest available whole
/// (the last column may contain spaces).
struct Columns<'a> {
    rest: &'a str,
}

impl<'a> Columns<'a> {
    fn new(line: &'a str) -> Self {
        Columns { rest: line }
    }

    fn peek(&self) -> Option<&'a str> {
        self.rest.split_whitespace().next()
    }

    fn next_col(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start();
        if s.is_empty() {
            return None;
        }
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        let (col, rest) = s.split_at(end);
        self.rest = rest;
        Some(col)
    }

    fn require(&mut self, name: &'static str) -> Result<&'a str, ParseErrorKind> {
        self.next_col().ok_or(ParseErrorKind::MissingColumn(name))
    }

    fn number(&mut self, name: &'static str) -> Result<u64, ParseErrorKind> {
        let col = self.require(name)?;
        parse_digits(col).ok_or_else(|| ParseErrorKind::BadNumber {
            column: name,
            value: col.to_string(),
        })
    }

    fn remainder(&self) -> &'a str {
        self.rest.trim()
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if is_digits(s) {
        s.parse().ok()
    } else {
        None
    }
}

/// Looks like a state word (`LISTEN`, `SYN-SENT`, `FIN_WAIT1`): upper-case letters, digits, `-`, `_`.
fn looks_like_state(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

// ---------------------------------------------------------------- ss

const SS_STATES: &[&str] = &[
    "LISTEN",
    "UNCONN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "NEW-SYN-RECV",
    "BOUND-INACTIVE",
    "UNKNOWN",
];

/// Netids ss prints for sockets other than tcp/udp.
const SS_OTHER_NETIDS: &[&str] = &[
    "raw", "sctp", "mptcp", "dccp", "u_str", "u_dgr", "u_seq", "p_raw", "p_dgr", "nl", "v_str",
    "v_dgr", "xdp", "tipc", "icmp6",
];

fn is_ss_header(line: &str) -> bool {
    let mut cols = line.split_whitespace();
    match cols.next() {
        Some("Netid") => true,
        Some("State") => line.contains("Recv-Q"),
        _ => false,
    }
}

fn parse_ss_line(line: &str) -> LineResult {
    if is_ss_header(line) {
        return Ok(Line::Skip);
    }
    let mut cols = Columns::new(line);
    let first = cols.require("Netid")?;
    let (netid, state) = match first {
        "tcp" => (Some(Proto::Tcp), None),
        "udp" => (Some(Proto::Udp), None),
        s if SS_STATES.contains(&s) => (None, Some(s)),
        s if SS_OTHER_NETIDS.contains(&s) => {
            return Err(ParseErrorKind::UnsupportedProtocol(s.to_string()))
        }
        _ => return Err(ParseErrorKind::Unrecognized("ss")),
    };
    let state = match (state, cols.peek()) {
        (Some(s), _) => Some(s),
        (None, Some(s)) if SS_STATES.contains(&s) => cols.next_col(),
        // Some versions print UDP rows without a state: Recv-Q follows the Netid.
        (None, Some(s)) if is_digits(s) => None,
        (None, Some(s)) if looks_like_state(s) => {
            return Err(ParseErrorKind::UnknownState(s.to_string()))
        }
        (None, Some(_)) => return Err(ParseErrorKind::Unrecognized("ss")),
        (None, None) => return Err(ParseErrorKind::MissingColumn("State")),
    };
    cols.number("Recv-Q")?;
    cols.number("Send-Q")?;
    let local = cols.require("Local Address:Port")?;
    let peer = cols.require("Peer Address:Port")?;
    if !peer.contains(':') {
        return Err(ParseErrorKind::BadPeer(peer.to_string()));
    }
    let processes = parse_ss_process_column(cols.remainder())?;
    let (addr, port, iface) = parse_local(local)?;

    let proto = match (netid, state) {
        (Some(p), _) => p,
        (None, Some("LISTEN")) => Proto::Tcp,
        (None, Some("UNCONN")) => Proto::Udp,
        // Without a Netid column the protocol of other states cannot be known, but they
        // are not listening anyway.
        (None, _) => return Ok(Line::NotListening),
    };
    let listening = match proto {
        Proto::Tcp => matches!(state, Some("LISTEN") | None),
        Proto::Udp => matches!(state, Some("UNCONN") | None),
    };
    if !listening {
        return Ok(Line::NotListening);
    }
    Ok(Line::Listener(Listener {
        proto,
        addr,
        port,
        iface,
        processes,
    }))
}

/// The Process column: empty, or `users:(("name",pid=1,fd=3),...)`, possibly followed by other
/// `key:value` fields (as `-e` adds). Anything else is an error.
fn parse_ss_process_column(col: &str) -> Result<Vec<Process>, ParseErrorKind> {
    let bad = || ParseErrorKind::BadProcess(col.to_string());
    if col.is_empty() {
        return Ok(Vec::new());
    }
    let (processes, rest) = if col.starts_with("users:(") {
        let (processes, rest) = parse_ss_users(col).ok_or_else(bad)?;
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return Err(bad());
        }
        (processes, rest)
    } else {
        (Vec::new(), col)
    };
    // Extra fields such as `uid:0 ino:1234 sk:1 cgroup:/system.slice <->`.
    let extra_ok = rest.split_whitespace().all(|tok| {
        matches!(tok, "<->" | "-->" | "<--")
            || tok.split_once(':').is_some_and(|(key, _)| {
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
    });
    if !extra_ok {
        return Err(bad());
    }
    Ok(processes)
}

/// Parses `users:((...),(...))` at the start of `s`; returns the processes and what follows.
///
/// A name is quoted but not escaped, so it may itself contain `",`; the end of a name is the
/// first `",` followed by a well-formed `pid=N,fd=N)` (or old ss's `N,N)`) and then by `,("`
/// or the closing `)`.
fn parse_ss_users(s: &str) -> Option<(Vec<Process>, &str)> {
    let mut rest = s.strip_prefix("users:(")?;
    let mut processes: Vec<Process> = Vec::new();
    loop {
        rest = rest.strip_prefix("(\"")?;
        let mut from = 0;
        let (name, pid, after) = loop {
            let at = from + rest.get(from..)?.find("\",")?;
            if let Some((pid, after)) = parse_ss_user_tail(&rest[at + 2..]) {
                // A real end of entry is followed by the next entry or the end of the list.
                if after.starts_with(",(\"") || after.starts_with(')') {
                    break (&rest[..at], pid, after);
                }
            }
            from = at + 1;
        };
        let process = Process::new(name, pid);
        if !processes.contains(&process) {
            processes.push(process);
        }
        rest = after;
        if let Some(r) = rest.strip_prefix(')') {
            return Some((processes, r));
        }
        rest = rest.strip_prefix(',')?;
    }
}

/// `pid=812,fd=3)` or `812,3)`: returns the pid and what follows the `)`.
fn parse_ss_user_tail(s: &str) -> Option<(Option<u32>, &str)> {
    let close = s.find(')')?;
    let mut pid = None;
    let mut bare = 0;
    for item in s[..close].split(',') {
        match item.split_once('=') {
            Some((key, value)) => {
                if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                let value: u64 = parse_digits(value)?;
                if key == "pid" {
                    pid = Some(u32::try_from(value).ok()?);
                }
            }
            None => {
                let value: u64 = parse_digits(item)?;
                if bare == 0 && pid.is_none() {
                    pid = Some(u32::try_from(value).ok()?);
                }
                bare += 1;
            }
        }
    }
    Some((pid, &s[close + 1..]))
}

// ---------------------------------------------------------------- netstat

const NETSTAT_STATES: &[&str] = &[
    "LISTEN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "CLOSING",
    "UNKNOWN",
];

/// Width of netstat's (non-wide) address columns: longer `host:port` has its host cut.
const NETSTAT_ADDR_WIDTH: usize = 23;

fn is_netstat_header(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("Active Internet connections")
        || (t.starts_with("Proto ") && t.contains("Recv-Q"))
}

/// Notes that netstat prints when run without root (older versions to stdout).
fn is_netstat_note(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("(Not all processes could be identified")
        || t.starts_with("will not be shown, you would have to be root")
        || t.starts_with("(No info could be read for")
}

fn parse_netstat_line(line: &str) -> LineResult {
    if is_netstat_header(line) || is_netstat_note(line) {
        return Ok(Line::Skip);
    }
    let mut cols = Columns::new(line);
    let proto = match cols.require("Proto")? {
        "tcp" | "tcp6" => Proto::Tcp,
        "udp" | "udp6" => Proto::Udp,
        p @ ("raw" | "raw6" | "udpl" | "udpl6" | "sctp" | "sctp6") => {
            return Err(ParseErrorKind::UnsupportedProtocol(p.to_string()))
        }
        _ => return Err(ParseErrorKind::Unrecognized("netstat")),
    };
    cols.number("Recv-Q")?;
    cols.number("Send-Q")?;
    let local = cols.require("Local Address")?;
    let foreign = cols.require("Foreign Address")?;
    if !foreign.contains(':') {
        return Err(ParseErrorKind::BadPeer(foreign.to_string()));
    }
    // The State column is blank for unconnected UDP sockets.
    let state = match cols.peek() {
        Some(s) if NETSTAT_STATES.contains(&s) => cols.next_col(),
        Some(s) if looks_like_state(s) => return Err(ParseErrorKind::UnknownState(s.to_string())),
        _ => None,
    };
    let processes = parse_netstat_program(cols.remainder())?;
    let (addr, port, iface) = match parse_local(local) {
        Err(ParseErrorKind::BadAddress(_)) if local.len() == NETSTAT_ADDR_WIDTH => {
            recover_truncated(local).ok_or_else(|| ParseErrorKind::BadAddress(local.to_string()))?
        }
        other => other?,
    };
    let listening = match proto {
        Proto::Tcp => state == Some("LISTEN"),
        Proto::Udp => state.is_none(),
    };
    if !listening {
        return Ok(Line::NotListening);
    }
    Ok(Line::Listener(Listener {
        proto,
        addr,
        port,
        iface,
        processes,
    }))
}

/// The PID/Program name column: empty (no `-p`), `-` (not visible), or `PID/name` where the
/// name is cut short and may contain spaces or `:`.
fn parse_netstat_program(col: &str) -> Result<Vec<Process>, ParseErrorKind> {
    if col.is_empty() || col == "-" {
        return Ok(Vec::new());
    }
    let (pid, name) = col
        .split_once('/')
        .ok_or_else(|| ParseErrorKind::BadProcess(col.to_string()))?;
    let pid: u32 = parse_digits(pid).ok_or_else(|| ParseErrorKind::BadProcess(col.to_string()))?;
    Ok(vec![Process::new(name.trim(), Some(pid))])
}

/// netstat cut the host of a 23-character `host:port` so that it no longer parses
/// (`fe80::fc:ff:fe00:` from `fe80::fc:ff:fe00:1`): complete it with zeros.
fn recover_truncated(local: &str) -> Option<(BindAddr, u16, Option<String>)> {
    let (host, _) = local.rsplit_once(':')?;
    if !host.contains(':') {
        return None;
    }
    ["0", ":"].iter().find_map(|fill| {
        let candidate = format!("{host}{fill}{}", &local[host.len()..]);
        parse_local(&candidate).ok()
    })
}

// ---------------------------------------------------------------- addresses

/// `0.0.0.0:22`, `[::]:22`, `*:22`, `:::22`, `127.0.0.53%lo:53`, `[fe80::1]%eth0:546`,
/// `[fe80::1%eth0]:546`, `fe80::1%eth0:546`, `[::ffff:10.0.0.5]:8080`. The port follows the
/// last colon.
fn parse_local(s: &str) -> Result<(BindAddr, u16, Option<String>), ParseErrorKind> {
    let bad = || ParseErrorKind::BadAddress(s.to_string());
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = parse_digits(port).ok_or_else(|| ParseErrorKind::BadPort(port.to_string()))?;

    let (ip, iface) = if let Some(inner) = host.strip_prefix('[') {
        let (inside, after) = inner.split_once(']').ok_or_else(bad)?;
        let (ip, iface_inside) = split_scope(inside);
        let iface_after = if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix('%').ok_or_else(bad)?)
        };
        match (iface_inside, iface_after) {
            (Some(_), Some(_)) => return Err(bad()),
            (i, None) | (None, i) => (ip, i),
        }
    } else {
        split_scope(host)
    };
    if iface.is_some_and(|i| i.is_empty() || i.contains(['%', '[', ']'])) {
        return Err(bad());
    }
    let addr = match ip {
        "*" => BindAddr::Any,
        "0.0.0.0" => BindAddr::AnyV4,
        "::" => BindAddr::AnyV6,
        other => BindAddr::Ip(other.parse().map_err(|_| bad())?),
    };
    Ok((addr, port, iface.map(str::to_string)))
}

fn split_scope(host: &str) -> (&str, Option<&str>) {
    match host.split_once('%') {
        Some((ip, iface)) => (ip, Some(iface)),
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> BindAddr {
        BindAddr::Ip(IpAddr::V4(s.parse().expect("test value")))
    }
    fn v6(s: &str) -> BindAddr {
        BindAddr::Ip(IpAddr::V6(s.parse().expect("test value")))
    }
    fn proc_(name: &str, pid: u32) -> Process {
        Process::new(name, Some(pid))
    }
    fn lst(proto: Proto, addr: BindAddr, port: u16, iface: Option<&str>) -> Listener {
        Listener {
            proto,
            addr,
            port,
            iface: iface.map(str::to_string),
            processes: Vec::new(),
        }
    }
    fn one_ss(line: &str) -> Listener {
        let v = parse_ss(line).expect("test value");
        assert_eq!(v.len(), 1, "{v:?}");
        v.into_iter().next().expect("test value")
    }
    fn one_netstat(line: &str) -> Listener {
        let v = parse_netstat(line).expect("test value");
        assert_eq!(v.len(), 1, "{v:?}");
        v.into_iter().next().expect("test value")
    }
    fn local(s: &str) -> (BindAddr, u16, Option<String>) {
        parse_local(s).expect("test value")
    }

    // ------------------------------------------------------------ addresses

    #[test]
    fn local_address_forms() {
        assert_eq!(local("0.0.0.0:22"), (BindAddr::AnyV4, 22, None));
        assert_eq!(local("[::]:22"), (BindAddr::AnyV6, 22, None));
        assert_eq!(local(":::22"), (BindAddr::AnyV6, 22, None));
        assert_eq!(local("*:22"), (BindAddr::Any, 22, None));
        assert_eq!(
            local("127.0.0.53%lo:53"),
            (v4("127.0.0.53"), 53, Some("lo".into()))
        );
        assert_eq!(local("[::1]:631"), (v6("::1"), 631, None));
        assert_eq!(local("::1:631"), (v6("::1"), 631, None));
        assert_eq!(
            local("[::ffff:10.0.0.5]:8080"),
            (v6("::ffff:10.0.0.5"), 8080, None)
        );
        assert_eq!(
            local("10.0.0.5%eth0:68"),
            (v4("10.0.0.5"), 68, Some("eth0".into()))
        );
        assert_eq!(
            local("[fe80::1%eth0]:546"),
            (v6("fe80::1"), 546, Some("eth0".into()))
        );
        assert_eq!(
            local("[fe80::1]%eth0:546"),
            (v6("fe80::1"), 546, Some("eth0".into()))
        );
        assert_eq!(
            local("fe80::1%eth0:546"),
            (v6("fe80::1"), 546, Some("eth0".into()))
        );
        assert_eq!(local("fe80::1:546"), (v6("fe80::1"), 546, None));
        assert_eq!(
            local("0.0.0.0%eth0:68"),
            (BindAddr::AnyV4, 68, Some("eth0".into()))
        );
        assert_eq!(local("*%eth0:68"), (BindAddr::Any, 68, Some("eth0".into())));
        assert_eq!(local("0.0.0.0:0"), (BindAddr::AnyV4, 0, None));
        assert_eq!(local("1.2.3.4:65535"), (v4("1.2.3.4"), 65535, None));
    }

    #[test]
    fn bad_local_addresses() {
        for bad in [
            "300.1.1.1:22",
            "[::1:22",
            "[::1]x:22",
            "[fe80::1%eth0]%eth1:22",
            "10.0.0.5%:68",
            "host:22",
            "22",
            "",
            "[]:22",
        ] {
            assert!(
                matches!(parse_local(bad), Err(ParseErrorKind::BadAddress(_))),
                "{bad:?} gave {:?}",
                parse_local(bad)
            );
        }
        for bad in [
            "0.0.0.0:ssh",
            "0.0.0.0:*",
            "0.0.0.0:65536",
            "0.0.0.0:",
            "0.0.0.0:+22",
            "[::1]",
        ] {
            assert!(
                matches!(parse_local(bad), Err(ParseErrorKind::BadPort(_))),
                "{bad:?} gave {:?}",
                parse_local(bad)
            );
        }
    }

    // ------------------------------------------------------------ is_public

    #[test]
    fn is_public_by_address_class() {
        let public = |addr: BindAddr| lst(Proto::Tcp, addr, 1, None).is_public();
        // all interfaces
        assert!(public(BindAddr::AnyV4));
        assert!(public(BindAddr::AnyV6));
        assert!(public(BindAddr::Any));
        assert!(public(v4("0.0.0.0")));
        assert!(public(v6("::")));
        // public
        assert!(public(v4("203.0.113.7")));
        assert!(public(v4("8.8.8.8")));
        assert!(public(v4("100.63.255.255")));
        assert!(public(v4("100.128.0.0")));
        assert!(public(v4("172.32.0.1")));
        assert!(public(v4("172.15.255.255")));
        assert!(public(v6("2a03:b0c0:3:d0::1e:2001")));
        assert!(public(v6("::ffff:203.0.113.7")));
        assert!(public(v6("fec0::1"))); // deprecated site-local is not in the list
                                        // loopback
        assert!(!public(v4("127.0.0.1")));
        assert!(!public(v4("127.0.0.53")));
        assert!(!public(v6("::1")));
        assert!(!public(v6("::ffff:127.0.0.1")));
        // RFC 1918
        assert!(!public(v4("10.0.0.5")));
        assert!(!public(v4("172.16.0.1")));
        assert!(!public(v4("172.31.255.255")));
        assert!(!public(v4("192.168.1.1")));
        assert!(!public(v6("::ffff:10.0.0.5")));
        assert!(!public(v6("::ffff:192.168.0.9")));
        // ULA fc00::/7
        assert!(!public(v6("fc00::1")));
        assert!(!public(v6("fd00::2")));
        assert!(!public(v6("fdff:ffff::1")));
        assert!(public(v6("fe00::1")));
        // link-local
        assert!(!public(v4("169.254.169.254")));
        assert!(!public(v6("fe80::1")));
        assert!(!public(v6("febf::1")));
        assert!(public(v6("fec0::1")));
        // CGNAT 100.64/10
        assert!(!public(v4("100.64.0.1")));
        assert!(!public(v4("100.127.255.255")));
        assert!(!public(v6("::ffff:100.100.0.1")));
    }

    #[test]
    fn is_public_and_all_interfaces_with_iface() {
        let mut l = lst(Proto::Udp, BindAddr::AnyV4, 68, None);
        assert!(l.is_public() && l.is_all_interfaces());
        l.iface = Some("eth0".into());
        assert!(
            l.is_public(),
            "a wildcard bound to eth0 may face the Internet"
        );
        assert!(!l.is_all_interfaces());
        l.iface = Some("lo".into());
        assert!(!l.is_public());
        assert!(!l.is_all_interfaces());
        let l = lst(Proto::Udp, v4("127.0.0.53"), 53, Some("lo"));
        assert!(!l.is_public() && !l.is_all_interfaces());
        let l = lst(Proto::Tcp, v4("203.0.113.7"), 22, None);
        assert!(l.is_public() && !l.is_all_interfaces());
        let l = lst(Proto::Tcp, v6("::ffff:0.0.0.0"), 22, None);
        assert!(l.is_public() && l.is_all_interfaces());
        for addr in [BindAddr::AnyV4, BindAddr::AnyV6, BindAddr::Any] {
            assert!(lst(Proto::Tcp, addr, 22, None).is_all_interfaces());
        }
        assert!(!lst(Proto::Tcp, v6("::1"), 22, None).is_all_interfaces());
    }

    #[test]
    fn is_public_ip_directly() {
        assert!(is_public_ip("198.51.100.1".parse().expect("test value")));
        assert!(!is_public_ip(
            "::ffff:172.20.0.1".parse().expect("test value")
        ));
        assert!(!is_public_ip(
            "fe80::fc:ff:fe00:1".parse().expect("test value")
        ));
    }

    // ------------------------------------------------------------ ss

    #[test]
    fn ss_tcp_listen_with_process() {
        let l = one_ss(
            r#"tcp   LISTEN 0      4096         0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=812,fd=3))"#,
        );
        assert_eq!(
            l,
            Listener {
                processes: vec![proc_("sshd", 812)],
                ..lst(Proto::Tcp, BindAddr::AnyV4, 22, None)
            }
        );
    }

    #[test]
    fn ss_shared_socket_several_processes() {
        let l = one_ss(
            r#"tcp LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=1201,fd=6),("nginx",pid=1200,fd=6),("nginx",pid=1199,fd=6))"#,
        );
        assert_eq!(
            l.processes,
            vec![
                proc_("nginx", 1201),
                proc_("nginx", 1200),
                proc_("nginx", 1199)
            ]
        );
    }

    #[test]
    fn ss_same_process_twice_is_listed_once() {
        let l = one_ss(
            r#"tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=812,fd=3),("sshd",pid=812,fd=7),("sshd",pid=900,fd=3))"#,
        );
        assert_eq!(l.processes, vec![proc_("sshd", 812), proc_("sshd", 900)]);
    }

    #[test]
    fn ss_process_names_with_spaces_commas_quotes_parens() {
        let l = one_ss(
            r#"tcp LISTEN 0 5 0.0.0.0:8770 0.0.0.0:* users:(("web, worker 1",pid=22628,fd=3),("a",pid=1,fd=4)"),("b",pid=2,fd=5),("x) y",pid=3,fd=6))"#,
        );
        assert_eq!(
            l.processes,
            vec![
                proc_("web, worker 1", 22628),
                proc_(r#"a",pid=1,fd=4)"),("b"#, 2),
                proc_("x) y", 3),
            ]
        );
        let l = one_ss(r#"udp UNCONN 0 0 *:5 *:* users:(("a", b",pid=7,fd=1))"#);
        assert_eq!(l.processes, vec![proc_(r#"a", b"#, 7)]);
        let l = one_ss(r#"udp UNCONN 0 0 *:5 *:* users:(("",pid=7,fd=1))"#);
        assert_eq!(l.processes, vec![proc_("", 7)]);
    }

    #[test]
    fn ss_old_users_format_without_keys() {
        let l = one_ss(r#"LISTEN 0 128 *:22 *:* users:(("sshd",1100,3),("sshd",1200,3))"#);
        assert_eq!(l.proto, Proto::Tcp);
        assert_eq!(l.addr, BindAddr::Any);
        assert_eq!(l.processes, vec![proc_("sshd", 1100), proc_("sshd", 1200)]);
    }

    #[test]
    fn ss_missing_process_column() {
        let l = one_ss("tcp LISTEN 0 128 0.0.0.0:2024 0.0.0.0:*");
        assert_eq!(l, lst(Proto::Tcp, BindAddr::AnyV4, 2024, None));
        let l = one_ss("tcp LISTEN 0 128 0.0.0.0:2024 0.0.0.0:*            ");
        assert!(l.processes.is_empty());
    }

    #[test]
    fn ss_extra_fields_after_users() {
        let l = one_ss(
            r#"tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)) uid:0 ino:20483 sk:1 cgroup:/system.slice/ssh.service <->"#,
        );
        assert_eq!(l.processes, vec![proc_("sshd", 812)]);
        let l = one_ss("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* ino:20483 sk:1 <->");
        assert!(l.processes.is_empty());
    }

    #[test]
    fn ss_udp_unconn_and_missing_state() {
        let with_state = one_ss(
            r#"udp   UNCONN 0      0      127.0.0.53%lo:53      0.0.0.0:*    users:(("systemd-resolve",pid=620,fd=13))"#,
        );
        let without_state = one_ss(
            r#"udp   0      0      127.0.0.53%lo:53      0.0.0.0:*    users:(("systemd-resolve",pid=620,fd=13))"#,
        );
        let expected = Listener {
            processes: vec![proc_("systemd-resolve", 620)],
            ..lst(Proto::Udp, v4("127.0.0.53"), 53, Some("lo"))
        };
        assert_eq!(with_state, expected);
        assert_eq!(without_state, expected);
        assert!(!expected.is_public());
    }

    #[test]
    fn ss_each_address_form() {
        let cases = [
            ("0.0.0.0:22", BindAddr::AnyV4, None, true),
            ("[::]:22", BindAddr::AnyV6, None, true),
            ("*:22", BindAddr::Any, None, true),
            ("127.0.0.53%lo:22", v4("127.0.0.53"), Some("lo"), false),
            ("[::1]:22", v6("::1"), None, false),
            ("[::ffff:10.0.0.5]:22", v6("::ffff:10.0.0.5"), None, false),
            (
                "[::ffff:203.0.113.9]:22",
                v6("::ffff:203.0.113.9"),
                None,
                true,
            ),
            ("10.0.0.5%eth0:22", v4("10.0.0.5"), Some("eth0"), false),
            ("[fe80::1%eth0]:22", v6("fe80::1"), Some("eth0"), false),
            ("[fe80::1]%eth0:22", v6("fe80::1"), Some("eth0"), false),
            ("203.0.113.9:22", v4("203.0.113.9"), None, true),
            ("[2001:db8::5]:22", v6("2001:db8::5"), None, true),
        ];
        for (addr, expected, iface, public) in cases {
            let l = one_ss(&format!("tcp LISTEN 0 128 {addr} 0.0.0.0:*"));
            assert_eq!(l, lst(Proto::Tcp, expected, 22, iface), "{addr}");
            assert_eq!(l.is_public(), public, "{addr}");
        }
    }

    #[test]
    fn ss_header_and_blank_lines_are_skipped() {
        let text =
            "Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n\n   \n\
                    tcp   LISTEN 0      128    0.0.0.0:22 0.0.0.0:*\n";
        assert_eq!(parse_ss(text).expect("test value").len(), 1);
        let text = "State      Recv-Q Send-Q Local Address:Port               Peer Address:Port\n\
                    LISTEN     0      128          *:22                       *:*\n";
        assert_eq!(
            parse_ss(text).expect("test value"),
            vec![lst(Proto::Tcp, BindAddr::Any, 22, None)]
        );
    }

    #[test]
    fn ss_without_netid_infers_protocol_from_state() {
        let v = parse_ss("LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nUNCONN 0 0 0.0.0.0:68 0.0.0.0:*\n")
            .expect("test value");
        assert_eq!(
            v,
            vec![
                lst(Proto::Tcp, BindAddr::AnyV4, 22, None),
                lst(Proto::Udp, BindAddr::AnyV4, 68, None)
            ]
        );
    }

    #[test]
    fn ss_non_listening_rows_are_left_out() {
        let text = "tcp ESTAB 0 0 10.0.0.5:22 10.0.0.9:51234 users:((\"sshd\",pid=5,fd=4))\n\
                    tcp TIME-WAIT 0 0 10.0.0.5:22 10.0.0.9:51235\n\
                    ESTAB 0 0 10.0.0.5:22 10.0.0.9:51234\n\
                    udp ESTAB 0 0 10.0.0.5:40000 10.0.0.1:53\n\
                    tcp UNCONN 0 0 0.0.0.0:0 0.0.0.0:*\n\
                    tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n";
        assert_eq!(
            parse_ss(text).expect("test value"),
            vec![lst(Proto::Tcp, BindAddr::AnyV4, 22, None)]
        );
    }

    #[test]
    fn ss_garbage_line_is_an_error_naming_the_line() {
        let text = "tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n\nthis is not ss output\n";
        let err = parse_ss(text).expect_err("must fail");
        assert_eq!(err.line, 3);
        assert_eq!(err.kind, ParseErrorKind::Unrecognized("ss"));
        assert_eq!(err.text, "this is not ss output");
        let msg = err.to_string();
        assert!(msg.starts_with("line 3: "), "{msg}");
        assert!(msg.contains("this is not ss output"), "{msg}");
    }

    #[test]
    fn ss_errors_say_what_was_wrong() {
        let err = |line: &str| parse_ss(line).expect_err("must fail").kind;
        assert_eq!(
            err("tcp LISTEN 0 128 0.0.0.0:22"),
            ParseErrorKind::MissingColumn("Peer Address:Port")
        );
        assert_eq!(err("tcp"), ParseErrorKind::MissingColumn("State"));
        assert_eq!(
            err("tcp LISTEN x 128 0.0.0.0:22 0.0.0.0:*"),
            ParseErrorKind::BadNumber {
                column: "Recv-Q",
                value: "x".into()
            }
        );
        assert_eq!(
            err("tcp LISTEN 0 128 0.0.0.0:ssh 0.0.0.0:*"),
            ParseErrorKind::BadPort("ssh".into())
        );
        assert_eq!(
            err("tcp LISTEN 0 128 nowhere:22 0.0.0.0:*"),
            ParseErrorKind::BadAddress("nowhere:22".into())
        );
        assert_eq!(
            err("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0"),
            ParseErrorKind::BadPeer("0.0.0.0".into())
        );
        assert_eq!(
            err("tcp WEIRD 0 128 0.0.0.0:22 0.0.0.0:*"),
            ParseErrorKind::UnknownState("WEIRD".into())
        );
        assert_eq!(
            err("raw UNCONN 0 0 *:58 *:*"),
            ParseErrorKind::UnsupportedProtocol("raw".into())
        );
        assert!(matches!(
            err("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* LISTEN 812/sshd"),
            ParseErrorKind::BadProcess(_)
        ));
        assert!(matches!(
            err(r#"tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)"#),
            ParseErrorKind::BadProcess(_)
        ));
        assert!(matches!(
            err(r#"tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=x,fd=3))"#),
            ParseErrorKind::BadProcess(_)
        ));
        assert!(matches!(
            err(r#"tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))junk"#),
            ParseErrorKind::BadProcess(_)
        ));
        // netstat's rows are not ss rows
        assert!(parse_ss("tcp6       0      0 :::22   :::*   LISTEN   812/sshd").is_err());
    }

    #[test]
    fn crlf_line_endings() {
        let text = "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\r\n\
                    tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=812,fd=3))\r\n\r\n";
        let v = parse_any(text).expect("test value");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].processes, vec![proc_("sshd", 812)]);
        let v = parse_any("tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 812/sshd: /usr/sbin\r\n")
            .expect("test value");
        assert_eq!(v[0].processes, vec![proc_("sshd: /usr/sbin", 812)]);
    }

    #[test]
    fn error_text_is_capped() {
        let long = format!("x{}", "y".repeat(1000));
        let err = parse_ss(&long).expect_err("must fail");
        assert_eq!(err.line, 1);
        assert!(err.text.chars().count() <= 201);
    }

    // ------------------------------------------------------------ netstat

    #[test]
    fn netstat_tcp_with_truncated_program_containing_space_and_colon() {
        let l = one_netstat(
            "tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      812/sshd: /usr/sbin ",
        );
        assert_eq!(
            l,
            Listener {
                processes: vec![proc_("sshd: /usr/sbin", 812)],
                ..lst(Proto::Tcp, BindAddr::AnyV4, 22, None)
            }
        );
    }

    #[test]
    fn netstat_tcp6_any() {
        let l = one_netstat(
            "tcp6       0      0 :::22                   :::*                    LISTEN      812/sshd",
        );
        assert_eq!(
            l,
            Listener {
                processes: vec![proc_("sshd", 812)],
                ..lst(Proto::Tcp, BindAddr::AnyV6, 22, None)
            }
        );
        assert!(l.is_all_interfaces());
    }

    #[test]
    fn netstat_udp_without_state() {
        let l = one_netstat(
            "udp        0      0 127.0.0.53:53           0.0.0.0:*                           620/systemd-resolve",
        );
        assert_eq!(
            l,
            Listener {
                processes: vec![proc_("systemd-resolve", 620)],
                ..lst(Proto::Udp, v4("127.0.0.53"), 53, None)
            }
        );
        let l = one_netstat("udp6 0 0 fe80::1:546 :::* 700/dhclient");
        assert_eq!(
            l,
            Listener {
                processes: vec![proc_("dhclient", 700)],
                ..lst(Proto::Udp, v6("fe80::1"), 546, None)
            }
        );
        assert!(!l.is_public());
    }

    #[test]
    fn netstat_program_dash_or_absent() {
        let l = one_netstat("tcp 0 0 0.0.0.0:2024 0.0.0.0:* LISTEN -");
        assert!(l.processes.is_empty());
        let l = one_netstat("tcp 0 0 0.0.0.0:2024 0.0.0.0:* LISTEN");
        assert!(l.processes.is_empty());
        let l = one_netstat("udp 0 0 0.0.0.0:68 0.0.0.0:*");
        assert_eq!(l, lst(Proto::Udp, BindAddr::AnyV4, 68, None));
        let l = one_netstat("udp 0 0 0.0.0.0:68 0.0.0.0:* -");
        assert!(l.processes.is_empty());
    }

    #[test]
    fn netstat_v4_mapped_shown_as_v4_under_tcp6() {
        let l = one_netstat("tcp6 0 0 127.0.0.1:8771 :::* LISTEN 23636/python3");
        assert_eq!(l.proto, Proto::Tcp);
        assert_eq!(l.addr, v4("127.0.0.1"));
        let l = one_netstat("tcp6 0 0 ::ffff:10.0.0.5:8080 :::* LISTEN 1/x");
        assert_eq!(l.addr, v6("::ffff:10.0.0.5"));
        assert!(!l.is_public());
    }

    #[test]
    fn netstat_truncated_ipv6_host_is_completed() {
        // fe80::fc:ff:fe00:1 port 15546, cut by netstat to 23 characters
        let l = one_netstat("udp6 0 0 fe80::fc:ff:fe00::15546 :::* 23636/srv: my, app");
        assert_eq!(l.addr, v6("fe80::fc:ff:fe00:0"));
        assert_eq!(l.port, 15546);
        assert_eq!(l.processes, vec![proc_("srv: my, app", 23636)]);
        assert!(!l.is_public());
        // a cut inside "::": 2001:db8:aaa:bbbb::5 port 8080 -> "2001:db8:aaa:bbbb:" + ":8080"
        let l = one_netstat("tcp6 0 0 2001:db8:aaa:bbbb::8080 :::* LISTEN 1/x");
        assert_eq!(l.addr, v6("2001:db8:aaa:bbbb::"));
        assert!(l.is_public());
        // the same shape shorter than the column width is not a truncation: an error
        let err =
            parse_netstat("tcp6 0 0 2001:db8::1:x:8080 :::* LISTEN 1/x").expect_err("must fail");
        assert!(matches!(err.kind, ParseErrorKind::BadAddress(_)));
        let err = parse_netstat("tcp6 0 0 fe80::fc:ff:fe0::15546 :::* LISTEN 1/x")
            .expect_err("must fail");
        assert!(matches!(err.kind, ParseErrorKind::BadAddress(_)));
    }

    #[test]
    fn netstat_headers_and_notes_are_skipped() {
        let text = "(Not all processes could be identified, non-owned process info\n \
                    will not be shown, you would have to be root to see it all.)\n\
                    Active Internet connections (only servers)\n\
                    Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name    \n\
                    tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      -                   \n\
                    (No info could be read for \"-p\": geteuid()=65534 but you should be root.)\n";
        assert_eq!(
            parse_netstat(text).expect("test value"),
            vec![lst(Proto::Tcp, BindAddr::AnyV4, 22, None)]
        );
    }

    #[test]
    fn netstat_non_listening_rows_are_left_out() {
        let text = "tcp 0 0 10.0.0.5:22 10.0.0.9:51234 ESTABLISHED 5/sshd: root@pts/0\n\
                    tcp 0 0 10.0.0.5:22 10.0.0.9:51235 TIME_WAIT -\n\
                    udp 0 0 10.0.0.5:40000 10.0.0.1:53 ESTABLISHED 9/x\n\
                    udp 0 0 0.0.0.0:68 0.0.0.0:* 7/dhclient\n";
        let v = parse_netstat(text).expect("test value");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].port, 68);
    }

    #[test]
    fn netstat_garbage_line_is_an_error_naming_the_line() {
        let text = "Active Internet connections (only servers)\n\
                    Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n\
                    tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 812/sshd\n\
                    Segmentation fault\n";
        let err = parse_netstat(text).expect_err("must fail");
        assert_eq!(err.line, 4);
        assert_eq!(err.kind, ParseErrorKind::Unrecognized("netstat"));
        assert!(err.to_string().starts_with("line 4: "));
    }

    #[test]
    fn netstat_errors_say_what_was_wrong() {
        let err = |line: &str| parse_netstat(line).expect_err("must fail").kind;
        assert_eq!(
            err("tcp 0 x 0.0.0.0:22 0.0.0.0:* LISTEN 1/a"),
            ParseErrorKind::BadNumber {
                column: "Send-Q",
                value: "x".into()
            }
        );
        assert_eq!(
            err("tcp 0 0 0.0.0.0:22"),
            ParseErrorKind::MissingColumn("Foreign Address")
        );
        assert_eq!(
            err("tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTENING 1/a"),
            ParseErrorKind::UnknownState("LISTENING".into())
        );
        assert_eq!(
            err("raw6 0 0 :::58 :::* 7 1/a"),
            ParseErrorKind::UnsupportedProtocol("raw6".into())
        );
        // `netstat -e` adds User and Inode columns: not silently misread
        assert!(matches!(
            err("tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 0 20483 812/sshd"),
            ParseErrorKind::BadProcess(_)
        ));
        assert!(matches!(
            err("tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN sshd"),
            ParseErrorKind::BadProcess(_)
        ));
        // ss rows are not netstat rows
        assert!(parse_netstat("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*").is_err());
    }

    // ------------------------------------------------------------ parse_any

    #[test]
    fn parse_any_detects_both_formats() {
        let ss = r#"tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3))"#;
        let netstat = "tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      812/sshd";
        let expected = vec![Listener {
            processes: vec![proc_("sshd", 812)],
            ..lst(Proto::Tcp, BindAddr::AnyV4, 22, None)
        }];
        assert_eq!(parse_any(ss).expect("test value"), expected);
        assert_eq!(parse_any(netstat).expect("test value"), expected);
        assert_eq!(parse_any("").expect("test value"), vec![]);
    }

    #[test]
    fn parse_any_reports_the_error_of_the_likely_format() {
        // headerless netstat with garbage on line 3: netstat got further
        let text =
            "tcp6 0 0 :::22 :::* LISTEN 812/sshd\nudp 0 0 0.0.0.0:68 0.0.0.0:* 7/dhclient\n???\n";
        let err = parse_any(text).expect_err("must fail");
        assert_eq!(
            (err.line, err.kind),
            (3, ParseErrorKind::Unrecognized("netstat"))
        );
        // headerless ss with garbage on line 2
        let err = parse_any("tcp LISTEN 0 1 0.0.0.0:22 0.0.0.0:*\n???\n").expect_err("must fail");
        assert_eq!(
            (err.line, err.kind),
            (2, ParseErrorKind::Unrecognized("ss"))
        );
        // a header decides even when the first row is broken
        let err = parse_any(
            "Active Internet connections (only servers)\ntcp 0 0 x:1 0.0.0.0:* LISTEN -\n",
        )
        .expect_err("must fail");
        assert_eq!(err.line, 2);
        assert!(matches!(err.kind, ParseErrorKind::BadAddress(_)));
    }

    // ------------------------------------------------------------ output

    #[test]
    fn display() {
        let l = Listener {
            processes: vec![proc_("dhclient", 700)],
            ..lst(Proto::Udp, v6("fe80::1"), 546, Some("eth0"))
        };
        assert_eq!(l.to_string(), "udp [fe80::1]%eth0:546");
        assert_eq!(
            lst(Proto::Tcp, BindAddr::AnyV4, 22, None).to_string(),
            "tcp 0.0.0.0:22"
        );
        assert_eq!(
            lst(Proto::Tcp, BindAddr::AnyV6, 22, None).to_string(),
            "tcp [::]:22"
        );
        assert_eq!(
            lst(Proto::Tcp, BindAddr::Any, 22, None).to_string(),
            "tcp *:22"
        );
        assert_eq!(
            lst(Proto::Tcp, v4("127.0.0.53"), 53, Some("lo")).to_string(),
            "tcp 127.0.0.53%lo:53"
        );
    }
}
