//! What can keep a job from producing a result.

use holdfast_engine::ErrorCategory;

/// A job failed before it had a result to report.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Engine(#[from] holdfast_engine::Error),
    /// The plan is missing, does not parse, or asks for something invalid.
    #[error("{0}")]
    Plan(String),
    /// A file of the pod (a FIFO, the tools volume) could not be used.
    #[error("{0}")]
    Io(String),
}

impl JobError {
    /// The category the summary, exit code and events report.
    pub fn category(&self) -> ErrorCategory {
        match self {
            JobError::Engine(e) => e.category(),
            JobError::Plan(_) => ErrorCategory::InvalidArgument,
            JobError::Io(_) => ErrorCategory::Io,
        }
    }
}
