//! `dropletguard demo`: the built-in simulator with an insecure sample fleet; audit,
//! remediate, audit again, and show before and after.

use std::process::ExitCode;

use anyhow::{Context, Result};
use shared::remediate::{remediate, RemediateOptions};
use shared::report::to_table;
use shared::ssh_audit::SshAccess;
use shared::store::{DirStore, Store};
use shared::text::printable;
use shared::{Policy, Scope};

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

/// Writes a report's HTML page to `path`, returning the path.
async fn write_html(
    client: &shared::digitalocean::Client,
    report: &shared::report::Report,
    path: &std::path::Path,
) -> Result<std::path::PathBuf> {
    let html = shared::report::html::to_html_by_vpc(client, report, &[]).await?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

pub async fn run() -> Result<ExitCode> {
    let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let state = sim::fleet::demo();
    let droplets = state.droplets.len();
    let s = sim::Sim::start_local(&token, state)
        .await
        .context("starting the simulator")?;
    let policy = Policy::parse(DEMO_POLICY, "demo-policy.toml")?;
    let dir = std::env::temp_dir().join(format!(
        "dropletguard-demo-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let store = Store::Dir(DirStore::new(&dir));
    let client = crate::client_for(&s.url(), &token)?;
    let width = crate::terminal_width();
    let ssh = SshAccess::default();

    println!(
        "dropletguard demo: a simulated DigitalOcean account at {} with {droplets} Droplets.",
        s.url()
    );
    println!(
        "Policy: SSH only from {}, mode = \"enforce\".\n",
        sim::MANAGEMENT_CIDR
    );

    println!("== 1. audit ==");
    let before = shared::audit::audit(&client, &policy, None, &Scope::all(), "cli", &ssh).await?;
    println!("{}\n", to_table(&before, width).trim_end());

    println!("== 2. remediate ==");
    let opts = RemediateOptions {
        scope: Scope::all(),
        dry_run: false,
        trigger: "cli",
        ssh: &ssh,
        now: None,
        ignore_grace: false,
        started: None,
    };
    let fixed = remediate(&client, &policy, &store, opts).await?;
    for c in &fixed.changes {
        println!(
            "  {} {} {}: {}",
            printable(&c.action),
            c.resource.kind.as_str(),
            printable(&c.resource.id),
            printable(&c.result)
        );
    }
    println!(
        "  {} changes, each recorded in {}/ledger\n",
        fixed.changes.len(),
        dir.display()
    );

    println!("== 3. audit again ==");
    let after = shared::audit::audit(&client, &policy, None, &Scope::all(), "cli", &ssh).await?;
    println!("{}\n", to_table(&after, width).trim_end());

    println!(
        "Before: {} findings on {} failing Droplets. After: {} findings on {} failing Droplets.",
        before.findings.len(),
        before.summary.fail,
        after.findings.len(),
        after.summary.fail
    );
    println!("What is left has no safe automatic fix (open ports to review, VPC moves, failed firewalls).");
    let before_html = write_html(&client, &before, &dir.join("before.html")).await?;
    let after_html = write_html(&client, &fixed, &dir.join("after.html")).await?;
    println!(
        "\nHTML reports (open in a browser):\n  before: {}\n  after:  {}",
        before_html.display(),
        after_html.display()
    );
    println!(
        "\nRun it yourself: `dropletguard sim --droplets 1000` in one terminal, then\n`DIGITALOCEAN_API_URL=http://127.0.0.1:8080 DIGITALOCEAN_TOKEN=dropletguard-sim dropletguard audit --no-ssh` in another\n(simulated Droplets have no SSH servers to probe)."
    );
    s.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
