use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::budget::Ledger;
pub use super::budget::RateLimit;
use super::error::ApiError;
use super::models::*;

pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com";

/// The default cap on one answer's body: 8 MiB. A page of 200 Droplets is well under 1 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The default cap on one list: 1,000,000 items (5,000 pages of 200), far above any account's
/// Droplets or firewalls. A `meta.total` above it, or more pages than it allows, is an error.
pub const MAX_LIST_ITEMS: u64 = 1_000_000;

/// One request, for its errors.
#[derive(Clone, Copy)]
struct Req<'a> {
    method: &'a Method,
    path: &'a str,
}

impl Req<'_> {
    fn idempotent(&self) -> bool {
        *self.method != Method::POST
    }

    fn transport(&self, e: &reqwest::Error) -> ApiError {
        ApiError::Transport {
            method: self.method.to_string(),
            path: self.path.to_string(),
            message: error_chain(e),
        }
    }

    /// A 3xx that reqwest did not follow: it points off the API origin (or loops).
    fn redirect(&self, status: StatusCode, at: &Url, headers: &HeaderMap) -> ApiError {
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| {
                at.join(l)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| l.to_string())
            })
            .unwrap_or_else(|| "(no Location)".to_string());
        ApiError::Redirect {
            method: self.method.to_string(),
            path: self.path.to_string(),
            status: status.as_u16(),
            location,
        }
    }

    /// An error status with the API's error body (`id`, `message`, `request_id`).
    fn api_error(&self, status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> ApiError {
        let parsed: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
        let request_id = parsed.request_id.clone().or_else(|| {
            headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        ApiError::Api {
            method: self.method.to_string(),
            path: self.path.to_string(),
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
    }
}

/// What one try of a request came to.
enum Outcome {
    Done(StatusCode, Vec<u8>),
    Retry(ApiError, Duration),
    Fail(ApiError),
}

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
    /// Pages of one list fetched at once after the first [50]: 10,000 Droplets (50 pages of
    /// 200) are read in two round trips, the first page and then the rest. The count of
    /// requests, which the API's limits are about (250 a minute, 5,000 an hour), is the same
    /// whatever this is.
    pub page_concurrency: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Total time one request may spend waiting between retries.
    pub max_retry_time: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    /// Largest answer body read, in bytes ([`MAX_BODY_BYTES`]); past it the request fails.
    pub max_body_bytes: usize,
    /// Most items one list may announce or take ([`MAX_LIST_ITEMS`]); its pages are bounded
    /// by this over `per_page`.
    pub max_list_items: u64,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, token: Token) -> Self {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token,
            per_page: 200,
            page_concurrency: 50,
            max_attempts: 6,
            max_retry_time: Duration::from_secs(120),
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: MAX_BODY_BYTES,
            max_list_items: MAX_LIST_ITEMS,
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

/// Who may spend the incident-response reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// Percent of `ratelimit-limit` kept for incident response.
    pub percent: u8,
    /// This client is incident response's: it may spend the reserve.
    pub may_spend: bool,
}

impl Default for Reserve {
    fn default() -> Self {
        Reserve {
            percent: 20,
            may_spend: false,
        }
    }
}

/// The DigitalOcean API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    base: Url,
    requests: RequestCounter,
    rate: Arc<std::sync::Mutex<Ledger>>,
    reserve: Reserve,
}

/// One page of a list answer: its collection (under the list's key, which must be a JSON
/// array), the `links.pages.next` URL and `meta.total`.
struct Page<T> {
    items: Option<Vec<T>>,
    next: Option<String>,
    total: Option<u64>,
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

/// Decodes a list page, taking the collection only from `key` (`droplets`, `firewalls`, ...).
/// Other keys are skipped without being kept.
struct PageSeed<'k, T> {
    key: &'k str,
    item: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for PageSeed<'_, T> {
    type Value = Page<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for PageSeed<'_, T> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a list page: an object with a {:?} array", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<T>, A::Error> {
        let mut page = Page {
            items: None,
            next: None,
            total: None,
        };
        while let Some(k) = map.next_key::<String>()? {
            if k == self.key {
                page.items = Some(map.next_value()?);
            } else if k == "links" {
                let links: Option<Links> = map.next_value()?;
                page.next = links.and_then(|l| l.pages).and_then(|p| p.next);
            } else if k == "meta" {
                let meta: Option<Meta> = map.next_value()?;
                page.total = meta.and_then(|m| m.total);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(page)
    }
}

/// Every item of a list as read, and the total the API announced for it.
#[derive(Debug)]
pub struct Listed<T> {
    /// The items of every page, in order (duplicates across pages kept).
    pub items: Vec<T>,
    /// `meta.total` of the first page, if the API sent one.
    pub announced: Option<u64>,
    /// The list as requested, for messages: `GET /v2/droplets?type=gpus`.
    pub request: String,
}

impl<T> Listed<T> {
    /// Why the list is short: `GET /v2/droplets: read 78 items, the API announced 1000`,
    /// or `None` when the items read add up to `meta.total` (or no total was given).
    pub fn shortfall(&self) -> Option<String> {
        let announced = self.announced?;
        let read = self.items.len() as u64;
        (read != announced).then(|| {
            format!(
                "{}: read {read} items, the API announced {announced}",
                self.request
            )
        })
    }

    /// The items, or the shortfall as an error.
    pub fn complete(self) -> Result<Vec<T>, ApiError> {
        match self.shortfall() {
            Some(why) => Err(ApiError::Incomplete(why)),
            None => Ok(self.items),
        }
    }
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
        // Redirects are followed only on the API origin; any other stops, and `send` turns it
        // into an error naming where it pointed.
        let origin = base.origin();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.url().origin() != origin {
                attempt.stop()
            } else if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .redirect(redirects)
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
            rate: Arc::default(),
            reserve: Reserve::default(),
        })
    }

    /// This client (sharing its counters and what the API said of the budget) keeping
    /// `percent` of the hourly limit for incident response: a request it would send while
    /// `ratelimit-remaining` is at or below that fails with [`ApiError::Reserve`], unsent.
    pub fn keeping_reserve(&self, percent: u8) -> Client {
        Client {
            reserve: Reserve {
                percent,
                may_spend: false,
            },
            ..self.clone()
        }
    }

    /// This client, for incident response: it may spend the reserve.
    pub fn spending_reserve(&self) -> Client {
        Client {
            reserve: Reserve {
                may_spend: true,
                ..self.reserve
            },
            ..self.clone()
        }
    }

    /// What this client knows of the budget (a poisoned lock is taken over: the ledger is
    /// plain numbers, consistent after every step).
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.rate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The percent of the limit this client keeps (`None`: it may spend the reserve).
    fn reserve_percent(&self) -> Option<u8> {
        (!self.reserve.may_spend).then_some(self.reserve.percent)
    }

    /// The budget now: as the last `ratelimit-*` headers (or a seed) gave it, less the
    /// requests this client sent since (`None` before any).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.ledger().estimate()
    }

    /// [`Client::rate_limit`] when an answer to this client gave it (`None` when it knows
    /// only a seed, or nothing): what a run leaves for the next one.
    pub fn rate_limit_heard(&self) -> Option<RateLimit> {
        self.ledger().heard()
    }

    /// [`Client::rate_limit_heard`] with the unix seconds it is as of, once per answer: `None`
    /// when it was handed out already (so that a run keeps it once, however many of its
    /// steps offer to).
    pub fn rate_limit_to_keep(&self) -> Option<(RateLimit, u64)> {
        self.ledger().take_to_keep()
    }

    /// Unix seconds the known budget is as of (its answer, or the seed's look); `None`
    /// when no budget is known.
    pub fn rate_limit_at(&self) -> Option<u64> {
        self.ledger().at()
    }

    /// Starts from a budget another run saw at `seen_at` (unix seconds; `ratelimit-*` as it
    /// last came), so that this run's first requests are held to the reserve too, before
    /// any answer of its own. Used only when newer than what this client knows (a warm
    /// Lambda's client keeps the budget of its last invocation), when plausible
    /// ([`RateLimit::plausible`]), and not when its reset time has passed.
    pub fn seed_rate_limit(&self, seen: RateLimit, seen_at: u64) {
        self.ledger().seed(seen, seen_at, unix_now());
    }

    /// Whether `n` requests sent at once, before any of them answers, stay clear of the
    /// reserve as far as the budget is known: always when it is not known yet, its reset
    /// time has passed, or this client may spend the reserve.
    pub fn has_room_for(&self, n: u64) -> bool {
        self.ledger()
            .has_room_for(n, self.reserve_percent(), unix_now())
    }

    /// Settles an admitted request: its answer's `ratelimit-*` headers (`None`: no answer).
    fn observe_rate(&self, headers: Option<&HeaderMap>) {
        let mut ledger = self.ledger();
        let rate = headers.and_then(|h| {
            let known = ledger.estimate();
            Some(RateLimit {
                remaining: header_u64(h, "ratelimit-remaining")?,
                limit: header_u64(h, "ratelimit-limit")
                    .or(known.map(|k| k.limit))
                    .unwrap_or(5_000),
                reset: header_u64(h, "ratelimit-reset")
                    .or(known.map(|k| k.reset))
                    .unwrap_or(0),
            })
        });
        ledger.settle(rate, unix_now());
    }

    /// Admits one request, or [`ApiError::Reserve`] when this client keeps the reserve and
    /// the budget, less the requests already on their way, is at or below it (a budget
    /// whose reset time has passed is not held against a request).
    fn admit(&self, req: Req<'_>) -> Result<(), ApiError> {
        let now = unix_now();
        let Err(refusal) = self.ledger().admit(self.reserve_percent(), now) else {
            return Ok(());
        };
        Err(ApiError::Reserve {
            method: req.method.to_string(),
            path: req.path.to_string(),
            remaining: refusal.remaining,
            limit: refusal.limit,
            reserve: refusal.reserve,
            reset_in_secs: refusal.reset.saturating_sub(now),
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
                    let now = unix_now();
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
        capped.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0))
    }

    /// Sends one request with retries; returns the successful status and body.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let req = Req {
            method: &method,
            path: url.path(),
        };
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.admit(req)?;
            let (err, wait) = match self.attempt(req, &url, body.as_deref(), attempt).await {
                Outcome::Done(status, bytes) => return Ok((status, bytes)),
                Outcome::Fail(err) => return Err(err),
                Outcome::Retry(err, wait) => (err, wait),
            };
            if attempt >= self.cfg.max_attempts
                || started.elapsed() + wait > self.cfg.max_retry_time
            {
                return Err(err);
            }
            tracing::debug!(method = %method, path = %req.path, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One try of a request: what came back, and whether to try again.
    async fn attempt(&self, req: Req<'_>, url: &Url, body: Option<&[u8]>, n: u32) -> Outcome {
        let mut builder = self
            .http
            .request(req.method.clone(), url.clone())
            .bearer_auth(self.cfg.token.expose())
            .header("accept", "application/json");
        if let Some(b) = body {
            builder = builder
                .header("content-type", "application/json")
                .body(b.to_vec());
        }
        self.requests.bump();
        match builder.send().await {
            Ok(resp) => self.answer(req, resp, n).await,
            Err(e) => {
                self.observe_rate(None);
                // A connection that never opened was never seen by the API: safe to retry
                // any method. Other failures are retried only for idempotent methods.
                let retryable =
                    e.is_connect() || (req.idempotent() && (e.is_timeout() || e.is_request()));
                let err = req.transport(&e);
                if retryable {
                    Outcome::Retry(err, self.backoff(n, None, None))
                } else {
                    Outcome::Fail(err)
                }
            }
        }
    }

    /// Reads an answer: its body (capped) on success; a redirect (reqwest followed only those
    /// on the API origin) is an error naming where it pointed; other statuses become errors.
    async fn answer(&self, req: Req<'_>, resp: reqwest::Response, n: u32) -> Outcome {
        let status = resp.status();
        self.observe_rate(Some(resp.headers()));
        if status.is_redirection() {
            return Outcome::Fail(req.redirect(status, resp.url(), resp.headers()));
        }
        let headers = resp.headers().clone();
        let bytes = self.read_body(req, resp).await;
        if status.is_success() {
            return match bytes {
                Ok(b) => Outcome::Done(status, b),
                Err(e) => Outcome::Fail(e),
            };
        }
        let bytes = bytes.unwrap_or_default();
        let retryable = status == StatusCode::TOO_MANY_REQUESTS
            || (req.idempotent()
                && status.is_server_error()
                && status != StatusCode::NOT_IMPLEMENTED);
        let wait = self.backoff(n, Some(status), Some(&headers));
        let err = if status == StatusCode::TOO_MANY_REQUESTS {
            ApiError::RateLimited {
                method: req.method.to_string(),
                path: req.path.to_string(),
                wait,
                attempts: n,
            }
        } else {
            req.api_error(status, &headers, &bytes)
        };
        if retryable {
            Outcome::Retry(err, wait)
        } else {
            Outcome::Fail(err)
        }
    }

    /// The body, read as a stream and refused as soon as it passes `max_body_bytes`.
    async fn read_body(
        &self,
        req: Req<'_>,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, ApiError> {
        let limit = self.cfg.max_body_bytes;
        let too_large = || ApiError::TooLarge {
            method: req.method.to_string(),
            path: req.path.to_string(),
            limit,
        };
        let announced = resp.content_length().unwrap_or(0);
        if announced > limit as u64 {
            return Err(too_large());
        }
        let mut buf = Vec::with_capacity(announced as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| req.transport(&e))? {
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
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

    /// GETs one list page at `url` and decodes it; the page must carry a `key` array.
    async fn get_page<T: DeserializeOwned>(
        &self,
        url: Url,
        key: &str,
    ) -> Result<Page<T>, ApiError> {
        let path = url.path().to_string();
        let decode = |message: String| ApiError::Decode {
            method: "GET".into(),
            path: path.clone(),
            message,
        };
        let (_, bytes) = self.send(Method::GET, url, None).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let seed = PageSeed {
            key,
            item: PhantomData,
        };
        let page: Page<T> = seed
            .deserialize(&mut de)
            .map_err(|e| decode(e.to_string()))?;
        de.end().map_err(|e| decode(e.to_string()))?;
        if page.items.is_none() {
            return Err(decode(format!("the answer has no {key:?} array")));
        }
        Ok(page)
    }

    /// Page `page` of the list at `url` (its other query parameters kept).
    async fn page<T: DeserializeOwned>(
        &self,
        mut url: Url,
        key: &str,
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
        self.get_page(url, key).await
    }

    /// A `links.pages.next` URL. An absolute URL must be on the API origin (the token and the
    /// trust never go elsewhere); a relative one is taken against it.
    fn next_url(&self, request: &str, next: &str) -> Result<Url, ApiError> {
        let request = request.trim_start_matches("GET ");
        let url = self.base.join(next).map_err(|e| ApiError::Decode {
            method: "GET".into(),
            path: request.into(),
            message: format!("links.pages.next {next:?} is not a URL: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(ApiError::ForeignLink {
                method: "GET".into(),
                path: request.into(),
                url: url.to_string(),
                origin: self.base.origin().ascii_serialization(),
            });
        }
        Ok(url)
    }

    /// The most pages a list may take: `max_list_items` over `per_page`.
    fn max_pages(&self) -> u64 {
        self.cfg
            .max_list_items
            .div_ceil(u64::from(self.cfg.per_page.max(1)))
            .max(1)
    }

    fn too_long(&self, request: &str, message: String) -> ApiError {
        ApiError::ListTooLong {
            method: "GET".into(),
            path: request.trim_start_matches("GET ").into(),
            message,
        }
    }

    /// Every item of a list whose items must add up to `meta.total`
    /// ([`ApiError::Incomplete`] otherwise).
    pub async fn list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ApiError> {
        self.read_list(path, key, query).await?.complete()
    }

    /// Every item of a list endpoint, its collection under `key`: the first page, then the
    /// pages `meta.total` announces (concurrently, decoded one at a time), then any `next`
    /// links. Errors past [`ClientConfig::max_list_items`] or its pages.
    pub async fn read_list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<Listed<T>, ApiError> {
        self.read_list_expecting(path, key, query, None).await
    }

    /// [`Client::read_list`] of a list that held `expected` items when last read: the pages
    /// those fill are asked for at once with the first (one round trip, not two: the first
    /// page's `meta.total` is not waited for). Pages past the end come back empty; pages a
    /// grown list added are read after, as `meta.total` announces them. The items are the
    /// same either way; only the requests' timing (and, for a list that shrank, a few empty
    /// pages) differ. An `expected` over [`ClientConfig::max_list_items`] is not used.
    pub async fn read_list_expecting<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
        expected: Option<u64>,
    ) -> Result<Listed<T>, ApiError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = match url.query() {
            Some(q) => format!("GET {}?{q}", url.path()),
            None => format!("GET {}", url.path()),
        };
        let per_page = u64::from(self.cfg.per_page.max(1));
        let hinted = expected
            .filter(|n| *n <= self.cfg.max_list_items)
            .map_or(1, |n| n.div_ceil(per_page).max(1));
        let (first, early, early_next) = self.first_pages::<T>(&url, key, hinted).await?;
        let mut listed = Listed {
            items: first.items.unwrap_or_default(),
            announced: first.total,
            request,
        };
        listed.items.extend(early);
        let mut next = if hinted > 1 { early_next } else { first.next };
        let mut pages = hinted;
        if let Some(total) = first.total {
            if total > self.cfg.max_list_items {
                let msg = format!(
                    "the API announced {total} items, more than the {} this tool will read",
                    self.cfg.max_list_items
                );
                return Err(self.too_long(&listed.request, msg));
            }
            let announced = total.div_ceil(per_page).max(1);
            if announced > hinted {
                next = self
                    .rest_pages(&url, key, (hinted + 1..=announced, None), &mut listed.items)
                    .await?;
                pages = announced;
            }
        }
        self.follow_next(next, key, pages, &mut listed).await?;
        Ok(listed)
    }

    /// Page 1 and, at the same time, pages 2 to `hinted`: page 1, the items of the others in
    /// order, and the last one's `next` link. Once page 1 says how many pages there are,
    /// hinted pages past them not yet asked for are skipped: sizes larger than the list cost
    /// at most `page_concurrency` empty pages.
    async fn first_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &Url,
        key: &str,
        hinted: u64,
    ) -> Result<(Page<T>, Vec<T>, Option<String>), ApiError> {
        let per_page = u64::from(self.cfg.per_page.max(1));
        let last = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let first = async {
            let first = self.page::<T>(url.clone(), key, 1).await;
            if let Ok(Page { total: Some(t), .. }) = &first {
                let pages = t.div_ceil(per_page).max(1);
                last.store(pages, std::sync::atomic::Ordering::Relaxed);
            }
            first
        };
        let mut early = Vec::new();
        let (first, early_next) = tokio::join!(first, async {
            match hinted {
                1 => Ok(None),
                _ => {
                    let to = (2..=hinted, Some(last.clone()));
                    self.rest_pages(url, key, to, &mut early).await
                }
            }
        });
        Ok((first?, early, early_next?))
    }

    /// The pages `pages` (from 2 on), fetched `page_concurrency` at a time and added in
    /// order; returns the last page's `next` link (the list grew while it was read). A page
    /// past `last` (when given and known by the time its turn comes) is not asked for.
    async fn rest_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &Url,
        key: &str,
        (pages, last): (
            std::ops::RangeInclusive<u64>,
            Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
        ),
        items: &mut Vec<T>,
    ) -> Result<Option<String>, ApiError> {
        // Each page is fetched and decoded on a task of its own: decoding 50 pages of 200
        // Droplets is spread over the runtime's threads instead of one.
        let mut rest = stream::iter(pages)
            .map(|p| {
                let (client, url, key) = (self.clone(), url.clone(), key.to_string());
                let path = url.path().to_string();
                let last = last.clone();
                async move {
                    if last.is_some_and(|l| p > l.load(std::sync::atomic::Ordering::Relaxed)) {
                        return Ok(Page {
                            items: None,
                            next: None,
                            total: None,
                        });
                    }
                    tokio::spawn(async move { client.page::<T>(url, &key, p).await })
                        .await
                        .map_err(|e| ApiError::Transport {
                            method: "GET".into(),
                            path,
                            message: format!("page {p}: the task reading it failed: {e}"),
                        })?
                }
            })
            .buffered(self.cfg.page_concurrency.max(1));
        let mut next = None;
        while let Some(p) = rest.try_next().await? {
            items.extend(p.items.unwrap_or_default());
            next = p.next;
        }
        Ok(next)
    }

    /// Follows `next` links from page `pages`, up to [`Client::max_pages`] in all.
    async fn follow_next<T: DeserializeOwned>(
        &self,
        mut next: Option<String>,
        key: &str,
        mut pages: u64,
        listed: &mut Listed<T>,
    ) -> Result<(), ApiError> {
        while let Some(n) = next.take() {
            if pages >= self.max_pages() {
                let msg = format!(
                    "the list goes on past {} pages of {} ({} items), more than this tool will read",
                    self.max_pages(),
                    self.cfg.per_page,
                    self.cfg.max_list_items
                );
                return Err(self.too_long(&listed.request, msg));
            }
            let url = self.next_url(&listed.request, &n)?;
            let p: Page<T> = self.get_page(url, key).await?;
            pages += 1;
            let items = p.items.unwrap_or_default();
            if items.is_empty() {
                break;
            }
            listed.items.extend(items);
            next = p.next;
        }
        Ok(())
    }

    // ---- reads -------------------------------------------------------------------------

    /// Regular (non-GPU) Droplets: the API's default list.
    pub async fn list_droplets(&self) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", "droplets", &[]).await
    }

    /// GPU Droplets, which the default list hides.
    pub async fn list_gpu_droplets(&self) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", "droplets", &[("type", "gpus")])
            .await
    }

    pub async fn list_droplets_by_tag(&self, tag: &str) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", "droplets", &[("tag_name", tag)])
            .await
    }

    pub async fn get_droplet(&self, id: u64) -> Result<Droplet, ApiError> {
        self.get_one(&format!("/v2/droplets/{id}"), "droplet").await
    }

    pub async fn droplet_firewalls(&self, id: u64) -> Result<Vec<Firewall>, ApiError> {
        self.list(&format!("/v2/droplets/{id}/firewalls"), "firewalls", &[])
            .await
    }

    pub async fn list_firewalls(&self) -> Result<Vec<Firewall>, ApiError> {
        self.list("/v2/firewalls", "firewalls", &[]).await
    }

    pub async fn get_firewall(&self, id: &str) -> Result<Firewall, ApiError> {
        self.get_one(&format!("/v2/firewalls/{id}"), "firewall")
            .await
    }

    pub async fn list_vpcs(&self) -> Result<Vec<Vpc>, ApiError> {
        self.list("/v2/vpcs", "vpcs", &[]).await
    }

    pub async fn list_ssh_keys(&self) -> Result<Vec<SshKey>, ApiError> {
        self.list("/v2/account/keys", "ssh_keys", &[]).await
    }

    pub async fn list_tags(&self) -> Result<Vec<Tag>, ApiError> {
        self.list("/v2/tags", "tags", &[]).await
    }

    /// One page of the account's actions, newest first, and whether more pages follow.
    pub async fn actions_page(&self, page: u64) -> Result<(Vec<Action>, bool), ApiError> {
        let url = self.url("/v2/actions")?;
        let p: Page<Action> = self.page(url, "actions", page).await?;
        Ok((p.items.unwrap_or_default(), p.next.is_some()))
    }

    /// Members of a VPC (`urn` like `do:droplet:123`).
    pub async fn vpc_members(&self, vpc_id: &str) -> Result<Vec<VpcMember>, ApiError> {
        self.list(
            &format!("/v2/vpcs/{}/members", encode_segment(vpc_id)),
            "members",
            &[],
        )
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

/// Percent-encodes a path segment (tags may hold `:`), leaving RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - _ . ~`) as they are.
pub(crate) fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::aws::UNRESERVED).to_string()
}
