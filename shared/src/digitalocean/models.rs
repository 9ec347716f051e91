//! Typed models of the DigitalOcean API objects dropletguard reads and writes, modelled on the
//! OpenAPI description (github.com/digitalocean/openapi; the subset we use is vendored in
//! `tests/fixtures/do-api`). Fields the spec allows to be null or absent are
//! `Option` or default to empty; unknown fields are ignored.

use serde::{Deserialize, Deserializer, Serialize};

/// Deserialize `null` as the type's default (the API sends `null` for some empty lists).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A Droplet (`GET /v2/droplets`). Only the fields the audit uses are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Droplet {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub networks: Networks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_info: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
}

impl Droplet {
    pub fn region_slug(&self) -> &str {
        self.region.as_ref().map(|r| r.slug.as_str()).unwrap_or("")
    }

    /// The first public IPv4 address, if any.
    pub fn public_ipv4(&self) -> Option<&str> {
        self.networks
            .v4
            .iter()
            .find(|n| n.kind.as_deref() == Some("public"))
            .map(|n| n.ip_address.as_str())
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    pub fn is_gpu(&self) -> bool {
        self.gpu_info.as_ref().is_some_and(|g| !g.is_null())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Networks {
    #[serde(default, deserialize_with = "null_as_default")]
    pub v4: Vec<NetworkV4>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub v6: Vec<NetworkV6>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkV4 {
    pub ip_address: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkV6 {
    pub ip_address: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionRef {
    pub slug: String,
}

/// Protocol of a Cloud Firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        })
    }
}

/// Sources (inbound) or destinations (outbound) of a firewall rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Targets {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub addresses: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub droplet_ids: Vec<u64>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancer_uids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub kubernetes_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
}

impl Targets {
    pub fn addresses<I: IntoIterator<Item = S>, S: Into<String>>(addrs: I) -> Self {
        Targets {
            addresses: addrs.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
            && self.droplet_ids.is_empty()
            && self.load_balancer_uids.is_empty()
            && self.kubernetes_ids.is_empty()
            && self.tags.is_empty()
    }
}

/// A firewall rule's `action` (DigitalOcean, since 2026-09; `do-api/README.md`, "Since the
/// subset was cut"): `allow` when absent, or `deny`. A deny rule wins over any allow rule of any
/// firewall that covers the same Droplet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleAction {
    #[default]
    Allow,
    Deny,
    /// A value this client does not know. Read as `allow` for exposure (the conservative
    /// reading); never rewritten by remediation.
    Other(String),
}

impl RuleAction {
    pub fn as_str(&self) -> &str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
            RuleAction::Other(s) => s,
        }
    }
}

impl std::fmt::Display for RuleAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleAction {
    /// `null` reads as absent (allow); any string is kept, known or not.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<String>::deserialize(d)?.as_deref() {
            None | Some("allow") => RuleAction::Allow,
            Some("deny") => RuleAction::Deny,
            Some(other) => RuleAction::Other(other.to_string()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InboundRule {
    /// `allow` (also when absent) or `deny`; always sent, so that a rule body sent to the rules
    /// endpoints names the rule it means.
    #[serde(default)]
    pub action: RuleAction,
    pub protocol: Protocol,
    /// `"22"`, `"8000-9000"`, `"0"` or `"all"` (every port); absent for ICMP.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub ports: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sources: Targets,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutboundRule {
    /// As [`InboundRule::action`].
    #[serde(default)]
    pub action: RuleAction,
    pub protocol: Protocol,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub ports: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub destinations: Targets,
}

impl InboundRule {
    /// An allow rule: `ports` as the API writes them (`"22"`, `"8000-9000"`, `"0"`).
    pub fn allow(protocol: Protocol, ports: impl Into<String>, sources: Targets) -> Self {
        InboundRule {
            action: RuleAction::Allow,
            protocol,
            ports: ports.into(),
            sources,
        }
    }

    /// A deny rule.
    pub fn deny(protocol: Protocol, ports: impl Into<String>, sources: Targets) -> Self {
        InboundRule {
            action: RuleAction::Deny,
            ..InboundRule::allow(protocol, ports, sources)
        }
    }
}

impl std::fmt::Display for InboundRule {
    /// The rule in one line: `tcp 22 from 203.0.113.0/24, tag:web`; a deny rule starts with
    /// `deny`, a rule of unknown action with `action "x"`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.sources;
        let sources: Vec<String> = s
            .addresses
            .iter()
            .cloned()
            .chain(s.tags.iter().map(|t| format!("tag:{t}")))
            .chain(s.droplet_ids.iter().map(|d| format!("droplet:{d}")))
            .chain(s.load_balancer_uids.iter().map(|l| format!("lb:{l}")))
            .chain(s.kubernetes_ids.iter().map(|k| format!("k8s:{k}")))
            .collect();
        match &self.action {
            RuleAction::Allow => {}
            RuleAction::Deny => f.write_str("deny ")?,
            RuleAction::Other(a) => write!(f, "action {a:?} ")?,
        }
        let ports = if self.ports.is_empty() {
            "all"
        } else {
            &self.ports
        };
        write!(f, "{} {} from {}", self.protocol, ports, sources.join(", "))
    }
}

impl OutboundRule {
    pub fn allow(protocol: Protocol, ports: impl Into<String>, destinations: Targets) -> Self {
        OutboundRule {
            action: RuleAction::Allow,
            protocol,
            ports: ports.into(),
            destinations,
        }
    }

