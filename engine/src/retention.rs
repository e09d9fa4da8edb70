//! Retention: which runs a purge expires. A pure function of the catalog, the policy and
//! the time, so it is table-tested and a dry run shows exactly what a purge will do.
//!
//! Every rule applies to each source on its own: a repository holds many sources, each
//! with its own rhythm of fulls, so "the newest 4 full cycles" means four of *that
//! source's* cycles. A run is expired only when every source in it is.
//!
//! Rules per source (they add up: an entry is kept if any rule keeps it):
//! * A full and every entry based on it form a *cycle*; `keepFulls` and `maxAge` keep or
//!   expire cycles whole (a dependent entry is never kept without its full).
//! * A cycle is kept if it is one of the newest `keepFulls` cycles, or if its newest entry is
//!   younger than `maxAge`.
//! * `keepDaily`, `keepWeekly`, `keepMonthly`, `keepYearly` (GFS) keep the newest restore
//!   point of each of the newest N days, ISO weeks, months and years (UTC) that have one
//!   (a Complete entry is preferred to a newer Partial one); a kept entry keeps its whole
//!   chain: its parents back to its full.
//! * `maxAge: forever` keeps everything; no rule at all also keeps everything.
//! * Archived runs are never expired; nor is each source's newest Complete entry (or, for a
//!   source that never completed, its newest Partial one), so no policy can leave a source
//!   that had a restore point without one. Each keeps its chain.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::source_entries;
use crate::format::run::{Level, RunManifest, SourceStatus};
use crate::{Error, Result};

/// A maximum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxAge {
    /// This many days.
    Days(u32),
    /// This many weeks.
    Weeks(u32),
    /// Calendar months.
    Months(u32),
    /// Calendar years.
    Years(u32),
    /// No age limit.
    Forever,
}

impl MaxAge {
    /// The oldest start time still within the age, or `None` for forever.
    pub(crate) fn cutoff(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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

/// How long to keep runs. Every rule applies per source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Keep the newest N full cycles.
    pub keep_fulls: Option<u32>,
    /// Keep cycles whose newest run is younger than this.
    pub max_age: Option<MaxAge>,
    /// Keep the newest restore point of each of the newest N days that have one.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// Keep the newest restore point of each of the newest N ISO weeks that have one.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest restore point of each of the newest N months that have one.
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest restore point of each of the newest N years that have one.
    #[serde(default)]
    pub keep_yearly: Option<u32>,
}

/// A GFS period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Year];

    fn rule(self) -> &'static str {
        match self {
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Period::Day => "days",
            Period::Week => "weeks",
            Period::Month => "months",
            Period::Year => "years",
        }
    }

    /// The period a time falls in, as text that sorts in time order.
    fn key(self, t: DateTime<Utc>) -> String {
        match self {
            Period::Day => t.format("%Y-%m-%d").to_string(),
            Period::Week => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Period::Month => t.format("%Y-%m").to_string(),
            Period::Year => t.format("%Y").to_string(),
        }
    }
}

impl RetentionPolicy {
    fn gfs(&self, p: Period) -> Option<u32> {
        match p {
            Period::Day => self.keep_daily,
            Period::Week => self.keep_weekly,
            Period::Month => self.keep_monthly,
            Period::Year => self.keep_yearly,
        }
    }

    fn has_rule(&self) -> bool {
        self.keep_fulls.is_some()
            || self.max_age.is_some()
            || Period::ALL.iter().any(|p| self.gfs(*p).is_some())
    }

