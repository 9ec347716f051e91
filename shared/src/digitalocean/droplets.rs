//! Droplets: the lists (regular, GPU, by tag), one Droplet, the firewalls that cover one
//! (`/v2/droplets`, DigitalOcean API reference "Droplets").

use super::client::Client;
use super::error::ApiError;
use super::models::*;

impl Client {
    /// Regular (non-GPU) Droplets: the API's default list.
    pub async fn list_droplets(&self) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", "droplets", &[]).await
    }

    /// GPU Droplets, which the default list hides.
    pub async fn list_gpu_droplets(&self) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", "droplets", &[("type", "gpus")])
            .await
    }

    pub async fn list_droplets_by_tag(&self, tag: &str) -> Result<Vec<Droplet>, ApiError> {
        self.list("/v2/droplets", "droplets", &[("tag_name", tag)])
            .await
    }

    pub async fn get_droplet(&self, id: u64) -> Result<Droplet, ApiError> {
        self.get_one(&format!("/v2/droplets/{id}"), "droplet").await
    }

    pub async fn droplet_firewalls(&self, id: u64) -> Result<Vec<Firewall>, ApiError> {
        self.list(&format!("/v2/droplets/{id}/firewalls"), "firewalls", &[])
            .await
    }
}
