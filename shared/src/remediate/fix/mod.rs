//! The fixes: one small unit per remediation, found through a registry ([`FIXES`]).
//!
//! A fix owns three things: what it would change (a pure `plan` from findings, snapshot and
//! policy to [`Step`]s), how to apply its steps (`apply`), and how it describes the before and
//! after (each step's description, and the ledger entries it writes). Adding a fix for a new
//! rule means one file here and one line in [`FIXES`].

mod attach_baseline;
#[cfg(test)]
#[cfg(test)]
mod examples;
mod narrow_rules;
mod password_auth;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use super::ensure::find_named;
pub use attach_baseline::baseline_request;
pub use narrow_rules::RuleEdit;

use super::ledger::Ledger;
use super::step::{Planner, Step};
use super::RemediateError;
use crate::catalog::Mode;
use crate::digitalocean::{Client, Droplet, InboundRule};
use crate::policy::{Policy, PortRange};
use crate::report::{Change, ChangeResource, Finding, ResourceType, Status};
use crate::snapshot::{Scope, Snapshot};
use crate::ssh_audit::SshAccess;

/// One remediation.
pub trait Fix: Sync {
    /// The fix's name, which its steps carry (`Step::fix`).
    fn name(&self) -> &'static str;
    /// The rule ids whose findings this fix answers.
    fn rules(&self) -> &'static [&'static str];
    /// Pure: plans steps for `findings` (enforced `fail` findings of [`Fix::rules`], never on
    /// an exempt Droplet), charging the cap and noting each finding through `out`.
    fn plan(&self, cx: &PlanContext<'_>, findings: &[&Finding], out: &mut Planner);
    /// Applies `steps` (this fix's, within the cap, in plan order), writing one ledger entry
    /// per change as it happens. Errors: only a ledger write that failed (the run stops); a
    /// change that failed is recorded as `failed: …` and the run goes on.
    fn apply<'a>(
        &'a self,
        cx: &'a mut ApplyContext<'_>,
        steps: &'a [&'a Step],
    ) -> BoxFuture<'a, Result<Vec<Change>, RemediateError>>;
}

/// The registry, in the order fixes plan and apply (attaching a firewall before narrowing
/// rules, firewall changes before changes over SSH).
pub static FIXES: &[&dyn Fix] = &[
    &attach_baseline::AttachBaseline,
    &narrow_rules::NarrowRules,
    &password_auth::DisablePasswordAuth,
];

/// What a fix plans from: the snapshot, the policy, the run's scope, and indexes over them.
pub struct PlanContext<'a> {
    pub snapshot: &'a Snapshot,
    pub policy: &'a Policy,
    pub scope: &'a Scope,
    /// Whether a management key is configured (changes over SSH need one).
    pub ssh_key: bool,
    droplets: BTreeMap<u64, &'a Droplet>,
}

impl<'a> PlanContext<'a> {
    pub fn new(
        snapshot: &'a Snapshot,
        policy: &'a Policy,
        scope: &'a Scope,
        ssh_key: bool,
    ) -> Self {
        let droplets = snapshot.droplets.iter().map(|d| (d.id, d)).collect();
        PlanContext {
            snapshot,
            policy,
            scope,
            ssh_key,
            droplets,
        }
    }

    /// The Droplet a finding is about (none for firewall and account findings).
    pub fn droplet_of(&self, f: &Finding) -> Option<&'a Droplet> {
        if f.resource.kind != ResourceType::Droplet {
            return None;
        }
        let id: u64 = f.resource.id.parse().ok()?;
        self.droplets.get(&id).copied()
    }

    /// Whether the Droplet carries `remediation.exempt_tag`: reported, never changed.
    pub fn is_exempt(&self, d: &Droplet) -> bool {
        d.has_tag(&self.policy.remediation.exempt_tag)
    }

    pub fn exempt_note(&self) -> String {
        let tag = &self.policy.remediation.exempt_tag;
        format!("exempt (tag {tag}): reported, never changed")
    }

    /// A `fail` finding whose rule is in `enforce` mode.
    pub fn enforced(&self, f: &Finding) -> bool {
        f.status == Status::Fail && self.policy.mode_for(&f.rule) == Mode::Enforce
    }
}

/// What a fix applies with.
pub struct ApplyContext<'a> {
    pub client: &'a Client,
    pub policy: &'a Policy,
    pub ledger: Ledger<'a>,
    /// How to reach Droplets over SSH.
    pub ssh: &'a SshAccess,
}

/// A step of `fix`, with its parameters in the fix's own shape.
pub(crate) fn step(
    fix: &dyn Fix,
    action: &str,
    resource: (ResourceType, String),
    rule: &str,
    description: String,
    within_cap: bool,
    params: &impl Serialize,
) -> Step {
    Step {
        fix: fix.name(),
        resource: ChangeResource {
            kind: resource.0,
            id: resource.1,
        },
        action: action.to_string(),
        rule: rule.to_string(),
        description,
        within_cap,
        params: serde_json::to_value(params).unwrap_or_default(),
    }
}

/// A step's parameters, read back in the fix's shape. Errors: a step of another shape.
pub(crate) fn params<T: DeserializeOwned>(step: &Step) -> Result<T, RemediateError> {
    serde_json::from_value(step.params.clone()).map_err(|e| {
        RemediateError::Refused(format!("step {} of fix {}: {e}", step.action, step.fix))
    })
}

/// A rule's ports as the API writes them: `"0"` for all, `"22"`, `"8000-8100"`.
pub(crate) fn ports_text(r: &PortRange) -> String {
    if *r == PortRange::ALL {
        "0".into()
    } else if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    }
}

/// An inbound rule in one line: `tcp 22 from 203.0.113.0/24, tag:web`.
pub(crate) fn rule_text(r: &InboundRule) -> String {
    r.to_string()
}

/// `ok`, or `failed: <error>`.
pub(crate) fn result_of<T, E: std::fmt::Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {e}"),
    }
}
