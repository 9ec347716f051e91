//! The policy file (TOML): its keys, defaults and validation.
//!
//! Parsing is strict: an unknown key or a malformed value is an error that names the file,
//! the line and the key, so that a typo can never silently weaken the policy.

mod duration;
mod exempt;
mod ports;
mod spans;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use duration::PolicyDuration;
pub use ports::PortRange;

use crate::catalog;
pub use crate::catalog::Mode;
use crate::net::Cidr;
pub use exempt::Exemption;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordAuth {
    Forbid,
    Allow,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub management: Management,
    pub firewall: FirewallPolicy,
    pub ssh: SshPolicy,
    pub vpc: VpcPolicy,
    pub services: ServicesPolicy,
    pub remediation: RemediationPolicy,
    /// `[api]`: the request budget and how old a re-check's cached account view may be.
    pub api: ApiPolicy,
    /// Per-rule overrides, keyed by rule id.
    pub rules: BTreeMap<String, RuleOverride>,
    /// `[[exemptions]]`: accepted risks, each with a reason, an owner and an expiry.
    pub exemptions: Vec<Exemption>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Management {
    /// Where admins and dropletguard reach Droplets from.
    pub cidrs: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallPolicy {
    pub required: bool,
    pub world_open_allowed: Vec<PortRange>,
    pub forbidden_ports: Vec<PortRange>,
    pub baseline_name: String,
    pub baseline_tag: String,
}

impl Default for FirewallPolicy {
    fn default() -> Self {
        FirewallPolicy {
            required: true,
            world_open_allowed: vec![PortRange::single(80), PortRange::single(443)],
            forbidden_ports: [25, 3306, 5432, 6379, 27017]
                .into_iter()
                .map(PortRange::single)
                .collect(),
            baseline_name: "dropletguard-baseline".into(),
            baseline_tag: "dropletguard-baseline".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshPolicy {
    pub port: u16,
    pub password_auth: PasswordAuth,
    pub probe: bool,
    pub sshd_config: String,
    /// Users the agentless probe sends its `none` request as, one connection each (OpenSSH
    /// refuses a change of user within a connection). Empty: the management user only.
    pub probe_users: Vec<String>,
}

impl Default for SshPolicy {
    fn default() -> Self {
        SshPolicy {
            port: 22,
            password_auth: PasswordAuth::Forbid,
            probe: true,
            sshd_config: "/etc/ssh/sshd_config".into(),
            probe_users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VpcPolicy {
    pub forbid_default: bool,
    pub environment_tag_prefix: String,
    pub tenant_tag_prefix: String,
}

impl Default for VpcPolicy {
    fn default() -> Self {
        VpcPolicy {
            forbid_default: true,
            environment_tag_prefix: "env:".into(),
            tenant_tag_prefix: "tenant:".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesPolicy {
    pub allowed_public: Vec<String>,
}

impl Default for ServicesPolicy {
    fn default() -> Self {
        ServicesPolicy {
            allowed_public: vec!["sshd".into(), "nginx".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationPolicy {
    pub mode: Mode,
    pub max_changes_per_run: u32,
    pub exempt_tag: String,
    /// The quarantine firewall's name.
    pub quarantine_name: String,
    /// The tag that attaches the quarantine firewall: quarantine adds it, restore removes it.
    pub quarantine_tag: String,
    /// How long a finding must have been open before it is fixed ["0m": at once].
    pub grace: PolicyDuration,
    /// How long a change announced in the ledger may go without its result before another
    /// run calls it interrupted ["20m", [`INTENT_LEASE`]].
    pub intent_lease: PolicyDuration,
}

/// How long an announced change may go without its result before another run calls it
/// interrupted, by default: longer than any one change takes (one API write, or one SSH fix
/// within its timeouts) and than a Lambda invocation may run (15 minutes).
pub const INTENT_LEASE: std::time::Duration = std::time::Duration::from_secs(20 * 60);

impl Default for RemediationPolicy {
    fn default() -> Self {
        RemediationPolicy {
            mode: Mode::Audit,
            max_changes_per_run: 10,
            exempt_tag: "dropletguard-exempt".into(),
            quarantine_name: "dropletguard-quarantine".into(),
            quarantine_tag: "dropletguard-quarantine".into(),
            grace: PolicyDuration::default(),
            intent_lease: PolicyDuration(INTENT_LEASE),
        }
    }
}

/// `[api]`: how runs share the token's request budget (DigitalOcean: 5,000 requests an hour and
/// 250 a minute per token, DigitalOcean API reference, Introduction, "Rate Limit"), and how old the cached account view
/// that event re-checks build on may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiPolicy {
    /// Percent of the hourly request limit (`ratelimit-limit`) that scheduled runs, the poller,
    /// webhooks and the CLI's audit and remediation leave for incident response [20]. A run
    /// that would go below it stops early, `complete: false`.
    pub reserve_percent: u8,
    /// How old the last full read (the state store's `cache/snapshot.json`) may be for a
    /// re-check to build on it; past it, the re-check reads the whole account ["1h"].
    pub snapshot_max_age: PolicyDuration,
}

impl Default for ApiPolicy {
    fn default() -> Self {
        ApiPolicy {
            reserve_percent: 20,
            snapshot_max_age: PolicyDuration(std::time::Duration::from_secs(3600)),
        }
    }
}

/// `[rules."<id>"]`: per-rule mode, and whether the rule runs at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleOverride {
    pub mode: Option<Mode>,
    pub enabled: bool,
    /// This rule's grace period [the `[remediation] grace`].
    pub grace: Option<PolicyDuration>,
}

impl Default for RuleOverride {
    fn default() -> Self {
        RuleOverride {
            mode: None,
            enabled: true,
            grace: None,
        }
    }
}

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: cannot read the policy: {message}")]
    Read { file: String, message: String },
    /// `FILE:LINE: message`, the message naming the key.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

impl Policy {
    /// The effective mode of a rule: its override, else `[remediation] mode`.
    pub fn mode_for(&self, rule: &str) -> Mode {
        self.rules
            .get(rule)
            .and_then(|o| o.mode)
            .unwrap_or(self.remediation.mode)
    }

    /// The effective grace period of a rule: its override, else `[remediation] grace`.
    pub fn grace_for(&self, rule: &str) -> std::time::Duration {
        self.rules
            .get(rule)
            .and_then(|o| o.grace)
            .unwrap_or(self.remediation.grace)
            .0
    }

    /// What a valid policy leaves open that a reader should hear once, before the run's
    /// output: today, empty `management.cidrs`, with what follows from it. Empty when none.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.management.cidrs.is_empty() {
            out.push(
                "management.cidrs is empty: every SSH rule with an address source counts as \
                 outside the management ranges (firewall.ssh-open fails on every Droplet \
                 whose firewalls allow SSH), remediation attaches no baseline firewall and \
                 narrows no SSH rule (either would lock everyone out), and quarantine \
                 refuses; set [management] cidrs to the ranges you administer \
                 from (policy.example.toml)"
                    .to_string(),
            );
        }
        out
    }

    pub fn rule_enabled(&self, rule: &str) -> bool {
        self.rules.get(rule).is_none_or(|o| o.enabled)
    }

    /// Reads and validates a policy file: a regular file of at most [`MAX_POLICY_BYTES`],
    /// UTF-8 (an error names the line and column of the first bad byte).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let file = path.display().to_string();
        let bytes = read_policy_file(path).map_err(|message| PolicyError::Read {
            file: file.clone(),
            message,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| not_utf8(&bytes, &e, &file))?;
        Policy::parse(text, &file)
    }

    /// Parses and validates policy text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, key) = locate(text, offset);
            let message = e.message().trim().to_string();
            let message = match key {
                Some(k) if !message.contains(&format!("`{k}`")) => format!("{k}: {message}"),
                Some(k) => format!("{k}: {message}"),
                None => message,
            };
            PolicyError::Invalid {
                file: file.to_string(),
                line,
                message,
            }
        })?;
        policy.validate(text, file)?;
        Ok(policy)
    }

    fn validate(&self, text: &str, file: &str) -> Result<(), PolicyError> {
        let spans = spans::Spans::new(text);
        let invalid = |path: &[&str], key: &str, message: String| PolicyError::Invalid {
            file: file.to_string(),
            line: spans.key_line(path).unwrap_or(1),
            message: format!("{key}: {message}"),
        };
        for id in self.rules.keys() {
            if catalog::info(id).is_none() {
                return Err(invalid(
                    &["rules", id],
                    &format!("rules.\"{id}\""),
                    format!(
                        "unknown rule id; known rules: {}",
                        catalog::ids().join(", ")
                    ),
                ));
            }
        }
        if self.ssh.port == 0 {
            return Err(invalid(
                &["ssh", "port"],
                "ssh.port",
                "0 is not a port".into(),
            ));
        }
        if let Some(u) = self.ssh.probe_users.iter().find(|u| !valid_user(u)) {
            let message = format!("{u:?} is not a user name (no spaces, at most 32 characters)");
            return Err(invalid(&["ssh", "probe_users"], "ssh.probe_users", message));
        }
        self.check_values()
            .map_err(|(key, message)| PolicyError::Invalid {
                file: file.to_string(),
                line: written_line(&spans, key)
                    .or_else(|| written_line(&spans, counterpart(key)?))
                    .unwrap_or(1),
                message: format!("{key}: {message}"),
            })?;
        exempt::check(&self.exemptions, &spans, file)
    }

    /// Values the API or the Droplets would refuse, or that defeat the policy: firewall and
    /// tag names (the API's patterns), the sshd_config path, a baseline that exempts.
    /// `Err((dotted key, message))`.
    fn check_values(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("firewall.baseline_name", &self.firewall.baseline_name),
            (
                "remediation.quarantine_name",
                &self.remediation.quarantine_name,
            ),
        ] {
            if !valid_firewall_name(value) {
                return Err((key, format!("{value:?} is not a valid firewall name (a letter or digit first, then letters, digits, '.' or '-')")));
            }
        }
        for (key, value) in [
            ("firewall.baseline_tag", &self.firewall.baseline_tag),
            ("remediation.exempt_tag", &self.remediation.exempt_tag),
            (
                "remediation.quarantine_tag",
                &self.remediation.quarantine_tag,
            ),
        ] {
            if !valid_tag(value) {
                return Err((key, format!("{value:?} is not a valid DigitalOcean tag (letters, digits, '-', '_', ':'; at most 255)")));
            }
        }
        if self.api.reserve_percent > 90 {
            let v = self.api.reserve_percent;
            return Err((
                "api.reserve_percent",
                format!("{v} leaves no requests for scheduled runs; use 0 to 90"),
            ));
        }
        if !self.ssh.sshd_config.starts_with('/') {
            let v = &self.ssh.sshd_config;
            return Err((
                "ssh.sshd_config",
                format!("must be an absolute path, not {v:?}"),
            ));
        }
        // Strings that name files or processes reach remote shells and `ss` output: a NUL or
        // another control character would cut or bend them there.
        let names = std::iter::once(("ssh.sshd_config", &self.ssh.sshd_config)).chain(
            self.services
                .allowed_public
                .iter()
                .map(|p| ("services.allowed_public", p)),
        );
        for (key, value) in names {
            if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
                let code = u32::from(c);
                return Err((
                    key,
                    format!("{value:?} holds a control character (U+{code:04X}) at byte {at}"),
                ));
            }
        }
        self.check_distinct()
    }

    /// Names that must differ: a baseline tag that exempts, or that quarantines, would turn
    /// every fix into an exemption or an isolation.
    fn check_distinct(&self) -> Result<(), (&'static str, String)> {
        // Tags match whatever their case: `PROD` and `prod` are one tag.
        if self
            .remediation
            .exempt_tag
            .eq_ignore_ascii_case(&self.firewall.baseline_tag)
        {
            let t = &self.firewall.baseline_tag;
            return Err((
                "remediation.exempt_tag",
                format!("must differ from firewall.baseline_tag ({t:?})"),
            ));
        }
        // The quarantine firewall follows its tag: on the baseline tag it would isolate every
        // Droplet remediation ever fixed.
        let q = &self.remediation.quarantine_tag;
        if q.eq_ignore_ascii_case(&self.firewall.baseline_tag)
            || q.eq_ignore_ascii_case(&self.remediation.exempt_tag)
        {
            return Err((
                "remediation.quarantine_tag",
                format!(
                    "must differ from firewall.baseline_tag and remediation.exempt_tag ({q:?})"
                ),
            ));
        }
        if self.remediation.quarantine_name == self.firewall.baseline_name {
            let n = &self.firewall.baseline_name;
            return Err((
                "remediation.quarantine_name",
                format!("must differ from firewall.baseline_name ({n:?})"),
            ));
        }
        Ok(())
    }
}

/// The most bytes a policy file may hold: 1 MiB, far above any real policy.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// The bytes of a policy file. Only a regular file is read (a FIFO would block, a device
/// like `/dev/zero` never ends), and at most [`MAX_POLICY_BYTES`].
fn read_policy_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({})",
            crate::text::file_kind(&meta)
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err("larger than 1 MiB; a policy is a few hundred bytes".into());
    }
    Ok(bytes)
}

/// `FILE:LINE: the policy is not valid UTF-8 (byte 0xE9 at column 10)`, at the first bad byte.
fn not_utf8(bytes: &[u8], e: &std::str::Utf8Error, file: &str) -> PolicyError {
    let good = &bytes[..e.valid_up_to()];
    let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    // The line's text before the bad byte is valid UTF-8: count its characters.
    let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
    let byte = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
    PolicyError::Invalid {
        file: file.to_string(),
        line: good.iter().filter(|b| **b == b'\n').count() + 1,
        message: format!("the policy is not valid UTF-8 (byte 0x{byte:02X} at column {column})"),
    }
}

/// DigitalOcean's firewall name rule (`^[a-zA-Z0-9][a-zA-Z0-9\.-]+$` in the API spec).
pub fn valid_firewall_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// The key a value must differ from: where to point when the value itself is a default.
fn counterpart(key: &str) -> Option<&'static str> {
    match key {
        "remediation.exempt_tag" | "remediation.quarantine_tag" => Some("firewall.baseline_tag"),
        "remediation.quarantine_name" => Some("firewall.baseline_name"),
        _ => None,
    }
}

/// The 1-based line where the dotted `section.key` is written, when it is.
fn written_line(spans: &spans::Spans<'_>, dotted: &str) -> Option<usize> {
    let path: Vec<&str> = dotted.split('.').collect();
    spans.exact_line(&path)
}

/// DigitalOcean's tag name rule.
/// A login name as `useradd` accepts it, loosely: 1-32 printable characters, no spaces.
fn valid_user(u: &str) -> bool {
    (1..=32).contains(&u.len()) && u.chars().all(|c| c.is_ascii_graphic() && c != ':')
}

pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 255
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
}

/// The 1-based line of a byte offset, and the dotted key written there (or above, for a
/// value inside a multi-line array).
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let offset = offset.min(text.len());
    let line_idx = text[..offset].matches('\n').count();
    let lines: Vec<&str> = text.lines().collect();
    let header = |upto: usize| -> Option<String> {
        lines[..upto.min(lines.len())].iter().rev().find_map(|l| {
            let t = l.trim();
            (t.starts_with('[') && !t.starts_with("[[") || t.starts_with("[[")).then(|| {
                t.trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
        })
    };
    let Some(line) = lines.get(line_idx) else {
        return (line_idx + 1, None);
    };
    let t = line.trim();
    if t.starts_with('[') && !t.contains('=') {
        let name = t
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        return (line_idx + 1, Some(name));
    }
    // Nearest `key =` at or above the error.
    let key_line = (0..=line_idx).rev().find_map(|i| {
        let l = lines.get(i)?.split('#').next().unwrap_or("");
        let (k, _) = l.split_once('=')?;
        let k = k.trim();
        (!k.is_empty() && !k.starts_with('[') && !k.contains('"') || k.starts_with('"'))
            .then(|| (i, k.to_string()))
    });
    match key_line {
        Some((i, k)) => {
            let key = match header(i) {
                Some(h) if !h.is_empty() => format!("{h}.{k}"),
                _ => k,
            };
            (line_idx + 1, Some(key))
        }
        None => (line_idx + 1, header(line_idx + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The starter policy at the repository's root, which the README's quick start copies.
    const EXAMPLE: &str = include_str!("../../../policy.example.toml");

    #[test]
    fn the_starter_policy_parses_and_every_commented_key_is_valid_too() {
        let p = Policy::parse(EXAMPLE, "policy.example.toml").expect("starter policy");
        assert_eq!(
            p.management.cidrs.len(),
            1,
            "the one thing to fill in is set"
        );
        assert!(p.warnings().is_empty());
        // Its other values are the defaults.
        let defaults = Policy {
            management: p.management.clone(),
            ..Policy::default()
        };
        assert_eq!(p, defaults);
        // Every commented-out setting (`# key = value`), uncommented, is still a valid policy.
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if looks_like_setting(rest) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        Policy::parse(&uncommented, "policy.example.toml, uncommented").expect("uncommented");
    }

    /// `key = value`, `[table]` or `[[array]]`: a line of TOML, not prose.
    fn looks_like_setting(line: &str) -> bool {
        let t = line.trim_start();
        (t.starts_with('[') && t.ends_with(']'))
            || t.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    }

    pub(super) fn err(text: &str) -> String {
        Policy::parse(text, "p.toml")
            .expect_err("policy should be rejected")
            .to_string()
    }

    #[test]
    fn defaults_when_empty() {
        let p = Policy::parse("", "p.toml").expect("empty policy is valid");
        assert_eq!(p, Policy::default());
        assert!(p.firewall.required && p.vpc.forbid_default);
        assert_eq!(p.mode_for("firewall.missing"), Mode::Audit);
        assert_eq!(p.remediation.max_changes_per_run, 10);
    }

    #[test]
    fn contract_example_parses() {
        let text = r#"
[management]
cidrs = ["203.0.113.0/24"]

[firewall]
required = true
world_open_allowed = ["80", "443"]
forbidden_ports = ["25", "3306", "5432", "6379", "27017"]
baseline_name = "dropletguard-baseline"
baseline_tag = "dropletguard-baseline"

[ssh]
port = 22
password_auth = "forbid"
probe = true
sshd_config = "/etc/ssh/sshd_config"

[vpc]
forbid_default = true
environment_tag_prefix = "env:"
tenant_tag_prefix = "tenant:"

[services]
allowed_public = ["sshd", "nginx"]

[remediation]
mode = "audit"
max_changes_per_run = 10
exempt_tag = "dropletguard-exempt"
quarantine_name = "dropletguard-quarantine"

[rules."firewall.missing"]
mode = "enforce"
"#;
        let p = Policy::parse(text, "p.toml").expect("contract example parses");
        assert_eq!(p.mode_for("firewall.missing"), Mode::Enforce);
        assert_eq!(p.mode_for("firewall.ssh-open"), Mode::Audit);
        assert_eq!(p.management.cidrs.len(), 1);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err("[firewall]\nrequired = true\nrequred = false\n");
        assert!(e.starts_with("p.toml:3: "), "{e}");
        assert!(e.contains("requred"), "{e}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = err("[firewal]\nrequired = true\n");
        assert!(e.starts_with("p.toml:1: "), "{e}");
        assert!(e.contains("firewal"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = err("[remediation]\nmode = \"enforse\"\n");
        assert!(e.starts_with("p.toml:2: remediation.mode"), "{e}");
        let e = err("[management]\ncidrs = [\"203.0.113.0/24\", \"nope\"]\n");
        assert!(e.starts_with("p.toml:2: management.cidrs"), "{e}");
        assert!(e.contains("nope"), "{e}");
        let e = err("[firewall]\nforbidden_ports = [\n  \"25\",\n  \"80-\",\n]\n");
        // A bad element of a multi-line array is reported on the key's line.
        assert!(e.starts_with("p.toml:2: firewall.forbidden_ports"), "{e}");
        assert!(e.contains("\"80-\""), "{e}");
        let e = err("[remediation]\nmax_changes_per_run = \"ten\"\n");
        assert!(
            e.starts_with("p.toml:2: remediation.max_changes_per_run"),
            "{e}"
        );
        let e = err("[firewall]\nrequired = \"yes\"\n");
        assert!(e.starts_with("p.toml:2: firewall.required"), "{e}");
        let e = err("[ssh]\nprobe_users = [\"root\", \"www data\"]\n");
        assert!(e.contains(":2: ssh.probe_users:"), "{e}");
        let e = err("[ssh]\npassword_auth = \"sometimes\"\n");
        assert!(e.starts_with("p.toml:2: ssh.password_auth"), "{e}");
    }

    #[test]
    fn unknown_rule_id_is_an_error() {
        let e = err(
            "[remediation]\nmode = \"audit\"\n\n[rules.\"firewall.mising\"]\nmode = \"enforce\"\n",
        );
        assert!(e.starts_with("p.toml:4: "), "{e}");
        assert!(e.contains("firewall.mising"), "{e}");
    }

    #[test]
    fn names_follow_the_api_patterns() {
        for ok in ["dropletguard-baseline", "a1", "web.v2-fw", "9x"] {
            assert!(valid_firewall_name(ok), "{ok}");
        }
        for bad in ["", "a", "-fw", ".fw", "has space", "fw_1", "fw:1", "é1"] {
            assert!(!valid_firewall_name(bad), "{bad}");
        }
        let e = err("[remediation]\nmode = \"audit\"\nquarantine_name = \"q_1\"\n");
        assert!(
            e.starts_with(
                "p.toml:3: remediation.quarantine_name: \"q_1\" is not a valid firewall name"
            ),
            "{e}"
        );
        let e = err("[remediation]\nexempt_tag = \"no/slash\"\n");
        assert!(e.starts_with("p.toml:2: remediation.exempt_tag"), "{e}");
    }

    #[test]
    fn values_that_defeat_the_policy_are_errors() {
        // Tags match whatever their case.
        let e = err("[firewall]\nbaseline_tag = \"Base\"\n[remediation]\nexempt_tag = \"base\"\n");
        assert!(e.starts_with("p.toml:4: remediation.exempt_tag: must differ from firewall.baseline_tag (\"Base\")"), "{e}");
        let e =
            err("[firewall]\nbaseline_name = \"fw\"\n[remediation]\nquarantine_name = \"fw\"\n");
        assert!(
            e.starts_with("p.toml:4: remediation.quarantine_name: must differ"),
            "{e}"
        );
        let e = err("[ssh]\nport = 22\nsshd_config = \"/etc/ssh/sshd\\u0000config\"\n");
        assert!(
            e.starts_with("p.toml:3: ssh.sshd_config: \"/etc/ssh/sshd\\0config\" holds a control character (U+0000) at byte 13"),
            "{e}"
        );
        let e = err("[services]\nallowed_public = [\"sshd\", \"ngi\\tnx\"]\n");
        assert!(e.starts_with("p.toml:2: services.allowed_public:"), "{e}");
        assert!(e.contains("control character (U+0009)"), "{e}");
        let e = err("[ssh]\nsshd_config = \"etc/ssh/sshd_config\"\n");
        assert!(
            e.starts_with("p.toml:2: ssh.sshd_config: must be an absolute path"),
            "{e}"
        );
        let e = err("[firewall]\nworld_open_allowed = [\"80\", \"+443\"]\n");
        assert!(
            e.starts_with("p.toml:2: firewall.world_open_allowed: \"+443\""),
            "{e}"
        );
    }

    #[test]
    fn equal_to_a_default_points_at_the_key_written() {
        let e =
            err("[management]\ncidrs = []\n[firewall]\nbaseline_tag = \"dropletguard-exempt\"\n");
        assert!(
            e.starts_with("p.toml:4: remediation.exempt_tag: must differ"),
            "{e}"
        );
    }

    #[test]
    fn not_utf8_names_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::write(&path, b"[ssh]\nprobe = false\n# caf\xc3\xa9 \xff\n").expect("write");
        let e = Policy::load(&path).expect_err("refused").to_string();
        let want = format!(
            "{}:3: the policy is not valid UTF-8 (byte 0xFF at column 8)",
            path.display()
        );
        assert_eq!(e, want);
    }

    #[test]
    fn bad_tag_is_an_error() {
        let e = err("[firewall]\nbaseline_tag = \"has space\"\n");
        assert!(e.starts_with("p.toml:2: firewall.baseline_tag"), "{e}");
    }
}

#[cfg(test)]
mod exemption_and_grace_tests {
    use super::tests::err;
    use super::*;

    const GOOD: &str = r#"[remediation]
grace = "2h"

[rules."firewall.missing"]
grace = "90m"

[[exemptions]]
droplets = ["4011", "legacy-*"]
tags = ["vendor-appliance"]
rules = ["firewall.world-open"]
reason = "vendor appliance needs 8443 open; replacement planned"
owner = "platform-team"
expires = 2027-01-31
"#;

    #[test]
    fn contract_keys_parse() {
        let p = Policy::parse(GOOD, "p.toml").expect("valid");
        assert_eq!(p.grace_for("firewall.missing").as_secs(), 90 * 60);
        assert_eq!(p.grace_for("firewall.ssh-open").as_secs(), 7200);
        assert_eq!(p.exemptions.len(), 1);
        assert_eq!(p.exemptions[0].droplets, ["4011", "legacy-*"]);
        assert_eq!(Policy::default().grace_for("firewall.missing").as_secs(), 0);
    }

    #[test]
    fn malformed_exemptions_name_the_key_and_line() {
        let missing_owner = GOOD.replace("owner = \"platform-team\"\n", "");
        let e = err(&missing_owner);
        assert!(e.starts_with("p.toml:7: exemptions"), "{e}");
        assert!(e.contains("owner"), "{e}");
        let e = err(&GOOD.replace("owner =", "ownr ="));
        assert!(e.contains("ownr"), "{e}");
        let e = err(&GOOD.replace("\"legacy-*\"", "\"legacy-[\""));
        assert!(
            e.starts_with("p.toml:8: exemptions.droplets: \"legacy-[\""),
            "{e}"
        );
        let e = err(&GOOD.replace("[\"firewall.world-open\"]", "[\"firewall.wordl-open\"]"));
        assert!(e.starts_with("p.toml:10: exemptions.rules"), "{e}");
        let e = err(&GOOD.replace(
            "reason = \"vendor appliance needs 8443 open; replacement planned\"",
            "reason = \" \"",
        ));
        assert!(e.starts_with("p.toml:11: exemptions.reason"), "{e}");
        let e = err(&GOOD.replace("expires = 2027-01-31", "expires = \"soon\""));
        assert!(e.starts_with("p.toml:13: exemptions.expires"), "{e}");
        let e = err(&GOOD.replace("expires = 2027-01-31", "expires = 12:00:00"));
        assert!(e.starts_with("p.toml:13: exemptions.expires"), "{e}");
        let no_selector = GOOD
            .replace("droplets = [\"4011\", \"legacy-*\"]\n", "")
            .replace("tags = [\"vendor-appliance\"]\n", "");
        let e = err(&no_selector);
        assert!(e.starts_with("p.toml:7: exemptions.droplets"), "{e}");
    }

    #[test]
    fn malformed_grace_names_the_key_and_line() {
        let e = err("[remediation]\ngrace = \"2 hours-ish\"\n");
        assert!(e.starts_with("p.toml:2: remediation.grace"), "{e}");
        let e = err("[rules.\"firewall.missing\"]\ngrace = \"soon\"\n");
        assert!(
            e.starts_with("p.toml:2: rules.\"firewall.missing\".grace"),
            "{e}"
        );
    }
}
