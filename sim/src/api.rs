//! The HTTP API: DigitalOcean's paths, shapes and status codes, plus `/_sim` controls.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::digitalocean::{
    Firewall, FirewallRequest, FirewallRules, InboundRule, OutboundRule, PendingChange, Protocol,
    RuleAction, Targets,
};
use shared::policy::{valid_tag, PortRange};

use crate::state::{Faults, LoggedRequest, State};

pub const MAX_DROPLETS_BY_ID: usize = 10;
pub const MAX_TAGS: usize = 5;
pub const MAX_RULES: usize = 50;
const RATE_LIMIT: u64 = 5000;

#[derive(Clone)]
pub struct App {
    pub state: Arc<Mutex<State>>,
    pub token: Arc<String>,
    pub listing: Listing,
}

impl App {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The ids of the unfiltered Droplet lists (regular, then GPU), in id order, worked out once
/// and shared by their pages: without it, each page of 200 scanned every Droplet. Forgotten
/// after every request that is not a `GET` and every [`crate::Sim::with_state`], the only
/// ways the Droplets change.
#[derive(Clone, Default)]
pub struct Listing(Arc<Mutex<Option<Arc<IdLists>>>>);

/// Droplet ids: the regular ones, then the GPU ones.
type IdLists = [Vec<u64>; 2];

impl Listing {
    pub fn forget(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The ids of the regular and of the GPU Droplets in `st`.
    fn lists(&self, st: &State) -> Arc<IdLists> {
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let lists = cached.get_or_insert_with(|| {
            let (gpu, regular) = st.droplets.values().partition(|d| d.gpu);
            let ids = |v: Vec<&crate::state::SimDroplet>| v.iter().map(|d| d.id).collect();
            Arc::new([ids(regular), ids(gpu)])
        });
        Arc::clone(lists)
    }
}

type ApiResult = Result<Response, Response>;

pub fn error(status: StatusCode, id: &str, message: impl Into<String>) -> Response {
    let body = json!({"id": id, "message": message.into(), "request_id": uuid::Uuid::new_v4().to_string()});
    (status, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

fn unprocessable(message: impl Into<String>) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
        message,
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid request body: {e}")))
}

fn ok(status: StatusCode, v: Value) -> ApiResult {
    Ok((status, axum::Json(v)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/v2/droplets", get(list_droplets))
        .route("/v2/droplets/{id}", get(get_droplet))
        .route("/v2/droplets/{id}/firewalls", get(droplet_firewalls))
        .route("/v2/droplets/{id}/actions", get(droplet_actions))
        .route("/v2/actions", get(list_actions))
        .route("/v2/actions/{id}", get(get_action))
        .route("/v2/firewalls", get(list_firewalls).post(create_firewall))
        .route(
            "/v2/firewalls/{id}",
            get(get_firewall)
                .put(update_firewall)
                .delete(delete_firewall),
        )
        .route(
            "/v2/firewalls/{id}/droplets",
            axum::routing::post(fw_add_droplets).delete(fw_remove_droplets),
        )
        .route(
            "/v2/firewalls/{id}/tags",
            axum::routing::post(fw_add_tags).delete(fw_remove_tags),
        )
        .route(
            "/v2/firewalls/{id}/rules",
            axum::routing::post(fw_add_rules).delete(fw_remove_rules),
        )
        .route("/v2/vpcs", get(list_vpcs))
        .route("/v2/vpcs/{id}", get(get_vpc))
        .route("/v2/vpcs/{id}/members", get(vpc_members))
        .route("/v2/account/keys", get(list_keys))
        .route("/v2/tags", get(list_tags).post(create_tag))
        .route("/v2/tags/{tag}", get(get_tag))
        .route(
            "/v2/tags/{tag}/resources",
            axum::routing::post(tag_resources).delete(untag_resources),
        )
        .route(
            "/_sim/requests",
            get(sim_requests).delete(sim_clear_requests),
        )
        .route("/_sim/faults", get(sim_get_faults).put(sim_put_faults))
        .route("/_sim/expected", get(sim_expected))
        .fallback(|| async { not_found() });
    api.layer(middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app)
}

/// Logs, authenticates, injects faults and adds rate-limit headers to every request.
async fn gate(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let is_control = path.starts_with("/_sim/");
    let authorized = bearer_is(&req, &app.token);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (faults, n, remaining) = {
        let mut st = app.lock();
        let remaining = if is_control {
            RATE_LIMIT
        } else {
            st.api_requests += 1;
            spend_hourly(&mut st, now)
        };
        (st.faults.clone(), st.api_requests, remaining)
    };
    if !is_control && faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let overridden = (!is_control)
        .then(|| {
            faults
                .overrides
                .iter()
                .find(|o| o.matches(&method, &path, &query))
        })
        .flatten();
    let mut resp = match overridden {
        Some(o) => o.response(),
        None if !authorized => error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unable to authenticate you",
        ),
        None if is_control => next.run(req).await,
        None => faulted_or_served(&app, &faults, n, req, next).await,
    };
    // A write may have changed the Droplets; it is answered only once the listing its
    // change made stale is forgotten.
    if method != "GET" {
        app.listing.forget();
    }
    rate_limit_headers(&mut resp, remaining, now);
    if !is_control {
        let status = resp.status().as_u16();
        log_request(&app, (method, path, query), status);
    }
    resp
}

/// Keeps an API request in the log `/_sim/requests` serves.
fn log_request(app: &App, (method, path, query): (String, String, String), status: u16) {
    let mut st = app.lock();
    let seq = st.log.len() as u64 + 1;
    st.log.push(LoggedRequest {
        seq,
        method,
        path,
        query,
        status,
    });
}

/// Whether the request carries `Authorization: Bearer <token>`.
fn bearer_is(req: &Request, token: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == token)
}

/// An authorized API request: a forbidden path's 403, an injected fault (the `n`th request),
/// or the real answer (with `meta.total` rewritten where the faults say so).
async fn faulted_or_served(
    app: &App,
    faults: &Faults,
    n: u64,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let is_get = req.method() == axum::http::Method::GET;
    if faults.forbidden_paths.contains(&path) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You are not authorized to perform this operation",
        );
    }
    if let Some(r) = injected(app, faults, n) {
        return r;
    }
    let resp = next.run(req).await;
    match faults.meta_total.get(&path) {
        Some(total) if is_get => crate::inject::rewrite_total(resp, *total).await,
        _ => resp,
    }
}

/// The `ratelimit-*` headers of every answer. A 429 here is the per-minute burst limit
/// (250): the hourly budget is what it is.
fn rate_limit_headers(resp: &mut Response, remaining: u64, now: u64) {
    let h = resp.headers_mut();
    for (k, v) in [
        ("ratelimit-limit", RATE_LIMIT),
        ("ratelimit-remaining", remaining),
        ("ratelimit-reset", now - now % 3600 + 3600),
    ] {
        h.insert(k, HeaderValue::from(v));
    }
}

/// Counts one API request against the hour's budget; the `ratelimit-remaining` to report.
fn spend_hourly(st: &mut crate::state::State, now: u64) -> u64 {
    if let Some(r) = st.faults.ratelimit_remaining {
        st.faults.ratelimit_remaining = Some(r.saturating_sub(1));
        return r;
    }
    let hour = now - now % 3600;
    if st.hour.0 != hour {
        st.hour = (hour, 0);
    }
    st.hour.1 += 1;
    RATE_LIMIT.saturating_sub(st.hour.1)
}

fn injected(app: &App, f: &Faults, n: u64) -> Option<Response> {
    let status = StatusCode::from_u16(f.error_status.unwrap_or(503))
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if f.fail_next > 0 {
        app.lock().faults.fail_next -= 1;
        return Some(error(
            status,
            "server_error",
            "Unexpected server-side error (injected outage)",
        ));
    }
    if f.rate_limit_next > 0 || (f.rate_limit_every > 0 && n.is_multiple_of(f.rate_limit_every)) {
        if f.rate_limit_next > 0 {
            app.lock().faults.rate_limit_next -= 1;
        }
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "API rate limit exceeded.",
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(f.retry_after_secs));
        r.headers_mut()
            .insert("x-sim-rate-limited", HeaderValue::from_static("1"));
        return Some(r);
    }
    if f.error_every > 0 && n.is_multiple_of(f.error_every) {
        return Some(error(
            status,
            "server_error",
            "Unexpected server-side error (injected)",
        ));
    }
    None
}

