//! What a BackupSet should start now: scheduled backups (per-level cron or Auto), purges and
//! verifications, a manual run token, the `runOnCreate` backup; what was missed; when to
//! look again. A pure function of the set's spec, its bookkeeping in status, and `now`.

use crate::operation::OperationKind;
use std::collections::BTreeMap;

use holdfast_engine::format::run::Level;
use jiff::{SignedDuration, Timestamp};

use super::auto::{SourceHistory, plan_auto};
use super::schedule::{
    CronEntry, Levels, ValidSchedule, Window, backup_entries, decide, jitter_offset, level_at,
    occurrences_within,
};

/// An operation a set runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    Backup,
    Purge,
    Verify,
}

impl OpKind {
    pub fn kind(self) -> OperationKind {
        match self {
            OpKind::Backup => OperationKind::Backup,
            OpKind::Purge => OperationKind::Purge,
            OpKind::Verify => OperationKind::Verify,
        }
    }

    pub fn name(self) -> &'static str {
        self.kind().as_str()
    }
}

/// Why an operation starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Scheduled,
    /// A new `manualRun.token`.
    Manual(String),
    /// `runOnCreate`.
    OnCreate,
}

/// An operation to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub kind: OpKind,
    /// The slot: the run's label time and part of its Job's name.
    pub slot: Timestamp,
    /// The requested level (backups), and per-source levels in Auto mode.
    pub level: Level,
    pub source_levels: BTreeMap<String, Level>,
    pub reason: Reason,
}

/// The scheduler's memory, kept in status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timing {
    pub backup: Option<Timestamp>,
    pub purge: Option<Timestamp>,
    pub verify: Option<Timestamp>,
    pub manual_token: Option<String>,
    pub run_on_create_done: bool,
}

