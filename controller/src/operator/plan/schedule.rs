//! When operations are due: cron entries read in the Schedule's IANA time zone, slots found
//! in real time (a DST gap runs a fixed-time entry right after the gap, a repeated hour runs
//! it once: croner follows Vixie cron and the Open Cron Pattern Specification), missed slots
//! skipped and counted or caught up once, a stable per-set jitter. Pure: every function is a
//! function of its inputs and `now`.

use std::collections::BTreeMap;
use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use holdfast_engine::format::run::Level;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::api::schedule::{MissedRunPolicy, ScheduleMode, ScheduleSpec, VerifyDepth};

/// At most this many past slots are looked at when catching up after downtime; older ones
/// are counted as missed by estimate.
const MAX_SLOTS_SCANNED: usize = 2000;

/// A parsed cron entry.
#[derive(Debug, Clone)]
pub struct CronEntry {
    pub pattern: String,
    cron: Cron,
}

impl CronEntry {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        // Five fields; `5/5` means `5-59/5`, as Vixie cron reads it (the CRD allows it).
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .sloppy_ranges(true)
            .build();
        let cron = parser
            .parse(pattern)
            .map_err(|e| format!("invalid cron entry {pattern:?}: {e}"))?;
        Ok(CronEntry {
            pattern: pattern.to_owned(),
            cron,
        })
    }

    /// The first occurrence strictly after `after`, in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let zoned = after.to_zoned(tz.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// A duration like `90s`, `30m`, `12h`, `7d` or `2w` (the CRDs' pattern).
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 90s, 30m, 12h, 7d or 2w");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 604_800,
        _ => return Err(bad()),
    };
    Ok(SignedDuration::from_secs(secs))
}

/// How levels are chosen.
#[derive(Debug, Clone)]
pub enum Levels {
    /// A cron entry per level (full, then diff, then incr, those given); at a slot matched
    /// by several, the lowest level wins.
    PerLevel(Vec<(CronEntry, Level)>),
    /// One entry; each source's level is planned (see `auto`).
    Auto {
        run: Box<CronEntry>,
        cycle: SignedDuration,
    },
}

/// A Schedule that passed validation.
#[derive(Debug, Clone)]
pub struct ValidSchedule {
    pub tz: TimeZone,
    pub tz_name: String,
    pub levels: Levels,
    pub purge: Option<CronEntry>,
    pub verify: Option<(CronEntry, VerifyDepth, Option<u32>)>,
    pub starting_deadline: Option<SignedDuration>,
    pub missed: MissedRunPolicy,
    pub jitter: Option<SignedDuration>,
}

/// Validate a Schedule: every cron entry and duration parses, the time zone exists.
pub fn validate(spec: &ScheduleSpec) -> Result<ValidSchedule, String> {
    let tz = TimeZone::get(&spec.time_zone).map_err(|_| {
        format!(
            "unknown time zone {:?}: use an IANA name such as Europe/Paris or UTC",
            spec.time_zone
        )
    })?;
    let entry = |e: &Option<String>| e.as_deref().map(CronEntry::parse).transpose();
    let levels = match spec.mode {
        ScheduleMode::Levels => {
            let full = entry(&spec.full)?.ok_or("mode Levels needs a full cron entry")?;
            let mut entries = vec![(full, Level::Full)];
            if let Some(d) = entry(&spec.differential)? {
                entries.push((d, Level::Diff));
            }
            if let Some(i) = entry(&spec.incremental)? {
                entries.push((i, Level::Incr));
            }
            Levels::PerLevel(entries)
        }
        ScheduleMode::Auto => {
            let run = entry(&spec.run)?.ok_or("mode Auto needs run and cycle")?;
            let cycle = parse_duration(spec.cycle.as_deref().ok_or("mode Auto needs a cycle")?)?;
            if cycle <= SignedDuration::ZERO {
                return Err("the Auto cycle must be longer than zero".into());
            }
            Levels::Auto {
                run: Box::new(run),
                cycle,
            }
        }
    };
    let verify = match &spec.verify {
        Some(v) => Some((CronEntry::parse(&v.cron)?, v.depth, v.sample_percent)),
        None => None,
    };
    Ok(ValidSchedule {
        tz,
        tz_name: spec.time_zone.clone(),
        levels,
        purge: entry(&spec.purge)?,
        verify,
        starting_deadline: spec
            .starting_deadline
            .as_deref()
            .map(parse_duration)
            .transpose()?,
        missed: spec.missed_runs,
        jitter: spec.jitter.as_deref().map(parse_duration).transpose()?,
    })
}

