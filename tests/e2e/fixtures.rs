//! A small account built by hand, with the findings it must produce written out by hand.

use shared::digitalocean::{
    Firewall, InboundRule, OutboundRule, PendingChange, Protocol, SshKey, Targets, Vpc,
};
use sim::{SimDroplet, State};

pub const POLICY: &str = r#"
[management]
cidrs = ["203.0.113.0/24", "2001:db8:ffff::/48"]

[ssh]
probe = false
"#;

fn droplet(id: u64, name: &str, tags: &[&str], vpc: Option<&str>) -> SimDroplet {
    SimDroplet {
        id,
        name: name.into(),
        status: "active".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        vpc_uuid: vpc.map(str::to_string),
        region: "nyc3".into(),
        size_slug: "s-1vcpu-2gb".into(),
        public_ipv4: format!("127.0.2.{id}"),
        private_ipv4: format!("10.10.0.{id}"),
        ipv6: None,
        gpu: false,
        created_at: "2025-03-01T10:00:00Z".into(),
    }
}

fn rule(protocol: Protocol, ports: &str, addrs: &[&str]) -> InboundRule {
    InboundRule {
        action: Default::default(),
        protocol,
        ports: ports.into(),
        sources: Targets::addresses(addrs.iter().copied()),
    }
}

fn fw(
    id: &str,
    name: &str,
    inbound: Vec<InboundRule>,
    droplet_ids: &[u64],
    tags: &[&str],
) -> Firewall {
    Firewall {
        id: id.into(),
        name: name.into(),
        status: Some("succeeded".into()),
        created_at: Some("2025-03-01T10:00:00Z".into()),
        inbound_rules: inbound,
        outbound_rules: vec![OutboundRule {
            action: Default::default(),
            protocol: Protocol::Tcp,
            ports: "0".into(),
            destinations: Targets::addresses(["0.0.0.0/0", "::/0"]),
        }],
        droplet_ids: droplet_ids.to_vec(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pending_changes: vec![],
    }
}

fn vpc(id: &str, name: &str, default: bool) -> Vpc {
    Vpc {
        id: id.into(),
        urn: Some(format!("do:vpc:{id}")),
        name: name.into(),
        description: Some(String::new()),
        region: "nyc3".into(),
        ip_range: Some("10.10.0.0/20".into()),
        default,
        created_at: Some("2025-01-01T00:00:00Z".into()),
    }
}

pub const PROD_VPC: &str = "5a4981aa-9653-4bd1-bef5-d6bff52042e4";
pub const SHARED_VPC: &str = "6b5a92bb-0764-4ce2-9fa6-e7c00f63f3f5";
pub const DEFAULT_VPC: &str = "e0fe0f4d-596a-465e-a902-571ce57b79fa";
pub const TAG_HEAVY: &str = "aa11aa11-0000-4000-8000-000000000001";

/// Eight Droplets: one clean, the rest with known defects.
pub fn known() -> State {
    let mut st = State::default();
    let ds = vec![
        droplet(
            1,
            "web-1",
            &["env:prod", "tenant:acme", "web"],
            Some(PROD_VPC),
        ),
        droplet(
            2,
            "db-1",
            &["env:prod", "tenant:acme", "db"],
            Some(PROD_VPC),
        ),
        droplet(3, "orphan", &[], None),
        droplet(
            4,
            "dev-1",
            &["env:dev", "tenant:acme", "web"],
            Some(SHARED_VPC),
        ),
        droplet(
            5,
            "staging-1",
            &["env:staging", "tenant:globex", "web"],
            Some(SHARED_VPC),
        ),
        {
            let mut d = droplet(
                6,
                "gpu-1",
                &["env:prod", "tenant:acme", "web"],
                Some(DEFAULT_VPC),
            );
            d.gpu = true;
            d.size_slug = "gpu-h100x1-80gb".into();
            d
        },
        droplet(
            7,
            "legacy",
            &["env:prod", "tenant:acme", "web"],
            Some(PROD_VPC),
        ),
        {
            let mut d = droplet(
                8,
                "resolver",
                &["env:prod", "tenant:acme", "web", "dns"],
                Some(PROD_VPC),
            );
            d.status = "off".into();
            d
        },
    ];
    for d in ds {
        st.tags.extend(d.tags.iter().cloned());
        st.droplets.insert(d.id, d);
    }
    let mut pending = fw(
        "bb22bb22-0000-4000-8000-000000000002",
        "legacy-fw",
        vec![],
        &[7],
        &[],
    );
    pending.status = Some("failed".into());
    pending.pending_changes = vec![PendingChange {
        droplet_id: Some(99),
        removing: Some(false),
        status: Some("waiting".into()),
    }];
    st.firewalls = vec![
        fw(
            "cc33cc33-0000-4000-8000-000000000003",
            "web-fw",
            vec![
                rule(
                    Protocol::Tcp,
                    "22",
                    &["203.0.113.0/24", "2001:db8:ffff:1::/64"],
                ),
                rule(Protocol::Tcp, "80", &["0.0.0.0/0", "::/0"]),
                rule(Protocol::Tcp, "443", &["0.0.0.0/0", "::/0"]),
                rule(Protocol::Icmp, "0", &["0.0.0.0/0"]),
            ],
            &[],
            &["web"],
        ),
        fw(
            "dd44dd44-0000-4000-8000-000000000004",
            "db-fw",
            vec![
                rule(Protocol::Tcp, "5432", &["0.0.0.0/0"]),
                rule(Protocol::Tcp, "22", &["198.51.100.0/24"]),
            ],
            &[2],
            &[],
        ),
        pending,
        fw(
            "ee55ee55-0000-4000-8000-000000000005",
            "dns-fw",
            vec![rule(Protocol::Udp, "53", &["0.0.0.0/0"])],
            &[],
            &["dns"],
        ),
        fw(
            TAG_HEAVY,
            "tag-heavy",
            vec![],
            &[],
            &["t1", "t2", "t3", "t4", "t5"],
        ),
    ];
    st.vpcs = vec![
        vpc(PROD_VPC, "prod-acme", false),
        vpc(SHARED_VPC, "shared", false),
        vpc(DEFAULT_VPC, "default-nyc3", true),
    ];
    st.ssh_keys = vec![SshKey {
        id: Some(1),
        fingerprint: Some("3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45".into()),
        public_key:
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDyy2qhAqJ8Uu7lCGYQ8oA0OxnyJGdRiLIlHTakHLxW2 ops"
                .into(),
        name: "ops".into(),
    }];
    st
}

/// The findings `known()` must produce under `POLICY`, sorted.
pub fn known_expected() -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = [
        ("firewall.ssh-open", "droplet", "2"),
        ("firewall.world-open", "droplet", "2"),
        ("firewall.forbidden-port", "droplet", "2"),
        ("firewall.missing", "droplet", "3"),
        ("vpc.default", "droplet", "3"),
        ("vpc.mixed-environments", "droplet", "4"),
        ("vpc.mixed-tenants", "droplet", "4"),
        ("vpc.mixed-environments", "droplet", "5"),
        ("vpc.mixed-tenants", "droplet", "5"),
        ("vpc.default", "droplet", "6"),
        ("firewall.not-applied", "droplet", "7"),
        ("firewall.world-open", "droplet", "8"),
        ("firewall.limits", "firewall", TAG_HEAVY),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    v.sort();
    v
}

/// A small account with nothing wrong.
pub fn compliant() -> State {
    let mut st = known();
    st.droplets.retain(|id, _| *id == 1);
    st.firewalls.retain(|f| f.name == "web-fw");
    st
}
