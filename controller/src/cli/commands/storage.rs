//! `holdfast storage check`

use std::fmt::Write as _;

use holdfast_engine::repo::check_location;
use holdfast_engine::storage::{RepoUrl, Store};

use crate::cli::{CliError, Ctx, exit};

#[derive(Debug, clap::Subcommand)]
pub enum StorageCommand {
    /// Probe a location: credentials, bucket and region, a write/read/delete round trip,
    /// clock skew, and whether a repository is there. Exit code 15 if anything fails.
    Check {
        /// The location (default: --repo / HOLDFAST_REPO), e.g.
        /// s3://bucket/prefix?endpoint=https://s3.example:9000&path_style=true
        url: Option<String>,
    },
}

pub fn run(ctx: &Ctx, cmd: StorageCommand) -> Result<u8, CliError> {
    let StorageCommand::Check { url } = cmd;
    let store = match url {
        Some(u) => Store::open(&RepoUrl::parse(&u).map_err(holdfast_engine::Error::from)?)
            .map_err(holdfast_engine::Error::from)?,
        None => ctx.store()?,
    };
    let report = check_location(&store);
    ctx.emit(&report, || {
        let mut out = String::new();
        let _ = writeln!(out, "storage check of {}", report.location);
        for i in &report.items {
            let _ = writeln!(
                out,
                "  {} {:<10} {}",
                if i.ok { "ok  " } else { "FAIL" },
                i.check,
                i.detail
            );
        }
        let _ = write!(
            out,
            "{}",
            if report.ok {
                "all checks passed"
            } else {
                "some checks failed"
            }
        );
        out
    })?;
    Ok(if report.ok { exit::OK } else { exit::STORAGE })
}
