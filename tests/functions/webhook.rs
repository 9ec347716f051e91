//! `webhook` as a real process under the Runtime API emulator, fed real HTTP API and Function
//! URL payloads carrying signed deliveries.

#[path = "common.rs"]
mod common;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use shared::webhook::{sign, Secret};

const SECRETS: &str =
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQ=";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A real payload (`fixture`) carrying `body` with signature headers.
fn delivery(fixture_path: &str, id: &str, body: &str, secret: &str, base64: bool) -> Value {
    let mut v = fixture(fixture_path);
    // The Function URL example from the AWS docs has a placeholder host (`<url-id>`), which
    // lambda_http cannot turn into a URI; a real one looks like this.
    if let Some(d) = v["requestContext"]["domainName"].as_str() {
        v["requestContext"]["domainName"] =
            json!(d.replace("<url-id>", "abcdefghij0123456789klmnop"));
    }
    let ts = now();
    let sig = sign(
        &Secret::parse(secret).expect("secret"),
        id,
        ts,
        body.as_bytes(),
    );
    let mut headers = v["headers"].as_object().cloned().unwrap_or_default();
    headers.insert("Webhook-Id".into(), json!(id));
    headers.insert("webhook-timestamp".into(), json!(ts.to_string()));
    headers.insert(
        "WEBHOOK-SIGNATURE".into(),
        json!(format!("v1,bm90IHRoaXMgb25l {sig}")),
    );
    headers.insert("content-type".into(), json!("application/json"));
    v["headers"] = Value::Object(headers);
    v["requestContext"]["http"]["method"] = json!("POST");
    if base64 {
        v["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        v["isBase64Encoded"] = json!(true);
    } else {
        v["body"] = json!(body);
        v["isBase64Encoded"] = json!(false);
    }
    v
}

fn status_and_body(resp: &Value) -> (u64, Value) {
    let status = resp["statusCode"].as_u64().expect("statusCode");
    let body = resp["body"]
        .as_str()
        .map(|b| serde_json::from_str(b).unwrap_or(json!(b)))
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_recheck_only_the_droplets_they_touch() {
    let account = Account::start(80, 12).await;
    let (sim, token) = (&account.sim, &account.token);
    let env = account.env(&[
        ("DROPLETGUARD_WEBHOOK_SECRETS", SECRETS),
        ("DROPLETGUARD_MODE", "enforce"),
    ]);
    let f = Function::start(env!("CARGO_BIN_EXE_webhook"), "webhook", &env).await;

    // One Droplet without a firewall: a droplet.updated event re-checks it, and only it.
    let target = sim.with_state(|s| {
        s.droplets
            .values()
            .find(|d| !d.tags.iter().any(|t| t.starts_with("fw:")))
            .map(|d| d.id)
            .expect("an unprotected Droplet")
    });
    sim.clear_requests();
    let body = format!("{{\"type\": \"droplet.updated\", \"data\": {{\"droplet_id\": {target}}}}}");
    let resp = f
        .ok(&delivery(
            "apigw-v2/apigw_v2_proxy_request.json",
            "msg_1",
            &body,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            false,
        ))
        .await;
    let (status, report) = status_and_body(&resp);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["run"]["trigger"], "webhook");
    assert_eq!(report["summary"]["droplets"], 1);
    assert!(report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(
            |f| f["resource"]["id"].as_str() == Some(target.to_string().as_str())
                || f["resource"]["type"] != "droplet"
        ));
    let log = sim.requests();
    let writes: Vec<_> = log.iter().filter(|r| r.method != "GET").collect();
    assert!(!writes.is_empty(), "it fixed the Droplet");
    for w in &writes {
        assert!(
            w.path.starts_with("/v2/firewalls") && w.method == "POST" && w.path == "/v2/firewalls"
                || w.path == "/v2/tags"
                || w.path.starts_with("/v2/tags/dropletguard-baseline")
                || w.path.starts_with("/v2/firewalls/") && w.path.ends_with("/tags"),
            "unexpected write {} {}",
            w.method,
            w.path
        );
    }
    assert!(log
        .iter()
        .any(|r| r.path == format!("/v2/droplets/{target}")));
    // Its HTML page is stored, dated; `reports/latest.html` is kept for whole-account runs.
    let run: shared::report::Report = serde_json::from_value(report.clone()).expect("report");
    let page = account.state.path().join(shared::service::dated_key(&run));
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    assert!(html.contains(r#"id="tile-droplets">1<"#));
    assert!(!account.state.path().join("reports/latest.html").exists());
    let tagged = sim.with_state(|s| {
        s.droplets
            .values()
            .filter(|d| d.tags.iter().any(|t| t == "dropletguard-baseline"))
            .map(|d| d.id)
            .collect::<Vec<_>>()
    });
    assert_eq!(tagged, vec![target], "only the touched Droplet was changed");

    // The same delivery again: not processed twice.
    sim.clear_requests();
    let resp = f
        .ok(&delivery(
            "apigw-v2/apigw_v2_proxy_request.json",
            "msg_1",
            &body,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            false,
        ))
        .await;
    let (status, out) = status_and_body(&resp);
    assert_eq!((status, out["duplicate"].clone()), (200, json!(true)));
    assert!(sim.requests().is_empty());

    // A Function URL payload, base64 body, signed with the second (rotated-in) secret; a tag event.
    let body = r#"{"type": "tag.changed", "data": {"tag": "bad:ssh-world"}}"#;
    let resp = f
        .ok(&delivery(
            "function-url/lambda-urls-request.go.json",
            "msg_2",
            body,
            "whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQ=",
            true,
        ))
        .await;
    let (status, report) = status_and_body(&resp);
    assert_eq!(status, 200, "{report}");
    let n = sim.with_state(|s| {
        s.droplets
            .values()
            .filter(|d| d.tags.iter().any(|t| t == "bad:ssh-world"))
            .count()
    });
    assert_eq!(report["summary"]["droplets"], n);

    // Forged: 401, no detail, and the API is not touched.
    sim.clear_requests();
    let mut forged = delivery(
        "apigw-v2/apigw_v2_proxy_request.json",
        "msg_3",
        body,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        false,
    );
    forged["body"] = json!(body.replace("ssh-world", "ssh-range"));
    let (status, out) = status_and_body(&f.ok(&forged).await);
    assert_eq!((status, out), (401, json!({"error": "unauthorized"})));
    // Re-serialised after signing: 401 too.
    let mut reser = delivery(
        "apigw-v2/apigw_v2_proxy_request.json",
        "msg_4",
        body,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        false,
    );
    reser["body"] = json!(serde_json::to_string(
        &serde_json::from_str::<Value>(body).expect("json")
    )
    .expect("json"));
    assert_eq!(status_and_body(&f.ok(&reser).await).0, 401);
    assert!(
        sim.requests().is_empty(),
        "a forged delivery touches nothing"
    );

    // Signed but malformed: 400 naming the problem. Too big: 413.
    let bad = r#"{"type": "droplet.updated", "data": {}}"#;
    let (status, out) = status_and_body(
        &f.ok(&delivery(
            "apigw-v2/apigw_v2_proxy_request.json",
            "msg_5",
            bad,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            false,
        ))
        .await,
    );
    assert_eq!(status, 400);
    assert!(
        out["error"]
            .as_str()
            .unwrap_or_default()
            .contains("data.droplet_id"),
        "{out}"
    );
    let big = format!(
        "{{\"type\": \"tag.changed\", \"data\": {{\"tag\": \"x\"}}, \"pad\": \"{}\"}}",
        "a".repeat(300 * 1024)
    );
    let (status, _) = status_and_body(
        &f.ok(&delivery(
            "apigw-v2/apigw_v2_proxy_request.json",
            "msg_6",
            &big,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            false,
        ))
        .await,
    );
    assert_eq!(status, 413);

    let logs = f.stop().await;
    assert_logs_clean(&logs, &[token, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
}

/// The headers of a delivery: Svix's names for a Svix sender, both spellings, or a `v1a`
/// (Ed25519) signature with and without its public key configured.
fn with_headers(mut v: Value, headers: &[(&str, String)]) -> Value {
    let mut h = serde_json::Map::new();
    for (k, val) in headers {
        h.insert(k.to_string(), json!(val));
    }
    h.insert("content-type".into(), json!("application/json"));
    v["headers"] = Value::Object(h);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svix_senders_and_v1a_signatures_are_accepted_and_conflicts_refused() {
    let account = Account::start(12, 3).await;
    let secret = "whsec_ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4Q=";
    let env = account.env(&[("DROPLETGUARD_WEBHOOK_SECRETS", secret)]);
    let f = Function::start(env!("CARGO_BIN_EXE_webhook"), "webhook", &env).await;
    let id = account
        .sim
        .with_state(|s| *s.droplets.keys().next().expect("a Droplet"));
    let body = format!("{{\"type\": \"droplet.updated\", \"data\": {{\"droplet_id\": {id}}}}}");
    let base = delivery(
        "apigw-v2/apigw_v2_proxy_request.json",
        "x",
        &body,
        secret,
        false,
    );
    let ts = now().to_string();
    let sig = sign(
        &Secret::parse(secret).expect("secret"),
        "msg_svix_1",
        now(),
        body.as_bytes(),
    );
    let svix = [
        ("Svix-Id", "msg_svix_1".to_string()),
        ("Svix-Timestamp", ts.clone()),
        ("Svix-Signature", sig.clone()),
    ];
    let (status, report) = status_and_body(&f.ok(&with_headers(base.clone(), &svix)).await);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["summary"]["droplets"], 1);
    // Both spellings, different ids: refused, and the log says why.
    let mut both = svix.to_vec();
    both.push(("webhook-id", "msg_other".to_string()));
    let (status, _) = status_and_body(&f.ok(&with_headers(base.clone(), &both)).await);
    assert_eq!(status, 401);
    assert!(
        f.logs()
            .iter()
            .any(|l| l.contains("webhook-id and svix-id disagree")),
        "{:?}",
        f.logs()
    );
    // Only v1a and no public key: refused with a reason an operator can act on.
    let v1a = [
        ("webhook-id", "msg_v1a".to_string()),
        ("webhook-timestamp", ts),
        (
            "webhook-signature",
            format!("v1a,{}", "A".repeat(86) + "=="),
        ),
    ];
    let (status, _) = status_and_body(&f.ok(&with_headers(base, &v1a)).await);
    assert_eq!(status, 401);
    assert!(
        f.logs()
            .iter()
            .any(|l| l.contains("signed only with v1a (Ed25519), and no public key")),
        "{:?}",
        f.logs()
    );
    f.stop().await;
}
