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
    match &ctx.snapshot.ssh_keys {
        Ok(keys) if keys.is_empty() => out.push(ctx.finding(
            SSH_NO_ACCOUNT_KEYS,
            Status::Fail,
            None,
            account(),
            "the account has no SSH keys: Droplets created now get a root password".into(),
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
