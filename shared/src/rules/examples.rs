//! Positive and negative examples for every rule, as data: a small account and a policy, and
//! whether the rule must fail on the example's target (Droplet 1, firewall `fw-target`, or the
//! account). A test evaluates them all, so a rule whose example is wrong fails the build.

use crate::digitalocean::{
    Droplet, Firewall, InboundRule, OutboundRule, PendingChange, Protocol, RegionRef, SshKey,
    Targets, Vpc,
};
use crate::net::Cidr;
use crate::policy::Policy;
use crate::rules::*;
use crate::snapshot::Snapshot;

pub struct Example {
    pub rule: &'static str,
    pub name: &'static str,
    /// Whether `rule` must report `fail` on the target.
    pub fails: bool,
    pub snapshot: Snapshot,
    pub policy: Policy,
}

/// The resource id an example's finding is about.
pub fn target(rule: &str) -> &'static str {
    match rule {
        FIREWALL_LIMITS => "fw-target",
        SSH_NO_ACCOUNT_KEYS => "account",
        _ => "1",
    }
}

const MGMT: &str = "203.0.113.0/24";

pub fn policy() -> Policy {
    let mut p = Policy::default();
    p.management.cidrs = vec![Cidr::parse(MGMT).expect("literal cidr")];
    p
}

pub fn droplet(id: u64, tags: &[&str], vpc: Option<&str>) -> Droplet {
    Droplet {
        id,
        name: format!("droplet-{id}"),
        status: "active".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        vpc_uuid: vpc.map(str::to_string),
        networks: Default::default(),
        region: Some(RegionRef {
            slug: "nyc3".into(),
        }),
        gpu_info: None,
        locked: false,
    }
}

pub fn inbound(protocol: Protocol, ports: &str, addresses: &[&str]) -> InboundRule {
    InboundRule {
        action: Default::default(),
        protocol,
        ports: ports.into(),
        sources: Targets::addresses(addresses.iter().copied()),
    }
}

