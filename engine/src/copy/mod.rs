//! Copies: a second repository of the same backup set, filled from the first without
//! reading the sources again.
//!
//! A copy shares its source's master key (made by [`Repository::init_copy_of`]), so blobs
//! move as they are stored: each is authenticated on the way (the tag covers its header, id
//! included, and every byte) but never decrypted, decompressed or re-hashed, and only the
//! blobs the copy lacks move. Per run, oldest first: the run's blobs, then the index that
//! names them, then a check that the copy now holds every blob the run needs, then the run's
//! manifest (the same sealed bytes), then the ledger record. A copy stopped at any point
//! leaves a repository that verifies; the next one moves only what is still missing.
//!
//! The copy keeps its own retention: the ledger (`copied/<label>`) remembers what was
//! copied, so a run the copy's purge expired is not brought back.

mod plan;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::compress::CompressionLevel;
use crate::faults::crash_point;
use crate::format::config::Operation;
use crate::format::run::RunManifest;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::{Coalescing, Indexed, LockKind, Repository, WantedBlob, plan_volume_reads};
use crate::sink::{BlobSink, SinkOptions};
use crate::{Error, Result};

pub use plan::{CopyPlan, plan_copy};

const RUNS_PREFIX: &str = "runs/";

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Only these runs (copied even if the copy's retention expired them); all missing runs
    /// otherwise.
    pub labels: Option<Vec<String>>,
    /// How long to wait for a conflicting lock on either repository.
    pub lock_wait: std::time::Duration,
    /// Volumes uploaded to the copy at once.
    pub uploads: usize,
    /// Copy into a repository recorded as another set's.
    pub force: bool,
    /// Set from outside (a signal) to stop after the run being copied.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            labels: None,
            lock_wait: std::time::Duration::ZERO,
            uploads: 4,
            force: false,
            stop: None,
        }
    }
}

/// One run copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopiedRun {
    /// The run's label (the same in both repositories).
    pub label: String,
    /// Blobs moved for it (those the copy lacked).
    pub blobs: u64,
    /// Bytes moved for it, as stored (sealed).
    pub bytes: u64,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// The source repository's location.
    pub from: String,
    /// The copy's location.
    pub to: String,
    /// Runs copied, oldest first.
    pub copied: Vec<CopiedRun>,
    /// Runs already in the copy whose record was missing: recorded, nothing moved.
    pub recorded: Vec<String>,
    /// Runs the copy's own retention expired: not copied again.
    pub expired_at_destination: Vec<String>,
    /// Runs of the source not in the copy when it ended (stopped early): the lag.
    pub pending: Vec<String>,
    /// Blobs moved.
    pub blobs_moved: u64,
    /// Bytes moved, as stored.
    pub bytes_moved: u64,
    /// Volumes written to the copy.
    pub volumes_written: u64,
    /// Ledger records dropped because neither repository holds their run.
    pub records_forgotten: u64,
    /// Stopped on request before every run was copied.
    pub stopped: bool,
    /// Wall time.
    pub duration_ms: u64,
}

