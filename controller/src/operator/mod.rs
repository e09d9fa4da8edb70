//! `holdfast controller`: the Kubernetes operator.

pub mod plan;
