//! A webhook delivery (`webhook`): verified, claimed once, the Droplets its event touches
//! re-checked, answered as HTTP.

use super::*;

/// The Droplets carrying any of `tags`, GPU Droplets included. The API's `tag_name` filter
/// never returns GPU Droplets and cannot be combined with `type=gpus` (`do-api`,
/// `GET /v2/droplets`), so the GPU list is read once and filtered here.
pub(super) async fn tagged_droplets(
    client: &Client,
    tags: &[String],
) -> Result<Vec<Droplet>, ServiceError> {
    let mut out: Vec<Droplet> = Vec::new();
    if tags.is_empty() {
        return Ok(out);
    }
    for t in tags {
        out.extend(client.list_droplets_by_tag(t).await?);
    }
    let gpus = client.list_gpu_droplets().await?;
    out.extend(
        gpus.into_iter()
            .filter(|d| tags.iter().any(|t| d.has_tag(t))),
    );
    let mut seen = HashSet::new();
    out.retain(|d| seen.insert(d.id));
    Ok(out)
}

/// The Droplets an event touches.
pub async fn touched_droplets(client: &Client, event: &Event) -> Result<Touched, ServiceError> {
    Ok(match event {
        Event::DropletCreated { droplet_id } | Event::DropletUpdated { droplet_id } => {
            Touched::ids([*droplet_id])
        }
        Event::FirewallChanged { firewall_id } => match client.get_firewall(firewall_id).await {
            Ok(fw) => {
                let mut t = Touched::read(tagged_droplets(client, &fw.tags).await?);
                t.ids.extend(fw.droplet_ids.iter().copied());
                t
            }
            Err(e) if e.is_not_found() => Touched::default(),
            Err(e) => return Err(e.into()),
        },
        Event::TagChanged { tag } => {
            Touched::read(tagged_droplets(client, std::slice::from_ref(tag)).await?)
        }
        Event::VpcChanged { vpc_id } => match client.vpc_members(vpc_id).await {
            Ok(m) => Touched::ids(m.iter().filter_map(|m| m.droplet_id())),
            Err(e) if e.is_not_found() => Touched::default(),
            Err(e) => return Err(e.into()),
        },
        Event::Action {
            resource_type,
            resource_id,
            ..
        } => match (resource_type.as_deref(), resource_id) {
            (Some("droplet"), Some(id)) => Touched::ids([*id]),
            _ => Touched::default(),
        },
    })
}

/// A reply to an HTTP request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpReply {
    pub status: u16,
    pub body: Value,
}

pub(super) fn reply(status: u16, body: Value) -> HttpReply {
    HttpReply { status, body }
}

pub(super) fn replay_key(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("webhooks/{hex}.json")
}

/// A signed delivery: verify the exact bytes, claim its id, re-check the touched Droplets.
/// 401 for any signature failure (no detail), 413 over 256 KiB, 400 for a malformed event,
/// 200 with `{"duplicate": true}` for a delivery already claimed (by this instance or any
/// other), 200 with the report.
pub async fn handle_webhook(
    deps: &Deps,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> HttpReply {
    let (verified, event) = match accept(deps, headers, body, now) {
        Ok(accepted) => accepted,
        Err(reply) => return reply,
    };
    let key = replay_key(&verified.id);
    match claim(deps, &verified, &event, &key, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(webhook_id = %verified.id, "repeated delivery not processed");
            return reply(200, json!({"duplicate": true, "webhook_id": verified.id}));
        }
        Err(e) => return reply(500, json!({"error": e.to_string()})),
    }
    let processed = process_event(deps, &event).await;
    SeenBudget::save(&deps.store, &deps.client).await;
    match processed {
        // Held back to keep the incident-response reserve: the sender retries later.
        Ok(report) if report.run.stopped_early => {
            release(deps, &key).await;
            reply(
                503,
                json!({"error": report.run.incomplete.join("; "), "retry": true}),
            )
        }
        Ok(report) => reply(200, serde_json::to_value(&report).unwrap_or(Value::Null)),
        Err(e) => {
            release(deps, &key).await;
            tracing::error!(error = %e, "webhook processing failed");
            let status = if reserve_error(&e).is_some() {
                503
            } else {
                500
            };
            reply(status, json!({"error": e.to_string()}))
        }
    }
}

/// Releases a delivery's claim so that the sender's retry is processed.
pub(super) async fn release(deps: &Deps, key: &str) {
    let _ = deps.store.delete(key).await;
    if let Ok(mut g) = deps.replay.lock() {
        *g = ReplayGuard::new();
    }
}

/// The size limit, the signature over the exact bytes, then the event.
pub(super) fn accept(
    deps: &Deps,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<(webhook::Verified, webhook::Event), HttpReply> {
    if body.len() > webhook::MAX_BODY {
        let error = format!("body larger than {} bytes", webhook::MAX_BODY);
        return Err(reply(413, json!({"error": error})));
    }
    let verified = webhook::verify(&deps.webhook_secrets, headers, body, now).map_err(|e| {
        tracing::warn!(reason = %e, "webhook rejected");
        reply(401, json!({"error": "unauthorized"}))
    })?;
    let event =
        webhook::parse_event(body).map_err(|e| reply(400, json!({"error": e.to_string()})))?;
    Ok((verified, event))
}

/// Claims the delivery id: this instance's memory first, then an atomic create-if-absent in
/// the state store, so that of two instances receiving the same delivery at once exactly one
/// processes it. `false`: already claimed.
pub(super) async fn claim(
    deps: &Deps,
    verified: &webhook::Verified,
    event: &webhook::Event,
    key: &str,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    let fresh = deps
        .replay
        .lock()
        .map(|mut g| g.check_and_remember(&verified.id, verified.timestamp, now))
        .unwrap_or(true);
    if !fresh {
        return Ok(false);
    }
    let marker = json!({"webhook_id": verified.id, "timestamp": verified.timestamp,
                        "received_at": now_rfc3339(), "type": event.type_name()});
    deps.store.put_new_json(key, &marker).await
}

/// Re-checks the Droplets an event touched that still exist.
pub(super) async fn process_event(
    deps: &Deps,
    event: &webhook::Event,
) -> Result<Report, ServiceError> {
    SeenBudget::seed(&deps.store, &deps.client).await;
    let run = Run::start("webhook", &deps.client);
    let touched = touched_droplets(&deps.client, event).await?;
    tracing::info!(
        event = event.type_name(),
        droplets = touched.ids.len(),
        "webhook event"
    );
    // Only Droplets that still exist (a deleted one has nothing left to check).
    let existing = existing_droplets(&deps.client, touched).await?;
    if existing.is_empty() {
        return Ok(empty_report(&run, &deps.client));
    }
    recheck(deps, existing, &run).await
}
