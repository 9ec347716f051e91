use lambda_http::http::Method;
use lambda_http::lambda_runtime::Diagnostic;
use lambda_http::{Body, Request, Response};
use shared::service::{
    fit_response, handle_webhook, Deps, HttpReply, ServiceError, LAMBDA_RESPONSE_LIMIT,
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The body exactly as the platform delivered it: text as is, base64 already decoded.
fn raw_body(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Diagnostic> {
    let started = std::time::Instant::now();
    let reply = if req.method() != Method::POST {
        HttpReply {
            status: 405,
            body: serde_json::json!({"error": "use POST"}),
        }
    } else {
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        handle_webhook(deps, &headers, raw_body(&req), now()).await
    };
    let answered = (reply.status < 500).then_some(&reply.body);
    shared::metrics::emit("webhook", answered, started.elapsed());
    Response::builder()
        .status(reply.status)
        .header("content-type", "application/json")
        .body(Body::Text(
            fit_response(reply.body, LAMBDA_RESPONSE_LIMIT).to_string(),
        ))
        .map_err(|e| diagnostic(ServiceError::Config(format!("HTTP response: {e}"))))
}

/// A [`ServiceError`] as Lambda reports it: `errorType` says retryable or permanent and the
/// kind ([`ServiceError::error_type`]), `errorMessage` the whole reason.
pub fn diagnostic(e: impl Into<ServiceError>) -> Diagnostic {
    let e = e.into();
    Diagnostic {
        error_type: e.error_type(),
        error_message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default policy, without SSH probes (simulated Droplets have no SSH servers).
    fn no_probe_policy() -> shared::Policy {
        let mut p = shared::Policy::default();
        p.ssh.probe = false;
        p
    }
    use shared::digitalocean::{Client, ClientConfig, Token};
    use shared::store::{DirStore, Store};
    use shared::webhook::{sign, Secret};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// The real HTTP API fixture, with our delivery in it.
    fn request(body: &str, headers: &[(&str, String)], base64: bool) -> Request {
        let fixture = include_str!(
            "../../../tests/fixtures/lambda-events/apigw-v2/apigw_v2_proxy_request.json"
        );
        let mut v: serde_json::Value = serde_json::from_str(fixture).expect("fixture");
        let mut h = serde_json::Map::new();
        for (k, val) in headers {
            h.insert(k.to_string(), serde_json::json!(val));
        }
        v["headers"] = serde_json::Value::Object(h);
        if base64 {
            use base64::Engine as _;
            v["body"] = serde_json::json!(base64::engine::general_purpose::STANDARD.encode(body));
            v["isBase64Encoded"] = serde_json::json!(true);
        } else {
            v["body"] = serde_json::json!(body);
            v["isBase64Encoded"] = serde_json::json!(false);
        }
        lambda_http::request::from_str(&v.to_string()).expect("request")
    }

    #[tokio::test]
    async fn signed_delivery_text_or_base64_and_forged_one() {
        let s = sim::Sim::start_local("t0k", sim::fleet::generate(&sim::FleetSpec::new(5, 3)))
            .await
            .expect("sim");
        let client = Client::new(ClientConfig::new(s.url(), Token::new("t0k"))).expect("client");
        let dir = tempfile::tempdir().expect("dir");
        let mut deps = Deps::new(
            client,
            Store::Dir(DirStore::new(dir.path())),
            no_probe_policy(),
        );
        deps.webhook_secrets = vec![Secret::parse(SECRET).expect("secret")];
        let id = s.with_state(|st| *st.droplets.keys().next().expect("droplet"));
        let body = format!("{{\"type\": \"droplet.updated\", \"data\": {{\"droplet_id\": {id}}}}}");
        for (n, b64) in [(1, false), (2, true)] {
            let ts = now();
            let sig = sign(
                &Secret::parse(SECRET).expect("secret"),
                &format!("msg_{n}"),
                ts,
                body.as_bytes(),
            );
            let headers = [
                ("webhook-id", format!("msg_{n}")),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", sig),
            ];
            let resp = handle(&deps, request(&body, &headers, b64))
                .await
                .expect("response");
            assert_eq!(resp.status(), 200, "{:?}", resp.body());
        }
        let ts = now();
        let headers = [
            ("webhook-id", "msg_3".to_string()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string(),
            ),
        ];
        let resp = handle(&deps, request(&body, &headers, false))
            .await
            .expect("response");
        assert_eq!(resp.status(), 401);
        s.shutdown().await;
    }
}