// ---- pagination -------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    tag_name: Option<String>,
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn paginate(
    headers: &HeaderMap,
    path: &str,
    q: &ListQuery,
    key: &str,
    items: Vec<Value>,
) -> ApiResult {
    let total = items.len();
    paginate_with(headers, path, q, key, total, |start, end| {
        items[start..end].to_vec()
    })
}

/// A list page's body: the items under the list's key, `links.pages`, `meta.total`;
/// serialised without building a JSON tree of the items.
struct PageBody<'k, T> {
    key: &'k str,
    items: T,
    pages: serde_json::Map<String, Value>,
    total: usize,
}

impl<T: serde::Serialize> serde::Serialize for PageBody<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry(self.key, &self.items)?;
        m.serialize_entry("links", &json!({ "pages": self.pages }))?;
        m.serialize_entry("meta", &json!({ "total": self.total }))?;
        m.end()
    }
}

/// Pagination that renders only the requested page: `render(start, end)` of `total` items.
fn paginate_with<T: serde::Serialize>(
    headers: &HeaderMap,
    path: &str,
    q: &ListQuery,
    key: &str,
    total: usize,
    render: impl FnOnce(usize, usize) -> T,
) -> ApiResult {
    let parse = |name: &str, v: &Option<String>, default: usize| -> Result<usize, Response> {
        match v {
            None => Ok(default),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad_request(format!("{name} must be a positive integer"))),
        }
    };
    let per_page = parse("per_page", &q.per_page, 20)?.min(200);
    let page = parse("page", &q.page, 1)?;
    let last = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = (start + per_page).min(total);
    let items = render(start, end);
    let mut extra = String::new();
    if let Some(k) = &q.kind {
        extra.push_str(&format!("&type={k}"));
    }
    if let Some(t) = &q.tag_name {
        extra.push_str(&format!("&tag_name={}", shared_encode(t)));
    }
    let base = base_url(headers);
    let link = |p: usize| format!("{base}{path}?page={p}&per_page={per_page}{extra}");
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link((page - 1).min(last))));
    }
    if page < last {
        pages.insert("next".into(), json!(link(page + 1)));
        pages.insert("last".into(), json!(link(last)));
    }
    let body = PageBody {
        key,
        items,
        pages,
        total,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn shared_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---- droplets ---------------------------------------------------------------------------

async fn list_droplets(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    if q.kind.is_some() && q.tag_name.is_some() {
        return Err(bad_request("type can not be combined with tag_name"));
    }
    let gpus = match q.kind.as_deref() {
        None | Some("droplets") => false,
        Some("gpus") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "invalid type {other:?}: use droplets or gpus"
            )))
        }
    };
    // Only the requested page is rendered: listing 10,000 Droplets page by page stays linear.
    // Its Droplets are copied under the lock and rendered after it, so that concurrent pages
    // render in parallel.
    let ids: Vec<u64> = {
        let st = app.lock();
        match &q.tag_name {
            None => app.listing.lists(&st)[usize::from(gpus)].clone(),
            // As the API: `tag_name` filters the default list, which never holds GPU Droplets.
            Some(t) => st
                .droplets
                .values()
                .filter(|d| d.gpu == gpus && d.tags.iter().any(|x| x == t))
                .map(|d| d.id)
                .collect(),
        }
    };
    paginate_with(
        &headers,
        "/v2/droplets",
        &q,
        "droplets",
        ids.len(),
        |start, end| {
            let st = app.lock();
            Rendered(
                ids[start..end]
                    .iter()
                    .filter_map(|id| st.droplets.get(id).cloned())
                    .collect(),
            )
        },
    )
}

