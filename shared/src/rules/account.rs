//! Account-level rules.

use crate::report::{Finding, Resource, ResourceType, Status};
use crate::rules::Ctx;
use crate::rules::SSH_NO_ACCOUNT_KEYS;

fn account() -> Resource {
    Resource {
        kind: ResourceType::Account,
        id: "account".into(),
        name: "account".into(),
    }
}

/// `ssh.no-account-keys`: always evaluated, whatever the scope.
pub(crate) fn check(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    if !ctx.enabled(SSH_NO_ACCOUNT_KEYS) {
        return;
    }
    // A re-check reuses the last full read's keys (`GET /v2/account/keys` allows 10 a minute).
    let as_of = ctx
        .snapshot
        .full_read_at()
        .map(|t| {
            format!(
                " (as the full read of {} found them; re-checks do not read the keys again)",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    match &ctx.snapshot.ssh_keys {
        Ok(keys) if keys.is_empty() => out.push(ctx.finding(
            SSH_NO_ACCOUNT_KEYS,
            Status::Fail,
            None,
            account(),
            format!("the account has no SSH keys: Droplets created now get a root password{as_of}"),
        )),
        Ok(_) => {}
        Err(e) => out.push(ctx.finding(
            SSH_NO_ACCOUNT_KEYS,
            Status::Unknown,
            None,
            account(),
            format!("could not list the account's SSH keys: {e}"),
        )),
    }
}
