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
            // Hidden until there is something to show: no "0 B/0 B" flash before the work
            // starts, and no bar at all for work that ends at once.
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            let style = |template: &str| {
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ")
            };
            let by_bytes = style(
                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
            );
            let by_items = style("{prefix:>9} [{bar:30}] {msg}");
            bar.set_prefix(verb);
            let mut shown = false;
            let mut counting_bytes = None;
            while !s.load(Ordering::Relaxed) {
                let snap = progress.snapshot();
                if !shown && (snap.bytes_total > 0 || snap.items_done > 0 || snap.bytes_done > 0) {
                    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
                    shown = true;
                }
                // Bytes when the work has a byte total, else items (e.g. a quick verify).
                let bytes = snap.bytes_total > 0 || snap.bytes_done > 0;
                if counting_bytes != Some(bytes) {
                    bar.set_style(if bytes {
                        by_bytes.clone()
                    } else {
                        by_items.clone()
                    });
                    counting_bytes = Some(bytes);
                }
                if bytes {
                    bar.set_length(snap.bytes_total.max(snap.bytes_done));
                    bar.set_position(snap.bytes_done);
                } else {
                    bar.set_length(snap.items_total.max(snap.items_done));
                    bar.set_position(snap.items_done);
                }
                // Done never shows above the total, even while a total is still growing.
                let items = if snap.items_total > 0 {
                    format!(
                        "{}/{} items",
                        snap.items_done.min(snap.items_total),
                        snap.items_total
                    )
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
