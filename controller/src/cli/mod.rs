//! The command line: global options, dispatch, error reporting.

mod commands;
mod exit;
use crate::human;
mod key;
mod progress;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use holdfast_engine::ErrorCategory;
use holdfast_engine::repo::{Opened, Repository};
use holdfast_engine::storage::{RepoUrl, Store};
use serde::Serialize;

/// The version with the commit and date of the build, e.g. `0.1.0 (commit 019efc9a1b2c,
/// 2026-12-02)`: what a user quotes to say which build they run.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOLDFAST_COMMIT"),
    ", ",
    env!("HOLDFAST_BUILD_DATE"),
    ")"
);

/// Holdfast: encrypted, deduplicating backups with levels, retention and point-in-time restore.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version = VERSION, about, max_term_width = 100)]
pub struct Cli {
    /// Repository location: file:///path or a plain path.
    #[arg(long, short = 'r', env = "HOLDFAST_REPO", global = true)]
    repo: Option<String>,

    /// File holding the repository passphrase (its trailing newline is ignored). Otherwise
    /// HOLDFAST_PASSPHRASE is used, or you are prompted.
    #[arg(long, env = "HOLDFAST_KEY_FILE", global = true)]
    key_file: Option<PathBuf>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Print only errors.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,

    /// Do not draw progress bars.
    #[arg(long, global = true)]
    no_progress: bool,

    /// How long to wait for a conflicting lock to be released (e.g. 10m); by default fail
    /// at once, naming the holder.
    #[arg(long, global = true, value_name = "DURATION", value_parser = human::parse_duration, default_value = "0s")]
    lock_wait: std::time::Duration,

    /// Also write a compact JSON summary (under 4 KiB) to this file, e.g.
    /// /dev/termination-log in a Kubernetes job pod.
    #[arg(
        long,
        global = true,
        env = "HOLDFAST_SUMMARY_FILE",
        value_name = "FILE"
    )]
    summary_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository.
    Init(commands::init::Args),
    /// Back up directories or files into a new run.
    Backup(commands::backup::Args),
    /// List the runs in the repository.
    Runs(commands::runs::Args),
    /// List the files of a run.
    Ls(commands::ls::Args),
    /// Restore a run (newest by default) to a directory.
    Restore(commands::restore::Args),
    /// Check the repository's consistency, and with --deep read back every volume.
    Verify(commands::verify::Args),
    /// Expire runs by retention and reclaim space (two-phase: mark, then delete).
    Purge(commands::purge::Args),
    /// Copy runs into another repository of the same set (created there if the location
    /// is empty), moving only the blobs it lacks, never reading the sources again.
    Copy(commands::copy::Args),
    /// Show every volume, live and reclaimable bytes, and dedup and compression ratios.
    Inventory(commands::inventory::Args),
    /// Delete the whole repository (a dry run unless --yes); objects under its location
    /// that are not part of it are kept, and another repository inside it stops it.
    Destroy(commands::destroy::Args),
    /// Keep a run forever, whatever the retention policy.
    Archive(commands::archive::Args),
    /// Return an archived run to normal retention.
    Unarchive(commands::archive::Args),
    /// List the repository's locks.
    Locks,
    /// Remove stale locks (whose holder stopped refreshing its lease).
    Unlock(commands::locks::UnlockArgs),
    /// Print the CustomResourceDefinitions (BackupSet, StorageSet, Schedule, Restore).
    Crd(commands::crd::Args),
    /// Check a storage location: credentials, bucket, write/read/delete, clock, repository.
    #[command(subcommand)]
    Storage(commands::storage::StorageCommand),
    /// What the controller's job pods run (a plan from HOLDFAST_JOB_PLAN; helpers).
    #[command(subcommand)]
    Job(commands::job::JobCommand),
    /// Run the Kubernetes operator.
    Controller(commands::controller::Args),
}

impl Command {
    /// The operation's name in a failure summary.
    fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Backup(_) => "backup",
            Command::Runs(_) => "runs",
            Command::Ls(_) => "ls",
            Command::Restore(_) => "restore",
            Command::Verify(_) => "verify",
            Command::Purge(_) => "purge",
            Command::Copy(_) => "copy",
            Command::Inventory(_) => "inventory",
            Command::Destroy(_) => "destroy",
            Command::Archive(_) => "archive",
            Command::Unarchive(_) => "unarchive",
            Command::Locks => "locks",
            Command::Unlock(_) => "unlock",
            Command::Crd(_) => "crd",
            Command::Storage(_) => "storage-check",
            Command::Job(_) => "job",
            Command::Controller(_) => "controller",
        }
    }
}

/// Errors of the CLI layer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Engine(#[from] holdfast_engine::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
    /// stdout's reader went away; not an error worth a message.
    #[error("output closed")]
    BrokenPipe,
}

impl From<crate::job::error::JobError> for CliError {
    fn from(e: crate::job::error::JobError) -> Self {
        use crate::job::error::JobError;
        match e {
            JobError::Engine(e) => CliError::Engine(e),
            JobError::Plan(m) => CliError::Usage(m),
            JobError::Io(m) => CliError::Io(m),
        }
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Engine(e) => exit::for_error(e),
            CliError::Usage(_) => exit::USAGE,
            CliError::Io(_) => exit::ERROR,
            CliError::BrokenPipe => exit::BROKEN_PIPE,
        }
    }

    fn category(&self) -> ErrorCategory {
        match self {
            CliError::Engine(e) => e.category(),
            CliError::Usage(_) => ErrorCategory::InvalidArgument,
            CliError::Io(_) | CliError::BrokenPipe => ErrorCategory::Io,
        }
    }
}

