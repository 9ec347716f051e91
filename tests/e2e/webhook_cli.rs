//! `dropletguard webhook verify` and `webhook send`, for operators debugging an integration.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use shared::digitalocean::{Client, ClientConfig, Token};
use shared::service::{handle_webhook, Deps};
use shared::store::{DirStore, Store};
use shared::webhook::Secret;

use crate::helpers::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn run(args: &[&str]) -> Run {
    cli_env("http://127.0.0.1:9", "unused", args, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_spec_vector_and_its_edges() {
    let dir = tempfile::tempdir().expect("dir");
    let body = dir.path().join("body.json");
    std::fs::write(&body, br#"{"test": 2432232314}"#).expect("write");
    let b = body.to_str().expect("utf-8");
    let sig = "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let base = [
        "webhook",
        "verify",
        "--secret",
        SECRET,
        "--header",
        "Webhook-Id: msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--header",
        "webhook-timestamp: 1614265330",
        "--header",
        sig,
        "--body-file",
        b,
    ];
    let ok = run(&[&base[..], &["--now", "1614265330"]].concat()).await;
    assert_eq!((ok.code, ok.stdout.trim()), (0, "valid"), "{}", ok.stderr);
    let late = run(&[&base[..], &["--now", "1614265631"]].concat()).await;
    assert_eq!(late.code, 1);
    assert!(
        late.stdout.starts_with("invalid: ") && late.stdout.contains("301"),
        "{}",
        late.stdout
    );
    let edge = run(&[&base[..], &["--now", "1614265630"]].concat()).await;
    assert_eq!(edge.code, 0, "300 s is inside the window");
    // Rotation: the right secret second.
    let rot = run(&[
        &[
            "webhook",
            "verify",
            "--secret",
            "whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQ=",
        ][..],
        &base[2..],
        &["--now", "1614265330"],
    ]
    .concat())
    .await;
    assert_eq!(rot.code, 0, "{}", rot.stdout);
    std::fs::write(&body, br#"{"test":2432232314}"#).expect("write");
    let reser = run(&[&base[..], &["--now", "1614265330"]].concat()).await;
    assert_eq!(
        (reser.code, reser.stdout.trim()),
        (1, "invalid: no valid signature")
    );
    let missing = run(&[
        "webhook",
        "verify",
        "--secret",
        SECRET,
        "--body-file",
        b,
        "--header",
        "webhook-id: x",
    ])
    .await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stdout.contains("missing header webhook-timestamp"),
        "{}",
        missing.stdout
    );
    let bad = run(&[
        "webhook",
        "verify",
        "--secret",
        "whsec_!!!",
        "--body-file",
        b,
    ])
    .await;
    assert_eq!(bad.code, 2, "a bad secret is a usage error: {}", bad.stderr);
    assert!(!bad.stderr.contains("!!!"), "the secret is not echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_and_delivers_to_a_receiver() {
    // The receiver is the real webhook logic (shared::service), in an HTTP server on loopback.
    let sim = start(crate::fixtures::known()).await;
    let state = tempfile::tempdir().expect("state");
    let client = Client::new(ClientConfig::new(sim.url(), Token::new(&sim.token))).expect("client");
    let mut deps = Deps::new(
        client,
        Store::Dir(DirStore::new(state.path())),
        no_probe_policy(),
    );
    deps.webhook_secrets = vec![Secret::parse(SECRET).expect("secret")];
    let deps = Arc::new(deps);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let deps = deps.clone();
            async move {
                let h: Vec<(String, String)> = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let r = handle_webhook(&deps, &h, &body, now).await;
                (
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    r.body.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("dir");
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        br#"{"type": "droplet.updated", "data": {"droplet_id": 3}}"#,
    )
    .expect("write");
    let e = event.to_str().expect("utf-8");
    let ok = run(&[
        "webhook",
        "send",
        "--url",
        &url,
        "--secret",
        SECRET,
        "--event-file",
        e,
    ])
    .await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stderr
            .contains("warning: --secret is visible to other users (ps)"),
        "{}",
        ok.stderr
    );
    // The secret from a file, and from the environment: no warning, the same delivery.
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write");
    let from_file = run(&[
        "webhook",
        "send",
        "--url",
        &url,
        "--secret-file",
        secret_file.to_str().expect("utf-8"),
        "--event-file",
        e,
    ])
    .await;
    assert_eq!(
        from_file.code, 0,
        "{}{}",
        from_file.stdout, from_file.stderr
    );
    assert!(
        !from_file.stderr.contains("warning"),
        "{}",
        from_file.stderr
    );
    let send_env = ["webhook", "send", "--url", &url, "--event-file", e];
    let from_env = cli_env(
        "http://127.0.0.1:9",
        "unused",
        &send_env,
        &[("DROPLETGUARD_WEBHOOK_SECRETS", SECRET)],
    )
    .await;
    assert_eq!(from_env.code, 0, "{}{}", from_env.stdout, from_env.stderr);
    let none = run(&send_env).await;
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains(
            "no signing secret: give --secret-file FILE or set $DROPLETGUARD_WEBHOOK_SECRETS"
        ),
        "{}",
        none.stderr
    );
    let report: serde_json::Value =
        serde_json::from_str(&ok.stdout).expect("the receiver's report");
    assert_eq!(report["summary"]["droplets"], 1);
    assert!(report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["rule"] == "firewall.missing"));
    let wrong = run(&[
        "webhook",
        "send",
        "--url",
        &url,
        "--secret",
        "whsec_dGhpcyBpcyB0aGUgbmV4dCBzZWNyZXQ=",
        "--event-file",
        e,
    ])
    .await;
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    sim.shutdown().await;
}

/// The default policy, without SSH probes (simulated Droplets have no SSH servers).
fn no_probe_policy() -> shared::Policy {
    let mut p = shared::Policy::default();
    p.ssh.probe = false;
    p
}

/// `tests/cases/webhook/svix-headers`: a Svix sender's delivery, with Svix's header names in
/// either letter case, verifies through the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_svix_delivery_verifies_with_svix_header_names() {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/cases/webhook/svix-headers");
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(
        &secret,
        "whsec_ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4Q=\n",
    )
    .expect("write");
    let body = case.join("body.json");
    for (id, ts, sig) in [
        ("svix-id", "svix-timestamp", "svix-signature"),
        ("Svix-Id", "Svix-Timestamp", "Svix-Signature"),
    ] {
        let run_ = run(&[
            "webhook",
            "verify",
            "--secret-file",
            secret.to_str().expect("utf-8"),
            "--header",
            &format!("{id}: msg_field2_05"),
            "--header",
            &format!("{ts}: 1764097200"),
            "--header",
            &format!("{sig}: v1,Kx/L4kdhtuxp6BzPiTYNdRH3b9hAez/IpSosEXprXqA="),
            "--body-file",
            body.to_str().expect("utf-8"),
            "--now",
            "1764097200",
        ])
        .await;
        assert_eq!(
            (run_.code, run_.stdout.trim()),
            (0, "valid"),
            "{}",
            run_.stderr
        );
    }
}
