//! The S3 backend: one object per key under an optional prefix, SigV4-signed requests.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::{check_key, StateStore, StoreError};
use crate::aws::{uri_encode, AwsClient, AwsConfig};

#[derive(Debug, Clone)]
pub struct S3Store {
    client: AwsClient,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// `spec` is `bucket` or `bucket/prefix` (an `s3://` in front is accepted).
    pub fn new(spec: &str, config: AwsConfig) -> Result<Self, StoreError> {
        let spec = spec.trim().trim_start_matches("s3://").trim_matches('/');
        let (bucket, prefix) = match spec.split_once('/') {
            Some((b, p)) => (b, format!("{}/", p.trim_matches('/'))),
            None => (spec, String::new()),
        };
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(StoreError::Config(format!(
                "{bucket:?} is not an S3 bucket name"
            )));
        }
        Ok(S3Store {
            client: AwsClient::new(config)?,
            bucket: bucket.into(),
            prefix,
        })
    }

    /// Path-style under an endpoint override, virtual-hosted on AWS.
    fn url(&self, key: &str) -> String {
        let full = uri_encode(&format!("{}{key}", self.prefix), true);
        match &self.client.config.endpoint {
            Some(e) => format!("{e}/{}/{full}", self.bucket),
            None => format!(
                "https://{}.s3.{}.amazonaws.com/{full}",
                self.bucket, self.client.config.region
            ),
        }
    }

    fn bucket_url(&self) -> String {
        match &self.client.config.endpoint {
            Some(e) => format!("{e}/{}", self.bucket),
            None => format!(
                "https://{}.s3.{}.amazonaws.com",
                self.bucket, self.client.config.region
            ),
        }
    }

    fn fail(&self, key: &str, status: u16, body: &[u8]) -> StoreError {
        let text = String::from_utf8_lossy(body);
        let S3ErrorBody { code, message: msg } = quick_xml::de::from_str(&text).unwrap_or_default();
        StoreError::S3 {
            location: format!("s3://{}/{}{key}", self.bucket, self.prefix),
            message: format!("HTTP {status} {code} {msg}").trim().to_string(),
        }
    }

    /// Creates the bucket (tests and first runs); an existing bucket is fine.
    pub async fn ensure_bucket(&self) -> Result<(), StoreError> {
        let body = if self.client.config.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.client.config.region
            )
        };
        let r = self
            .client
            .send("s3", Method::PUT, &self.bucket_url(), &[], body.as_bytes())
            .await?;
        if (200..300).contains(&r.status) || r.status == 409 {
            Ok(())
        } else {
            Err(self.fail("", r.status, &r.body))
        }
    }
}

/// A ListObjectsV2 answer, as much of it as the store reads (S3 API Reference,
/// "ListObjectsV2", response elements).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
}

/// An S3 error answer's `<Error>` body (S3 API Reference, "Error responses").
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct S3ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Keys and the continuation token (when truncated) of a ListObjectsV2 answer.
fn parse_list(xml: &[u8]) -> Result<(Vec<String>, Option<String>), String> {
    let text = std::str::from_utf8(xml).map_err(|e| e.to_string())?;
    let list: ListBucketResult = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
    let keys = list.contents.into_iter().map(|c| c.key).collect();
    let token = list.next_continuation_token.filter(|_| list.is_truncated);
    Ok((keys, token))
}

impl S3Store {
    /// `PutObject` with the given `Content-Type` (the state store's own records are JSON).
    pub async fn put_typed(
        &self,
        key: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        let headers = [("content-type", content_type.to_string())];
        let r = self
            .client
            .send("s3", Method::PUT, &self.url(key), &headers, body)
            .await?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(self.fail(key, r.status, &r.body))
        }
    }

    /// A presigned `GetObject` URL for `key`, valid for `expires_in` (at most 7 days; see
    /// [`crate::aws::AwsClient::presign`] for temporary credentials). The bucket stays private:
    /// the URL carries the signer's permission to read this one object.
    pub fn presigned_get(&self, key: &str, expires_in: Duration) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(self.client.presign(
            "s3",
            "GET",
            &self.url(key),
            expires_in,
            std::time::SystemTime::now(),
        )?)
    }
}

