//! `holdfast controller`: the Kubernetes operator.

pub mod backup_set;
pub mod claim_users;
pub mod conditions;
pub mod context;
pub mod error;
pub mod event_reason;
pub mod finalizer;
pub mod hooks;
pub mod http;
pub mod job;
pub mod job_control;
pub mod job_template;
pub mod job_view;
pub mod latest;
pub mod leader;
pub mod metrics;
pub mod mover;
pub mod names;
pub mod namespace;
pub mod plan;
pub mod pod_results;
pub mod restore;
pub mod results;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod settings;
pub mod snapshots;
pub mod storage;
pub mod storage_set;
#[cfg(test)]
pub mod test_support;
pub mod write;
