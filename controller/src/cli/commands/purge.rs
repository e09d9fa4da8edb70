//! `holdfast purge`

use std::fmt::Write as _;
use std::sync::Arc;

use holdfast_engine::compress::CompressionLevel;
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{Brake, PurgeOptions, PurgeReport, purge};
use holdfast_engine::retention::{MaxAge, RetentionPolicy};

use crate::cli::{CliError, Ctx, exit, human};
use crate::job::summary::JobSummary;

/// Retention rules, shared by `purge` and the `runs` preview. Each applies per source.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// Keep each source's newest N full cycles (a full and every run based on it).
    #[arg(long, value_name = "N")]
    keep_fulls: Option<u32>,

    /// Keep cycles with a run younger than this: e.g. 90d, 12w, 6m, 1y, or forever.
    #[arg(long, value_name = "AGE")]
    max_age: Option<String>,

    /// Keep the newest restore point of each of the newest N days that have one (GFS).
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,

    /// Keep the newest restore point of each of the newest N ISO weeks that have one.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,

    /// Keep the newest restore point of each of the newest N months that have one.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,

    /// Keep the newest restore point of each of the newest N years that have one.
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
}

impl RetentionArgs {
    /// Whether any rule was given.
    pub fn any(&self) -> bool {
        self.keep_fulls.is_some()
            || self.max_age.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
    }

    pub fn policy(&self) -> Result<RetentionPolicy, CliError> {
        let max_age = self
            .max_age
            .as_deref()
            .map(|a| a.parse::<MaxAge>())
            .transpose()?;
        let policy = RetentionPolicy {
            keep_fulls: self.keep_fulls,
            max_age,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
        };
        policy.validate()?;
        Ok(policy)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    retention: RetentionArgs,

    /// Show what would be expired, marked and deleted; change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// How long volumes stay marked before a purge deletes them (two-phase deletion).
    #[arg(long, default_value = "24h", value_parser = human::parse_duration)]
    grace: std::time::Duration,

    /// Repack volumes with less than this percentage of live data (0 disables).
    #[arg(long, default_value_t = 50.0, value_name = "PERCENT")]
    repack_below: f64,

    /// Compression for repacked data.
    #[arg(long, default_value = "default")]
    compression: CompressionLevel,

    /// The brake on mass deletion: a purge that would expire more than this percentage of
    /// the restore points (or every full of a source but the newest, two or more of them)
    /// changes nothing and names its plan instead. 100 releases the brake.
    #[arg(long, default_value_t = 50, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    max_expire: u8,

    /// Run the purge a braked purge named (its plan), expiring exactly what it listed.
    #[arg(long, value_name = "PLAN")]
    approve: Vec<String>,
}

pub(crate) fn render(r: &PurgeReport) -> String {
    let mut out = String::new();
    if let Some(b) = &r.braked {
        let _ = writeln!(
            out,
            "purge BRAKED: nothing expired, because {}; it would expire:",
            b.reason
        );
        for e in b.runs.iter().take(50) {
            let _ = writeln!(out, "  expire {}: {}", e.label, e.reason);
        }
        if b.runs.len() > 50 {
            let _ = writeln!(out, "  … {} runs in all (see --json)", b.runs.len());
        }
        let _ = writeln!(
            out,
            "  if that is what you want: holdfast purge … --approve {} (the same rules)",
            b.plan
        );
        return out;
    }
    let verb = if r.dry_run { "would" } else { "did" };
    let _ = writeln!(
        out,
        "purge{}: {} runs kept, {} expired",
        if r.dry_run { " (dry run)" } else { "" },
        r.runs_kept,
        r.runs_expired.len()
    );
    for e in &r.runs_expired {
        let _ = writeln!(out, "  expire {}: {}", e.label, e.reason);
    }
    let _ = writeln!(
        out,
        "  {verb} mark {} volumes ({}) for deletion, repacking {} of them ({} live data copied)",
        r.volumes_marked,
        human::bytes(r.bytes_marked),
        r.volumes_repacked,
        human::bytes(r.bytes_repacked)
    );
    let _ = writeln!(
        out,
        "  {verb} delete {} volumes, reclaiming {}",
        r.volumes_deleted,
        human::bytes(r.bytes_reclaimed)
    );
    if r.volumes_rescued > 0 {
        let _ = writeln!(
            out,
            "  kept {} marked volumes that a run still needs",
            r.volumes_rescued
        );
    }
    if r.volumes_pending > 0 {
        let when = r
            .pending_until
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} marked volumes wait for their grace period; a purge after {when} deletes them",
            r.volumes_pending
        );
    }
    let _ = writeln!(out, "  took {}", human::duration_ms(r.duration_ms));
    if let Some(why) = &r.delete_deferred {
        let _ = writeln!(out, "  INCOMPLETE: {why}");
    }
    out
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    if !(0.0..=100.0).contains(&args.repack_below) {
        return Err(CliError::Usage(
            "--repack-below is a percentage from 0 to 100".into(),
        ));
    }
    let opts = PurgeOptions {
        policy: args.retention.policy()?,
        dry_run: args.dry_run,
        grace: args.grace,
        repack_below: args.repack_below / 100.0,
        compression: args.compression,
        lock_wait: ctx.lock_wait,
        brake: Some(Brake {
            max_expire_percent: args.max_expire,
            approved: args.approve,
        }),
    };
    let mut repo = ctx.open()?.load_index()?;
    let progress = Arc::new(Progress::default());
    let report = {
        let _bar = ctx.bar(&progress, "purge");
        purge(&mut repo, &opts, &progress)?
    };
    ctx.summary(&JobSummary::purge(&report, None).to_message());
    ctx.emit(&report, || render(&report))?;
    Ok(if report.braked.is_some() {
        exit::BRAKED
    } else if report.delete_deferred.is_some() {
        exit::LOCKED
    } else {
        exit::OK
    })
}
