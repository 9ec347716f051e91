//! The HTML page of a report with its matrix grouped by the VPC each Droplet sits in. The
//! renderer (`report::html`) reads nothing; the grouping comes from here: the run's own read
//! ([`vpc_labels`]), or, for a report read back from JSON, a few API requests.

use std::collections::{BTreeMap, BTreeSet};

use crate::digitalocean::{ApiError, Client, Droplet};
use crate::report::html::{to_html, HtmlContext, HtmlError, RunPoint};
use crate::report::Report;

/// Each Droplet's VPC name (Droplet id → name; `default VPC (region)` for a Droplet without
/// `vpc_uuid`), from three paginated list calls read concurrently (`GET /v2/droplets`, with
/// `type=gpus`, and `GET /v2/vpcs`).
pub async fn droplet_vpcs(client: &Client) -> Result<BTreeMap<String, String>, ApiError> {
    let (droplets, gpus, vpcs) = tokio::join!(
        client.list_droplets(),
        client.list_gpu_droplets(),
        vpc_names(client)
    );
    let vpcs = vpcs?;
    Ok(droplets?
        .iter()
        .chain(gpus?.iter())
        .map(|d| (d.id.to_string(), vpc_label(d, &vpcs)))
        .collect())
}

/// At most this many Droplets with findings are read one by one rather than by listing all.
const READ_ONE_BY_ONE: usize = 20;

/// The VPC names of the Droplets that have findings in `report` (the only ones the matrix
/// shows): one `GET /v2/droplets/{id}` each when there are few (a webhook's re-check does not
/// list the whole account), else [`droplet_vpcs`].
async fn vpcs_of_findings(
    client: &Client,
    report: &Report,
) -> Result<BTreeMap<String, String>, ApiError> {
    let ids: BTreeSet<u64> = report
        .findings
        .iter()
        .filter(|f| f.resource.kind == crate::report::ResourceType::Droplet)
        .filter_map(|f| f.resource.id.parse().ok())
        .collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    if ids.len() > READ_ONE_BY_ONE {
        return droplet_vpcs(client).await;
    }
    let vpcs = vpc_names(client).await?;
    let mut out = BTreeMap::new();
    for id in ids {
        match client.get_droplet(id).await {
            Ok(d) => {
                out.insert(id.to_string(), vpc_label(&d, &vpcs));
            }
            // Deleted since the audit: it shows under UNKNOWN_GROUP.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn vpc_names(client: &Client) -> Result<VpcNames, ApiError> {
    Ok(VpcNames::of(&client.list_vpcs().await?))
}

/// The names a Droplet's VPC is shown by: each VPC's name, and each region's default VPC.
#[derive(Default)]
struct VpcNames {
    by_id: BTreeMap<String, String>,
    default_of_region: BTreeMap<String, String>,
}

impl VpcNames {
    fn of(vpcs: &[crate::digitalocean::Vpc]) -> Self {
        let mut names = VpcNames::default();
        for v in vpcs {
            names.by_id.insert(v.id.clone(), v.name.clone());
            if v.default {
                names
                    .default_of_region
                    .insert(v.region.clone(), v.name.clone());
            }
        }
        names
    }
}

/// One label per VPC: its name; a Droplet without `vpc_uuid` sits in its region's default
/// VPC, so it gets that VPC's name when the list has it (else `default VPC (<region>)`).
fn vpc_label(d: &Droplet, vpcs: &VpcNames) -> String {
    match &d.vpc_uuid {
        Some(u) => vpcs
            .by_id
            .get(u)
            .cloned()
            .unwrap_or_else(|| format!("VPC {u}")),
        None => vpcs
            .default_of_region
            .get(d.region_slug())
            .cloned()
            .unwrap_or_else(|| format!("default VPC ({})", d.region_slug())),
    }
}

/// The VPC label of each Droplet with a finding (Droplet id → `name`, `VPC <id>` when the VPC
/// list did not name it, `default VPC (<region>)` without `vpc_uuid`), from a run's snapshot.
pub fn vpc_labels(
    snapshot: &crate::snapshot::Snapshot,
    findings: &[crate::report::Finding],
) -> BTreeMap<String, String> {
    let names = snapshot
        .vpcs
        .as_ref()
        .map(|l| VpcNames::of(l))
        .unwrap_or_default();
    let wanted: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.resource.kind == crate::report::ResourceType::Droplet)
        .map(|f| f.resource.id.as_str())
        .collect();
    snapshot
        .droplets
        .iter()
        .filter(|d| wanted.contains(d.id.to_string().as_str()))
        .map(|d| (d.id.to_string(), vpc_label(d, &names)))
        .collect()
}

/// The page with the matrix grouped by VPC: from the run's own read ([`Report::vpc_of`]), or
/// for a report without it a few more API requests (see [`vpcs_of_findings`]), not counted in
/// the report's `api_requests`. When they fail, the page still renders, with Droplets under
/// [`UNKNOWN_GROUP`](crate::report::html::UNKNOWN_GROUP).
pub async fn to_html_by_vpc(
    client: &Client,
    report: &Report,
    trend: &[RunPoint],
) -> Result<String, HtmlError> {
    // The run's own read gave each Droplet's VPC; a report read back from JSON has none.
    let has_droplets = report
        .findings
        .iter()
        .any(|f| f.resource.kind == crate::report::ResourceType::Droplet);
    let groups = if !report.vpc_of.is_empty() || !has_droplets {
        report.vpc_of.clone()
    } else {
        match vpcs_of_findings(client, report).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "the HTML report's VPC grouping could not be read");
                BTreeMap::new()
            }
        }
    };
    to_html(
        report,
        HtmlContext {
            groups: &groups,
            trend,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_default_vpc_is_labelled_once_whether_droplets_name_it_or_not() {
        let vpcs: Vec<crate::digitalocean::Vpc> = serde_json::from_value(json!([
            {"id": "v-ams", "name": "default-ams3", "region": "ams3", "default": true},
            {"id": "v-prod", "name": "prod", "region": "ams3", "default": false}
        ]))
        .expect("vpcs");
        let names = VpcNames::of(&vpcs);
        let droplet = |vpc: Option<&str>, region: &str| -> Droplet {
            serde_json::from_value(json!({"id": 1, "name": "d", "vpc_uuid": vpc,
                "region": {"slug": region}}))
            .expect("droplet")
        };
        assert_eq!(
            vpc_label(&droplet(Some("v-ams"), "ams3"), &names),
            "default-ams3"
        );
        assert_eq!(vpc_label(&droplet(None, "ams3"), &names), "default-ams3");
        assert_eq!(vpc_label(&droplet(Some("v-prod"), "ams3"), &names), "prod");
        // No default VPC listed for the region: the region says which one.
        assert_eq!(
            vpc_label(&droplet(None, "nyc3"), &names),
            "default VPC (nyc3)"
        );
    }
}
