//! The vocabulary every layer shares: the rule catalogue (stable ids, titles, default
//! severities, help), severities and remediation modes. It depends on nothing else in the
//! crate, so `policy`, `rules`, `evaluate` and `report` can all use it without a circle.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// Remediation mode of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Audit,
    Enforce,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Enforce => "enforce",
        }
    }
}

/// What a rule is, for reports and SARIF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    /// What it checks and how to fix it.
    pub help: &'static str,
    /// Needs a network connection to the Droplet (left out by `--no-ssh`).
    pub needs_ssh: bool,
}

pub const FIREWALL_MISSING: &str = "firewall.missing";
pub const FIREWALL_SSH_OPEN: &str = "firewall.ssh-open";
pub const FIREWALL_WORLD_OPEN: &str = "firewall.world-open";
pub const FIREWALL_FORBIDDEN_PORT: &str = "firewall.forbidden-port";
pub const FIREWALL_NOT_APPLIED: &str = "firewall.not-applied";
pub const FIREWALL_LIMITS: &str = "firewall.limits";
pub const SSH_PASSWORD_AUTH: &str = "ssh.password-auth";
pub const SSH_NO_ACCOUNT_KEYS: &str = "ssh.no-account-keys";
pub const VPC_DEFAULT: &str = "vpc.default";
pub const VPC_MIXED_ENVIRONMENTS: &str = "vpc.mixed-environments";
pub const VPC_MIXED_TENANTS: &str = "vpc.mixed-tenants";
pub const SERVICE_EXPOSED: &str = "service.exposed";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: FIREWALL_MISSING,
        title: "Droplet has no Cloud Firewall",
        severity: Severity::Critical,
        help: "No Cloud Firewall covers the Droplet, by its id or by one of its tags, so every port it listens on is open to the Internet. Attach a firewall (remediation attaches the baseline firewall by tag).",
        needs_ssh: false,
    },
    RuleInfo {
        id: FIREWALL_SSH_OPEN,
        title: "SSH reachable from outside the management ranges",
        severity: Severity::High,
        help: "The union of the Droplet's firewalls admits the SSH port from an address outside management.cidrs. Restrict the SSH rule's sources to the management ranges.",
        needs_ssh: false,
    },
    RuleInfo {
        id: FIREWALL_WORLD_OPEN,
        title: "Port open to the world",
        severity: Severity::High,
        help: "A tcp or udp port outside firewall.world_open_allowed is open to 0.0.0.0/0 or ::/0 (port \"0\", \"all\" and ranges included). Narrow the rule's sources or ports.",
        needs_ssh: false,
    },
    RuleInfo {
        id: FIREWALL_FORBIDDEN_PORT,
        title: "Forbidden port reachable from outside the management ranges",
        severity: Severity::Critical,
        help: "A port listed in firewall.forbidden_ports (mail, databases, caches by default) is open, over tcp or udp, to an address outside management.cidrs. Remove the rule or restrict it to the management ranges or internal sources.",
        needs_ssh: false,
    },
    RuleInfo {
        id: FIREWALL_NOT_APPLIED,
        title: "Firewall not applied to the Droplet",
        severity: Severity::High,
        help: "A firewall covering the Droplet has status failed, or a change for this Droplet is still pending, so its rules may not be in force. Check the firewall in the control panel and re-apply it.",
        needs_ssh: false,
    },
    RuleInfo {
        id: FIREWALL_LIMITS,
        title: "Firewall at a platform limit",
        severity: Severity::Medium,
        help: "The firewall is at or over a Cloud Firewall limit: 10 Droplets by id, 5 tags, or 50 rules (inbound plus outbound). Further Droplets or rules cannot be added; attach Droplets by tag, or split the firewall.",
        needs_ssh: false,
    },
    RuleInfo {
        id: SSH_PASSWORD_AUTH,
        title: "SSH server accepts passwords",
        severity: Severity::High,
        help: "The SSH server offers password or keyboard-interactive authentication. Use keys only: PasswordAuthentication no and KbdInteractiveAuthentication no.",
        needs_ssh: true,
    },
    RuleInfo {
        id: SSH_NO_ACCOUNT_KEYS,
        title: "Account has no SSH keys",
        severity: Severity::Medium,
        help: "The account has no SSH keys, so new Droplets are created with a root password instead of a key. Add an SSH key to the account and use it when creating Droplets.",
        needs_ssh: false,
    },
    RuleInfo {
        id: VPC_DEFAULT,
        title: "Droplet in its region's default VPC",
        severity: Severity::Medium,
        help: "The Droplet sits in its region's default VPC (or has no VPC), shared with everything else created there without a VPC. Move it to a VPC of its environment and tenant.",
        needs_ssh: false,
    },
    RuleInfo {
        id: VPC_MIXED_ENVIRONMENTS,
        title: "VPC mixes environments",
        severity: Severity::High,
        help: "The Droplet's VPC holds Droplets of more than one environment tag (env:prod, env:dev, ...), so a development Droplet can reach production over the private network. Give each environment its own VPC.",
        needs_ssh: false,
    },
    RuleInfo {
        id: VPC_MIXED_TENANTS,
        title: "VPC shared by tenants",
        severity: Severity::High,
        help: "The Droplet's VPC holds Droplets of more than one tenant tag, so one tenant's Droplets can reach another's over the private network. Give each tenant its own VPC.",
        needs_ssh: false,
    },
    RuleInfo {
        id: SERVICE_EXPOSED,
        title: "Service listening publicly",
        severity: Severity::Medium,
        help: "A process not in services.allowed_public listens on all interfaces or a public address. Bind it to localhost or the private interface, or add it to the allowlist.",
        needs_ssh: true,
    },
];

pub fn info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

pub fn ids() -> Vec<&'static str> {
    RULES.iter().map(|r| r.id).collect()
}

/// Position of a rule in `RULES`, for stable ordering.
pub fn order(id: &str) -> usize {
    RULES.iter().position(|r| r.id == id).unwrap_or(usize::MAX)
}
