//! `firewall.missing`: attach the baseline firewall by tag, creating it (or giving it its tag)
//! first when needed. Refused while `management.cidrs` is empty: the baseline would then
//! admit SSH from nowhere and lock the owners out.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{params, ports_text, result_of, rule_text, step, ApplyContext, Fix, PlanContext};
use crate::digitalocean::{
    Droplet, Firewall, FirewallRequest, InboundRule, OutboundRule, Protocol, Targets,
};
use crate::net::{AddressSet, Cidr};
use crate::policy::Policy;
use crate::remediate::ensure::{ensure_firewall, find_named, Known};
use crate::remediate::ledger::Entry;
use crate::remediate::step::{Planner, Step};
use crate::remediate::RemediateError;
use crate::report::{Change, ChangeResource, Finding, ResourceType};
use crate::rules::firewall::{denying, exposure_text, parse_all, Rule};
use crate::rules::FIREWALL_MISSING;
use crate::snapshot::cache::CachedAccount;

const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

pub struct AttachBaseline;

/// The steps' parameters.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Params {
    /// Create the baseline firewall (by tag): no firewall of that name exists.
    Create { request: FirewallRequest },
    /// The baseline firewall exists but does not carry the baseline tag.
    TagFirewall { firewall_id: String, tag: String },
    /// Tag a Droplet with the baseline tag, which attaches the baseline firewall.
    Attach {
        droplet_id: u64,
        tag: String,
        before: Value,
        after: Value,
    },
}

/// The baseline firewall's request, from the policy: SSH from the management ranges, the
/// `world_open_allowed` tcp ports and ICMP from the world, everything outbound.
pub fn baseline_request(policy: &Policy) -> FirewallRequest {
    let mgmt = policy.management.cidrs.iter().map(Cidr::to_string);
    let mut inbound = vec![InboundRule {
        action: Default::default(),
        protocol: Protocol::Tcp,
        ports: policy.ssh.port.to_string(),
        sources: Targets::addresses(mgmt),
    }];
    for p in &policy.firewall.world_open_allowed {
        inbound.push(InboundRule {
            action: Default::default(),
            protocol: Protocol::Tcp,
            ports: ports_text(p),
            sources: Targets::addresses(WORLD),
        });
    }
    inbound.push(InboundRule {
        action: Default::default(),
        protocol: Protocol::Icmp,
        ports: "0".into(),
        sources: Targets::addresses(WORLD),
    });
    let outbound = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp]
        .into_iter()
        .map(|protocol| OutboundRule {
            action: Default::default(),
            protocol,
            ports: "0".into(),
            destinations: Targets::addresses(WORLD),
        })
        .collect();
    FirewallRequest {
        name: policy.firewall.baseline_name.clone(),
        inbound_rules: inbound,
        outbound_rules: outbound,
        droplet_ids: vec![],
        tags: vec![policy.firewall.baseline_tag.clone()],
    }
}

impl Fix for AttachBaseline {
    fn name(&self) -> &'static str {
        "attach-baseline"
    }

    fn rules(&self) -> &'static [&'static str] {
        &[FIREWALL_MISSING]
    }

    fn plan(&self, cx: &PlanContext<'_>, findings: &[&Finding], out: &mut Planner) {
        let mut to_attach: Vec<&Droplet> = Vec::new();
        for f in findings {
            let Some(d) = cx.droplet_of(f) else { continue };
            if cx.policy.management.cidrs.is_empty() {
                let why = "management.cidrs is empty, so the baseline firewall would block SSH for everyone";
                out.note(FIREWALL_MISSING, &f.resource.id, None, Some(why.into()));
            } else {
                to_attach.push(d);
            }
        }
        if to_attach.is_empty() {
            return;
        }
        let ready = self.plan_firewall(cx, out);
        for d in to_attach {
            self.plan_attach(cx, d, ready, out);
        }
    }

    fn apply<'a>(
        &'a self,
        cx: &'a mut ApplyContext<'_>,
        steps: &'a [&'a Step],
    ) -> BoxFuture<'a, Result<Vec<Change>, RemediateError>> {
        Box::pin(apply(cx, steps))
    }
}

