//! Section 7 (issue 10): what each entry point costs in API requests at 100, 1,000 and 10,000
//! Droplets (one firewall per 10), the hourly total at 10,000, and the full audit beside a
//! floor client that only fetches the same pages.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sim::{fleet, FleetSpec, Sim, State};

use super::{median, Api, Res};
use sim::SimProcess;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The benchmark fleet: seed 1, one extra firewall per 10 Droplets (10,000 Droplets: ~1,000).
pub fn fleet(n: usize) -> State {
    fleet::generate(&FleetSpec {
        extra_firewalls: n / 10,
        ..FleetSpec::new(n, 1)
    })
}

/// Requests the simulator answered since it was last cleared: (reads, writes).
fn cost(sim: &Sim) -> (usize, usize) {
    let log = sim.requests();
    let reads = log.iter().filter(|r| r.method == "GET").count();
    (reads, log.len() - reads)
}

/// `dropletguard ARGS` with its state in `state`; its JSON output.
async fn cli(bin: &Path, sim: &Sim, state: &Path, args: &[&str]) -> Res<Value> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env("DROPLETGUARD_STATE_DIR", state)
        .env("DIGITALOCEAN_API_URL", sim.url())
        .env("DIGITALOCEAN_TOKEN", &sim.token)
        .stdin(Stdio::null())
        .output()
        .await?;
    if out.status.code() == Some(2) {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// One invocation of a function binary under the Runtime API emulator, its state in `state`,
/// its policy the file `policy` (the built-in default without one); milliseconds from
/// spawning the binary to its answer.
pub async fn invoke(
    bin: &Path,
    sim: &Sim,
    state: &Path,
    policy: Option<&Path>,
    payload: &Value,
) -> Res<f64> {
    let name = bin
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("function");
    let emu = sim::lambda::Emulator::start(name).await?;
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.envs(emu.env())
        .env("DIGITALOCEAN_API_URL", sim.url())
        .env("DIGITALOCEAN_TOKEN", &sim.token)
        .env("DROPLETGUARD_STATE_DIR", state)
        .env("DROPLETGUARD_WEBHOOK_SECRETS", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(p) = policy {
        cmd.env("DROPLETGUARD_POLICY", p);
    }
    let mut child = cmd.spawn()?;
    let out = emu
        .invoke(payload.to_string().as_bytes(), Duration::from_secs(120))
        .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let _ = child.kill().await;
    emu.stop();
    match out {
        Ok(sim::lambda::Outcome::Response(_)) => Ok(ms),
        other => Err(format!("{name}: {other:?}").into()),
    }
}

/// A signed delivery as API Gateway (HTTP API, payload 2.0) hands it to the function.
fn delivery(body: &str) -> Res<Value> {
    let secret = shared::webhook::Secret::parse(SECRET)?;
    let ts = chrono::Utc::now().timestamp();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let sig = shared::webhook::sign(&secret, &id, ts, body.as_bytes());
    Ok(json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"webhook-id": id, "webhook-timestamp": ts.to_string(), "webhook-signature": sig,
                    "content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                           "domainPrefix": "api", "http": {"method": "POST", "path": "/webhook",
                           "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "bench"},
                           "requestId": "id", "routeKey": "POST /webhook", "stage": "$default",
                           "time": "25/Nov/2026:19:00:00 +0000", "timeEpoch": 0},
        "body": body, "isBase64Encoded": false
    }))
}

fn scheduled() -> Value {
    json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
}

/// The first Droplet a report finds failing `rule`.
fn failing(report: &Value, rule: &str) -> Res<u64> {
    report["findings"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["rule"] == rule && f["resource"]["type"] == "droplet")
        })
        .and_then(|f| f["resource"]["id"].as_str())
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("no Droplet fails {rule}").into())
}

/// One row per entry point: (what, reads, writes).
type Row = (&'static str, usize, usize);

/// One fleet, the CLI and the functions with a state directory each, and the rows measured.
struct Account<'a> {
    sim: Sim,
    bins: &'a Path,
    policy: &'a Path,
    cli_state: PathBuf,
    fn_state: PathBuf,
    rows: Vec<Row>,
}

