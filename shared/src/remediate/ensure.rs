//! Writing a firewall once even when runs race: find it by name, create it if missing, keep
//! the oldest of that name and remove the duplicates a concurrent run left. The fixes and
//! quarantine build on it; it knows nothing of either.

use crate::digitalocean::{ApiError, Client, Firewall, FirewallRequest};

/// Whether an error may hide a write that happened (the API answered 5xx or the connection broke).
pub(crate) fn maybe_committed(e: &ApiError) -> bool {
    match e {
        ApiError::Transport { .. } => true,
        ApiError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The firewall named `name`: the oldest when races left several.
pub fn find_named<'a>(firewalls: &'a [Firewall], name: &str) -> Option<&'a Firewall> {
    firewalls
        .iter()
        .filter(|f| f.name == name)
        .min_by(|a, b| (a.created_at.as_deref(), &a.id).cmp(&(b.created_at.as_deref(), &b.id)))
}

/// What [`ensure_firewall`] did, as this call itself did it.
#[derive(Debug, Clone)]
pub(crate) struct Ensured {
    /// The firewall kept: the oldest of that name.
    pub kept: Firewall,
    /// The id of the firewall this call created, if it created one (it may not be `kept`: a
    /// concurrent run's older one wins, and this one is removed as its duplicate).
    pub created: Option<String>,
    /// Duplicates this call deleted.
    pub removed: Vec<String>,
}

impl Ensured {
    /// What this call did, in words: `created X`, `created X, then removed it as a duplicate
    /// of Y`, `found X`.
    pub fn summary(&self) -> String {
        let kept = &self.kept.id;
        match &self.created {
            Some(c) if c == kept => format!("created {c}"),
            Some(c) if self.removed.contains(c) => {
                format!("created {c}, then removed it as a duplicate of {kept} (older)")
            }
            Some(c) => format!("created {c}; {kept} (older) is kept, and another run removes {c}"),
            None => format!("found {kept}"),
        }
    }
}

/// What the caller knows of the firewall [`ensure_firewall`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// Nothing: list the firewalls to find it.
    Nothing,
    /// The run's read of the account found none of that name: create it at once (a firewall
    /// of that name made since is found by the converging re-read, and the older one kept).
    Absent,
}

/// Finds or creates the firewall `request.name`, makes sure it carries `request.tags`, and
/// removes duplicates left by concurrent runs (the oldest is kept). Idempotent by re-reading:
/// a create that answered 5xx but committed is found on the re-read, not created twice.
pub(crate) async fn ensure_firewall(
    client: &Client,
    request: &FirewallRequest,
    known: Known,
) -> Result<Ensured, ApiError> {
    for t in &request.tags {
        client.create_tag(t).await?;
    }
    let found = match known {
        Known::Nothing => find_named(&client.list_firewalls().await?, &request.name).cloned(),
        Known::Absent => None,
    };
    let (fw, created) = match found {
        Some(fw) => (fw, None),
        None => {
            let fw = create_once(client, request).await?;
            let id = fw.id.clone();
            (fw, Some(id))
        }
    };
    // Converge: concurrent runs may each have created one.
    let fws = client.list_firewalls().await?;
    let keep = find_named(&fws, &request.name).cloned().unwrap_or(fw);
    let mut removed = Vec::new();
    for dup in fws
        .iter()
        .filter(|f| f.name == request.name && f.id != keep.id)
    {
        match client.delete_firewall(&dup.id).await {
            Ok(()) => removed.push(dup.id.clone()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let missing: Vec<String> = request
        .tags
        .iter()
        .filter(|t| !keep.tags.contains(t))
        .cloned()
        .collect();
    if !missing.is_empty() {
        client.add_tags_to_firewall(&keep.id, &missing).await?;
    }
    Ok(Ensured {
        kept: keep,
        created,
        removed,
    })
}

/// Creates the firewall; after an answer that may hide a committed create, re-reads first.
async fn create_once(client: &Client, request: &FirewallRequest) -> Result<Firewall, ApiError> {
    match client.create_firewall(request).await {
        Ok(fw) => Ok(fw),
        Err(e) if maybe_committed(&e) => {
            tracing::warn!(error = %e, name = %request.name, "firewall create failed; re-reading to see whether it committed");
            let fws = client.list_firewalls().await?;
            find_named(&fws, &request.name).cloned().ok_or(e)
        }
        Err(e) => Err(e),
    }
}
