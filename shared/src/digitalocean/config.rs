//! How a [`Client`](super::Client) is set up: the token, the configuration, the request
//! counter shared by clones, and the reserve kept for incident response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::error::ApiError;

pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com";

/// The default cap on one answer's body: 8 MiB. A page of 200 Droplets is well under 1 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The default cap on one list: 1,000,000 items (5,000 pages of 200), far above any account's
/// Droplets or firewalls. A `meta.total` above it, or more pages than it allows, is an error.
pub const MAX_LIST_ITEMS: u64 = 1_000_000;

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
    pub(super) fn bump(&self) {
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
