//! The run catalog: manifests under `runs/<label>`.

use chrono::{DateTime, Duration, Utc};

use crate::catalog::source_restorable;
use crate::format::aad;
use crate::format::run::{
    RunManifest, RunStatus, SourceManifest, SourceStatus, label_for, parse_label,
};
use crate::{Error, Result};

use super::Repository;

const RUNS_PREFIX: &str = "runs/";

/// Which run a command means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSelector {
    /// The newest restorable run.
    Newest,
    /// Exactly this label.
    Label(String),
    /// The newest restorable run that started at or before this time.
    At(DateTime<Utc>),
}

impl<S> Repository<S> {
    /// Labels of every run, oldest first (labels sort by time within a level; this sorts by
    /// the time in the label, then the label).
    pub fn run_labels(&self) -> Result<Vec<String>> {
        let mut labels: Vec<String> = self
            .store()
            .list(RUNS_PREFIX)?
            .into_iter()
            .filter_map(|o| o.key.strip_prefix(RUNS_PREFIX).map(str::to_owned))
            .filter(|l| parse_label(l).is_some())
            .collect();
        labels.sort_by_key(|l| (parse_label(l).map(|(_, t)| t), l.clone()));
        Ok(labels)
    }

    fn open_manifest(&self, label: &str, sealed: &[u8]) -> Result<RunManifest> {
        let json = self
            .key()
            .open(aad::RUN, sealed)
            .map_err(|_| Error::corrupt(format!("run manifest {label} failed authentication")))?;
        let manifest: RunManifest = serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt(format!("run manifest {label}: {e}")))?;
        if manifest.label != label {
            return Err(Error::corrupt(format!(
                "run manifest {label} claims the label {}",
                manifest.label
            )));
        }
        Ok(manifest.normalize())
    }

    /// Every run manifest, oldest first, fetched concurrently.
    pub fn runs(&self) -> Result<Vec<RunManifest>> {
        let labels = self.run_labels()?;
        let keys: Vec<String> = labels.iter().map(|l| format!("{RUNS_PREFIX}{l}")).collect();
        let bodies = self.store().get_many(&keys, 32);
        let mut runs = labels
            .iter()
            .zip(bodies)
            .map(|(label, body)| self.open_manifest(label, &body?))
            .collect::<Result<Vec<_>>>()?;
        // A label can be a second later than its start (two runs in one second), so order by
        // the recorded start time.
        runs.sort_by(|a, b| {
            a.started
                .cmp(&b.started)
                .then_with(|| a.label.cmp(&b.label))
        });
        Ok(runs)
    }

    /// The run labelled `label`.
    pub fn load_run(&self, label: &str) -> Result<RunManifest> {
        Ok(self.load_run_sealed(label)?.0)
    }

    /// The run labelled `label`, and its manifest as stored (sealed): what a copy moves.
    pub(crate) fn load_run_sealed(&self, label: &str) -> Result<(RunManifest, bytes::Bytes)> {
        match self.store().get(&format!("{RUNS_PREFIX}{label}")) {
            Ok(body) => Ok((self.open_manifest(label, &body)?, body)),
            Err(crate::storage::StorageError::NotFound { .. }) => {
                let labels = self.run_labels()?;
                Err(Error::RunNotFound {
                    label: label.to_owned(),
                    nearest: nearest_labels(label, &labels),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Remove a run's manifest (its data stays until a purge collects it).
    pub(crate) fn delete_run(&self, label: &str) -> Result<()> {
        Ok(self.store().delete(&format!("{RUNS_PREFIX}{label}"))?)
    }

    /// Store a manifest under a unique label for the time `at` (its start, or its scheduled
    /// slot): if another run already took this second, the label moves forward a second at a
    /// time. Returns the manifest as stored.
    pub(crate) fn save_run(
        &self,
        mut manifest: RunManifest,
        at: DateTime<Utc>,
    ) -> Result<RunManifest> {
        let mut at = at;
        for _ in 0..3600 {
            manifest.label = label_for(manifest.level, at);
            let json = serde_json::to_vec(&manifest).map_err(Error::internal)?;
            let sealed = self.key().seal(aad::RUN, &json)?;
            if self
                .store()
                .put_new(&format!("{RUNS_PREFIX}{}", manifest.label), sealed)?
            {
                return Ok(manifest);
            }
            at += Duration::seconds(1);
        }
        Err(Error::internal(
            "could not find a free run label within an hour of the start time",
        ))
    }
}

/// Choose a run from the catalog (oldest first).
pub fn select_run<'a>(
    runs: &'a [RunManifest],
    selector: &RunSelector,
    allow_partial: bool,
) -> Result<&'a RunManifest> {
    let restorable = |r: &&RunManifest| allow_partial || r.status == RunStatus::Complete;
    match selector {
        RunSelector::Label(label) => runs.iter().find(|r| &r.label == label).ok_or_else(|| {
            let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
            Error::RunNotFound {
                label: label.clone(),
                nearest: nearest_labels(label, &labels),
            }
        }),
        RunSelector::Newest => runs
            .iter()
            .rev()
            .find(restorable)
            .ok_or_else(|| only_partial(runs)),
        RunSelector::At(t) => runs
            .iter()
            .rev()
            .filter(|r| r.started <= *t)
            .find(restorable)
            .ok_or_else(|| match runs.iter().find(restorable) {
                Some(first) => Error::NoRunBefore {
                    requested: t.to_rfc3339(),
                    first_label: first.label.clone(),
                    first_time: first.started.to_rfc3339(),
                },
                None => only_partial(runs),
            }),
    }
}

fn only_partial(runs: &[RunManifest]) -> Error {
    match runs.last() {
        None => Error::NoRuns,
        Some(newest) => Error::NoRestorePoint(format!(
            "the repository has only partial runs (some items missing; newest: {}): pass              --partial to use them, or name one with --label",
            newest.label
        )),
    }
}

/// A source chosen for a restore, and the run it comes from.
#[derive(Debug, Clone, Copy)]
pub struct SourceChoice<'a> {
    /// The run chosen.
    pub run: &'a RunManifest,
    /// The source's entry in it.
    pub source: &'a SourceManifest,
}

/// Choose what a restore restores, per source: with a label, that run's sources; otherwise
/// each source from its own newest restore point (at or before the time, for a point in
/// time). Sources of one repository are backed up at different times and levels, so "the
/// newest run" of the repository may not hold a source at all. `wanted` empty means every
/// source that has a restore point.
pub(crate) fn select_sources<'a>(
    runs: &'a [RunManifest],
    selector: &RunSelector,
    wanted: &[String],
    allow_partial: bool,
) -> Result<Vec<SourceChoice<'a>>> {
    let usable = |s: &SourceManifest| {
        source_restorable(s) && (allow_partial || s.status == SourceStatus::Complete)
    };
    if let RunSelector::Label(_) = selector {
        let run = select_run(runs, selector, true)?;
        return sources_of_run(run, wanted);
    }
    if runs.is_empty() {
        return Err(Error::NoRuns);
    }
    // A source read from a snapshot restores to the snapshot's instant, which is before the
    // run started: at a time between the two, that entry counts and the run's others do not.
    let in_time = |run: &RunManifest, s: &SourceManifest| match selector {
        RunSelector::At(t) => s.restore_point_time(run) <= *t,
        _ => true,
    };
    let candidates: Vec<&RunManifest> = runs
        .iter()
        .filter(|r| r.sources.iter().any(|s| in_time(r, s)))
        .collect();
    let entry = |run: &'a RunManifest, name: &str| {
        run.sources
            .iter()
            .find(|s| s.name == name)
            .filter(|s| in_time(run, s))
    };
    let mut names: Vec<String> = wanted.to_vec();
    if names.is_empty() {
        for r in &candidates {
            for s in r
                .sources
                .iter()
                .filter(|s| source_restorable(s) && in_time(r, s))
            {
                if !names.contains(&s.name) {
                    names.push(s.name.clone());
                }
            }
        }
    }
    if names.is_empty() {
        return Err(no_run_before(runs, selector).unwrap_or(Error::NoRuns));
    }
    let mut out = Vec::new();
    let mut partial_only = Vec::new();
    for name in &names {
        let found = candidates
            .iter()
            .rev()
            .find_map(|r| entry(r, name).filter(|s| usable(s)).map(|s| (*r, s)));
        if let Some((run, source)) = found {
            out.push(SourceChoice { run, source });
            continue;
        }
        if !runs
            .iter()
            .any(|r| r.sources.iter().any(|s| &s.name == name))
        {
            let mut all: Vec<&str> = Vec::new();
            for r in runs {
                for s in &r.sources {
                    if !all.contains(&s.name.as_str()) {
                        all.push(&s.name);
                    }
                }
            }
            return Err(Error::InvalidArgument(format!(
                "no run holds a source named {name:?}; the repository's sources are: {}",
                all.join(", ")
            )));
        }
        let partial = candidates
            .iter()
            .rev()
            .find(|r| entry(r, name).is_some_and(source_restorable));
        match partial {
            Some(r) => partial_only.push(format!("{name} (newest: {})", r.label)),
            None => {
                return Err(no_run_before(runs, selector).unwrap_or_else(|| {
                    Error::NoRestorePoint(format!(
                        "source {name:?} has no restorable run (every run of it failed)"
                    ))
                }));
            }
        }
    }
    if !partial_only.is_empty() {
        return Err(Error::NoRestorePoint(format!(
            "only partial runs (some items missing) can restore {}: pass --partial to restore \
             the newest partial one, or name a run with --label",
            partial_only.join(", ")
        )));
    }
    Ok(out)
}

