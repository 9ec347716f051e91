//! An account given as the API shows it (a `fleet.json` of the failing cases: `droplets`,
//! `firewalls`, `vpcs`, `account.ssh_keys`, `tags`), loaded into the simulator's state.

use serde_json::Value;
use shared::digitalocean::{Firewall, SshKey, Vpc};

use crate::state::{SimDroplet, State};

/// A field of `v` that must be a string.
fn text(v: &Value, key: &str) -> Result<String, String> {
    v[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{key} is not a string in {}", v["id"]))
}

/// The first address of `kind` (`public` or `private`) in `networks.<family>`.
fn address(d: &Value, family: &str, kind: &str) -> Option<String> {
    d["networks"][family]
        .as_array()?
        .iter()
        .find(|n| n["type"] == kind)
        .and_then(|n| n["ip_address"].as_str())
        .map(str::to_string)
}

/// A Droplet as the API lists it, kept as the simulator keeps it.
pub fn droplet(d: &Value) -> Result<SimDroplet, String> {
    Ok(SimDroplet {
        id: d["id"].as_u64().ok_or("a Droplet has no numeric id")?,
        name: text(d, "name")?,
        status: text(d, "status")?,
        tags: serde_json::from_value(d["tags"].clone()).map_err(|e| e.to_string())?,
        vpc_uuid: d["vpc_uuid"].as_str().map(str::to_string),
        region: text(&d["region"], "slug")?,
        size_slug: text(d, "size_slug")?,
        public_ipv4: address(d, "v4", "public").unwrap_or_default(),
        private_ipv4: address(d, "v4", "private").unwrap_or_default(),
        ipv6: address(d, "v6", "public"),
        gpu: d.get("gpu_info").is_some_and(|g| !g.is_null()),
        created_at: text(d, "created_at")?,
    })
}

fn list<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<Vec<T>, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("{what}: {e}"))
}

impl State {
    /// The state that serves `account` (see the module's doc) exactly.
    pub fn from_account_json(account: &Value) -> Result<State, String> {
        let mut st = State {
            next_id: 900_000_000,
            ..Default::default()
        };
        for d in account["droplets"].as_array().ok_or("no droplets array")? {
            let d = droplet(d)?;
            st.tags.extend(d.tags.iter().cloned());
            st.droplets.insert(d.id, d);
        }
        st.firewalls = list::<Firewall>(&account["firewalls"], "firewalls")?;
        st.vpcs = list::<Vpc>(&account["vpcs"], "vpcs")?;
        st.ssh_keys = list::<SshKey>(&account["account"]["ssh_keys"], "account.ssh_keys")?;
        st.tags.extend(list::<String>(&account["tags"], "tags")?);
        Ok(st)
    }
}
