//! What a plan is made of: the changes (steps) fixes write, the notes on findings, and the
//! [`Planner`] that charges the blast-radius cap. Pure data; the loop that fills it is
//! `plan`, the code that carries it out `apply`.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::policy::Policy;
use crate::report::{ChangeResource, Finding, FindingKey, ResourceType};

/// One change the plan makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The name of the fix that planned the step and applies it (`super::fix::Fix::name`).
    pub fix: &'static str,
    pub resource: ChangeResource,
    /// The action name in the ledger.
    pub action: String,
    /// The rule (or rules, comma-separated) whose finding this step fixes.
    pub rule: String,
    pub description: String,
    /// False when `max_changes_per_run` was reached before this step.
    pub within_cap: bool,
    /// What the fix needs to apply the step, in the fix's own shape.
    pub params: Value,
}

/// What remediation says about one finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Note {
    pub planned: Option<String>,
    pub result: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Keyed by the finding; the fixes note Droplet findings, the planner any it leaves.
    pub notes: HashMap<FindingKey, Note>,
    pub cap_reached: bool,
}

impl Plan {
    /// Writes the plan's notes into the findings' `remediation` fields.
    pub fn annotate(&self, findings: &mut [Finding]) {
        for f in findings {
            if let Some(n) = self.notes.get(&FindingKey::of(f)) {
                if f.remediation.planned.is_none() {
                    f.remediation.planned = n.planned.clone();
                }
                if f.remediation.result.is_none() {
                    f.remediation.result = n.result.clone();
                }
            }
        }
    }

    pub fn applicable(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.within_cap)
    }
}

/// What fixes write their steps and notes to; it charges `max_changes_per_run`, which counts
/// distinct resources (a firewall narrowed twice in one run counts once).
pub struct Planner {
    plan: Plan,
    max: usize,
    used: BTreeSet<(ResourceType, String)>,
    cap_note: String,
}

impl Planner {
    pub fn new(policy: &Policy) -> Self {
        let max = policy.remediation.max_changes_per_run;
        Planner {
            plan: Plan::default(),
            max: max as usize,
            used: BTreeSet::new(),
            cap_note: format!("max_changes_per_run ({max}) reached in this run"),
        }
    }

    /// Charges a change to `(kind, id)` to the cap: false when the cap is reached.
    pub fn take(&mut self, kind: ResourceType, id: &str) -> bool {
        let key = (kind, id.to_string());
        if self.used.contains(&key) {
            return true;
        }
        if self.used.len() < self.max {
            self.used.insert(key);
            return true;
        }
        self.plan.cap_reached = true;
        false
    }

    pub fn push(&mut self, step: Step) {
        self.plan.steps.push(step);
    }

    /// Sets the note of `rule`'s finding on the Droplet `id`.
    pub fn note(&mut self, rule: &str, id: &str, planned: Option<String>, result: Option<String>) {
        let key = FindingKey::droplet(rule, id);
        self.plan.notes.insert(key, Note { planned, result });
    }

    /// Sets the note of the finding `key` unless it has one: what is left once the fixes
    /// have planned.
    pub fn note_once(&mut self, key: FindingKey, result: String) {
        self.plan.notes.entry(key).or_insert(Note {
            planned: None,
            result: Some(result),
        });
    }

    /// The plan made.
    pub fn finish(self) -> Plan {
        self.plan
    }

    /// Notes a planned change; outside the cap, the result says it was not applied.
    pub fn note_planned(&mut self, rule: &str, id: &str, planned: &str, within_cap: bool) {
        let result = (!within_cap).then(|| self.cap_note.clone());
        self.note(rule, id, Some(planned.to_string()), result);
    }
}
