//! The rules: stable ids, default severities, help text, and the checks, one file per family.
//! Every rule carries positive and negative examples (`examples`) that a test runs.

pub(crate) mod account;
mod context;
#[cfg(test)]
pub(crate) mod examples;
pub(crate) mod firewall;
pub(crate) mod ssh;
pub(crate) mod vpc;

pub(crate) use context::{droplet_resource, parse_inbound, Ctx, ParsedInbound};

pub use crate::catalog::{
    ids, info, order, RuleInfo, FIREWALL_FORBIDDEN_PORT, FIREWALL_LIMITS, FIREWALL_MISSING,
    FIREWALL_NOT_APPLIED, FIREWALL_SSH_OPEN, FIREWALL_WORLD_OPEN, RULES, SERVICE_EXPOSED,
    SSH_NO_ACCOUNT_KEYS, SSH_PASSWORD_AUTH, VPC_DEFAULT, VPC_MIXED_ENVIRONMENTS, VPC_MIXED_TENANTS,
};
