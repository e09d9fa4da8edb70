//! `holdfast controller`: the Kubernetes operator.

pub mod backup_set;
pub mod conditions;
pub mod context;
pub mod error;
pub mod job;
pub mod jobs;
pub mod metrics;
pub mod names;
pub mod plan;
pub mod results;
pub mod storage;