/// Everything the planner looks at.
#[derive(Debug, Clone)]
pub struct SetInput<'a> {
    /// `namespace/name`: the jitter's seed.
    pub key: &'a str,
    pub created: Timestamp,
    pub now: Timestamp,
    pub schedule: Option<&'a ValidSchedule>,
    pub suspended: bool,
    pub run_on_create: bool,
    /// `manualRun`: token and level.
    pub manual: Option<(&'a str, Level)>,
    pub timing: &'a Timing,
    /// For Auto mode.
    pub sources: &'a [SourceHistory],
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPlan {
    pub start: Vec<Start>,
    /// The bookkeeping after this decision.
    pub timing: Timing,
    /// Slots missed in this decision.
    pub missed: u64,
    /// When to reconcile again for the schedule.
    pub wake: Option<Timestamp>,
    /// The next backup and its level.
    pub next_backup: Option<(Timestamp, Level)>,
}

/// Plan a set.
pub fn plan_set(input: &SetInput<'_>) -> SetPlan {
    let mut plan = SetPlan {
        start: Vec::new(),
        timing: input.timing.clone(),
        missed: 0,
        wake: None,
        next_backup: None,
    };
    requested(input, &mut plan);
    let Some(schedule) = input.schedule else {
        return plan;
    };
    let offset = jitter_offset(input.key, schedule.jitter);
    scheduled_backup(input, schedule, offset, &mut plan);
    scheduled_maintenance(input, schedule, offset, &mut plan);
    plan
}

/// Explicit requests first: a new manual token runs even while suspended (it is asked for
/// by name), each token value once; `runOnCreate` once, unless suspended.
fn requested(input: &SetInput<'_>, plan: &mut SetPlan) {
    if let Some((token, level)) = input.manual
        && input.timing.manual_token.as_deref() != Some(token)
    {
        plan.start.push(Start {
            kind: OpKind::Backup,
            slot: input.now,
            level,
            source_levels: BTreeMap::new(),
            reason: Reason::Manual(token.to_owned()),
        });
        plan.timing.manual_token = Some(token.to_owned());
    }
    if input.run_on_create && !input.timing.run_on_create_done && !input.suspended {
        plan.start.push(Start {
            kind: OpKind::Backup,
            slot: input.created,
            level: Level::Full,
            source_levels: BTreeMap::new(),
            reason: Reason::OnCreate,
        });
        plan.timing.run_on_create_done = true;
    }
}

/// The schedule's backup window: the slot that passed, the next one, and the backup due
/// now with its level (or, in `Auto` mode, each source's).
fn scheduled_backup(
    input: &SetInput<'_>,
    schedule: &ValidSchedule,
    offset: SignedDuration,
    plan: &mut SetPlan,
) {
    let entries = backup_entries(schedule);
    let crons: Vec<&CronEntry> = entries.iter().map(|(e, _)| *e).collect();
    let levels: Vec<Level> = entries.iter().map(|(_, l)| *l).collect();
    let d = decide(
        &window(&crons, schedule, offset),
        input.timing.backup,
        input.created,
        input.now,
    );
    plan.timing.backup = d.passed.or(input.timing.backup);
    plan.next_backup = d
        .next
        .as_ref()
        .map(|(t, which)| (*t, level_at(&levels, which)));
    wake(&mut plan.wake, d.next.as_ref().map(|(t, _)| *t));
    if input.suspended {
        return;
    }
    plan.missed += d.missed;
    if let Some((slot, which)) = d.due {
        let (level, source_levels) = match &schedule.levels {
            Levels::PerLevel(_) => (level_at(&levels, &which), BTreeMap::new()),
            Levels::Auto { run, cycle } => {
                let next = run.next_after(slot, &schedule.tz);
                let per_cycle = occurrences_within(run, &schedule.tz, slot, *cycle);
                let per_source = plan_auto(input.sources, slot, next, *cycle, per_cycle);
                (Level::Incr, per_source)
            }
        };
        plan.start.push(Start {
            kind: OpKind::Backup,
            slot,
            level,
            source_levels,
            reason: Reason::Scheduled,
        });
    }
}

/// The purge and verify windows: each one's passed slot, next wake-up, and run due now.
fn scheduled_maintenance(
    input: &SetInput<'_>,
    schedule: &ValidSchedule,
    offset: SignedDuration,
    plan: &mut SetPlan,
) {
    let maintenance = [
        (OpKind::Purge, schedule.purge.as_ref(), input.timing.purge),
        (
            OpKind::Verify,
            schedule.verify.as_ref().map(|(e, _, _)| e),
            input.timing.verify,
        ),
    ];
    for (kind, entry, last) in maintenance {
        let Some(entry) = entry else { continue };
        let one = [entry];
        let d = decide(
            &window(&one, schedule, offset),
            last,
            input.created,
            input.now,
        );
        let passed = d.passed.or(last);
        match kind {
            OpKind::Purge => plan.timing.purge = passed,
            _ => plan.timing.verify = passed,
        }
        wake(&mut plan.wake, d.next.as_ref().map(|(t, _)| *t));
        if !input.suspended
            && let Some((slot, _)) = d.due
        {
            plan.start.push(Start {
                kind,
                slot,
                level: Level::Full,
                source_levels: BTreeMap::new(),
                reason: Reason::Scheduled,
            });
        }
    }
}

fn window<'a>(
    entries: &'a [&'a CronEntry],
    schedule: &'a ValidSchedule,
    offset: SignedDuration,
) -> Window<'a> {
    Window {
        entries,
        tz: &schedule.tz,
        offset,
        deadline: schedule.starting_deadline,
        policy: schedule.missed,
    }
}

fn wake(current: &mut Option<Timestamp>, candidate: Option<Timestamp>) {
    if let Some(c) = candidate {
        *current = Some(current.map_or(c, |w| w.min(c)));
    }
}

/// A purge to start now because someone approved a braked one: the first of `pending` (the
/// plans waiting, the set's and its copies') that `approved` names. Named by its plan, so
/// it starts once however often the set is reconciled.
pub fn approved_purge(pending: &[&str], approved: &[String], now: Timestamp) -> Option<Start> {
    let plan = pending.iter().find(|p| approved.iter().any(|a| a == *p))?;
    Some(Start {
        kind: OpKind::Purge,
        slot: now,
        level: Level::Full,
        source_levels: BTreeMap::new(),
        reason: Reason::Manual(format!("approve-purge {plan}")),
    })
}

