//! Retention: which runs a purge expires. A pure function of the catalog, the policy and
//! the time, so it is table-tested and a dry run shows exactly what a purge will do.
//!
//! Rules, in order of precedence:
//! * A full and every run based on it form a *cycle*; cycles are kept or expired whole by
//!   the policy (a dependent run is never kept without its full).
//! * A cycle is kept if it is one of the newest `keepFulls` cycles, or if its newest run is
//!   younger than `maxAge` (the rules add up: a run is kept if any rule keeps it).
//! * `maxAge: forever` keeps everything; no rule at all also keeps everything.
//! * Archived runs are never expired, nor is the newest Complete run; each keeps its full.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::format::run::{Level, RunManifest, RunStatus};
use crate::{Error, Result};

/// A maximum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxAge {
    Days(u32),
    Weeks(u32),
    /// Calendar months.
    Months(u32),
    /// Calendar years.
    Years(u32),
    Forever,
}

impl MaxAge {
    /// The oldest start time still within the age, or `None` for forever.
    pub fn cutoff(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            MaxAge::Days(n) => Some(now - chrono::Duration::days(i64::from(n))),
            MaxAge::Weeks(n) => Some(now - chrono::Duration::weeks(i64::from(n))),
            MaxAge::Months(n) => now
                .checked_sub_months(Months::new(n))
                .or(Some(DateTime::<Utc>::MIN_UTC)),
            MaxAge::Years(n) => now
                .checked_sub_months(Months::new(n.saturating_mul(12)))
                .or(Some(DateTime::<Utc>::MIN_UTC)),
            MaxAge::Forever => None,
        }
    }

    fn is_zero(self) -> bool {
        matches!(
            self,
            MaxAge::Days(0) | MaxAge::Weeks(0) | MaxAge::Months(0) | MaxAge::Years(0)
        )
    }
}

impl fmt::Display for MaxAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxAge::Days(n) => write!(f, "{n}d"),
            MaxAge::Weeks(n) => write!(f, "{n}w"),
            MaxAge::Months(n) => write!(f, "{n}m"),
            MaxAge::Years(n) => write!(f, "{n}y"),
            MaxAge::Forever => f.write_str("forever"),
        }
    }
}

impl FromStr for MaxAge {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "invalid maximum age {s:?}: use e.g. 90d, 12w, 6m, 1y or forever"
            ))
        };
        if s == "forever" {
            return Ok(MaxAge::Forever);
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: u32 = num.parse().map_err(|_| bad())?;
        match unit {
            "d" => Ok(MaxAge::Days(n)),
            "w" => Ok(MaxAge::Weeks(n)),
            "m" => Ok(MaxAge::Months(n)),
            "y" => Ok(MaxAge::Years(n)),
            _ => Err(bad()),
        }
    }
}

/// How long to keep runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Keep the newest N full cycles.
    pub keep_fulls: Option<u32>,
    /// Keep cycles whose newest run is younger than this.
    pub max_age: Option<MaxAge>,
}

impl RetentionPolicy {
    /// Refuse a policy that would keep nothing.
    pub fn validate(&self) -> Result<()> {
        let fulls_none = self.keep_fulls == Some(0);
        let age_none = self.max_age.is_some_and(MaxAge::is_zero);
        if (fulls_none && (self.max_age.is_none() || age_none))
            || (age_none && self.keep_fulls.is_none())
        {
            return Err(Error::InvalidArgument(
                "this retention policy keeps nothing: use keepFulls of at least 1 or a maxAge above zero".into(),
            ));
        }
        Ok(())
    }

    pub fn is_unbounded(&self) -> bool {
        (self.keep_fulls.is_none() && self.max_age.is_none())
            || self.max_age == Some(MaxAge::Forever)
    }
}

/// The facts retention looks at for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub label: String,
    pub level: Level,
    pub status: RunStatus,
    pub started: DateTime<Utc>,
    pub base_full: Option<String>,
    pub archived: bool,
}

impl RunFacts {
    pub fn of(run: &RunManifest, archived: bool) -> Self {
        RunFacts {
            label: run.label.clone(),
            level: run.level,
            status: run.status,
            started: run.started,
            base_full: run.base_full.clone(),
            archived,
        }
    }
}

