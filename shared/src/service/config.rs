//! Configuration of the functions (and of the CLI's webhook commands): secrets from AWS
//! Secrets Manager when a secret's name or ARN is configured, else from the environment.

use crate::aws::{secrets::get_secret_string, AwsClient, AwsConfig};
use crate::digitalocean::{Client, ClientConfig, Token, DEFAULT_API_URL};
use crate::policy::{Mode, Policy};
use crate::ssh_audit::SshAccess;
use crate::store::Store;
use crate::webhook::Secret;

use super::{Deps, Notifier, ServiceError};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Splits a list of webhook secrets: a JSON array of strings, or whitespace/comma separated.
pub fn parse_secret_list(text: &str) -> Result<Vec<Secret>, ServiceError> {
    let t = text.trim();
    let items: Vec<String> = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| {
            ServiceError::Config(format!("webhook secrets: not a JSON list of strings: {e}"))
        })?
    } else {
        t.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    if items.is_empty() {
        return Err(ServiceError::Config("no webhook secret configured".into()));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Secret::parse(s)
                .map_err(|e| ServiceError::Config(format!("webhook secret #{}: {e}", i + 1)))
        })
        .collect()
}

/// Reads one secret: from Secrets Manager when `arn_var` is set, else the plain variable.
async fn secret(
    aws: &mut Option<AwsClient>,
    arn_var: &str,
    plain_var: &str,
) -> Result<Option<String>, ServiceError> {
    if let Some(id) = env(arn_var) {
        if aws.is_none() {
            *aws = Some(AwsClient::new(AwsConfig::from_env()?)?);
        }
        let client = aws
            .as_ref()
            .ok_or_else(|| ServiceError::Config("AWS client".into()))?;
        let v = get_secret_string(client, &id)
            .await
            .map_err(|e| ServiceError::Config(format!("{arn_var}: {e}")))?;
        return Ok(Some(v.trim().to_string()));
    }
    Ok(env(plain_var))
}

/// The policy: `DROPLETGUARD_POLICY_TOML` (inline text), else the file `DROPLETGUARD_POLICY`,
/// else the built-in default; `DROPLETGUARD_MODE` (audit|enforce) overrides `[remediation] mode`.
pub fn policy_from_env() -> Result<Policy, ServiceError> {
    let mut policy = if let Some(text) = env("DROPLETGUARD_POLICY_TOML") {
        Policy::parse(&text, "DROPLETGUARD_POLICY_TOML")?
    } else if let Some(path) = env("DROPLETGUARD_POLICY") {
        Policy::load(std::path::Path::new(&path))?
    } else {
        Policy::default()
    };
    if let Some(m) = env("DROPLETGUARD_MODE") {
        policy.remediation.mode = match m.trim() {
            "audit" => Mode::Audit,
            "enforce" => Mode::Enforce,
            other => {
                return Err(ServiceError::Config(format!(
                    "DROPLETGUARD_MODE must be audit or enforce, not {other:?}"
                )))
            }
        };
    }
    for warning in policy.warnings() {
        tracing::warn!(%warning, "policy");
    }
    Ok(policy)
}

impl Deps {
    /// Everything a function needs, read once at cold start.
    pub async fn from_env(needs_webhook_secrets: bool) -> Result<Deps, ServiceError> {
        let mut aws = None;
        let token = secret(&mut aws, "DROPLETGUARD_TOKEN_SECRET", "DIGITALOCEAN_TOKEN")
            .await?
            .or_else(|| env("DIGITALOCEAN_ACCESS_TOKEN"))
            .ok_or_else(|| {
                ServiceError::Config("no API token: set DROPLETGUARD_TOKEN_SECRET (Secrets Manager) or DIGITALOCEAN_TOKEN".into())
            })?;
        let url = env("DIGITALOCEAN_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let client = Client::new(ClientConfig::new(url, Token::new(token)))?;
        let webhook_secrets = if needs_webhook_secrets {
            let text = secret(&mut aws, "DROPLETGUARD_WEBHOOK_SECRET", "DROPLETGUARD_WEBHOOK_SECRETS")
                .await?
                .ok_or_else(|| {
                    ServiceError::Config(
                        "no webhook secret: set DROPLETGUARD_WEBHOOK_SECRET (Secrets Manager) or DROPLETGUARD_WEBHOOK_SECRETS".into(),
                    )
                })?;
            parse_secret_list(&text)?
        } else {
            Vec::new()
        };
        // The management key: Secrets Manager, else DROPLETGUARD_SSH_KEY_FILE. The stack creates
        // its secret with a placeholder: until a key is put there, the SSH key is simply absent
        // (the service audit and password-auth removal are not run), not an error.
        let ssh = match secret(
            &mut aws,
            "DROPLETGUARD_SSH_KEY_SECRET",
            "DROPLETGUARD_SSH_KEY",
        )
        .await?
        {
            Some(text) if text.starts_with("REPLACE_ME") || text.is_empty() => {
                tracing::warn!("the SSH management key secret holds no key yet");
                SshAccess::from_env()
            }
            Some(text) => SshAccess::with_key_text(&text),
            None => SshAccess::from_env(),
        }
        .map_err(|e| ServiceError::Config(format!("SSH management key: {e}")))?;
        let policy = policy_from_env()?;
        Ok(Deps {
            client: client.keeping_reserve(policy.api.reserve_percent),
            store: Store::from_env()?,
            policy,
            webhook_secrets,
            notifier: env("DROPLETGUARD_SLACK_WEBHOOK_URL")
                .map(|u| Notifier::new(&u))
                .transpose()?,
            replay: Default::default(),
            ssh,
        })
    }
}
