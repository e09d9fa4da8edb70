//! Choosing a run's level and parent: a pure function of the requested level and the catalog.

use crate::format::run::{Level, RunManifest};

/// The level a run will have and the runs it builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelPlan {
    pub level: Level,
    /// Run whose listing is compared to skip unchanged files.
    pub parent: Option<String>,
    /// The full run this run depends on for retention; `None` for a full.
    pub base_full: Option<String>,
    /// A differential or incremental was asked for but there is no full: promoted to full.
    pub promoted: bool,
}

/// Plan a run. `runs` is the catalog oldest first.
///
/// Full: no parent. Differential: the newest full is both parent and base. Incremental: the
/// newest run of any level is the parent, and its full is the base. With no full to base
/// on, a differential or incremental is promoted to full.
pub fn plan_level(requested: Level, runs: &[RunManifest]) -> LevelPlan {
    let full = LevelPlan {
        level: Level::Full,
        parent: None,
        base_full: None,
        promoted: requested != Level::Full,
    };
    let Some(last_full) = runs.iter().rev().find(|r| r.level == Level::Full) else {
        return full;
    };
    match requested {
        Level::Full => LevelPlan {
            promoted: false,
            ..full
        },
        Level::Diff => LevelPlan {
            level: Level::Diff,
            parent: Some(last_full.label.clone()),
            base_full: Some(last_full.label.clone()),
            promoted: false,
        },
        Level::Incr => {
            // The newest run that belongs to the newest full's cycle (or the full itself).
            let parent = runs
                .iter()
                .rev()
                .find(|r| {
                    r.label == last_full.label
                        || r.base_full.as_deref() == Some(last_full.label.as_str())
                })
                .unwrap_or(last_full);
            LevelPlan {
                level: Level::Incr,
                parent: Some(parent.label.clone()),
                base_full: Some(last_full.label.clone()),
                promoted: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::run::{MANIFEST_VERSION, RunStats, RunStatus, parse_label};

    fn run(label: &str, base: Option<&str>) -> RunManifest {
        let (level, t) = parse_label(label).unwrap();
        RunManifest {
            version: MANIFEST_VERSION,
            label: label.into(),
            level,
            status: RunStatus::Complete,
            started: t,
            finished: t,
            host: "h".into(),
            owner: None,
            parent: None,
            base_full: base.map(Into::into),
            sources: vec![],
            stats: RunStats::default(),
            tags: vec![],
        }
    }

    #[test]
    fn incremental_without_full_is_promoted_to_full() {
        let p = plan_level(Level::Incr, &[]);
        assert_eq!(
            p,
            LevelPlan {
                level: Level::Full,
                parent: None,
                base_full: None,
                promoted: true
            }
        );
        assert!(plan_level(Level::Diff, &[]).promoted);
        assert!(!plan_level(Level::Full, &[]).promoted);
    }

    #[test]
    fn differential_is_based_on_the_last_full() {
        let runs = [
            run("full-20261101.010000", None),
            run("incr-20261102.010000", Some("full-20261101.010000")),
            run("diff-20261103.010000", Some("full-20261101.010000")),
        ];
        let p = plan_level(Level::Diff, &runs);
        assert_eq!(p.parent.as_deref(), Some("full-20261101.010000"));
        assert_eq!(p.base_full.as_deref(), Some("full-20261101.010000"));
    }

    #[test]
    fn incremental_is_based_on_the_previous_run() {
        let runs = [
            run("full-20261101.010000", None),
            run("incr-20261102.010000", Some("full-20261101.010000")),
        ];
        let p = plan_level(Level::Incr, &runs);
        assert_eq!(p.level, Level::Incr);
        assert_eq!(p.parent.as_deref(), Some("incr-20261102.010000"));
        assert_eq!(p.base_full.as_deref(), Some("full-20261101.010000"));
    }

    #[test]
    fn incremental_after_a_new_full_starts_from_that_full() {
        let runs = [
            run("full-20261101.010000", None),
            run("incr-20261102.010000", Some("full-20261101.010000")),
            run("full-20261103.010000", None),
        ];
        let p = plan_level(Level::Incr, &runs);
        assert_eq!(p.parent.as_deref(), Some("full-20261103.010000"));
    }

    #[test]
    fn full_has_no_parent() {
        let runs = [run("full-20261101.010000", None)];
        assert_eq!(
            plan_level(Level::Full, &runs),
            LevelPlan {
                level: Level::Full,
                parent: None,
                base_full: None,
                promoted: false
            }
        );
    }
}
