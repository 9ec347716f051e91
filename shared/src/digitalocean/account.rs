//! The account: its SSH keys (`/v2/account/keys`, 10 requests a minute) and its actions
//! (`/v2/actions`, what the poller reads).

use super::client::Client;
use super::error::ApiError;
use super::models::*;
use super::paging::Page;

impl Client {
    pub async fn list_ssh_keys(&self) -> Result<Vec<SshKey>, ApiError> {
        self.list("/v2/account/keys", "ssh_keys", &[]).await
    }

    /// One page of the account's actions, newest first, and whether more pages follow.
    pub async fn actions_page(&self, page: u64) -> Result<(Vec<Action>, bool), ApiError> {
        let url = self.url("/v2/actions")?;
        let p: Page<Action> = self.page(url, "actions", page).await?;
        Ok((p.items.unwrap_or_default(), p.next.is_some()))
    }
}
