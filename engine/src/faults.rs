//! Crash points for crash-safety tests.
//!
//! When `HOLDFAST_CRASH_POINT` names a point, the process kills itself with SIGKILL there,
//! exactly as `kill -9` would, so tests can stop a real process between two steps that are
//! otherwise microseconds apart. Only builds with the `crash-points` feature (test builds)
//! have them; in every other build a crash point is nothing at all.

/// Die by SIGKILL if `HOLDFAST_CRASH_POINT` equals `name`.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(name: &str) {
    if std::env::var_os("HOLDFAST_CRASH_POINT").is_some_and(|v| v == name) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; should delivery be delayed, never run past the point.
        std::process::abort();
    }
}

/// Without the `crash-points` feature a crash point compiles to nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}
