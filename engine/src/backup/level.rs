//! Choosing each source's level and parent: a pure function of the requested levels and the
//! catalog. Levels are per source: a run can hold one source at full and another at
//! incremental (the Auto schedule does exactly that), and a source's diff or incr is based
//! on that source's own history only.

use crate::catalog::SourceEntry;
use crate::format::run::Level;

/// The level one source will have in the run and the runs it builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLevelPlan {
    pub source: String,
    pub requested: Level,
    pub level: Level,
    /// Run whose listing of this source is compared to skip unchanged files.
    pub parent: Option<String>,
    /// The run holding the full this entry depends on for retention; `None` for a full.
    pub base_full: Option<String>,
    /// A differential or incremental was asked for but the source has no full to base it
    /// on: promoted to full.
    pub promoted: bool,
}

/// The levels of a whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelPlan {
    /// The label's level: the most incremental level of any source, so a `full-` label
    /// means every source in the run is a full.
    pub level: Level,
    pub sources: Vec<SourceLevelPlan>,
}

impl LevelPlan {
    pub(crate) fn source(&self, name: &str) -> Option<&SourceLevelPlan> {
        self.sources.iter().find(|s| s.source == name)
    }

    /// Whether any source was promoted to full.
    pub(crate) fn promoted(&self) -> bool {
        self.sources.iter().any(|s| s.promoted)
    }

    /// The parent every source shares, if they share one (the run-level field).
    pub(crate) fn common_parent(&self) -> Option<String> {
        common(self.sources.iter().map(|s| &s.parent))
    }

    /// The base full every source shares, if they share one (the run-level field).
    pub(crate) fn common_base_full(&self) -> Option<String> {
        common(self.sources.iter().map(|s| &s.base_full))
    }
}

fn common<'a>(mut values: impl Iterator<Item = &'a Option<String>>) -> Option<String> {
    let first = values.next()?.clone()?;
    values
        .all(|v| v.as_deref() == Some(first.as_str()))
        .then_some(first)
}

/// Plan one source. `entries` is the catalog per source, oldest first.
///
/// Full: no parent. Differential: the source's newest full is both parent and base.
/// Incremental: the source's newest entry in that full's cycle is the parent. A source with
/// no full (new, or whose fulls all expired) is promoted to full.
pub(crate) fn plan_source(
    source: &str,
    requested: Level,
    entries: &[SourceEntry],
) -> SourceLevelPlan {
    let full = SourceLevelPlan {
        source: source.to_owned(),
        requested,
        level: Level::Full,
        parent: None,
        base_full: None,
        promoted: requested != Level::Full,
    };
    // Newest first.
    let mine = || {
        entries
            .iter()
            .rev()
            .filter(move |e| e.source == source && e.is_restorable())
    };
    let Some(last_full) = mine().find(|e| e.level == Level::Full) else {
        return full;
    };
    match requested {
        Level::Full => SourceLevelPlan {
            promoted: false,
            ..full
        },
        Level::Diff => SourceLevelPlan {
            level: Level::Diff,
            parent: Some(last_full.run.clone()),
            base_full: Some(last_full.run.clone()),
            promoted: false,
            ..full
        },
        Level::Incr => {
            let parent = mine()
                .find(|e| {
                    e.run == last_full.run || e.base_full.as_deref() == Some(last_full.run.as_str())
                })
                .unwrap_or(last_full);
            SourceLevelPlan {
                level: Level::Incr,
                parent: Some(parent.run.clone()),
                base_full: Some(last_full.run.clone()),
                promoted: false,
                ..full
            }
        }
    }
}

