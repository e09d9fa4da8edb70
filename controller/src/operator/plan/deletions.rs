//! The brake on a burst of deletions: when more than a few sets whose `deletionPolicy` is
//! `Purge` are deleted close together (a namespace torn down by mistake, a GitOps tool
//! pruning what it should not, someone holding the cluster's credentials), none of their
//! repositories is deleted until someone approves each set. Pure.

use jiff::{SignedDuration, Timestamp};

/// More than this many deletions ...
pub const BURST: usize = 3;
/// ... within this long of each other wait for approval.
pub const WINDOW: SignedDuration = SignedDuration::from_secs(600);

/// A set being deleted whose repository would be deleted with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleting {
    /// `namespace/name`.
    pub key: String,
    /// When its deletion was asked for.
    pub since: Timestamp,
}

/// Why `this` set's repository must wait for approval, given every set being deleted with
/// `deletionPolicy: Purge` (itself among them); `None` to go ahead. Once braked a set stays
/// braked (`braked_before`) until approved, so the burst passing does not release it.
pub fn must_wait(
    this: &Deleting,
    deleting: &[Deleting],
    braked_before: bool,
    approved: bool,
) -> Option<String> {
    if approved {
        return None;
    }
    let mut close: Vec<&str> = deleting
        .iter()
        .filter(|d| {
            let apart = if d.since > this.since {
                d.since.duration_since(this.since)
            } else {
                this.since.duration_since(d.since)
            };
            apart <= WINDOW
        })
        .map(|d| d.key.as_str())
        .collect();
    close.sort_unstable();
    if close.len() > BURST {
        return Some(format!(
            "{} sets whose deletionPolicy is Purge were deleted within {} minutes ({}): their \
             repositories are deleted only once each set is approved",
            close.len(),
            WINDOW.as_secs() / 60,
            close.join(", ")
        ));
    }
    braked_before.then(|| {
        "its deletion was braked with a burst of others: its repository is deleted only once \
         it is approved"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str, minute: i64) -> Deleting {
        Deleting {
            key: key.into(),
            since: Timestamp::from_second(1_765_000_000 + minute * 60).unwrap(),
        }
    }

    #[test]
    fn four_deletions_close_together_wait_three_or_spread_ones_do_not() {
        let burst = [at("a/1", 0), at("a/2", 1), at("b/3", 2), at("c/4", 9)];
        for d in &burst {
            let why = must_wait(d, &burst, false, false).unwrap();
            assert!(
                why.contains("4 sets") && why.contains("a/1, a/2, b/3, c/4"),
                "{why}"
            );
        }
        assert_eq!(
            must_wait(&burst[0], &burst[..3], false, false),
            None,
            "three pass"
        );
        let spread = [at("a/1", 0), at("a/2", 11), at("b/3", 22), at("c/4", 33)];
        assert_eq!(must_wait(&spread[1], &spread, false, false), None);
        // Approved, it goes; braked once, it stays braked after the others went.
        assert_eq!(must_wait(&burst[0], &burst, false, true), None);
        assert!(must_wait(&burst[0], &burst[..1], true, false).is_some());
    }
}
