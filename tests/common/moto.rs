//! moto_server (S3, Secrets Manager) on a free loopback port, for the tests that need AWS.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// moto_server on a free loopback port (S3, Secrets Manager), killed on drop.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (make setup installs it)");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..150 {
            if reqwest::get(format!("{}/moto-api/", moto.url))
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not start");
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("AWS_ENDPOINT_URL".to_string(), self.url.clone())])
        .collect()
    }

    pub fn config(&self) -> shared::aws::AwsConfig {
        shared::aws::AwsConfig::new(
            "us-east-1",
            "testing",
            "testing-secret",
            Some(self.url.clone()),
        )
    }

    pub fn client(&self) -> shared::aws::AwsClient {
        shared::aws::AwsClient::new(shared::aws::AwsConfig::new(
            "us-east-1",
            "testing",
            "testing-secret",
            Some(self.url.clone()),
        ))
        .expect("aws client")
    }

    /// Creates a secret; returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let body = serde_json::json!({"Name": name, "SecretString": value}).to_string();
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amz-target", "secretsmanager.CreateSecret".to_string()),
        ];
        let r = self
            .client()
            .send(
                "secretsmanager",
                reqwest::Method::POST,
                &format!("{}/", self.url),
                &headers,
                body.as_bytes(),
            )
            .await
            .expect("create secret");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        v["ARN"].as_str().expect("arn").to_string()
    }

    pub async fn create_bucket(&self, name: &str) {
        let store = shared::store::S3Store::new(
            name,
            shared::aws::AwsConfig::new(
                "us-east-1",
                "testing",
                "testing-secret",
                Some(self.url.clone()),
            ),
        )
        .expect("store");
        store.ensure_bucket().await.expect("bucket");
    }
}