/// What every command gets: global options and helpers to open the repository and print.
#[derive(Debug)]
pub struct Ctx {
    repo: Option<String>,
    key_file: Option<PathBuf>,
    json: bool,
    quiet: bool,
    progress: bool,
    lock_wait: std::time::Duration,
    summary_file: Option<PathBuf>,
    /// A command wrote its own summary (also on failure): leave it as it is.
    summary_done: std::cell::Cell<bool>,
}

impl Ctx {
    /// Mark the summary file as final.
    fn summary_written(&self) {
        self.summary_done.set(true);
    }

    fn url(&self) -> Result<RepoUrl, CliError> {
        let url = self.repo.as_deref().ok_or_else(|| {
            CliError::Usage("no repository given: pass --repo URL or set HOLDFAST_REPO".into())
        })?;
        Ok(RepoUrl::parse(url).map_err(holdfast_engine::Error::from)?)
    }

    fn store(&self) -> Result<Store, CliError> {
        let url = self.url()?;
        Ok(Store::open(&url).map_err(holdfast_engine::Error::from)?)
    }

    /// The storage at `url` (a second repository, as a copy's destination).
    fn store_at(&self, url: &str) -> Result<Store, CliError> {
        let url = RepoUrl::parse(url).map_err(holdfast_engine::Error::from)?;
        Ok(Store::open(&url).map_err(holdfast_engine::Error::from)?)
    }

    fn passphrase(&self, confirm: bool) -> Result<Vec<u8>, CliError> {
        key::passphrase(self.key_file.as_deref(), confirm).map_err(CliError::Usage)
    }

    /// Open the repository, reading the key.
    fn open(&self) -> Result<Repository<Opened>, CliError> {
        let store = self.store()?;
        // Check that it is a repository before asking for a passphrase.
        holdfast_engine::repo::read_config(&store)?;
        let pass = self.passphrase(false)?;
        Ok(Repository::open(store, &pass)?)
    }

    fn bar(
        &self,
        progress: &Arc<holdfast_engine::progress::Progress>,
        verb: &'static str,
    ) -> progress::Bar {
        progress::Bar::start(
            progress.clone(),
            verb,
            self.progress && !self.json && !self.quiet,
        )
    }

    /// Write the compact summary file, if one was asked for.
    fn summary(&self, text: &str) {
        if let Some(path) = &self.summary_file
            && let Err(e) = std::fs::write(path, text)
        {
            eprintln!(
                "holdfast: warning: cannot write summary to {}: {e}",
                path.display()
            );
        }
    }

    /// Print a result: JSON on stdout with --json, else the human text (unless quiet).
    fn emit<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if self.json {
            let text =
                serde_json::to_string_pretty(value).map_err(|e| CliError::Io(e.to_string()))?;
            print_out(&text)?;
        } else if !self.quiet {
            let text = human();
            if !text.is_empty() {
                print_out(text.trim_end())?;
            }
        }
        Ok(())
    }
}

/// Write a line to stdout. A reader that went away (`holdfast ls | head -1`) ends the
/// command quietly, as it ends coreutils, instead of a panic.
pub fn print_out(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::BrokenPipe),
        Err(e) => Err(CliError::Io(format!("cannot write to stdout: {e}"))),
    }
}

/// Parse arguments, run the command, report errors, return the exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // The operator sets up its own logging (JSON or text, info by default).
    if !matches!(cli.command, Command::Controller(_)) {
        crate::logging::init_cli();
    }
    let ctx = Ctx {
        repo: cli.repo,
        key_file: cli.key_file,
        json: cli.json,
        quiet: cli.quiet,
        progress: !cli.no_progress,
        lock_wait: cli.lock_wait,
        summary_file: cli.summary_file,
        summary_done: std::cell::Cell::new(false),
    };
    let op = cli.command.name();
    let result = match cli.command {
        Command::Init(a) => commands::init::run(&ctx, a),
        Command::Backup(a) => commands::backup::run(&ctx, a),
        Command::Runs(a) => commands::runs::run(&ctx, a),
        Command::Ls(a) => commands::ls::run(&ctx, a),
        Command::Restore(a) => commands::restore::run(&ctx, a),
        Command::Verify(a) => commands::verify::run(&ctx, a),
        Command::Purge(a) => commands::purge::run(&ctx, a),
        Command::Copy(a) => commands::copy::run(&ctx, a),
        Command::Inventory(a) => commands::inventory::run(&ctx, a),
        Command::Destroy(a) => commands::destroy::run(&ctx, a),
        Command::Archive(a) => commands::archive::archive(&ctx, a),
        Command::Unarchive(a) => commands::archive::unarchive(&ctx, a),
        Command::Locks => commands::locks::list(&ctx),
        Command::Unlock(a) => commands::locks::unlock(&ctx, a),
        Command::Crd(a) => commands::crd::run(&ctx, a),
        Command::Storage(c) => commands::storage::run(&ctx, c),
        Command::Job(c) => commands::job::run(&ctx, c),
        Command::Controller(a) => commands::controller::run(&ctx, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(CliError::BrokenPipe) => ExitCode::from(exit::BROKEN_PIPE),
        Err(e) => {
            let text = holdfast_engine::error_chain(&e);
            eprintln!("holdfast: error: {text}");
            if !ctx.summary_done.get() {
                let failure = crate::job::summary::FailureSummary {
                    operation: op.to_owned(),
                    category: e.category(),
                    message: text.clone(),
                };
                ctx.summary(&crate::job::summary::JobSummary::Failed(failure).to_message());
            }
            if ctx.json {
                let v = serde_json::json!({"error": {"category": e.category(), "message": e.to_string()}});
                let _ = print_out(&v.to_string());
            }
            ExitCode::from(e.exit_code())
        }
    }
}