/// Droplets serialised as the API renders them.
struct Rendered(Vec<crate::state::SimDroplet>);

impl serde::Serialize for Rendered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|d| d.rendered()))
    }
}

fn parse_id(id: &str) -> Result<u64, Response> {
    id.parse().map_err(|_| not_found())
}

async fn get_droplet(AxState(app): AxState<App>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let st = app.lock();
    let d = st.droplets.get(&id).ok_or_else(not_found)?;
    ok(StatusCode::OK, json!({"droplet": d.to_json()}))
}

async fn droplet_firewalls(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let items: Vec<Value> = {
        let st = app.lock();
        let d = st.droplets.get(&id).ok_or_else(not_found)?;
        st.firewalls
            .iter()
            .filter(|f| f.droplet_ids.contains(&id) || f.tags.iter().any(|t| d.tags.contains(t)))
            .map(|f| json!(f))
            .collect()
    };
    paginate(
        &headers,
        &format!("/v2/droplets/{id}/firewalls"),
        &q,
        "firewalls",
        items,
    )
}

async fn droplet_actions(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let items: Vec<Value> = {
        let st = app.lock();
        st.droplets.get(&id).ok_or_else(not_found)?;
        st.actions
            .iter()
            .rev()
            .filter(|a| a.resource_id == Some(id))
            .map(|a| json!(a))
            .collect()
    };
    paginate(
        &headers,
        &format!("/v2/droplets/{id}/actions"),
        &q,
        "actions",
        items,
    )
}

