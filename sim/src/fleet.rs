//! A seeded fleet generator: regions, default and per-environment/tenant VPCs, tagged Droplets
//! (GPU ones among them), and firewalls good and bad. Each Droplet is given a defect profile
//! on purpose, and the findings those defects must produce are recorded beside the fleet: an
//! oracle that does not come from the evaluator it checks.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::digitalocean::{
    Firewall, InboundRule, OutboundRule, PendingChange, Protocol, SshKey, Targets, Vpc,
};

use crate::state::{ExpectedFinding, SimDroplet, State};

/// The management range the generated fleet's good firewalls admit SSH from.
pub const MANAGEMENT_CIDR: &str = "203.0.113.0/24";

/// The policy under which the fleet's expected findings hold.
pub const FLEET_POLICY: &str = r#"# The policy the simulator's generated fleets are audited against.
[management]
cidrs = ["203.0.113.0/24"]

# Simulated Droplets have no SSH servers: their addresses are never probed.
[ssh]
probe = false
"#;

const REGIONS: &[&str] = &["nyc3", "sfo3", "ams3", "fra1", "sgp1"];
const ENVS: &[&str] = &["prod", "staging", "dev"];
const TENANTS: &[&str] = &["acme", "globex", "initech"];
const ROLES: &[&str] = &["web", "api", "worker", "db", "cache"];

/// What is wrong with a generated Droplet, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Clean,
    NoFirewall,
    SshFromRange,
    SshWorld,
    DbWorld,
    UdpWorld,
    DefaultVpc,
    NoVpc,
    FailedFirewall,
    PendingChange,
    MixedEnv,
    MixedTenant,
    /// SSH allowed from the world by one firewall, denied from the world by another: compliant.
    SshWorldDenied,
    /// SSH allowed from the world, denied over IPv4 only: `::/0` stays open.
    SshWorldDeniedIpv4,
    /// Postgres allowed from 0.0.0.0/0, denied from one partner range only.
    DbWorldPartlyDenied,
    /// SSH allowed from the world, denied from a tag (internal peers): still open outside.
    SshWorldDeniedByTag,
}

const DEFECTS: &[Profile] = &[
    Profile::NoFirewall,
    Profile::SshFromRange,
    Profile::SshWorld,
    Profile::DbWorld,
    Profile::UdpWorld,
    Profile::DefaultVpc,
    Profile::NoVpc,
    Profile::FailedFirewall,
    Profile::PendingChange,
    Profile::MixedEnv,
    Profile::MixedTenant,
    Profile::SshWorldDenied,
    Profile::SshWorldDeniedIpv4,
    Profile::DbWorldPartlyDenied,
    Profile::SshWorldDeniedByTag,
];

impl Profile {
    /// The rules this defect must fail.
    pub fn expected_rules(self) -> &'static [&'static str] {
        use shared::rules::*;
        match self {
            Profile::Clean | Profile::SshWorldDenied => &[],
            Profile::NoFirewall => &[FIREWALL_MISSING],
            Profile::SshFromRange => &[FIREWALL_SSH_OPEN],
            Profile::SshWorld | Profile::SshWorldDeniedIpv4 | Profile::SshWorldDeniedByTag => {
                &[FIREWALL_SSH_OPEN, FIREWALL_WORLD_OPEN]
            }
            Profile::DbWorld | Profile::DbWorldPartlyDenied => {
                &[FIREWALL_WORLD_OPEN, FIREWALL_FORBIDDEN_PORT]
            }
            Profile::UdpWorld => &[FIREWALL_WORLD_OPEN],
            Profile::DefaultVpc | Profile::NoVpc => &[VPC_DEFAULT],
            Profile::FailedFirewall | Profile::PendingChange => &[FIREWALL_NOT_APPLIED],
            Profile::MixedEnv => &[VPC_MIXED_ENVIRONMENTS],
            Profile::MixedTenant => &[VPC_MIXED_TENANTS],
        }
    }

    /// The tag of the bad firewall that plants this defect, if any.
    fn bad_tag(self) -> Option<&'static str> {
        match self {
            Profile::SshFromRange => Some("bad:ssh-range"),
            Profile::SshWorld
            | Profile::SshWorldDenied
            | Profile::SshWorldDeniedIpv4
            | Profile::SshWorldDeniedByTag => Some("bad:ssh-world"),
            Profile::DbWorld | Profile::DbWorldPartlyDenied => Some("bad:db-world"),
            Profile::UdpWorld => Some("bad:udp-world"),
            Profile::FailedFirewall => Some("bad:failed"),
            Profile::PendingChange => Some("bad:pending"),
            _ => None,
        }
    }

    /// The tag of the deny firewall that narrows this defect, if any.
    fn deny_tag(self) -> Option<&'static str> {
        match self {
            Profile::SshWorldDenied => Some("deny:ssh-world"),
            Profile::SshWorldDeniedIpv4 => Some("deny:ssh-ipv4"),
            Profile::DbWorldPartlyDenied => Some("deny:db-partner"),
            Profile::SshWorldDeniedByTag => Some("deny:from-web"),
            _ => None,
        }
    }
}

