//! When each copy of a set runs: after a backup recorded since it last caught up, one Job
//! at a time per copy, a failed one retried after a pause that doubles (1 minute to 1 hour).
//! A pure function of the copies' bookkeeping in status and `now`.

use jiff::{SignedDuration, Timestamp};

/// The first retry's pause; each failure in a row doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: SignedDuration = SignedDuration::from_secs(60);
pub const MAX_BACKOFF: SignedDuration = SignedDuration::from_secs(3600);

/// One copy, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInput<'a> {
    pub name: &'a str,
    /// When its last successful copy started (everything recorded before is in it).
    pub caught_up_to: Option<Timestamp>,
    /// When its last attempt started.
    pub last_attempt: Option<Timestamp>,
    pub consecutive_failures: u32,
    /// A Job of this copy waits or runs.
    pub running: bool,
}

/// The planner's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyDecision {
    /// The copies to start now.
    pub start: Vec<String>,
    /// When a copy waiting out its pause is due.
    pub wake: Option<Timestamp>,
}

/// The pause after `failures` failures in a row.
pub fn backoff(failures: u32) -> SignedDuration {
    let doublings = failures.saturating_sub(1).min(6);
    (FIRST_BACKOFF * (1i32 << doublings)).min(MAX_BACKOFF)
}

/// Since when a copy caught up to `caught_up_to` has lacked a run: the earliest of the
/// set's recorded runs' completions after it (`None`: it holds them all).
pub fn behind_since(
    completions: impl IntoIterator<Item = Timestamp>,
    caught_up_to: Option<Timestamp>,
) -> Option<Timestamp> {
    completions
        .into_iter()
        .filter(|t| caught_up_to.is_none_or(|c| *t > c))
        .min()
}

/// Which copies start now. `newest_run` is when the set's newest recorded run finished.
pub fn plan_copies(
    copies: &[CopyInput<'_>],
    newest_run: Option<Timestamp>,
    suspended: bool,
    now: Timestamp,
) -> CopyDecision {
    let mut decision = CopyDecision::default();
    let Some(newest) = newest_run else {
        return decision;
    };
    if suspended {
        return decision;
    }
    for copy in copies {
        let behind = copy.caught_up_to.is_none_or(|c| newest > c);
        if !behind || copy.running {
            continue;
        }
        let due = match (copy.consecutive_failures, copy.last_attempt) {
            (0, _) | (_, None) => now,
            (n, Some(last)) => last + backoff(n),
        };
        if due <= now {
            decision.start.push(copy.name.to_owned());
        } else {
            decision.wake = Some(decision.wake.map_or(due, |w| w.min(due)));
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn copy(caught_up_to: Option<&str>, last: Option<&str>, failures: u32) -> CopyInput<'static> {
        CopyInput {
            name: "offsite",
            caught_up_to: caught_up_to.map(ts),
            last_attempt: last.map(ts),
            consecutive_failures: failures,
            running: false,
        }
    }

    /// What, the copy, the newest run, started?, wake.
    type Case<'a> = (
        &'a str,
        CopyInput<'a>,
        Option<Timestamp>,
        bool,
        Option<&'a str>,
    );

    #[test]
    fn a_copy_follows_each_new_run_and_a_failed_one_waits_longer_each_time() {
        let now = ts("2026-12-07T02:00:00Z");
        let run = Some(ts("2026-12-07T01:10:00Z"));
        let cases: Vec<Case> = vec![
            (
                "no run yet: nothing to copy",
                copy(None, None, 0),
                None,
                false,
                None,
            ),
            ("never copied: now", copy(None, None, 0), run, true, None),
            (
                "a run since the last copy started",
                copy(
                    Some("2026-12-07T01:00:00Z"),
                    Some("2026-12-07T01:00:00Z"),
                    0,
                ),
                run,
                true,
                None,
            ),
            (
                "caught up",
                copy(
                    Some("2026-12-07T01:20:00Z"),
                    Some("2026-12-07T01:20:00Z"),
                    0,
                ),
                run,
                false,
                None,
            ),
            (
                "one failure: a minute after it",
                copy(None, Some("2026-12-07T01:59:30Z"), 1),
                run,
                false,
                Some("2026-12-07T02:00:30Z"),
            ),
            (
                "one failure, the minute is over",
                copy(None, Some("2026-12-07T01:58:00Z"), 1),
                run,
                true,
                None,
            ),
            (
                "three failures: four minutes",
                copy(None, Some("2026-12-07T01:57:00Z"), 3),
                run,
                false,
                Some("2026-12-07T02:01:00Z"),
            ),
            (
                "twenty failures: an hour at most",
                copy(None, Some("2026-12-07T01:30:00Z"), 20),
                run,
                false,
                Some("2026-12-07T02:30:00Z"),
            ),
            (
                "a Job of it still runs",
                CopyInput {
                    running: true,
                    ..copy(None, None, 0)
                },
                run,
                false,
                None,
            ),
        ];
        for (what, c, newest, started, wake) in cases {
            let d = plan_copies(std::slice::from_ref(&c), newest, false, now);
            assert_eq!(d.start.len() == 1, started, "{what}");
            assert_eq!(d.wake, wake.map(ts), "{what}");
        }
    }

    #[test]
    fn a_copy_is_behind_since_the_first_run_it_lacks() {
        let runs = [
            "2026-12-05T01:10:00Z",
            "2026-12-06T01:10:00Z",
            "2026-12-07T01:10:00Z",
        ]
        .map(ts);
        assert_eq!(behind_since(runs, None), Some(runs[0]), "never copied");
        assert_eq!(
            behind_since(runs, Some(ts("2026-12-05T02:00:00Z"))),
            Some(runs[1])
        );
        assert_eq!(behind_since(runs, Some(ts("2026-12-07T02:00:00Z"))), None);
        assert_eq!(behind_since([], None), None, "no run yet: nothing to lack");
    }

    #[test]
    fn a_suspended_set_copies_nothing() {
        let d = plan_copies(
            &[copy(None, None, 0)],
            Some(ts("2026-12-07T01:10:00Z")),
            true,
            ts("2026-12-07T02:00:00Z"),
        );
        assert_eq!(d, CopyDecision::default());
    }
}
