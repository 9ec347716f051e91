//! `dropletguard demo`: the built-in simulator with an insecure sample fleet; audit,
//! remediate, audit again, and show before and after.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use shared::digitalocean::Client;
use shared::remediate::{remediate, RemediateOptions};
use shared::report::{to_table, Report};
use shared::ssh_audit::SshAccess;
use shared::store::{DirStore, Store};
use shared::text::printable;
use shared::{Policy, Scope};

use crate::output::outln;

const DEMO_POLICY: &str = r#"
[management]
cidrs = ["203.0.113.0/24"]

[remediation]
mode = "enforce"
max_changes_per_run = 100

# The simulated Droplets have no SSH servers to probe.
[ssh]
probe = false
"#;

/// The file that marks a directory as the demo's own, so a later demo may empty it.
const MARKER: &str = ".dropletguard-demo";

/// The demo's directory when `--out` is not given: one fixed place, emptied by each demo, so
/// repeated demos leave one directory, not one each.
pub fn default_out() -> PathBuf {
    std::env::temp_dir().join("dropletguard-demo")
}

/// Makes `dir` empty and the demo's: a directory an earlier demo made is emptied, any other
/// non-empty one is refused (nothing in it is touched).
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).is_file() {
            anyhow::bail!(
                "--out {}: the directory is not empty and was not made by the demo; choose another",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `dropletguard demo`; the next demo empties it\n",
    )
    .with_context(|| format!("writing {}", dir.join(MARKER).display()))
}

/// Writes a report's HTML page to `dir/name`, returning the path.
async fn write_html(client: &Client, report: &Report, dir: &Path, name: &str) -> Result<PathBuf> {
    let html = shared::report_page::to_html_by_vpc(client, report, &[]).await?;
    let path = dir.join(name);
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The demo, its files (HTML reports, ledger) in `out`.
pub async fn run(out: &Path) -> Result<ExitCode> {
    prepare(out)?;
    let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let state = sim::fleet::demo();
    let droplets = state.droplets.len();
    let s = sim::Sim::start_local(&token, state)
        .await
        .context("starting the simulator")?;
    let policy = Policy::parse(DEMO_POLICY, "demo-policy.toml")?;
    let client = crate::client_for(&s.url(), &token)?;
    outln!(
        "dropletguard demo: a simulated DigitalOcean account at {} with {droplets} Droplets.",
        s.url()
    )?;
    outln!(
        "Policy: SSH only from {}, mode = \"enforce\".\n",
        sim::MANAGEMENT_CIDR
    )?;
    let result = before_and_after(&client, &policy, out).await;
    s.shutdown().await;
    result?;
    outln!(
        "\nRun it yourself: `dropletguard sim --droplets 1000 --token dropletguard-sim` in one terminal, then\n`DIGITALOCEAN_API_URL=http://127.0.0.1:8080 DIGITALOCEAN_TOKEN=dropletguard-sim DROPLETGUARD_STATE_DIR=/tmp/dropletguard-sim-state dropletguard audit --no-ssh` in another\n(simulated Droplets have no SSH servers to probe; the state directory keeps the simulated account out of your real store)."
    )?;
    outln!(
        "\nThe demo's files are in {0} (the next demo empties it; `rm -rf {0}` removes it).",
        out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Audit, remediate, audit again, with the tables and the HTML pages.
async fn before_and_after(client: &Client, policy: &Policy, out: &Path) -> Result<()> {
    let width = crate::terminal_width();
    let ssh = SshAccess::default();
    outln!("== 1. audit ==")?;
    let before = shared::audit::audit(client, policy, None, &Scope::all(), "cli", &ssh).await?;
    outln!("{}\n", to_table(&before, width).trim_end())?;
    outln!("== 2. remediate ==")?;
    let fixed = fix(client, policy, out, &ssh).await?;
    outln!("== 3. audit again ==")?;
    let after = shared::audit::audit(client, policy, None, &Scope::all(), "cli", &ssh).await?;
    outln!("{}\n", to_table(&after, width).trim_end())?;
    outln!(
        "Before: {} findings on {} failing Droplets. After: {} findings on {} failing Droplets.",
        before.findings.len(),
        before.summary.fail,
        after.findings.len(),
        after.summary.fail
    )?;
    outln!("What is left has no safe automatic fix (open ports to review, VPC moves, failed firewalls).")?;
    let before_html = write_html(client, &before, out, "before.html").await?;
    let after_html = write_html(client, &fixed, out, "after.html").await?;
    outln!(
        "\nHTML reports (open in a browser):\n  before: {}\n  after:  {}",
        before_html.display(),
        after_html.display()
    )?;
    Ok(())
}

/// Remediates in `enforce` mode with `out` as the state store, printing each change.
async fn fix(client: &Client, policy: &Policy, out: &Path, ssh: &SshAccess) -> Result<Report> {
    let store = Store::Dir(DirStore::new(out));
    let opts = RemediateOptions {
        scope: Scope::all(),
        dry_run: false,
        trigger: "cli",
        ssh,
        now: None,
        ignore_grace: false,
        started: None,
    };
    let fixed = remediate(client, policy, &store, opts).await?;
    for c in &fixed.changes {
        outln!(
            "  {} {} {}: {}",
            printable(&c.action),
            c.resource.kind.as_str(),
            printable(&c.resource.id),
            printable(&c.result)
        )?;
    }
    outln!(
        "  {} changes, each recorded in {}/ledger\n",
        fixed.changes.len(),
        out.display()
    )?;
    Ok(fixed)
}