/// The deny firewalls, each attached by one tag (`Profile::deny_tag`).
fn deny_firewalls() -> Vec<(&'static str, &'static str, Vec<InboundRule>)> {
    let tag = |t: &str| Targets {
        tags: vec![t.to_string()],
        ..Default::default()
    };
    let v4 = || Targets::addresses(["0.0.0.0/0"]);
    let partner = Targets::addresses(["198.51.100.0/24"]);
    vec![
        (
            "deny-ssh-world",
            "deny:ssh-world",
            vec![InboundRule::deny(Protocol::Tcp, "22", world())],
        ),
        (
            "deny-ssh-ipv4",
            "deny:ssh-ipv4",
            vec![InboundRule::deny(Protocol::Tcp, "22", v4())],
        ),
        (
            "deny-db-partner",
            "deny:db-partner",
            vec![InboundRule::deny(Protocol::Tcp, "5000-6000", partner)],
        ),
        (
            "deny-from-web",
            "deny:from-web",
            vec![InboundRule::deny(Protocol::Tcp, "22", tag("role:web"))],
        ),
    ]
}

/// How to generate a fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub droplets: usize,
    pub seed: u64,
    /// Share of Droplets given a defect (0.0 to 1.0).
    pub defect_rate: f64,
    /// Every Nth Droplet is a GPU Droplet (0: none).
    pub gpu_every: usize,
    /// Whether the account has SSH keys.
    pub ssh_keys: bool,
    /// Give the first Droplets one defect of each kind, in order (the demo shows them all).
    pub every_defect: bool,
    /// Firewalls added beyond the generator's own (benchmarks of accounts with ~1,000): each
    /// allows only tcp 443 from the world, to 5 clean Droplets by id. They change no finding.
    pub extra_firewalls: usize,
}

impl FleetSpec {
    pub fn new(droplets: usize, seed: u64) -> Self {
        FleetSpec {
            droplets,
            seed,
            defect_rate: 0.3,
            gpu_every: 25,
            ssh_keys: true,
            every_defect: false,
            extra_firewalls: 0,
        }
    }
}

