//! Cloud Firewalls: read, create, delete, and the writes that change their Droplets, tags
//! and rules (`/v2/firewalls`, DigitalOcean API reference "Firewalls").

use reqwest::Method;

use serde::Serialize;

use super::client::Client;
use super::error::ApiError;
use super::models::*;

impl Client {
    pub async fn list_firewalls(&self) -> Result<Vec<Firewall>, ApiError> {
        self.list("/v2/firewalls", "firewalls", &[]).await
    }

    pub async fn get_firewall(&self, id: &str) -> Result<Firewall, ApiError> {
        self.get_one(&format!("/v2/firewalls/{id}"), "firewall")
            .await
    }

    pub async fn create_firewall(&self, req: &FirewallRequest) -> Result<Firewall, ApiError> {
        let url = self.url("/v2/firewalls")?;
        let mut v: serde_json::Value = self
            .request_json(Method::POST, url, Some(Self::encode(req)?))
            .await?;
        serde_json::from_value(v["firewall"].take()).map_err(|e| ApiError::Decode {
            method: "POST".into(),
            path: "/v2/firewalls".into(),
            message: e.to_string(),
        })
    }

    pub async fn delete_firewall(&self, id: &str) -> Result<(), ApiError> {
        let url = self.url(&format!("/v2/firewalls/{id}"))?;
        self.send(Method::DELETE, url, None).await.map(|_| ())
    }

    pub(super) async fn write(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(), ApiError> {
        let url = self.url(path)?;
        self.send(method, url, Some(Self::encode(body)?))
            .await
            .map(|_| ())
    }

    pub async fn add_droplets_to_firewall(
        &self,
        id: &str,
        droplet_ids: &[u64],
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "droplet_ids": droplet_ids });
        self.write(Method::POST, &format!("/v2/firewalls/{id}/droplets"), &body)
            .await
    }

    pub async fn remove_droplets_from_firewall(
        &self,
        id: &str,
        droplet_ids: &[u64],
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "droplet_ids": droplet_ids });
        self.write(
            Method::DELETE,
            &format!("/v2/firewalls/{id}/droplets"),
            &body,
        )
        .await
    }

    pub async fn add_tags_to_firewall(&self, id: &str, tags: &[String]) -> Result<(), ApiError> {
        let body = serde_json::json!({ "tags": tags });
        self.write(Method::POST, &format!("/v2/firewalls/{id}/tags"), &body)
            .await
    }

    pub async fn remove_tags_from_firewall(
        &self,
        id: &str,
        tags: &[String],
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "tags": tags });
        self.write(Method::DELETE, &format!("/v2/firewalls/{id}/tags"), &body)
            .await
    }

    pub async fn add_firewall_rules(
        &self,
        id: &str,
        rules: &FirewallRules,
    ) -> Result<(), ApiError> {
        self.write(Method::POST, &format!("/v2/firewalls/{id}/rules"), rules)
            .await
    }

    pub async fn remove_firewall_rules(
        &self,
        id: &str,
        rules: &FirewallRules,
    ) -> Result<(), ApiError> {
        self.write(Method::DELETE, &format!("/v2/firewalls/{id}/rules"), rules)
            .await
    }
}
