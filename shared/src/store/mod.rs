//! The state store: run reports, the change ledger, quarantine records and cursors.
//!
//! Two backends behind one trait, chosen by configuration: a directory (the CLI's default) and
//! S3 (what the Lambda functions use). Writes are never lost silently: every write either
//! succeeds or returns an error that callers turn into a failed run.

mod dir;
mod s3;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use dir::DirStore;
pub use s3::S3Store;

use crate::aws::AwsError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("state store {location}: {message}")]
    Io { location: String, message: String },
    #[error("state store: {0}")]
    Aws(#[from] AwsError),
    #[error("state store {location}: {message}")]
    S3 { location: String, message: String },
    #[error("state store {location}: not valid JSON: {message}")]
    Decode { location: String, message: String },
    #[error("state store: invalid key {0:?}")]
    BadKey(String),
    #[error("state store configuration: {0}")]
    Config(String),
}

/// What a state store does. Keys are `/`-separated relative paths (`ledger/2026-11-25/…json`).
#[allow(async_fn_in_trait)]
pub trait StateStore {
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Creates `key` only if it does not exist yet, atomically: `true` when this call created
    /// it, `false` when it was already there (another run or instance claimed it first). S3:
    /// a conditional `PUT` with `If-None-Match: *` (412 when the key exists); a directory:
    /// create-exclusive (`O_EXCL`).
    async fn put_new(&self, key: &str, body: &[u8]) -> Result<bool, StoreError>;
    /// Where it keeps things, for messages.
    fn location(&self) -> String;
}

pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || key.contains('\\')
        || key.chars().any(char::is_control);
    if bad {
        Err(StoreError::BadKey(key.to_string()))
    } else {
        Ok(())
    }
}

/// The configured backend.
#[derive(Debug, Clone)]
pub enum Store {
    Dir(DirStore),
    S3(S3Store),
}

impl Store {
    /// `DROPLETGUARD_STATE_BUCKET` (`bucket` or `bucket/prefix`) selects S3; otherwise
    /// `DROPLETGUARD_STATE_DIR`, else `$XDG_STATE_HOME/dropletguard`, else
    /// `~/.local/state/dropletguard`.
    pub fn from_env() -> Result<Store, StoreError> {
        if let Some(b) = std::env::var("DROPLETGUARD_STATE_BUCKET")
            .ok()
            .filter(|b| !b.trim().is_empty())
        {
            let cfg = crate::aws::AwsConfig::from_env()?;
            return Ok(Store::S3(S3Store::new(&b, cfg)?));
        }
        Ok(Store::Dir(DirStore::new(default_dir()?)))
    }

    pub async fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Decode {
            location: key.into(),
            message: e.to_string(),
        })?;
        self.put(key, &body).await
    }

    /// `put_new` of a JSON value: `true` when this call created the key.
    pub async fn put_new_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Decode {
            location: key.into(),
            message: e.to_string(),
        })?;
        self.put_new(key, &body).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Decode {
                    location: format!("{}/{key}", self.location()),
                    message: e.to_string(),
                }),
        }
    }
}

impl Store {
    /// Stores a page as `text/html; charset=utf-8` (S3) or a file (directory).
    pub async fn put_html(&self, key: &str, html: &str) -> Result<(), StoreError> {
        match self {
            Store::Dir(s) => s.put(key, html.as_bytes()).await,
            Store::S3(s) => {
                s.put_typed(key, html.as_bytes(), "text/html; charset=utf-8")
                    .await
            }
        }
    }

    /// A link to `key` valid for `expires_in`: a presigned `GetObject` URL on S3; `None` for a
    /// directory (the file's path is in [`Store::location`]).
    pub fn presigned_get(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Store::Dir(_) => Ok(None),
            Store::S3(s) => s.presigned_get(key, expires_in).map(Some),
        }
    }
}

