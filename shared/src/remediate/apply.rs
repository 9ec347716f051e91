//! Applying a plan: each fix applies its own steps, in registry order, writing one ledger
//! entry per change as it happens.

use super::fix::{ApplyContext, FIXES};
use super::step::{Plan, Step};
use super::RemediateError;
use crate::report::Change;

/// Applies the steps within the cap. A ledger write that fails stops the run with an error.
pub(crate) async fn apply(
    cx: &mut ApplyContext<'_>,
    plan: &Plan,
) -> Result<Vec<Change>, RemediateError> {
    let mut changes = Vec::new();
    for fix in FIXES {
        let steps: Vec<&Step> = plan.applicable().filter(|s| s.fix == fix.name()).collect();
        if !steps.is_empty() {
            changes.extend(fix.apply(cx, &steps).await?);
        }
    }
    Ok(changes)
}
