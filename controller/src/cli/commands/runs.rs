//! `holdfast runs`

use std::fmt::Write as _;

use holdfast_engine::format::run::RunManifest;

use crate::cli::{CliError, Ctx, exit, human};

#[derive(Debug, clap::Args)]
pub struct Args {}

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
    sources: Vec<&'a str>,
    errors: u64,
}

fn row(r: &RunManifest) -> Row<'_> {
    Row {
        label: &r.label,
        level: r.level.to_string(),
        status: format!("{:?}", r.status),
        started: r.started.to_rfc3339(),
        finished: r.finished.to_rfc3339(),
        duration_ms: (r.finished - r.started).num_milliseconds(),
        files: r.stats.files,
        bytes_total: r.stats.bytes_total,
        bytes_read: r.stats.bytes_read,
        bytes_added: r.stats.bytes_new,
        bytes_stored: r.stats.bytes_stored,
        based_on: r.parent.as_deref(),
        sources: r.sources.iter().map(|s| s.name.as_str()).collect(),
        errors: r.stats.errors,
    }
}

pub fn run(ctx: &Ctx, _args: Args) -> Result<u8, CliError> {
    let repo = ctx.open()?;
    let runs = repo.runs()?;
    let rows: Vec<Row<'_>> = runs.iter().map(row).collect();
    ctx.emit(&rows, || {
        if rows.is_empty() {
            return "no runs yet".into();
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:<5} {:<8} {:<20} {:>9} {:>10} {:>10} {:>10}  BASED ON",
            "LABEL", "LEVEL", "STATUS", "STARTED (UTC)", "DURATION", "FILES", "SIZE", "ADDED"
        );
        for r in &runs {
            let _ = writeln!(
                out,
                "{:<22} {:<5} {:<8} {:<20} {:>9} {:>10} {:>10} {:>10}  {}",
                r.label,
                r.level.to_string(),
                format!("{:?}", r.status),
                r.started.format("%Y-%m-%d %H:%M:%S"),
                human::duration_ms((r.finished - r.started).num_milliseconds().max(0) as u64),
                human::count(r.stats.files),
                human::bytes(r.stats.bytes_total),
                human::bytes(r.stats.bytes_new),
                r.parent.as_deref().unwrap_or("-")
            );
        }
        let _ = write!(out, "{} runs", runs.len());
        out
    })?;
    Ok(exit::OK)
}