async fn list_actions(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let items: Vec<Value> = app.lock().actions.iter().rev().map(|a| json!(a)).collect();
    paginate(&headers, "/v2/actions", &q, "actions", items)
}

async fn get_action(AxState(app): AxState<App>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let st = app.lock();
    let a = st
        .actions
        .iter()
        .find(|a| a.id == id)
        .ok_or_else(not_found)?;
    ok(StatusCode::OK, json!({"action": a}))
}

// ---- firewalls --------------------------------------------------------------------------

async fn list_firewalls(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    // Only the requested page is copied and rendered: listing 1,000 firewalls page by page
    // stays linear.
    let total = app.lock().firewalls.len();
    paginate_with(
        &headers,
        "/v2/firewalls",
        &q,
        "firewalls",
        total,
        |start, end| {
            let st = app.lock();
            let end = end.min(st.firewalls.len());
            st.firewalls[start.min(end)..end].to_vec()
        },
    )
}

async fn get_firewall(AxState(app): AxState<App>, Path(id): Path<String>) -> ApiResult {
    let st = app.lock();
    let f = st
        .firewalls
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(not_found)?;
    ok(StatusCode::OK, json!({"firewall": f}))
}

fn check_inbound(r: &InboundRule) -> Result<(), Response> {
    check_action(&r.action, "inbound")?;
    check_rule(r.protocol, &r.ports, &r.sources, "inbound", "sources")
}

/// `action` is `allow` (also when absent) or `deny`; anything else is refused (422).
fn check_action(action: &RuleAction, dir: &str) -> Result<(), Response> {
    match action {
        RuleAction::Allow | RuleAction::Deny => Ok(()),
        RuleAction::Other(a) => Err(unprocessable(format!(
            "{dir} rule: action must be \"allow\" or \"deny\", not {a:?}"
        ))),
    }
}

fn check_outbound(r: &OutboundRule) -> Result<(), Response> {
    check_action(&r.action, "outbound")?;
    check_rule(
        r.protocol,
        &r.ports,
        &r.destinations,
        "outbound",
        "destinations",
    )
}

