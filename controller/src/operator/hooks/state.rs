//! Where a backup Job's hooks stand, kept on the Job itself (annotations), so that a
//! controller that restarts knows whether `pre` ran and `post` is owed (pure).

/// The annotation with the [`HookState`].
pub const ANNOTATION_HOOKS: &str = "holdfast.io/hooks";
/// The annotation with the results so far (JSON, the status's `HookResult` list).
pub const ANNOTATION_HOOK_RESULTS: &str = "holdfast.io/hook-results";
/// The reason of a run whose `pre` hook failed.
pub const HOOK_FAILED: &str = "HookFailed";

/// Where a Job's hooks stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookState {
    /// Created held: only its set releases it, after running `pre`.
    Pending,
    /// `pre` is running (or the controller stopped while it ran: `post` is owed).
    Pre,
    /// `pre` ran and the Job was released: `post` runs when it ends.
    Released,
    /// `post` ran.
    Done,
    /// `pre` failed: `post` ran, and the Job never runs.
    Failed,
}

impl HookState {
    pub fn as_str(self) -> &'static str {
        match self {
            HookState::Pending => "pending",
            HookState::Pre => "pre",
            HookState::Released => "released",
            HookState::Done => "done",
            HookState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<HookState> {
        [
            HookState::Pending,
            HookState::Pre,
            HookState::Released,
            HookState::Done,
            HookState::Failed,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }

    /// Only its own set may release the Job (it runs `pre` first).
    pub fn held(self) -> bool {
        matches!(self, HookState::Pending | HookState::Pre)
    }

    /// `pre` ran (or may have) and `post` has not.
    pub fn owes_post(self) -> bool {
        matches!(self, HookState::Pre | HookState::Released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written_and_only_pending_and_pre_hold_the_job() {
        for s in [
            HookState::Pending,
            HookState::Pre,
            HookState::Released,
            HookState::Done,
            HookState::Failed,
        ] {
            assert_eq!(HookState::parse(s.as_str()), Some(s));
            assert_eq!(
                s.held(),
                matches!(s, HookState::Pending | HookState::Pre),
                "{s:?}"
            );
        }
        assert_eq!(HookState::parse("nonsense"), None);
        let unreadable: Vec<crate::api::hook::HookResult> =
            crate::operator::names::read_list_annotation(Some(&"not json".to_owned()));
        assert!(unreadable.is_empty());
    }
}
