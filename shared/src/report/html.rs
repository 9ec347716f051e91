//! The HTML report: one self-contained page (inline CSS, a small inline script, inline SVG; no
//! network fetch of any kind), rendered with minijinja from `report.html` with HTML
//! auto-escaping on. Every string from the DigitalOcean API (names, tags, details) is
//! attacker-controlled: it reaches the page only through the template's escaping, and the page's
//! Content-Security-Policy lets only this module's own script and style run.
//!
//! The page is built from a view-model made of the report's JSON, so that fields the report
//! gains (`summary.exempt`, a finding's `first_seen` and `exemption`) show when present and read
//! as zero or empty when absent.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Report, SeverityCounts};

const TEMPLATE: &str = include_str!("report.html");
const SCRIPT: &str = include_str!("report.js");
const STYLE: &str = include_str!("report.css");

/// The matrix row of findings on the account itself, or on firewalls.
pub const ACCOUNT_GROUP: &str = "account-wide";
/// The matrix row of Droplets whose VPC is not known.
pub const UNKNOWN_GROUP: &str = "VPC unknown";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HtmlError {
    #[error("rendering the HTML report: {0}")]
    Template(#[from] minijinja::Error),
    #[error("rendering the HTML report: {0}")]
    Json(#[from] serde_json::Error),
}

/// One past run, for the trend: when it ran (RFC 3339), its open findings by severity, and how
/// many findings were new in it and resolved by it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPoint {
    pub at: String,
    pub open: SeverityCounts,
    pub new: u64,
    pub resolved: u64,
}

/// What the page shows besides the report: the matrix's grouping (Droplet id → VPC name, see
/// [`droplet_vpcs`]) and the recent runs, oldest first (empty: "no history yet").
#[derive(Debug, Clone, Copy)]
pub struct HtmlContext<'a> {
    pub groups: &'a BTreeMap<String, String>,
    pub trend: &'a [RunPoint],
}

static NO_GROUPS: BTreeMap<String, String> = BTreeMap::new();

impl Default for HtmlContext<'_> {
    /// No grouping (Droplets show under [`UNKNOWN_GROUP`]) and no history.
    fn default() -> Self {
        HtmlContext {
            groups: &NO_GROUPS,
            trend: &[],
        }
    }
}

/// The report as one HTML document (UTF-8).
pub fn to_html(report: &Report, ctx: HtmlContext<'_>) -> Result<String, HtmlError> {
    let json = serde_json::to_value(report)?;
    render(&json, ctx)
}

/// Renders a report given as its JSON (CONTRACT.md's shape).
pub fn render(report: &Value, ctx: HtmlContext<'_>) -> Result<String, HtmlError> {
    let view = build_view(report, ctx);
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)?;
    Ok(env.get_template("report.html")?.render(&view)?)
}

#[derive(Debug, Serialize)]
struct View {
    csp: String,
    style: &'static str,
    script: &'static str,
    run: RunView,
    tiles: Vec<Tile>,
    matrix: Matrix,
    findings: Vec<FindingRow>,
    changes: Vec<ChangeRow>,
    trend: Option<Trend>,
    version: &'static str,
}