/// The selected sources of one run.
fn sources_of_run<'a>(run: &'a RunManifest, wanted: &[String]) -> Result<Vec<SourceChoice<'a>>> {
    for w in wanted {
        match run.sources.iter().find(|s| &s.name == w) {
            None => {
                let names: Vec<&str> = run.sources.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::InvalidArgument(format!(
                    "run {} has no source {w:?}; its sources are: {}",
                    run.label,
                    names.join(", ")
                )));
            }
            Some(s) if !source_restorable(s) => {
                return Err(Error::NoRestorePoint(format!(
                    "source {w:?} failed in run {}: it stored nothing to restore",
                    run.label
                )));
            }
            Some(_) => {}
        }
    }
    let out: Vec<SourceChoice<'a>> = run
        .sources
        .iter()
        .filter(|s| source_restorable(s))
        .filter(|s| wanted.is_empty() || wanted.contains(&s.name))
        .map(|source| SourceChoice { run, source })
        .collect();
    if out.is_empty() {
        return Err(Error::NoRestorePoint(format!(
            "run {} has no restorable source",
            run.label
        )));
    }
    Ok(out)
}

/// For a point in time before every run: the error naming the first run.
fn no_run_before(runs: &[RunManifest], selector: &RunSelector) -> Option<Error> {
    let RunSelector::At(t) = selector else {
        return None;
    };
    let first = runs.first()?;
    (first.started > *t).then(|| Error::NoRunBefore {
        requested: t.to_rfc3339(),
        first_label: first.label.clone(),
        first_time: first.started.to_rfc3339(),
    })
}