pub fn firewall(id: &str, rules: Vec<InboundRule>, droplet_ids: &[u64], tags: &[&str]) -> Firewall {
    Firewall {
        id: id.into(),
        name: format!("{id}-name"),
        status: Some("succeeded".into()),
        created_at: None,
        inbound_rules: rules,
        outbound_rules: vec![],
        droplet_ids: droplet_ids.to_vec(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pending_changes: vec![],
    }
}

fn vpcs() -> Vec<Vpc> {
    let v = |id: &str, default: bool| Vpc {
        id: id.into(),
        urn: None,
        name: format!("{id}-name"),
        description: None,
        region: "nyc3".into(),
        ip_range: None,
        default,
        created_at: None,
    };
    vec![v("vpc-default", true), v("vpc-a", false), v("vpc-b", false)]
}

fn key() -> SshKey {
    SshKey {
        id: Some(1),
        fingerprint: None,
        public_key: "ssh-ed25519 AAAA example".into(),
        name: "admin".into(),
    }
}

fn snap(droplets: Vec<Droplet>, firewalls: Vec<Firewall>) -> Snapshot {
    Snapshot {
        droplets,
        firewalls,
        vpcs: Ok(vpcs()),
        ssh_keys: Ok(vec![key()]),
        ssh: Default::default(),
        incomplete: Vec::new(),
        read: Default::default(),
    }
}

/// One Droplet (id 1, tag `web`, VPC `vpc-a`) behind the given firewalls.
fn one(firewalls: Vec<Firewall>) -> Snapshot {
    snap(vec![droplet(1, &["web"], Some("vpc-a"))], firewalls)
}

/// One Droplet behind one firewall (by id) with the given inbound rules.
fn behind(rules: Vec<InboundRule>) -> Snapshot {
    one(vec![firewall("fw-1", rules, &[1], &[])])
}

fn ex(rule: &'static str, name: &'static str, fails: bool, snapshot: Snapshot) -> Example {
    Example {
        rule,
        name,
        fails,
        snapshot,
        policy: policy(),
    }
}

use Protocol::{Icmp, Tcp, Udp};

// A data table: one entry per example, read top to bottom.
#[allow(clippy::too_many_lines)]
pub fn all() -> Vec<Example> {
    let mut v = vec![
        // firewall.missing
        ex(FIREWALL_MISSING, "no firewall at all", true, one(vec![])),
        ex(
            FIREWALL_MISSING,
            "firewall for another tag and another Droplet",
            true,
            one(vec![firewall("fw-1", vec![], &[2], &["api"])]),
        ),
        ex(
            FIREWALL_MISSING,
            "covered by id",
            false,
            one(vec![firewall("fw-1", vec![], &[1], &[])]),
        ),
        ex(
            FIREWALL_MISSING,
            "covered by tag",
            false,
            one(vec![firewall("fw-1", vec![], &[], &["web"])]),
        ),
        // firewall.ssh-open
        ex(
            FIREWALL_SSH_OPEN,
            "22 from 0.0.0.0/0",
            true,
            behind(vec![inbound(Tcp, "22", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "22 from ::/0",
            true,
            behind(vec![inbound(Tcp, "22", &["::/0"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "22 from a range outside management",
            true,
            behind(vec![inbound(Tcp, "22", &["198.51.100.0/24"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "22 from a range wider than management",
            true,
            behind(vec![inbound(Tcp, "22", &["203.0.112.0/23"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "port range holding 22",
            true,
            behind(vec![inbound(Tcp, "1-1024", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "all ports",
            true,
            behind(vec![inbound(Tcp, "all", &["198.51.100.7"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "union: one firewall by id is strict, another by tag is open",
            true,
            one(vec![
                firewall("fw-1", vec![inbound(Tcp, "22", &[MGMT])], &[1], &[]),
                firewall(
                    "fw-2",
                    vec![inbound(Tcp, "22", &["0.0.0.0/0"])],
                    &[],
                    &["web"],
                ),
            ]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "22 from management only",
            false,
            behind(vec![inbound(Tcp, "22", &[MGMT])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "22 from an address inside management",
            false,
            behind(vec![inbound(
                Tcp,
                "22",
                &["203.0.113.128/25", "203.0.113.9"],
            )]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "22 from tags, Droplets, load balancers, clusters",
            false,
            behind(vec![InboundRule {
                action: Default::default(),
                protocol: Tcp,
                ports: "22".into(),
                sources: Targets {
                    tags: vec!["bastion".into()],
                    droplet_ids: vec![7],
                    load_balancer_uids: vec!["lb-1".into()],
                    kubernetes_ids: vec!["k8s-1".into()],
                    ..Default::default()
                },
            }]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "udp 22 is not SSH",
            false,
            behind(vec![inbound(Udp, "22", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_SSH_OPEN,
            "other ports only",
            false,
            behind(vec![inbound(Tcp, "80", &["0.0.0.0/0"])]),
        ),
        // firewall.world-open
        ex(
            FIREWALL_WORLD_OPEN,
            "tcp 8080 to the world",
            true,
            behind(vec![inbound(Tcp, "8080", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "udp 53 to the world",
            true,
            behind(vec![inbound(Udp, "53", &["::/0"])]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "port \"0\" means all",
            true,
            behind(vec![inbound(Tcp, "0", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "range 80-443",
            true,
            behind(vec![inbound(Tcp, "80-443", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "ssh open to the world is also world-open",
            true,
            behind(vec![inbound(Tcp, "22", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "80 and 443 to the world",
            false,
            behind(vec![
                inbound(Tcp, "80", &["0.0.0.0/0", "::/0"]),
                inbound(Tcp, "443", &["0.0.0.0/0"]),
            ]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "8080 from a range, not the world",
            false,
            behind(vec![inbound(Tcp, "8080", &["198.51.100.0/24"])]),
        ),
        ex(
            FIREWALL_WORLD_OPEN,
            "icmp from the world",
            false,
            behind(vec![inbound(Icmp, "", &["0.0.0.0/0"])]),
        ),
        // firewall.forbidden-port
        ex(
            FIREWALL_FORBIDDEN_PORT,
            "5432 to the world",
            true,
            behind(vec![inbound(Tcp, "5432", &["0.0.0.0/0"])]),
        ),
        ex(
            FIREWALL_FORBIDDEN_PORT,
            "udp 6379 from outside management",
            true,
            behind(vec![inbound(Udp, "6379", &["198.51.100.0/24"])]),
        ),
        ex(
            FIREWALL_FORBIDDEN_PORT,
            "range holding 3306",
            true,
            behind(vec![inbound(Tcp, "3000-4000", &["2001:db8::/32"])]),
        ),
        ex(
            FIREWALL_FORBIDDEN_PORT,
            "5432 from management",
            false,
            behind(vec![inbound(Tcp, "5432", &[MGMT])]),
        ),
        ex(
            FIREWALL_FORBIDDEN_PORT,
            "5432 from a Droplet",
            false,
            behind(vec![InboundRule {
                action: Default::default(),
                protocol: Tcp,
                ports: "5432".into(),
                sources: Targets {
                    droplet_ids: vec![2],
                    ..Default::default()
                },
            }]),
        ),
        ex(
            FIREWALL_FORBIDDEN_PORT,
            "5433 is not forbidden",
            false,
            behind(vec![inbound(Tcp, "5433", &["0.0.0.0/0"])]),
        ),
    ];
    // firewall.not-applied
    let mut failed = firewall("fw-1", vec![], &[1], &[]);
    failed.status = Some("failed".into());
    v.push(ex(
        FIREWALL_NOT_APPLIED,
        "status failed",
        true,
        one(vec![failed]),
    ));
    let mut pending = firewall("fw-1", vec![], &[], &["web"]);
    pending.status = Some("waiting".into());
    pending.pending_changes = vec![PendingChange {
        droplet_id: Some(1),
        removing: Some(false),
        status: Some("waiting".into()),
    }];
    v.push(ex(
        FIREWALL_NOT_APPLIED,
        "pending change for this Droplet",
        true,
        one(vec![pending.clone()]),
    ));
    pending.pending_changes[0].droplet_id = Some(2);
    v.push(ex(
        FIREWALL_NOT_APPLIED,
        "pending change for another Droplet",
        false,
        one(vec![pending.clone()]),
    ));
    pending.pending_changes.clear();
    v.push(ex(
        FIREWALL_NOT_APPLIED,
        "waiting alone is not a failure",
        false,
        one(vec![pending]),
    ));
    // firewall.limits
    let ids: Vec<u64> = (1..=10).collect();
    v.push(ex(
        FIREWALL_LIMITS,
        "10 Droplets by id",
        true,
        one(vec![firewall("fw-target", vec![], &ids, &[])]),
    ));
    v.push(ex(
        FIREWALL_LIMITS,
        "5 tags",
        true,
        one(vec![firewall(
            "fw-target",
            vec![],
            &[],
            &["web", "a", "b", "c", "d"],
        )]),
    ));
    let mut fifty = firewall(
        "fw-target",
        vec![inbound(Tcp, "443", &[MGMT]); 25],
        &[1],
        &[],
    );
    fifty.outbound_rules = vec![
        OutboundRule {
            action: Default::default(),
            protocol: Tcp,
            ports: "443".into(),
            destinations: Targets::addresses(["0.0.0.0/0"]),
        };
        25
    ];
    v.push(ex(
        FIREWALL_LIMITS,
        "50 rules, inbound plus outbound",
        true,
        one(vec![fifty.clone()]),
    ));
    fifty.outbound_rules.pop();
    v.push(ex(FIREWALL_LIMITS, "49 rules", false, one(vec![fifty])));
    let nine: Vec<u64> = (1..=9).collect();
    v.push(ex(
        FIREWALL_LIMITS,
        "9 Droplets, 4 tags",
        false,
        one(vec![firewall(
            "fw-target",
            vec![],
            &nine,
            &["web", "a", "b", "c"],
        )]),
    ));
    // ssh.no-account-keys
    let mut no_keys = behind(vec![]);
    no_keys.ssh_keys = Ok(vec![]);
    v.push(ex(SSH_NO_ACCOUNT_KEYS, "no keys", true, no_keys));
    v.push(ex(SSH_NO_ACCOUNT_KEYS, "one key", false, behind(vec![])));
    // vpc.default
    let fw = || vec![firewall("fw-1", vec![], &[], &["web"])];
    v.push(ex(
        VPC_DEFAULT,
        "in the default VPC",
        true,
        snap(vec![droplet(1, &["web"], Some("vpc-default"))], fw()),
    ));
    v.push(ex(
        VPC_DEFAULT,
        "no vpc_uuid",
        true,
        snap(vec![droplet(1, &["web"], None)], fw()),
    ));
    v.push(ex(
        VPC_DEFAULT,
        "in its own VPC",
        false,
        snap(vec![droplet(1, &["web"], Some("vpc-a"))], fw()),
    ));
    let mut allow_default = ex(
        VPC_DEFAULT,
        "default VPC allowed by policy",
        false,
        snap(vec![droplet(1, &["web"], Some("vpc-default"))], fw()),
    );
    allow_default.policy.vpc.forbid_default = false;
    v.push(allow_default);
    // vpc.mixed-environments and vpc.mixed-tenants
    for (rule, prefix) in [
        (VPC_MIXED_ENVIRONMENTS, "env:"),
        (VPC_MIXED_TENANTS, "tenant:"),
    ] {
        let a = format!("{prefix}a");
        let b = format!("{prefix}b");
        let d = |id: u64, t: &str, vpc: &str| droplet(id, &["web", t], Some(vpc));
        v.push(ex(
            rule,
            "two values in one VPC",
            true,
            snap(vec![d(1, &a, "vpc-a"), d(2, &b, "vpc-a")], fw()),
        ));
        v.push(ex(
            rule,
            "untagged Droplet in a mixed VPC",
            true,
            snap(
                vec![
                    droplet(1, &["web"], Some("vpc-a")),
                    d(2, &a, "vpc-a"),
                    d(3, &b, "vpc-a"),
                ],
                fw(),
            ),
        ));
        v.push(ex(
            rule,
            "no vpc_uuid joins the region's default VPC",
            true,
            snap(
                vec![droplet(1, &["web", &a], None), d(2, &b, "vpc-default")],
                fw(),
            ),
        ));
        v.push(ex(
            rule,
            "one value per VPC",
            false,
            snap(vec![d(1, &a, "vpc-a"), d(2, &b, "vpc-b")], fw()),
        ));
        v.push(ex(
            rule,
            "untagged Droplets do not count",
            false,
            snap(
                vec![d(1, &a, "vpc-a"), droplet(2, &["web"], Some("vpc-a"))],
                fw(),
            ),
        ));
    }
    // Deny rules (since 2026-09): exposure is what is allowed minus what is denied, across
    // every covering firewall; a deny of internal peers closes nothing to outside addresses.
    let world = ["0.0.0.0/0", "::/0"];
    for (rule, port) in [
        (FIREWALL_SSH_OPEN, "22"),
        (FIREWALL_FORBIDDEN_PORT, "5432"),
        (FIREWALL_WORLD_OPEN, "8080"),
    ] {
        let allow = || inbound(Tcp, port, &world);
        v.push(ex(
            rule,
            "allowed, then denied from everywhere in the same firewall",
            false,
            behind(vec![allow(), deny(Tcp, port, &world)]),
        ));
        v.push(ex(
            rule,
            "allowed, then denied from everywhere by another firewall",
            false,
            one(vec![
                firewall("fw-1", vec![allow()], &[1], &[]),
                firewall("fw-2", vec![deny(Tcp, "all", &world)], &[], &["web"]),
            ]),
        ));
        v.push(ex(
            rule,
            "denied over IPv4 only: ::/0 stays open",
            true,
            one(vec![
                firewall("fw-1", vec![allow()], &[1], &[]),
                firewall("fw-2", vec![deny(Tcp, port, &["0.0.0.0/0"])], &[1], &[]),
            ]),
        ));
        v.push(ex(
            rule,
            "denied from part of the world only",
            true,
            behind(vec![allow(), deny(Tcp, port, &["198.51.100.0/24", "::/0"])]),
        ));
        v.push(ex(
            rule,
            "a deny on another part of the allowed range",
            true,
            behind(vec![
                inbound(Tcp, "1-9000", &world),
                deny(Tcp, "9001-9100", &world),
                deny(Tcp, "1-20", &world),
            ]),
        ));
        v.push(ex(
            rule,
            "a deny on the whole allowed range",
            false,
            behind(vec![inbound(Tcp, "1-9000", &world), deny(Tcp, "0", &world)]),
        ));
        let by_tag = InboundRule::deny(
            Tcp,
            port,
            Targets {
                tags: vec!["web".into()],
                ..Default::default()
            },
        );
        v.push(ex(
            rule,
            "a deny whose source is a tag closes nothing outside",
            true,
            behind(vec![allow(), by_tag]),
        ));
        let mut unknown = deny(Tcp, port, &world);
        unknown.action = crate::digitalocean::RuleAction::Other("reject".into());
        v.push(ex(
            rule,
            "a rule of unknown action opens as an allow would",
            true,
            behind(vec![unknown]),
        ));
    }
    // Allowed from the world, denied from everything outside the management range.
    let mgmt = Cidr::parse(MGMT).expect("literal cidr");
    let outside = crate::net::AddressSet::of(&[crate::net::Family::V4.world()])
        .difference(&crate::net::AddressSet::of(&[mgmt]));
    let outside: Vec<String> = outside.cidrs().iter().map(Cidr::to_string).collect();
    let outside: Vec<&str> = outside.iter().map(String::as_str).collect();
    v.push(ex(
        FIREWALL_SSH_OPEN,
        "allowed from the world, denied outside management",
        false,
        behind(vec![
            inbound(Tcp, "22", &["0.0.0.0/0"]),
            deny(Tcp, "22", &outside),
        ]),
    ));
    v.push(ex(
        FIREWALL_MISSING,
        "a firewall that only denies still covers",
        false,
        behind(vec![deny(Tcp, "all", &world)]),
    ));
    v
}

/// A deny rule.
pub fn deny(protocol: Protocol, ports: &str, addresses: &[&str]) -> InboundRule {
    InboundRule::deny(
        protocol,
        ports,
        Targets::addresses(addresses.iter().copied()),
    )
}