impl Account<'_> {
    /// `dropletguard ARGS --format json --policy POLICY` with the CLI's state directory.
    async fn cli(&self, policy: &Path, args: &[&str]) -> Res<Value> {
        let p = policy.to_str().ok_or("policy path")?;
        let mut all = vec!["--format", "json", "--policy", p];
        all.splice(0..0, args.iter().copied());
        cli(
            &self.bins.join("dropletguard"),
            &self.sim,
            &self.cli_state,
            &all,
        )
        .await
    }

    /// One invocation of the function `name` with the functions' state directory.
    async fn function(&self, name: &str, payload: &Value) -> Res<()> {
        let bin = self.bins.join(name);
        invoke(&bin, &self.sim, &self.fn_state, Some(self.policy), payload)
            .await
            .map(|_| ())
    }

    /// Records what the requests since the last row cost, as `what`.
    fn measure(&mut self, what: &'static str) {
        let (r, w) = cost(&self.sim);
        self.rows.push((what, r, w));
        self.sim.clear_requests();
    }
}

/// Every entry point's cost on a fresh fleet of `n`, in the order a deployment meets them.
async fn costs(bins: &Path, policy: &Path, enforce: &Path, n: usize) -> Res<Vec<Row>> {
    let sim = Sim::start_local("bench-token", fleet(n)).await?;
    let (cli_state, fn_state) = (tempdir(), tempdir());
    let mut a = Account {
        sim,
        bins,
        policy,
        cli_state,
        fn_state,
        rows: Vec::new(),
    };

    let full = a.cli(policy, &["audit"]).await?;
    a.measure("`audit` (full; caches the read)");
    let some = failing(&full, "firewall.world-open")?.to_string();
    a.cli(policy, &["audit", "--droplet", &some]).await?;
    a.measure("`audit --droplet ID`");
    let bare = failing(&full, "firewall.missing")?;
    a.cli(enforce, &["remediate", "--droplet", &bare.to_string()])
        .await?;
    a.measure("`remediate --droplet ID` attaching the baseline (creates it)");
    let bare2 = a
        .sim
        .with_state(|st| st.uncover_one(bare))
        .ok_or("no Droplet to uncover")?;
    a.cli(enforce, &["remediate", "--droplet", &bare2.to_string()])
        .await?;
    a.measure("`remediate --droplet ID` attaching the baseline (it exists)");

    a.function("scheduled-audit", &scheduled()).await?;
    a.measure("scheduled-audit (full run, audit mode; caches the read)");
    let body = format!(r#"{{"type":"droplet.updated","data":{{"droplet_id":{some}}}}}"#);
    a.function("webhook", &delivery(&body)?).await?;
    a.measure("webhook: `droplet.updated`, one Droplet");
    tag_fifty(&a.sim).await?;
    let body = r#"{"type":"tag.changed","data":{"tag":"bench-50"}}"#;
    a.function("webhook", &delivery(body)?).await?;
    a.measure("webhook: `tag.changed`, a tag on 50 Droplets");
    // The first poll sets the cursor; the next sees one new action, the last none.
    a.function("actions-poller", &scheduled()).await?;
    a.sim.clear_requests();
    let id: u64 = some.parse()?;
    a.sim
        .with_state(|st| st.record_action("reboot", Some(id), "nyc3", "completed"));
    a.function("actions-poller", &scheduled()).await?;
    a.measure("actions-poller: one new action on one Droplet");
    a.function("actions-poller", &scheduled()).await?;
    a.measure("actions-poller: nothing new");
    a.sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&a.cli_state);
    let _ = std::fs::remove_dir_all(&a.fn_state);
    Ok(a.rows)
}

fn tempdir() -> PathBuf {
    std::env::temp_dir().join(format!("dg-bench-{}", uuid::Uuid::new_v4().simple()))
}

/// Tags 50 Droplets `bench-50` (not counted: the requests are cleared after).
async fn tag_fifty(sim: &Sim) -> Res<()> {
    let ids: Vec<u64> = sim.with_state(|st| st.droplets.keys().copied().take(50).collect());
    let client = shared::digitalocean::Client::new(shared::digitalocean::ClientConfig::new(
        sim.url(),
        shared::digitalocean::Token::new(&sim.token),
    ))?;
    client.create_tag("bench-50").await?;
    client.tag_droplets("bench-50", &ids).await?;
    sim.clear_requests();
    Ok(())
}