/// Up to three labels closest in time (or, for an unparsable label, by shared prefix).
pub(crate) fn nearest_labels(wanted: &str, labels: &[String]) -> Vec<String> {
    let mut scored: Vec<(i64, &String)> = match parse_label(wanted) {
        Some((_, t)) => labels
            .iter()
            .filter_map(|l| parse_label(l).map(|(_, lt)| ((lt - t).num_seconds().abs(), l)))
            .collect(),
        None => labels
            .iter()
            .map(|l| {
                let common = l
                    .chars()
                    .zip(wanted.chars())
                    .take_while(|(a, b)| a == b)
                    .count();
                (-(common as i64), l)
            })
            .collect(),
    };
    scored.sort();
    scored.into_iter().take(3).map(|(_, l)| l.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::run::{Level, MANIFEST_VERSION, RunStats};
    use chrono::TimeZone;

    fn run(label: &str, status: RunStatus) -> RunManifest {
        let (level, t) = parse_label(label).unwrap();
        RunManifest {
            version: MANIFEST_VERSION,
            label: label.into(),
            level,
            status,
            started: t,
            finished: t,
            host: "h".into(),
            owner: None,
            parent: None,
            base_full: None,
            sources: vec![],
            stats: RunStats::default(),
            tags: vec![],
            aborted: false,
        }
    }

    fn catalog() -> Vec<RunManifest> {
        vec![
            run("full-20261101.010000", RunStatus::Complete),
            run("incr-20261102.010000", RunStatus::Complete),
            run("incr-20261103.010000", RunStatus::Partial),
        ]
    }

    #[test]
    fn newest_skips_partial_unless_allowed() {
        let runs = catalog();
        assert_eq!(
            select_run(&runs, &RunSelector::Newest, false)
                .unwrap()
                .label,
            "incr-20261102.010000"
        );
        assert_eq!(
            select_run(&runs, &RunSelector::Newest, true).unwrap().label,
            "incr-20261103.010000"
        );
    }

    #[test]
    fn point_in_time_picks_newest_at_or_before() {
        let runs = catalog();
        let at = |d, h| RunSelector::At(Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap());
        assert_eq!(
            select_run(&runs, &at(2, 1), false).unwrap().label,
            "incr-20261102.010000"
        );
        assert_eq!(
            select_run(&runs, &at(2, 0), false).unwrap().label,
            "full-20261101.010000"
        );
        let err = select_run(&runs, &at(1, 0), false).unwrap_err();
        assert!(err.to_string().contains("full-20261101.010000"), "{err}");
    }

    #[test]
    fn unknown_label_lists_nearest() {
        let runs = catalog();
        let err = select_run(
            &runs,
            &RunSelector::Label("incr-20261102.020000".into()),
            false,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("nearest labels: incr-20261102.010000"),
            "{msg}"
        );
        assert_eq!(Level::Full.number(), 0);
    }

    fn with_sources(label: &str, sources: &[(&str, Option<DateTime<Utc>>)]) -> RunManifest {
        let mut r = run(label, RunStatus::Complete);
        r.sources = sources
            .iter()
            .map(|(name, captured)| SourceManifest {
                name: (*name).into(),
                kind: crate::format::run::SourceKind::Directory,
                origin: crate::format::run::PathText::Utf8(format!("/data/{name}")),
                tree: Some(crate::id::Id::default()),
                status: SourceStatus::Complete,
                stats: RunStats::default(),
                errors: vec![],
                warnings: vec![],
                level: Some(Level::Full),
                parent: None,
                base_full: None,
                captured: *captured,
            })
            .collect();
        r
    }

    #[test]
    fn a_point_in_time_takes_a_snapshot_source_from_its_snapshot_instant() {
        let t = |h, m| Utc.with_ymd_and_hms(2026, 11, 2, h, m, 0).unwrap();
        let runs = vec![
            with_sources("full-20261101.010000", &[("db", None), ("files", None)]),
            // Started at 01:10, its db snapshot was cut at 01:00; files was read live.
            with_sources(
                "full-20261102.011000",
                &[("db", Some(t(1, 0))), ("files", None)],
            ),
        ];
        let picked = |at: DateTime<Utc>| {
            select_sources(&runs, &RunSelector::At(at), &[], false)
                .unwrap()
                .iter()
                .map(|c| format!("{}@{}", c.source.name, c.run.label))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            picked(t(1, 5)),
            ["db@full-20261102.011000", "files@full-20261101.010000"]
        );
        assert_eq!(
            picked(t(0, 59)),
            ["db@full-20261101.010000", "files@full-20261101.010000"]
        );
        assert_eq!(
            picked(t(1, 10)),
            ["db@full-20261102.011000", "files@full-20261102.011000"]
        );
    }
}