fn check_rule(
    protocol: Protocol,
    ports: &str,
    targets: &Targets,
    dir: &str,
    what: &str,
) -> Result<(), Response> {
    if protocol != Protocol::Icmp {
        match PortRange::parse_rule(ports) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(bad_request(format!(
                    "{dir} {protocol} rule: ports is required"
                )))
            }
            Err(e) => {
                return Err(bad_request(format!(
                    "{dir} {protocol} rule: invalid ports: {e}"
                )))
            }
        }
    }
    if targets.is_empty() {
        return Err(bad_request(format!(
            "{dir} {protocol} rule: at least one of {what} is required"
        )));
    }
    for a in &targets.addresses {
        shared::net::Cidr::parse(a).map_err(|e| bad_request(format!("{dir} rule: {e}")))?;
    }
    Ok(())
}

/// The API stores and answers `"0"` as the ports of every ICMP rule.
fn normalize(fw: &mut Firewall) {
    for r in &mut fw.inbound_rules {
        if r.protocol == Protocol::Icmp {
            r.ports = "0".into();
        }
    }
    for r in &mut fw.outbound_rules {
        if r.protocol == Protocol::Icmp {
            r.ports = "0".into();
        }
    }
}

fn check_limits(fw: &Firewall) -> Result<(), Response> {
    if fw.droplet_ids.len() > MAX_DROPLETS_BY_ID {
        return Err(unprocessable(format!(
            "a firewall can be applied to at most {MAX_DROPLETS_BY_ID} Droplets by id (got {}); use tags",
            fw.droplet_ids.len()
        )));
    }
    if fw.tags.len() > MAX_TAGS {
        return Err(unprocessable(format!(
            "a firewall can have at most {MAX_TAGS} tags (got {})",
            fw.tags.len()
        )));
    }
    if fw.rule_count() > MAX_RULES {
        return Err(unprocessable(format!(
            "a firewall can have at most {MAX_RULES} rules, inbound plus outbound (got {})",
            fw.rule_count()
        )));
    }
    Ok(())
}

fn check_droplets_exist(st: &State, ids: &[u64]) -> Result<(), Response> {
    match ids.iter().find(|id| !st.droplets.contains_key(id)) {
        Some(id) => Err(unprocessable(format!("Droplet {id} does not exist"))),
        None => Ok(()),
    }
}

fn dedup<T: Ord + Clone>(v: &mut Vec<T>) {
    let mut seen = BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

fn validate_request(st: &State, req: &FirewallRequest) -> Result<(), Response> {
    if req.name.trim().is_empty() {
        return Err(bad_request("name is required"));
    }
    req.inbound_rules.iter().try_for_each(check_inbound)?;
    req.outbound_rules.iter().try_for_each(check_outbound)?;
    check_droplets_exist(st, &req.droplet_ids)?;
    if let Some(t) = req.tags.iter().find(|t| !valid_tag(t)) {
        return Err(bad_request(format!("invalid tag {t:?}")));
    }
    Ok(())
}

fn covered(st: &State, fw: &Firewall) -> Vec<u64> {
    st.droplets
        .values()
        .filter(|d| fw.droplet_ids.contains(&d.id) || fw.tags.iter().any(|t| d.tags.contains(t)))
        .map(|d| d.id)
        .collect()
}

async fn create_firewall(AxState(app): AxState<App>, body: Bytes) -> ApiResult {
    let req: FirewallRequest = json_body(&body)?;
    let mut st = app.lock();
    validate_request(&st, &req)?;
    let mut fw = Firewall {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        status: Some("succeeded".into()),
        created_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        inbound_rules: req.inbound_rules,
        outbound_rules: req.outbound_rules,
        droplet_ids: req.droplet_ids,
        tags: req.tags,
        pending_changes: vec![],
    };
    dedup(&mut fw.droplet_ids);
    dedup(&mut fw.tags);
    normalize(&mut fw);
    check_limits(&fw)?;
    st.tags.extend(fw.tags.iter().cloned());
    let mut shown = fw.clone();
    shown.status = Some("waiting".into());
    shown.pending_changes = covered(&st, &fw)
        .into_iter()
        .map(|id| PendingChange {
            droplet_id: Some(id),
            removing: Some(false),
            status: Some("waiting".into()),
        })
        .collect();
    st.firewalls.push(fw);
    if st.faults.create_commits_then_fails {
        st.faults.create_commits_then_fails = false;
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Unexpected server-side error",
        ));
    }
    ok(StatusCode::ACCEPTED, json!({"firewall": shown}))
}

