//! Planning (pure): findings, policy and snapshot in, the list of changes out.
//!
//! The planner is a loop over the fix registry ([`super::fix::FIXES`]): for each fix, the
//! enforced `fail` findings of its rules on Droplets that are not exempt go to the fix, which
//! plans its steps and charges the blast-radius cap through a [`Planner`]. Every enforced
//! finding ends with a note saying what remediation plans for it, or why nothing.

use super::fix::{PlanContext, FIXES};
use super::step::{Plan, Planner};
use crate::policy::Policy;
use crate::report::{Finding, FindingKey};
use crate::rules::{FIREWALL_FORBIDDEN_PORT, FIREWALL_MISSING, FIREWALL_SSH_OPEN};
use crate::snapshot::{Scope, Snapshot};

/// Builds the plan. `findings` are those of the audit just made over `scope`.
/// `ssh_key`: whether a management key is configured (password-auth removal needs one).
pub fn plan(
    snapshot: &Snapshot,
    policy: &Policy,
    findings: &[Finding],
    scope: &Scope,
    ssh_key: bool,
) -> Plan {
    let cx = PlanContext::new(snapshot, policy, scope, ssh_key);
    let mut out = Planner::new(policy);
    for fix in FIXES {
        let mine: Vec<&Finding> = findings
            .iter()
            .filter(|f| fix.rules().contains(&f.rule.as_str()) && cx.enforced(f))
            .filter(|f| !cx.droplet_of(f).is_some_and(|d| cx.is_exempt(d)))
            .collect();
        if !mine.is_empty() {
            fix.plan(&cx, &mine, &mut out);
        }
    }
    note_rest(&mut out, &cx, findings);
    out.finish()
}

/// Notes, once, what is left: enforced findings that no fix planned for.
fn note_rest(out: &mut Planner, cx: &PlanContext<'_>, findings: &[Finding]) {
    for f in findings.iter().filter(|f| cx.enforced(f)) {
        let result = if cx.droplet_of(f).is_some_and(|d| cx.is_exempt(d)) {
            cx.exempt_note()
        } else if matches!(
            f.rule.as_str(),
            FIREWALL_SSH_OPEN | FIREWALL_FORBIDDEN_PORT | FIREWALL_MISSING
        ) {
            "no change planned for this finding".into()
        } else {
            "no automatic fix for this rule; see its help".into()
        };
        out.note_once(FindingKey::of(f), result);
    }
}
