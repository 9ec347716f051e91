//! The management key: the private key dropletguard logs in with.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use russh::keys::{HashAlg, PrivateKey};

use super::error::SshError;

/// An unencrypted private key (OpenSSH format; PEM PKCS#8 also accepted)
/// used for management logins.
///
/// `Debug` prints only the algorithm and the public SHA256 fingerprint; there
/// is deliberately no `Display` and no accessor for the private part.
#[derive(Clone)]
pub struct ManagementKey {
    key: Arc<PrivateKey>,
    fingerprint: String,
}

impl ManagementKey {
    /// Load from a file, e.g. `~/.config/dropletguard/id_ed25519`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SshError> {
        let path = path.as_ref();
        let origin = format!("file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| SshError::KeyLoad {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, origin)
    }

    /// Load from the text of a key, e.g. the content of an environment
    /// variable. Literal `\n` sequences (a common way to squeeze a key into
    /// one line) are accepted.
    pub fn from_openssh_str(text: &str) -> Result<Self, SshError> {
        Self::parse(text, "string".to_string())
    }

    /// Load from the environment variable `var` (its content, not a path).
    pub fn from_env(var: &str) -> Result<Self, SshError> {
        let origin = format!("environment variable {var}");
        let text = std::env::var(var).map_err(|e| SshError::KeyLoad {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, origin)
    }

    fn parse(text: &str, origin: String) -> Result<Self, SshError> {
        let normalized;
        let mut text = text.trim();
        if !text.contains('\n') && text.contains("\\n") {
            normalized = text.replace("\\n", "\n");
            text = normalized.trim();
        }
        if !text.starts_with("-----BEGIN ") {
            return Err(SshError::KeyLoad {
                origin,
                reason: "not a PEM/OpenSSH private key (expected a '-----BEGIN ...' line)"
                    .to_string(),
            });
        }
        let key = russh::keys::decode_secret_key(text, None).map_err(|e| {
            let reason = match e {
                russh::keys::Error::KeyIsEncrypted => {
                    "the key is passphrase-protected; a management key must be unencrypted"
                        .to_string()
                }
                // The Display of these errors names a type or a position, never
                // key material.
                other => other.to_string(),
            };
            SshError::KeyLoad {
                origin: origin.clone(),
                reason,
            }
        })?;
        if cfg!(not(feature = "rsa")) && key.algorithm().is_rsa() {
            return Err(SshError::KeyLoad {
                origin,
                reason: "RSA keys need dropletguard built with the `rsa` feature (cargo build --features shared/rsa); use an ed25519 or ECDSA key"
                    .to_string(),
            });
        }
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        Ok(ManagementKey {
            key: Arc::new(key),
            fingerprint,
        })
    }

    /// `SHA256:...` fingerprint of the public half, as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Algorithm name, e.g. `ssh-ed25519`.
    pub fn algorithm(&self) -> String {
        self.key.algorithm().as_str().to_string()
    }

    /// The public key as one `authorized_keys` line (`ssh-ed25519 AAAA... comment`).
    pub fn public_key_openssh(&self) -> Result<String, SshError> {
        self.key
            .public_key()
            .to_openssh()
            .map_err(|e| SshError::Internal(format!("cannot encode public key: {e}")))
    }

    pub(crate) fn private(&self) -> Arc<PrivateKey> {
        Arc::clone(&self.key)
    }
}

impl fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementKey")
            .field("algorithm", &self.key.algorithm().as_str())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_echoing_it() {
        let err = ManagementKey::from_openssh_str("hunter2-secret").expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("not a PEM/OpenSSH private key"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = ManagementKey::from_file("/nonexistent/dropletguard/key").expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/dropletguard/key"));
    }

    #[test]
    fn debug_shows_only_fingerprint_and_escaped_newlines_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "unit", "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen runs");
        assert!(st.success());
        let key = ManagementKey::from_file(&path).expect("load key");
        let text = std::fs::read_to_string(&path).expect("read key");
        let body_line = text.lines().nth(1).expect("key body");
        let dbg = format!("{key:?}");
        assert!(
            dbg.contains("SHA256:") && dbg.contains("ssh-ed25519"),
            "{dbg}"
        );
        assert!(!dbg.contains(body_line), "{dbg}");
        let one_line = text.replace('\n', "\\n");
        let again = ManagementKey::from_openssh_str(&one_line).expect("escaped newlines");
        assert_eq!(again.fingerprint(), key.fingerprint());
        let out = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&path)
            .output()
            .expect("ssh-keygen -lf");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.contains(key.fingerprint()), "{listed} vs {key:?}");
    }
}
