//! The scheduled run (`scheduled-audit`): the whole account, audited and remediated per policy.

use super::*;

/// The scheduled run: the whole account, remediation per policy, report and ledger stored.
pub async fn scheduled_run(deps: &Deps, trigger: &str) -> Result<Report, ServiceError> {
    SeenBudget::seed(&deps.store, &deps.client).await;
    let scope = Scope::all();
    let opts = RemediateOptions {
        scope: scope.clone(),
        dry_run: false,
        trigger,
        ssh: &deps.ssh,
        now: None,
        ignore_grace: false,
        started: None,
    };
    let report = remediate::remediate(&deps.client, &deps.policy, &deps.store, opts).await?;
    after_run(deps, &report, &scope).await?;
    Ok(report)
}
