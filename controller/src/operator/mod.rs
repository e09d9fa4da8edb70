//! `holdfast controller`: the Kubernetes operator.

pub mod job;
pub mod names;
pub mod plan;
pub mod storage;
