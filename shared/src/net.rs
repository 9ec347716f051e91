//! Addresses and networks: what a firewall source or a management range is, and containment.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A network in CIDR form; a bare address is its own /32 or /128. Host bits are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(net) = t.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(format!("{s:?} is not an IPv4/IPv6 address or CIDR"))
    }

    /// Prefix length 0: `0.0.0.0/0` or `::/0`.
    pub fn is_world(&self) -> bool {
        self.0.prefix_len() == 0
    }

    /// Whether every address of `other` is inside `self` (never across families).
    pub fn contains(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }

    /// Whether `self` lies wholly inside one of `nets`.
    pub fn inside_any(&self, nets: &[Cidr]) -> bool {
        nets.iter().any(|n| n.contains(self))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).expect("valid cidr")
    }

    #[test]
    fn containment_v4_v6() {
        assert!(c("203.0.113.0/24").contains(&c("203.0.113.7")));
        assert!(c("203.0.113.0/24").contains(&c("203.0.113.128/25")));
        assert!(!c("203.0.113.0/24").contains(&c("203.0.112.0/23")));
        assert!(!c("203.0.113.0/24").contains(&c("0.0.0.0/0")));
        assert!(c("2001:db8::/32").contains(&c("2001:db8:1::/48")));
        assert!(!c("2001:db8::/32").contains(&c("::/0")));
        assert!(!c("0.0.0.0/0").contains(&c("::/0")));
        assert!(c("0.0.0.0/0").is_world() && c("::/0").is_world());
        assert!(!c("10.0.0.0/8").is_world());
        assert_eq!(c("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.com").is_err());
    }
}