/// Keep or expire, with the reason shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "lowercase")]
pub enum Decision {
    Keep(String),
    Expire(String),
}

impl Decision {
    pub fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep(_))
    }
}

/// The decision for every run, in catalog order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    pub decisions: Vec<(String, Decision)>,
}

impl RetentionPlan {
    pub fn expired(&self) -> impl Iterator<Item = (&str, &str)> {
        self.decisions.iter().filter_map(|(l, d)| match d {
            Decision::Expire(r) => Some((l.as_str(), r.as_str())),
            Decision::Keep(_) => None,
        })
    }

    pub fn kept(&self) -> usize {
        self.decisions.iter().filter(|(_, d)| d.is_keep()).count()
    }
}

/// A full and the runs based on it.
struct Cycle {
    first: DateTime<Utc>,
    newest: DateTime<Utc>,
    has_full: bool,
}

/// Decide which runs to keep. `runs` is the catalog, oldest first.
pub fn plan_retention(
    runs: &[RunFacts],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<RetentionPlan> {
    policy.validate()?;
    if policy.is_unbounded() {
        let why = if policy.max_age == Some(MaxAge::Forever) {
            "kept forever"
        } else {
            "no retention rule"
        };
        return Ok(RetentionPlan {
            decisions: runs
                .iter()
                .map(|r| (r.label.clone(), Decision::Keep(why.into())))
                .collect(),
        });
    }
    let fulls: HashSet<&str> = runs
        .iter()
        .filter(|r| r.level == Level::Full)
        .map(|r| r.label.as_str())
        .collect();
    // The cycle of a run: its own label for a full, else its base full's label (a missing
    // full leaves an orphan cycle under the missing label).
    let cycle_of = |r: &RunFacts| -> String {
        if r.level == Level::Full {
            r.label.clone()
        } else {
            r.base_full.clone().unwrap_or_else(|| r.label.clone())
        }
    };
    let mut cycles: BTreeMap<String, Cycle> = BTreeMap::new();
    for r in runs {
        let c = cycles.entry(cycle_of(r)).or_insert(Cycle {
            first: r.started,
            newest: r.started,
            has_full: false,
        });
        c.first = c.first.min(r.started);
        c.newest = c.newest.max(r.started);
        c.has_full |= r.level == Level::Full && fulls.contains(r.label.as_str());
    }
    let mut by_start: Vec<(&String, &Cycle)> = cycles.iter().collect();
    by_start.sort_by_key(|(label, c)| {
        (
            std::cmp::Reverse(c.first),
            std::cmp::Reverse((*label).clone()),
        )
    });

    let mut kept_cycles: BTreeMap<String, String> = BTreeMap::new();
    if let Some(n) = policy.keep_fulls {
        for (label, _) in by_start.iter().filter(|(_, c)| c.has_full).take(n as usize) {
            kept_cycles.insert(
                (*label).clone(),
                format!("one of the newest {n} full cycles"),
            );
        }
    }
    if let Some(cutoff) = policy.max_age.and_then(|a| a.cutoff(now)) {
        let age = policy.max_age.map(|a| a.to_string()).unwrap_or_default();
        for (label, c) in &by_start {
            if c.newest >= cutoff {
                kept_cycles
                    .entry((*label).clone())
                    .or_insert_with(|| format!("cycle has runs within {age}"));
            }
        }
    }
    // Runs kept for themselves, and the fulls they need.
    let mut pinned: BTreeMap<String, String> = BTreeMap::new();
    let newest_complete = runs.iter().rev().find(|r| r.status == RunStatus::Complete);
    for r in runs {
        let why = if r.archived {
            Some("archived")
        } else if newest_complete.is_some_and(|n| n.label == r.label) {
            Some("newest complete run")
        } else {
            None
        };
        if let Some(why) = why {
            pinned
                .entry(r.label.clone())
                .or_insert_with(|| why.to_owned());
            if let Some(base) = r.base_full.as_ref().filter(|b| fulls.contains(b.as_str())) {
                pinned
                    .entry(base.clone())
                    .or_insert_with(|| format!("full needed by {} run {}", why, r.label));
            }
        }
    }
    let policy_text = match (policy.keep_fulls, policy.max_age) {
        (Some(n), Some(a)) => format!("not among the newest {n} full cycles and no run within {a}"),
        (Some(n), None) => format!("not among the newest {n} full cycles"),
        (None, Some(a)) => format!("no run of its cycle within {a}"),
        (None, None) => String::new(),
    };
    let decisions = runs
        .iter()
        .map(|r| {
            let d = if let Some(why) = pinned.get(&r.label) {
                Decision::Keep(why.clone())
            } else if let Some(why) = kept_cycles.get(&cycle_of(r)) {
                Decision::Keep(why.clone())
            } else {
                Decision::Expire(format!("cycle of {} is {policy_text}", cycle_of(r)))
            };
            (r.label.clone(), d)
        })
        .collect();
    Ok(RetentionPlan { decisions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Build a catalog from a compact spec: "F@1" is a full on day 1, "I@2" an incremental,
    /// "D@3" a differential, "f@4" a Partial full, "I@5*" an archived incremental. Each
    /// non-full is based on the latest full before it. Labels encode the day.
    fn catalog(spec: &str) -> Vec<RunFacts> {
        let mut out: Vec<RunFacts> = Vec::new();
        let mut last_full: Option<String> = None;
        for tok in spec.split_whitespace() {
            let (kind, rest) = tok.split_at(1);
            let archived = rest.ends_with('*');
            let day: u32 = rest
                .trim_start_matches('@')
                .trim_end_matches('*')
                .parse()
                .unwrap();
            let started = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap()
                + chrono::Duration::days(i64::from(day));
            let (level, status) = match kind {
                "F" => (Level::Full, RunStatus::Complete),
                "f" => (Level::Full, RunStatus::Partial),
                "I" => (Level::Incr, RunStatus::Complete),
                "i" => (Level::Incr, RunStatus::Partial),
                "D" => (Level::Diff, RunStatus::Complete),
                _ => panic!("bad token {tok}"),
            };
            let label = crate::format::run::label_for(level, started);
            let base_full = if level == Level::Full {
                None
            } else {
                last_full.clone()
            };
            if level == Level::Full {
                last_full = Some(label.clone());
            }
            out.push(RunFacts {
                label,
                level,
                status,
                started,
                base_full,
                archived,
            });
        }
        out
    }

    fn day(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap() + chrono::Duration::days(d)
    }

    /// Which runs survive, as the spec tokens' day numbers.
    fn kept_days(runs: &[RunFacts], plan: &RetentionPlan) -> Vec<i64> {
        runs.iter()
            .zip(&plan.decisions)
            .filter(|(_, (_, d))| d.is_keep())
            .map(|(r, _)| (r.started - day(0)).num_days())
            .collect()
    }

    fn policy(keep_fulls: Option<u32>, max_age: Option<&str>) -> RetentionPolicy {
        RetentionPolicy {
            keep_fulls,
            max_age: max_age.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn retention_table() {
        // (catalog, keepFulls, maxAge, now (day), kept days)
        type Case = (
            &'static str,
            Option<u32>,
            Option<&'static str>,
            i64,
            &'static [i64],
        );
        let cases: &[Case] = &[
            // 1. no rule keeps everything
            ("F@1 I@2 F@3", None, None, 10, &[1, 2, 3]),
            // 2. forever keeps everything
            ("F@1 I@2 F@3", Some(1), Some("forever"), 400, &[1, 2, 3]),
            // 3. keep one full cycle
            ("F@1 I@2 F@3 I@4", Some(1), None, 5, &[3, 4]),
            // 4. keep two cycles
            ("F@1 I@2 F@3 I@4 F@5", Some(2), None, 6, &[3, 4, 5]),
            // 5. keeping more cycles than exist keeps all
            ("F@1 I@2", Some(5), None, 6, &[1, 2]),
            // 6. a cycle goes whole: its incrementals expire with the full
            ("F@1 I@2 I@3 D@4 F@5", Some(1), None, 6, &[5]),
            // 7. max age by the cycle's newest run: old full kept while its incr is young
            ("F@1 I@25 F@30", None, Some("10d"), 34, &[1, 25, 30]),
            // 8. max age expires a whole old cycle
            ("F@1 I@2 F@30", None, Some("10d"), 34, &[30]),
            // 9. rules add up: keepFulls keeps an old cycle that maxAge alone would expire
            ("F@1 I@2 F@30", Some(2), Some("10d"), 34, &[1, 2, 30]),
            // 10. rules add up: maxAge keeps more than keepFulls alone
            ("F@20 F@25 F@30", Some(1), Some("12d"), 34, &[25, 30]),
            // 11. the newest complete run is never expired, even past maxAge, with its full
            ("F@1 I@2", None, Some("7d"), 100, &[1, 2]),
            // 12. newest complete run skips a newer partial one
            ("F@1 I@2 i@3", None, Some("7d"), 100, &[1, 2]),
            // 13. archived run survives, with its full but not its siblings
            ("F@1 I@2* I@3 F@10 I@11", Some(1), None, 12, &[1, 2, 10, 11]),
            // 14. archived full survives alone
            ("F@1* I@2 F@10", Some(1), None, 12, &[1, 10]),
            // 15. weeks
            ("F@1 F@8 F@15 F@22", None, Some("2w"), 23, &[15, 22]),
            // 16. months (calendar)
            ("F@1 F@40 F@70", None, Some("1m"), 72, &[70]),
            // 17. years
            ("F@1 F@300 F@500", None, Some("1y"), 600, &[300, 500]),
            // 18. partial fulls count as cycles
            ("f@1 F@2 f@3", Some(1), None, 4, &[2, 3]),
            // 19. an orphan incremental (its full missing) is kept only by age
            ("I@1 F@5 I@6", Some(1), None, 7, &[5, 6]),
            // 20. orphans within maxAge are kept
            ("I@1 F@5", None, Some("30d"), 7, &[1, 5]),
            // 21. differential and incremental runs share their full's cycle
            ("F@1 D@2 I@3 D@4 F@5 D@6", Some(1), None, 7, &[5, 6]),
            // 22. empty catalog
            ("", Some(3), Some("30d"), 1, &[]),
            // 23. runs exactly at the age cutoff are kept
            ("F@1 F@11", None, Some("10d"), 11, &[1, 11]),
        ];
        for (i, (spec, keep, age, now, expected)) in cases.iter().enumerate() {
            let runs = catalog(spec);
            let plan = plan_retention(&runs, &policy(*keep, *age), day(*now)).unwrap();
            assert_eq!(
                kept_days(&runs, &plan),
                *expected,
                "case {} ({spec}): {:#?}",
                i + 1,
                plan.decisions
            );
        }
    }

    #[test]
    fn retention_that_keeps_nothing_is_refused() {
        for (keep, age) in [(Some(0), None), (Some(0), Some("0d")), (None, Some("0w"))] {
            let err = plan_retention(&[], &policy(keep, age), day(0)).unwrap_err();
            assert!(err.to_string().contains("keeps nothing"), "{err}");
        }
        assert!(
            policy(Some(0), Some("30d")).validate().is_ok(),
            "maxAge alone still keeps recent runs"
        );
    }

    #[test]
    fn expire_reasons_name_the_cycle_and_rule() {
        let runs = catalog("F@1 I@2 F@3");
        let plan = plan_retention(&runs, &policy(Some(1), None), day(4)).unwrap();
        let expired: Vec<_> = plan.expired().collect();
        assert_eq!(expired.len(), 2);
        assert!(
            expired[0].1.contains("not among the newest 1 full cycles"),
            "{expired:?}"
        );
        assert!(expired[0].1.contains(&runs[0].label));
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!("90d".parse::<MaxAge>().unwrap(), MaxAge::Days(90));
        assert_eq!("forever".parse::<MaxAge>().unwrap(), MaxAge::Forever);
        assert!("90".parse::<MaxAge>().is_err());
        assert!("3 months".parse::<MaxAge>().is_err());
    }
}
