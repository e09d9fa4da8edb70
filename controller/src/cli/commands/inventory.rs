//! `holdfast inventory`

use std::fmt::Write as _;

use holdfast_engine::inventory::{InventoryReport, inventory};

use crate::cli::{CliError, Ctx, exit, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List every volume (by default only the totals and volumes that are not active).
    #[arg(long, short = 'a')]
    all: bool,
}

fn render(r: &InventoryReport, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} volumes, {} stored ({} live, {} reclaimable)",
        human::count(r.volume_count as u64),
        human::bytes(r.volume_bytes),
        human::bytes(r.live_bytes),
        human::bytes(r.reclaimable_bytes)
    );
    let _ = writeln!(
        out,
        "logical {} across all runs; unique {} ({:.1}x dedup); stored {} ({:.2}x compression); overall {:.1}x",
        human::bytes(r.logical_bytes),
        human::bytes(r.unique_bytes),
        r.dedup_ratio,
        human::bytes(r.stored_bytes),
        r.compression_ratio,
        r.dedup_ratio * r.compression_ratio
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:>5} {:>12} {:>10} {:>12}",
        "SOURCE", "RUNS", "NEWEST SIZE", "FILES", "ADDED"
    );
    for (name, t) in &r.per_source {
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>12} {:>10} {:>12}",
            name,
            t.runs,
            human::bytes(t.newest_bytes),
            human::count(t.newest_files),
            human::bytes(t.bytes_added)
        );
    }
    let _ = writeln!(
        out,
        "\n{:<6} {:>5} {:>12} {:>12}",
        "LEVEL", "RUNS", "READ", "ADDED"
    );
    for (level, t) in &r.per_level {
        let _ = writeln!(
            out,
            "{:<6} {:>5} {:>12} {:>12}",
            level,
            t.runs,
            human::bytes(t.bytes_read),
            human::bytes(t.bytes_added)
        );
    }
    let shown: Vec<_> = r
        .volumes
        .iter()
        .filter(|v| all || v.state != holdfast_engine::inventory::VolumeState::Active)
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<9} {:<5} {:<12} {:>10} {:>10} {:>5}  RUNS",
            "VOLUME", "KIND", "STATE", "SIZE", "LIVE", "BLOBS"
        );
        for v in shown {
            let runs = match v.runs.len() {
                0 => "-".to_owned(),
                1..=3 => v.runs.join(", "),
                n => format!("{} … {} ({n} runs)", v.runs[0], v.runs[n - 1]),
            };
            let _ = writeln!(
                out,
                "{:<9} {:<5} {:<12} {:>10} {:>10} {:>5}  {runs}",
                v.label,
                v.kind,
                format!("{:?}", v.state).to_lowercase(),
                human::bytes(v.size),
                human::bytes(v.live_bytes),
                v.blobs
            );
        }
    }
    out
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let repo = ctx.open()?.load_index()?;
    let report = inventory(&repo)?;
    ctx.emit(&report, || render(&report, args.all))?;
    Ok(exit::OK)
}
