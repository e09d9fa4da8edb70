//! Stopping long operations on SIGTERM (a Kubernetes pod being deleted, a job aborted) or
//! SIGINT: the first signal asks the operation to stop cleanly (a backup records what it
//! stored as an Aborted run and releases its lock); a second one exits at once, which the
//! repository's crash safety makes harmless.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Exit status after a second signal: killed by SIGTERM, as a shell reports it.
const SECOND_SIGNAL_EXIT: i32 = 143;

/// A flag the first SIGTERM or SIGINT sets. If the handlers cannot be installed, the
/// signals keep their default action (ending the process), which is still safe.
pub fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Registered first so that it sees the flag as it was before this signal.
        let _ = signal_hook::flag::register_conditional_shutdown(
            sig,
            SECOND_SIGNAL_EXIT,
            Arc::clone(&flag),
        );
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}
