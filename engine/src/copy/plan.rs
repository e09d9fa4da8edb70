//! Which runs a copy moves: a pure function of the two catalogs and the copy's ledger.

use std::collections::HashSet;

/// What one copy will do with each of the source's runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// Runs to copy, oldest first.
    pub copy: Vec<String>,
    /// Runs already at the destination whose ledger record is missing (a copy stopped
    /// between a manifest and its record): recorded, nothing moved.
    pub record: Vec<String>,
    /// Runs the ledger says were copied and the destination no longer holds: its own
    /// retention expired them, so they are not copied again.
    pub expired_at_destination: Vec<String>,
    /// Ledger records of runs neither repository holds any more: dropped.
    pub forget: Vec<String>,
}

/// Plan a copy of `source` (labels oldest first) into a destination holding `destination`
/// runs and a ledger of `copied` labels. With `wanted`, only those runs, copied even if the
/// destination's retention expired them (someone asked for them by name). A wanted label
/// the source does not hold is returned as the error.
pub fn plan_copy(
    source: &[String],
    destination: &HashSet<String>,
    copied: &HashSet<String>,
    wanted: Option<&[String]>,
) -> Result<CopyPlan, String> {
    if let Some(missing) = wanted.and_then(|w| w.iter().find(|l| !source.contains(l))) {
        return Err(missing.clone());
    }
    let mut plan = CopyPlan::default();
    for label in source {
        let asked = wanted.map(|w| w.contains(label));
        match (destination.contains(label), copied.contains(label), asked) {
            (_, _, Some(false)) => {}
            (true, false, _) => plan.record.push(label.clone()),
            (true, true, _) => {}
            (false, true, None) => plan.expired_at_destination.push(label.clone()),
            (false, _, _) => plan.copy.push(label.clone()),
        }
    }
    let held: HashSet<&String> = source.iter().chain(destination.iter()).collect();
    let mut forget: Vec<String> = copied
        .iter()
        .filter(|l| !held.contains(l))
        .cloned()
        .collect();
    forget.sort();
    plan.forget = forget;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|s| s.to_string()).collect()
    }

    fn set(ls: &[&str]) -> HashSet<String> {
        ls.iter().map(|s| s.to_string()).collect()
    }

    /// Destination runs, ledger, wanted → copy, record, expired, forget.
    type Case<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        Option<&'a [&'a str]>,
        [&'a [&'a str]; 4],
    );

    #[test]
    fn a_copy_moves_what_the_destination_never_had_and_never_brings_back_what_it_expired() {
        let source = labels(&["full-1", "incr-2", "incr-3", "incr-4"]);
        let table: &[Case] = &[
            // An empty copy takes everything, oldest first.
            (
                &[],
                &[],
                None,
                [&["full-1", "incr-2", "incr-3", "incr-4"], &[], &[], &[]],
            ),
            // Caught up: nothing to do.
            (
                &["full-1", "incr-2", "incr-3", "incr-4"],
                &["full-1", "incr-2", "incr-3", "incr-4"],
                None,
                [&[], &[], &[], &[]],
            ),
            // The copy's retention expired incr-2: not copied again.
            (
                &["full-1", "incr-3"],
                &["full-1", "incr-2", "incr-3"],
                None,
                [&["incr-4"], &[], &["incr-2"], &[]],
            ),
            // Stopped between a manifest and its record: recorded, not moved again.
            (
                &["full-1"],
                &[],
                None,
                [&["incr-2", "incr-3", "incr-4"], &["full-1"], &[], &[]],
            ),
            // The source expired full-0, the copy did too: its record goes.
            (
                &["full-1"],
                &["full-0", "full-1"],
                None,
                [&["incr-2", "incr-3", "incr-4"], &[], &[], &["full-0"]],
            ),
            // The copy still holds a run the source expired: its record stays.
            (
                &["full-0", "full-1"],
                &["full-0", "full-1"],
                None,
                [&["incr-2", "incr-3", "incr-4"], &[], &[], &[]],
            ),
            // Asked for by name: copied even though the copy expired it, and nothing else.
            (
                &["full-1", "incr-3"],
                &["full-1", "incr-2", "incr-3"],
                Some(&["incr-2"]),
                [&["incr-2"], &[], &[], &[]],
            ),
        ];
        for (dest, ledger, wanted, [copy, record, expired, forget]) in table {
            let wanted = wanted.map(labels);
            let plan = plan_copy(&source, &set(dest), &set(ledger), wanted.as_deref()).unwrap();
            assert_eq!(
                plan,
                CopyPlan {
                    copy: labels(copy),
                    record: labels(record),
                    expired_at_destination: labels(expired),
                    forget: labels(forget),
                },
                "destination {dest:?}, ledger {ledger:?}, wanted {wanted:?}"
            );
        }
    }

    #[test]
    fn a_run_asked_for_that_the_source_lacks_is_named() {
        let source = labels(&["full-1"]);
        let wanted = labels(&["full-1", "incr-9"]);
        assert_eq!(
            plan_copy(&source, &set(&[]), &set(&[]), Some(&wanted)),
            Err("incr-9".to_owned())
        );
    }
}
