//! `holdfast verify`

use std::fmt::Write as _;
use std::sync::Arc;

use holdfast_engine::progress::Progress;
use holdfast_engine::verify::{VerifyDepth, VerifyReport, verify_with};

use crate::cli::{CliError, Ctx, exit, human};
use crate::job::summary::JobSummary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read back every volume: check its name (SHA-256), and authenticate, decompress and
    /// re-hash every blob.
    #[arg(long)]
    deep: bool,

    /// With --deep, read only this percentage of volumes, chosen at random.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    sample: Option<f64>,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("invalid percentage {s:?}"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("percentage must be in (0, 100], got {s}"))
    }
}

pub(crate) fn render(r: &VerifyReport) -> String {
    let mut out = String::new();
    let verdict = match (r.ok, r.data_verified, r.volumes_read) {
        (true, true, _) => "OK: metadata consistent and every volume read back intact".to_owned(),
        (true, false, 0) => {
            "OK: metadata consistent (volume contents not read; --deep reads them)".to_owned()
        }
        (true, false, n) => format!(
            "OK: metadata consistent and the {n} sampled volumes of {} read back intact (the \
             rest were not read; --deep without --sample reads every volume)",
            r.volumes_indexed
        ),
        (false, _, _) => "DAMAGED".to_owned(),
    };
    let _ = writeln!(out, "verify {}: {verdict}", r.depth);
    let _ = writeln!(
        out,
        "  {} runs, {} listings, {} blobs in {} volumes; read {} volumes ({}) in {}",
        r.runs_checked,
        human::count(r.trees_checked as u64),
        human::count(r.blobs_indexed as u64),
        human::count(r.volumes_indexed as u64),
        human::count(r.volumes_read as u64),
        human::bytes(r.bytes_read),
        human::duration_ms(r.duration_ms)
    );
    for v in &r.damaged_volumes {
        let _ = writeln!(out, "  damaged volume {}: {}", v.volume, v.problem);
        let _ = writeln!(
            out,
            "    runs affected: {}",
            if v.runs.is_empty() {
                "none".into()
            } else {
                v.runs.join(", ")
            }
        );
        for f in v.files.iter().take(20) {
            let _ = writeln!(out, "    {}  {}", f.run, f.path);
        }
        if v.files_total > 20 {
            let _ = writeln!(
                out,
                "    … {} affected files in all (see --json)",
                v.files_total
            );
        }
    }
    for p in r.problems.iter().take(50) {
        let _ = writeln!(out, "  problem: {p}");
    }
    if !r.unreferenced_volumes.is_empty() {
        let _ = writeln!(
            out,
            "  note: {} volumes are not referenced by any index (left by an interrupted backup); a purge removes them",
            r.unreferenced_volumes.len()
        );
    }
    out
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    if args.sample.is_some() && !args.deep {
        return Err(CliError::Usage("--sample needs --deep".into()));
    }
    let depth = if args.deep {
        VerifyDepth::Deep {
            sample_percent: args.sample,
        }
    } else {
        VerifyDepth::Quick
    };
    let repo = ctx.open()?.load_index()?;
    let progress = Arc::new(Progress::default());
    let report = {
        let _bar = ctx.bar(&progress, "verify");
        verify_with(&repo, depth, ctx.lock_wait, &progress)?
    };
    ctx.summary(&JobSummary::verify(&report, None).to_message());
    ctx.emit(&report, || render(&report))?;
    Ok(if report.ok { exit::OK } else { exit::DAMAGED })
}