/// Plan a run: each `(source, requested level)` against the catalog.
pub(crate) fn plan_levels(requests: &[(&str, Level)], entries: &[SourceEntry]) -> LevelPlan {
    let sources: Vec<SourceLevelPlan> = requests
        .iter()
        .map(|(name, level)| plan_source(name, *level, entries))
        .collect();
    LevelPlan {
        level: sources.iter().map(|s| s.level).max().unwrap_or(Level::Full),
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::run::{SourceStatus, parse_label};

    /// A catalog from "label:source:base[:parent]" tokens; base and parent may be "-".
    fn entries(spec: &[&str]) -> Vec<SourceEntry> {
        spec.iter()
            .map(|tok| {
                let parts: Vec<&str> = tok.split(':').collect();
                let (level, t) = parse_label(parts[0]).unwrap();
                let opt = |i: usize| parts.get(i).filter(|p| **p != "-").map(|p| (*p).to_owned());
                SourceEntry {
                    run: parts[0].into(),
                    started: t,
                    source: parts[1].into(),
                    level,
                    status: SourceStatus::Complete,
                    base_full: opt(2),
                    parent: opt(3).or_else(|| opt(2)),
                }
            })
            .collect()
    }

    const F1: &str = "full-20261101.010000";
    const F2: &str = "full-20261102.010000";
    const I3: &str = "incr-20261103.010000";

    #[test]
    fn incremental_without_full_is_promoted_to_full() {
        let p = plan_source("a", Level::Incr, &[]);
        assert_eq!(
            (p.level, p.parent, p.base_full, p.promoted),
            (Level::Full, None, None, true)
        );
        assert!(plan_source("a", Level::Diff, &[]).promoted);
        assert!(!plan_source("a", Level::Full, &[]).promoted);
    }

    #[test]
    fn differential_is_based_on_the_sources_last_full() {
        let e = entries(&[
            "full-20261101.010000:a:-",
            "incr-20261102.010000:a:full-20261101.010000",
            "diff-20261103.010000:a:full-20261101.010000",
        ]);
        let p = plan_source("a", Level::Diff, &e);
        assert_eq!(p.parent.as_deref(), Some(F1));
        assert_eq!(p.base_full.as_deref(), Some(F1));
    }

    #[test]
    fn incremental_is_based_on_the_sources_previous_entry() {
        let e = entries(&[
            "full-20261101.010000:a:-",
            "incr-20261102.010000:a:full-20261101.010000",
            "full-20261103.010000:b:-",
        ]);
        let p = plan_source("a", Level::Incr, &e);
        assert_eq!(p.level, Level::Incr);
        assert_eq!(p.parent.as_deref(), Some("incr-20261102.010000"));
        assert_eq!(p.base_full.as_deref(), Some(F1));
    }

    #[test]
    fn incremental_after_a_new_full_starts_from_that_full() {
        let e = entries(&[
            "full-20261101.010000:a:-",
            "incr-20261102.010000:a:full-20261101.010000",
            "full-20261103.010000:a:-",
        ]);
        let p = plan_source("a", Level::Incr, &e);
        assert_eq!(p.parent.as_deref(), Some("full-20261103.010000"));
    }

    #[test]
    fn a_new_source_is_promoted_even_when_other_sources_have_fulls() {
        // The reproduction from the per-source data-loss report.
        let e = entries(&[
            "full-20261101.010000:uploads:-",
            "full-20261102.010000:db:-",
            "incr-20261103.010000:db:full-20261102.010000",
        ]);
        let p = plan_levels(&[("newsrc", Level::Incr)], &e);
        assert_eq!(p.level, Level::Full);
        assert!(p.sources[0].promoted);
        assert_eq!(p.sources[0].parent, None);
        let _ = (F2, I3);
    }

    #[test]
    fn a_run_mixing_levels_is_labelled_by_its_most_incremental_source() {
        let e = entries(&["full-20261101.010000:a:-", "full-20261101.010000:b:-"]);
        let p = plan_levels(
            &[("a", Level::Incr), ("b", Level::Full), ("c", Level::Incr)],
            &e,
        );
        assert_eq!(p.level, Level::Incr);
        assert_eq!(
            p.sources.iter().map(|s| s.level).collect::<Vec<_>>(),
            [Level::Incr, Level::Full, Level::Full]
        );
        assert!(p.promoted(), "c had no full");
        assert_eq!(p.common_parent(), None);
        let all_full = plan_levels(&[("a", Level::Full), ("b", Level::Full)], &e);
        assert_eq!(all_full.level, Level::Full);
    }

    #[test]
    fn failed_entries_are_no_base() {
        let mut e = entries(&["full-20261101.010000:a:-"]);
        e[0].status = SourceStatus::Failed;
        assert!(plan_source("a", Level::Incr, &e).promoted);
    }

    #[test]
    fn sources_sharing_a_parent_report_it_for_the_run() {
        let e = entries(&["full-20261101.010000:a:-", "full-20261101.010000:b:-"]);
        let p = plan_levels(&[("a", Level::Incr), ("b", Level::Incr)], &e);
        assert_eq!(p.common_parent().as_deref(), Some(F1));
        assert_eq!(p.common_base_full().as_deref(), Some(F1));
    }
}
