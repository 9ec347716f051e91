//! Validation of `[[exemptions]]`: every error names the key and the line of the entry.

use super::{valid_tag, PolicyError};
use crate::exemptions::Exemption;
use crate::rules;

/// Checks each exemption: reason and owner present, at least one Droplet or tag selector,
/// valid globs and tags, known rule ids, an expiry with a date.
pub(super) fn check(exemptions: &[Exemption], text: &str, file: &str) -> Result<(), PolicyError> {
    for (n, e) in exemptions.iter().enumerate() {
        if let Err((key, message)) = check_one(e) {
            return Err(PolicyError::Invalid {
                file: file.to_string(),
                line: entry_line(text, n, key),
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
    if let Some(r) = e.rules.iter().find(|r| rules::info(r).is_none()) {
        return Err((
            "rules",
            format!(
                "unknown rule id {r:?}; known rules: {}",
                rules::ids().join(", ")
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

/// The 1-based line of `key` in the `n`-th `[[exemptions]]` entry (else the entry's header,
/// else 1).
fn entry_line(text: &str, n: usize, key: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let Some(header) = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[exemptions]]"))
        .nth(n)
        .map(|(i, _)| i)
    else {
        return 1;
    };
    lines[header + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| header + 2 + i)
        .unwrap_or(header + 1)
}
