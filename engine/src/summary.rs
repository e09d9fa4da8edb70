//! Compact summaries of results, small enough for a Kubernetes container termination
//! message (4 KiB), which is how job pods hand results to the controller.

use serde_json::{Value, json};

use crate::backup::BackupReport;
use crate::purge::PurgeReport;
use crate::restore::RestoreReport;
use crate::verify::VerifyReport;

/// Kubernetes truncates termination messages beyond 4096 bytes.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

const TEXT_LIMIT: usize = 240;

fn clip(s: &str) -> String {
    if s.len() <= TEXT_LIMIT {
        return s.to_owned();
    }
    let mut end = TEXT_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Serialize `value` within `limit` bytes: the arrays named in `shrinkable` lose elements
/// from the end (the count fields stay exact) until it fits; as a last resort only the
/// scalar fields are kept.
pub fn fit(mut value: Value, shrinkable: &[&str], limit: usize) -> String {
    loop {
        let text = value.to_string();
        if text.len() <= limit {
            return text;
        }
        let mut shrunk = false;
        for key in shrinkable {
            if let Some(Value::Array(a)) = value.get_mut(*key)
                && !a.is_empty()
            {
                a.pop();
                shrunk = true;
                break;
            }
        }
        if !shrunk {
            if let Value::Object(map) = &mut value {
                map.retain(|_, v| !v.is_array() && !v.is_object());
                map.insert("truncated".into(), Value::Bool(true));
            }
            let text = value.to_string();
            return if text.len() <= limit {
                text
            } else {
                json!({"truncated": true}).to_string()
            };
        }
    }
}

impl BackupReport {
    /// The compact form of this report.
    pub fn summary(&self) -> String {
        let r = &self.run;
        let errors: Vec<String> = r
            .sources
            .iter()
            .flat_map(|s| {
                s.errors
                    .iter()
                    .map(move |e| clip(&format!("{}:{}: {}", s.name, e.path, e.error)))
            })
            .take(20)
            .collect();
        let sources: Vec<Value> = r
            .sources
            .iter()
            .map(|s| json!({"name": s.name, "status": s.status, "files": s.stats.files, "bytes": s.stats.bytes_total, "errors": s.stats.errors}))
            .collect();
        let v = json!({
            "op": "backup", "label": r.label, "level": r.level, "status": r.status,
            "promoted": self.promoted, "started": r.started, "finished": r.finished,
            "durationMs": self.duration_ms, "files": r.stats.files, "dirs": r.stats.dirs,
            "bytesTotal": r.stats.bytes_total, "bytesRead": r.stats.bytes_read,
            "bytesNew": r.stats.bytes_new, "bytesStored": r.stats.bytes_stored,
            "volumes": self.volumes_written, "errorCount": r.stats.errors, "warningCount": r.stats.warnings,
            "sources": sources, "errors": errors,
        });
        fit(v, &["errors", "sources"], TERMINATION_MESSAGE_LIMIT)
    }
}

impl RestoreReport {
    /// The compact form of this report.
    pub fn summary(&self) -> String {
        let items: Vec<String> = self
            .unrestored_items
            .iter()
            .take(20)
            .map(|i| clip(&format!("{}: {}", i.path, i.reason)))
            .collect();
        let v = json!({
            "op": "restore", "run": self.run, "status": self.status, "restored": self.restored,
            "skipped": self.skipped, "unrestored": self.unrestored, "bytesRestored": self.bytes_restored,
            "durationMs": self.duration_ms, "targets": self.targets, "unrestoredItems": items,
        });
        fit(
            v,
            &["unrestoredItems", "targets"],
            TERMINATION_MESSAGE_LIMIT,
        )
    }
}

impl VerifyReport {
    /// The compact form of this report.
    pub fn summary(&self) -> String {
        let damaged: Vec<Value> = self
            .damaged_volumes
            .iter()
            .map(|d| json!({"volume": &d.volume[..8.min(d.volume.len())], "runs": d.runs, "files": d.files_total}))
            .collect();
        let problems: Vec<String> = self.problems.iter().take(10).map(|p| clip(p)).collect();
        let v = json!({
            "op": "verify", "depth": self.depth, "ok": self.ok, "dataVerified": self.data_verified,
            "runs": self.runs_checked, "volumes": self.volumes_indexed, "volumesRead": self.volumes_read,
            "bytesRead": self.bytes_read, "durationMs": self.duration_ms,
            "damagedVolumeCount": self.damaged_volumes.len(), "problemCount": self.problems.len(),
            "unreferencedVolumes": self.unreferenced_volumes.len(),
            "damagedVolumes": damaged, "problems": problems,
        });
        fit(
            v,
            &["problems", "damagedVolumes"],
            TERMINATION_MESSAGE_LIMIT,
        )
    }
}

impl PurgeReport {
    /// The compact form of this report.
    pub fn summary(&self) -> String {
        let expired: Vec<&str> = self.runs_expired.iter().map(|e| e.label.as_str()).collect();
        let v = json!({
            "op": "purge", "dryRun": self.dry_run, "runsExpiredCount": expired.len(), "runsKept": self.runs_kept,
            "volumesMarked": self.volumes_marked, "bytesMarked": self.bytes_marked,
            "volumesRepacked": self.volumes_repacked, "volumesDeleted": self.volumes_deleted,
            "bytesReclaimed": self.bytes_reclaimed, "volumesPending": self.volumes_pending,
            "pendingUntil": self.pending_until, "durationMs": self.duration_ms, "runsExpired": expired,
            "deleteDeferred": self.delete_deferred.as_deref().map(clip),
        });
        fit(v, &["runsExpired"], TERMINATION_MESSAGE_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_drops_list_items_then_everything_but_scalars() {
        let v = json!({"op": "x", "count": 500, "errors": (0..500).map(|i| format!("error number {i}")).collect::<Vec<_>>()});
        let text = fit(v, &["errors"], 4096);
        assert!(text.len() <= 4096);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["count"], 500, "counts stay exact");
        assert!(!back["errors"].as_array().unwrap().is_empty());

        let v = json!({"op": "x", "blob": "y".repeat(5000)});
        let text = fit(v, &[], 4096);
        assert!(text.len() <= 4096, "{}", text.len());
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "é".repeat(300);
        let c = clip(&s);
        assert!(c.len() <= TEXT_LIMIT + 3);
    }
}
