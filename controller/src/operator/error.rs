//! The controller's errors, and the one place that decides what each means: its category
//! (event reason, metric label) and when to try again. A problem with what the user wrote
//! (a missing reference, an invalid field) is not an error here: it becomes a Stalled
//! condition (see [`Problem`]) and waits for a change; errors are what went wrong talking
//! to the API server, and are retried with backoff.

use std::time::Duration;

use kube::runtime::controller::Action;

/// Something went wrong while reconciling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed ({what}): {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build {what}: {source}")]
    Build {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What kind of error: stable names for events and metrics.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The API server refused (RBAC): retried slowly, an operator must fix it.
    Forbidden,
    /// Someone else changed the object first: retried at once.
    Conflict,
    /// The server could not be reached or answered 5xx: retried with backoff.
    Unavailable,
    /// Any other API error.
    Api,
    /// A bug: an object could not be built.
    Internal,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Forbidden => "Forbidden",
            Category::Conflict => "Conflict",
            Category::Unavailable => "Unavailable",
            Category::Api => "ApiError",
            Category::Internal => "Internal",
        }
    }
}

impl Error {
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Api { what, source }
    }

    pub fn category(&self) -> Category {
        match self {
            Error::Api { source, .. } => match source {
                kube::Error::Api(s) if s.code == 403 => Category::Forbidden,
                kube::Error::Api(s) if s.code == 409 => Category::Conflict,
                kube::Error::Api(s) if s.code >= 500 || s.code == 429 => Category::Unavailable,
                kube::Error::Api(_) => Category::Api,
                _ => Category::Unavailable,
            },
            Error::Build { .. } => Category::Internal,
        }
    }

    /// When to try again.
    pub fn retry_after(&self) -> Duration {
        match self.category() {
            Category::Conflict => Duration::from_secs(1),
            Category::Forbidden => Duration::from_secs(300),
            Category::Internal => Duration::from_secs(600),
            Category::Unavailable | Category::Api => Duration::from_secs(15),
        }
    }
}

/// A problem with what the user wrote: a Stalled condition with this reason and message,
/// an Event, and no hot retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// PascalCase, e.g. `StorageSetNotFound`.
    pub reason: &'static str,
    pub message: String,
    /// What is wrong, without what to do about it, where the message adds advice (so a
    /// caller that knows better advice can give its own).
    pub fact: Option<String>,
    /// Something the controller does not watch may fix it (a Secret appearing): look again
    /// after this long. `None` waits for a change of a watched object.
    pub recheck: Option<Duration>,
    /// Nothing is wrong: what it waits for is on its way (a StorageSet's first check). The
    /// object reads as progressing, not stalled.
    pub waiting: bool,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
            fact: None,
            recheck: None,
            waiting: false,
        }
    }

    /// Waiting for something on its way, not a problem to fix.
    pub fn waiting(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            waiting: true,
            ..Problem::new(reason, message)
        }
    }

    /// Something the set refers to is missing: `what`, then what to do.
    pub fn missing(reason: &'static str, what: String, advice: &str) -> Self {
        Problem {
            message: format!("{what}: {advice}"),
            fact: Some(what),
            ..Problem::new(reason, "")
        }
    }

    /// What is wrong, without the advice.
    pub fn fact(&self) -> &str {
        self.fact.as_deref().unwrap_or(&self.message)
    }

    /// A problem that objects the controller does not watch (Secrets, claims) may resolve.
    pub fn recheck(mut self, after: Duration) -> Self {
        self.recheck = Some(after);
        self
    }

    /// How long to wait before reconciling again.
    pub fn action(&self) -> Action {
        // Watched objects trigger a reconcile on change; a slow timer also catches anything
        // missed, without a hot loop.
        Action::requeue(self.recheck.unwrap_or(Duration::from_secs(600)))
    }
}

/// The HTTP status of an API error, if the server answered.
pub fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The retry decision for an error (every reconciler uses this).
pub fn retry(err: &Error) -> Action {
    Action::requeue(err.retry_after())
}
