//! A small AWS client: SigV4-signed requests over the same reqwest/rustls stack as the
//! DigitalOcean client, for S3 (the state store) and Secrets Manager. Much lighter than the
//! AWS SDK; credentials come from the standard environment variables that Lambda sets.

pub mod secrets;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::Method;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    #[error("AWS configuration: {0}")]
    Config(String),
    #[error("{service} {method} {url}: {message}")]
    Transport {
        service: String,
        method: String,
        url: String,
        message: String,
    },
    #[error("{service} {method} {url}: HTTP {status}: {message}")]
    Status {
        service: String,
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("signing the request: {0}")]
    Signing(String),
}

/// Region, credentials and an optional endpoint override (a local S3 API in tests).
#[derive(Clone)]
pub struct AwsConfig {
    pub region: String,
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// `AWS_ENDPOINT_URL`: send every service's requests here (path-style for S3).
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AwsConfig {
    pub fn new(
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
        endpoint: Option<String>,
    ) -> Self {
        AwsConfig {
            region: region.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            endpoint,
        }
    }

    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL`.
    pub fn from_env() -> Result<Self, AwsError> {
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| AwsError::Config("AWS_REGION is not set".into()))?;
        let access_key_id = env("AWS_ACCESS_KEY_ID")
            .ok_or_else(|| AwsError::Config("AWS_ACCESS_KEY_ID is not set".into()))?;
        let secret_access_key = env("AWS_SECRET_ACCESS_KEY")
            .ok_or_else(|| AwsError::Config("AWS_SECRET_ACCESS_KEY is not set".into()))?;
        Ok(AwsConfig {
            region,
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
            endpoint: env("AWS_ENDPOINT_URL").map(|e| e.trim_end_matches('/').to_string()),
        })
    }
}

/// A signed-request sender.
#[derive(Debug, Clone)]
pub struct AwsClient {
    http: reqwest::Client,
    pub config: AwsConfig,
}

/// An answer from an AWS API.
#[derive(Debug)]
pub struct AwsResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl AwsClient {
    pub fn new(config: AwsConfig) -> Result<Self, AwsError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AwsError::Config(format!("HTTP client: {e}")))?;
        Ok(AwsClient { http, config })
    }

    /// Signs and sends one request. `headers` are signed too. Non-2xx answers are returned,
    /// not turned into errors, so that callers can read 404s; transport failures are errors.
    pub async fn send(
        &self,
        service: &str,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<AwsResponse, AwsError> {
        let identity: Identity = self.credentials().into();
        let mut settings = SigningSettings::default();
        if service == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| AwsError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| AwsError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| AwsError::Signing(e.to_string()))?
            .into_parts();
        let mut req = self.http.request(method.clone(), url).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let transport = |e: reqwest::Error| AwsError::Transport {
            service: service.into(),
            method: method.to_string(),
            url: url.into(),
            message: e.to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        Ok(AwsResponse { status, body })
    }

    /// A presigned URL (SigV4 in the query string, `UNSIGNED-PAYLOAD`): anyone holding it may
    /// send `method` to `url` until `expires_in` after `time` (S3 accepts at most 7 days), as
    /// these credentials. A URL signed with temporary credentials (a Lambda role's) stops working
    /// when those credentials expire, whatever `expires_in` says (AWS: "Sharing objects with
    /// presigned URLs"). Nothing is sent.
    pub fn presign(
        &self,
        service: &str,
        method: &str,
        url: &str,
        expires_in: Duration,
        time: SystemTime,
    ) -> Result<String, AwsError> {
        let identity: Identity = self.credentials().into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| AwsError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| AwsError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| AwsError::Signing(e.to_string()))?
            .into_parts();
        let query: Vec<String> = instructions
            .params()
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect();
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{sep}{}", query.join("&")))
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.config.access_key_id,
            &self.config.secret_access_key,
            self.config.session_token.clone(),
            None,
            "environment",
        )
    }

    /// The endpoint of a service: the override, or the public regional endpoint.
    pub fn endpoint(&self, service: &str) -> String {
        match &self.config.endpoint {
            Some(e) => e.clone(),
            None => format!("https://{service}.{}.amazonaws.com", self.config.region),
        }
    }
}

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`) is
/// percent-encoded, as SigV4's canonical URI wants it.
pub(crate) const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a string for a URL path (upper-case hex), keeping `/` when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    const UNRESERVED_AND_SLASH: &percent_encoding::AsciiSet = &UNRESERVED.remove(b'/');
    let set = if keep_slash {
        UNRESERVED_AND_SLASH
    } else {
        UNRESERVED
    };
    percent_encoding::utf8_percent_encode(s, set).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of AWS's "Authenticating Requests: Using Query Parameters (AWS Signature
    /// Version 4)" for Amazon S3, signature and all.
    #[test]
    fn presigned_url_matches_the_aws_example() {
        let cfg = AwsConfig::new(
            "us-east-1",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        );
        let client = AwsClient::new(cfg).expect("client");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let url = client
            .presign(
                "s3",
                "GET",
                "https://examplebucket.s3.amazonaws.com/test.txt",
                Duration::from_secs(86_400),
                at,
            )
            .expect("presign");
        assert!(url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?"));
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
            "X-Amz-Date=20130524T000000Z",
            "X-Amz-Expires=86400",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        ] {
            assert!(url.contains(part), "{part} not in {url}");
        }
        assert!(!url.contains("EXAMPLEKEY"));
    }
}