/// How long until `t`, at least a second (a requeue must move forward).
pub fn until(now: Timestamp, t: Timestamp) -> std::time::Duration {
    let d = t.duration_since(now).max(SignedDuration::from_secs(1));
    std::time::Duration::from_secs(d.as_secs().unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::schedule::{MissedRunPolicy, ScheduleMode, ScheduleSpec, VerifyWindow};
    use crate::operator::plan::schedule::validate;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn levels_schedule(f: fn(&mut ScheduleSpec)) -> ValidSchedule {
        let mut s = ScheduleSpec {
            time_zone: "UTC".into(),
            full: Some("0 1 * * 6".into()),
            incremental: Some("0 1 * * 0-5".into()),
            purge: Some("0 0 * * *".into()),
            verify: Some(VerifyWindow {
                cron: "0 3 * * 0".into(),
                depth: Default::default(),
                sample_percent: None,
            }),
            starting_deadline: Some("1h".into()),
            ..ScheduleSpec::default()
        };
        f(&mut s);
        validate(&s).unwrap()
    }

    struct Case<'a> {
        what: &'a str,
        schedule: Option<ValidSchedule>,
        suspended: bool,
        run_on_create: bool,
        manual: Option<(&'a str, Level)>,
        timing: Timing,
        now: &'a str,
        /// (kind, slot, level) of each start.
        start: Vec<(OpKind, &'a str, Level)>,
        missed: u64,
    }

    fn base<'a>(what: &'a str, now: &'a str) -> Case<'a> {
        Case {
            what,
            schedule: Some(levels_schedule(|_| {})),
            suspended: false,
            run_on_create: false,
            manual: None,
            timing: Timing {
                backup: Some(ts("2026-12-01T01:00:00Z")),
                purge: Some(ts("2026-12-01T00:00:00Z")),
                verify: Some(ts("2026-11-29T03:00:00Z")),
                ..Timing::default()
            },
            now,
            start: vec![],
            missed: 0,
        }
    }

    #[test]
    fn an_approval_starts_a_purge_only_for_a_plan_that_waits() {
        let now = ts("2026-12-07T12:00:00Z");
        let approved = vec!["aaaa".to_owned(), "bbbb".to_owned()];
        assert_eq!(approved_purge(&[], &approved, now), None, "nothing waits");
        assert_eq!(
            approved_purge(&["cccc"], &approved, now),
            None,
            "another plan waits"
        );
        let start = approved_purge(&["cccc", "bbbb"], &approved, now).unwrap();
        assert_eq!(start.kind, OpKind::Purge);
        assert_eq!(start.reason, Reason::Manual("approve-purge bbbb".into()));
    }

    #[test]
    fn set_plan_table() {
        let created = ts("2026-11-30T12:00:00Z");
        let cases = vec![
            Case {
                start: vec![(OpKind::Backup, "2026-12-02T01:00:00Z", Level::Incr)],
                ..base("a weekday slot is an incremental", "2026-12-02T01:00:05Z")
            },
            Case {
                start: vec![(OpKind::Backup, "2026-12-05T01:00:00Z", Level::Full)],
                timing: Timing {
                    backup: Some(ts("2026-12-04T01:00:00Z")),
                    purge: Some(ts("2026-12-05T00:00:00Z")),
                    verify: Some(ts("2026-11-29T03:00:00Z")),
                    ..Timing::default()
                },
                ..base("Saturday is a full", "2026-12-05T01:00:05Z")
            },
            Case {
                start: vec![(OpKind::Purge, "2026-12-02T00:00:00Z", Level::Full)],
                ..base("the purge window", "2026-12-02T00:00:05Z")
            },
            Case {
                start: vec![
                    (OpKind::Backup, "2026-12-06T01:00:00Z", Level::Incr),
                    (OpKind::Purge, "2026-12-06T00:00:00Z", Level::Full),
                    (OpKind::Verify, "2026-12-06T03:00:00Z", Level::Full),
                ],
                timing: Timing {
                    backup: Some(ts("2026-12-05T01:00:00Z")),
                    purge: Some(ts("2026-12-05T00:00:00Z")),
                    verify: Some(ts("2026-11-29T03:00:00Z")),
                    ..Timing::default()
                },
                schedule: Some(levels_schedule(|s| s.starting_deadline = None)),
                ..base(
                    "backup, purge and verify all due (Sunday)",
                    "2026-12-06T03:00:05Z",
                )
            },
            Case {
                start: vec![],
                suspended: true,
                ..base("suspended: nothing scheduled runs", "2026-12-02T01:00:05Z")
            },
            Case {
                start: vec![(OpKind::Backup, "2026-12-02T01:00:05Z", Level::Full)],
                suspended: true,
                manual: Some(("before-upgrade", Level::Full)),
                ..base(
                    "suspended: a new manual token still runs",
                    "2026-12-02T01:00:05Z",
                )
            },
            Case {
                start: vec![(OpKind::Backup, "2026-12-01T12:00:00Z", Level::Incr)],
                manual: Some(("t1", Level::Incr)),
                ..base("a new manual token runs at once", "2026-12-01T12:00:00Z")
            },
            Case {
                start: vec![],
                manual: Some(("t1", Level::Incr)),
                timing: Timing {
                    backup: Some(ts("2026-12-01T01:00:00Z")),
                    purge: Some(ts("2026-12-01T00:00:00Z")),
                    verify: Some(ts("2026-11-29T03:00:00Z")),
                    manual_token: Some("t1".into()),
                    ..Timing::default()
                },
                ..base(
                    "re-applying the same token does nothing",
                    "2026-12-01T12:00:00Z",
                )
            },
            Case {
                start: vec![(OpKind::Backup, "2026-11-30T12:00:00Z", Level::Full)],
                schedule: None,
                run_on_create: true,
                timing: Timing::default(),
                ..base("runOnCreate without a schedule", "2026-11-30T12:00:03Z")
            },
            Case {
                start: vec![],
                schedule: None,
                run_on_create: true,
                timing: Timing {
                    run_on_create_done: true,
                    ..Timing::default()
                },
                ..base("runOnCreate only once", "2026-11-30T12:00:03Z")
            },
            Case {
                start: vec![],
                schedule: Some(levels_schedule(|_| {})),
                timing: Timing::default(),
                ..base(
                    "applying a set fires nothing by itself",
                    "2026-11-30T12:00:03Z",
                )
            },
            Case {
                start: vec![(OpKind::Backup, "2026-12-04T01:00:00Z", Level::Incr)],
                missed: 2,
                timing: Timing {
                    backup: Some(ts("2026-12-01T01:00:00Z")),
                    purge: Some(ts("2026-12-04T00:00:00Z")),
                    verify: Some(ts("2026-11-29T03:00:00Z")),
                    ..Timing::default()
                },
                ..base(
                    "two nights missed while down, the third runs",
                    "2026-12-04T01:20:00Z",
                )
            },
            Case {
                start: vec![],
                missed: 3,
                timing: Timing {
                    backup: Some(ts("2026-12-01T01:00:00Z")),
                    purge: Some(ts("2026-12-04T00:00:00Z")),
                    verify: Some(ts("2026-11-29T03:00:00Z")),
                    ..Timing::default()
                },
                ..base(
                    "past the starting deadline: skipped and counted",
                    "2026-12-04T02:30:00Z",
                )
            },
            Case {
                start: vec![(OpKind::Backup, "2026-12-04T01:00:00Z", Level::Incr)],
                missed: 2,
                schedule: Some(levels_schedule(|s| {
                    s.missed_runs = MissedRunPolicy::CatchUpOnce
                })),
                timing: Timing {
                    backup: Some(ts("2026-12-01T01:00:00Z")),
                    purge: Some(ts("2026-12-04T00:00:00Z")),
                    verify: Some(ts("2026-11-29T03:00:00Z")),
                    ..Timing::default()
                },
                ..base(
                    "CatchUpOnce: one run, however many were missed",
                    "2026-12-04T02:30:00Z",
                )
            },
        ];
        for c in cases {
            let timing = c.timing.clone();
            let input = SetInput {
                key: "shop/shop",
                created,
                now: ts(c.now),
                schedule: c.schedule.as_ref(),
                suspended: c.suspended,
                run_on_create: c.run_on_create,
                manual: c.manual,
                timing: &timing,
                sources: &[],
            };
            let p = plan_set(&input);
            let got: Vec<(OpKind, Timestamp, Level)> =
                p.start.iter().map(|s| (s.kind, s.slot, s.level)).collect();
            let want: Vec<(OpKind, Timestamp, Level)> =
                c.start.iter().map(|(k, t, l)| (*k, ts(t), *l)).collect();
            assert_eq!(got, want, "{}", c.what);
            assert_eq!(p.missed, c.missed, "{}: missed", c.what);
        }
    }

    #[test]
    fn a_suspended_set_moves_its_slots_on_so_resuming_catches_nothing_up() {
        let s = levels_schedule(|_| {});
        let timing = Timing {
            backup: Some(ts("2026-12-01T01:00:00Z")),
            ..Timing::default()
        };
        let p = plan_set(&SetInput {
            key: "a/b",
            created: ts("2026-11-01T00:00:00Z"),
            now: ts("2026-12-05T12:00:00Z"),
            schedule: Some(&s),
            suspended: true,
            run_on_create: false,
            manual: None,
            timing: &timing,
            sources: &[],
        });
        assert!(p.start.is_empty());
        assert_eq!(p.missed, 0, "suspension is not missing runs");
        assert_eq!(p.timing.backup, Some(ts("2026-12-05T01:00:00Z")));
        assert_eq!(
            p.next_backup,
            Some((ts("2026-12-06T01:00:00Z"), Level::Incr))
        );
        assert_eq!(
            p.wake,
            Some(ts("2026-12-06T00:00:00Z")),
            "the purge window is next"
        );
    }

    #[test]
    fn auto_mode_plans_each_source() {
        let s = validate(&ScheduleSpec {
            time_zone: "UTC".into(),
            mode: ScheduleMode::Auto,
            run: Some("0 1 * * *".into()),
            cycle: Some("7d".into()),
            ..ScheduleSpec::default()
        })
        .unwrap();
        let sources = vec![
            SourceHistory {
                name: "old".into(),
                last_full: Some(ts("2026-11-24T01:00:00Z")),
                size: 10,
            },
            SourceHistory {
                name: "fresh".into(),
                last_full: Some(ts("2026-12-01T01:00:00Z")),
                size: 10,
            },
            SourceHistory {
                name: "new".into(),
                last_full: None,
                size: 0,
            },
        ];
        let timing = Timing {
            backup: Some(ts("2026-12-01T01:00:00Z")),
            ..Timing::default()
        };
        let p = plan_set(&SetInput {
            key: "a/b",
            created: ts("2026-11-01T00:00:00Z"),
            now: ts("2026-12-02T01:00:01Z"),
            schedule: Some(&s),
            suspended: false,
            run_on_create: false,
            manual: None,
            timing: &timing,
            sources: &sources,
        });
        let levels = &p.start[0].source_levels;
        assert_eq!(levels["old"], Level::Full, "a full due within the cycle");
        assert_eq!(levels["new"], Level::Full, "a new source at once");
        assert_eq!(levels["fresh"], Level::Incr);
    }

    #[test]
    fn jitter_is_applied_to_due_times() {
        let s = levels_schedule(|s| s.jitter = Some("30m".into()));
        let timing = Timing {
            backup: Some(ts("2026-12-01T01:00:00Z")),
            purge: Some(ts("2026-12-02T00:00:00Z")),
            verify: Some(ts("2026-11-29T03:00:00Z")),
            ..Timing::default()
        };
        let input = |now: &str| {
            plan_set(&SetInput {
                key: "shop/shop",
                created: ts("2026-11-01T00:00:00Z"),
                now: ts(now),
                schedule: Some(&s),
                suspended: false,
                run_on_create: false,
                manual: None,
                timing: &timing,
                sources: &[],
            })
        };
        let offset = jitter_offset("shop/shop", Some(SignedDuration::from_mins(30)));
        let due = ts("2026-12-02T01:00:00Z") + offset;
        assert_eq!(
            input("2026-12-02T00:59:00Z").next_backup.map(|(t, _)| t),
            Some(due)
        );
        let before = due - SignedDuration::from_secs(1);
        assert!(input(&before.to_string()).start.is_empty());
        let at = input(&due.to_string());
        assert_eq!(
            at.start[0].slot,
            ts("2026-12-02T01:00:00Z"),
            "the slot itself is unjittered"
        );
    }
}