    /// Refuse a policy whose rules would keep nothing (every count zero, every age zero).
    /// Expiring a source's last restore point is never a retention decision.
    pub fn validate(&self) -> Result<()> {
        let keeps = self.keep_fulls.is_some_and(|n| n > 0)
            || self.max_age.is_some_and(|a| !a.is_zero())
            || Period::ALL
                .iter()
                .any(|p| self.gfs(*p).is_some_and(|n| n > 0));
        if self.has_rule() && !keeps {
            return Err(Error::InvalidArgument(
                "this retention policy keeps nothing: use keepFulls, keepDaily, keepWeekly, \
                 keepMonthly or keepYearly of at least 1, or a maxAge above zero"
                    .into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn is_unbounded(&self) -> bool {
        !self.has_rule() || self.max_age == Some(MaxAge::Forever)
    }

    // Only the unit tests below use it: the engine itself never needs it.
    #[cfg(test)]
    /// The policy as the rules a user wrote, e.g. `keepFulls 4, maxAge 90d, keepDaily 7`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.keep_fulls {
            parts.push(format!("keepFulls {n}"));
        }
        if let Some(a) = self.max_age {
            parts.push(format!("maxAge {a}"));
        }
        for p in Period::ALL {
            if let Some(n) = self.gfs(p) {
                let name = p.rule();
                let mut cap = name[..1].to_ascii_uppercase();
                cap.push_str(&name[1..]);
                parts.push(format!("keep{cap} {n}"));
            }
        }
        if parts.is_empty() {
            "no rule".into()
        } else {
            parts.join(", ")
        }
    }
}

/// What retention looks at for one source in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFacts {
    /// The source's name.
    pub name: String,
    /// Its level in the run.
    pub level: Level,
    /// Complete or Partial (Failed entries hold nothing and are not listed).
    pub status: SourceStatus,
    /// The run the source's entry is based on (the previous full or diff), if any.
    pub parent: Option<String>,
    /// The full at the root of its chain, if it is not one itself.
    pub base_full: Option<String>,
}

/// What retention looks at for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    /// The run's label.
    pub label: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// Whether it is archived (kept whatever the policy says).
    pub archived: bool,
    /// The run's restorable sources.
    pub sources: Vec<SourceFacts>,
}

/// The facts of a catalog (oldest first), read per source (see [`crate::catalog`]).
pub fn facts_of(runs: &[RunManifest], archived: &HashSet<String>) -> Vec<RunFacts> {
    let mut by_run: HashMap<String, Vec<SourceFacts>> = HashMap::new();
    for e in source_entries(runs)
        .into_iter()
        .filter(|e| e.is_restorable())
    {
        by_run.entry(e.run.clone()).or_default().push(SourceFacts {
            name: e.source,
            level: e.level,
            status: e.status,
            parent: e.parent,
            base_full: e.base_full,
        });
    }
    runs.iter()
        .map(|r| RunFacts {
            label: r.label.clone(),
            started: r.started,
            archived: archived.contains(&r.label),
            sources: by_run.remove(&r.label).unwrap_or_default(),
        })
        .collect()
}

/// Keep or expire, with the reason shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "lowercase")]
pub enum Decision {
    /// Keep, for this reason.
    Keep(String),
    /// Expire, for this reason.
    Expire(String),
}

impl Decision {
    pub(crate) fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep(_))
    }

    /// Why the run is kept or expired, as the purge report shows it.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Keep(r) | Decision::Expire(r) => r,
        }
    }
}

/// The decision for one source's entry in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryDecision {
    /// The run's label.
    pub run: String,
    /// The source's name.
    pub source: String,
    /// Whether the entry is kept.
    pub keep: bool,
    /// Why.
    pub reason: String,
}

/// The decision for every run, in catalog order, and for every source entry behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    /// Each run's label with its decision.
    pub decisions: Vec<(String, Decision)>,
    /// Per source and run (a run is kept when any of its entries is).
    pub entries: Vec<EntryDecision>,
}

impl RetentionPlan {
    pub(crate) fn expired(&self) -> impl Iterator<Item = (&str, &str)> {
        self.decisions.iter().filter_map(|(l, d)| match d {
            Decision::Expire(r) => Some((l.as_str(), r.as_str())),
            Decision::Keep(_) => None,
        })
    }

    pub(crate) fn kept(&self) -> usize {
        self.decisions.iter().filter(|(_, d)| d.is_keep()).count()
    }
}

/// One source's entry: the run's index in the catalog and the facts.
type Entry<'a> = (usize, &'a SourceFacts);

/// A full and the entries based on it.
struct Cycle {
    first: DateTime<Utc>,
    newest: DateTime<Utc>,
    has_full: bool,
}

fn cycle_of(runs: &[RunFacts], (i, f): Entry<'_>) -> String {
    if f.level == Level::Full {
        runs[i].label.clone()
    } else {
        // A missing full leaves an orphan cycle under the missing label; an entry with no
        // recorded full is a cycle of its own.
        f.base_full.clone().unwrap_or_else(|| runs[i].label.clone())
    }
}

/// Reasons to keep each of one source's entries (by run index).
type Keeps = BTreeMap<usize, Vec<String>>;