#[derive(Debug, Serialize)]
struct RunView {
    id: String,
    trigger: String,
    started_at: String,
    finished_at: String,
    api_requests: u64,
    complete: bool,
    cap_reached: bool,
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Tile {
    key: &'static str,
    label: &'static str,
    value: u64,
}

fn build_view(r: &Value, ctx: HtmlContext<'_>) -> View {
    let findings = finding_rows(r, ctx.groups);
    View {
        csp: csp(),
        style: STYLE,
        script: SCRIPT,
        run: run_view(&r["run"]),
        tiles: tiles(&r["summary"]),
        matrix: matrix(&findings),
        changes: change_rows(r),
        findings,
        trend: (!ctx.trend.is_empty()).then(|| trend(ctx.trend)),
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Only this page's own script and style, by hash; nothing may be fetched.
fn csp() -> String {
    let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s));
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; img-src data:; base-uri 'none'; form-action 'none'",
        hash(SCRIPT),
        hash(STYLE)
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn run_view(run: &Value) -> RunView {
    RunView {
        id: text(&run["id"]),
        trigger: text(&run["trigger"]),
        started_at: text(&run["started_at"]),
        finished_at: text(&run["finished_at"]),
        api_requests: count(&run["api_requests"]),
        complete: run["complete"].as_bool().unwrap_or(false),
        cap_reached: run["cap_reached"].as_bool().unwrap_or(false),
        dry_run: run["dry_run"].as_bool().unwrap_or(false),
    }
}

fn tiles(summary: &Value) -> Vec<Tile> {
    [
        ("droplets", "Droplets"),
        ("pass", "pass"),
        ("fail", "fail"),
        ("unknown", "unknown"),
        ("exempt", "exempt"),
        ("changes", "changes"),
    ]
    .into_iter()
    .map(|(key, label)| Tile {
        key,
        label,
        value: count(&summary[key]),
    })
    .collect()
}

#[derive(Debug, Serialize)]
struct FindingRow {
    anchor: String,
    rule: String,
    status: String,
    severity: String,
    severity_rank: u8,
    resource_type: String,
    resource_id: String,
    resource_name: String,
    group: String,
    detail: String,
    first_seen: String,
    remediation: String,
    exemption: Option<Exemption>,
}

#[derive(Debug, Serialize)]
struct Exemption {
    reason: String,
    owner: String,
    expires: String,
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// The matrix row a finding belongs to: its Droplet's VPC, the VPC itself, or the account.
fn group_of(f: &Value, groups: &BTreeMap<String, String>) -> String {
    let res = &f["resource"];
    match res["type"].as_str().unwrap_or_default() {
        "droplet" => groups
            .get(&text(&res["id"]))
            .cloned()
            .unwrap_or_else(|| UNKNOWN_GROUP.to_string()),
        "vpc" => text(&res["name"]),
        _ => ACCOUNT_GROUP.to_string(),
    }
}

/// What remediation would do, did, or why not: `mode: planned → result`.
fn remediation_text(rem: &Value) -> String {
    let planned = text(&rem["planned"]);
    let mut result = text(&rem["result"]);
    if result.is_empty() && rem["applied"].as_bool() == Some(true) {
        result = "applied".into();
    }
    let what = match (planned.is_empty(), result.is_empty()) {
        (false, false) => format!("{planned} → {result}"),
        (false, true) => planned,
        (true, _) => result,
    };
    [text(&rem["mode"]), what]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

fn exemption(v: &Value) -> Option<Exemption> {
    v.as_object().map(|_| Exemption {
        reason: text(&v["reason"]),
        owner: text(&v["owner"]),
        expires: text(&v["expires"]),
    })
}

/// The findings, open ones before exempt ones, most severe first (the report's own order
/// within a severity).
fn finding_rows(r: &Value, groups: &BTreeMap<String, String>) -> Vec<FindingRow> {
    let list = r["findings"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut list: Vec<&Value> = list.iter().collect();
    list.sort_by_key(|f| {
        (
            f["status"] == "exempt",
            severity_rank(f["severity"].as_str().unwrap_or_default()),
        )
    });
    list.into_iter()
        .enumerate()
        .map(|(i, f)| {
            let severity = text(&f["severity"]);
            FindingRow {
                anchor: format!("finding-{}", i + 1),
                rule: text(&f["rule"]),
                status: text(&f["status"]),
                severity_rank: severity_rank(&severity),
                severity,
                resource_type: text(&f["resource"]["type"]),
                resource_id: text(&f["resource"]["id"]),
                resource_name: text(&f["resource"]["name"]),
                group: group_of(f, groups),
                detail: text(&f["detail"]),
                first_seen: text(&f["first_seen"]),
                remediation: remediation_text(&f["remediation"]),
                exemption: exemption(&f["exemption"]),
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct Matrix {
    rules: Vec<String>,
    rows: Vec<MatrixRow>,
}

#[derive(Debug, Serialize)]
struct MatrixRow {
    group: String,
    cells: Vec<Cell>,
}

/// One (group, rule) cell: how many findings, the worst severity among the open ones (`exempt`
/// when all are exempt), and the first finding's anchor.
#[derive(Debug, Serialize)]
struct Cell {
    rule: String,
    count: usize,
    worst: String,
    href: String,
}

fn matrix(findings: &[FindingRow]) -> Matrix {
    let rules: BTreeSet<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    let groups: BTreeSet<&str> = findings.iter().map(|f| f.group.as_str()).collect();
    let rows = groups
        .iter()
        .map(|g| MatrixRow {
            group: g.to_string(),
            cells: rules.iter().map(|r| cell(findings, g, r)).collect(),
        })
        .collect();
    Matrix {
        rules: rules.iter().map(|r| r.to_string()).collect(),
        rows,
    }
}

fn cell(findings: &[FindingRow], group: &str, rule: &str) -> Cell {
    let hits: Vec<&FindingRow> = findings
        .iter()
        .filter(|f| f.group == group && f.rule == rule)
        .collect();
    let worst_open = hits
        .iter()
        .filter(|f| f.status != "exempt")
        .min_by_key(|f| f.severity_rank)
        .map(|f| f.severity.clone());
    let worst = match (worst_open, hits.is_empty()) {
        (Some(s), _) => s,
        (None, false) => "exempt".to_string(),
        (None, true) => String::new(),
    };
    Cell {
        rule: rule.to_string(),
        count: hits.len(),
        worst,
        href: hits
            .first()
            .map(|f| format!("#{}", f.anchor))
            .unwrap_or_default(),
    }
}

#[derive(Debug, Serialize)]
struct ChangeRow {
    at: String,
    resource: String,
    action: String,
    rule: String,
    reason: String,
    before: String,
    after: String,
    result: String,
    ok: bool,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn change_rows(r: &Value) -> Vec<ChangeRow> {
    let list = r["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    list.iter()
        .map(|c| ChangeRow {
            at: text(&c["at"]),
            resource: format!(
                "{} {}",
                text(&c["resource"]["type"]),
                text(&c["resource"]["id"])
            ),
            action: text(&c["action"]),
            rule: text(&c["rule"]),
            reason: text(&c["reason"]),
            before: pretty(&c["before"]),
            after: pretty(&c["after"]),
            ok: c["result"].as_str() == Some("ok"),
            result: text(&c["result"]),
        })
        .collect()
}

/// The trend charts' geometry, in SVG user units; every number is computed here.
#[derive(Debug, Serialize)]
struct Trend {
    width: u32,
    height: u32,
    bar_height: u32,
    max_open: u64,
    max_bar: u64,
    first_at: String,
    last_at: String,
    series: Vec<Series>,
    bars: Vec<Bar>,
    runs: usize,
}

#[derive(Debug, Serialize)]
struct Series {
    severity: &'static str,
    points: String,
    last: u64,
}

#[derive(Debug, Serialize)]
struct Bar {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    kind: &'static str,
    title: String,
}

const CHART_W: u32 = 640;
const CHART_H: u32 = 180;
const BAR_H: u32 = 100;
const PAD: u32 = 24;

/// x of run `i` of `n`, spread over the chart's inner width.
fn x_of(i: usize, n: usize) -> u32 {
    let inner = CHART_W - 2 * PAD;
    if n <= 1 {
        return PAD + inner / 2;
    }
    PAD + (inner as u64 * i as u64 / (n as u64 - 1)) as u32
}

/// y of `v` on a chart of `height` whose top value is `max`.
fn y_of(v: u64, max: u64, height: u32) -> u32 {
    let inner = (height - 2 * PAD) as u64;
    height - PAD - (inner * v / max.max(1)) as u32
}

fn series(points: &[RunPoint], index: usize, max: u64) -> Series {
    let n = points.len();
    let value = |p: &RunPoint| p.open.by_severity()[index].1;
    Series {
        severity: SeverityCounts::default().by_severity()[index].0,
        points: points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},{}", x_of(i, n), y_of(value(p), max, CHART_H)))
            .collect::<Vec<_>>()
            .join(" "),
        last: points.last().map(value).unwrap_or(0),
    }
}

fn trend(points: &[RunPoint]) -> Trend {
    let max_open = points
        .iter()
        .flat_map(|p| p.open.by_severity().map(|(_, v)| v))
        .max()
        .unwrap_or(0);
    let max_bar = points
        .iter()
        .map(|p| p.new.max(p.resolved))
        .max()
        .unwrap_or(0);
    Trend {
        width: CHART_W,
        height: CHART_H,
        bar_height: BAR_H,
        max_open,
        max_bar,
        first_at: points.first().map(|p| p.at.clone()).unwrap_or_default(),
        last_at: points.last().map(|p| p.at.clone()).unwrap_or_default(),
        series: (0..4).map(|i| series(points, i, max_open)).collect(),
        bars: bars(points, max_bar),
        runs: points.len(),
    }
}

/// Two bars per run, new then resolved, side by side around the run's x.
fn bars(points: &[RunPoint], max: u64) -> Vec<Bar> {
    let n = points.len();
    let slot = ((CHART_W - 2 * PAD) / n.max(1) as u32).max(4);
    let w = (slot / 3).clamp(1, 24);
    let base = BAR_H - PAD;
    let mut out = Vec::with_capacity(n * 2);
    for (i, p) in points.iter().enumerate() {
        let cx = x_of(i, n);
        for (kind, v, x) in [
            ("new", p.new, cx.saturating_sub(w)),
            ("resolved", p.resolved, cx),
        ] {
            let y = y_of(v, max, BAR_H);
            out.push(Bar {
                x,
                y,
                w,
                h: base - y,
                kind,
                title: format!("{}: {v} {kind}", p.at),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(rule: &str, status: &str, severity: &str, id: &str, name: &str) -> Value {
        json!({"rule": rule, "status": status, "severity": severity,
               "resource": {"type": "droplet", "id": id, "name": name},
               "detail": format!("detail of {rule} on {name}"),
               "remediation": {"mode": "audit", "planned": null, "applied": false, "result": null}})
    }

    fn report(findings: Vec<Value>) -> Value {
        json!({"run": {"id": "r-1", "trigger": "cli", "started_at": "2026-11-30T10:00:00Z",
                       "finished_at": "2026-11-30T10:00:05Z", "api_requests": 7, "complete": true},
               "summary": {"droplets": 3, "pass": 1, "fail": 2, "unknown": 0, "changes": 0},
               "findings": findings, "changes": []})
    }

    fn groups() -> BTreeMap<String, String> {
        [("1", "prod-vpc"), ("2", "prod-vpc"), ("3", "dev <vpc>")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn api_strings_are_escaped() {
        let r = report(vec![finding(
            "firewall.missing",
            "fail",
            "critical",
            "3",
            "<script>alert(1)</script>\" onmouseover=\"x",
        )]);
        let g = groups();
        let ctx = HtmlContext {
            groups: &g,
            trend: &[],
        };
        let html = render(&r, ctx).expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("\" onmouseover=\"x"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert!(html.contains("dev &lt;vpc&gt;"));
        // One script element: the page's own.
        assert_eq!(html.matches("<script>").count(), 1);
    }

    #[test]
    fn csp_hashes_match_the_inline_script_and_style() {
        let html = render(&report(vec![]), HtmlContext::default()).expect("renders");
        let inner = |open: &str, close: &str| {
            let start = html.find(open).expect("open") + open.len();
            let end = html[start..].find(close).expect("close") + start;
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&html[start..end]))
        };
        let csp = csp();
        assert!(csp.contains(&format!("'sha256-{}'", inner("<script>", "</script>"))));
        assert!(csp.contains(&format!("'sha256-{}'", inner("<style>", "</style>"))));
        assert!(csp.starts_with("default-src 'none'"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn tiles_read_the_summary_and_absent_counts_are_zero() {
        let mut r = report(vec![]);
        let html = render(&r, HtmlContext::default()).expect("renders");
        assert!(html.contains(r#"id="tile-fail">2<"#));
        assert!(html.contains(r#"id="tile-exempt">0<"#));
        r["summary"]["exempt"] = json!(4);
        let html = render(&r, HtmlContext::default()).expect("renders");
        assert!(html.contains(r#"id="tile-exempt">4<"#));
        assert!(html.contains("No history yet"));
    }

    #[test]
    fn matrix_cells_take_the_worst_open_severity() {
        let mut exempt = finding("ssh.password-auth", "exempt", "critical", "3", "c");
        exempt["exemption"] =
            json!({"reason": "vendor box", "owner": "ops", "expires": "2027-01-31"});
        exempt["first_seen"] = json!("2026-11-01T00:00:00Z");
        let r = report(vec![
            finding("firewall.world-open", "fail", "medium", "1", "a"),
            finding("firewall.world-open", "fail", "high", "2", "b"),
            exempt,
        ]);
        let g = groups();
        let rows = finding_rows(&r, &g);
        let order: Vec<(&str, &str)> = rows
            .iter()
            .map(|f| (f.severity.as_str(), f.status.as_str()))
            .collect();
        assert_eq!(
            order,
            [("high", "fail"), ("medium", "fail"), ("critical", "exempt")],
            "open findings first, most severe first"
        );
        let m = matrix(&rows);
        assert_eq!(m.rules, ["firewall.world-open", "ssh.password-auth"]);
        let prod = m.rows.iter().find(|r| r.group == "prod-vpc").expect("row");
        assert_eq!(
            (prod.cells[0].count, prod.cells[0].worst.as_str()),
            (2, "high")
        );
        assert_eq!(prod.cells[0].href, "#finding-1");
        assert_eq!(prod.cells[1].count, 0);
        let dev = m.rows.iter().find(|r| r.group == "dev <vpc>").expect("row");
        assert_eq!(dev.cells[1].worst, "exempt");
        let html = render(
            &r,
            HtmlContext {
                groups: &g,
                trend: &[],
            },
        )
        .expect("renders");
        assert!(html.contains("vendor box (ops, until 2027-01-31)"));
        assert!(html.contains("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn trend_scales_to_the_largest_count() {
        let p = |at: &str, critical, low, new, resolved| RunPoint {
            at: at.into(),
            open: SeverityCounts {
                critical,
                high: 0,
                medium: 0,
                low,
            },
            new,
            resolved,
        };
        let points = [p("t1", 10, 0, 10, 0), p("t2", 5, 2, 2, 7)];
        let t = trend(&points);
        assert_eq!(t.max_open, 10);
        // Top of the chart for the maximum, the baseline for zero.
        assert_eq!(
            t.series[0].points,
            format!("24,24 616,{}", CHART_H - 24 - 66)
        );
        assert_eq!(
            t.series[3].points,
            format!("24,{0} 616,{1}", CHART_H - 24, CHART_H - 24 - 26)
        );
        assert_eq!(t.series[0].last, 5);
        let tallest = t.bars.iter().max_by_key(|b| b.h).expect("bars");
        assert_eq!((tallest.kind, tallest.h), ("new", BAR_H - 48));
        let html = render(
            &report(vec![]),
            HtmlContext {
                groups: &NO_GROUPS,
                trend: &points,
            },
        )
        .expect("renders");
        assert!(html.contains(r#"<polyline class="line-critical" points="24,24 616,90">"#));
        assert!(!html.contains("No history yet"));
    }

    #[test]
    fn remediation_reads_as_a_sentence() {
        let r = |v: Value| remediation_text(&v);
        let plan = serde_json::json!({"mode": "enforce", "planned": "attach", "applied": true, "result": "ok"});
        assert_eq!(r(plan), "enforce: attach → ok");
        let none = serde_json::json!({"mode": "enforce", "planned": null, "applied": false, "result": "no fix"});
        assert_eq!(r(none), "enforce: no fix");
        let audit =
            serde_json::json!({"mode": "audit", "planned": null, "applied": false, "result": null});
        assert_eq!(r(audit), "audit");
    }
}
