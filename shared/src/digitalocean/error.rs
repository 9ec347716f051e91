use std::time::Duration;

/// What went wrong talking to the DigitalOcean API. Never carries the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The API kept answering 429 and the retry budget ran out.
    #[error("{method} {path}: rate limited by the API after {attempts} attempts (next try allowed in {}s)", wait.as_secs())]
    RateLimited {
        method: String,
        path: String,
        wait: Duration,
        attempts: u32,
    },
    /// The API answered with an error status and body.
    #[error("{method} {path}: HTTP {status} {id}: {message}{}", request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Api {
        method: String,
        path: String,
        status: u16,
        id: String,
        message: String,
        request_id: Option<String>,
    },
    /// The request could not be sent or its answer not read.
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// The answer was not the JSON the spec describes.
    #[error("{method} {path}: could not decode the response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
    /// The API redirected to another origin (scheme, host, port). The answer is not read and
    /// the redirect is not followed: answers come only from the configured API origin.
    #[error(
        "{method} {path}: the API redirected ({status}) to {location}, which is not the API origin"
    )]
    Redirect {
        method: String,
        path: String,
        status: u16,
        location: String,
    },
    /// An absolute URL the API handed back (a `links.pages` link) points at another origin.
    #[error("{method} {path}: the API sent a link to {url}, which is not the API origin {origin}")]
    ForeignLink {
        method: String,
        path: String,
        url: String,
        origin: String,
    },
    /// An answer body passed the size cap ([`crate::digitalocean::MAX_BODY_BYTES`] by default).
    #[error("{method} {path}: the answer is larger than {} MiB; refusing to read it", limit / (1024 * 1024))]
    TooLarge {
        method: String,
        path: String,
        limit: usize,
    },
    /// A list announced, or took, more than the client will read
    /// ([`crate::digitalocean::MAX_LIST_ITEMS`] items by default).
    #[error("{method} {path}: {message}")]
    ListTooLong {
        method: String,
        path: String,
        message: String,
    },
    /// The items read do not add up to the list's `meta.total`.
    #[error("{0}")]
    Incomplete(String),
    /// Sending the request would spend the requests kept for incident response: the API's
    /// `ratelimit-remaining` is at or below the reserve (`[api] reserve_percent` of
    /// `ratelimit-limit`). Nothing was sent.
    #[error("{method} {path}: not sent: {remaining} of the token's {limit} requests this hour are left (ratelimit-remaining), and {reserve} are kept for incident response ([api] reserve_percent); the budget resets in {reset_in_secs}s")]
    Reserve {
        method: String,
        path: String,
        remaining: u64,
        limit: u64,
        reserve: u64,
        reset_in_secs: u64,
    },
    /// The client was configured wrongly.
    #[error("configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// HTTP status of an API error, if it was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } => Some(*status),
            ApiError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether the request was held back to keep the incident-response reserve.
    pub fn is_reserve(&self) -> bool {
        matches!(self, ApiError::Reserve { .. })
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
