use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::models::*;

pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com";

/// An API token. Its `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// `DIGITALOCEAN_TOKEN`, else `DIGITALOCEAN_ACCESS_TOKEN`.
    pub fn from_env() -> Result<Self, ApiError> {
        for name in ["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"] {
            if let Ok(v) = std::env::var(name) {
                let v = v.trim().to_string();
                if !v.is_empty() {
                    return Ok(Token(v));
                }
            }
        }
        Err(ApiError::Config(
            "no API token: set DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN)".into(),
        ))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How the client talks to the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub token: Token,
    /// Items per list page (the API allows up to 200).
    pub per_page: u32,
    /// Pages fetched at once after the first.
    pub page_concurrency: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Total time one request may spend waiting between retries.
    pub max_retry_time: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, token: Token) -> Self {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token,
            per_page: 200,
            page_concurrency: 8,
            max_attempts: 6,
            max_retry_time: Duration::from_secs(120),
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// `DIGITALOCEAN_API_URL` (default the public API) and the token from the environment.
    pub fn from_env() -> Result<Self, ApiError> {
        let url = std::env::var("DIGITALOCEAN_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        Ok(ClientConfig::new(url, Token::from_env()?))
    }
}

/// Counts the HTTP requests a client sent (retries included). Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The DigitalOcean API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    base: Url,
    requests: RequestCounter,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(
        default = "Vec::new",
        alias = "droplets",
        alias = "firewalls",
        alias = "vpcs",
        alias = "ssh_keys",
        alias = "tags",
        alias = "actions",
        alias = "members"
    )]
    items: Vec<T>,
    #[serde(default)]
    links: Option<Links>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    pages: Option<PageLinks>,
}

#[derive(Deserialize, Default)]
struct PageLinks {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    total: Option<u64>,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_txt = s.to_string();
        if !msg.contains(&s_txt) {
            msg.push_str(": ");
            msg.push_str(&s_txt);
        }
        src = s.source();
    }
    msg
}

fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() % 10_000) as f64 / 10_000.0
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self, ApiError> {
        let base = Url::parse(&cfg.base_url).map_err(|e| {
            ApiError::Config(format!(
                "DIGITALOCEAN_API_URL {:?} is not a URL: {e}",
                cfg.base_url
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ApiError::Config(format!(
                "DIGITALOCEAN_API_URL {:?} must be http or https",
                cfg.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("dropletguard/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ApiError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Client {
            http,
            cfg: Arc::new(cfg),
            base,
            requests: RequestCounter::default(),
        })
    }

    pub fn from_env() -> Result<Self, ApiError> {
        Client::new(ClientConfig::from_env()?)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Requests sent so far by this client and its clones, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    pub fn counter(&self) -> RequestCounter {
        self.requests.clone()
    }

    fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base
            .join(path)
            .map_err(|e| ApiError::Config(format!("bad request path {path:?}: {e}")))
    }

    /// How long to wait before the next attempt.
    fn backoff(
        &self,
        attempt: u32,
        status: Option<StatusCode>,
        headers: Option<&HeaderMap>,
    ) -> Duration {
        if let Some(h) = headers {
            if let Some(secs) = header_u64(h, "retry-after") {
                return Duration::from_secs(secs);
            }
            if status == Some(StatusCode::TOO_MANY_REQUESTS) {
                if let Some(reset) = header_u64(h, "ratelimit-reset") {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    if reset > now {
                        return Duration::from_secs(reset - now);
                    }
                }
            }
        }
        let exp = self
            .cfg
            .base_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let capped = exp.min(self.cfg.max_backoff);
        // Full jitter between half and all of the exponential step.
        capped.mul_f64(0.5 + random_fraction() / 2.0)
    }

    /// Sends one request with retries; returns the successful status and body.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let path = url.path().to_string();
        let idempotent = method != Method::POST;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.cfg.token.expose())
                .header("accept", "application/json");
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            self.requests.bump();
            let outcome = req.send().await;
            let (retry, wait, err) = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let bytes = resp.bytes().await.map_err(|e| ApiError::Transport {
                        method: method.to_string(),
                        path: path.clone(),
                        message: error_chain(&e),
                    });
                    if status.is_success() {
                        return Ok((status, bytes?.to_vec()));
                    }
                    let bytes = bytes.unwrap_or_default();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (idempotent
                            && status.is_server_error()
                            && status != StatusCode::NOT_IMPLEMENTED);
                    let wait = self.backoff(attempt, Some(status), Some(&headers));
                    let err = if status == StatusCode::TOO_MANY_REQUESTS {
                        ApiError::RateLimited {
                            method: method.to_string(),
                            path: path.clone(),
                            wait,
                            attempts: attempt,
                        }
                    } else {
                        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
                        let request_id = parsed.request_id.clone().or_else(|| {
                            headers
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        });
                        ApiError::Api {
                            method: method.to_string(),
                            path: path.clone(),
                            status: status.as_u16(),
                            id: if parsed.id.is_empty() {
                                status.as_str().to_string()
                            } else {
                                parsed.id
                            },
                            message: if parsed.message.is_empty() {
                                status.canonical_reason().unwrap_or("error").to_string()
                            } else {
                                parsed.message
                            },
                            request_id,
                        }
                    };
                    (retryable, wait, err)
                }
                Err(e) => {
                    // A connection that never opened was never seen by the API: safe to retry
                    // any method. Other failures are retried only for idempotent methods.
                    let retryable =
                        e.is_connect() || (idempotent && (e.is_timeout() || e.is_request()));
                    let err = ApiError::Transport {
                        method: method.to_string(),
                        path: path.clone(),
                        message: error_chain(&e),
                    };
                    (retryable, self.backoff(attempt, None, None), err)
                }
            };
            if !retry
                || attempt >= self.cfg.max_attempts
                || started.elapsed() + wait > self.cfg.max_retry_time
            {
                return Err(err);
            }
            tracing::debug!(method = %method, path = %path, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<T, ApiError> {
        let path = url.path().to_string();
        let (_, bytes) = self.send(method.clone(), url, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            method: method.to_string(),
            path,
            message: e.to_string(),
        })
    }

    fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(body)
            .map_err(|e| ApiError::Config(format!("cannot encode request body: {e}")))
    }

    /// GET a single object at `path` and take the value under `key`.
    async fn get_one<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T, ApiError> {
        let url = self.url(path)?;
        let mut v: serde_json::Value = self.request_json(Method::GET, url, None).await?;
        let inner =
            v.get_mut(key)
                .map(serde_json::Value::take)
                .ok_or_else(|| ApiError::Decode {
                    method: "GET".into(),
                    path: path.into(),
                    message: format!("no `{key}` in the response"),
                })?;
        serde_json::from_value(inner).map_err(|e| ApiError::Decode {
            method: "GET".into(),
            path: path.into(),
            message: e.to_string(),
        })
    }

    async fn page<T: DeserializeOwned>(
        &self,
        mut url: Url,
        page: u64,
    ) -> Result<Page<T>, ApiError> {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("per_page", &self.cfg.per_page.to_string())
            .append_pair("page", &page.to_string());
        self.request_json(Method::GET, url, None).await
    }

    /// A `links.pages.next` URL, kept on our own API origin (the token never goes elsewhere).
    fn next_url(&self, next: &str) -> Result<Url, ApiError> {
        let parsed = Url::parse(next).or_else(|_| self.url(next))?;
        let mut url = self.base.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        let _ = parsed; // origin deliberately ignored
        Ok(url)
    }

    /// Every item of a list endpoint: the first page, then the rest concurrently.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ApiError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let first: Page<T> = self.page(url.clone(), 1).await?;
        let per_page = u64::from(self.cfg.per_page.max(1));
        let mut items = first.items;
        let mut next = first.links.and_then(|l| l.pages).and_then(|p| p.next);
        let mut page_no = 1;
        if let Some(total) = first.meta.and_then(|m| m.total) {
            let pages = total.div_ceil(per_page).max(1);
            if pages > 1 {
                let rest: Vec<Page<T>> = stream::iter(2..=pages)
                    .map(|p| self.page::<T>(url.clone(), p))
                    .buffered(self.cfg.page_concurrency.max(1))
                    .try_collect()
                    .await?;
                next = None;
                for p in rest {
                    items.extend(p.items);
                    next = p.links.and_then(|l| l.pages).and_then(|p| p.next);
                }
                page_no = pages;
            }
        }
        // The list grew while we read it (or the API gave no total): follow `next` links.
        while let Some(n) = next.take() {
            page_no += 1;
            if page_no > 100_000 {
                break;
            }
            let p: Page<T> = self
                .request_json(Method::GET, self.next_url(&n)?, None)
                .await?;
            if p.items.is_empty() {
                break;
            }
            items.extend(p.items);
            next = p.links.and_then(|l| l.pages).and_then(|p| p.next);
        }
        Ok(items)
    }

    // ---- reads -------------------------------------------------------------------------

    /// Regular (non-GPU) Droplets: the API's default list.
    pub async fn list_droplets(&self) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", &[]).await
    }

    /// GPU Droplets, which the default list hides.
    pub async fn list_gpu_droplets(&self) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", &[("type", "gpus")]).await
    }

    pub async fn list_droplets_by_tag(&self, tag: &str) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", &[("tag_name", tag)]).await
    }

    pub async fn get_droplet(&self, id: u64) -> Result<Droplet, ApiError> {
        self.get_one(&format!("/v2/droplets/{id}"), "droplet").await
    }

    pub async fn droplet_firewalls(&self, id: u64) -> Result<Vec<Firewall>, ApiError> {
        self.list(&format!("/v2/droplets/{id}/firewalls"), &[])
            .await
    }

    pub async fn list_firewalls(&self) -> Result<Vec<Firewall>, ApiError> {
        self.list("/v2/firewalls", &[]).await
    }

    pub async fn get_firewall(&self, id: &str) -> Result<Firewall, ApiError> {
        self.get_one(&format!("/v2/firewalls/{id}"), "firewall")
            .await
    }

    pub async fn list_vpcs(&self) -> Result<Vec<Vpc>, ApiError> {
        self.list("/v2/vpcs", &[]).await
    }

    pub async fn list_ssh_keys(&self) -> Result<Vec<SshKey>, ApiError> {
        self.list("/v2/account/keys", &[]).await
    }

    pub async fn list_tags(&self) -> Result<Vec<Tag>, ApiError> {
        self.list("/v2/tags", &[]).await
    }

    /// One page of the account's actions, newest first, and whether more pages follow.
    pub async fn actions_page(&self, page: u64) -> Result<(Vec<Action>, bool), ApiError> {
        let url = self.url("/v2/actions")?;
        let p: Page<Action> = self.page(url, page).await?;
        let more = p.links.and_then(|l| l.pages).and_then(|p| p.next).is_some();
        Ok((p.items, more))
    }

    /// Members of a VPC (`urn` like `do:droplet:123`).
    pub async fn vpc_members(&self, vpc_id: &str) -> Result<Vec<VpcMember>, ApiError> {
        self.list(&format!("/v2/vpcs/{}/members", encode_segment(vpc_id)), &[])
            .await
    }

    // ---- writes ------------------------------------------------------------------------

    pub async fn create_firewall(&self, req: &FirewallRequest) -> Result<Firewall, ApiError> {
        let url = self.url("/v2/firewalls")?;
        let mut v: serde_json::Value = self
            .request_json(Method::POST, url, Some(Self::encode(req)?))
            .await?;
        serde_json::from_value(v["firewall"].take()).map_err(|e| ApiError::Decode {
            method: "POST".into(),
            path: "/v2/firewalls".into(),
            message: e.to_string(),
        })
    }

    pub async fn delete_firewall(&self, id: &str) -> Result<(), ApiError> {
        let url = self.url(&format!("/v2/firewalls/{id}"))?;
        self.send(Method::DELETE, url, None).await.map(|_| ())
    }

    async fn write(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(), ApiError> {
        let url = self.url(path)?;
        self.send(method, url, Some(Self::encode(body)?))
            .await
            .map(|_| ())
    }

    pub async fn add_droplets_to_firewall(
        &self,
        id: &str,
        droplet_ids: &[u64],
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "droplet_ids": droplet_ids });
        self.write(Method::POST, &format!("/v2/firewalls/{id}/droplets"), &body)
            .await
    }

    pub async fn remove_droplets_from_firewall(
        &self,
        id: &str,
        droplet_ids: &[u64],
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "droplet_ids": droplet_ids });
        self.write(
            Method::DELETE,
            &format!("/v2/firewalls/{id}/droplets"),
            &body,
        )
        .await
    }

    pub async fn add_tags_to_firewall(&self, id: &str, tags: &[String]) -> Result<(), ApiError> {
        let body = serde_json::json!({ "tags": tags });
        self.write(Method::POST, &format!("/v2/firewalls/{id}/tags"), &body)
            .await
    }

    pub async fn remove_tags_from_firewall(
        &self,
        id: &str,
        tags: &[String],
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "tags": tags });
        self.write(Method::DELETE, &format!("/v2/firewalls/{id}/tags"), &body)
            .await
    }

    pub async fn add_firewall_rules(
        &self,
        id: &str,
        rules: &FirewallRules,
    ) -> Result<(), ApiError> {
        self.write(Method::POST, &format!("/v2/firewalls/{id}/rules"), rules)
            .await
    }

    pub async fn remove_firewall_rules(
        &self,
        id: &str,
        rules: &FirewallRules,
    ) -> Result<(), ApiError> {
        self.write(Method::DELETE, &format!("/v2/firewalls/{id}/rules"), rules)
            .await
    }

    pub async fn create_tag(&self, name: &str) -> Result<(), ApiError> {
        self.write(
            Method::POST,
            "/v2/tags",
            &serde_json::json!({ "name": name }),
        )
        .await
    }

    pub async fn tag_droplets(&self, tag: &str, droplet_ids: &[u64]) -> Result<(), ApiError> {
        let body = Self::tag_body(droplet_ids);
        self.write(
            Method::POST,
            &format!("/v2/tags/{}/resources", encode_segment(tag)),
            &body,
        )
        .await
    }

    pub async fn untag_droplets(&self, tag: &str, droplet_ids: &[u64]) -> Result<(), ApiError> {
        let body = Self::tag_body(droplet_ids);
        self.write(
            Method::DELETE,
            &format!("/v2/tags/{}/resources", encode_segment(tag)),
            &body,
        )
        .await
    }

    fn tag_body(droplet_ids: &[u64]) -> serde_json::Value {
        let resources: Vec<TagResource> = droplet_ids
            .iter()
            .map(|id| TagResource {
                resource_id: id.to_string(),
                resource_type: "droplet".into(),
            })
            .collect();
        serde_json::json!({ "resources": resources })
    }
}

/// Percent-encodes a path segment (tags may hold `:`), leaving unreserved characters.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
