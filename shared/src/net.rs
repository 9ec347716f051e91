//! Addresses and networks: what a firewall source or a management range is, and containment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use range_set_blaze::RangeSetBlaze;
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

impl Cidr {
    /// Parses an address or range written in the policy, where exactly one spelling is
    /// accepted for each: no IPv4 part or prefix length with a leading zero (other tools read
    /// `010` as octal 8), no IPv6 address with an embedded IPv4 part (`::ffff:10.0.0.1` is IPv4
    /// to some tools), and no host bits set (`203.0.113.5/24` is refused by some tools and read
    /// as a host by others). Errors say what to write instead.
    pub fn parse_policy(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let c = Cidr::parse(t)?;
        let (addr, prefix) = t.split_once('/').map_or((t, None), |(a, p)| (a, Some(p)));
        let leading_zero = |part: &str| part.len() > 1 && part.starts_with('0');
        if prefix.is_some_and(leading_zero)
            || (c.family() == Family::V4 && addr.split('.').any(leading_zero))
        {
            return Err(format!(
                "{s:?} has a part with a leading zero, which other tools read as octal; write {c}"
            ));
        }
        if c.family() == Family::V6 && addr.contains('.') {
            return Err(format!(
                "{s:?} embeds an IPv4 address in IPv6, which some tools read as IPv4; write the IPv4 range or the IPv6 one in hex"
            ));
        }
        if let Ok(net) = t.parse::<IpNet>() {
            if net != net.trunc() {
                return Err(format!(
                    "{s:?} has host bits set, which other tools refuse or read as one host; write the network {c}"
                ));
            }
        }
        Ok(c)
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
        // Only the policy deserializes addresses: its strict spelling.
        let s = String::deserialize(d)?;
        Cidr::parse_policy(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of addresses, IPv4 and IPv6 apart, as sorted disjoint ranges (`range-set-blaze`):
/// what a firewall admits, what a deny rule removes, the management ranges. Set arithmetic is
/// exact, whatever the prefixes: `0.0.0.0/0` minus `198.51.100.0/24` is the rest of IPv4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    v4: RangeSetBlaze<Ipv4Addr>,
    v6: RangeSetBlaze<Ipv6Addr>,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family's whole address space as a CIDR: `0.0.0.0/0` or `::/0`.
    pub fn world(self) -> Cidr {
        match self {
            Family::V4 => Cidr(IpNet::V4(Ipv4Net::default())),
            Family::V6 => Cidr(IpNet::V6(Ipv6Net::default())),
        }
    }
}

impl Cidr {
    pub fn family(&self) -> Family {
        match self.0 {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

impl AddressSet {
    /// The union of `cidrs`.
    pub fn of<'a>(cidrs: impl IntoIterator<Item = &'a Cidr>) -> Self {
        let mut set = AddressSet::default();
        for c in cidrs {
            match c.0 {
                IpNet::V4(n) => {
                    set.v4.ranges_insert(n.network()..=n.broadcast());
                }
                IpNet::V6(n) => {
                    set.v6.ranges_insert(n.network()..=n.broadcast());
                }
            }
        }
        set
    }

    /// Every address of both families.
    pub fn everything() -> Self {
        AddressSet::of(&[Family::V4.world(), Family::V6.world()])
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn union(&self, other: &AddressSet) -> AddressSet {
        AddressSet {
            v4: &self.v4 | &other.v4,
            v6: &self.v6 | &other.v6,
        }
    }

    pub fn difference(&self, other: &AddressSet) -> AddressSet {
        AddressSet {
            v4: &self.v4 - &other.v4,
            v6: &self.v6 - &other.v6,
        }
    }

    pub fn intersection(&self, other: &AddressSet) -> AddressSet {
        AddressSet {
            v4: &self.v4 & &other.v4,
            v6: &self.v6 & &other.v6,
        }
    }

    /// Whether the set holds any address of `family`.
    pub fn has(&self, family: Family) -> bool {
        match family {
            Family::V4 => !self.v4.is_empty(),
            Family::V6 => !self.v6.is_empty(),
        }
    }

    /// Only the addresses of `family`.
    pub fn only(&self, family: Family) -> AddressSet {
        match family {
            Family::V4 => AddressSet {
                v4: self.v4.clone(),
                ..Default::default()
            },
            Family::V6 => AddressSet {
                v6: self.v6.clone(),
                ..Default::default()
            },
        }
    }

    /// The set as the fewest CIDRs that cover it exactly, IPv4 first, in address order.
    pub fn cidrs(&self) -> Vec<Cidr> {
        let v4 = self
            .v4
            .ranges()
            .flat_map(|r| Ipv4Subnets::new(*r.start(), *r.end(), 0))
            .map(IpNet::V4);
        let v6 = self
            .v6
            .ranges()
            .flat_map(|r| Ipv6Subnets::new(*r.start(), *r.end(), 0))
            .map(IpNet::V6);
        v4.chain(v6).map(Cidr).collect()
    }
}

impl AddressSet {
    /// One family as text: its CIDRs, or `0.0.0.0/0 except …` (`::/0 except …`) when the
    /// addresses left out of the family are fewer CIDRs than those it holds. `None` when the
    /// set holds nothing of `family`.
    fn family_text(&self, family: Family) -> Option<String> {
        let mine = self.only(family);
        if !mine.has(family) {
            return None;
        }
        let join = |cidrs: Vec<Cidr>| {
            cidrs
                .iter()
                .map(Cidr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let held = mine.cidrs();
        let missing = AddressSet::of(&[family.world()]).difference(&mine).cidrs();
        Some(if missing.is_empty() || held.len() <= missing.len() {
            join(held)
        } else {
            format!("{} except {}", family.world(), join(missing))
        })
    }
}

impl fmt::Display for AddressSet {
    /// The shortest exact text of the set, IPv4 first: per family either its CIDRs
    /// (`203.0.113.0/24`) or the family's world less what it lacks
    /// (`0.0.0.0/0 except 198.51.100.0/24`); `nothing` when empty. Every finding detail,
    /// report and log prints address sets this one way.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [Family::V4, Family::V6]
            .into_iter()
            .filter_map(|family| self.family_text(family))
            .collect();
        if parts.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).expect("valid cidr")
    }

    #[test]
    fn an_address_set_prints_as_its_shorter_exact_form() {
        let set = |cidrs: &[&str]| AddressSet::of(&cidrs.iter().map(|s| c(s)).collect::<Vec<_>>());
        let world_but_mgmt = AddressSet::everything().difference(&set(&["203.0.113.0/24"]));
        assert_eq!(
            world_but_mgmt.to_string(),
            "0.0.0.0/0 except 203.0.113.0/24, ::/0"
        );
        assert_eq!(
            set(&["10.0.0.0/8", "192.168.0.0/16"]).to_string(),
            "10.0.0.0/8, 192.168.0.0/16"
        );
        assert_eq!(set(&["0.0.0.0/0"]).to_string(), "0.0.0.0/0");
        assert_eq!(AddressSet::default().to_string(), "nothing");
        let v6 = set(&["::/0"]).difference(&set(&["2001:db8::/32"]));
        assert_eq!(v6.to_string(), "::/0 except 2001:db8::/32");
        // Two halves of the world less one address each way: the shorter side wins.
        let two = set(&["0.0.0.0/1"]);
        assert_eq!(two.to_string(), "0.0.0.0/1");
    }

    #[test]
    fn a_policy_address_has_one_spelling() {
        for ok in [
            "203.0.113.0/24",
            "198.51.100.7",
            "2001:db8::/32",
            "2001:DB8::/32",
            "0.0.0.0/0",
        ] {
            assert!(Cidr::parse_policy(ok).is_ok(), "{ok}");
        }
        let err = |s: &str| Cidr::parse_policy(s).expect_err(s);
        assert_eq!(
            err("010.0.0.0/8"),
            "\"010.0.0.0/8\" has a part with a leading zero, which other tools read as octal; write 10.0.0.0/8"
        );
        assert!(err("10.0.0.0/08").contains("leading zero"));
        assert!(err("::ffff:10.0.0.1").contains("embeds an IPv4 address"));
        assert_eq!(
            err("203.0.113.5/24"),
            "\"203.0.113.5/24\" has host bits set, which other tools refuse or read as one host; write the network 203.0.113.0/24"
        );
        assert!(err("10.1/16").contains("is not an IPv4/IPv6 address or CIDR"));
        // The API's own firewall sources keep the lenient reading.
        assert_eq!(c("203.0.113.5/24").to_string(), "203.0.113.0/24");
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

    #[test]
    fn address_sets_subtract_with_real_prefix_arithmetic() {
        let set = |v: &[&str]| AddressSet::of(&v.iter().map(|s| c(s)).collect::<Vec<_>>());
        let world4 = set(&["0.0.0.0/0"]);
        let rest = world4.difference(&set(&["198.51.100.0/24"]));
        assert!(!rest.is_empty());
        assert!(rest.intersection(&set(&["198.51.100.7"])).is_empty());
        assert!(!rest.intersection(&set(&["198.51.101.0"])).is_empty());
        assert_eq!(
            rest.cidrs().len(),
            24,
            "the complement of a /24 is 24 prefixes"
        );
        assert!(world4.difference(&set(&["0.0.0.0/0"])).is_empty());
        let both = set(&["0.0.0.0/0", "::/0"]).difference(&set(&["0.0.0.0/0"]));
        assert!(!both.has(Family::V4) && both.has(Family::V6));
        assert_eq!(both.to_string(), "::/0");
        let merged = set(&["10.0.0.0/25", "10.0.0.128/25"]);
        assert_eq!(merged.to_string(), "10.0.0.0/24");
        assert_eq!(AddressSet::default().to_string(), "nothing");
        let complement =
            AddressSet::everything().difference(&set(&["203.0.113.0/24", "2001:db8::/32"]));
        assert_eq!(complement.cidrs().len(), 24 + 32);
        assert!(complement
            .intersection(&set(&["203.0.113.9", "2001:db8::1"]))
            .is_empty());
    }
}