fn add(keeps: &mut Keeps, i: usize, why: String) {
    let v = keeps.entry(i).or_default();
    if !v.contains(&why) {
        v.push(why);
    }
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
            entries: runs
                .iter()
                .flat_map(|r| {
                    r.sources.iter().map(|s| EntryDecision {
                        run: r.label.clone(),
                        source: s.name.clone(),
                        keep: true,
                        reason: why.into(),
                    })
                })
                .collect(),
        });
    }
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        for s in &r.sources {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    // Per run: (source, kept?, reason).
    let mut verdicts: Vec<Vec<(String, bool, String)>> = vec![Vec::new(); runs.len()];
    for name in names {
        let entries: Vec<Entry<'_>> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.sources.iter().find(|s| s.name == name).map(|f| (i, f)))
            .collect();
        for (i, kept, why) in plan_source(runs, &entries, policy, now) {
            verdicts[i].push((name.to_owned(), kept, why));
        }
    }
    let entries = runs
        .iter()
        .zip(&verdicts)
        .flat_map(|(r, v)| {
            v.iter().map(|(source, keep, reason)| EntryDecision {
                run: r.label.clone(),
                source: source.clone(),
                keep: *keep,
                reason: reason.clone(),
            })
        })
        .collect();
    let decisions = runs
        .iter()
        .zip(verdicts)
        .map(|(r, v)| {
            let d = if v.iter().any(|(_, k, _)| *k) {
                let keeps: Vec<String> = v
                    .iter()
                    .filter(|(_, k, _)| *k)
                    .map(|(s, _, why)| format!("{s}: {why}"))
                    .collect();
                Decision::Keep(keeps.join("; "))
            } else if v.is_empty() {
                if r.archived {
                    Decision::Keep("archived".into())
                } else {
                    Decision::Expire("holds no restorable source".into())
                }
            } else {
                let why: Vec<String> = v.iter().map(|(s, _, why)| format!("{s}: {why}")).collect();
                Decision::Expire(why.join("; "))
            };
            (r.label.clone(), d)
        })
        .collect();
    Ok(RetentionPlan { decisions, entries })
}

