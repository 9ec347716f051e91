//! `--format html`: the demo fleet's page in a real headless browser (tiles, escaping, filter,
//! matrix, sorting, no console errors, a screenshot kept under `.tools/artifacts/`), and a
//! snapshot of the page with ids and times filtered out.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::*;

const EVIL: &str = "<script>window.pwned=1</script>evil-web";

/// The demo fleet, with one failing Droplet renamed to carry a script tag.
fn demo_with_evil_name() -> (sim::State, u64) {
    let mut state = sim::fleet::demo();
    let id = state
        .expected
        .iter()
        .find(|e| e.resource_type == "droplet")
        .and_then(|e| e.resource_id.parse::<u64>().ok())
        .expect("the demo fleet has a failing Droplet");
    state.droplets.get_mut(&id).expect("droplet").name = EVIL.to_string();
    (state, id)
}

/// The JSON report and the HTML page of the same audit of the same fleet.
async fn json_and_html() -> (Value, String) {
    let (state, _) = demo_with_evil_name();
    let sim = start(state).await;
    let json = cli(&sim, &["audit", "--no-ssh", "--format", "json"]).await;
    assert_eq!(json.code, 1, "{}", json.stderr);
    let html = cli(&sim, &["audit", "--no-ssh", "--format", "html"]).await;
    assert_eq!(html.code, 1, "{}", html.stderr);
    (json.json(), html.stdout)
}

fn artifacts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/artifacts")
}

fn visible_rows(b: &mut Browser) -> u64 {
    b.eval(
        "[...document.querySelectorAll('#findings-table tbody tr')].filter(r => !r.hidden).length",
    )
    .as_u64()
    .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_in_a_real_browser() {
    let (report, html) = json_and_html().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).expect("write page");
    let mut b = tokio::task::spawn_blocking(|| Browser::start(1280, 1600))
        .await
        .expect("browser thread");
    b.open(&page);
    b.screenshot(&artifacts().join("html-report.png"), true);

    // The tiles say what the JSON summary says (exempt: 0 while the report has no such count).
    for key in ["droplets", "pass", "fail", "unknown", "exempt", "changes"] {
        let shown = b.eval(&format!(
            "document.getElementById('tile-{key}').textContent"
        ));
        let want = report["summary"][key].as_u64().unwrap_or(0);
        assert_eq!(shown, json!(want.to_string()), "tile {key}");
    }

    // The Droplet named with a script tag is text, and its script never ran.
    let names = b.eval("[...document.querySelectorAll('#findings-table td.resource .name')].map(e => e.textContent)");
    assert!(
        names.as_array().expect("names").iter().any(|n| n == EVIL),
        "{names}"
    );
    assert_eq!(b.eval("typeof window.pwned"), json!("undefined"));
    assert_eq!(b.eval("document.scripts.length"), json!(1));

    // The filter narrows the table to the rows that contain the words.
    let total = report["findings"].as_array().expect("findings").len() as u64;
    assert_eq!(visible_rows(&mut b), total);
    let evil_findings = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["resource"]["name"] == EVIL)
        .count() as u64;
    b.eval("(() => { const i = document.getElementById('filter'); i.value = 'EVIL-web'; i.dispatchEvent(new Event('input')); })()");
    assert_eq!(visible_rows(&mut b), evil_findings);
    assert!(evil_findings > 0 && evil_findings < total);
    assert_eq!(
        b.eval("document.getElementById('shown').textContent"),
        json!(evil_findings.to_string())
    );

    // A matrix cell shows only its VPC's findings of its rule.
    b.eval("(() => { const i = document.getElementById('filter'); i.value = ''; i.dispatchEvent(new Event('input')); })()");
    let cell = b.eval("(() => { const a = document.querySelector('a.cell'); a.click(); return [Number(a.textContent), a.dataset.rule]; })()");
    assert_eq!(visible_rows(&mut b), cell[0].as_u64().expect("count"));
    let rules = b.eval("[...document.querySelectorAll('#findings-table tbody tr')].filter(r => !r.hidden).map(r => r.dataset.rule)");
    assert!(rules
        .as_array()
        .expect("rules")
        .iter()
        .all(|r| *r == cell[1]));
    b.eval("document.getElementById('cell-filter-clear').click()");
    assert_eq!(visible_rows(&mut b), total);

    // Sorting by severity puts the critical findings first.
    b.eval("document.querySelector('#findings-table th').click()");
    let first = b.eval("document.querySelector('#findings-table tbody tr td').textContent.trim()");
    let any_critical = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["severity"] == "critical");
    assert!(any_critical);
    assert_eq!(first, json!("critical"));

    b.screenshot(&artifacts().join("html-report-top.png"), false);
    let errors = b.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// Replaces UUIDs and RFC 3339 times (which change every run) with placeholders.
