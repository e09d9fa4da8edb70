//! `holdfast backup`

use std::fmt::Write as _;
use std::sync::Arc;

use holdfast_engine::backup::{BackupOptions, BackupReport, SourceSpec, backup};
use holdfast_engine::compress::CompressionLevel;
use holdfast_engine::format::run::{Level, RunStatus};
use holdfast_engine::progress::Progress;

use crate::cli::{CliError, Ctx, exit, human};
use crate::job::summary::JobSummary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to back up: PATH (the source is named after its last component) or NAME=PATH.
    /// A FIFO is read as a stream.
    #[arg(value_name = "PATH|NAME=PATH", required_unless_present_any = ["stdin", "command"])]
    sources: Vec<String>,

    /// Also store standard input as a stream source with this name (e.g. `db.sql`).
    #[arg(long, value_name = "NAME")]
    stdin: Option<String>,

    /// Also run a shell command and store its standard output as a source, e.g.
    /// `--command 'db=pg_dumpall -h shop-db'`. A failing command fails that source and
    /// makes the run Partial, with its exit status and stderr in the report.
    #[arg(long, value_name = "NAME=COMMAND")]
    command: Vec<String>,

    /// full (0), diff (1: changes since the last full) or incr (2: since the previous run).
    /// A diff or incr with no full to base on is promoted to full.
    #[arg(long, short = 'l', default_value = "full")]
    level: Level,

    /// A different level for one source, NAME=LEVEL (repeatable): levels are per source,
    /// so one run can take a full of one source and incrementals of the others.
    #[arg(long, value_name = "NAME=LEVEL", value_parser = parse_source_level)]
    source_level: Vec<(String, Level)>,

    /// Skip paths matching this glob (repeatable). `*.tmp` matches at any depth; `/cache`
    /// is anchored at the source root.
    #[arg(long, short = 'e', value_name = "GLOB")]
    exclude: Vec<String>,

    /// Do not descend into other filesystems (mount points are kept, empty).
    #[arg(long, short = 'x')]
    one_file_system: bool,

    /// off, fast, default, best, or a zstd level 1..19.
    #[arg(long, default_value = "default")]
    compression: CompressionLevel,

    /// The backup set this run is for; refused if the repository belongs to another.
    #[arg(long, env = "HOLDFAST_OWNER")]
    owner: Option<String>,

    /// Write even into a repository owned by another backup set.
    #[arg(long)]
    force: bool,

    /// Tag the run (repeatable).
    #[arg(long)]
    tag: Vec<String>,

    /// Files read in parallel (default: number of CPUs).
    #[arg(long)]
    read_threads: Option<usize>,

    /// Volumes uploaded in parallel.
    #[arg(long, default_value_t = 4)]
    uploads: usize,
}

fn parse_source_level(s: &str) -> Result<(String, Level), String> {
    let (name, level) = s
        .split_once('=')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("expected NAME=LEVEL, got {s:?}"))?;
    Ok((name.to_owned(), level.parse().map_err(|e| format!("{e}"))?))
}

fn parse_source(s: &str) -> SourceSpec {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') && !path.is_empty() => {
            SourceSpec::path(name, path)
        }
        _ => SourceSpec::from_path(std::path::PathBuf::from(s)),
    }
}

pub(crate) fn render(r: &BackupReport) -> String {
    let run = &r.run;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}  {}  level {}",
        run.label, run.status, run.level
    );
    if r.promoted {
        let _ = writeln!(
            out,
            "  note: promoted to full (no full of theirs to base on): {}",
            r.promoted_sources.join(", ")
        );
    }
    for s in &run.sources {
        let _ = writeln!(
            out,
            "  source {} ({}): {}, {:?}, {} files, {} dirs, {}",
            s.name,
            s.origin.display(),
            s.level.unwrap_or(run.level),
            s.status,
            human::count(s.stats.files),
            human::count(s.stats.dirs),
            human::bytes(s.stats.bytes_total)
        );
    }
    let st = &run.stats;
    let _ = writeln!(
        out,
        "  read {} ({} files unchanged), added {} new, stored {} in {} volumes",
        human::bytes(st.bytes_read),
        human::count(st.files_unchanged),
        human::bytes(st.bytes_new),
        human::bytes(st.bytes_stored),
        r.volumes_written
    );
    let _ = writeln!(
        out,
        "  took {} ({})",
        human::duration_ms(r.duration_ms),
        human::rate(st.bytes_read, r.duration_ms)
    );
    for s in &run.sources {
        for e in s.errors.iter().take(20) {
            let _ = writeln!(out, "  error   {}:{}: {}", s.name, e.path, e.error);
        }
        for w in s.warnings.iter().take(20) {
            let _ = writeln!(out, "  warning {}:{}: {}", s.name, w.path, w.error);
        }
    }
    if st.errors + st.warnings > 40 {
        let _ = writeln!(
            out,
            "  ({} errors and {} warnings in all; see --json)",
            st.errors, st.warnings
        );
    }
    out
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let mut sources: Vec<SourceSpec> = args.sources.iter().map(|s| parse_source(s)).collect();
    if let Some(name) = args.stdin {
        sources.push(SourceSpec::stdin(name));
    }
    for c in &args.command {
        let (name, cmd) = c
            .split_once('=')
            .filter(|(n, c)| !n.is_empty() && !c.trim().is_empty())
            .ok_or_else(|| CliError::Usage(format!("--command needs NAME=COMMAND, got {c:?}")))?;
        sources.push(SourceSpec::command(name, cmd));
    }
    let mut repo = ctx.open()?.load_index()?;
    let defaults = BackupOptions::default();
    let opts = BackupOptions {
        level: args.level,
        source_levels: args.source_level.into_iter().collect(),
        owner: args.owner,
        force: args.force,
        exclude: args.exclude,
        one_file_system: args.one_file_system,
        compression: args.compression,
        read_threads: args.read_threads.unwrap_or(defaults.read_threads).max(1),
        uploads: args.uploads.max(1),
        tags: args.tag,
        scan_totals: ctx.progress && !ctx.json && !ctx.quiet,
        lock_wait: ctx.lock_wait,
        stop: Some(crate::cli::signals::stop_flag()),
        ..defaults
    };
    let progress = Arc::new(Progress::default());
    let report = {
        let _bar = ctx.bar(&progress, "backup");
        backup(&mut repo, &sources, &opts, &progress)?
    };
    ctx.summary(&JobSummary::from(&report).to_message());
    ctx.emit(&report, || render(&report))?;
    Ok(match report.run.status {
        RunStatus::Aborted => exit::ABORTED,
        RunStatus::Complete => exit::OK,
        RunStatus::Partial => exit::PARTIAL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_engine::backup::SourceInput;

    #[test]
    fn source_arguments() {
        let s = parse_source("db=/var/lib/db");
        assert_eq!(s.name, "db");
        assert_eq!(s.input, SourceInput::Path("/var/lib/db".into()));
        let s = parse_source("/srv/uploads/");
        assert_eq!(s.name, "uploads");
        let s = parse_source("/");
        assert_eq!(s.name, "root");
        // A path with '=' after a slash is a path, not NAME=PATH.
        let s = parse_source("/data/a=b");
        assert_eq!(s.input, SourceInput::Path("/data/a=b".into()));
    }
}
