//! `holdfast restore`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use holdfast_engine::progress::Progress;
use holdfast_engine::repo::RunSelector;
use holdfast_engine::restore::{
    Overwrite, RestoreOptions, RestoreReport, RestoreStatus, RestoreTarget, restore,
};

use crate::cli::{CliError, Ctx, exit, human};
use crate::job::summary::JobSummary;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["target", "original"])))]
#[command(group(clap::ArgGroup::new("which").args(["label", "at"])))]
pub struct Args {
    /// Restore into this directory. One directory source fills it directly; several
    /// sources each go to DIR/<source>.
    #[arg(long, short = 't', value_name = "DIR")]
    target: Option<PathBuf>,

    /// Restore each source to the path it was backed up from.
    #[arg(long)]
    original: bool,

    /// The run to restore (default: the newest Complete run).
    #[arg(long)]
    label: Option<String>,

    /// Point in time: each source from its newest restore point at or before TIME (RFC
    /// 3339, e.g. 2026-11-20T03:00:00Z or with an offset): a run's start, or for a source
    /// read from a snapshot, the snapshot's instant.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,

    /// Also consider Partial runs when choosing the newest or point-in-time run.
    #[arg(long)]
    partial: bool,

    /// Only this source (repeatable).
    #[arg(long, short = 's')]
    source: Vec<String>,

    /// Only paths matching this glob, and everything below them (repeatable).
    #[arg(long, short = 'i', value_name = "GLOB")]
    include: Vec<String>,

    /// Skip paths matching this glob (repeatable).
    #[arg(long, short = 'e', value_name = "GLOB")]
    exclude: Vec<String>,

    /// What to do with entries that already exist: never, if-newer or always.
    #[arg(long, default_value = "never")]
    overwrite: Overwrite,

    /// Keep restoring after an item fails (the report lists it). With false, stop at the
    /// first failure.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    continue_on_error: bool,

    /// Do not restore file ownership (it is restored only when running as root anyway).
    #[arg(long)]
    no_owner: bool,

    /// Files restored in parallel (default: one per CPU for a local repository, four per CPU
    /// for an object store, whose answers are slow to come).
    #[arg(long)]
    threads: Option<usize>,
}

pub(crate) fn render(r: &RestoreReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "restored up to run {} (level {}, started {})",
        r.run,
        r.level,
        r.run_started.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for t in &r.targets {
        let _ = writeln!(
            out,
            "  {} (run {}, {}) -> {}",
            t.source, t.run, t.level, t.target
        );
    }
    let _ = writeln!(
        out,
        "  {:?}: {} restored ({}), {} skipped, {} unrestored, in {}",
        r.status,
        human::count(r.restored),
        human::bytes(r.bytes_restored),
        human::count(r.skipped),
        human::count(r.unrestored),
        human::duration_ms(r.duration_ms)
    );
    if r.owners_not_set > 0 {
        let _ = writeln!(
            out,
            "  {} entries belong to you, not to their backed-up owner: only root restores owners",
            human::count(r.owners_not_set)
        );
    }
    if r.modes_not_set > 0 {
        let _ = writeln!(
            out,
            "  {} existing entries you do not own kept their mode and times",
            human::count(r.modes_not_set)
        );
    }
    if r.leftovers_removed > 0 {
        let _ = writeln!(
            out,
            "  removed {} temporary entries an interrupted earlier restore left in the target",
            r.leftovers_removed
        );
    }
    for l in r.leftovers.iter().filter(|l| l.reason.starts_with("kept")) {
        let _ = writeln!(out, "  left {}: {}", l.path, l.reason);
    }
    for item in r.unrestored_items.iter().take(50) {
        let _ = writeln!(out, "  unrestored {}: {}", item.path, item.reason);
    }
    if r.unrestored_items.len() > 50 {
        let _ = writeln!(
            out,
            "  … and {} more (see --json)",
            r.unrestored_items.len() - 50
        );
    }
    out
}

pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|n| n.and_utc())
        })
        .map_err(|_| {
            CliError::Usage(format!(
                "invalid time {s:?}: use RFC 3339, e.g. 2026-11-20T03:00:00Z"
            ))
        })
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let selector = match (args.label, args.at) {
        (Some(l), _) => RunSelector::Label(l),
        (None, Some(t)) => RunSelector::At(parse_time(&t)?),
        (None, None) => RunSelector::Newest,
    };
    let target = match args.target {
        Some(dir) => RestoreTarget::Directory(dir),
        None => RestoreTarget::Original,
    };
    let repo = ctx.open()?.load_index()?;
    let opts = RestoreOptions {
        selector,
        allow_partial: args.partial,
        sources: args.source,
        include: args.include,
        exclude: args.exclude,
        target,
        overwrite: args.overwrite,
        continue_on_error: args.continue_on_error,
        owner: !args.no_owner,
        lock_wait: ctx.lock_wait,
        threads: args.threads,
        stop: Some(crate::cli::signals::stop_flag()),
    };
    let progress = Arc::new(Progress::default());
    let report = {
        let _bar = ctx.bar(&progress, "restore");
        restore(&repo, &opts, &progress)?
    };
    ctx.summary(&JobSummary::from(&report).to_message());
    ctx.emit(&report, || render(&report))?;
    Ok(match report.status {
        _ if report.aborted => exit::ABORTED,
        RestoreStatus::Complete => exit::OK,
        RestoreStatus::Partial | RestoreStatus::Failed => exit::PARTIAL,
    })
}
