//! The brake on mass deletion: a purge that would expire much more than usual stops before
//! it changes anything and waits for someone to approve exactly that purge (pure).
//!
//! A retention policy synced from git with a typo (`keepFulls: 1` for `11`), a clock gone
//! wrong, or someone holding the set's credentials can make one purge expire most of a
//! set's history; a purge under the brake expires at most `max_expire_percent` of the
//! restore points, and never every older full of a source at once, unless approved.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::format::run::Level;
use crate::retention::{RetentionPlan, RunFacts};

use super::ExpiredRun;

/// When a purge must wait for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brake {
    /// The most of the repository's restore points (a source's entry in a run) one purge may
    /// expire, in percent; 100 (or more) releases the brake altogether.
    pub max_expire_percent: u8,
    /// The plans someone approved (from earlier braked purges' reports).
    pub approved: Vec<String>,
}

/// A purge that stopped before changing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Braked {
    /// Why it waits.
    pub reason: String,
    /// Names exactly this expiry (the runs it would expire): approve it by passing this
    /// back, and that purge, no other, runs.
    pub plan: String,
    /// The runs it would expire.
    pub runs: Vec<ExpiredRun>,
}

/// The name of the expiry of `labels`: the same runs give the same name.
pub fn plan_id(labels: &[&str]) -> String {
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    let hash = blake3::hash(sorted.join("\n").as_bytes());
    hash.to_hex()[..16].to_owned()
}

/// Whether the purge planned as `plan` over `facts` must wait.
pub fn check(facts: &[RunFacts], plan: &RetentionPlan, brake: &Brake) -> Option<Braked> {
    let expired: Vec<(&str, &str)> = plan.expired().collect();
    if expired.is_empty() || brake.max_expire_percent >= 100 {
        return None;
    }
    let labels: Vec<&str> = expired.iter().map(|(l, _)| *l).collect();
    let id = plan_id(&labels);
    if brake.approved.contains(&id) {
        return None;
    }
    let gone: HashSet<&str> = labels.iter().copied().collect();
    let reason = too_many(facts, &gone, brake.max_expire_percent)
        .or_else(|| every_older_full(facts, &gone))?;
    Some(Braked {
        reason,
        plan: id,
        runs: expired
            .iter()
            .map(|(label, why)| ExpiredRun {
                label: (*label).to_owned(),
                reason: (*why).to_owned(),
            })
            .collect(),
    })
}

/// More than the limit's share of the restore points.
fn too_many(facts: &[RunFacts], gone: &HashSet<&str>, limit: u8) -> Option<String> {
    let total: usize = facts.iter().map(|r| r.sources.len()).sum();
    let expired: usize = facts
        .iter()
        .filter(|r| gone.contains(r.label.as_str()))
        .map(|r| r.sources.len())
        .sum();
    (total > 0 && expired * 100 > total * usize::from(limit)).then(|| {
        format!(
            "it would expire {expired} of {total} restore points ({}%), more than the {limit}% \
             one purge may expire",
            expired * 100 / total
        )
    })
}

/// Every full of a source but its newest, two or more of them: more than any steady policy
/// expires at once.
fn every_older_full(facts: &[RunFacts], gone: &HashSet<&str>) -> Option<String> {
    let mut fulls: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for run in facts {
        for s in run.sources.iter().filter(|s| s.level == Level::Full) {
            fulls.entry(&s.name).or_default().push(&run.label);
        }
    }
    fulls.into_iter().find_map(|(source, runs)| {
        let (_newest, older) = runs.split_last()?;
        (older.len() >= 2 && older.iter().all(|l| gone.contains(l))).then(|| {
            format!(
                "it would expire every full of source {source} but the newest ({} fulls)",
                older.len()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::run::SourceStatus;
    use crate::retention::{Decision, SourceFacts};

    /// Runs `full-1`, `incr-2`, … of one source `db`, a full every `cycle` runs.
    fn history(n: usize, cycle: usize) -> Vec<RunFacts> {
        (0..n)
            .map(|i| {
                let level = if i % cycle == 0 {
                    Level::Full
                } else {
                    Level::Incr
                };
                RunFacts {
                    label: format!(
                        "{}-{i:02}",
                        if level == Level::Full { "full" } else { "incr" }
                    ),
                    started: chrono::DateTime::from_timestamp(1_764_000_000 + i as i64 * 86_400, 0)
                        .unwrap(),
                    archived: false,
                    sources: vec![SourceFacts {
                        name: "db".into(),
                        level,
                        status: SourceStatus::Complete,
                        parent: None,
                        base_full: None,
                    }],
                }
            })
            .collect()
    }

    /// Expire the first `n` runs.
    fn expiring(facts: &[RunFacts], n: usize) -> RetentionPlan {
        RetentionPlan {
            decisions: facts
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let d = if i < n {
                        Decision::Expire("too old".into())
                    } else {
                        Decision::Keep("kept".into())
                    };
                    (r.label.clone(), d)
                })
                .collect(),
            entries: vec![],
        }
    }

    fn brake(approved: Vec<String>) -> Brake {
        Brake {
            max_expire_percent: 50,
            approved,
        }
    }

    #[test]
    fn a_steady_purge_passes_and_a_mass_expiry_waits_until_exactly_it_is_approved() {
        // Fulls at runs 0, 5, 10 and 15.
        let facts = history(20, 5);
        // (runs expired, braked?): a cycle or two falling out is routine; 11 of 20 is not.
        for (n, braked) in [(0, false), (5, false), (10, false), (11, true), (16, true)] {
            let b = check(&facts, &expiring(&facts, n), &brake(vec![]));
            assert_eq!(b.is_some(), braked, "{n} expired: {b:?}");
        }
        let b = check(&facts, &expiring(&facts, 16), &brake(vec![])).unwrap();
        assert!(
            b.reason.contains("16 of 20 restore points (80%)"),
            "{}",
            b.reason
        );
        assert_eq!(b.runs.len(), 16);
        // Approved: exactly that expiry runs; a different one still waits.
        assert_eq!(
            check(&facts, &expiring(&facts, 16), &brake(vec![b.plan.clone()])),
            None
        );
        assert!(check(&facts, &expiring(&facts, 17), &brake(vec![b.plan])).is_some());
    }

    #[test]
    fn expiring_every_older_full_of_a_source_waits_even_under_the_share() {
        // Fulls at runs 0, 3, 6, 9 … of 30; expiring runs 0..=8 takes the fulls 0, 3, 6 but
        // leaves 9 … 27: not every older full. Keeping only the newest cycle takes all.
        let facts = history(30, 3);
        assert_eq!(check(&facts, &expiring(&facts, 9), &brake(vec![])), None);
        let lenient = Brake {
            max_expire_percent: 99,
            approved: vec![],
        };
        let b = check(&facts, &expiring(&facts, 27), &lenient).unwrap();
        assert!(
            b.reason
                .contains("every full of source db but the newest (9 fulls)"),
            "{}",
            b.reason
        );
        // 100% releases the brake altogether.
        let off = Brake {
            max_expire_percent: 100,
            approved: vec![],
        };
        assert_eq!(check(&facts, &expiring(&facts, 27), &off), None);
        // One older full falling out is routine.
        let two = history(6, 3);
        assert_eq!(check(&two, &expiring(&two, 3), &lenient), None);
    }

    #[test]
    fn the_plan_names_the_runs_whatever_their_order() {
        assert_eq!(plan_id(&["b", "a"]), plan_id(&["a", "b"]));
        assert_ne!(plan_id(&["a"]), plan_id(&["a", "b"]));
    }
}
