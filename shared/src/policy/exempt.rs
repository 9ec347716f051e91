//! Validation of `[[exemptions]]`: every error names the key and the line of the entry.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use toml::value::{Datetime, Offset};

use super::{valid_tag, PolicyError};
use crate::catalog;
use crate::digitalocean::Droplet;
use crate::report::{ExemptionRef, ExpiringExemption};

/// One `[[exemptions]]` entry, as written in the policy (keys are part of the contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Droplet ids or name globs (`*`, `?`, `[...]`, as `glob::Pattern` reads them).
    #[serde(default)]
    pub droplets: Vec<String>,
    /// Droplets carrying any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Rule ids; empty means every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    pub reason: String,
    /// A team or an address.
    pub owner: String,
    /// A TOML date (valid through that day, UTC) or date-time (a local one is read as UTC).
    pub expires: Datetime,
}

impl Exemption {
    /// The instant it stops applying: the end of the day (UTC) for a date, else the
    /// date-time itself. `None` for a time without a date (rejected by the policy parser).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let d = self.expires.date?;
        let date = NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())?;
        let Some(t) = self.expires.time else {
            return Some(date.succ_opt()?.and_time(NaiveTime::MIN).and_utc());
        };
        let time = NaiveTime::from_hms_nano_opt(
            t.hour.into(),
            t.minute.into(),
            t.second.into(),
            t.nanosecond,
        )?;
        let local = date.and_time(time).and_utc();
        Some(match self.expires.offset {
            Some(Offset::Custom { minutes }) => local - Duration::minutes(minutes.into()),
            _ => local,
        })
    }

    /// Whether it still holds at `now`.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.expires_at().is_some_and(|t| now < t)
    }

    /// Whether it covers `rule` on `droplet` (whatever its expiry).
    pub fn matches(&self, rule: &str, droplet: &Droplet) -> bool {
        let rule_ok = self.rules.is_empty() || self.rules.iter().any(|r| r == rule);
        let id = droplet.id.to_string();
        let by_droplet = self.droplets.iter().any(|p| {
            p == &id
                || glob::Pattern::new(p).is_ok_and(|g| g.matches(&droplet.name) || g.matches(&id))
        });
        let by_tag = self.tags.iter().any(|t| droplet.has_tag(t));
        rule_ok && (by_droplet || by_tag)
    }

    /// As reports and `dropletguard findings` list it: reference and selectors.
    pub fn listing(&self) -> ExpiringExemption {
        ExpiringExemption {
            exemption: self.reference(),
            droplets: self.droplets.clone(),
            tags: self.tags.clone(),
            rules: self.rules.clone(),
        }
    }

    pub fn reference(&self) -> ExemptionRef {
        ExemptionRef {
            reason: self.reason.clone(),
            owner: self.owner.clone(),
            expires: self.expires.to_string(),
        }
    }
}

/// Checks each exemption: reason and owner present, at least one Droplet or tag selector,
/// valid globs and tags, known rule ids, an expiry with a date.
pub(super) fn check(
    exemptions: &[Exemption],
    spans: &super::spans::Spans<'_>,
    file: &str,
) -> Result<(), PolicyError> {
    for (n, e) in exemptions.iter().enumerate() {
        if let Err((key, message)) = check_one(e) {
            return Err(PolicyError::Invalid {
                file: file.to_string(),
                line: spans
                    .key_line(&["exemptions", &n.to_string(), key])
                    .unwrap_or(1),
                message: format!("exemptions.{key}: {message}"),
            });
        }
    }
    Ok(())
}

fn check_one(e: &Exemption) -> Result<(), (&'static str, String)> {
    for (key, value) in [("reason", &e.reason), ("owner", &e.owner)] {
        if value.trim().is_empty() {
            return Err((key, "is required and must not be empty".into()));
        }
    }
    if e.droplets.is_empty() && e.tags.is_empty() {
        return Err((
            "droplets",
            "an exemption names droplets, tags, or both".into(),
        ));
    }
    for p in &e.droplets {
        if p.trim().is_empty() {
            return Err(("droplets", "an empty Droplet id or glob".into()));
        }
        glob::Pattern::new(p).map_err(|err| ("droplets", format!("{p:?}: {err}")))?;
    }
    if let Some(t) = e.tags.iter().find(|t| !valid_tag(t)) {
        return Err(("tags", format!("{t:?} is not a valid DigitalOcean tag")));
    }
    if let Some(r) = e.rules.iter().find(|r| catalog::info(r).is_none()) {
        return Err((
            "rules",
            format!(
                "unknown rule id {r:?}; known rules: {}",
                catalog::ids().join(", ")
            ),
        ));
    }
    if e.expires_at().is_none() {
        return Err((
            "expires",
            format!(
                "{} has no date; write a date (2027-01-31) or a date-time",
                e.expires
            ),
        ));
    }
    Ok(())
}
