//! Durations written in the policy (`grace = "2h"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time written as `"90m"`, `"2h"`, `"1d"` or combinations (`"1h 30m"`); units as
/// `humantime` reads them (`s`, `m`, `h`, `d`, `w`). `"0m"` is no time at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyDuration(pub Duration);

impl PolicyDuration {
    /// Parses `"90m"`, `"2h"`, `"1d"`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(PolicyDuration)
            .map_err(|e| {
                format!("{text:?} is not a duration ({e}); write e.g. \"90m\", \"2h\" or \"1d\"")
            })
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for PolicyDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PolicyDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PolicyDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_units_users_write() {
        let secs = |t: &str| PolicyDuration::parse(t).expect(t).0.as_secs();
        assert_eq!(secs("90m"), 90 * 60);
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(secs("1h 30m"), 5400);
        assert_eq!(secs("0m"), 0);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["2", "two hours", "-1h", "", "1y2"] {
            let e = PolicyDuration::parse(bad).expect_err(bad);
            assert!(e.contains("is not a duration"), "{e}");
        }
    }
}
