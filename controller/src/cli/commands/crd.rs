//! `holdfast crd`

use std::path::PathBuf;

use crate::api;
use crate::cli::{CliError, Ctx, exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one file per kind into this directory (the repository keeps them in `crds/`)
    /// instead of printing them all.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

pub fn run(_ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let mut docs = Vec::new();
    for (file, crd) in api::crds() {
        let yaml =
            api::crd_yaml(&crd).map_err(|e| CliError::Io(format!("cannot render {file}: {e}")))?;
        match &args.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
                let path = dir.join(file);
                std::fs::write(&path, &yaml)
                    .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
            }
            None => docs.push(yaml),
        }
    }
    if args.out_dir.is_none() {
        crate::cli::print_out(docs.join("---\n").trim_end())?;
    }
    Ok(exit::OK)
}
