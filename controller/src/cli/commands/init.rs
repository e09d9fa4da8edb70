//! `holdfast init`

use holdfast_engine::crypto::{DEFAULT_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
use holdfast_engine::repo::{InitOptions, Repository};
use serde::Serialize;

use crate::cli::{CliError, Ctx, exit, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup set that owns the repository (e.g. `shop/shop`); later backups naming
    /// another owner are refused unless forced.
    #[arg(long, env = "HOLDFAST_OWNER")]
    owner: Option<String>,

    /// PBKDF2 iterations deriving the key-wrapping key from the passphrase.
    #[arg(long, default_value_t = DEFAULT_KDF_ITERATIONS)]
    kdf_iterations: u32,

    /// Target volume (pack file) size, e.g. 16MiB. Larger volumes mean fewer objects.
    #[arg(long, default_value = "16MiB", value_parser = human::parse_size)]
    volume_size: u64,

    /// Create the repository even though the directory or prefix holds other data (it is
    /// kept; the repository's objects are put beside it).
    #[arg(long)]
    allow_non_empty: bool,
}

#[derive(Serialize)]
struct Output {
    repository: String,
    id: String,
    version: u32,
    owner: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    if args.kdf_iterations < MIN_KDF_ITERATIONS {
        return Err(CliError::Usage(format!(
            "--kdf-iterations must be at least {MIN_KDF_ITERATIONS}"
        )));
    }
    let pack_size = u32::try_from(args.volume_size)
        .ok()
        .filter(|s| (1 << 20..=1 << 30).contains(s))
        .ok_or_else(|| CliError::Usage("--volume-size must be between 1MiB and 1GiB".into()))?;
    let store = ctx.store()?;
    if store
        .stat("config")
        .map_err(holdfast_engine::Error::from)?
        .is_some()
    {
        return Err(holdfast_engine::Error::AlreadyExists {
            location: store.location(),
        }
        .into());
    }
    // Refuse before asking for a passphrase twice.
    holdfast_engine::repo::check_empty(&store, args.allow_non_empty)?;
    let pass = ctx.passphrase(true)?;
    let opts = InitOptions {
        owner: args.owner,
        kdf_iterations: args.kdf_iterations,
        pack_size,
        allow_non_empty: args.allow_non_empty,
        ..InitOptions::default()
    };
    let repo = Repository::init(store, &pass, &opts)?;
    let out = Output {
        repository: repo.location(),
        id: repo.config().id.clone(),
        version: repo.config().version,
        owner: repo.owner().map(str::to_owned),
    };
    ctx.emit(&out, || {
        format!(
            "created repository {} at {} (format v{}{})\nKeep the passphrase safe: without it the backups cannot be read.",
            out.id,
            out.repository,
            out.version,
            out.owner.as_deref().map(|o| format!(", owner {o}")).unwrap_or_default()
        )
    })?;
    Ok(exit::OK)
}
