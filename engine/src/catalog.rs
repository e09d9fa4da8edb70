//! The run catalog seen per source. A repository holds many sources and a run may hold them
//! at different levels, so levels, cycles, retention and "newest restore point" are all
//! questions about one source's entries, never about whole runs.
//!
//! Manifest version 2 records each source's level, parent and base full. Version 1 recorded
//! one level, parent and base full for the whole run, even when the base run did not hold
//! the source (a source added by an incremental was based on another source's full). Read
//! per source, a version 1 entry keeps the run's level, and keeps its base full and parent
//! only when that run still exists and holds the same source; otherwise it stands alone
//! (an orphan in retention terms), which is the safe reading: it can only keep more.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::format::run::{Level, RunManifest, SourceManifest, SourceStatus};

/// One source's entry in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Label of the run holding the entry.
    pub run: String,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// The source's name.
    pub source: String,
    /// The source's level in the run.
    pub level: Level,
    /// The source's status in the run.
    pub status: SourceStatus,
    /// The run whose listing of this source was the base for change detection.
    pub parent: Option<String>,
    /// The run holding the full this entry depends on; `None` for a full or an orphan.
    pub base_full: Option<String>,
}

impl SourceEntry {
    /// Whether the entry has a tree to restore (a Failed source stored nothing).
    pub(crate) fn is_restorable(&self) -> bool {
        self.status != SourceStatus::Failed
    }
}

/// A source's level in a run (version 1 manifests: the run's level).
pub(crate) fn source_level(run: &RunManifest, source: &SourceManifest) -> Level {
    source.level.unwrap_or(run.level)
}

/// Whether a source manifest has something to restore.
pub(crate) fn source_restorable(s: &SourceManifest) -> bool {
    s.status != SourceStatus::Failed && s.tree.is_some()
}

/// Every source entry of the catalog (oldest run first, sources in run order).
pub fn source_entries(runs: &[RunManifest]) -> Vec<SourceEntry> {
    let by_label: HashMap<&str, &RunManifest> =
        runs.iter().map(|r| (r.label.as_str(), r)).collect();
    // A version 1 reference to another run counts for a source only if that run holds it;
    // a run that no longer exists is taken at its word (its cycle is an orphan anyway).
    let holds = |label: &str, source: &str| match by_label.get(label) {
        Some(r) => r
            .sources
            .iter()
            .any(|s| s.name == source && source_restorable(s)),
        None => true,
    };
    let mut out = Vec::new();
    for run in runs {
        for s in &run.sources {
            let (level, parent, base_full) = match s.level {
                Some(level) => (level, s.parent.clone(), s.base_full.clone()),
                None => {
                    let base = run
                        .base_full
                        .clone()
                        .filter(|b| run.level != Level::Full && holds(b, &s.name));
                    let parent = run.parent.clone().filter(|p| holds(p, &s.name));
                    (run.level, parent, base)
                }
            };
            out.push(SourceEntry {
                run: run.label.clone(),
                started: run.started,
                source: s.name.clone(),
                level,
                status: if source_restorable(s) {
                    s.status
                } else {
                    SourceStatus::Failed
                },
                parent,
                base_full,
            });
        }
    }
    out
}

// Only the unit tests below use it: the engine itself never needs it.
#[cfg(test)]
/// Source names in order of first appearance.
pub(crate) fn source_names(entries: &[SourceEntry]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .filter(|e| seen.insert(e.source.as_str()))
        .map(|e| e.source.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::run::{
        MANIFEST_VERSION, PathText, RunStats, RunStatus, SourceKind, parse_label,
    };
    use crate::id::Id;

    fn src(name: &str) -> SourceManifest {
        SourceManifest {
            name: name.into(),
            kind: SourceKind::Directory,
            origin: PathText::Utf8(format!("/{name}")),
            tree: Some(Id([1; 32])),
            status: SourceStatus::Complete,
            stats: RunStats::default(),
            errors: vec![],
            warnings: vec![],
            level: None,
            parent: None,
            base_full: None,
            captured: None,
        }
    }

    fn v1_run(
        label: &str,
        parent: Option<&str>,
        base: Option<&str>,
        sources: &[&str],
    ) -> RunManifest {
        let (level, t) = parse_label(label).unwrap();
        RunManifest {
            version: 1,
            label: label.into(),
            level,
            status: RunStatus::Complete,
            started: t,
            finished: t,
            host: "h".into(),
            owner: None,
            parent: parent.map(Into::into),
            base_full: base.map(Into::into),
            sources: sources.iter().map(|s| src(s)).collect(),
            stats: RunStats::default(),
            tags: vec![],
            aborted: false,
        }
    }

    #[test]
    fn version_1_reference_to_a_run_without_the_source_is_dropped() {
        // The reproduction of the per-source data-loss bug, as version 1 wrote it.
        let runs = vec![
            v1_run("full-20261101.010000", None, None, &["uploads"]),
            v1_run("full-20261102.010000", None, None, &["db"]),
            v1_run(
                "incr-20261103.010000",
                Some("full-20261102.010000"),
                Some("full-20261102.010000"),
                &["db"],
            ),
            v1_run(
                "incr-20261104.010000",
                Some("incr-20261103.010000"),
                Some("full-20261102.010000"),
                &["newsrc"],
            ),
        ];
        let e = source_entries(&runs);
        let newsrc = e.iter().find(|e| e.source == "newsrc").unwrap();
        assert_eq!(newsrc.base_full, None, "db's full is not newsrc's full");
        assert_eq!(newsrc.parent, None);
        let db_incr = e.iter().find(|e| e.run == "incr-20261103.010000").unwrap();
        assert_eq!(db_incr.base_full.as_deref(), Some("full-20261102.010000"));
        assert_eq!(db_incr.parent.as_deref(), Some("full-20261102.010000"));
        assert_eq!(source_names(&e), ["uploads", "db", "newsrc"]);
    }

    #[test]
    fn version_1_reference_to_an_expired_run_is_kept() {
        let runs = vec![v1_run(
            "incr-20261103.010000",
            Some("full-20261102.010000"),
            Some("full-20261102.010000"),
            &["db"],
        )];
        let e = source_entries(&runs);
        assert_eq!(e[0].base_full.as_deref(), Some("full-20261102.010000"));
    }

    #[test]
    fn version_2_entries_carry_their_own_levels() {
        let mut run = v1_run("incr-20261103.010000", None, None, &["a", "b"]);
        run.version = MANIFEST_VERSION;
        run.sources[0].level = Some(Level::Full);
        run.sources[1].level = Some(Level::Incr);
        run.sources[1].parent = Some("full-20261102.010000".into());
        run.sources[1].base_full = Some("full-20261102.010000".into());
        run.sources[1].status = SourceStatus::Failed;
        run.sources[1].tree = None;
        let e = source_entries(&[run]);
        assert_eq!(e[0].level, Level::Full);
        assert_eq!(e[0].base_full, None);
        assert_eq!(e[1].level, Level::Incr);
        assert!(!e[1].is_restorable());
    }
}