fn uuid_from(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.gen();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

fn world() -> Targets {
    Targets::addresses(["0.0.0.0/0", "::/0"])
}

fn rule(protocol: Protocol, ports: &str, sources: Targets) -> InboundRule {
    InboundRule {
        action: Default::default(),
        protocol,
        ports: ports.into(),
        sources,
    }
}

fn outbound_all() -> Vec<OutboundRule> {
    [
        (Protocol::Tcp, "0"),
        (Protocol::Udp, "0"),
        (Protocol::Icmp, "0"),
    ]
    .into_iter()
    .map(|(protocol, ports)| OutboundRule {
        action: Default::default(),
        protocol,
        ports: ports.into(),
        destinations: world(),
    })
    .collect()
}

fn firewall(
    rng: &mut StdRng,
    name: &str,
    inbound: Vec<InboundRule>,
    tags: Vec<String>,
) -> Firewall {
    Firewall {
        id: uuid_from(rng),
        name: name.into(),
        status: Some("succeeded".into()),
        created_at: Some("2025-01-15T10:00:00Z".into()),
        inbound_rules: inbound,
        outbound_rules: outbound_all(),
        droplet_ids: vec![],
        tags,
        pending_changes: vec![],
    }
}

fn good_rules() -> Vec<InboundRule> {
    vec![
        rule(Protocol::Tcp, "22", Targets::addresses([MANAGEMENT_CIDR])),
        rule(Protocol::Tcp, "80", world()),
        rule(Protocol::Tcp, "443", world()),
        rule(Protocol::Icmp, "0", world()),
    ]
}

fn vpc(rng: &mut StdRng, name: &str, region: &str, default: bool, n: usize) -> Vpc {
    let id = uuid_from(rng);
    Vpc {
        urn: Some(format!("do:vpc:{id}")),
        id,
        name: name.into(),
        description: Some(if default {
            String::new()
        } else {
            format!("{name} network")
        }),
        region: region.into(),
        ip_range: Some(format!("10.{}.{}.0/20", 100 + n / 16, (n % 16) * 16)),
        default,
        created_at: Some("2025-01-10T09:00:00Z".into()),
    }
}

/// Builds the account state for a spec, with its expected findings. The same spec gives the
/// same account: every random choice comes from one generator seeded with `spec.seed`, drawn
/// in a fixed order.
pub fn generate(spec: &FleetSpec) -> State {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut st = State {
        next_id: 900_000_000,
        ..Default::default()
    };
    let vpcs = add_vpcs(&mut rng, &mut st);
    add_good_firewalls(&mut rng, &mut st);
    let profiles = profiles(&mut rng, spec);
    let pending_ids = add_droplets(&mut rng, &mut st, spec, &profiles, &vpcs);
    add_bad_firewalls(&mut rng, &mut st, &pending_ids);
    for (name, tag, rules) in deny_firewalls() {
        st.firewalls
            .push(firewall(&mut rng, name, rules, vec![tag.to_string()]));
    }
    add_id_firewalls(&mut rng, &mut st, spec, &profiles);
    add_ssh_keys(&mut st, spec);
    for d in st.droplets.values() {
        st.tags.extend(d.tags.iter().cloned());
    }
    for fw in &st.firewalls {
        st.tags.extend(fw.tags.iter().cloned());
    }
    st.expected.sort();
    st
}

/// The VPCs a generated Droplet may be put in, by what it is.
struct FleetVpcs {
    default_of_region: std::collections::HashMap<&'static str, String>,
    of_env_tenant: std::collections::HashMap<(&'static str, &'static str, &'static str), String>,
    shared_env: String,
    shared_tenant: String,
}

/// VPCs: a default per region, one per (region, env, tenant), and two shared ones in nyc3.
fn add_vpcs(rng: &mut StdRng, st: &mut State) -> FleetVpcs {
    let mut n = 0;
    let mut default_of_region = std::collections::HashMap::new();
    let mut of_env_tenant = std::collections::HashMap::new();
    for region in REGIONS {
        let v = vpc(rng, &format!("default-{region}"), region, true, n);
        n += 1;
        default_of_region.insert(*region, v.id.clone());
        st.vpcs.push(v);
        for env in ENVS {
            for tenant in TENANTS {
                let v = vpc(rng, &format!("{env}-{tenant}-{region}"), region, false, n);
                n += 1;
                of_env_tenant.insert((*region, *env, *tenant), v.id.clone());
                st.vpcs.push(v);
            }
        }
    }
    let shared_env = vpc(rng, "shared-envs-nyc3", "nyc3", false, n);
    let shared_tenant = vpc(rng, "shared-tenants-nyc3", "nyc3", false, n + 1);
    let ids = (shared_env.id.clone(), shared_tenant.id.clone());
    st.vpcs.push(shared_env);
    st.vpcs.push(shared_tenant);
    FleetVpcs {
        default_of_region,
        of_env_tenant,
        shared_env: ids.0,
        shared_tenant: ids.1,
    }
}

/// Good firewalls, one per (env, tenant), attached by tag.
fn add_good_firewalls(rng: &mut StdRng, st: &mut State) {
    for env in ENVS {
        for tenant in TENANTS {
            let name = format!("{env}-{tenant}");
            let fw = firewall(rng, &name, good_rules(), vec![format!("fw:{name}")]);
            st.firewalls.push(fw);
        }
    }
}

/// What is wrong with each Droplet, in order. A mixed VPC needs at least two members: a lone
/// one is made clean.
fn profiles(rng: &mut StdRng, spec: &FleetSpec) -> Vec<Profile> {
    let mut profiles: Vec<Profile> = (0..spec.droplets)
        .map(|i| {
            if spec.every_defect && i < DEFECTS.len() {
                DEFECTS[i]
            } else if rng.gen_bool(spec.defect_rate.clamp(0.0, 1.0)) {
                DEFECTS[rng.gen_range(0..DEFECTS.len())]
            } else {
                Profile::Clean
            }
        })
        .collect();
    for p in [Profile::MixedEnv, Profile::MixedTenant] {
        let members: Vec<usize> = (0..profiles.len()).filter(|&i| profiles[i] == p).collect();
        if members.len() == 1 {
            profiles[members[0]] = Profile::Clean;
        }
    }
    profiles
}

/// The id of the `i`th generated Droplet.
fn droplet_id(i: usize) -> u64 {
    300_000_000 + i as u64 * 7 + 1
}

/// Where a Droplet sits and what it is: region, env, tenant, role, VPC.
struct Placement {
    region: &'static str,
    env: &'static str,
    tenant: &'static str,
    role: &'static str,
    vpc_uuid: Option<String>,
}

/// The Droplets, with their expected findings; the ids of those a pending firewall change
/// names.
fn add_droplets(
    rng: &mut StdRng,
    st: &mut State,
    spec: &FleetSpec,
    profiles: &[Profile],
    vpcs: &FleetVpcs,
) -> Vec<u64> {
    let mut mixed = (0usize, 0usize);
    let mut pending_ids = Vec::new();
    for (i, profile) in profiles.iter().copied().enumerate() {
        let id = droplet_id(i);
        let gpu = spec.gpu_every > 0 && i % spec.gpu_every == spec.gpu_every - 1;
        let place = placement(rng, profile, vpcs, &mut mixed);
        if profile == Profile::PendingChange {
            pending_ids.push(id);
        }
        st.droplets.insert(id, sim_droplet(i, profile, &place, gpu));
        for rule in profile.expected_rules() {
            st.expected.push(ExpectedFinding {
                rule: rule.to_string(),
                resource_type: "droplet".into(),
                resource_id: id.to_string(),
            });
        }
    }
    pending_ids
}

/// Draws a Droplet's region, env, tenant and role, then bends them to its profile; `mixed`
/// counts the Droplets of the mixed-environment and mixed-tenant VPCs so far.
fn placement(
    rng: &mut StdRng,
    profile: Profile,
    vpcs: &FleetVpcs,
    mixed: &mut (usize, usize),
) -> Placement {
    let mut p = Placement {
        region: REGIONS[rng.gen_range(0..REGIONS.len())],
        env: ENVS[rng.gen_range(0..ENVS.len())],
        tenant: TENANTS[rng.gen_range(0..TENANTS.len())],
        role: ROLES[rng.gen_range(0..ROLES.len())],
        vpc_uuid: None,
    };
    match profile {
        Profile::MixedEnv => {
            (p.region, p.tenant) = ("nyc3", "acme");
            p.env = if mixed.0.is_multiple_of(2) {
                "prod"
            } else {
                "dev"
            };
            mixed.0 += 1;
            p.vpc_uuid = Some(vpcs.shared_env.clone());
        }
        Profile::MixedTenant => {
            (p.region, p.env) = ("nyc3", "prod");
            p.tenant = if mixed.1.is_multiple_of(2) {
                "acme"
            } else {
                "globex"
            };
            mixed.1 += 1;
            p.vpc_uuid = Some(vpcs.shared_tenant.clone());
        }
        Profile::DefaultVpc => p.vpc_uuid = vpcs.default_of_region.get(p.region).cloned(),
        Profile::NoVpc => {}
        _ => {
            p.vpc_uuid = vpcs
                .of_env_tenant
                .get(&(p.region, p.env, p.tenant))
                .cloned()
        }
    }
    p
}

/// The `i`th Droplet as the simulator holds it.
fn sim_droplet(i: usize, profile: Profile, p: &Placement, gpu: bool) -> SimDroplet {
    let (env, tenant) = (p.env, p.tenant);
    let mut tags = vec![format!("role:{}", p.role)];
    // Droplets left in the default network carry no env/tenant tags (forgotten machines),
    // so that default VPCs never mix environments or tenants.
    if !matches!(profile, Profile::DefaultVpc | Profile::NoVpc) {
        tags.push(format!("env:{env}"));
        tags.push(format!("tenant:{tenant}"));
    }
    if profile != Profile::NoFirewall {
        tags.push(format!("fw:{env}-{tenant}"));
    }
    tags.extend(profile.bad_tag().map(str::to_string));
    tags.extend(profile.deny_tag().map(str::to_string));
    SimDroplet {
        id: droplet_id(i),
        name: format!("{env}-{tenant}-{}-{i:05}", p.role),
        status: if i % 13 == 12 { "off" } else { "active" }.into(),
        tags,
        vpc_uuid: p.vpc_uuid.clone(),
        region: p.region.into(),
        size_slug: if gpu {
            "gpu-h100x1-80gb"
        } else {
            "s-1vcpu-2gb"
        }
        .into(),
        // Loopback addresses: a probe sent to a simulated Droplet by mistake stays on this machine.
        public_ipv4: format!("127.18.{}.{}", (i / 250) % 256, i % 250 + 1),
        private_ipv4: format!(
            "10.{}.{}.{}",
            100 + (i / 62500) % 100,
            (i / 250) % 250,
            i % 250 + 2
        ),
        ipv6: i
            .is_multiple_of(3)
            .then(|| format!("2001:db8:{:x}::{:x}", i / 65536, i % 65536 + 1)),
        gpu,
        created_at: format!("2025-{:02}-{:02}T12:00:00Z", i % 12 + 1, i % 28 + 1),
    }
}

/// The firewalls that make the defects, each attached by one tag (data).
fn bad_firewalls() -> Vec<(&'static str, &'static str, Vec<InboundRule>)> {
    let range = Targets::addresses(["198.51.100.0/24"]);
    let mgmt = || Targets::addresses([MANAGEMENT_CIDR]);
    vec![
        (
            "partner-ssh",
            "bad:ssh-range",
            vec![rule(Protocol::Tcp, "22", range)],
        ),
        (
            "ssh-anywhere",
            "bad:ssh-world",
            vec![rule(Protocol::Tcp, "22", world())],
        ),
        (
            "postgres-public",
            "bad:db-world",
            vec![rule(
                Protocol::Tcp,
                "5432",
                Targets::addresses(["0.0.0.0/0"]),
            )],
        ),
        (
            "dns-public",
            "bad:udp-world",
            vec![rule(Protocol::Udp, "53", world())],
        ),
        (
            "broken",
            "bad:failed",
            vec![rule(Protocol::Tcp, "8443", mgmt())],
        ),
        (
            "rolling-out",
            "bad:pending",
            vec![rule(Protocol::Tcp, "9100", mgmt())],
        ),
    ]
}

/// The defects' firewalls; `broken` failed, `rolling-out` has a change pending for each of
/// `pending_ids`.
fn add_bad_firewalls(rng: &mut StdRng, st: &mut State, pending_ids: &[u64]) {
    for (name, tag, rules) in bad_firewalls() {
        let mut fw = firewall(rng, name, rules, vec![tag.to_string()]);
        if tag == "bad:failed" {
            fw.status = Some("failed".into());
        }
        if tag == "bad:pending" {
            fw.status = Some("waiting".into());
            fw.pending_changes = pending_ids
                .iter()
                .map(|id| PendingChange {
                    droplet_id: Some(*id),
                    removing: Some(false),
                    status: Some("waiting".into()),
                })
                .collect();
        }
        st.firewalls.push(fw);
    }
}

/// Firewalls that hold clean Droplets by id: a legacy one at the platform limit of ten (with
/// its expected `firewall.limits`), and `spec.extra_firewalls` that change no finding.
fn add_id_firewalls(rng: &mut StdRng, st: &mut State, spec: &FleetSpec, profiles: &[Profile]) {
    let clean: Vec<u64> = profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| **p == Profile::Clean)
        .map(|(i, _)| droplet_id(i))
        .collect();
    if clean.len() >= 10 {
        let mut fw = firewall(rng, "legacy-by-id", good_rules(), vec![]);
        fw.droplet_ids = clean[..10].to_vec();
        st.expected.push(ExpectedFinding {
            rule: shared::rules::FIREWALL_LIMITS.into(),
            resource_type: "firewall".into(),
            resource_id: fw.id.clone(),
        });
        st.firewalls.push(fw);
    }
    let chunks = clean.chunks(5).cycle().take(spec.extra_firewalls);
    for (n, ids) in chunks.enumerate() {
        let https = vec![rule(Protocol::Tcp, "443", world())];
        let mut fw = firewall(rng, &format!("service-{n:04}"), https, vec![]);
        fw.droplet_ids = ids.to_vec();
        st.firewalls.push(fw);
    }
}

/// Two account SSH keys, or none and the expected `ssh.no-account-keys`.
fn add_ssh_keys(st: &mut State, spec: &FleetSpec) {
    if !spec.ssh_keys {
        st.expected.push(ExpectedFinding {
            rule: shared::rules::SSH_NO_ACCOUNT_KEYS.into(),
            resource_type: "account".into(),
            resource_id: "account".into(),
        });
        return;
    }
    st.ssh_keys = vec![
        SshKey {
            id: Some(512189),
            fingerprint: Some("3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa".into()),
            public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDyy2qhAqJ8Uu7lCGYQ8oA0OxnyJGdRiLIlHTakHLxW2 ops@example.com".into(),
            name: "ops".into(),
        },
        SshKey {
            id: Some(512190),
            fingerprint: Some("8f:33:2a:11:0c:45:de:9a:71:5b:33:c0:12:aa:9e:01".into()),
            public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq5Ol2KKmnBHzd5TT8HVsmL2nQD7rX0P1Bh8Sbm3rRn ci@example.com".into(),
            name: "ci".into(),
        },
    ];
}

/// The demo's small insecure fleet: every kind of defect, a few clean Droplets.
pub fn demo() -> State {
    let mut spec = FleetSpec::new(24, 7);
    spec.defect_rate = 0.75;
    spec.gpu_every = 12;
    spec.every_defect = true;
    let mut st = generate(&spec);
    // One compliant Droplet whose SSH, allowed from the world by one firewall, is denied from
    // the world by another: deny rules win across firewalls.
    let expected: std::collections::BTreeSet<String> =
        st.expected.iter().map(|e| e.resource_id.clone()).collect();
    if let Some(d) = st.droplets.values_mut().find(|d| {
        !expected.contains(&d.id.to_string()) && d.tags.iter().any(|t| t.starts_with("fw:"))
    }) {
        d.name = format!("{}-ssh-denied", d.name);
        d.tags
            .extend(["bad:ssh-world".to_string(), "deny:ssh-world".to_string()]);
    }
    st
}