/// The floor: the same first pages at once, then every other page at once, bytes only.
async fn floor_once(api: &Api) -> Res<(usize, f64)> {
    let http = reqwest::Client::new();
    let lists = [
        "/v2/droplets?",
        "/v2/droplets?type=gpus&",
        "/v2/firewalls?",
        "/v2/vpcs?",
        "/v2/account/keys?",
    ];
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", api.url);
        let token = api.token.clone();
        async move {
            let resp = http.get(url).bearer_auth(token).send().await?;
            resp.bytes().await
        }
    };
    let started = Instant::now();
    let first =
        futures::future::try_join_all(lists.iter().map(|l| get(format!("{l}per_page=200&page=1"))))
            .await?;
    let mut rest = Vec::new();
    for (l, body) in lists.iter().zip(&first) {
        let v: Value = serde_json::from_slice(body)?;
        let pages = v["meta"]["total"].as_u64().unwrap_or(0).div_ceil(200);
        rest.extend((2..=pages).map(|p| get(format!("{l}per_page=200&page={p}"))));
    }
    let requests = first.len() + rest.len();
    futures::future::try_join_all(rest).await?;
    Ok((requests, started.elapsed().as_secs_f64() * 1000.0))
}

/// The full audit's wall time and peak RSS beside the floor client's, at 10,000 Droplets and
/// 50 ms latency, against the section's fleet served by a simulator in its own process (so
/// that the bench process's own work never slows the simulator down).
pub async fn floor_rows(
    bins: &Path,
    policy: &Path,
    runs: usize,
    misses: &mut Vec<String>,
) -> Res<String> {
    let dg = bins.join("dropletguard");
    let sim = SimProcess::start(
        &dg,
        "bench-token",
        &[
            "--droplets",
            "10000",
            "--extra-firewalls",
            "1000",
            "--latency-ms",
            "50",
        ],
    )
    .await?;
    let api = Api::from(&sim);
    // The warm store: what the hourly schedule has, the last run's read and history.
    let warm = std::env::temp_dir().join(format!("dg-bench-warm-{}", std::process::id()));
    super::audit_once_in(&dg, &api, policy, Some(&warm)).await?;
    let (mut cold, mut ours, mut rss, mut floor) = (vec![], vec![], vec![], vec![]);
    let (mut our_requests, mut floor_requests) = (0, 0);
    for _ in 0..runs {
        cold.push(super::audit_once(&dg, &api, policy).await?.wall_ms);
        let r = super::audit_once_in(&dg, &api, policy, Some(&warm)).await?;
        ours.push(r.wall_ms);
        rss.push(r.rss_kb as f64 / 1024.0);
        our_requests = r.requests;
        let (n, ms) = floor_once(&api).await?;
        floor.push(ms);
        floor_requests = n;
    }
    drop(sim);
    let _ = std::fs::remove_dir_all(&warm);
    let (cold, ours, rss, floor) = (median(cold), median(ours), median(rss), median(floor));
    if ours > 250.0 {
        misses.push(format!(
            "the full audit of 10,000 Droplets at 50 ms took {ours:.0} ms (target 250 ms; the floor client {floor:.0} ms)"
        ));
    }
    if rss > 64.0 {
        misses.push(format!(
            "the full audit peaked at {rss:.1} MB (target 64 MB)"
        ));
    }
    Ok(format!(
        "| `dropletguard audit --format json` over the last run's state store, as the hourly schedule runs (process: read in one wave, evaluate, history, report) | {our_requests} | **{ours:.0} ms** | {rss:.1} MB |\n\
         | the same with a fresh state store each time (a first run: two waves, no history) | {our_requests} | {cold:.0} ms | |\n\
         | floor client: the same first pages at once, then all the rest at once; bytes only, nothing decoded | {floor_requests} | {floor:.0} ms | |\n\n\
         Audit ÷ floor: **{:.2}×** over the last run's store, {:.2}× with a fresh one (the target, 250 ms beside the issue's \
         150 ms floor, is 1.67×). The ratio holds across the machine's slow and fast phases better than the milliseconds do.\n",
        ours / floor,
        cold / floor
    ))
}

