//! VPC isolation rules: the default VPC, and VPCs shared by environments or tenants.

use std::collections::BTreeMap;

use crate::digitalocean::Droplet;
use crate::report::{Finding, Status};
use crate::rules::{droplet_resource, Ctx};
use crate::rules::{VPC_DEFAULT, VPC_MIXED_ENVIRONMENTS, VPC_MIXED_TENANTS};

fn vpc_label(ctx: &Ctx<'_>, key: &str) -> String {
    match ctx.vpcs.get(key) {
        Some(v) => format!("VPC {} ({})", v.name, v.id),
        None => match key.strip_prefix("default:") {
            Some(region) => format!("the default VPC of {region}"),
            None => format!("VPC {key}"),
        },
    }
}

fn mix(values: &BTreeMap<String, usize>, prefix: &str) -> String {
    values
        .iter()
        .map(|(v, n)| {
            format!(
                "{prefix}{v} ({n} Droplet{})",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn check_droplet(ctx: &Ctx<'_>, d: &Droplet, out: &mut Vec<Finding>) {
    if ctx.policy.vpc.forbid_default && ctx.enabled(VPC_DEFAULT) {
        out.extend(check_default(ctx, d));
    }
    check_mixed(ctx, d, out);
}

/// `vpc.default`: the Droplet has no VPC, or sits in its region's default VPC.
fn check_default(ctx: &Ctx<'_>, d: &Droplet) -> Option<Finding> {
    let region = d.region_slug();
    let verdict = match (
        &ctx.snapshot.vpcs,
        d.vpc_uuid.as_deref().filter(|v| !v.is_empty()),
    ) {
        (_, None) => Some((
            Status::Fail,
            format!("the Droplet has no VPC and so sits in the default network of {region}"),
        )),
        (Err(e), Some(_)) => Some((Status::Unknown, format!("could not list VPCs: {e}"))),
        (Ok(_), Some(id)) => match ctx.vpcs.get(id) {
            Some(v) if v.default => Some((
                Status::Fail,
                format!(
                    "the Droplet sits in {}, the default VPC of {}",
                    vpc_label(ctx, id),
                    v.region
                ),
            )),
            Some(_) => None,
            None => Some((
                Status::Unknown,
                format!("VPC {id} is not in the account's VPC list"),
            )),
        },
    };
    let (status, detail) = verdict?;
    Some(ctx.finding(VPC_DEFAULT, status, None, droplet_resource(d), detail))
}

/// `vpc.mixed-environments` and `vpc.mixed-tenants`: the Droplet's VPC holds more than one.
fn check_mixed(ctx: &Ctx<'_>, d: &Droplet, out: &mut Vec<Finding>) {
    let policy = ctx.policy;
    let key = ctx.vpc_key(d);
    let Some(group) = ctx.groups.get(&key) else {
        return;
    };
    for (rule, values, prefix, what) in [
        (
            VPC_MIXED_ENVIRONMENTS,
            &group.envs,
            &policy.vpc.environment_tag_prefix,
            "environments",
        ),
        (
            VPC_MIXED_TENANTS,
            &group.tenants,
            &policy.vpc.tenant_tag_prefix,
            "tenants",
        ),
    ] {
        if values.len() > 1 && ctx.enabled(rule) {
            out.push(ctx.finding(
                rule,
                Status::Fail,
                None,
                droplet_resource(d),
                format!(
                    "{} holds Droplets of {} {what}: {}",
                    vpc_label(ctx, &key),
                    values.len(),
                    mix(values, prefix)
                ),
            ));
        }
    }
}
