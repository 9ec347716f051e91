//! One finding's identity across runs and records: its rule and its resource.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Finding, Resource, ResourceType};

/// A finding's key: the rule and the resource (type and id) it is about. Written
/// `rule|type|id`, as the findings index (`history/findings.json`) and the remembered critical
/// findings (`state/critical-findings.json`) keep it. `rule:type:id`, the spelling of
/// `state/critical-findings.json` before, reads as the same key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindingKey {
    pub rule: String,
    pub kind: ResourceType,
    pub id: String,
}

impl FindingKey {
    pub fn new(rule: &str, resource: &Resource) -> Self {
        FindingKey {
            rule: rule.to_string(),
            kind: resource.kind,
            id: resource.id.clone(),
        }
    }

    pub fn of(f: &Finding) -> Self {
        FindingKey::new(&f.rule, &f.resource)
    }

    /// The key of `rule`'s finding on the Droplet `id`.
    pub fn droplet(rule: &str, id: &str) -> Self {
        FindingKey {
            rule: rule.to_string(),
            kind: ResourceType::Droplet,
            id: id.to_string(),
        }
    }

    /// The Droplet id, when the finding is on a Droplet.
    pub fn droplet_id(&self) -> Option<u64> {
        (self.kind == ResourceType::Droplet)
            .then(|| self.id.parse().ok())
            .flatten()
    }
}

impl fmt::Display for FindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}", self.rule, self.kind.as_str(), self.id)
    }
}

/// A key that is not `rule|type|id` (nor `rule:type:id`), or names an unknown resource type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a finding key (rule|type|id)")]
pub struct BadFindingKey(pub String);

impl FromStr for FindingKey {
    type Err = BadFindingKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFindingKey(s.to_string());
        let sep = if s.contains('|') { '|' } else { ':' };
        let mut parts = s.splitn(3, sep);
        let (Some(rule), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let kind = match kind {
            "droplet" => ResourceType::Droplet,
            "firewall" => ResourceType::Firewall,
            "vpc" => ResourceType::Vpc,
            "account" => ResourceType::Account,
            _ => return Err(bad()),
        };
        if rule.is_empty() || id.is_empty() {
            return Err(bad());
        }
        Ok(FindingKey {
            rule: rule.to_string(),
            kind,
            id: id.to_string(),
        })
    }
}

impl Serialize for FindingKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FindingKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_in_both_spellings() {
        let key = FindingKey::droplet("firewall.ssh-open", "42");
        assert_eq!(key.to_string(), "firewall.ssh-open|droplet|42");
        assert_eq!("firewall.ssh-open|droplet|42".parse(), Ok(key.clone()));
        assert_eq!("firewall.ssh-open:droplet:42".parse(), Ok(key.clone()));
        assert_eq!(key.droplet_id(), Some(42));
        let json = serde_json::to_string(&key).expect("json");
        assert_eq!(json, "\"firewall.ssh-open|droplet|42\"");
        let back: FindingKey = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, key);
        assert!("firewall.ssh-open|cloud|42".parse::<FindingKey>().is_err());
        assert!("nothing".parse::<FindingKey>().is_err());
    }
}
