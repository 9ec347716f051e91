//! Port lists and port ranges, as policies and firewall rules write them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An inclusive range of ports, `lo <= hi`, both in 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange { lo: 1, hi: 65535 };

    pub fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    pub fn intersection(&self, other: &PortRange) -> Option<PortRange> {
        self.overlaps(other).then(|| PortRange {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        })
    }

    /// The parts of `self` that no range of `allowed` covers.
    pub fn uncovered_by(&self, allowed: &[PortRange]) -> Vec<PortRange> {
        let mut sorted: Vec<PortRange> = allowed
            .iter()
            .filter(|a| a.overlaps(self))
            .copied()
            .collect();
        sorted.sort();
        let mut out = Vec::new();
        let mut next = u32::from(self.lo);
        for a in sorted {
            if u32::from(a.lo) > next {
                out.push(PortRange {
                    lo: next as u16,
                    hi: a.lo - 1,
                });
            }
            next = next.max(u32::from(a.hi) + 1);
            if next > u32::from(self.hi) {
                break;
            }
        }
        if next <= u32::from(self.hi) {
            out.push(PortRange {
                lo: next as u16,
                hi: self.hi,
            });
        }
        out
    }

    /// A policy entry: `"22"` or `"8000-9000"`, decimal digits only (no sign: `"+25"` is
    /// refused).
    pub fn parse_policy(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a port or a range A-B (1-65535)");
        let number = |x: &str| {
            let x = x.trim();
            (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
                .then(|| x.parse::<u16>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        let (lo, hi) = match s.trim().split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let p = number(s)?;
                (p, p)
            }
        };
        if lo == 0 || hi == 0 {
            return Err(format!(
                "{s:?}: port 0 is not a port; list the ports or ranges meant"
            ));
        }
        if lo > hi {
            return Err(format!("{s:?}: the range starts after it ends"));
        }
        Ok(PortRange { lo, hi })
    }

    /// A firewall rule's `ports`: `"22"`, `"8000-9000"`, `"0"` or `"all"` (every port).
    /// `None` for an empty value (ICMP rules have no ports).
    pub fn parse_rule(s: &str) -> Result<Option<Self>, String> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(None);
        }
        if t == "0" || t.eq_ignore_ascii_case("all") {
            return Ok(Some(PortRange::ALL));
        }
        PortRange::parse_policy(t).map(Some)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == PortRange::ALL {
            f.write_str("all")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_str(&self.lo.to_string())
        } else {
            s.serialize_str(&format!("{}-{}", self.lo, self.hi))
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Num(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        PortRange::parse_policy(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    #[test]
    fn parses_policy_and_rule_forms() {
        assert_eq!(PortRange::parse_policy("22"), Ok(r(22, 22)));
        assert_eq!(PortRange::parse_policy("8000-9000"), Ok(r(8000, 9000)));
        assert!(PortRange::parse_policy("0").is_err());
        assert!(PortRange::parse_policy("9000-8000").is_err());
        assert!(PortRange::parse_policy("80-").is_err());
        assert!(PortRange::parse_policy("70000").is_err());
        for signed in ["+25", "-25", "+25-30", "25-+30", "２５"] {
            let e = PortRange::parse_policy(signed).expect_err(signed);
            assert!(e.contains("is not a port or a range A-B (1-65535)"), "{e}");
        }
        assert_eq!(PortRange::parse_rule("0"), Ok(Some(PortRange::ALL)));
        assert_eq!(PortRange::parse_rule("all"), Ok(Some(PortRange::ALL)));
        assert_eq!(PortRange::parse_rule(""), Ok(None));
        assert_eq!(PortRange::parse_rule("1-65535"), Ok(Some(PortRange::ALL)));
    }

    #[test]
    fn uncovered_parts() {
        let allowed = [r(80, 80), r(443, 443)];
        assert!(r(80, 80).uncovered_by(&allowed).is_empty());
        assert_eq!(r(80, 443).uncovered_by(&allowed), vec![r(81, 442)]);
        assert_eq!(
            r(1, 65535).uncovered_by(&allowed),
            vec![r(1, 79), r(81, 442), r(444, 65535)]
        );
        assert_eq!(r(22, 22).uncovered_by(&[]), vec![r(22, 22)]);
        assert!(r(1, 65535).uncovered_by(&[PortRange::ALL]).is_empty());
        assert_eq!(
            r(65535, 65535).uncovered_by(&[r(1, 65534)]),
            vec![r(65535, 65535)]
        );
    }
}
