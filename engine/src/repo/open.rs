//! Opening a repository: configuration, version checks, key.

use std::sync::Arc;

use crate::crypto::{IdScheme, KeyFile};
use crate::format::aad;
use crate::format::config::{CONFIG_KIND, FEATURE_BLAKE3_IDS, FORMAT_VERSION, RepoConfig};
use crate::storage::{StorageError, Store};
use crate::{Error, Result};

use super::init::OwnerRecord;
use super::{Core, Opened, Repository};

/// Read and check the plaintext configuration.
pub fn read_config(store: &Store) -> Result<RepoConfig> {
    let location = store.location();
    let bytes = match store.get("config") {
        Ok(b) => b,
        Err(StorageError::NotFound { .. }) => {
            return Err(Error::NotARepository {
                location,
                detail:
                    "it has no `config` object; check the path, or create one with `holdfast init`"
                        .into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| Error::NotARepository {
            location: location.clone(),
            detail: "its `config` is not a Holdfast configuration".into(),
        })?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(CONFIG_KIND) {
        return Err(Error::NotARepository {
            location,
            detail: "its `config` is not a Holdfast configuration".into(),
        });
    }
    // Check the version before the full parse, so a newer layout reports as a newer version.
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(FORMAT_VERSION) {
        return Err(Error::UnsupportedVersion {
            location,
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| Error::corrupt(format!("config: {e}")))
}

/// The id scheme a repository's config records (HMAC-SHA256 unless it requires
/// `blake3-ids`).
pub(crate) fn id_scheme(config: &RepoConfig) -> IdScheme {
    if config.features.read.iter().any(|f| f == FEATURE_BLAKE3_IDS) {
        IdScheme::Blake3Keyed
    } else {
        IdScheme::HmacSha256
    }
}

impl Repository<Opened> {
    /// Open with a passphrase (or key file content); a passphrase that opens no key file is
    /// [`Error::WrongKey`], never reported as corruption.
    pub fn open(store: Store, passphrase: &[u8]) -> Result<Self> {
        let config = read_config(&store)?;
        let key_names: Vec<String> = store.list("keys/")?.into_iter().map(|o| o.key).collect();
        if key_names.is_empty() {
            return Err(Error::corrupt(
                "the repository has no key files (keys/ is empty)",
            ));
        }
        let mut key = None;
        let mut malformed = Vec::new();
        for name in &key_names {
            let bytes = store.get(name)?;
            let file: KeyFile = match serde_json::from_slice(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    malformed.push(format!("{name}: {e}"));
                    continue;
                }
            };
            match file.unwrap_key(passphrase, &config.id) {
                Ok(k) => {
                    key = Some(k);
                    break;
                }
                Err(crate::crypto::KeyFileError::WrongKey) => {}
                Err(e) => malformed.push(format!("{name}: {e}")),
            }
        }
        let Some(mut key) = key else {
            if malformed.len() == key_names.len() {
                return Err(Error::corrupt(format!(
                    "no usable key file: {}",
                    malformed.join("; ")
                )));
            }
            return Err(Error::WrongKey {
                location: store.location(),
            });
        };
        key.set_id_scheme(id_scheme(&config));
        let sealed_owner = store.get("owner")?;
        let owner_json = key
            .open(aad::OWNER, &sealed_owner)
            .map_err(|_| Error::corrupt("the owner record failed authentication"))?;
        let owner: OwnerRecord = serde_json::from_slice(&owner_json)
            .map_err(|e| Error::corrupt(format!("owner record: {e}")))?;
        Ok(Repository {
            core: Arc::new(Core {
                store,
                config,
                key,
                owner: owner.owner,
            }),
            state: Opened,
        })
    }
}
