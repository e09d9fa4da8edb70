//! `holdfast destroy`: delete a whole repository (what a BackupSet with `deletionPolicy:
//! Purge` does when deleted), e.g. one left behind by a set released from a namespace that
//! was being deleted. A dry run unless `--yes`.

use holdfast_engine::repo::DestroyReport;

use crate::cli::{CliError, Ctx, exit};
use crate::human;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Really delete; without it, only say what would be deleted.
    #[arg(long)]
    yes: bool,
    /// Refuse unless the repository belongs to this backup set (`namespace/name`).
    #[arg(long, value_name = "SET")]
    owner: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let repo = ctx.open()?;
    let location = repo.location();
    let report = repo.destroy(args.owner.as_deref(), ctx.lock_wait, !args.yes)?;
    ctx.emit(&report, || render(&location, &report))?;
    Ok(exit::OK)
}

fn render(location: &str, r: &DestroyReport) -> String {
    let mut out = if r.dry_run {
        format!(
            "would delete the repository at {location}: {} objects, {} (run again with --yes to delete it)",
            human::count(r.objects_deleted),
            human::bytes(r.bytes_deleted)
        )
    } else {
        format!(
            "deleted the repository at {location}: {} objects, {}",
            human::count(r.objects_deleted),
            human::bytes(r.bytes_deleted)
        )
    };
    if r.objects_kept > 0 {
        out.push_str(&format!(
            "\n{} {} objects there that are not part of it: {}{}",
            if r.dry_run { "would keep" } else { "kept" },
            human::count(r.objects_kept),
            r.kept.join(", "),
            if r.objects_kept > r.kept.len() as u64 {
                ", …"
            } else {
                ""
            }
        ));
    }
    out
}
