//! `holdfast copy`

use std::fmt::Write as _;
use std::sync::Arc;

use holdfast_engine::copy::{CopyOptions, CopyReport, copy};
use holdfast_engine::crypto::{DEFAULT_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
use holdfast_engine::progress::Progress;
use holdfast_engine::repo::Repository;

use crate::cli::{CliError, Ctx, exit, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository to copy from (default: --repo).
    #[arg(long, value_name = "URL")]
    from: Option<String>,

    /// The copy: an empty location (the copy is created there, sharing the source's key,
    /// with a key file for the same passphrase) or a copy made before.
    #[arg(long, value_name = "URL")]
    to: String,

    /// Copy only this run (repeatable), even one the copy's own retention expired.
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,

    /// Volumes uploaded to the copy at once.
    #[arg(long, default_value_t = 4)]
    uploads: usize,

    /// PBKDF2 iterations for the key file of a copy created now.
    #[arg(long, default_value_t = DEFAULT_KDF_ITERATIONS)]
    kdf_iterations: u32,

    /// Copy into a repository recorded as another backup set's.
    #[arg(long)]
    force: bool,
}

#[derive(serde::Serialize)]
struct Output<'a> {
    /// The copy was created by this command.
    created: bool,
    #[serde(flatten)]
    report: &'a CopyReport,
}

pub(crate) fn render(r: &CopyReport, created: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "copy {} → {}{}: {} runs copied, {} moved in {} volumes, in {}",
        r.from,
        r.to,
        if created { " (created)" } else { "" },
        r.copied.len(),
        human::bytes(r.bytes_moved),
        r.volumes_written,
        human::duration_ms(r.duration_ms)
    );
    for run in &r.copied {
        let _ = writeln!(
            out,
            "  {}: {} blobs, {}",
            run.label,
            human::count(run.blobs),
            human::bytes(run.bytes)
        );
    }
    if !r.recorded.is_empty() {
        let _ = writeln!(
            out,
            "  already in the copy (recorded, nothing moved): {}",
            r.recorded.join(", ")
        );
    }
    if !r.expired_at_destination.is_empty() {
        let _ = writeln!(
            out,
            "  expired by the copy's own retention, not copied again: {} (name one with --label to bring it back)",
            r.expired_at_destination.join(", ")
        );
    }
    if r.stopped {
        let _ = writeln!(
            out,
            "  STOPPED on request; still to copy: {}",
            r.pending.join(", ")
        );
    }
    out
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    if args.kdf_iterations < MIN_KDF_ITERATIONS {
        return Err(CliError::Usage(format!(
            "--kdf-iterations must be at least {MIN_KDF_ITERATIONS}"
        )));
    }
    let from_url = args
        .from
        .as_deref()
        .or(ctx.repo.as_deref())
        .ok_or_else(|| {
            CliError::Usage(
                "no source repository: pass --from URL (or --repo, HOLDFAST_REPO)".into(),
            )
        })?;
    let from_store = ctx.store_at(from_url)?;
    let to_store = ctx.store_at(&args.to)?;
    if from_store.location() == to_store.location() {
        return Err(CliError::Usage(
            "--to names the source repository itself: a copy must be somewhere else".into(),
        ));
    }
    holdfast_engine::repo::read_config(&from_store)?;
    let to_exists = to_store
        .stat("config")
        .map_err(holdfast_engine::Error::from)?
        .is_some();
    let pass = ctx.passphrase(false)?;
    let from = Repository::open(from_store, &pass)?.load_index()?;
    let mut to = if to_exists {
        Repository::open(to_store, &pass)?
    } else {
        Repository::init_copy_of(to_store, &from, &pass, args.kdf_iterations)?
    }
    .load_index()?;
    let opts = CopyOptions {
        labels: (!args.labels.is_empty()).then_some(args.labels),
        lock_wait: ctx.lock_wait,
        uploads: args.uploads.max(1),
        force: args.force,
        stop: Some(crate::cli::signals::stop_flag()),
    };
    let progress = Arc::new(Progress::default());
    let report = {
        let _bar = ctx.bar(&progress, "copy");
        copy(&from, &mut to, &opts, &progress)?
    };
    let created = !to_exists;
    ctx.emit(
        &Output {
            created,
            report: &report,
        },
        || render(&report, created),
    )?;
    Ok(if report.stopped {
        exit::ABORTED
    } else {
        exit::OK
    })
}