/// Section 7 of BENCHMARKS.md.
pub async fn section(
    bins: &Path,
    policy: &Path,
    runs: usize,
    misses: &mut Vec<String>,
) -> Res<String> {
    let mut md = String::from("## 7. Event cost and the API budget (issue 10)\n\n");
    md.push_str(
        "Requests per entry point (GET / other), each on the fleet of section 1 (seed 1, one firewall per 10 Droplets: \
         10,000 Droplets have 1,020 firewalls), in this order, against one simulator per size: the CLI with one state \
         directory, the functions (release binaries under the Runtime API emulator) with another. Re-checks build on the \
         full read the first `audit` (CLI) or the `scheduled-audit` run (functions) cached. Policy: `FLEET_POLICY`; the \
         remediations add `[rules.\"firewall.missing\"] mode = \"enforce\"`.\n\n",
    );
    let enforce = std::env::temp_dir().join("dg-bench-enforce.toml");
    std::fs::write(
        &enforce,
        format!(
            "{}\n[rules.\"firewall.missing\"]\nmode = \"enforce\"\n",
            sim::FLEET_POLICY
        ),
    )?;
    let sizes = [100usize, 1_000, 10_000];
    let mut table: Vec<Vec<Row>> = Vec::new();
    for n in sizes {
        table.push(costs(bins, policy, &enforce, n).await?);
        eprintln!("event costs at {n} Droplets measured");
    }
    md.push_str(&cost_table(&table, misses));
    md.push_str("### The full audit beside the floor\n\n10,000 Droplets and 1,020 firewalls, 50 ms latency, medians of the runs, both clients against one simulator in its own process \
         (`dropletguard sim --droplets 10000 --extra-firewalls 1000 --latency-ms 50`), so that the bench process's work never slows it; \
         the first row's audits share one state store that an unmeasured audit filled first, the second's each have a fresh one. `bench --floor-only` prints this table alone.\n\n");
    md.push_str("| client | requests | wall | peak RSS |\n|---|---:|---:|---:|\n");
    md.push_str(&floor_rows(bins, policy, runs, misses).await?);
    md.push_str("\nReproduce: `make bench` (this section is `sim/src/bin/bench/events.rs`).\n\n");
    Ok(md)
}

/// The requests per entry point at each size, with the targets at 10,000 and the hourly total.
fn cost_table(table: &[Vec<Row>], misses: &mut Vec<String>) -> String {
    let mut md = String::new();
    md.push_str("| entry point | 100 Droplets | 1,000 | 10,000 | target at 10,000 |\n|---|---:|---:|---:|---|\n");
    let targets: [(&str, usize, Option<usize>); 4] = [
        ("`audit --droplet ID`", 6, None),
        (
            "`remediate --droplet ID` attaching the baseline (creates it)",
            16,
            Some(16),
        ),
        ("webhook: `droplet.updated`, one Droplet", 8, None),
        ("webhook: `tag.changed`, a tag on 50 Droplets", 12, None),
    ];
    for (i, (what, ..)) in table[0].iter().enumerate() {
        let cells: Vec<String> = table
            .iter()
            .map(|rows| format!("{} / {}", rows[i].1, rows[i].2))
            .collect();
        let (r, w) = (table[2][i].1, table[2][i].2);
        let target = targets.iter().find(|t| t.0 == *what);
        let text = match target {
            Some((_, max, Some(_))) => format!("≤ {max} requests, writes included"),
            Some((_, max, None)) => format!("≤ {max} reads"),
            None => String::new(),
        };
        match target {
            Some((_, max, Some(_))) if r + w > *max => misses.push(format!(
                "{what}: {} requests at 10,000 (target {max})",
                r + w
            )),
            Some((_, max, None)) if r > *max => {
                misses.push(format!("{what}: {r} reads at 10,000 (target {max})"))
            }
            _ => {}
        }
        md.push_str(&format!(
            "| {what} | {} | {} | {} | {text} |\n",
            cells[0], cells[1], cells[2]
        ));
    }
    md.push_str(&hourly_total(table, misses));
    md
}

/// An hour of the functions at 10,000 Droplets: one scheduled run, twelve polls, 100 webhooks.
fn hourly_total(table: &[Vec<Row>], misses: &mut Vec<String>) -> String {
    let at = |what: &str| -> usize {
        table[2]
            .iter()
            .find(|r| r.0.starts_with(what))
            .map(|r| r.1 + r.2)
            .unwrap_or(0)
    };
    let (schedule, poll, event) = (
        at("scheduled-audit"),
        at("actions-poller: one new"),
        at("webhook: `droplet.updated`"),
    );
    let hourly = schedule + 12 * poll + 100 * event;
    let md = format!(
        "\n**Hourly total at 10,000 Droplets:** an hourly `scheduled-audit` ({schedule}), a 5-minute `actions-poller` that \
         finds one new action each time (12 × {poll}) and 100 one-Droplet webhooks (100 × {event}): **{hourly} requests** of \
         the token's 5,000 (target ≤ 1,500). The 20% reserve keeps 1,000 of them for incident response.\n\n"
    );
    if hourly > 1_500 {
        misses.push(format!(
            "the hourly total at 10,000 Droplets is {hourly} requests (target 1,500)"
        ));
    }
    md
}
