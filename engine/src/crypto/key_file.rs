//! Key files: the master key wrapped by a key derived from a passphrase.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::master_key::{MASTER_KEY_LEN, MasterKey};
use super::{CryptoError, aes_key, open_with, random_bytes, seal_with};

/// PBKDF2 iterations for new keys (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// The fewest iterations a key file may declare; below this a guessed passphrase is cheap.
pub const MIN_KDF_ITERATIONS: u32 = 1_000;

/// How the wrapping key is derived from the passphrase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Always `pbkdf2-hmac-sha256` in format version 1.
    pub algorithm: String,
    /// PBKDF2-HMAC-SHA256 iterations.
    pub iterations: u32,
    /// 32 random bytes, hex.
    pub salt: String,
}

/// One key file (`keys/<id>`): plaintext JSON holding the sealed master key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// How the passphrase is stretched into the wrapping key.
    pub kdf: KdfParams,
    /// Always `aes-256-gcm` in format version 1.
    pub cipher: String,
    /// `nonce || AES-256-GCM(master key) || tag`, hex.
    pub wrapped: String,
    /// RFC 3339 creation time.
    pub created: String,
}

const KDF_ALGORITHM: &str = "pbkdf2-hmac-sha256";
const CIPHER: &str = "aes-256-gcm";

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("the passphrase does not open this key")]
    /// The passphrase does not unwrap the key.
    WrongKey,
    #[error("key file is malformed: {0}")]
    /// The key file does not parse; the text says what is wrong.
    Malformed(String),
    #[error(transparent)]
    /// Sealing or opening failed.
    Crypto(#[from] CryptoError),
}

fn aad(repo_id: &str) -> Vec<u8> {
    format!("holdfast/v1/key:{repo_id}").into_bytes()
}

fn derive(passphrase: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32], KeyFileError> {
    let iterations = NonZeroU32::new(iterations)
        .filter(|n| n.get() >= MIN_KDF_ITERATIONS)
        .ok_or_else(|| {
            KeyFileError::Malformed(format!(
                "KDF iterations {iterations} below the minimum {MIN_KDF_ITERATIONS}"
            ))
        })?;
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase,
        &mut out,
    );
    Ok(out)
}

impl KeyFile {
    /// Wrap `master` under `passphrase` for the repository `repo_id`.
    pub(crate) fn wrap(
        master: &MasterKey,
        passphrase: &[u8],
        repo_id: &str,
        iterations: u32,
        created: String,
    ) -> Result<Self, KeyFileError> {
        let salt = random_bytes::<32>()?;
        let kek = derive(passphrase, &salt, iterations)?;
        let wrapped = seal_with(&aes_key(&kek)?, &aad(repo_id), master.raw())?;
        Ok(KeyFile {
            kdf: KdfParams {
                algorithm: KDF_ALGORITHM.to_owned(),
                iterations,
                salt: hex::encode(salt),
            },
            cipher: CIPHER.to_owned(),
            wrapped: hex::encode(wrapped),
            created,
        })
    }

    /// Unwrap the master key; a wrong passphrase is [`KeyFileError::WrongKey`].
    pub(crate) fn unwrap_key(
        &self,
        passphrase: &[u8],
        repo_id: &str,
    ) -> Result<MasterKey, KeyFileError> {
        if self.kdf.algorithm != KDF_ALGORITHM || self.cipher != CIPHER {
            return Err(KeyFileError::Malformed(format!(
                "unsupported key algorithms {} / {}",
                self.kdf.algorithm, self.cipher
            )));
        }
        let salt = hex::decode(&self.kdf.salt)
            .map_err(|_| KeyFileError::Malformed("salt is not hex".into()))?;
        let wrapped = hex::decode(&self.wrapped)
            .map_err(|_| KeyFileError::Malformed("wrapped key is not hex".into()))?;
        let kek = derive(passphrase, &salt, self.kdf.iterations)?;
        let raw = match open_with(&aes_key(&kek)?, &aad(repo_id), &wrapped) {
            Ok(raw) => raw,
            Err(CryptoError::Authentication) => return Err(KeyFileError::WrongKey),
            Err(e) => return Err(e.into()),
        };
        let raw: [u8; MASTER_KEY_LEN] = raw
            .try_into()
            .map_err(|_| KeyFileError::Malformed("wrapped key has the wrong length".into()))?;
        Ok(MasterKey::from_raw(raw)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_passphrase() {
        let master = MasterKey::generate().unwrap();
        let kf = KeyFile::wrap(&master, b"correct horse", "repo1", 1000, "now".into()).unwrap();
        let back = kf.unwrap_key(b"correct horse", "repo1").unwrap();
        assert_eq!(back.raw(), master.raw());
        assert!(matches!(
            kf.unwrap_key(b"wrong", "repo1"),
            Err(KeyFileError::WrongKey)
        ));
        // A key file copied into another repository does not open there.
        assert!(matches!(
            kf.unwrap_key(b"correct horse", "repo2"),
            Err(KeyFileError::WrongKey)
        ));
    }

    #[test]
    fn too_few_iterations_is_malformed() {
        let master = MasterKey::generate().unwrap();
        let mut kf = KeyFile::wrap(&master, b"p", "r", 1000, "now".into()).unwrap();
        kf.kdf.iterations = 10;
        assert!(matches!(
            kf.unwrap_key(b"p", "r"),
            Err(KeyFileError::Malformed(_))
        ));
    }
}