impl StateStore for S3Store {
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.put_typed(key, body, "application/json").await
    }

    async fn put_new(&self, key: &str, body: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let headers = [
            ("content-type", "application/json".to_string()),
            ("if-none-match", "*".to_string()),
        ];
        let r = self
            .client
            .send("s3", Method::PUT, &self.url(key), &headers, body)
            .await?;
        match r.status {
            200..=299 => Ok(true),
            // 412: the key exists; 409: a concurrent conditional write is in flight.
            412 | 409 => Ok(false),
            status => Err(self.fail(key, status, &r.body)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let r = self
            .client
            .send("s3", Method::GET, &self.url(key), &[], b"")
            .await?;
        match r.status {
            200..=299 => Ok(Some(r.body)),
            404 => Ok(None),
            s => Err(self.fail(key, s, &r.body)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{}{prefix}", self.prefix);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}?list-type=2&prefix={}",
                self.bucket_url(),
                uri_encode(&full, false)
            );
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={}", uri_encode(t, false)));
            }
            let r = self.client.send("s3", Method::GET, &url, &[], b"").await?;
            if !(200..300).contains(&r.status) {
                return Err(self.fail(prefix, r.status, &r.body));
            }
            let (page, next) = parse_list(&r.body).map_err(|e| StoreError::S3 {
                location: format!("s3://{}/{full}", self.bucket),
                message: format!("unreadable list answer: {e}"),
            })?;
            keys.extend(
                page.into_iter()
                    .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string)),
            );
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let r = self
            .client
            .send("s3", Method::DELETE, &self.url(key), &[], b"")
            .await?;
        if (200..300).contains(&r.status) || r.status == 404 {
            Ok(())
        } else {
            Err(self.fail(key, r.status, &r.body))
        }
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answer_parses() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>
<Contents><Key>p/a&amp;b.json</Key><Size>2</Size></Contents><Contents><Key>p/c&#x41;.json</Key></Contents>
<NextContinuationToken>tok==</NextContinuationToken></ListBucketResult>"#;
        let (keys, token) = parse_list(xml).expect("parses");
        assert_eq!(keys, vec!["p/a&b.json", "p/cA.json"]);
        assert_eq!(token.as_deref(), Some("tok=="));
    }

    #[test]
    fn an_answer_that_is_not_a_list_is_an_error_and_an_untruncated_list_has_no_token() {
        assert!(parse_list(b"<ListBucketResult><Contents>").is_err());
        let xml = br#"<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken>t</NextContinuationToken></ListBucketResult>"#;
        assert_eq!(parse_list(xml).expect("parses"), (vec![], None));
        let err: S3ErrorBody = quick_xml::de::from_str(
            "<Error><Code>NoSuchKey</Code><Message>The key &amp; more</Message></Error>",
        )
        .expect("error body");
        assert_eq!(
            (err.code.as_str(), err.message.as_str()),
            ("NoSuchKey", "The key & more")
        );
    }

    #[test]
    fn bucket_spec() {
        let cfg = AwsConfig::new("eu-west-1", "AKID", "secret", None);
        let s = S3Store::new("s3://my-bucket/some/prefix/", cfg.clone()).expect("valid");
        assert_eq!(s.location(), "s3://my-bucket/some/prefix/");
        assert_eq!(
            s.url("runs/a b.json"),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/some/prefix/runs/a%20b.json"
        );
        assert!(S3Store::new("Bad_Bucket", cfg).is_err());
        assert!(
            !format!("{:?}", AwsConfig::new("r", "AKID", "topsecret", None)).contains("topsecret")
        );
    }
}