/// The CLI's default directory.
pub fn default_dir() -> Result<std::path::PathBuf, StoreError> {
    if let Some(d) = std::env::var_os("DROPLETGUARD_STATE_DIR").filter(|d| !d.is_empty()) {
        return Ok(d.into());
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(std::path::PathBuf::from(d).join("dropletguard"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(std::path::PathBuf::from(h).join(".local/state/dropletguard")),
        None => Err(StoreError::Config(
            "no DROPLETGUARD_STATE_DIR, XDG_STATE_HOME or HOME to keep state in".into(),
        )),
    }
}

impl StateStore for Store {
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        match self {
            Store::Dir(s) => s.put(key, body).await,
            Store::S3(s) => s.put(key, body).await,
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Dir(s) => s.get(key).await,
            Store::S3(s) => s.get(key).await,
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Dir(s) => s.list(prefix).await,
            Store::S3(s) => s.list(prefix).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Dir(s) => s.delete(key).await,
            Store::S3(s) => s.delete(key).await,
        }
    }
    async fn put_new(&self, key: &str, body: &[u8]) -> Result<bool, StoreError> {
        match self {
            Store::Dir(s) => s.put_new(key, body).await,
            Store::S3(s) => s.put_new(key, body).await,
        }
    }
    fn location(&self) -> String {
        match self {
            Store::Dir(s) => s.location(),
            Store::S3(s) => s.location(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a\nb"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in [
            "runs/x.json",
            "ledger/2026-11-25/a-b-0001.json",
            "quarantine/123.json",
        ] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
    }

    #[tokio::test]
    async fn dir_store_round_trip() {
        let dir = std::env::temp_dir().join(format!("dg-store-{}", uuid::Uuid::new_v4()));
        let s = Store::Dir(DirStore::new(dir.clone()));
        assert_eq!(s.get("a/b.json").await.expect("get"), None);
        s.put_json("a/b.json", &serde_json::json!({"x": 1}))
            .await
            .expect("put");
        s.put("a/c.json", b"{}").await.expect("put");
        s.put("z.json", b"{}").await.expect("put");
        let v: Option<serde_json::Value> = s.get_json("a/b.json").await.expect("get");
        assert_eq!(v, Some(serde_json::json!({"x": 1})));
        assert_eq!(
            s.list("a/").await.expect("list"),
            vec!["a/b.json", "a/c.json"]
        );
        assert_eq!(s.list("").await.expect("list").len(), 3);
        s.delete("a/b.json").await.expect("delete");
        s.delete("a/b.json").await.expect("deleting twice is fine");
        assert_eq!(s.list("a/").await.expect("list"), vec!["a/c.json"]);
        assert!(s.put("../escape", b"x").await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn put_new_claims_a_key_once_even_when_racing() {
        let dir = std::env::temp_dir().join(format!("dg-store-{}", uuid::Uuid::new_v4()));
        let s = Store::Dir(DirStore::new(dir.clone()));
        let tries = (0..16).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.put_new("webhooks/x.json", format!("{i}").as_bytes())
                    .await
            })
        });
        let mut won = 0;
        for t in tries {
            won += usize::from(t.await.expect("task").expect("put_new"));
        }
        assert_eq!(won, 1, "exactly one claim wins");
        assert!(!s
            .put_new("webhooks/x.json", b"again")
            .await
            .expect("put_new"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn dir_store_refuses_to_read_what_is_not_a_regular_file() {
        // A FIFO at a key used to hang every run that read it (the cache, the lists' sizes);
        // a directory or a device is refused the same way, naming the file and what it is.
        let dir = std::env::temp_dir().join(format!("dg-store-{}", uuid::Uuid::new_v4()));
        let s = Store::Dir(DirStore::new(dir.clone()));
        std::fs::create_dir_all(dir.join("cache/snapshot.json")).expect("mkdir");
        let fifo = dir.join("cache/list-sizes.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        for (key, what) in [
            ("cache/list-sizes.json", "a FIFO"),
            ("cache/snapshot.json", "a directory"),
        ] {
            let got = tokio::time::timeout(std::time::Duration::from_secs(10), s.get(key))
                .await
                .expect("the read returns instead of blocking");
            let err = got.expect_err("not a regular file").to_string();
            assert!(err.contains(key) && err.contains(what), "{err}");
        }
        s.put("cache/ok.json", b"{}").await.expect("put");
        assert_eq!(
            s.get("cache/ok.json").await.expect("get"),
            Some(b"{}".to_vec())
        );
        // A write over the directory fails, and leaves no temporary file behind.
        let err = s
            .put("cache/snapshot.json", b"{}")
            .await
            .expect_err("a directory");
        assert!(err.to_string().contains("cache/snapshot.json"), "{err}");
        let left: Vec<String> = std::fs::read_dir(dir.join("cache"))
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert!(left.iter().all(|n| !n.contains(".tmp-")), "{left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn dir_store_write_failure_is_an_error() {
        // A file where the directory should be: every write must fail, loudly.
        let file = std::env::temp_dir().join(format!("dg-store-file-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"not a dir").expect("write");
        let s = Store::Dir(DirStore::new(file.clone()));
        let err = s.put("runs/x.json", b"{}").await.expect_err("must fail");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        let _ = std::fs::remove_file(file);
    }
}