async fn update_firewall(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: FirewallRequest = json_body(&body)?;
    let mut st = app.lock();
    if !st.firewalls.iter().any(|f| f.id == id) {
        return Err(not_found());
    }
    validate_request(&st, &req)?;
    let mut next = st
        .firewalls
        .iter()
        .find(|f| f.id == id)
        .cloned()
        .ok_or_else(not_found)?;
    next.name = req.name;
    next.inbound_rules = req.inbound_rules;
    next.outbound_rules = req.outbound_rules;
    next.droplet_ids = req.droplet_ids;
    next.tags = req.tags;
    dedup(&mut next.droplet_ids);
    dedup(&mut next.tags);
    normalize(&mut next);
    check_limits(&next)?;
    st.tags.extend(next.tags.iter().cloned());
    let fw = st.firewall_mut(&id).ok_or_else(not_found)?;
    let old = std::mem::replace(fw, next.clone());
    note_lost_denies(&mut st, &old, Some(&next));
    ok(StatusCode::OK, json!({"firewall": next}))
}

async fn delete_firewall(AxState(app): AxState<App>, Path(id): Path<String>) -> ApiResult {
    let mut st = app.lock();
    let Some(at) = st.firewalls.iter().position(|f| f.id == id) else {
        return Err(not_found());
    };
    let old = st.firewalls.remove(at);
    note_lost_denies(&mut st, &old, None);
    no_content()
}

#[derive(Deserialize)]
struct DropletIds {
    droplet_ids: Vec<u64>,
}

#[derive(Deserialize)]
struct Tags {
    tags: Vec<String>,
}

/// Applies `change` to a copy of the firewall, checks the limits, then stores it.
fn modify(
    app: &App,
    id: &str,
    change: impl FnOnce(&State, &mut Firewall) -> Result<(), Response>,
) -> ApiResult {
    let mut st = app.lock();
    let mut next = st
        .firewalls
        .iter()
        .find(|f| f.id == id)
        .cloned()
        .ok_or_else(not_found)?;
    change(&st, &mut next)?;
    normalize(&mut next);
    check_limits(&next)?;
    st.tags.extend(next.tags.iter().cloned());
    let old = st.firewall_mut(id).ok_or_else(not_found)?;
    let old = std::mem::replace(old, next.clone());
    note_lost_denies(&mut st, &old, Some(&next));
    no_content()
}

/// Records every deny rule of `old` that `new` (none: deleted) no longer has, so that tests
/// can check that no write ever removed or changed one.
fn note_lost_denies(st: &mut State, old: &Firewall, new: Option<&Firewall>) {
    let kept_in =
        |r: &InboundRule| new.is_some_and(|n| n.inbound_rules.iter().any(|x| same_inbound(x, r)));
    let kept_out = |r: &OutboundRule| {
        new.is_some_and(|n| n.outbound_rules.iter().any(|x| same_outbound(x, r)))
    };
    let lost_in = old
        .inbound_rules
        .iter()
        .filter(|r| r.action == RuleAction::Deny && !kept_in(r));
    let lost_out = old
        .outbound_rules
        .iter()
        .filter(|r| r.action == RuleAction::Deny && !kept_out(r));
    let lost: Vec<String> = lost_in
        .map(|r| format!("{} inbound {r}", old.id))
        .chain(lost_out.map(|r| format!("{} outbound {} {}", old.id, r.protocol, r.ports)))
        .collect();
    st.deny_rules_lost.extend(lost);
}

async fn fw_add_droplets(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: DropletIds = json_body(&body)?;
    modify(&app, &id, |st, fw| {
        check_droplets_exist(st, &req.droplet_ids)?;
        fw.droplet_ids.extend(req.droplet_ids);
        dedup(&mut fw.droplet_ids);
        Ok(())
    })
}