impl AttachBaseline {
    /// Plans the baseline firewall's creation or tagging; true when it will be ready.
    fn plan_firewall(&self, cx: &PlanContext<'_>, out: &mut Planner) -> bool {
        let policy = cx.policy;
        let tag = &policy.firewall.baseline_tag;
        match find_named(&cx.snapshot.firewalls, &policy.firewall.baseline_name) {
            None => {
                let request = baseline_request(policy);
                let name = &policy.firewall.baseline_name;
                let ok = out.take(ResourceType::Firewall, &format!("new:{name}"));
                let rules: Vec<String> = request.inbound_rules.iter().map(rule_text).collect();
                let description = format!(
                    "create firewall {name} attached by tag {tag}: inbound {}; outbound all to the world",
                    rules.join("; ")
                );
                let resource = (ResourceType::Firewall, name.clone());
                let params = Params::Create { request };
                out.push(step(
                    self,
                    "create-baseline-firewall",
                    resource,
                    FIREWALL_MISSING,
                    description,
                    ok,
                    &params,
                ));
                ok
            }
            Some(fw) if !fw.tags.contains(tag) => {
                let ok = out.take(ResourceType::Firewall, &fw.id);
                let description = format!("add tag {tag} to firewall {} ({})", fw.name, fw.id);
                let params = Params::TagFirewall {
                    firewall_id: fw.id.clone(),
                    tag: tag.clone(),
                };
                let resource = (ResourceType::Firewall, fw.id.clone());
                out.push(step(
                    self,
                    "tag-baseline-firewall",
                    resource,
                    FIREWALL_MISSING,
                    description,
                    ok,
                    &params,
                ));
                ok
            }
            Some(_) => true,
        }
    }

    /// Plans tagging one Droplet, which attaches the baseline firewall.
    fn plan_attach(&self, cx: &PlanContext<'_>, d: &Droplet, ready: bool, out: &mut Planner) {
        let policy = cx.policy;
        let tag = policy.firewall.baseline_tag.clone();
        let id = d.id.to_string();
        let ok = ready && out.take(ResourceType::Droplet, &id);
        let (exposed, warning) = exposure_after(cx);
        let planned = format!(
            "attach firewall {} by tag {tag}: exposed before: every port from anywhere (no firewall); after: {exposed}{}",
            policy.firewall.baseline_name,
            warning.as_deref().map(|w| format!("; {w}")).unwrap_or_default()
        );
        let mut tags_after = d.tags.clone();
        tags_after.push(tag.clone());
        let params = Params::Attach {
            droplet_id: d.id,
            before: json!({"firewalls": [], "tags": d.tags, "exposed": "every port from anywhere"}),
            after: json!({"firewalls": [policy.firewall.baseline_name], "tags": tags_after, "exposed": exposed}),
            tag,
        };
        out.note_planned(FIREWALL_MISSING, &id, &planned, ok);
        out.push(step(
            self,
            "attach-baseline-firewall",
            (ResourceType::Droplet, id),
            FIREWALL_MISSING,
            planned,
            ok,
            &params,
        ));
    }
}

/// What a Droplet admits once it carries the baseline tag: every firewall the tag attaches
/// (the baseline as it is, or as it will be created), deny rules included. Also a warning when
/// a deny rule of those firewalls takes the management ranges' SSH away.
fn exposure_after(cx: &PlanContext<'_>) -> (String, Option<String>) {
    let policy = cx.policy;
    let tag = &policy.firewall.baseline_tag;
    let request = baseline_request(policy);
    let planned = Firewall {
        id: "new".into(),
        name: request.name.clone(),
        status: Some("succeeded".into()),
        created_at: None,
        inbound_rules: request.inbound_rules,
        outbound_rules: request.outbound_rules,
        droplet_ids: vec![],
        tags: request.tags,
        pending_changes: vec![],
    };
    let existing = find_named(&cx.snapshot.firewalls, &policy.firewall.baseline_name);
    let mut fws: Vec<&Firewall> = cx
        .snapshot
        .firewalls
        .iter()
        .filter(|f| f.tags.contains(tag))
        .collect();
    if existing.is_none() {
        fws.push(&planned);
    } else if let Some(fw) = existing.filter(|fw| !fws.iter().any(|f| f.id == fw.id)) {
        fws.push(fw);
    }
    let parsed = parse_all(&fws);
    let rules: Vec<Rule<'_>> = parsed.iter().map(|(f, r)| (*f, r)).collect();
    let mgmt = AddressSet::of(&policy.management.cidrs);
    let denied = denying(&rules, Protocol::Tcp, policy.ssh.port, &mgmt);
    let warning = (!denied.is_empty()).then(|| {
        format!(
            "the baseline's SSH rule is no way in: {} denies the management ranges",
            denied.join(", ")
        )
    });
    (exposure_text(&rules), warning)
}

