//! A Lambda Runtime API emulator on loopback: function binaries run as real processes against
//! it (`AWS_LAMBDA_RUNTIME_API`), the way they run in AWS. Tests and benchmarks queue an event
//! with [`Emulator::invoke`] and get the function's response or error back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;

/// Lambda's limit on a response: 6 MB.
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Mutex};

/// What a function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// `/error` or `/init/error`: the error document the runtime posted.
    Error(Value),
}

struct Pending {
    id: String,
    payload: Vec<u8>,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone)]
struct Inner {
    queue: Arc<Mutex<mpsc::Receiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    init_error: Arc<Mutex<Option<Value>>>,
    function_name: String,
}

pub struct Emulator {
    pub addr: SocketAddr,
    tx: mpsc::Sender<Pending>,
    inner: Inner,
    task: tokio::task::JoinHandle<()>,
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn next(State(inner): State<Inner>) -> Response {
    let pending = {
        let mut q = inner.queue.lock().await;
        q.recv().await
    };
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    inner.waiting.lock().await.insert(p.id.clone(), p.reply);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64 + 300_000)
        .unwrap_or(0);
    let mut h = HeaderMap::new();
    let arn = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        inner.function_name
    );
    for (k, v) in [
        ("lambda-runtime-aws-request-id", p.id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", arn),
        (
            "lambda-runtime-trace-id",
            format!("Root=1-5759e988-{}", &p.id.replace('-', "")[..24]),
        ),
        ("content-type", "application/json".to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    (StatusCode::OK, h, p.payload).into_response()
}

async fn respond(State(inner): State<Inner>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    match inner.waiting.lock().await.remove(&id) {
        Some(tx) => {
            let _ = tx.send(Outcome::Response(parse(&body)));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn error(State(inner): State<Inner>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    match inner.waiting.lock().await.remove(&id) {
        Some(tx) => {
            let _ = tx.send(Outcome::Error(parse(&body)));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn init_error(State(inner): State<Inner>, body: Bytes) -> StatusCode {
    *inner.init_error.lock().await = Some(parse(&body));
    StatusCode::ACCEPTED
}

impl Emulator {
    pub async fn start(function_name: &str) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let inner = Inner {
            queue: Arc::new(Mutex::new(rx)),
            waiting: Arc::default(),
            init_error: Arc::default(),
            function_name: function_name.to_string(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            // Lambda takes responses up to 6 MB (quotas: "Invocation payload"), and answers
            // 413 past it; axum's default (2 MB) refused a 10,000-Droplet report.
            .layer(axum::extract::DefaultBodyLimit::max(RESPONSE_LIMIT))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Emulator {
            addr,
            tx,
            inner,
            task,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// The environment a function process needs besides its own configuration.
    pub fn env(&self) -> Vec<(String, String)> {
        let name = &self.inner.function_name;
        [
            ("AWS_LAMBDA_RUNTIME_API", self.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/25/[$LATEST]emulator".into(),
            ),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Queues one invocation and waits for its outcome.
    pub async fn invoke(&self, payload: &[u8], timeout: Duration) -> Result<Outcome, String> {
        let (reply, rx) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        self.tx
            .send(Pending {
                id,
                payload: payload.to_vec(),
                reply,
            })
            .await
            .map_err(|_| "emulator stopped".to_string())?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(_)) => Err("the invocation was dropped".into()),
            Err(_) => match self.inner.init_error.lock().await.clone() {
                Some(e) => Ok(Outcome::Error(e)),
                None => Err(format!("no answer within {timeout:?}")),
            },
        }
    }

    /// The init error the runtime reported, if any.
    pub async fn init_error(&self) -> Option<Value> {
        self.inner.init_error.lock().await.clone()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
