//! `holdfast`: the Holdfast CLI, the job runner of its pods, and the Kubernetes controller.

use std::process::ExitCode;

fn main() -> ExitCode {
    // rustls refuses to pick a crypto provider when more than one is linked, and building a
    // Kubernetes client then panics. Only aws-lc-rs is enabled today (the AWS SDK's, and
    // kube's `aws-lc-rs` feature); choosing it here keeps a dependency that enables ring's
    // provider from ever bringing that panic back.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    holdfast::cli::run()
}