    pub fn deny(protocol: Protocol, ports: impl Into<String>, destinations: Targets) -> Self {
        OutboundRule {
            action: RuleAction::Deny,
            ..OutboundRule::allow(protocol, ports, destinations)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingChange {
    #[serde(default)]
    pub droplet_id: Option<u64>,
    #[serde(default)]
    pub removing: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A Cloud Firewall (`GET /v2/firewalls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firewall {
    pub id: String,
    pub name: String,
    /// `waiting`, `succeeded` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_rules: Vec<InboundRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub outbound_rules: Vec<OutboundRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub droplet_ids: Vec<u64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub pending_changes: Vec<PendingChange>,
}

impl Firewall {
    /// Whether this firewall applies to the Droplet, by id or by one of its tags.
    pub fn covers(&self, droplet: &Droplet) -> bool {
        self.droplet_ids.contains(&droplet.id) || self.tags.iter().any(|t| droplet.has_tag(t))
    }

    pub fn rule_count(&self) -> usize {
        self.inbound_rules.len() + self.outbound_rules.len()
    }
}

/// The body of `POST /v2/firewalls` and `PUT /v2/firewalls/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirewallRequest {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inbound_rules: Vec<InboundRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub outbound_rules: Vec<OutboundRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub droplet_ids: Vec<u64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// The body of `POST|DELETE /v2/firewalls/{id}/rules`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirewallRules {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub inbound_rules: Vec<InboundRule>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub outbound_rules: Vec<OutboundRule>,
}

/// A VPC (`GET /v2/vpcs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urn: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A member of a VPC (`GET /v2/vpcs/{id}/members`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpcMember {
    #[serde(default)]
    pub urn: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl VpcMember {
    /// The Droplet id, when the member is a Droplet (`do:droplet:123`).
    pub fn droplet_id(&self) -> Option<u64> {
        self.urn.strip_prefix("do:droplet:")?.parse().ok()
    }
}

/// An SSH key of the account (`GET /v2/account/keys`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshKey {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub fingerprint: Option<String>,
    pub public_key: String,
    pub name: String,
}

/// A tag (`GET /v2/tags`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<serde_json::Value>,
}

/// One resource in `POST|DELETE /v2/tags/{tag}/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResource {
    pub resource_id: String,
    pub resource_type: String,
}

/// An action (`GET /v2/actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: u64,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub resource_id: Option<u64>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub region_slug: Option<String>,
}

/// The API's error body: `{"id": "not_found", "message": "...", "request_id": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/do-api/examples"
    );

    fn example(name: &str) -> serde_json::Value {
        let path = format!("{EXAMPLES}/{name}");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (vendored under tests/fixtures/do-api)"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn nulls_become_empty() {
        let fw: Firewall = serde_json::from_str(
            r#"{"id":"x","name":"n","inbound_rules":null,"outbound_rules":null,"droplet_ids":null,"tags":null,"extra":1}"#,
        )
        .expect("firewall with nulls parses");
        assert!(fw.inbound_rules.is_empty() && fw.droplet_ids.is_empty() && fw.tags.is_empty());
        let d: Droplet = serde_json::from_str(r#"{"id":1,"name":"a","tags":null,"networks":null}"#)
            .expect("droplet with nulls parses");
        assert!(d.tags.is_empty() && d.vpc_uuid.is_none() && !d.is_gpu());
    }

    #[test]
    fn spec_examples_parse() {
        // The spec's own example bodies, vendored under `tests/fixtures/do-api/examples`.
        let list = example("droplets-list.json");
        let droplets: Vec<Droplet> =
            serde_json::from_value(list["droplets"].clone()).expect("droplet examples parse");
        assert!(!droplets.is_empty());
        assert_eq!(droplets[0].public_ipv4(), Some("192.241.165.154"));
        let fws = example("firewalls-list.json");
        let fws: Vec<Firewall> =
            serde_json::from_value(fws["firewalls"].clone()).expect("firewalls parse");
        assert_eq!(
            fws[0].inbound_rules[1].sources.tags,
            vec!["gateway".to_string()]
        );
        let vpcs = example("vpcs-list.json");
        let vpcs: Vec<Vpc> = serde_json::from_value(vpcs["vpcs"].clone()).expect("vpcs parse");
        assert!(vpcs.iter().any(|v| v.default));
    }
}
