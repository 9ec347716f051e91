//! `dropletguard`: audit a DigitalOcean account's Droplets against a policy, from a laptop.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use shared::digitalocean::{Client, ClientConfig, Token};
use shared::remediate::RemediateOptions;
use shared::report::{to_sarif, to_table, Report};
use shared::ssh_audit::SshAccess;
use shared::store::{StateStore, Store};
use shared::text::{printable, printable_lines};
use shared::webhook::{sign, verify, Secret};
use shared::{Policy, Scope};

/// The simulator's default bearer token (`dropletguard sim` without `--token`).
const SIM_TOKEN: &str = "dropletguard-sim";

mod demo;
mod output;

use output::outln;

#[derive(Parser)]
#[command(
    name = "dropletguard",
    version,
    about = "Keeps a DigitalOcean account's Droplets secure"
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Sarif,
    /// One self-contained HTML page (README: "The HTML report").
    Html,
}

#[derive(Subcommand)]
enum Command {
    /// Check every Droplet (or the named ones) against the policy. Exit 0 compliant, 1 findings, 2 error.
    Audit {
        /// Policy file (TOML); else $DROPLETGUARD_POLICY; else the built-in default policy.
        #[arg(long, env = "DROPLETGUARD_POLICY")]
        policy: Option<PathBuf>,
        /// Only this Droplet (repeatable).
        #[arg(long = "droplet", value_name = "ID")]
        droplets: Vec<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Leave out the checks that need a connection to the Droplet.
        #[arg(long)]
        no_ssh: bool,
    },
    /// Audit, then apply the policy's `enforce` fixes. Exit 0 nothing left failing, 1 findings remain, 2 error.
    Remediate {
        /// Policy file (TOML); else $DROPLETGUARD_POLICY; else the built-in default policy.
        #[arg(long, env = "DROPLETGUARD_POLICY")]
        policy: Option<PathBuf>,
        /// Only this Droplet (repeatable).
        #[arg(long = "droplet", value_name = "ID")]
        droplets: Vec<u64>,
        /// Print the plan; send no write request at all.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Leave out the checks that need a connection to the Droplet.
        #[arg(long)]
        no_ssh: bool,
    },
    /// From the state store: open findings by age, time to resolve, exemptions in force.
    Findings {
        /// Policy file (TOML) whose exemptions to list; else $DROPLETGUARD_POLICY; else none.
        #[arg(long, env = "DROPLETGUARD_POLICY")]
        policy: Option<PathBuf>,
        /// How far back time to resolve looks ("30d", "12h").
        #[arg(long, default_value = "30d")]
        window: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Isolate a Droplet: tag it with the quarantine tag, whose firewall denies everything outside the management ranges.
    Quarantine {
        #[arg(long = "droplet", value_name = "ID")]
        droplet: u64,
        /// Why (kept in the quarantine record and the ledger).
        #[arg(long)]
        reason: String,
        #[arg(long, env = "DROPLETGUARD_POLICY")]
        policy: Option<PathBuf>,
    },
    /// Undo a quarantine exactly: remove the quarantine tag (or put back what an earlier version detached).
    Restore {
        #[arg(long = "droplet", value_name = "ID")]
        droplet: u64,
        #[arg(long, env = "DROPLETGUARD_POLICY")]
        policy: Option<PathBuf>,
    },
    /// Debug a webhook integration: check a delivery's signature, or sign and send an event.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Start the built-in simulator with an insecure sample fleet, audit, remediate, audit again.
    Demo {
        /// Where the demo writes its HTML reports and ledger; emptied first if an earlier
        /// demo made it [default: dropletguard-demo in the temporary directory].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Serve the DigitalOcean API simulator until stopped.
    Sim(SimArgs),
}

#[derive(clap::Args)]
struct SimArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Droplets in the generated fleet.
    #[arg(long, default_value_t = 100)]
    droplets: usize,
    /// Firewalls beyond the fleet's own: each allows tcp 443 from the world to 5 clean
    /// Droplets by id, and changes no finding (`make bench` uses one per 10 Droplets).
    #[arg(long, default_value_t = 0)]
    extra_firewalls: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Latency added to every API answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of Droplets given a defect, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.3)]
    defect_rate: f64,
    /// The bearer token clients must send.
    #[arg(
        long,
        env = "DIGITALOCEAN_TOKEN",
        default_value = SIM_TOKEN,
        hide_env_values = true
    )]
    token: String,
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Check a delivery's signature. Prints `valid` or `invalid: <reason>`; exit 0 valid, 1 invalid.
    Verify {
        #[command(flatten)]
        secrets: SecretArgs,
        /// A header as received, `name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The raw body as received.
        #[arg(long)]
        body_file: PathBuf,
        /// The time to check the timestamp against (unix seconds; default now).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Sign an event and POST it to a receiver. Exit 0 on a 2xx answer.
    Send {
        #[arg(long)]
        url: String,
        #[command(flatten)]
        secrets: SecretArgs,
        /// The event body (JSON), sent byte for byte.
        #[arg(long)]
        event_file: PathBuf,
    },
}

