//! The directory backend: one file per key, written atomically (temp file, then rename).

use std::path::PathBuf;

use super::{check_key, StateStore, StoreError};

#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    fn io(&self, key: &str, e: std::io::Error) -> StoreError {
        StoreError::Io {
            location: self.root.join(key).display().to_string(),
            message: e.to_string(),
        }
    }
}

impl DirStore {
    /// The file for `key`, its folder created. Errors: a bad key, or the folder.
    async fn path_for(&self, key: &str) -> Result<std::path::PathBuf, StoreError> {
        check_key(key)?;
        let path = self.root.join(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| self.io(key, e))?;
        }
        Ok(path)
    }
}

impl StateStore for DirStore {
    async fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let path = self.path_for(key).await?;
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = async {
            tokio::fs::write(&tmp, body).await?;
            // Durable before it becomes visible.
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = written.await {
            // A write that failed leaves nothing behind (the temporary file included).
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(self.io(key, e));
        }
        Ok(())
    }

    async fn put_new(&self, key: &str, body: &[u8]) -> Result<bool, StoreError> {
        use tokio::io::AsyncWriteExt;
        let path = self.path_for(key).await?;
        let opened = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await;
        let mut f = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(self.io(key, e)),
        };
        f.write_all(body).await.map_err(|e| self.io(key, e))?;
        f.sync_all().await.map_err(|e| self.io(key, e))?;
        Ok(true)
    }

    /// The file's bytes. Only a regular file is read: it is opened without blocking and
    /// checked before a byte is read (a FIFO left at a key would otherwise hang the run, a
    /// device like `/dev/zero` never end). Errors name the file and what it is.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use tokio::io::AsyncReadExt;
        check_key(key)?;
        let mut open = tokio::fs::OpenOptions::new();
        open.read(true);
        #[cfg(unix)]
        open.custom_flags(libc::O_NONBLOCK);
        let mut f = match open.open(self.root.join(key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(key, e)),
        };
        let meta = f.metadata().await.map_err(|e| self.io(key, e))?;
        if !meta.is_file() {
            let what = crate::text::file_kind(&meta);
            return Err(self.io(
                key,
                std::io::Error::other(format!("not a regular file ({what})")),
            ));
        }
        let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        f.read_to_end(&mut body)
            .await
            .map_err(|e| self.io(key, e))?;
        Ok(Some(body))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let mut rd = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(prefix, e)),
            };
            while let Some(entry) = rd.next_entry().await.map_err(|e| self.io(prefix, e))? {
                let path = entry.path();
                let ft = entry.file_type().await.map_err(|e| self.io(prefix, e))?;
                if ft.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) && !key.contains(".tmp-") {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match tokio::fs::remove_file(self.root.join(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(key, e)),
        }
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}