async fn fw_remove_droplets(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: DropletIds = json_body(&body)?;
    modify(&app, &id, |_, fw| {
        fw.droplet_ids.retain(|d| !req.droplet_ids.contains(d));
        Ok(())
    })
}

async fn fw_add_tags(AxState(app): AxState<App>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let req: Tags = json_body(&body)?;
    modify(&app, &id, |_, fw| {
        if let Some(t) = req.tags.iter().find(|t| !valid_tag(t)) {
            return Err(bad_request(format!("invalid tag {t:?}")));
        }
        fw.tags.extend(req.tags);
        dedup(&mut fw.tags);
        Ok(())
    })
}

async fn fw_remove_tags(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: Tags = json_body(&body)?;
    modify(&app, &id, |_, fw| {
        fw.tags.retain(|t| !req.tags.contains(t));
        Ok(())
    })
}

async fn fw_add_rules(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: FirewallRules = json_body(&body)?;
    req.inbound_rules.iter().try_for_each(check_inbound)?;
    req.outbound_rules.iter().try_for_each(check_outbound)?;
    modify(&app, &id, |_, fw| {
        fw.inbound_rules.extend(req.inbound_rules);
        fw.outbound_rules.extend(req.outbound_rules);
        Ok(())
    })
}

async fn fw_remove_rules(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: FirewallRules = json_body(&body)?;
    modify(&app, &id, |_, fw| {
        fw.inbound_rules
            .retain(|r| !req.inbound_rules.iter().any(|x| same_inbound(x, r)));
        fw.outbound_rules
            .retain(|r| !req.outbound_rules.iter().any(|x| same_outbound(x, r)));
        Ok(())
    })
}

fn norm_ports(p: &str) -> Option<PortRange> {
    PortRange::parse_rule(p).ok().flatten()
}

fn same_targets(a: &Targets, b: &Targets) -> bool {
    fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
        v.iter().cloned().collect()
    }
    set(&a.addresses) == set(&b.addresses)
        && set(&a.droplet_ids) == set(&b.droplet_ids)
        && set(&a.load_balancer_uids) == set(&b.load_balancer_uids)
        && set(&a.kubernetes_ids) == set(&b.kubernetes_ids)
        && set(&a.tags) == set(&b.tags)
}

fn same_ports(protocol: Protocol, a: &str, b: &str) -> bool {
    protocol == Protocol::Icmp || norm_ports(a) == norm_ports(b)
}

fn same_inbound(a: &InboundRule, b: &InboundRule) -> bool {
    a.action == b.action
        && a.protocol == b.protocol
        && same_ports(a.protocol, &a.ports, &b.ports)
        && same_targets(&a.sources, &b.sources)
}

fn same_outbound(a: &OutboundRule, b: &OutboundRule) -> bool {
    a.action == b.action
        && a.protocol == b.protocol
        && same_ports(a.protocol, &a.ports, &b.ports)
        && same_targets(&a.destinations, &b.destinations)
}

// ---- VPCs, keys, tags -------------------------------------------------------------------

async fn list_vpcs(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let items: Vec<Value> = app.lock().vpcs.iter().map(|v| json!(v)).collect();
    paginate(&headers, "/v2/vpcs", &q, "vpcs", items)
}

async fn get_vpc(AxState(app): AxState<App>, Path(id): Path<String>) -> ApiResult {
    let st = app.lock();
    let v = st.vpcs.iter().find(|v| v.id == id).ok_or_else(not_found)?;
    ok(StatusCode::OK, json!({"vpc": v}))
}

async fn vpc_members(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let items: Vec<Value> = {
        let st = app.lock();
        let vpc = st.vpcs.iter().find(|v| v.id == id).ok_or_else(not_found)?;
        st.droplets
            .values()
            .filter(|d| match &d.vpc_uuid {
                Some(v) => *v == vpc.id,
                None => vpc.default && vpc.region == d.region,
            })
            .map(|d| json!({"urn": format!("do:droplet:{}", d.id), "name": d.name, "created_at": d.created_at}))
            .collect()
    };
    paginate(
        &headers,
        &format!("/v2/vpcs/{id}/members"),
        &q,
        "members",
        items,
    )
}

