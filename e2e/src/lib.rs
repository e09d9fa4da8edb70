//! Holdfast's end-to-end harness: the node agent that stands in for the kubelet on the
//! local control plane (`agent`), helpers the scenario tests share (`harness`), and the
//! controller under test with the chart's RBAC (`controller`).

pub mod agent;
pub mod controller;
pub mod harness;
pub mod health;
pub mod link;
pub mod scenario;
pub mod tree;

/// Install the process-wide TLS provider before any client is built. Two providers are
/// linked (the AWS SDK's aws-lc-rs, and whatever else a dependency enables); rustls refuses
/// to choose between them on its own and a client build would panic.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