/// A stable delay for one set within `jitter`: FNV-1a of its `namespace/name`, so many sets
/// on one Schedule spread out and each keeps its own offset across restarts.
pub fn jitter_offset(key: &str, jitter: Option<SignedDuration>) -> SignedDuration {
    let Some(j) = jitter.filter(|j| j.as_secs() > 0) else {
        return SignedDuration::ZERO;
    };
    let h = crate::operator::names::fnv1a(key);
    SignedDuration::from_secs((h % j.as_secs().unsigned_abs()) as i64)
}

/// The next slot of any of `entries` after `after`, with the entries that fire at it.
fn next_slot(
    entries: &[&CronEntry],
    after: Timestamp,
    tz: &TimeZone,
) -> Option<(Timestamp, Vec<usize>)> {
    let times: Vec<Option<Timestamp>> = entries.iter().map(|e| e.next_after(after, tz)).collect();
    let first = times.iter().flatten().min().copied()?;
    let which = times
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Some(first))
        .map(|(i, _)| i)
        .collect();
    Some((first, which))
}

/// What is due for one kind of operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDecision {
    /// The slot to run now, with the indexes of the entries that fire at it.
    pub due: Option<(Timestamp, Vec<usize>)>,
    /// Slots passed over (missed) in this decision.
    pub missed: u64,
    /// The newest slot that has passed, whether run or missed: what `last` becomes.
    pub passed: Option<Timestamp>,
    /// When the next slot is due (jitter included).
    pub next: Option<(Timestamp, Vec<usize>)>,
}

/// The slots of one operation: its cron entries and how lateness is handled.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub entries: &'a [&'a CronEntry],
    pub tz: &'a TimeZone,
    /// The set's jitter: a slot is due at its time plus this.
    pub offset: SignedDuration,
    /// A slot later than this is missed.
    pub deadline: Option<SignedDuration>,
    pub policy: MissedRunPolicy,
}

/// Decide for one operation. `last` is the newest slot already acted on (run or skipped);
/// with none, slots count from `since` (the set's creation: applying a set never fires a
/// backup by itself).
pub fn decide(
    w: &Window<'_>,
    last: Option<Timestamp>,
    since: Timestamp,
    now: Timestamp,
) -> SlotDecision {
    let (entries, tz, offset, deadline, policy) = (w.entries, w.tz, w.offset, w.deadline, w.policy);
    let mut cursor = last.unwrap_or(since);
    let mut passed: Vec<(Timestamp, Vec<usize>)> = Vec::new();
    let mut overflow = 0u64;
    let next = loop {
        let Some((slot, which)) = next_slot(entries, cursor, tz) else {
            break None;
        };
        if slot + offset > now {
            break Some((slot + offset, which));
        }
        if passed.len() == MAX_SLOTS_SCANNED {
            passed.remove(0);
            overflow += 1;
        }
        passed.push((slot, which));
        cursor = slot;
    };
    let Some((latest, which)) = passed.last().cloned() else {
        return SlotDecision {
            due: None,
            missed: 0,
            passed: None,
            next,
        };
    };
    let earlier = passed.len() as u64 - 1 + overflow;
    let late = now.duration_since(latest + offset);
    let in_time = deadline.is_none_or(|d| late <= d);
    let run_latest = in_time || policy == MissedRunPolicy::CatchUpOnce;
    SlotDecision {
        due: run_latest.then_some((latest, which)),
        missed: earlier + u64::from(!run_latest),
        passed: Some(latest),
        next,
    }
}

/// The level of a slot: the lowest level among the entries firing at it (`levels[i]` is
/// entry `i`'s level).
pub fn level_at(levels: &[Level], which: &[usize]) -> Level {
    which
        .iter()
        .filter_map(|i| levels.get(*i).copied())
        .min()
        .unwrap_or(Level::Incr)
}

/// The backup entries of a schedule in level order, with the level each stands for.
pub fn backup_entries(s: &ValidSchedule) -> Vec<(&CronEntry, Level)> {
    match &s.levels {
        Levels::PerLevel(entries) => entries.iter().map(|(e, l)| (e, *l)).collect(),
        Levels::Auto { run, .. } => vec![(run.as_ref(), Level::Incr)],
    }
}

/// The next `n` backup slots from `now`, with their levels (Auto: `Incr` stands for "per
/// source").
pub fn upcoming(s: &ValidSchedule, now: Timestamp, n: usize) -> Vec<(Timestamp, Level)> {
    let entries = backup_entries(s);
    let crons: Vec<&CronEntry> = entries.iter().map(|(e, _)| *e).collect();
    let mut out = Vec::new();
    let mut cursor = now;
    while out.len() < n {
        let Some((t, which)) = next_slot(&crons, cursor, &s.tz) else {
            break;
        };
        let level = which
            .iter()
            .map(|i| entries[*i].1)
            .min()
            .unwrap_or(Level::Incr);
        out.push((t, level));
        cursor = t;
    }
    out
}

