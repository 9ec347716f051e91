//! The actions poller (`actions-poller`): `/v2/actions` newer than the stored cursor, and a
//! re-check of the Droplets they touched.

use super::*;

/// The actions poller's cursor: the newest action id already handled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub last_action_id: u64,
    pub updated_at: String,
}

pub const CURSOR_KEY: &str = "cursors/actions-poller.json";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PollOutcome {
    pub actions_seen: usize,
    pub droplets: Vec<u64>,
    pub cursor: u64,
    pub report: Report,
}

/// `/v2/actions` newer than `last`, newest first, page by page until the cursor (only the
/// newest page without one).
pub(super) async fn newer_actions(
    deps: &Deps,
    last: Option<u64>,
    max_pages: u64,
) -> Result<Vec<crate::digitalocean::Action>, ServiceError> {
    let mut fresh = Vec::new();
    let mut page = 1;
    'pages: loop {
        let (actions, more) = deps.client.actions_page(page).await?;
        for a in actions {
            if last.is_some_and(|l| a.id <= l) {
                break 'pages;
            }
            fresh.push(a);
        }
        if !more || last.is_none() || page >= max_pages {
            break;
        }
        page += 1;
    }
    Ok(fresh)
}

/// The Droplets that finished actions touched, and the next cursor: the newest action seen,
/// but never past one still in progress (it is read again next time).
pub(super) fn touched_and_cursor(
    fresh: &[crate::digitalocean::Action],
    last: Option<u64>,
) -> (BTreeSet<u64>, u64) {
    let in_progress_min = fresh
        .iter()
        .filter(|a| a.status == "in-progress")
        .map(|a| a.id)
        .min();
    let done: Vec<_> = fresh.iter().filter(|a| a.status != "in-progress").collect();
    let ids: BTreeSet<u64> = done
        .iter()
        .filter(|a| a.resource_type.as_deref() == Some("droplet"))
        .filter_map(|a| a.resource_id)
        .collect();
    let newest = fresh.iter().map(|a| a.id).max();
    let mut next = match (newest, in_progress_min) {
        (Some(n), Some(p)) => n.min(p.saturating_sub(1)),
        (Some(n), None) => n,
        (None, _) => last.unwrap_or(0),
    };
    next = next.max(last.unwrap_or(0));
    (ids, next)
}

/// Reads `/v2/actions` newer than the stored cursor (newest first, page by page, stopping at
/// the cursor), re-checks the Droplets those actions touched, then moves the cursor. Actions
/// still in progress are left for the next poll. Without a cursor, only the newest page is read.
pub async fn poll_actions(deps: &Deps, max_pages: u64) -> Result<PollOutcome, ServiceError> {
    SeenBudget::seed(&deps.store, &deps.client).await;
    let run = Run::start("schedule", &deps.client);
    let cursor: Option<Cursor> = deps.store.get_json(CURSOR_KEY).await?;
    let last = cursor.as_ref().map(|c| c.last_action_id);
    let polled = poll_once(deps, &run, last, max_pages).await;
    SeenBudget::save(&deps.store, &deps.client).await;
    let (outcome, report) = match polled {
        Ok((outcome, report)) => (Some(outcome), report),
        Err(e) => match reserve_error(&e) {
            Some(reserve) => (None, run.stopped(&deps.client, reserve)),
            None => return Err(e),
        },
    };
    // Only after a re-check that finished: a failed or stopped one is retried from the same
    // cursor.
    let Some((seen, droplets, next)) = outcome.filter(|_| !report.run.stopped_early) else {
        return Ok(PollOutcome {
            actions_seen: 0,
            droplets: Vec::new(),
            cursor: last.unwrap_or(0),
            report,
        });
    };
    let updated_at = now_rfc3339();
    let c = Cursor {
        last_action_id: next,
        updated_at,
    };
    deps.store.put_json(CURSOR_KEY, &c).await?;
    Ok(PollOutcome {
        actions_seen: seen,
        droplets,
        cursor: next,
        report,
    })
}

/// One poll: the new actions, the re-check of the Droplets they touched; (actions seen,
/// Droplets re-checked, the next cursor) and the report.
pub(super) async fn poll_once(
    deps: &Deps,
    run: &Run,
    last: Option<u64>,
    max_pages: u64,
) -> Result<((usize, Vec<u64>, u64), Report), ServiceError> {
    let fresh = newer_actions(deps, last, max_pages).await?;
    let (ids, next) = touched_and_cursor(&fresh, last);
    let existing = existing_droplets(&deps.client, Touched::ids(ids)).await?;
    let droplets: Vec<u64> = existing.iter().map(|d| d.id).collect();
    let report = if existing.is_empty() {
        empty_report(run, &deps.client)
    } else {
        recheck(deps, existing, run).await?
    };
    let seen: HashSet<u64> = fresh.iter().map(|a| a.id).collect();
    Ok(((seen.len(), droplets, next), report))
}
