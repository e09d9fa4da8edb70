//! Garbage-collection planning: pure functions of volume statistics and marks.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::id::Id;
use crate::repo::MarkRecord;

/// What the index says about one volume, and how much of it retained runs need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeStats {
    pub id: Id,
    pub size: u64,
    pub blobs: usize,
    pub live_blobs: usize,
    /// Bytes of live blob entries (header and sealed payload).
    pub live_bytes: u64,
}

/// Phase one of garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcPlan {
    /// Volumes with no live blob: mark for deletion.
    pub dead: Vec<Id>,
    /// Volumes mostly dead: copy their live blobs elsewhere, then mark.
    pub repack: Vec<Id>,
    pub dead_bytes: u64,
    /// Bytes of live blobs the repack copies.
    pub repack_live_bytes: u64,
    /// Total size of the volumes to repack.
    pub repack_bytes: u64,
}

/// Plan which volumes to mark and which to repack. A volume whose live share is below
/// `repack_below` (0.0–1.0) is repacked; volumes already marked are left alone.
pub(crate) fn plan_gc(
    stats: &[VolumeStats],
    already_marked: &HashSet<Id>,
    repack_below: f64,
) -> GcPlan {
    let mut plan = GcPlan::default();
    for v in stats.iter().filter(|v| !already_marked.contains(&v.id)) {
        if v.live_blobs == 0 {
            plan.dead.push(v.id);
            plan.dead_bytes += v.size;
        } else if v.size > 0 && (v.live_bytes as f64) < repack_below * v.size as f64 {
            plan.repack.push(v.id);
            plan.repack_bytes += v.size;
            plan.repack_live_bytes += v.live_bytes;
        }
    }
    plan
}

/// Marks whose grace period is over (due for deletion now), and the volumes they name.
pub(crate) fn due_marks(
    marks: &[(String, MarkRecord)],
    now: DateTime<Utc>,
    grace: Duration,
) -> (Vec<String>, HashSet<Id>) {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut keys = Vec::new();
    let mut volumes = HashSet::new();
    for (key, rec) in marks {
        if rec
            .marked_at
            .checked_add_signed(grace)
            .is_some_and(|t| t <= now)
        {
            keys.push(key.clone());
            volumes.extend(rec.volumes.iter().copied());
        }
    }
    (keys, volumes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn v(n: u8, size: u64, blobs: usize, live_blobs: usize, live_bytes: u64) -> VolumeStats {
        VolumeStats {
            id: Id([n; 32]),
            size,
            blobs,
            live_blobs,
            live_bytes,
        }
    }

    #[test]
    fn gc_plan_table() {
        let stats = [
            v(1, 1000, 10, 0, 0),    // dead
            v(2, 1000, 10, 10, 990), // fully live
            v(3, 1000, 10, 2, 200),  // 20% live: repack
            v(4, 1000, 10, 6, 600),  // 60% live: keep at 0.5
            v(5, 1000, 10, 0, 0),    // dead but already marked
            v(6, 1000, 10, 5, 499),  // just under half
        ];
        let marked = HashSet::from([Id([5; 32])]);
        let plan = plan_gc(&stats, &marked, 0.5);
        assert_eq!(plan.dead, vec![Id([1; 32])]);
        assert_eq!(plan.repack, vec![Id([3; 32]), Id([6; 32])]);
        assert_eq!(plan.dead_bytes, 1000);
        assert_eq!(plan.repack_live_bytes, 699);
        // A threshold of 0 never repacks; dead volumes are still marked.
        let none = plan_gc(&stats, &marked, 0.0);
        assert!(none.repack.is_empty());
        assert_eq!(none.dead.len(), 1);
    }

    #[test]
    fn marks_become_due_after_the_grace_period() {
        let t = |h| Utc.with_ymd_and_hms(2026, 11, 1, h, 0, 0).unwrap();
        let marks = vec![
            (
                "marks/a".to_string(),
                MarkRecord {
                    marked_at: t(1),
                    volumes: vec![Id([1; 32])],
                },
            ),
            (
                "marks/b".to_string(),
                MarkRecord {
                    marked_at: t(5),
                    volumes: vec![Id([2; 32])],
                },
            ),
        ];
        let (keys, vols) = due_marks(&marks, t(6), Duration::from_secs(3 * 3600));
        assert_eq!(keys, vec!["marks/a".to_string()]);
        assert_eq!(vols, HashSet::from([Id([1; 32])]));
        let (keys, _) = due_marks(&marks, t(6), Duration::ZERO);
        assert_eq!(keys.len(), 2);
        let (keys, _) = due_marks(&marks, t(6), Duration::from_secs(u64::MAX));
        assert!(
            keys.is_empty(),
            "an enormous grace never overflows into 'due'"
        );
    }
}