/// The longest wait between two backups over the next weeks, what a "no successful backup
/// for too long" alert measures against; `None` without backup entries. Looks at the gaps
/// between the next 400 slots (more than a year of daily runs; a weekly or monthly
/// schedule's longest gap shows within that too).
pub fn longest_gap(s: &ValidSchedule, now: Timestamp) -> Option<SignedDuration> {
    let slots = upcoming(s, now, 400);
    slots
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .max()
}

/// Occurrences of `entry` in `[from, from + span)`: how many runs one Auto cycle holds.
pub fn occurrences_within(
    entry: &CronEntry,
    tz: &TimeZone,
    from: Timestamp,
    span: SignedDuration,
) -> u32 {
    let end = from + span;
    let mut n = 0;
    let mut cursor = from - SignedDuration::from_secs(1);
    while let Some(t) = entry.next_after(cursor, tz) {
        if t >= end || n >= 10_000 {
            break;
        }
        n += 1;
        cursor = t;
    }
    n.max(1)
}

/// Validated levels as a map, for Auto sources.
pub type SourceLevels = BTreeMap<String, Level>;

impl FromStr for CronEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CronEntry::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn e(p: &str) -> CronEntry {
        CronEntry::parse(p).unwrap()
    }

    #[test]
    fn cron_entries_in_time_zones_and_across_dst() {
        // (pattern, zone, after, expected next)
        let cases = [
            // Plain UTC.
            (
                "0 1 * * *",
                "UTC",
                "2026-12-01T00:00:00Z",
                "2026-12-01T01:00:00Z",
            ),
            (
                "0 1 * * *",
                "UTC",
                "2026-12-01T01:00:00Z",
                "2026-12-02T01:00:00Z",
            ),
            // 01:00 in Paris is 00:00 UTC in winter.
            (
                "0 1 * * *",
                "Europe/Paris",
                "2026-12-01T00:30:00Z",
                "2026-12-02T00:00:00Z",
            ),
            // Spring forward: 02:30 does not exist on 2026-03-29 in Paris; a fixed-time entry
            // runs right after the gap (03:00 CEST = 01:00 UTC), once.
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ),
            // Fall back: 02:30 happens twice on 2026-10-25 in Paris; it runs once, at the
            // first (CEST, 00:30 UTC).
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-10-24T12:00:00Z",
                "2026-10-25T00:30:00Z",
            ),
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ),
            // Weekday names and macros.
            (
                "0 1 * * SAT",
                "UTC",
                "2026-12-01T00:00:00Z",
                "2026-12-05T01:00:00Z",
            ),
            (
                "@daily",
                "UTC",
                "2026-12-01T00:00:01Z",
                "2026-12-02T00:00:00Z",
            ),
            // Vixie step shorthand: 5/20 is 5-59/20.
            (
                "5/20 * * * *",
                "UTC",
                "2026-12-01T00:06:00Z",
                "2026-12-01T00:25:00Z",
            ),
            // New York, other hemisphere of offsets.
            (
                "0 23 * * *",
                "America/New_York",
                "2026-12-01T00:00:00Z",
                "2026-12-01T04:00:00Z",
            ),
        ];
        for (p, z, after, want) in cases {
            assert_eq!(
                e(p).next_after(ts(after), &tz(z)),
                Some(ts(want)),
                "{p} in {z} after {after}"
            );
        }
        assert!(CronEntry::parse("61 * * * *").is_err());
        assert!(CronEntry::parse("* * * *").is_err());
    }

    #[test]
    fn slot_decisions() {
        let daily = e("0 1 * * *");
        let utc = tz("UTC");
        let hour = SignedDuration::from_hours(1);
        // (last, since, now, offset, deadline, policy, expected due, missed, next)
        struct Case {
            what: &'static str,
            last: Option<&'static str>,
            now: &'static str,
            offset: SignedDuration,
            deadline: Option<SignedDuration>,
            policy: MissedRunPolicy,
            due: Option<&'static str>,
            missed: u64,
            next: &'static str,
        }
        let since = "2026-11-30T12:00:00Z";
        let cases = [
            Case {
                what: "created after today's slot: nothing is due (applying never fires)",
                last: None,
                now: "2026-11-30T13:00:00Z",
                offset: SignedDuration::ZERO,
                deadline: None,
                policy: MissedRunPolicy::Skip,
                due: None,
                missed: 0,
                next: "2026-12-01T01:00:00Z",
            },
            Case {
                what: "the first slot after creation is due",
                last: None,
                now: "2026-12-01T01:00:30Z",
                offset: SignedDuration::ZERO,
                deadline: Some(hour),
                policy: MissedRunPolicy::Skip,
                due: Some("2026-12-01T01:00:00Z"),
                missed: 0,
                next: "2026-12-02T01:00:00Z",
            },
            Case {
                what: "a slot already acted on is not due again",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-01T01:05:00Z",
                offset: SignedDuration::ZERO,
                deadline: Some(hour),
                policy: MissedRunPolicy::Skip,
                due: None,
                missed: 0,
                next: "2026-12-02T01:00:00Z",
            },
            Case {
                what: "jitter delays the due time, not the slot",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-02T01:10:00Z",
                offset: SignedDuration::from_mins(15),
                deadline: Some(hour),
                policy: MissedRunPolicy::Skip,
                due: None,
                missed: 0,
                next: "2026-12-02T01:15:00Z",
            },
            Case {
                what: "after the jitter, the slot is due",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-02T01:16:00Z",
                offset: SignedDuration::from_mins(15),
                deadline: Some(hour),
                policy: MissedRunPolicy::Skip,
                due: Some("2026-12-02T01:00:00Z"),
                missed: 0,
                next: "2026-12-03T01:15:00Z",
            },
            Case {
                what: "down three days: two slots missed, the newest runs within its deadline",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-04T01:30:00Z",
                offset: SignedDuration::ZERO,
                deadline: Some(hour),
                policy: MissedRunPolicy::Skip,
                due: Some("2026-12-04T01:00:00Z"),
                missed: 2,
                next: "2026-12-05T01:00:00Z",
            },
            Case {
                what: "past the deadline with Skip: all missed, wait for the next",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-04T03:00:00Z",
                offset: SignedDuration::ZERO,
                deadline: Some(hour),
                policy: MissedRunPolicy::Skip,
                due: None,
                missed: 3,
                next: "2026-12-05T01:00:00Z",
            },
            Case {
                what: "past the deadline with CatchUpOnce: the newest runs once",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-04T03:00:00Z",
                offset: SignedDuration::ZERO,
                deadline: Some(hour),
                policy: MissedRunPolicy::CatchUpOnce,
                due: Some("2026-12-04T01:00:00Z"),
                missed: 2,
                next: "2026-12-05T01:00:00Z",
            },
            Case {
                what: "no deadline: a late slot still runs",
                last: Some("2026-12-01T01:00:00Z"),
                now: "2026-12-02T20:00:00Z",
                offset: SignedDuration::ZERO,
                deadline: None,
                policy: MissedRunPolicy::Skip,
                due: Some("2026-12-02T01:00:00Z"),
                missed: 0,
                next: "2026-12-03T01:00:00Z",
            },
        ];
        for c in cases {
            let w = Window {
                entries: &[&daily],
                tz: &utc,
                offset: c.offset,
                deadline: c.deadline,
                policy: c.policy,
            };
            let d = decide(&w, c.last.map(ts), ts(since), ts(c.now));
            assert_eq!(d.due.map(|(t, _)| t), c.due.map(ts), "{}", c.what);
            assert_eq!(d.missed, c.missed, "{}", c.what);
            assert_eq!(d.next.map(|(t, _)| t), Some(ts(c.next)), "{}", c.what);
        }
    }

    #[test]
    fn a_slot_matched_by_several_levels_runs_at_the_lowest() {
        let full = e("0 1 * * 6");
        let incr = e("0 1 * * *");
        let utc = tz("UTC");
        let entries = [&full, &incr];
        let w = Window {
            entries: &entries,
            tz: &utc,
            offset: SignedDuration::ZERO,
            deadline: None,
            policy: MissedRunPolicy::Skip,
        };
        let since = ts("2026-11-01T00:00:00Z");
        let d = decide(
            &w,
            Some(ts("2026-12-04T01:00:00Z")),
            since,
            ts("2026-12-05T01:00:10Z"),
        );
        let (slot, which) = d.due.unwrap();
        assert_eq!(slot, ts("2026-12-05T01:00:00Z"), "a Saturday");
        let levels = [Level::Full, Level::Incr];
        assert_eq!(level_at(&levels, &which), Level::Full);
        let d = decide(
            &w,
            Some(ts("2026-12-05T01:00:00Z")),
            since,
            ts("2026-12-06T01:00:10Z"),
        );
        assert_eq!(level_at(&levels, &d.due.unwrap().1), Level::Incr);
    }

    #[test]
    fn the_spring_forward_gap_runs_once_and_the_repeated_hour_once() {
        // Every night at 02:30 Paris time across both transitions: one slot per night.
        let entry = e("30 2 * * *");
        let paris = tz("Europe/Paris");
        let mut slots = Vec::new();
        let mut cursor = ts("2026-03-27T12:00:00Z");
        for _ in 0..4 {
            cursor = entry.next_after(cursor, &paris).unwrap();
            slots.push(cursor);
        }
        let days: Vec<i16> = slots
            .iter()
            .map(|t| t.to_zoned(paris.clone()).day().into())
            .collect();
        assert_eq!(
            days,
            [28, 29, 30, 31],
            "one slot per day, none doubled or lost"
        );
        let mut cursor = ts("2026-10-23T12:00:00Z");
        let mut days = Vec::new();
        for _ in 0..4 {
            cursor = entry.next_after(cursor, &paris).unwrap();
            days.push(i16::from(cursor.to_zoned(paris.clone()).day()));
        }
        assert_eq!(days, [24, 25, 26, 27]);
    }

    #[test]
    fn jitter_is_stable_per_set_and_within_bounds() {
        let j = Some(SignedDuration::from_mins(30));
        let a = jitter_offset("shop/shop", j);
        assert_eq!(a, jitter_offset("shop/shop", j), "stable");
        assert!(a < SignedDuration::from_mins(30) && a >= SignedDuration::ZERO);
        let offsets: std::collections::BTreeSet<i64> = (0..50)
            .map(|i| jitter_offset(&format!("ns/set-{i}"), j).as_secs())
            .collect();
        assert!(offsets.len() > 30, "sets spread out: {offsets:?}");
        assert_eq!(jitter_offset("x", None), SignedDuration::ZERO);
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let spec = |f: fn(&mut ScheduleSpec)| {
            let mut s = ScheduleSpec {
                time_zone: "UTC".into(),
                full: Some("0 1 * * 6".into()),
                ..ScheduleSpec::default()
            };
            f(&mut s);
            validate(&s)
        };
        assert!(spec(|_| {}).is_ok());
        assert!(
            spec(|s| s.time_zone = "Mars/Olympus".into())
                .unwrap_err()
                .contains("unknown time zone")
        );
        assert!(
            spec(|s| s.starting_deadline = Some("soon".into()))
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(
            spec(|s| {
                s.mode = ScheduleMode::Auto;
                s.run = Some("0 1 * * *".into());
                s.cycle = Some("7d".into());
            })
            .is_ok()
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            SignedDuration::from_hours(336)
        );
    }

    #[test]
    fn longest_gap_between_backups() {
        // (time zone, full, incremental, longest gap in hours)
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<i64>);
        let cases: &[Case] = &[
            ("UTC", Some("0 1 * * *"), None, Some(24)),
            ("UTC", Some("0 1 * * 6"), Some("0 1 * * 0-4"), Some(48)),
            ("UTC", Some("0 */6 * * *"), None, Some(6)),
            ("UTC", Some("0 3 1 * *"), None, Some(31 * 24)),
            // A DST change makes one gap 25 hours.
            ("Europe/Paris", Some("30 2 * * *"), None, Some(25)),
        ];
        for (zone, full, incr, want) in cases {
            let s = validate(&ScheduleSpec {
                time_zone: (*zone).into(),
                full: full.map(Into::into),
                incremental: incr.map(Into::into),
                ..ScheduleSpec::default()
            })
            .unwrap();
            let got = longest_gap(&s, ts("2026-12-03T12:00:00Z")).map(|d| d.as_hours());
            assert_eq!(got, *want, "{zone} {full:?} {incr:?}");
        }
    }

    #[test]
    fn upcoming_slots_and_cycle_lengths() {
        let s = validate(&ScheduleSpec {
            time_zone: "UTC".into(),
            full: Some("0 1 * * 6".into()),
            incremental: Some("0 1 * * 0-5".into()),
            ..ScheduleSpec::default()
        })
        .unwrap();
        let up = upcoming(&s, ts("2026-12-03T12:00:00Z"), 3);
        assert_eq!(
            up,
            vec![
                (ts("2026-12-04T01:00:00Z"), Level::Incr),
                (ts("2026-12-05T01:00:00Z"), Level::Full),
                (ts("2026-12-06T01:00:00Z"), Level::Incr),
            ]
        );
        assert_eq!(
            occurrences_within(
                &e("0 1 * * *"),
                &tz("UTC"),
                ts("2026-12-01T00:00:00Z"),
                SignedDuration::from_hours(168)
            ),
            7
        );
    }
}
