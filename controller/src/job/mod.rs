//! The job protocol: what the controller and its job pods agree on, in one room. The
//! controller renders a [`plan::JobPlan`] into the pod; `holdfast job run` executes it
//! ([`execute`]) and leaves a [`summary::JobSummary`] as the container's termination
//! message, which the controller reads back. Command sources add the helper that runs a
//! dump beside the engine ([`pipe`], set up by [`tools`]). A new kind of job is one
//! operation in the plan, one arm of `execute` and one summary.

pub mod error;
pub mod execute;
pub mod pipe;
pub mod plan;
pub mod summary;
pub mod tools;
