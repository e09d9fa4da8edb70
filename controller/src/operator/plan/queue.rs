//! One operation at a time per repository, first come first served. The queue is the Jobs
//! themselves: an operation that must wait is created suspended (visible in `kubectl get
//! jobs` and in status), and when nothing of its repository runs, the oldest waiting one is
//! released. Every reconciler computes the same answer from the same Jobs, so two of them
//! racing release the same Job. Pure.

use jiff::Timestamp;

/// A Job of one repository, as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub name: String,
    pub created: Timestamp,
    pub state: JobState,
    /// Only its owner may release it (a backup whose `pre` hooks run first).
    pub held: bool,
    /// The operation, for status (`backup`, `purge`, `restore/<name>` …).
    pub operation: String,
}

/// Where a Job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Created suspended, waiting its turn.
    Waiting,
    /// Released: pending or running.
    Active,
    /// Finished (complete or failed), or stopped for good (aborted).
    Done,
}

/// The Job to release now, if nothing of the repository is active.
pub fn next_to_release(jobs: &[QueuedJob]) -> Option<&QueuedJob> {
    if jobs.iter().any(|j| j.state == JobState::Active) {
        return None;
    }
    jobs.iter()
        .filter(|j| j.state == JobState::Waiting)
        .min_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)))
}

/// The waiting Jobs in the order they will run.
pub fn waiting(jobs: &[QueuedJob]) -> Vec<&QueuedJob> {
    let mut w: Vec<&QueuedJob> = jobs
        .iter()
        .filter(|j| j.state == JobState::Waiting)
        .collect();
    w.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    w
}

/// Whether a new operation must wait (something of the repository is active or waiting).
pub fn must_wait(jobs: &[QueuedJob]) -> bool {
    jobs.iter().any(|j| j.state != JobState::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, sec: i64, state: JobState) -> QueuedJob {
        QueuedJob {
            name: name.into(),
            created: Timestamp::from_second(1_764_550_800 + sec).unwrap(),
            state,
            held: false,
            operation: "backup".into(),
        }
    }

    #[test]
    fn queue_table() {
        use JobState::*;
        let cases: Vec<(&str, Vec<QueuedJob>, Option<&str>, bool)> = vec![
            (
                "empty: nothing to release, nothing to wait for",
                vec![],
                None,
                false,
            ),
            (
                "one running: the waiting one waits",
                vec![job("a", 0, Active), job("b", 1, Waiting)],
                None,
                true,
            ),
            (
                "the oldest waiting goes first",
                vec![
                    job("c", 5, Waiting),
                    job("b", 1, Waiting),
                    job("a", 0, Done),
                ],
                Some("b"),
                true,
            ),
            (
                "same second: by name",
                vec![job("y", 1, Waiting), job("x", 1, Waiting)],
                Some("x"),
                true,
            ),
            (
                "only finished jobs: a new one starts at once",
                vec![job("a", 0, Done)],
                None,
                false,
            ),
        ];
        for (what, jobs, release, wait) in cases {
            assert_eq!(
                next_to_release(&jobs).map(|j| j.name.as_str()),
                release,
                "{what}"
            );
            assert_eq!(must_wait(&jobs), wait, "{what}");
        }
        let jobs = vec![job("c", 5, Waiting), job("b", 1, Waiting)];
        assert_eq!(
            waiting(&jobs)
                .iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
    }
}
