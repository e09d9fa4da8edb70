//! Log output. The CLI shows warnings (a storage request being retried, a storage quirk
//! worked around) on stderr beside its own messages; `HOLDFAST_LOG` (or `RUST_LOG`) takes an
//! env-filter directive such as `debug` or `holdfast_engine=debug` to see more.

use tracing_subscriber::EnvFilter;

/// The filter from `HOLDFAST_LOG`, else `RUST_LOG`, else `default`.
pub fn filter(default: &str) -> EnvFilter {
    let directive = std::env::var("HOLDFAST_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        eprintln!("holdfast: warning: ignoring the log filter {directive:?}: {e}");
        EnvFilter::new(default)
    })
}

/// Logging for CLI commands: plain lines on stderr, Holdfast's warnings and every crate's
/// errors by default (the AWS SDK warns about optional lookups, such as an instance
/// metadata region, that are noise to a CLI user).
pub fn init_cli() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("error,holdfast=warn,holdfast_engine=warn"))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// Logging for the operator: info by default, one line per event, as JSON (`json`) for log
/// collectors or as text; every reconcile runs in a span naming its object.
pub fn init_controller(format: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter("info,kube=warn,hyper=warn,tower=warn"))
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
