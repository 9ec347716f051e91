//! Answers injected per request: a fixed status, headers and body (or a streamed body of any
//! size) for the requests an [`Override`] matches, and a rewrite of `meta.total` in otherwise
//! normal list answers. Tests use them to replay a faulty or hostile API.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to every request that matches `method`, `path` and `query`, instead of the
/// simulator's own. It is given whatever the token (a hostile server asks for none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Override {
    /// The method to match, e.g. `GET` (any when empty).
    pub method: String,
    /// The path to match exactly, e.g. `/v2/droplets`.
    pub path: String,
    /// Query parameters to match: a value must be equal, `null` means absent. Parameters not
    /// named here may be anything.
    pub query: BTreeMap<String, Option<String>>,
    /// The status to answer (200 when 0).
    pub status: u16,
    /// Headers to send, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte (ignored when `streamed` is set).
    pub body: String,
    /// A body produced while it is sent, never held whole.
    pub streamed: Option<StreamedBody>,
}

/// `head`, then `fill_bytes` copies of the byte `fill`, then `tail`, sent in 1 MiB chunks
/// with its `Content-Length` (or chunked, without one, when `unannounced`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamedBody {
    pub head: String,
    pub fill: u8,
    pub fill_bytes: u64,
    pub tail: String,
    pub unannounced: bool,
}

const CHUNK: usize = 1 << 20;

impl Override {
    /// Whether this override answers `method path?query`.
    pub fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        let params: Vec<(&str, &str)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        (self.method.is_empty() || self.method.eq_ignore_ascii_case(method))
            && self.path == path
            && self.query.iter().all(|(k, want)| {
                let got = params.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
                got == want.as_deref()
            })
    }

    /// The response this override gives.
    pub fn response(&self) -> Response {
        let (body, length) = match &self.streamed {
            Some(s) => (s.body(), (!s.unannounced).then(|| s.length())),
            None => (Body::from(self.body.clone()), Some(self.body.len() as u64)),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let h = resp.headers_mut();
        if let Some(length) = length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(k, v);
            }
        }
        resp
    }
}

impl StreamedBody {
    pub fn length(&self) -> u64 {
        self.head.len() as u64 + self.fill_bytes + self.tail.len() as u64
    }

    fn body(&self) -> Body {
        let chunk = Bytes::from(vec![self.fill; CHUNK]);
        let full = self.fill_bytes / CHUNK as u64;
        let rest = (self.fill_bytes % CHUNK as u64) as usize;
        let fills = std::iter::repeat_n(chunk.clone(), full as usize)
            .chain((rest > 0).then(|| chunk.slice(..rest)));
        let parts = std::iter::once(Bytes::from(self.head.clone()))
            .chain(fills)
            .chain(std::iter::once(Bytes::from(self.tail.clone())))
            .map(Ok::<Bytes, std::convert::Infallible>);
        Body::from_stream(futures::stream::iter(parts))
    }
}

/// A normal list answer with its `meta.total` set to `total` (the items and links unchanged).
pub async fn rewrite_total(resp: Response, total: u64) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let out = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if v.get("meta").is_some() => {
            v["meta"]["total"] = Value::from(total);
            Bytes::from(v.to_string())
        }
        _ => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}
