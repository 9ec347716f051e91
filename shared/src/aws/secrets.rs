//! AWS Secrets Manager: `GetSecretValue`, over the signed-request client.

use reqwest::Method;

use super::{AwsClient, AwsError};

/// The `SecretString` of a secret, by name or ARN.
pub async fn get_secret_string(client: &AwsClient, secret_id: &str) -> Result<String, AwsError> {
    let url = format!("{}/", client.endpoint("secretsmanager"));
    let body = serde_json::to_vec(&serde_json::json!({ "SecretId": secret_id }))
        .map_err(|e| AwsError::Config(e.to_string()))?;
    let headers = [
        ("content-type", "application/x-amz-json-1.1".to_string()),
        ("x-amz-target", "secretsmanager.GetSecretValue".to_string()),
    ];
    let r = client
        .send("secretsmanager", Method::POST, &url, &headers, &body)
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if !(200..300).contains(&r.status) {
        let kind = v["__type"].as_str().unwrap_or("error");
        let msg = v["message"]
            .as_str()
            .or(v["Message"].as_str())
            .unwrap_or("");
        return Err(AwsError::Status {
            service: "secretsmanager".into(),
            method: "GetSecretValue".into(),
            url: secret_id.into(),
            status: r.status,
            message: format!("{kind} {msg}").trim().to_string(),
        });
    }
    v["SecretString"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| AwsError::Status {
            service: "secretsmanager".into(),
            method: "GetSecretValue".into(),
            url: secret_id.into(),
            status: r.status,
            message: "the secret has no SecretString".into(),
        })
}
