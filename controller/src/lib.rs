//! Holdfast: the Kubernetes API types and the `holdfast` command line.

pub mod api;
pub mod cli;
pub mod human;
pub mod job;
pub mod logging;
pub mod operation;
pub mod operator;
pub mod text;
