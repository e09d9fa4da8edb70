//! `holdfast locks` / `holdfast unlock`

use std::fmt::Write as _;

use holdfast_engine::repo::FoundLock;

use crate::cli::{CliError, Ctx, exit};

#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones. Only when you are sure nothing is running.
    #[arg(long)]
    all: bool,
}

fn render(locks: &[FoundLock], verb: &str) -> String {
    let mut out = String::new();
    for l in locks {
        match &l.info {
            Some(i) => {
                let _ = writeln!(
                    out,
                    "{verb}{:?} lock for {} by {} since {}, lease until {}{}",
                    i.kind,
                    i.operation,
                    i.holder,
                    i.started.format("%Y-%m-%d %H:%M:%S UTC"),
                    i.expires.format("%H:%M:%S UTC"),
                    l.stale_because
                        .map(|why| format!(" (stale: {why})"))
                        .unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(out, "{verb}unreadable lock {}", l.id);
            }
        }
    }
    if locks.is_empty() {
        out.push_str(if verb.is_empty() {
            "no locks"
        } else {
            "no stale locks to remove"
        });
    }
    out
}

pub fn list(ctx: &Ctx) -> Result<u8, CliError> {
    let locks = ctx.open()?.locks()?;
    ctx.emit(&locks, || render(&locks, ""))?;
    Ok(exit::OK)
}

pub fn unlock(ctx: &Ctx, args: UnlockArgs) -> Result<u8, CliError> {
    let repo = ctx.open()?;
    let removed = repo.unlock(args.all)?;
    let left = repo.locks()?;
    ctx.emit(&removed, || {
        let mut out = render(&removed, "removed ");
        if !left.is_empty() {
            let _ = write!(
                out,
                "\n{} live lock(s) left, held by running operations:\n{}\nIf you know their \
                 holders are gone for good (e.g. the pod was deleted), `holdfast unlock --all` \
                 removes them.",
                left.len(),
                render(&left, "  ").trim_end()
            );
        }
        out
    })?;
    Ok(exit::OK)
}
