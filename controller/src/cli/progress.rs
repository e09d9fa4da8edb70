//! A progress bar drawn from the engine's counters on a separate thread.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use holdfast_engine::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws while alive; the bar disappears when dropped.
pub struct Bar {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    /// Start drawing `progress` on stderr, unless stderr is not a terminal or `enabled` is
    /// false (quiet or JSON output).
    pub fn start(progress: Arc<Progress>, verb: &'static str, enabled: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar { stop, handle: None };
        }
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(8));
            let style = ProgressStyle::with_template(
                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(verb);
            while !s.load(Ordering::Relaxed) {
                let snap = progress.snapshot();
                bar.set_length(snap.bytes_total.max(snap.bytes_done));
                bar.set_position(snap.bytes_done);
                let items = if snap.items_total > 0 {
                    format!("{}/{} items", snap.items_done, snap.items_total)
                } else {
                    format!("{} items", snap.items_done)
                };
                let errors = if snap.errors > 0 {
                    format!(", {} errors", snap.errors)
                } else {
                    String::new()
                };
                bar.set_message(format!("{items}{errors}"));
                std::thread::sleep(Duration::from_millis(125));
            }
            bar.finish_and_clear();
        });
        Bar {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
