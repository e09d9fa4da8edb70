//! A quick metadata-only walk that fills in progress totals while the backup runs.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::fsmeta::path_bytes;
use crate::pattern::PathFilter;
use crate::progress::Progress;

use super::{SourceInput, SourceSpec};

/// Count files and bytes of `sources` into the progress totals. The counts are estimates:
/// the tree may change, and errors are skipped here (the backup itself reports them).
/// Stops early when `stop` is set.
pub(crate) fn count(
    sources: &[SourceSpec],
    filter: &PathFilter,
    progress: &Progress,
    stop: &AtomicBool,
) {
    for source in sources {
        let SourceInput::Path(root) = &source.input else {
            continue;
        };
        let mut stack = vec![(root.clone(), Vec::new())];
        match std::fs::metadata(root) {
            Ok(m) if m.is_file() => {
                progress.add_total(1, m.len());
                continue;
            }
            Ok(_) => {}
            Err(_) => continue,
        }
        while let Some((dir, rel)) = stack.pop() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let mut child_rel: Vec<u8> = rel.clone();
                child_rel.push(b'/');
                child_rel.extend_from_slice(path_bytes(std::path::Path::new(&entry.file_name())));
                if filter.is_excluded(&child_rel) {
                    continue;
                }
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    stack.push((entry.path(), child_rel));
                } else if ft.is_file() {
                    let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    progress.add_total(1, len);
                }
            }
        }
    }
    progress.totals_final.store(true, Ordering::Relaxed);
}