/// Decide for one source's entries: `(run index, kept, reason)` each.
fn plan_source(
    runs: &[RunFacts],
    entries: &[Entry<'_>],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<(usize, bool, String)> {
    let mut cycles: BTreeMap<String, Cycle> = BTreeMap::new();
    for &e in entries {
        let started = runs[e.0].started;
        let c = cycles.entry(cycle_of(runs, e)).or_insert(Cycle {
            first: started,
            newest: started,
            has_full: false,
        });
        c.first = c.first.min(started);
        c.newest = c.newest.max(started);
        c.has_full |= e.1.level == Level::Full;
    }
    let mut by_start: Vec<(&String, &Cycle)> = cycles.iter().collect();
    by_start.sort_by_key(|(label, c)| {
        (
            std::cmp::Reverse(c.first),
            std::cmp::Reverse((*label).clone()),
        )
    });
    let mut kept_cycles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(n) = policy.keep_fulls {
        for (label, _) in by_start.iter().filter(|(_, c)| c.has_full).take(n as usize) {
            kept_cycles
                .entry((*label).clone())
                .or_default()
                .push(format!("one of the newest {n} full cycles"));
        }
    }
    if let Some(age) = policy.max_age
        && let Some(cutoff) = age.cutoff(now)
    {
        for (label, c) in &by_start {
            if c.newest >= cutoff {
                kept_cycles
                    .entry((*label).clone())
                    .or_default()
                    .push(format!("its cycle has runs within {age}"));
            }
        }
    }
    // Entries kept for themselves; each keeps its chain below.
    let mut own: Keeps = BTreeMap::new();
    for p in Period::ALL {
        if let Some(n) = policy.gfs(p) {
            for (i, key) in newest_per_period(runs, entries, p, n as usize) {
                add(&mut own, i, format!("{} ({key})", p.rule()));
            }
        }
    }
    for &(i, _) in entries {
        if runs[i].archived {
            add(&mut own, i, "archived".into());
        }
    }
    let newest_complete = entries
        .iter()
        .rev()
        .find(|(_, f)| f.status == SourceStatus::Complete);
    match newest_complete.or(entries.last()) {
        Some((i, f)) if f.status == SourceStatus::Complete => {
            add(&mut own, *i, "newest complete run of this source".into());
        }
        Some((i, _)) => add(
            &mut own,
            *i,
            "newest restore point of this source (it has no complete run)".into(),
        ),
        None => {}
    }
    let mut keeps = own.clone();
    for (&i, whys) in &own {
        let label = &runs[i].label;
        let why = &whys[0];
        for j in chain(runs, entries, i) {
            add(&mut keeps, j, format!("needed by {label} ({why})"));
        }
    }
    entries
        .iter()
        .map(|&e @ (i, _)| {
            let cycle = cycle_of(runs, e);
            let mut whys = keeps.get(&i).cloned().unwrap_or_default();
            if let Some(c) = kept_cycles.get(&cycle) {
                whys.extend(c.iter().cloned());
            }
            if whys.is_empty() {
                (i, false, expire_reason(policy, &cycle))
            } else {
                (i, true, whys.join(", "))
            }
        })
        .collect()
}

/// The entries an entry depends on: its parents back to its full, and its full.
fn chain(runs: &[RunFacts], entries: &[Entry<'_>], start: usize) -> Vec<usize> {
    let find = |label: &str| entries.iter().find(|(i, _)| runs[*i].label == label);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let Some(&(_, first)) = entries.iter().find(|(i, _)| *i == start) else {
        return out;
    };
    if let Some((j, _)) = first.base_full.as_deref().and_then(find) {
        out.push(*j);
    }
    let mut cursor = first.parent.clone();
    while let Some(label) = cursor {
        let Some(&(j, f)) = find(&label) else { break };
        if !seen.insert(j) || j == start {
            break;
        }
        out.push(j);
        if f.level == Level::Full {
            break;
        }
        cursor = f.parent.clone();
    }
    out
}

/// For GFS: the newest restore point of each of the newest `n` periods that have one (a
/// Complete entry preferred to a newer Partial one in the same period).
fn newest_per_period(
    runs: &[RunFacts],
    entries: &[Entry<'_>],
    period: Period,
    n: usize,
) -> Vec<(usize, String)> {
    let mut best: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for &(i, f) in entries {
        let key = period.key(runs[i].started);
        let complete = f.status == SourceStatus::Complete;
        // Entries come oldest first, so a later one of equal standing replaces an earlier.
        match best.get(&key) {
            Some((_, true)) if !complete => {}
            _ => {
                best.insert(key, (i, complete));
            }
        }
    }
    best.into_iter()
        .rev()
        .take(n)
        .map(|(key, (i, _))| (i, key))
        .collect()
}

fn expire_reason(policy: &RetentionPolicy, cycle: &str) -> String {
    let mut parts = Vec::new();
    if let Some(n) = policy.keep_fulls {
        parts.push(format!(
            "cycle of {cycle} is not among the newest {n} full cycles"
        ));
    }
    if let Some(a) = policy.max_age {
        parts.push(format!("no run of the cycle of {cycle} within {a}"));
    }
    for p in Period::ALL {
        if let Some(n) = policy.gfs(p) {
            parts.push(format!(
                "not the newest restore point of one of the newest {n} {}",
                p.plural()
            ));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn day(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap() + chrono::Duration::days(d)
    }

    /// Build a catalog from a compact spec. Each token is `<kind>@<day>[.<hour>][*][:a,b]`:
    /// "F@1" a full on day 1, "I@2" an incremental, "D@3" a differential, "f@4" a Partial
    /// full, "i@5" a Partial incremental, "*" archived, ":a,b" the sources (default "s").
    /// Each source's non-full is based on that source's latest full; an incremental's parent
    /// is the source's previous entry in the cycle, a differential's the full. Returns the
    /// facts and each run's time token.
    fn catalog(spec: &str) -> (Vec<RunFacts>, Vec<String>) {
        let mut out: Vec<RunFacts> = Vec::new();
        let mut times = Vec::new();
        let mut last_full: HashMap<String, String> = HashMap::new();
        let mut last: HashMap<String, String> = HashMap::new();
        for tok in spec.split_whitespace() {
            let (kind, rest) = tok.split_at(1);
            let (rest, srcs) = rest.split_once(':').unwrap_or((rest, "s"));
            let archived = rest.ends_with('*');
            let time = rest.trim_start_matches('@').trim_end_matches('*');
            let (d, h) = time.split_once('.').unwrap_or((time, "0"));
            let started = day(d.parse().unwrap()) + chrono::Duration::hours(h.parse().unwrap());
            let (level, status) = match kind {
                "F" => (Level::Full, SourceStatus::Complete),
                "f" => (Level::Full, SourceStatus::Partial),
                "I" => (Level::Incr, SourceStatus::Complete),
                "i" => (Level::Incr, SourceStatus::Partial),
                "D" => (Level::Diff, SourceStatus::Complete),
                _ => panic!("bad token {tok}"),
            };
            let label = crate::format::run::label_for(level, started);
            let sources = srcs
                .split(',')
                .map(|name| {
                    let (level, base_full, parent) = match (level, last_full.get(name)) {
                        (Level::Full, _) | (_, None) => (Level::Full, None, None),
                        (Level::Diff, Some(f)) => (level, Some(f.clone()), Some(f.clone())),
                        (Level::Incr, Some(f)) => (level, Some(f.clone()), last.get(name).cloned()),
                    };
                    if level == Level::Full {
                        last_full.insert(name.to_owned(), label.clone());
                    }
                    last.insert(name.to_owned(), label.clone());
                    SourceFacts {
                        name: name.to_owned(),
                        level,
                        status,
                        parent,
                        base_full,
                    }
                })
                .collect();
            out.push(RunFacts {
                label,
                started,
                archived,
                sources,
            });
            times.push(time.to_owned());
        }
        (out, times)
    }

    /// Which runs survive, as their time tokens.
    fn kept(times: &[String], plan: &RetentionPlan) -> Vec<String> {
        times
            .iter()
            .zip(&plan.decisions)
            .filter(|(_, (_, d))| d.is_keep())
            .map(|(t, _)| t.clone())
            .collect()
    }

    fn policy(keep_fulls: Option<u32>, max_age: Option<&str>) -> RetentionPolicy {
        RetentionPolicy {
            keep_fulls,
            max_age: max_age.map(|a| a.parse().unwrap()),
            ..RetentionPolicy::default()
        }
    }

    fn gfs(d: Option<u32>, w: Option<u32>, m: Option<u32>, y: Option<u32>) -> RetentionPolicy {
        RetentionPolicy {
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            ..RetentionPolicy::default()
        }
    }

    #[test]
    fn retention_table() {
        // (catalog, policy, now (day), kept times)
        type Case = (&'static str, RetentionPolicy, i64, &'static str);
        let cases: &[Case] = &[
            // 1. no rule keeps everything
            ("F@1 I@2 F@3", policy(None, None), 10, "1 2 3"),
            // 2. forever keeps everything
            (
                "F@1 I@2 F@3",
                policy(Some(1), Some("forever")),
                400,
                "1 2 3",
            ),
            // 3. keep one full cycle
            ("F@1 I@2 F@3 I@4", policy(Some(1), None), 5, "3 4"),
            // 4. keep two cycles
            ("F@1 I@2 F@3 I@4 F@5", policy(Some(2), None), 6, "3 4 5"),
            // 5. keeping more cycles than exist keeps all
            ("F@1 I@2", policy(Some(5), None), 6, "1 2"),
            // 6. a cycle goes whole: its incrementals expire with the full
            ("F@1 I@2 I@3 D@4 F@5", policy(Some(1), None), 6, "5"),
            // 7. max age by the cycle's newest run: old full kept while its incr is young
            ("F@1 I@25 F@30", policy(None, Some("10d")), 34, "1 25 30"),
            // 8. max age expires a whole old cycle
            ("F@1 I@2 F@30", policy(None, Some("10d")), 34, "30"),
            // 9. rules add up: keepFulls keeps an old cycle that maxAge alone would expire
            ("F@1 I@2 F@30", policy(Some(2), Some("10d")), 34, "1 2 30"),
            // 10. rules add up: maxAge keeps more than keepFulls alone
            ("F@20 F@25 F@30", policy(Some(1), Some("12d")), 34, "25 30"),
            // 11. the newest complete run is never expired, even past maxAge, with its chain
            ("F@1 I@2", policy(None, Some("7d")), 100, "1 2"),
            // 12. newest complete run skips a newer partial one
            ("F@1 I@2 i@3", policy(None, Some("7d")), 100, "1 2"),
            // 13. archived run survives, with its chain but not its siblings
            (
                "F@1 D@2* I@3 F@10 I@11",
                policy(Some(1), None),
                12,
                "1 2 10 11",
            ),
            // 14. archived full survives alone
            ("F@1* I@2 F@10", policy(Some(1), None), 12, "1 10"),
            // 15. weeks
            ("F@1 F@8 F@15 F@22", policy(None, Some("2w")), 23, "15 22"),
            // 16. months (calendar)
            ("F@1 F@40 F@70", policy(None, Some("1m")), 72, "70"),
            // 17. years
            ("F@1 F@300 F@500", policy(None, Some("1y")), 600, "300 500"),
            // 18. partial fulls count as cycles
            ("f@1 F@2 f@3", policy(Some(1), None), 4, "2 3"),
            // 19. differential and incremental runs share their full's cycle
            ("F@1 D@2 I@3 D@4 F@5 D@6", policy(Some(1), None), 7, "5 6"),
            // 20. empty catalog
            ("", policy(Some(3), Some("30d")), 1, ""),
            // 21. runs exactly at the age cutoff are kept
            ("F@1 F@11", policy(None, Some("10d")), 11, "1 11"),
            // 22. a source that only ever had partial runs keeps its newest one
            ("f@1 f@2", policy(Some(1), None), 30, "2"),
            // --- several sources, each with its own rhythm ---
            // 23. the data-loss report: uploads' only run is its newest complete run, and
            //     newsrc's incremental (no full of its own) is a cycle of its own
            (
                "F@1:uploads F@2:db I@3:db I@4:newsrc",
                policy(Some(1), None),
                5,
                "1 2 3 4",
            ),
            // 24. a run is kept while any source needs it: b's incremental on day 9 belongs
            //     to b's expired first cycle but to a's kept one
            (
                "F@1:a,b I@2:a,b I@3:a,b F@8:a I@9:a,b F@10:b I@11:a,b",
                policy(Some(1), None),
                12,
                "8 9 10 11",
            ),
            // 25. keepFulls counts each source's own cycles: a has weekly fulls, b one full
            (
                "F@1:a,b I@2:a,b F@8:a I@9:a,b F@15:a I@16:a,b",
                policy(Some(2), None),
                17,
                "1 2 8 9 15 16",
            ),
            // 26. maxAge per source: a source backed up rarely keeps its last cycle by the
            //     newest-complete rule even when old
            (
                "F@1:a F@2:b F@40:b F@41:b",
                policy(None, Some("7d")),
                45,
                "1 40 41",
            ),
            // 27. each source's newest complete entry pins a different run
            ("F@1:a,b i@2:a F@3:b", policy(Some(1), None), 4, "1 2 3"),
            // --- GFS ---
            // 28. daily keeps the newest point of each of the newest N days, with its chain
            (
                "F@1 D@2 D@3 D@4",
                gfs(Some(2), None, None, None),
                5,
                "1 3 4",
            ),
            // 29. a kept incremental keeps its whole chain back to its full
            (
                "F@1 I@2 I@3 F@4 I@5",
                gfs(Some(1), None, None, None),
                6,
                "4 5",
            ),
            (
                "F@1 I@2 I@3 I@4",
                gfs(Some(1), None, None, None),
                6,
                "1 2 3 4",
            ),
            // 30. the newest point of a day, not every run of it
            (
                "F@1 F@1.5 F@1.9 F@2",
                gfs(Some(2), None, None, None),
                3,
                "1.9 2",
            ),
            // 31. a complete point is preferred to a newer partial one of the same day
            ("F@1 F@2 f@2.5", gfs(Some(1), None, None, None), 3, "2"),
            // 32. ISO weeks (2026-01-01 is a Thursday: days 0-3 are W01, 4-10 W02, 11-17 W03)
            (
                "F@1 F@2 F@5 F@6 F@12",
                gfs(None, Some(2), None, None),
                13,
                "6 12",
            ),
            // 33. months: days 1 and 20 are January, 35 and 40 February, 70 March
            (
                "F@1 F@20 F@35 F@40 F@70",
                gfs(None, None, Some(2), None),
                71,
                "40 70",
            ),
            // 34. years
            (
                "F@1 F@300 F@400 F@500",
                gfs(None, None, None, Some(1)),
                501,
                "500",
            ),
            (
                "F@1 F@300 F@400 F@500",
                gfs(None, None, None, Some(2)),
                501,
                "300 500",
            ),
            // 35. GFS periods add up: daily 1, weekly 2 (days 35 and 41 are W06 and W07),
            //     monthly 3
            (
                "F@1 F@5 F@12 F@35 F@40 F@41",
                gfs(Some(1), Some(2), Some(3), None),
                42,
                "12 35 41",
            ),
            // 36. GFS with keepFulls: the rules add up
            (
                "F@1 I@2 F@3 I@4 F@33",
                RetentionPolicy {
                    keep_fulls: Some(1),
                    ..gfs(None, None, Some(2), None)
                },
                34,
                "3 4 33",
            ),
            // 37. GFS per source: a source backed up monthly keeps its months
            (
                "F@1:m F@2:d F@3:d F@31:m F@32:d F@33:d",
                gfs(Some(2), None, Some(2), None),
                34,
                "1 3 31 32 33",
            ),
            // 38. periods without a run are not counted (last N periods that have one)
            ("F@1 F@100", gfs(Some(2), None, None, None), 200, "1 100"),
        ];
        for (i, (spec, pol, now, expected)) in cases.iter().enumerate() {
            let (runs, times) = catalog(spec);
            let plan = plan_retention(&runs, pol, day(*now)).unwrap();
            let expected: Vec<String> = expected.split_whitespace().map(String::from).collect();
            assert_eq!(
                kept(&times, &plan),
                expected,
                "case {} ({spec}): {:#?}",
                i + 1,
                plan.decisions
            );
        }
    }

    #[test]
    fn retention_that_keeps_nothing_is_refused() {
        let zero = |f: fn(&mut RetentionPolicy)| {
            let mut p = RetentionPolicy::default();
            f(&mut p);
            p
        };
        for p in [
            policy(Some(0), None),
            policy(Some(0), Some("0d")),
            policy(None, Some("0w")),
            zero(|p| p.keep_daily = Some(0)),
            zero(|p| {
                p.keep_weekly = Some(0);
                p.keep_fulls = Some(0);
            }),
        ] {
            let err = plan_retention(&[], &p, day(0)).unwrap_err();
            assert!(err.to_string().contains("keeps nothing"), "{err}");
        }
        assert!(
            policy(Some(0), Some("30d")).validate().is_ok(),
            "maxAge alone still keeps recent runs"
        );
        assert!(zero(|p| p.keep_yearly = Some(1)).validate().is_ok());
    }

    #[test]
    fn expire_reasons_name_the_source_cycle_and_rule() {
        let (runs, _) = catalog("F@1:db I@2:db F@3:db");
        let plan = plan_retention(&runs, &policy(Some(1), None), day(4)).unwrap();
        let expired: Vec<_> = plan.expired().collect();
        assert_eq!(expired.len(), 2);
        assert!(
            expired[0].1.starts_with("db: cycle of ")
                && expired[0].1.contains("not among the newest 1 full cycles"),
            "{expired:?}"
        );
        assert!(expired[0].1.contains(&runs[0].label));
    }

    #[test]
    fn keep_reasons_list_every_rule_and_source() {
        let (runs, _) = catalog("F@1:a,b F@2:a");
        let p = RetentionPolicy {
            keep_fulls: Some(1),
            keep_daily: Some(1),
            ..RetentionPolicy::default()
        };
        let plan = plan_retention(&runs, &p, day(3)).unwrap();
        let Decision::Keep(why) = &plan.decisions[1].1 else {
            panic!("{plan:?}")
        };
        assert!(
            why.contains("a: ") && why.contains("daily (2026-01-03)"),
            "{why}"
        );
        assert!(why.contains("one of the newest 1 full cycles"), "{why}");
        let Decision::Keep(why) = &plan.decisions[0].1 else {
            panic!("{plan:?}")
        };
        assert!(why.starts_with("b: "), "only b keeps the first run: {why}");
        assert_eq!(plan.entries.len(), 3);
        assert!(
            !plan
                .entries
                .iter()
                .find(|e| e.source == "a" && e.run == runs[0].label)
                .unwrap()
                .keep
        );
    }

    #[test]
    fn describe_lists_the_rules() {
        let p = RetentionPolicy {
            keep_fulls: Some(4),
            max_age: Some(MaxAge::Days(90)),
            keep_weekly: Some(8),
            ..RetentionPolicy::default()
        };
        assert_eq!(p.describe(), "keepFulls 4, maxAge 90d, keepWeekly 8");
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!("90d".parse::<MaxAge>().unwrap(), MaxAge::Days(90));
        assert_eq!("forever".parse::<MaxAge>().unwrap(), MaxAge::Forever);
        assert!("90".parse::<MaxAge>().is_err());
        assert!("3 months".parse::<MaxAge>().is_err());
    }

    /// A random catalog: `(day, level, per source: None = absent, Some(status))`.
    fn arb_catalog() -> impl Strategy<Value = Vec<RunFacts>> {
        let entry = prop_oneof![
            3 => Just(None),
            5 => Just(Some(SourceStatus::Complete)),
            1 => Just(Some(SourceStatus::Partial)),
        ];
        let run = (
            0u8..3,
            proptest::collection::vec(entry, 3),
            any::<bool>(),
            0u8..20,
        );
        proptest::collection::vec(run, 0..30).prop_map(|rows| {
            let mut out = Vec::new();
            let mut last_full: HashMap<usize, String> = HashMap::new();
            let mut last: HashMap<usize, String> = HashMap::new();
            for (n, (lvl, srcs, archived, arch_roll)) in rows.into_iter().enumerate() {
                let started = day(0) + chrono::Duration::hours(7 * n as i64);
                let requested = [Level::Full, Level::Diff, Level::Incr][lvl as usize];
                let label = format!("run-{n:03}");
                let mut sources = Vec::new();
                for (i, st) in srcs.into_iter().enumerate() {
                    let Some(status) = st else { continue };
                    let (level, base_full, parent) = match (requested, last_full.get(&i)) {
                        (Level::Full, _) | (_, None) => (Level::Full, None, None),
                        (l, Some(f)) => (
                            l,
                            Some(f.clone()),
                            if l == Level::Diff {
                                Some(f.clone())
                            } else {
                                last.get(&i).cloned()
                            },
                        ),
                    };
                    if level == Level::Full {
                        last_full.insert(i, label.clone());
                    }
                    last.insert(i, label.clone());
                    sources.push(SourceFacts {
                        name: format!("src{i}"),
                        level,
                        status,
                        parent,
                        base_full,
                    });
                }
                if sources.is_empty() {
                    continue;
                }
                out.push(RunFacts {
                    label,
                    started,
                    archived: archived && arch_roll == 0,
                    sources,
                });
            }
            out
        })
    }

    fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
        let n = proptest::option::of(0u32..4);
        let age = proptest::option::of(prop_oneof![
            (0u32..10).prop_map(MaxAge::Days),
            (0u32..3).prop_map(MaxAge::Weeks),
            (0u32..2).prop_map(MaxAge::Months),
        ]);
        (n.clone(), age, n.clone(), n.clone(), n.clone(), n).prop_map(
            |(keep_fulls, max_age, keep_daily, keep_weekly, keep_monthly, keep_yearly)| {
                RetentionPolicy {
                    keep_fulls,
                    max_age,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                    keep_yearly,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No policy leaves a source that had a complete run without one (or, for a source
        /// that only had partial runs, without its newest partial one); archived runs always
        /// survive; and an entry kept for its own sake keeps its full.
        #[test]
        fn no_policy_leaves_a_source_without_a_restore_point(
            runs in arb_catalog(),
            policy in arb_policy(),
            now_h in 0i64..400,
        ) {
            let now = day(0) + chrono::Duration::hours(now_h);
            let Ok(plan) = plan_retention(&runs, &policy, now) else {
                prop_assert!(policy.validate().is_err());
                return Ok(());
            };
            let kept: HashSet<&str> = plan
                .decisions
                .iter()
                .filter(|(_, d)| d.is_keep())
                .map(|(l, _)| l.as_str())
                .collect();
            let mut names: Vec<&str> = runs.iter().flat_map(|r| r.sources.iter().map(|s| s.name.as_str())).collect();
            names.sort();
            names.dedup();
            for name in names {
                let has = |status: Option<SourceStatus>, only_kept: bool| {
                    runs.iter().any(|r| {
                        (!only_kept || kept.contains(r.label.as_str()))
                            && r.sources.iter().any(|s| s.name == name && status.is_none_or(|st| s.status == st))
                    })
                };
                if has(Some(SourceStatus::Complete), false) {
                    prop_assert!(has(Some(SourceStatus::Complete), true), "{name} lost its last complete run: {plan:#?}");
                } else {
                    prop_assert!(has(None, true), "{name} lost its last restore point: {plan:#?}");
                }
            }
            for r in runs.iter().filter(|r| r.archived) {
                prop_assert!(kept.contains(r.label.as_str()));
            }
            for e in plan.entries.iter().filter(|e| e.keep) {
                let run = runs.iter().find(|r| r.label == e.run).unwrap();
                let f = run.sources.iter().find(|s| s.name == e.source).unwrap();
                if let Some(base) = &f.base_full {
                    prop_assert!(kept.contains(base.as_str()), "{} of {} kept without its full {base}", e.source, e.run);
                }
            }
        }
    }
}