/// Where the webhook signing secrets come from: files, the environment, or (seen by `ps` and
/// kept in shell history, so warned about) the command line.
#[derive(clap::Args)]
struct SecretArgs {
    /// A file holding a signing secret (`whsec_...`, surrounding whitespace ignored);
    /// repeatable (key rotation).
    #[arg(long = "secret-file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A signing secret on the command line, where other users' `ps` and your shell history
    /// see it; prefer --secret-file or $DROPLETGUARD_WEBHOOK_SECRETS. Repeatable.
    #[arg(long = "secret", value_name = "whsec_...")]
    inline: Vec<String>,
}

/// The variable a signing secret is read from when no --secret-file or --secret is given.
/// The secrets themselves, as the functions read them inline: separated by spaces or commas,
/// or a JSON list.
const WEBHOOK_SECRET_ENV: &str = "DROPLETGUARD_WEBHOOK_SECRETS";

impl SecretArgs {
    /// The secrets, in the order given: files, then command-line values; else the environment.
    /// Errors name the file or flag whose secret is not valid, never the secret.
    fn resolve(&self) -> Result<Vec<Secret>> {
        let mut out = Vec::new();
        for f in &self.files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--secret-file {}", f.display()))?;
            out.push(
                Secret::parse(text.trim())
                    .with_context(|| format!("--secret-file {}", f.display()))?,
            );
        }
        if !self.inline.is_empty() {
            eprintln!("warning: --secret is visible to other users (ps) and kept in shell history; prefer --secret-file or ${WEBHOOK_SECRET_ENV}");
        }
        for (i, s) in self.inline.iter().enumerate() {
            out.push(Secret::parse(s).with_context(|| format!("--secret #{}", i + 1))?);
        }
        if out.is_empty() {
            let text = std::env::var(WEBHOOK_SECRET_ENV).map_err(|_| {
                anyhow::anyhow!(
                    "no signing secret: give --secret-file FILE or set ${WEBHOOK_SECRET_ENV}"
                )
            })?;
            out = shared::service::parse_secret_list(&text)
                .with_context(|| format!("${WEBHOOK_SECRET_ENV}"))?;
        }
        Ok(out)
    }
}

fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load_policy(path: Option<&PathBuf>) -> Result<Policy> {
    match path {
        Some(p) => Ok(Policy::load(p)?),
        None => Ok(Policy::default()),
    }
}

/// The policy of a run that reads and may change the account, its warnings said once on
/// stderr before any output (`Policy::warnings`: empty management ranges).
fn load_run_policy(path: Option<&PathBuf>) -> Result<Policy> {
    let policy = load_policy(path)?;
    for warning in policy.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(policy)
}

async fn print_report(report: &Report, format: Format, client: &Client) -> Result<()> {
    // JSON and SARIF escape control characters as JSON requires; the table escapes them.
    let text = match format {
        Format::Html => {
            // The trend, when there is a state store with history.
            let trend = match Store::from_env() {
                Ok(store) => shared::history::trend(&store).await,
                Err(_) => Vec::new(),
            };
            shared::report_page::to_html_by_vpc(client, report, &trend).await?
        }
        // Written as it is encoded: a 10,000-Droplet report is megabytes.
        Format::Json => return print_json(report),
        Format::Sarif => return print_json(&to_sarif(report)),
        Format::Table => to_table(report, terminal_width()),
    };
    outln!("{}", text.trim_end())?;
    Ok(())
}

/// `value` as pretty JSON and a newline on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    Ok(output::json(value)?)
}

/// 2 when the run stopped early to keep the incident-response reserve (it could not
/// complete); 1 when a finding is `fail` or `unknown`, or the run could not read the whole
/// account (never 0 for an incomplete run); else 0.
fn exit_status(report: &Report) -> ExitCode {
    if report.run.stopped_early {
        ExitCode::from(2)
    } else if report.has_findings() || !report.run.complete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
}

async fn audit(
    policy: Option<PathBuf>,
    droplets: Vec<u64>,
    format: Format,
    no_ssh: bool,
) -> Result<ExitCode> {
    let policy = load_run_policy(policy.as_ref())?;
    let client = Client::from_env()?.keeping_reserve(policy.api.reserve_percent);
    let scope = Scope {
        droplet_ids: (!droplets.is_empty()).then(|| droplets.into_iter().collect()),
        no_ssh,
        ..Scope::default()
    };
    let ssh = SshAccess::from_env()?;
    let report = match Store::from_env() {
        Ok(store) => {
            shared::audit::audit_recorded(&client, &policy, &store, &scope, "cli", &ssh).await?
        }
        Err(e) => {
            tracing::warn!(error = %e, "no state store: findings history not kept");
            shared::audit::audit(&client, &policy, None, &scope, "cli", &ssh).await?
        }
    };
    print_report(&report, format, &client).await?;
    Ok(exit_status(&report))
}