/// The firewall first (an error there fails every attach), then every Droplet in tag
/// requests of up to 50 Droplets.
async fn apply(cx: &mut ApplyContext<'_>, steps: &[&Step]) -> Result<Vec<Change>, RemediateError> {
    let mut changes = Vec::new();
    let mut firewall_error: Option<String> = None;
    let mut attach = Vec::new();
    for s in steps {
        match params::<Params>(s)? {
            Params::Create { request } => {
                let (change, err) = create(cx, s, &request).await?;
                changes.push(change);
                firewall_error = firewall_error.or(err);
            }
            Params::TagFirewall { firewall_id, tag } => {
                let (change, err) = tag_firewall(cx, s, &firewall_id, &tag).await?;
                changes.push(change);
                firewall_error = firewall_error.or(err);
            }
            Params::Attach {
                droplet_id,
                tag,
                before,
                after,
            } => attach.push((*s, droplet_id, tag, before, after)),
        }
    }
    let result = match &firewall_error {
        Some(e) => format!("failed: the baseline firewall is not available: {e}"),
        None => {
            for (s, _, _, before, after) in &attach {
                cx.ledger
                    .intend(&Entry::for_step(
                        s,
                        before.clone(),
                        after.clone(),
                        String::new(),
                    ))
                    .await?;
            }
            tag_droplets(cx, &attach).await
        }
    };
    for (s, _, _, before, after) in attach {
        changes.push(
            cx.ledger
                .record(Entry::for_step(s, before, after, result.clone()))
                .await?,
        );
    }
    Ok(changes)
}

/// Finds or creates the baseline firewall; the entry names the firewall that resulted.
async fn create(
    cx: &mut ApplyContext<'_>,
    s: &Step,
    request: &FirewallRequest,
) -> Result<(Change, Option<String>), RemediateError> {
    cx.ledger.intend_step(s).await?;
    let r = ensure_firewall(cx.client, request, Known::Absent).await;
    if let Ok(e) = &r {
        CachedAccount::remember_firewall(cx.ledger.store(), &e.kept).await;
    }
    let (id, after, result) = match &r {
        Ok(e) => {
            let fw = &e.kept;
            let after = json!({"id": fw.id, "name": fw.name, "tags": fw.tags, "inbound_rules": fw.inbound_rules,
                   "outbound_rules": fw.outbound_rules, "created": e.created, "duplicates_removed": e.removed,
                   "did": e.summary()});
            // The record names what this run created, when it created one.
            let id = e.created.clone().unwrap_or_else(|| fw.id.clone());
            (id, after, "ok".to_string())
        }
        Err(e) => (s.resource.id.clone(), Value::Null, format!("failed: {e}")),
    };
    let mut entry = Entry::for_step(s, Value::Null, after, result);
    entry.resource = ChangeResource {
        kind: ResourceType::Firewall,
        id,
    };
    let change = cx.ledger.record(entry).await?;
    Ok((change, r.err().map(|e| e.to_string())))
}

/// Gives the existing baseline firewall its tag; the entry, and the error if it failed.
async fn tag_firewall(
    cx: &mut ApplyContext<'_>,
    s: &Step,
    firewall_id: &str,
    tag: &str,
) -> Result<(Change, Option<String>), RemediateError> {
    cx.ledger.intend_step(s).await?;
    let r = async {
        cx.client.create_tag(tag).await?;
        cx.client
            .add_tags_to_firewall(firewall_id, &[tag.to_string()])
            .await
    }
    .await;
    let entry = Entry::for_step(
        s,
        json!({"tags_added": []}),
        json!({"tags_added": [tag]}),
        result_of(&r),
    );
    let change = cx.ledger.record(entry).await?;
    Ok((change, r.err().map(|e| e.to_string())))
}

/// Tags the Droplets, 50 to a request; `ok` or the first failure.
async fn tag_droplets(
    cx: &ApplyContext<'_>,
    attach: &[(&Step, u64, String, Value, Value)],
) -> String {
    let Some((_, _, tag, _, _)) = attach.first() else {
        return "ok".into();
    };
    let ids: Vec<u64> = attach.iter().map(|a| a.1).collect();
    for chunk in ids.chunks(50) {
        let r = async {
            cx.client.create_tag(tag).await?;
            cx.client.tag_droplets(tag, chunk).await
        }
        .await;
        if r.is_err() {
            return result_of(&r);
        }
    }
    "ok".into()
}
