//! The simulator speaks the API as the spec describes it: shapes, status codes, limits, paging.

use reqwest::Method;
use serde_json::{json, Value};
use sim::{fleet, FleetSpec};

use crate::fixtures;
use crate::helpers::*;

fn check(path: &str, method: &str, status: u16, key: Option<&str>, body: &Value) -> Value {
    let mut v = json!({"kind": "openapi", "path": path, "method": method, "status": status.to_string(), "body": body});
    if let Some(k) = key {
        v["key"] = json!(k);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_validate_against_the_openapi_subset() {
    let sim = start(fleet::generate(&FleetSpec::new(60, 11))).await;
    let raw = Raw::new(&sim);
    let mut items = Vec::new();
    let (droplet_id, fw_id, vpc_id) = sim.with_state(|s| {
        let d = *s.droplets.keys().next().expect("a droplet");
        (d, s.firewalls[0].id.clone(), s.vpcs[0].id.clone())
    });
    let gets: Vec<(String, &str, Option<&str>)> = vec![
        (
            "/v2/droplets?per_page=20&page=2".into(),
            "/v2/droplets",
            Some("droplets"),
        ),
        (
            "/v2/droplets?type=gpus".into(),
            "/v2/droplets",
            Some("droplets"),
        ),
        (
            "/v2/droplets?tag_name=env:prod".into(),
            "/v2/droplets",
            Some("droplets"),
        ),
        (
            format!("/v2/droplets/{droplet_id}"),
            "/v2/droplets/{droplet_id}",
            Some("droplet"),
        ),
        (
            format!("/v2/droplets/{droplet_id}/firewalls"),
            "/v2/droplets/{droplet_id}/firewalls",
            Some("firewalls"),
        ),
        (
            format!("/v2/droplets/{droplet_id}/actions"),
            "/v2/droplets/{droplet_id}/actions",
            Some("actions"),
        ),
        ("/v2/firewalls".into(), "/v2/firewalls", Some("firewalls")),
        (
            format!("/v2/firewalls/{fw_id}"),
            "/v2/firewalls/{firewall_id}",
            Some("firewall"),
        ),
        ("/v2/vpcs".into(), "/v2/vpcs", Some("vpcs")),
        (
            format!("/v2/vpcs/{vpc_id}"),
            "/v2/vpcs/{vpc_id}",
            Some("vpc"),
        ),
        (
            format!("/v2/vpcs/{vpc_id}/members"),
            "/v2/vpcs/{vpc_id}/members",
            Some("members"),
        ),
        (
            "/v2/account/keys".into(),
            "/v2/account/keys",
            Some("ssh_keys"),
        ),
        ("/v2/tags".into(), "/v2/tags", Some("tags")),
        ("/v2/tags/env:prod".into(), "/v2/tags/{tag_id}", Some("tag")),
        ("/v2/actions".into(), "/v2/actions", Some("actions")),
    ];
    for (url, path, key) in &gets {
        let (status, body) = raw.get(url).await;
        assert_eq!(status, 200, "{url}: {body}");
        items.push(check(path, "get", status, *key, &body));
    }
    // Writes, with their request bodies checked too.
    let create = json!({
        "name": "web-new",
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["203.0.113.0/24"]}},
                          {"protocol": "icmp", "ports": "0", "sources": {"addresses": ["0.0.0.0/0"]}}],
        "outbound_rules": [{"protocol": "tcp", "ports": "all", "destinations": {"addresses": ["0.0.0.0/0", "::/0"]}}],
        "droplet_ids": [droplet_id],
        "tags": ["role:web"]
    });
    items.push(check("/v2/firewalls", "post", 0, None, &create));
    items.last_mut().expect("item")["status"] = json!("request");
    let (status, body) = raw.send(Method::POST, "/v2/firewalls", Some(create)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["firewall"]["status"], "waiting");
    assert!(body["firewall"]["pending_changes"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    items.push(check(
        "/v2/firewalls",
        "post",
        status,
        Some("firewall"),
        &body,
    ));
    let new_id = body["firewall"]["id"].as_str().expect("id").to_string();
    let (status, body) = raw.send(Method::PUT, &format!("/v2/firewalls/{new_id}"),
        Some(json!({"name": "web-renamed", "inbound_rules": [], "outbound_rules": [], "tags": ["role:web"]}))).await;
    assert_eq!(status, 200, "{body}");
    items.push(check(
        "/v2/firewalls/{firewall_id}",
        "put",
        status,
        Some("firewall"),
        &body,
    ));
    let (status, body) = raw
        .send(
            Method::POST,
            "/v2/tags",
            Some(json!({"name": "dropletguard-baseline"})),
        )
        .await;
    assert_eq!(status, 201);
    items.push(check("/v2/tags", "post", status, Some("tag"), &body));
    // Errors.
    let (status, body) = raw.get("/v2/firewalls/nope").await;
    assert_eq!(status, 404);
    items.push(check(
        "/v2/firewalls/{firewall_id}",
        "get",
        status,
        Some("id"),
        &body,
    ));
    let (status, body) = raw
        .send(Method::POST, "/v2/tags", Some(json!({"name": "здорово"})))
        .await;
    assert_eq!(status, 400);
    items.push(check(
        "/v2/tags",
        "post",
        status,
        Some("root_causes"),
        &body,
    ));
    let anon = reqwest::get(format!("{}/v2/droplets", sim.url()))
        .await
        .expect("request");
    assert_eq!(anon.status().as_u16(), 401);
    let body: Value = anon.json().await.expect("json");
    items.push(check("/v2/droplets", "get", 401, Some("id"), &body));

    let (code, out) = validate(&items);
    assert_eq!(code, 0, "simulator responses off-spec:\n{out}");
    assert!(
        out.contains(&format!("{} passed, 0 failed", items.len())),
        "{out}"
    );

    // The validator catches a Droplet without its required fields (so the check above can fail).
    let bad = json!({"droplets": [{"id": 1}], "links": {}, "meta": {"total": 1}});
    let (code, _) = validate(&[check("/v2/droplets", "get", 200, Some("droplets"), &bad)]);
    assert_eq!(code, 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_links_are_absolute_and_headers_present() {
    let sim = start(fleet::generate(&FleetSpec::new(50, 1))).await;
    let raw = Raw::new(&sim);
    let (status, body) = raw.get("/v2/droplets?per_page=5&page=2").await;
    assert_eq!(status, 200);
    assert_eq!(body["droplets"].as_array().map(Vec::len), Some(5));
    let total = body["meta"]["total"].as_u64().expect("total");
    assert_eq!(total, 48, "two of the 50 are GPU Droplets, listed apart");
    let base = sim.url();
    assert_eq!(
        body["links"]["pages"]["next"],
        format!("{base}/v2/droplets?page=3&per_page=5")
    );
    assert_eq!(
        body["links"]["pages"]["last"],
        format!("{base}/v2/droplets?page=10&per_page=5")
    );
    assert_eq!(
        body["links"]["pages"]["prev"],
        format!("{base}/v2/droplets?page=1&per_page=5")
    );
    let (_, body) = raw.get("/v2/droplets?per_page=500").await;
    assert_eq!(
        body["droplets"].as_array().map(Vec::len),
        Some(48),
        "per_page is capped at 200"
    );
    let resp = raw
        .http
        .get(format!("{base}/v2/vpcs"))
        .bearer_auth(&raw.token)
        .send()
        .await
        .expect("request");
    for h in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(resp.headers().contains_key(h), "{h} header");
    }
    let (status, _) = raw.get("/v2/droplets?type=everything").await;
    assert_eq!(status, 400);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_limits_answer_422() {
    let sim = start(fleet::generate(&FleetSpec::new(30, 2))).await;
    let raw = Raw::new(&sim);
    let ids: Vec<u64> = sim.with_state(|s| s.droplets.keys().copied().take(11).collect());
    let rule =
        json!({"protocol": "tcp", "ports": "22", "sources": {"addresses": ["203.0.113.0/24"]}});
    // Eleven Droplets by id.
    let (status, body) = raw
        .send(
            Method::POST,
            "/v2/firewalls",
            Some(json!({"name": "too-many", "inbound_rules": [rule], "droplet_ids": ids})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["id"], "unprocessable_entity");
    assert!(body["message"].as_str().unwrap_or_default().contains("10"));
    // Ten is fine; an eleventh added later is not.
    let (status, body) = raw
        .send(
            Method::POST,
            "/v2/firewalls",
            Some(json!({"name": "ten", "inbound_rules": [rule], "droplet_ids": ids[..10]})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["firewall"]["id"].as_str().expect("id").to_string();
    let (status, _) = raw
        .send(
            Method::POST,
            &format!("/v2/firewalls/{id}/droplets"),
            Some(json!({"droplet_ids": [ids[10]]})),
        )
        .await;
    assert_eq!(status, 422);
    // Six tags.
    let (status, _) = raw
        .send(
            Method::POST,
            &format!("/v2/firewalls/{id}/tags"),
            Some(json!({"tags": ["a", "b", "c", "d", "e", "f"]})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = raw
        .send(
            Method::POST,
            &format!("/v2/firewalls/{id}/tags"),
            Some(json!({"tags": ["a", "b", "c", "d", "e"]})),
        )
        .await;
    assert_eq!(status, 204);
    // Fifty-one rules.
    let many: Vec<Value> = (0..50)
        .map(|p| json!({"protocol": "tcp", "ports": (8000 + p).to_string(), "sources": {"addresses": ["203.0.113.0/24"]}}))
        .collect();
    let (status, _) = raw
        .send(
            Method::POST,
            &format!("/v2/firewalls/{id}/rules"),
            Some(json!({"inbound_rules": many})),
        )
        .await;
    assert_eq!(status, 422, "1 + 50 rules");
    let (status, _) = raw
        .send(
            Method::POST,
            &format!("/v2/firewalls/{id}/rules"),
            Some(json!({"inbound_rules": many[..49]})),
        )
        .await;
    assert_eq!(status, 204, "exactly 50");
    // Nothing changed by the rejected writes.
    let (_, fw) = raw.get(&format!("/v2/firewalls/{id}")).await;
    assert_eq!(
        fw["firewall"]["droplet_ids"].as_array().map(Vec::len),
        Some(10)
    );
    assert_eq!(fw["firewall"]["tags"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        fw["firewall"]["inbound_rules"].as_array().map(Vec::len),
        Some(50)
    );
    // Removing a rule by value.
    let (status, _) = raw
        .send(
            Method::DELETE,
            &format!("/v2/firewalls/{id}/rules"),
            Some(json!({"inbound_rules": [many[0]]})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, fw) = raw.get(&format!("/v2/firewalls/{id}")).await;
    assert_eq!(
        fw["firewall"]["inbound_rules"].as_array().map(Vec::len),
        Some(49)
    );
    // Unknown firewall: 404 with the error body.
    let (status, body) = raw
        .send(
            Method::POST,
            "/v2/firewalls/nope/droplets",
            Some(json!({"droplet_ids": [ids[0]]})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_attach_and_detach() {
    let sim = start(fixtures::known()).await;
    let raw = Raw::new(&sim);
    let res = json!({"resources": [{"resource_id": "3", "resource_type": "droplet"}]});
    let (status, _) = raw
        .send(
            Method::POST,
            "/v2/tags/new-tag/resources",
            Some(res.clone()),
        )
        .await;
    assert_eq!(status, 404, "the tag must exist first");
    let (status, _) = raw
        .send(Method::POST, "/v2/tags", Some(json!({"name": "new-tag"})))
        .await;
    assert_eq!(status, 201);
    let (status, _) = raw
        .send(
            Method::POST,
            "/v2/tags/new-tag/resources",
            Some(res.clone()),
        )
        .await;
    assert_eq!(status, 204);
    let (_, d) = raw.get("/v2/droplets/3").await;
    assert_eq!(d["droplet"]["tags"], json!(["new-tag"]));
    let (_, t) = raw.get("/v2/tags/new-tag").await;
    assert_eq!(t["tag"]["resources"]["droplets"]["count"], 1);
    let (status, _) = raw
        .send(Method::DELETE, "/v2/tags/new-tag/resources", Some(res))
        .await;
    assert_eq!(status, 204);
    let (_, d) = raw.get("/v2/droplets/3").await;
    assert_eq!(d["droplet"]["tags"], json!([]));
    sim.shutdown().await;
}

async fn firewalls_of(url: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{url}/v2/firewalls?per_page=200"))
        .bearer_auth("t")
        .send()
        .await
        .expect("GET /v2/firewalls")
        .json()
        .await
        .expect("JSON");
    body["firewalls"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_sim_command_adds_the_extra_firewalls_it_is_asked_for() {
    let start = |args: &'static [&'static str]| sim::SimProcess::start(BIN.as_ref(), "t", args);
    let plain = start(&["--droplets", "40"]).await.expect("sim");
    let more = start(&["--droplets", "40", "--extra-firewalls", "3"])
        .await
        .expect("sim");
    let (plain, more) = (
        firewalls_of(&plain.url).await,
        firewalls_of(&more.url).await,
    );
    assert_eq!(more.len(), plain.len() + 3, "three firewalls more");
    let names: Vec<&str> = plain.iter().filter_map(|f| f["name"].as_str()).collect();
    let extra: Vec<&Value> = more
        .iter()
        .filter(|f| !names.contains(&f["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(extra.len(), 3);
    for f in extra {
        let rules = f["inbound_rules"].as_array().expect("rules");
        assert!(
            rules
                .iter()
                .all(|r| r["protocol"] == "tcp" && r["ports"] == "443"),
            "an extra firewall allows only tcp 443: {f}"
        );
        assert_eq!(f["droplet_ids"].as_array().map(Vec::len), Some(5));
    }
    let bad = cli_env(
        "http://127.0.0.1:9",
        "t",
        &["sim", "--defect-rate", "2"],
        &[],
    )
    .await;
    assert_eq!(bad.code, 2, "an error: {}", bad.stderr);
    assert!(
        bad.stderr
            .contains("--defect-rate must be between 0.0 and 1.0 (got 2)"),
        "{}",
        bad.stderr
    );
}

/// The first two lines `dropletguard sim` prints with `args`.
async fn sim_banner(args: &[&str]) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0", "--droplets", "5"])
        .args(args)
        .env_remove("DIGITALOCEAN_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("dropletguard sim starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut out = String::new();
    for _ in 0..2 {
        out.push_str(&lines.next_line().await.expect("read").expect("a line"));
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn the_sim_banner_gives_a_command_that_works_and_never_a_token_of_the_users() {
    // Its "Try:" line left the token out: run as printed, the audit said "no API token". It
    // also names a state directory of its own: the simulated account's cache and budget must
    // not land in the user's real store.
    let banner = sim_banner(&[]).await;
    assert!(
        banner.contains("DIGITALOCEAN_TOKEN=dropletguard-sim DROPLETGUARD_STATE_DIR=/tmp/dropletguard-sim-state dropletguard audit --no-ssh"),
        "{banner}"
    );
    // A token given to the simulator may be a real DigitalOcean token: not printed.
    let banner = sim_banner(&["--token", "dop_v1_not_to_be_printed"]).await;
    assert!(!banner.contains("dop_v1_not_to_be_printed"), "{banner}");
    assert!(
        banner.contains("DIGITALOCEAN_TOKEN=<the token given with --token>"),
        "{banner}"
    );
}
