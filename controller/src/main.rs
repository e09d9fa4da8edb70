//! `holdfast`: the Holdfast CLI (and, later, the Kubernetes controller).

use std::process::ExitCode;

fn main() -> ExitCode {
    // Two TLS providers are linked (aws-lc-rs by the AWS SDK and kube, ring by others);
    // rustls refuses to pick one by itself and building a Kubernetes client would panic.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    holdfast::cli::run()
}
