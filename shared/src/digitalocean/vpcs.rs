//! VPCs and their members (`/v2/vpcs`, DigitalOcean API reference "VPCs").

use super::client::{encode_segment, Client};
use super::error::ApiError;
use super::models::*;

impl Client {
    pub async fn list_vpcs(&self) -> Result<Vec<Vpc>, ApiError> {
        self.list("/v2/vpcs", "vpcs", &[]).await
    }

    /// Members of a VPC (`urn` like `do:droplet:123`).
    pub async fn vpc_members(&self, vpc_id: &str) -> Result<Vec<VpcMember>, ApiError> {
        self.list(
            &format!("/v2/vpcs/{}/members", encode_segment(vpc_id)),
            "members",
            &[],
        )
        .await
    }
}
