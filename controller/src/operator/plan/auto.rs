//! `Auto` mode: each source's level at a run, the Amanda / Zimbra auto-grouped way. Every
//! source gets a full at least once per `cycle`; a new source gets one at once; and fulls
//! are spread so each run moves a similar amount of data: each run has a budget of the
//! total size divided by the runs in a cycle, fulls that must happen go first, then the
//! sources whose full is oldest (and at least half a cycle old) are brought forward while
//! they fit the budget. Pure.

use std::collections::BTreeMap;

use holdfast_engine::format::run::Level;
use jiff::{SignedDuration, Timestamp};

/// What the planner knows of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHistory {
    pub name: String,
    /// Start of its newest full, if it has one.
    pub last_full: Option<Timestamp>,
    /// Its logical size in its newest run (0 when unknown).
    pub size: u64,
}

/// Levels for the run at `slot`, whose next run is at `next_slot`; `runs_per_cycle` runs
/// fall in one cycle.
pub fn plan_auto(
    sources: &[SourceHistory],
    slot: Timestamp,
    next_slot: Option<Timestamp>,
    cycle: SignedDuration,
    runs_per_cycle: u32,
) -> BTreeMap<String, Level> {
    let mut levels: BTreeMap<String, Level> = sources
        .iter()
        .map(|s| (s.name.clone(), Level::Incr))
        .collect();
    // A full is due if skipping it now would leave the source without one for longer than
    // a cycle by the next run (or by now, when there is no next run).
    let horizon = next_slot.unwrap_or(slot);
    let must = |s: &SourceHistory| match s.last_full {
        None => true,
        Some(t) => horizon.duration_since(t) > cycle,
    };
    let total: u64 = sources.iter().map(|s| s.size).sum();
    let budget = total / u64::from(runs_per_cycle.max(1));
    let mut moved: u64 = 0;
    for s in sources.iter().filter(|s| must(s)) {
        levels.insert(s.name.clone(), Level::Full);
        moved += s.size;
    }
    // Bring forward the oldest fulls while the run stays within its share. A source bigger
    // than the share goes early only onto an otherwise empty run, in its last two runs
    // before it is due: that is what pulls apart big sources that would fall due together.
    let interval = cycle / i32::try_from(runs_per_cycle.max(1)).unwrap_or(i32::MAX);
    let mut rest: Vec<&SourceHistory> = sources.iter().filter(|s| !must(s)).collect();
    rest.sort_by(|a, b| a.last_full.cmp(&b.last_full).then(a.name.cmp(&b.name)));
    for s in rest {
        let Some(age) = s.last_full.map(|t| slot.duration_since(t)) else {
            continue;
        };
        // At most half a cycle early: a full much younger than that would be wasted.
        if age < cycle / 2 {
            continue;
        }
        let fits = moved + s.size <= budget;
        let soon_on_empty_run = moved == 0 && age + interval * 2 > cycle;
        if fits || soon_on_empty_run {
            levels.insert(s.name.clone(), Level::Full);
            moved += s.size;
        }
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: i64) -> Timestamp {
        Timestamp::from_second(1_764_550_800 + day * 86_400).unwrap()
    }

    fn src(name: &str, last_full_day: Option<i64>, size: u64) -> SourceHistory {
        SourceHistory {
            name: name.into(),
            last_full: last_full_day.map(t),
            size,
        }
    }

    fn fulls(levels: &BTreeMap<String, Level>) -> Vec<&str> {
        levels
            .iter()
            .filter(|(_, l)| **l == Level::Full)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn auto_rotation_table() {
        let week = SignedDuration::from_hours(168);
        // (what, sources, slot day, expected fulls)
        let cases: Vec<(&str, Vec<SourceHistory>, i64, Vec<&str>)> = vec![
            (
                "new sources get a full at once",
                vec![src("a", None, 10), src("b", None, 10)],
                0,
                vec!["a", "b"],
            ),
            (
                "a fresh full is not repeated",
                vec![src("a", Some(0), 70)],
                1,
                vec![],
            ),
            (
                "a full that does not fit is not taken early",
                vec![src("a", Some(0), 70)],
                5,
                vec![],
            ),
            (
                "a big source may go a run early onto an empty run",
                vec![src("a", Some(0), 70)],
                6,
                vec!["a"],
            ),
            (
                "a full due by the next run is taken now",
                vec![src("a", Some(0), 70)],
                7,
                vec!["a"],
            ),
            (
                "seven equal sources spread one a night",
                (0..7)
                    .map(|i| src(&format!("s{i}"), Some(-i), 10))
                    .collect(),
                0,
                vec!["s6"],
            ),
            (
                "the oldest full is brought forward within the budget",
                vec![
                    src("a", Some(-2), 10),
                    src("b", Some(-5), 10),
                    src("c", Some(-1), 50),
                ],
                0,
                vec!["b"],
            ),
            (
                "a big source that must go full does, and fills the night",
                vec![
                    src("big", Some(-7), 700),
                    src("x", Some(-5), 10),
                    src("y", Some(-4), 10),
                ],
                0,
                vec!["big"],
            ),
            (
                "uneven sizes: small ones join a light night",
                vec![
                    src("big", Some(-1), 600),
                    src("s1", Some(-5), 40),
                    src("s2", Some(-4), 40),
                ],
                0,
                vec!["s1", "s2"],
            ),
            (
                "a new source goes full even on a heavy night",
                vec![src("old", Some(-7), 500), src("new", None, 500)],
                0,
                vec!["new", "old"],
            ),
            (
                "young fulls are not brought forward, whatever their size",
                vec![src("a", Some(-3), 0), src("b", Some(-2), 0)],
                0,
                vec![],
            ),
            (
                "brought forward once half a cycle old",
                vec![src("a", Some(-4), 0), src("b", Some(-2), 0)],
                0,
                vec!["a"],
            ),
        ];
        for (what, sources, day, want) in cases {
            let got = plan_auto(&sources, t(day), Some(t(day + 1)), week, 7);
            assert_eq!(fulls(&got), want, "{what}");
            assert_eq!(got.len(), sources.len(), "{what}: every source has a level");
        }
    }

    #[test]
    fn over_a_month_every_source_gets_a_full_each_cycle_and_nights_stay_balanced() {
        let week = SignedDuration::from_hours(168);
        let sizes = [300u64, 120, 90, 60, 40, 30, 20, 10, 10, 5];
        let mut hist: Vec<SourceHistory> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| src(&format!("s{i}"), None, *s))
            .collect();
        let mut nightly = Vec::new();
        for day in 0..35 {
            let levels = plan_auto(&hist, t(day), Some(t(day + 1)), week, 7);
            let mut moved = 0;
            for h in &mut hist {
                if levels[&h.name] == Level::Full {
                    h.last_full = Some(t(day));
                    moved += h.size;
                }
                let age = t(day).duration_since(h.last_full.unwrap());
                assert!(age <= week, "{} went {age:?} without a full", h.name);
            }
            nightly.push(moved);
        }
        // Once the first fulls have spread out (two cycles), no night moves more than the
        // largest source plus a share, and every night moves something.
        let total: u64 = sizes.iter().sum();
        for (day, moved) in nightly.iter().enumerate().skip(14) {
            assert!(
                *moved <= 300 + total / 7,
                "day {day}: {moved} ({nightly:?})"
            );
        }
    }
}
