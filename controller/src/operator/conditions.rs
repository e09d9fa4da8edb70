//! kstatus conditions: `Ready`, `Reconciling`, `Stalled`, each with `observedGeneration`, so
//! Argo CD, Flux and `kubectl wait --for=condition=Ready` read the same health. A condition's
//! `lastTransitionTime` changes only when its status does, so re-applying the same state
//! never flaps.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Working as asked.
    Ready { reason: String, message: String },
    /// On its way (a first check, a restore running): Ready false, Reconciling true.
    Progressing { reason: String, message: String },
    /// Cannot proceed until something changes: Ready false, Stalled true.
    Stalled { reason: String, message: String },
}

impl Health {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Health::Ready {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Health::Progressing {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Health::Stalled {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Health::Ready { .. })
    }
}

/// One condition, keeping its transition time from `previous` (the three of `conditions`,
/// or one beside them, e.g. `AwaitingApproval`).
pub fn condition(
    previous: &[Condition],
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if on { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The three conditions for `health`, keeping transition times from `previous`.
pub fn conditions(
    previous: &[Condition],
    health: &Health,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let (ready, reconciling, stalled, reason, message) = match health {
        Health::Ready { reason, message } => (true, false, false, reason, message),
        Health::Progressing { reason, message } => (false, true, false, reason, message),
        Health::Stalled { reason, message } => (false, false, true, reason, message),
    };
    let idle = if ready { reason.as_str() } else { "Idle" };
    vec![
        condition(previous, "Ready", ready, reason, message, generation, now),
        condition(
            previous,
            "Reconciling",
            reconciling,
            if reconciling { reason } else { idle },
            if reconciling { message } else { "" },
            generation,
            now,
        ),
        condition(
            previous,
            "Stalled",
            stalled,
            if stalled { reason } else { idle },
            if stalled { message } else { "" },
            generation,
            now,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let t0: Timestamp = "2026-12-01T01:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-12-01T02:00:00Z".parse().unwrap();
        let first = conditions(&[], &Health::ready("Ready", "ok"), Some(1), t0);
        let again = conditions(&first, &Health::ready("Ready", "still ok"), Some(2), t1);
        assert_eq!(
            again[0].last_transition_time,
            Time(t0),
            "unchanged status keeps its time"
        );
        assert_eq!(again[0].observed_generation, Some(2));
        let stalled = conditions(
            &again,
            &Health::stalled("StorageSetNotFound", "x"),
            Some(3),
            t1,
        );
        assert_eq!(stalled[0].status, "False");
        assert_eq!(stalled[0].last_transition_time, Time(t1));
        assert_eq!(stalled[2].status, "True");
        assert_eq!(stalled[2].reason, "StorageSetNotFound");
        assert_eq!(stalled[1].status, "False");
    }
}
