//! The client: one HTTP transport with retries and backoff, the rate-limit admission that
//! keeps the reserve, and the request counter. Paging is in `paging`, each resource's
//! endpoints in a file of their own.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::budget::{Ledger, RateLimit};
use super::config::*;
use super::error::ApiError;
use super::models::*;

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

/// The DigitalOcean API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    pub(super) cfg: Arc<ClientConfig>,
    pub(super) base: Url,
    requests: RequestCounter,
    rate: Arc<std::sync::Mutex<Ledger>>,
    reserve: Reserve,
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

    pub(super) fn url(&self, path: &str) -> Result<Url, ApiError> {
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
    pub(super) async fn send(
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

    pub(super) async fn request_json<T: DeserializeOwned>(
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

    pub(super) fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(body)
            .map_err(|e| ApiError::Config(format!("cannot encode request body: {e}")))
    }
}

/// Percent-encodes a path segment (tags may hold `:`), leaving RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - _ . ~`) as they are.
pub(crate) fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::aws::UNRESERVED).to_string()
}