/// Copy the runs `to` lacks from `from`. `to` must have been made as a copy of `from`
/// ([`Repository::init_copy_of`]).
pub fn copy(
    from: &Repository<Indexed>,
    to: &mut Repository<Indexed>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<CopyReport> {
    let started = Instant::now();
    from.check_features(Operation::Read)?;
    to.check_features(Operation::Write)?;
    if !to.key().same_as(from.key()) || to.config().chunker != from.config().chunker {
        return Err(Error::NotACopy {
            from: from.location(),
            to: to.location(),
        });
    }
    to.check_owner(from.owner(), opts.force)?;
    let _from_lock = from.lock(LockKind::Shared, "copy", opts.lock_wait)?;
    let to_lock = to.lock(LockKind::Shared, "copy", opts.lock_wait)?;
    for feature in from
        .config()
        .features
        .read
        .iter()
        .chain(&from.config().features.write)
    {
        to.require_feature(feature)?;
    }

    let source_labels = from.run_labels()?;
    let held: HashSet<String> = to.run_labels()?.into_iter().collect();
    let ledger = to.copied_labels()?;
    let plan =
        plan_copy(&source_labels, &held, &ledger, opts.labels.as_deref()).map_err(|label| {
            Error::RunNotFound {
                nearest: crate::repo::nearest_labels(&label, &source_labels),
                label,
            }
        })?;
    let mut report = CopyReport {
        from: from.location(),
        to: to.location(),
        recorded: plan.record.clone(),
        expired_at_destination: plan.expired_at_destination.clone(),
        ..CopyReport::default()
    };
    let source_id = from.config().id.clone();
    for label in &plan.record {
        to.record_copied(label, &source_id)?;
    }
    for label in &plan.forget {
        to.forget_copied(label)?;
        report.records_forgotten += 1;
    }

    // Volumes a purge of the copy marked for deletion are no home for a run: their blobs
    // move again.
    let marked = to.marked_volumes()?;
    to.prefer_outside(&marked)?;
    progress.add_total(plan.copy.len() as u64, 0);
    let mut walked: HashSet<Id> = HashSet::new();
    for (i, label) in plan.copy.iter().enumerate() {
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            report.stopped = true;
            report.pending = plan.copy[i..].to_vec();
            break;
        }
        // Read once: the walk opens it, the copy gets the same sealed bytes.
        let (manifest, sealed) = from.load_run_sealed(label)?;
        let (run, volumes) = copy_run(from, to, &manifest, &marked, &mut walked, opts)?;
        crash_point("copy:after-volumes");
        to_lock.confirm()?;
        // Present already means a copy racing this one stored the same sealed bytes.
        to.store()
            .put_new(&format!("{RUNS_PREFIX}{label}"), sealed)?;
        crash_point("copy:after-manifest");
        to.record_copied(label, &source_id)?;
        crash_point("copy:after-record");
        report.blobs_moved += run.blobs;
        report.bytes_moved += run.bytes;
        report.volumes_written += volumes;
        progress.add_done(1, run.bytes);
        report.copied.push(run);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Move the blobs of run `manifest` that `to` lacks, and check that `to` then holds every blob
/// the run needs. Blobs in `walked` were handled with an earlier run of this copy. Returns
/// the run's counts and the volumes written.
fn copy_run(
    from: &Repository<Indexed>,
    to: &mut Repository<Indexed>,
    manifest: &RunManifest,
    marked: &HashSet<Id>,
    walked: &mut HashSet<Id>,
    opts: &CopyOptions,
) -> Result<(CopiedRun, u64)> {
    let label = manifest.label.as_str();
    let mut needed: Vec<Id> = Vec::new();
    from.reachable_blobs(
        std::slice::from_ref(manifest),
        walked,
        |id| needed.push(id),
        |label, e| {
            Error::corrupt(format!(
                "run {label} has an unreadable listing in the source ({e}); the copy stopped \
                 before it (run `holdfast verify --deep` on the source)"
            ))
        },
    )?;
    let held = |to: &Repository<Indexed>, id: &Id| {
        to.index()
            .lookup(id)
            .is_some_and(|loc| !marked.contains(&loc.pack))
    };
    let mut by_volume: BTreeMap<Id, Vec<WantedBlob>> = BTreeMap::new();
    for id in needed.iter().filter(|id| !held(to, id)) {
        let loc = from.index().lookup(id).ok_or_else(|| {
            Error::corrupt(format!(
                "run {label} needs blob {} that the source's index does not hold; the copy \
                 stopped before it (run `holdfast verify` on the source)",
                id.short()
            ))
        })?;
        by_volume.entry(loc.pack).or_default().push(WantedBlob {
            id: *id,
            offset: loc.offset,
            length: loc.length,
        });
    }
    let mut run = CopiedRun {
        label: label.to_owned(),
        blobs: 0,
        bytes: 0,
    };
    let mut volumes = 0;
    if !by_volume.is_empty() {
        let sink = BlobSink::new(
            to,
            marked.clone(),
            &SinkOptions {
                // Blobs arrive sealed: nothing is compressed.
                compression: CompressionLevel::default(),
                encoders: 1,
                uploads: opts.uploads.max(1),
                pack_size: to.config().pack_size as usize,
                stop: None,
            },
        )?;
        let coalescing = Coalescing::for_store(from.store());
        let moved = (|| -> Result<()> {
            for (volume, mut blobs) in by_volume {
                blobs.sort_unstable_by_key(|b| b.offset);
                for read in plan_volume_reads(&blobs, coalescing) {
                    let mut reader = from.read_volume(&volume, &read);
                    for blob in &blobs[read.blobs.clone()] {
                        sink.add_sealed(&reader.sealed_blob(blob)?)?;
                    }
                }
            }
            Ok(())
        })();
        // A storage failure surfaces from the sink as the real cause.
        let summary = match (moved, sink.finish()) {
            (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
            (Ok(()), Ok(s)) => s,
        };
        run.blobs = summary.blobs_new;
        run.bytes = summary.bytes_stored;
        volumes = summary.packs;
        to.extend_index(summary.index_segments);
    }
    // Never a manifest for a run whose data the copy lacks.
    if let Some(missing) = needed.iter().find(|id| !held(to, id)) {
        return Err(Error::internal(format!(
            "after copying run {label} the copy still lacks blob {}; its manifest was not written",
            missing.short()
        )));
    }
    Ok((run, volumes))
}
