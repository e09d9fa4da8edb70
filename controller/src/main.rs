//! `holdfast`: the Holdfast CLI (and, later, the Kubernetes controller).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