pub(crate) fn normalize(html: &str) -> String {
    let is_uuid = |s: &[u8]| {
        s.len() == 36
            && s.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    let is_time = |s: &[u8]| {
        s.len() == 20
            && s.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    };
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else if i + 20 <= b.len() && is_time(&b[i..i + 20]) {
            out.push_str("<time>");
            i += 20;
        } else {
            let ch = html[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_snapshot() {
    let (_, html) = json_and_html().await;
    insta::assert_snapshot!("demo_audit_html", normalize(&html));
}

/// A page over one Droplet names the Droplet's VPC in its matrix from the run's own read: the
/// page itself sends no request (before, it read the Droplet again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_page_reads_only_its_droplets() {
    let (state, id) = demo_with_evil_name();
    let vpc_uuid = state.droplets[&id].vpc_uuid.clone();
    let vpc_name = state
        .vpcs
        .iter()
        .find(|v| Some(&v.id) == vpc_uuid.as_ref())
        .map(|v| v.name.clone())
        .unwrap_or_else(|| format!("default VPC ({})", state.droplets[&id].region));
    let sim = start(state).await;
    let id_arg = id.to_string();
    let run = cli(
        &sim,
        &[
            "audit",
            "--no-ssh",
            "--droplet",
            &id_arg,
            "--format",
            "html",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!(r#"<td class="group">{vpc_name}</td>"#)),
        "{vpc_name} not a matrix row"
    );
    assert!(!run.stdout.contains(r#"<td class="group">VPC unknown</td>"#));
    let log = sim.requests();
    let droplet_path = format!("/v2/droplets/{id}");
    assert!(!log.iter().any(|r| r.path == droplet_path), "{log:?}");
    // The audit's own lists (regular and GPU Droplets: no cached read in this state store
    // yet, so a full one) and nothing more.
    assert_eq!(log.iter().filter(|r| r.path == "/v2/droplets").count(), 2);
    assert_eq!(log.iter().filter(|r| r.path == "/v2/vpcs").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trend_draws_the_state_stores_history() {
    let sim = start(sim::fleet::demo()).await;
    let env = crate::remediation::Env::new(sim::FLEET_POLICY);
    env.run(&sim, &["audit", "--format", "json"]).await;
    let page = env.run(&sim, &["audit", "--format", "html"]).await;
    assert!(
        !page.stdout.contains("id=\"no-history\""),
        "earlier runs are in the store"
    );
    assert!(
        page.stdout.contains("id=\"trend-open\""),
        "the open findings chart"
    );
    assert!(
        page.stdout.contains("id=\"trend-flow\""),
        "the new and resolved chart"
    );
    // Without a usable state store there is no history to draw.
    let file = tempfile::NamedTempFile::new().expect("file");
    let path = file.path().to_str().expect("utf-8");
    let policy = crate::helpers::policy_file(sim::FLEET_POLICY);
    let args = [
        "audit",
        "--format",
        "html",
        "--policy",
        policy.path().to_str().expect("utf-8"),
    ];
    let none = cli_env(
        &sim.url(),
        &sim.token,
        &args,
        &[("DROPLETGUARD_STATE_DIR", path)],
    )
    .await;
    assert!(none.stdout.contains("id=\"no-history\""), "{}", none.stderr);
    sim.shutdown().await;
}
