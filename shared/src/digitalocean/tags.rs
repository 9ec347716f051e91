//! Tags: the list, creating one, tagging and untagging Droplets (`/v2/tags`).

use reqwest::Method;

use super::client::{encode_segment, Client};
use super::error::ApiError;
use super::models::*;

impl Client {
    pub async fn list_tags(&self) -> Result<Vec<Tag>, ApiError> {
        self.list("/v2/tags", "tags", &[]).await
    }

    pub async fn create_tag(&self, name: &str) -> Result<(), ApiError> {
        self.write(
            Method::POST,
            "/v2/tags",
            &serde_json::json!({ "name": name }),
        )
        .await
    }

    pub async fn tag_droplets(&self, tag: &str, droplet_ids: &[u64]) -> Result<(), ApiError> {
        let body = Self::tag_body(droplet_ids);
        self.write(
            Method::POST,
            &format!("/v2/tags/{}/resources", encode_segment(tag)),
            &body,
        )
        .await
    }

    pub async fn untag_droplets(&self, tag: &str, droplet_ids: &[u64]) -> Result<(), ApiError> {
        let body = Self::tag_body(droplet_ids);
        self.write(
            Method::DELETE,
            &format!("/v2/tags/{}/resources", encode_segment(tag)),
            &body,
        )
        .await
    }

    fn tag_body(droplet_ids: &[u64]) -> serde_json::Value {
        let resources: Vec<TagResource> = droplet_ids
            .iter()
            .map(|id| TagResource {
                resource_id: id.to_string(),
                resource_type: "droplet".into(),
            })
            .collect();
        serde_json::json!({ "resources": resources })
    }
}