async fn list_keys(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let items: Vec<Value> = app.lock().ssh_keys.iter().map(|k| json!(k)).collect();
    paginate(&headers, "/v2/account/keys", &q, "ssh_keys", items)
}

async fn list_tags(
    AxState(app): AxState<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let items: Vec<Value> = {
        let st = app.lock();
        st.tags.iter().map(|t| st.tag_json(t)).collect()
    };
    paginate(&headers, "/v2/tags", &q, "tags", items)
}

async fn get_tag(AxState(app): AxState<App>, Path(tag): Path<String>) -> ApiResult {
    let st = app.lock();
    if !st.tags.contains(&tag) {
        return Err(not_found());
    }
    ok(StatusCode::OK, json!({"tag": st.tag_json(&tag)}))
}

#[derive(Deserialize)]
struct NewTag {
    name: String,
}

async fn create_tag(AxState(app): AxState<App>, body: Bytes) -> ApiResult {
    let req: NewTag = json_body(&body)?;
    if !valid_tag(&req.name) {
        let msg = format!(
            "Error validating resource tag: \"tag-name {:?} contains invalid characters\"",
            req.name
        );
        return Err((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": msg, "messages": null, "root_causes": [msg]})),
        )
            .into_response());
    }
    let mut st = app.lock();
    st.tags.insert(req.name.clone());
    ok(StatusCode::CREATED, json!({"tag": st.tag_json(&req.name)}))
}

#[derive(Deserialize)]
struct Resources {
    resources: Vec<shared::digitalocean::TagResource>,
}

fn droplet_ids_of(req: &Resources) -> Result<Vec<u64>, Response> {
    req.resources
        .iter()
        .map(|r| {
            if r.resource_type != "droplet" {
                return Err(unprocessable(format!(
                    "resource type {:?} is not simulated",
                    r.resource_type
                )));
            }
            r.resource_id
                .parse::<u64>()
                .map_err(|_| unprocessable(format!("invalid Droplet id {:?}", r.resource_id)))
        })
        .collect()
}

async fn tag_resources(
    AxState(app): AxState<App>,
    Path(tag): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: Resources = json_body(&body)?;
    let ids = droplet_ids_of(&req)?;
    let mut st = app.lock();
    if !st.tags.contains(&tag) {
        return Err(not_found());
    }
    if let Some(id) = ids.iter().find(|id| !st.droplets.contains_key(id)) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Droplet {id} not found"),
        ));
    }
    for id in ids {
        if let Some(d) = st.droplets.get_mut(&id) {
            if !d.tags.contains(&tag) {
                d.tags.push(tag.clone());
            }
        }
    }
    no_content()
}

async fn untag_resources(
    AxState(app): AxState<App>,
    Path(tag): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: Resources = json_body(&body)?;
    let ids = droplet_ids_of(&req)?;
    let mut st = app.lock();
    if !st.tags.contains(&tag) {
        return Err(not_found());
    }
    for id in ids {
        if let Some(d) = st.droplets.get_mut(&id) {
            d.tags.retain(|t| *t != tag);
        }
    }
    no_content()
}

// ---- /_sim controls ---------------------------------------------------------------------

async fn sim_requests(AxState(app): AxState<App>) -> ApiResult {
    ok(StatusCode::OK, json!(app.lock().log))
}

async fn sim_clear_requests(AxState(app): AxState<App>) -> ApiResult {
    app.lock().log.clear();
    no_content()
}

async fn sim_get_faults(AxState(app): AxState<App>) -> ApiResult {
    ok(StatusCode::OK, json!(app.lock().faults))
}

async fn sim_put_faults(AxState(app): AxState<App>, body: Bytes) -> ApiResult {
    let f: Faults = json_body(&body)?;
    app.lock().faults = f.clone();
    ok(StatusCode::OK, json!(f))
}

async fn sim_expected(AxState(app): AxState<App>) -> ApiResult {
    ok(StatusCode::OK, json!(app.lock().expected))
}
