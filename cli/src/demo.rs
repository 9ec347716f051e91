//! `dropletguard demo`: the built-in simulator with an insecure sample fleet, audited.

use std::process::ExitCode;

use anyhow::{Context, Result};
use shared::report::to_table;
use shared::{Policy, Scope};

pub async fn run() -> Result<ExitCode> {
    let token = format!("demo-{}", uuid_like());
    let state = sim::fleet::demo();
    let droplets = state.droplets.len();
    let s = sim::Sim::start_local(&token, state)
        .await
        .context("starting the simulator")?;
    let policy = Policy::parse(sim::FLEET_POLICY, "demo-policy.toml")?;
    println!(
        "dropletguard demo: a simulated DigitalOcean account at {} with {droplets} Droplets.",
        s.url()
    );
    println!(
        "Policy: the built-in defaults, with SSH allowed only from {}.\n",
        sim::MANAGEMENT_CIDR
    );
    let client = crate::client_for(&s.url(), &token)?;
    let report = shared::audit::audit(&client, &policy, &Scope::all(), "cli").await?;
    println!("{}", to_table(&report, crate::terminal_width()).trim_end());
    println!(
        "\nRun it yourself: `dropletguard sim --droplets 1000` in one terminal, then\n`DIGITALOCEAN_API_URL=http://127.0.0.1:8080 DIGITALOCEAN_TOKEN=dropletguard-sim dropletguard audit` in another."
    );
    s.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
    )
}
