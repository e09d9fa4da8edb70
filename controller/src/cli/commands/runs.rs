//! `holdfast runs`

use std::fmt::Write as _;

use holdfast_engine::catalog::{SourceEntry, source_entries};
use holdfast_engine::format::run::{Level, RunManifest, RunStatus, SourceStatus};
use holdfast_engine::retention::{Decision, facts_of, plan_retention};

use crate::cli::{CliError, Ctx, exit, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only runs of this level: full, diff or incr.
    #[arg(long, short = 'l')]
    level: Option<Level>,

    /// Only runs whose label contains this text (e.g. 202611).
    #[arg(long)]
    label: Option<String>,

    /// Only runs that include this source.
    #[arg(long, short = 's')]
    source: Option<String>,

    /// Only runs started at or after this time (RFC 3339, UTC or with an offset).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,

    /// Only runs started at or before this time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,

    /// Only runs with this status: complete, partial or aborted.
    #[arg(long)]
    status: Option<String>,

    /// Show what these retention rules would keep and expire, and why.
    #[command(flatten)]
    retention: super::purge::RetentionArgs,
}

/// One row of the listing, as shown and as JSON.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    label: &'a str,
    level: String,
    status: String,
    started: String,
    finished: String,
    duration_ms: i64,
    files: u64,
    bytes_total: u64,
    bytes_read: u64,
    bytes_added: u64,
    bytes_stored: u64,
    based_on: Option<&'a str>,
    base_full: Option<&'a str>,
    sources: Vec<&'a str>,
    /// Each source's own level, status and bases (levels are per source).
    source_levels: Vec<SourceRow>,
    errors: u64,
    archived: bool,
    /// keep / expire under the retention given on the command line, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: Option<Decision>,
}

/// One source of a run.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceRow {
    name: String,
    level: Level,
    status: SourceStatus,
    based_on: Option<String>,
    base_full: Option<String>,
    /// The instant a snapshot-read source holds (its restore-point time); absent for a
    /// source read live during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    captured: Option<String>,
}

/// The SOURCES column: names, with a level where it differs from the run's.
fn sources_text(run: &Row<'_>) -> String {
    run.source_levels
        .iter()
        .map(|s| {
            if s.level.to_string() == run.level {
                s.name.clone()
            } else {
                format!("{}({})", s.name, s.level)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn row<'a>(
    r: &'a RunManifest,
    entries: &[SourceEntry],
    archived: bool,
    retention: Option<Decision>,
) -> Row<'a> {
    Row {
        label: &r.label,
        level: r.level.to_string(),
        status: r.status.to_string(),
        started: r.started.to_rfc3339(),
        finished: r.finished.to_rfc3339(),
        duration_ms: (r.finished - r.started).num_milliseconds(),
        files: r.stats.files,
        bytes_total: r.stats.bytes_total,
        bytes_read: r.stats.bytes_read,
        bytes_added: r.stats.bytes_new,
        bytes_stored: r.stats.bytes_stored,
        based_on: r.parent.as_deref(),
        base_full: r.base_full.as_deref(),
        sources: r.sources.iter().map(|s| s.name.as_str()).collect(),
        source_levels: entries
            .iter()
            .filter(|e| e.run == r.label)
            .map(|e| SourceRow {
                name: e.source.clone(),
                level: e.level,
                status: e.status,
                based_on: e.parent.clone(),
                base_full: e.base_full.clone(),
                captured: r
                    .sources
                    .iter()
                    .find(|s| s.name == e.source)
                    .and_then(|s| s.captured)
                    .map(|t| t.to_rfc3339()),
            })
            .collect(),
        errors: r.stats.errors,
        archived,
        retention,
    }
}

/// The BASED ON column: the run's parent, or, when sources differ, each source's.
fn based_on_text(row: &Row<'_>) -> String {
    if let Some(p) = row.based_on {
        return p.to_owned();
    }
    let per: Vec<String> = row
        .source_levels
        .iter()
        .filter_map(|s| s.based_on.as_ref().map(|p| format!("{}:{p}", s.name)))
        .collect();
    if per.is_empty() {
        "-".into()
    } else {
        per.join(" ")
    }
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let from = args
        .from
        .as_deref()
        .map(super::restore::parse_time)
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(super::restore::parse_time)
        .transpose()?;
    let status = args
        .status
        .as_deref()
        .map(str::parse::<RunStatus>)
        .transpose()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let repo = ctx.open()?;
    let runs = repo.runs()?;
    let archived = repo.archived_labels()?;
    let decisions: Option<Vec<Decision>> = if args.retention.any() {
        let policy = args.retention.policy()?;
        Some(
            plan_retention(&facts_of(&runs, &archived), &policy, chrono::Utc::now())?
                .decisions
                .into_iter()
                .map(|(_, d)| d)
                .collect(),
        )
    } else {
        None
    };
    let selected: Vec<(usize, &RunManifest)> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| args.level.is_none_or(|l| r.level == l))
        .filter(|(_, r)| args.label.as_deref().is_none_or(|l| r.label.contains(l)))
        .filter(|(_, r)| {
            args.source
                .as_deref()
                .is_none_or(|s| r.sources.iter().any(|x| x.name == s))
        })
        .filter(|(_, r)| from.is_none_or(|f| r.started >= f) && to.is_none_or(|t| r.started <= t))
        .filter(|(_, r)| status.is_none_or(|s| r.status == s))
        .collect();
    let entries = source_entries(&runs);
    let rows: Vec<Row<'_>> = selected
        .iter()
        .map(|(i, r)| {
            row(
                r,
                &entries,
                archived.contains(&r.label),
                decisions.as_ref().map(|d| d[*i].clone()),
            )
        })
        .collect();
    ctx.emit(&rows, || {
        if rows.is_empty() {
            return if runs.is_empty() {
                "no runs yet".into()
            } else {
                "no runs match".into()
            };
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:<5} {:<8} {:<20} {:>9} {:>8} {:>10} {:>10} {:>10}  {:<22} {:<10} RETENTION",
            "LABEL",
            "LEVEL",
            "STATUS",
            "STARTED (UTC)",
            "DURATION",
            "FILES",
            "SIZE",
            "READ",
            "ADDED",
            "BASED ON",
            "SOURCES"
        );
        for (row, (_, r)) in rows.iter().zip(&selected) {
            let retention = match (&row.retention, row.archived) {
                (_, true) => "archived".to_owned(),
                (Some(Decision::Keep(_)), _) => "keep".to_owned(),
                (Some(Decision::Expire(_)), _) => "expire".to_owned(),
                (None, false) => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<22} {:<5} {:<8} {:<20} {:>9} {:>8} {:>10} {:>10} {:>10}  {:<22} {:<10} {retention}",
                r.label,
                r.level.to_string(),
                r.status.to_string(),
                r.started.format("%Y-%m-%d %H:%M:%S"),
                human::duration_ms((r.finished - r.started).num_milliseconds().max(0) as u64),
                human::count(r.stats.files),
                human::bytes(r.stats.bytes_total),
                human::bytes(r.stats.bytes_read),
                human::bytes(r.stats.bytes_new),
                based_on_text(row),
                sources_text(row),
            );
        }
        let _ = write!(out, "{} of {} runs", rows.len(), runs.len());
        out
    })?;
    Ok(exit::OK)
}