async fn remediate(
    policy: Option<PathBuf>,
    droplets: Vec<u64>,
    dry_run: bool,
    format: Format,
    no_ssh: bool,
) -> Result<ExitCode> {
    let policy = load_run_policy(policy.as_ref())?;
    let client = Client::from_env()?.keeping_reserve(policy.api.reserve_percent);
    let store = Store::from_env()?;
    let scope = Scope {
        droplet_ids: (!droplets.is_empty()).then(|| droplets.into_iter().collect()),
        no_ssh,
        ..Scope::default()
    };
    let ssh = SshAccess::from_env()?;
    let opts = RemediateOptions {
        scope,
        dry_run,
        trigger: "cli",
        ssh: &ssh,
        now: None,
        ignore_grace: false,
        started: None,
    };
    let report = shared::remediate::remediate(&client, &policy, &store, opts).await?;
    print_report(&report, format, &client).await?;
    if !dry_run {
        eprintln!("records: {}", printable(&store.location()));
    }
    Ok(exit_status(&report))
}

async fn findings(policy: Option<PathBuf>, window: &str, format: Format) -> Result<ExitCode> {
    let policy = load_policy(policy.as_ref())?;
    let window = shared::policy::PolicyDuration::parse(window)
        .map_err(|e| anyhow::anyhow!("--window: {e}"))?;
    let window = chrono::Duration::from_std(window.0).context("--window is too long")?;
    let store = Store::from_env()?;
    let index = shared::history::load_index(&store).await?;
    let view = shared::history::overview(&index, &policy.exemptions, chrono::Utc::now(), window);
    match format {
        Format::Json => output::json(&view)?,
        Format::Table => output::write_out(|w| w.write_all(view.to_text().as_bytes()))?,
        Format::Sarif | Format::Html => anyhow::bail!("findings prints table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn quarantine(droplet: u64, reason: String, policy: Option<PathBuf>) -> Result<ExitCode> {
    let policy = load_policy(policy.as_ref())?;
    // Incident response: it may spend the requests the other runs keep for it.
    let client = Client::from_env()?.spending_reserve();
    let store = Store::from_env()?;
    let run = uuid::Uuid::new_v4().to_string();
    let out =
        shared::remediate::quarantine(&client, &policy, &store, droplet, &reason, "cli", &run)
            .await?;
    if out.changed {
        outln!(
            "Droplet {droplet} ({}) is quarantined: tag {} attaches firewall {}, which denies everything outside the management ranges, both ways (SSH from them stays open). No other tag or firewall was touched.",
            printable(&out.record.droplet_name),
            printable(&out.record.quarantine_tag),
            printable(&policy.remediation.quarantine_name)
        )?;
    } else {
        outln!(
            "Droplet {droplet} ({}) was already quarantined; nothing changed.",
            printable(&out.record.droplet_name)
        )?;
    }
    outln!(
        "Recorded before quarantine: tags [{}]. Record: {}/quarantine/{droplet}.json",
        printable(&out.record.tags.join(", ")),
        printable(&store.location())
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn restore(droplet: u64, policy: Option<PathBuf>) -> Result<ExitCode> {
    let policy = load_policy(policy.as_ref())?;
    let client = Client::from_env()?.spending_reserve();
    let store = Store::from_env()?;
    let run = uuid::Uuid::new_v4().to_string();
    let out = shared::remediate::restore(&client, &policy, &store, droplet, "cli", &run).await?;
    if out.changed {
        outln!(
            "Droplet {droplet} ({}) is restored ({} method): tags [{}]{}.",
            printable(&out.record.droplet_name),
            out.record.method,
            printable(&out.record.tags.join(", ")),
            if out.record.firewall_ids.is_empty() {
                String::new()
            } else {
                format!(
                    ", firewalls by id [{}]",
                    printable(&out.record.firewall_ids.join(", "))
                )
            }
        )?;
        for c in &out.changes {
            if c.result != "ok" {
                outln!("note: {}", printable(&c.result))?;
            }
        }
    } else {
        outln!(
            "Droplet {droplet} ({}) was already restored; nothing changed.",
            printable(&out.record.droplet_name)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn webhook(command: WebhookCommand) -> Result<ExitCode> {
    match command {
        WebhookCommand::Verify {
            secrets,
            headers,
            body_file,
            now,
        } => {
            let secrets = secrets.resolve()?;
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .with_context(|| format!("--header {h:?} is not `name: value`"))
                })
                .collect::<Result<Vec<_>>>()?;
            let body = std::fs::read(&body_file)
                .with_context(|| format!("reading {}", body_file.display()))?;
            webhook_verify(&secrets, &headers, &body, now.unwrap_or_else(unix_now))
        }
        WebhookCommand::Send {
            url,
            secrets,
            event_file,
        } => {
            let secret = match secrets.resolve()?.as_slice() {
                [one] if one.is_public_key() => anyhow::bail!(
                    "a whpk_ public key verifies v1a signatures and cannot sign; give the whsec_ secret"
                ),
                [one] => one.clone(),
                _ => anyhow::bail!("webhook send signs with one secret; give one"),
            };
            let body = std::fs::read(&event_file)
                .with_context(|| format!("reading {}", event_file.display()))?;
            if let Err(e) = shared::webhook::parse_event(&body) {
                let warning = format!("{}: {e}", event_file.display());
                eprintln!("warning: {} (sending it anyway)", printable(&warning));
            }
            webhook_send(&url, &secret, body).await
        }
    }
}

/// Prints `valid` (exit 0) or `invalid: <reason>` (exit 1).
fn webhook_verify(
    secrets: &[Secret],
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<ExitCode> {
    match verify(secrets, headers, body, now) {
        Ok(v) => {
            outln!("valid")?;
            eprintln!(
                "webhook-id {} at {}, secret #{}",
                printable(&v.id),
                v.timestamp,
                v.secret_index + 1
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            outln!("invalid: {}", printable(&e.to_string()))?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Signs `body` as a Standard Webhooks delivery and POSTs it; exit 0 on a 2xx answer.
async fn webhook_send(url: &str, secret: &Secret, body: Vec<u8>) -> Result<ExitCode> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let ts = unix_now();
    let sig = sign(secret, &id, ts, &body);
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    eprintln!(
        "{} {} (webhook-id {id})",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    outln!("{}", printable_lines(text.trim_end()))?;
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn serve_sim(args: SimArgs) -> Result<ExitCode> {
    let SimArgs {
        listen,
        droplets,
        extra_firewalls,
        seed,
        latency_ms,
        defect_rate,
        token,
    } = args;
    if !(0.0..=1.0).contains(&defect_rate) {
        anyhow::bail!("--defect-rate must be between 0.0 and 1.0 (got {defect_rate})");
    }
    let mut spec = sim::FleetSpec::new(droplets, seed);
    spec.defect_rate = defect_rate;
    spec.extra_firewalls = extra_firewalls;
    let mut state = sim::fleet::generate(&spec);
    state.faults.latency_ms = latency_ms;
    let s = sim::Sim::start(listen, &token, state)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // A closed stderr (a reader that took the first line) must not stop the simulator.
    use std::io::Write;
    // The default token is the simulator's own and is shown; any other may be a real one.
    let token_hint = if token == SIM_TOKEN {
        SIM_TOKEN
    } else {
        "<the token given with --token>"
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "DigitalOcean API simulator on {0} with {droplets} Droplets (seed {seed}); send the token given with --token or $DIGITALOCEAN_TOKEN.\n\
         Try: DIGITALOCEAN_API_URL={0} DIGITALOCEAN_TOKEN={token_hint} DROPLETGUARD_STATE_DIR=/tmp/dropletguard-sim-state dropletguard audit --no-ssh   (simulated Droplets have no SSH servers to probe; a state directory of its own keeps the simulated account out of your real store)\n\
         Controls (with the same bearer token): GET {0}/_sim/requests, GET|PUT {0}/_sim/faults, GET {0}/_sim/expected; the API's own writes change it (POST {0}/v2/tags/NAME/resources tags a Droplet). Ctrl-C stops.",
        s.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    s.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Audit {
            policy,
            droplets,
            format,
            no_ssh,
        } => audit(policy, droplets, format, no_ssh).await,
        Command::Remediate {
            policy,
            droplets,
            dry_run,
            format,
            no_ssh,
        } => remediate(policy, droplets, dry_run, format, no_ssh).await,
        Command::Findings {
            policy,
            window,
            format,
        } => findings(policy, &window, format).await,
        Command::Quarantine {
            droplet,
            reason,
            policy,
        } => quarantine(droplet, reason, policy).await,
        Command::Restore { droplet, policy } => restore(droplet, policy).await,
        Command::Webhook { command } => webhook(command).await,
        Command::Demo { out } => demo::run(&out.unwrap_or_else(demo::default_out)).await,
        Command::Sim(args) => serve_sim(args).await,
    }
}

/// Builds a client for a simulator URL and token (the demo's, and tests').
pub(crate) fn client_for(url: &str, token: &str) -> Result<Client> {
    Ok(Client::new(ClientConfig::new(url, Token::new(token)))?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
