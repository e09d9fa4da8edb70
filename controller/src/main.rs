//! `holdfast`: the Holdfast CLI (and, later, the Kubernetes controller).

use std::process::ExitCode;

fn main() -> ExitCode {
    holdfast::cli::run()
}
