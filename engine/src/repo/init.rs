//! Creating a repository.

use std::sync::Arc;

use crate::chunker::ChunkerParams;
use crate::crypto::{DEFAULT_KDF_ITERATIONS, IdScheme, KeyFile, MasterKey};
use crate::format::aad;
use crate::format::config::{
    CONFIG_KIND, DEFAULT_PACK_SIZE, FEATURE_ABORTED_RUNS, FEATURE_BLAKE3_IDS,
    FEATURE_SOURCE_LEVELS, FORMAT_VERSION, Features, RepoConfig,
};
use crate::storage::Store;
use crate::{Error, Result};

use super::{Core, Opened, Repository};

/// Choices made once, when a repository is created.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The backup set that will own the repository, e.g. `shop/shop`.
    pub owner: Option<String>,
    /// PBKDF2 iterations for the key file.
    pub kdf_iterations: u32,
    /// How files are cut into chunks.
    pub chunker: ChunkerParams,
    /// Target size of a volume in bytes.
    pub pack_size: u32,
    /// Create the repository even where other data already is.
    pub allow_non_empty: bool,
    /// How blob ids are computed (keyed BLAKE3 for new repositories; HMAC-SHA256 only to
    /// make repositories older builds can read).
    pub ids: IdScheme,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            owner: None,
            kdf_iterations: DEFAULT_KDF_ITERATIONS,
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            allow_non_empty: false,
            ids: IdScheme::Blake3Keyed,
        }
    }
}

/// Refuse to create a repository where other data is, unless allowed: mixing a repository
/// with a user's files makes both harder to manage and a mistaken path easy to miss.
pub fn check_empty(store: &Store, allow_non_empty: bool) -> Result<()> {
    if allow_non_empty {
        return Ok(());
    }
    let sample = store.sample_entries(3)?;
    if sample.is_empty() {
        return Ok(());
    }
    Err(Error::LocationNotEmpty {
        location: store.location(),
        sample: sample.join(", "),
    })
}

/// The sealed `owner` object.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct OwnerRecord {
    pub owner: Option<String>,
    pub created: String,
}

/// What a new repository is made of: its key and the choices recorded in `config`.
struct Blueprint<'a> {
    key: MasterKey,
    features: Features,
    chunker: ChunkerParams,
    pack_size: u32,
    owner: Option<&'a str>,
    kdf_iterations: u32,
    allow_non_empty: bool,
}

impl Repository<Opened> {
    /// Create a repository. Writes keys, then the owner record, then `config` last, so a
    /// crash leaves either a complete repository or one `init` can simply be run on again.
    pub fn init(store: Store, passphrase: &[u8], opts: &InitOptions) -> Result<Self> {
        if !opts.chunker.is_valid() {
            return Err(Error::InvalidArgument(format!(
                "invalid chunker parameters {:?}",
                opts.chunker
            )));
        }
        if opts.pack_size < 1024 * 1024 {
            return Err(Error::InvalidArgument(
                "volume size must be at least 1 MiB".into(),
            ));
        }
        let mut key = MasterKey::generate()?;
        key.set_id_scheme(opts.ids);
        let mut features = Features::default();
        features.add(FEATURE_SOURCE_LEVELS);
        features.add(FEATURE_ABORTED_RUNS);
        if opts.ids == IdScheme::Blake3Keyed {
            features.add(FEATURE_BLAKE3_IDS);
        }
        Self::create(
            store,
            passphrase,
            Blueprint {
                key,
                features,
                chunker: opts.chunker,
                pack_size: opts.pack_size,
                owner: opts.owner.as_deref(),
                kdf_iterations: opts.kdf_iterations,
                allow_non_empty: opts.allow_non_empty,
            },
        )
    }

    /// Create, in an empty location, a copy of `source`: the same master key (so its
    /// sealed volumes' blobs and run manifests move as they are, never decrypted), chunker,
    /// volume size, features and owner; an id of its own and a key file for `passphrase`.
    pub fn init_copy_of<S>(
        store: Store,
        source: &Repository<S>,
        passphrase: &[u8],
        kdf_iterations: u32,
    ) -> Result<Self> {
        let mut key = MasterKey::from_raw(*source.key().raw())?;
        key.set_id_scheme(source.key().id_scheme());
        Self::create(
            store,
            passphrase,
            Blueprint {
                key,
                features: source.config().features.clone(),
                chunker: source.config().chunker,
                pack_size: source.config().pack_size,
                owner: source.owner(),
                kdf_iterations,
                allow_non_empty: false,
            },
        )
    }

    fn create(store: Store, passphrase: &[u8], plan: Blueprint<'_>) -> Result<Self> {
        if store.stat("config")?.is_some() {
            return Err(Error::AlreadyExists {
                location: store.location(),
            });
        }
        check_empty(&store, plan.allow_non_empty)?;
        super::layout::check_not_nested(&store)?;
        let created = chrono::Utc::now().to_rfc3339();
        let id = hex::encode(crate::crypto::random_bytes::<16>()?);
        let key = plan.key;
        let key_file = KeyFile::wrap(&key, passphrase, &id, plan.kdf_iterations, created.clone())
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let key_json = serde_json::to_vec_pretty(&key_file).map_err(Error::internal)?;
        let key_name = format!("keys/{}", hex::encode(crate::crypto::random_bytes::<8>()?));
        store.put(&key_name, key_json)?;

        let owner = OwnerRecord {
            owner: plan.owner.map(str::to_owned),
            created: created.clone(),
        };
        let owner_json = serde_json::to_vec(&owner).map_err(Error::internal)?;
        store.put("owner", key.seal(aad::OWNER, &owner_json)?)?;

        let config = RepoConfig {
            kind: CONFIG_KIND.to_owned(),
            version: FORMAT_VERSION,
            id,
            features: plan.features,
            chunker: plan.chunker,
            pack_size: plan.pack_size,
            created,
        };
        let config_json = serde_json::to_vec_pretty(&config).map_err(Error::internal)?;
        if !store.put_new("config", config_json)? {
            return Err(Error::AlreadyExists {
                location: store.location(),
            });
        }
        Ok(Repository {
            core: Arc::new(Core {
                store,
                config,
                key,
                owner: plan.owner.map(str::to_owned),
            }),
            state: Opened,
        })
    }
}
