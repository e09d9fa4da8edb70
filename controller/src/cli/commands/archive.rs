//! `holdfast archive` / `holdfast unarchive`

use crate::cli::{CliError, Ctx, exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Label of the run.
    label: String,
}

pub fn archive(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let repo = ctx.open()?;
    repo.archive(&args.label)?;
    ctx.emit(&serde_json::json!({"archived": args.label}), || {
        format!(
            "run {} archived: retention will never expire it",
            args.label
        )
    })?;
    Ok(exit::OK)
}

pub fn unarchive(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let repo = ctx.open()?;
    repo.unarchive(&args.label)?;
    ctx.emit(&serde_json::json!({"unarchived": args.label}), || {
        format!("run {} is subject to retention again", args.label)
    })?;
    Ok(exit::OK)
}
