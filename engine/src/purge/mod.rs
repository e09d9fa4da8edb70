//! Purge: expire runs by retention, then collect garbage in two phases.
//!
//! Phase one (shared lock, runs beside backups): delete expired run manifests, find volumes
//! no retained run needs (and volumes no index names), repack mostly-dead volumes, and
//! *mark* all of these with the time. Backups never reference a marked volume; they store
//! the blob again instead.
//!
//! Phase two (exclusive lock, no backup running): for marks older than the grace period,
//! re-check against the runs that exist now, rescue any volume a run still needs, write a
//! new index without the doomed volumes, delete the old index segments, then the volumes,
//! then the marks. Each step leaves a repository that verifies: a purge killed at any
//! point loses nothing a retained run needs, and the next purge finishes the job.

mod brake;
mod plan;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::compress::CompressionLevel;
use crate::faults::crash_point;
use crate::format::config::Operation;
use crate::format::index::MasterIndex;
use crate::format::pack::BlobKind;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::{
    Coalescing, Indexed, LockKind, MarkRecord, Repository, WantedBlob, plan_volume_reads,
};
use crate::retention::{RetentionPlan, RetentionPolicy, facts_of, plan_retention};
use crate::sink::{BlobSink, SinkOptions};
use crate::storage::pack_key;
use crate::{Error, Result};

use crate::repo::live_blobs;
pub use brake::{Brake, Braked, plan_id};
pub(crate) use plan::{VolumeStats, due_marks, plan_gc};

/// Volumes per index segment when the index is rewritten.
const PACKS_PER_SEGMENT: usize = 1024;

/// How to purge.
#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// Which runs to keep.
    pub policy: RetentionPolicy,
    /// Plan only: report what would happen, change nothing.
    pub dry_run: bool,
    /// How long a marked volume waits before deletion.
    pub grace: Duration,
    /// Repack volumes whose live share is below this fraction (0 disables repacking).
    pub repack_below: f64,
    /// How repacked blobs are compressed.
    pub compression: CompressionLevel,
    /// How long to wait for a conflicting lock before giving up.
    pub lock_wait: Duration,
    /// Wait for approval instead of expiring much more than usual (none: no brake).
    pub brake: Option<Brake>,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        PurgeOptions {
            policy: RetentionPolicy::default(),
            dry_run: false,
            grace: Duration::from_secs(24 * 3600),
            repack_below: 0.5,
            compression: CompressionLevel::default(),
            lock_wait: Duration::ZERO,
            brake: None,
        }
    }
}

/// A run the purge expired (or, in a dry run, would expire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredRun {
    /// The run's label.
    pub label: String,
    /// Why it expired.
    pub reason: String,
}

/// What a purge did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    /// Nothing was changed: the report says what would have been.
    pub dry_run: bool,
    /// Runs expired.
    pub runs_expired: Vec<ExpiredRun>,
    /// Runs kept.
    pub runs_kept: usize,
    /// Volumes marked dead in this purge.
    pub volumes_marked: usize,
    /// Their size.
    pub bytes_marked: u64,
    /// Volumes repacked (their live blobs copied out, the rest left to delete).
    pub volumes_repacked: usize,
    /// Live bytes copied out of repacked volumes.
    pub bytes_repacked: u64,
    /// Volumes deleted.
    pub volumes_deleted: usize,
    /// Size of the volumes deleted.
    pub bytes_reclaimed: u64,
    /// Marked volumes a run turned out to need; kept.
    pub volumes_rescued: usize,
    /// Marked volumes still inside their grace period.
    pub volumes_pending: usize,
    /// When the earliest pending volume becomes deletable.
    pub pending_until: Option<DateTime<Utc>>,
    /// Index segments written.
    pub index_segments_written: usize,
    /// Index segments deleted.
    pub index_segments_deleted: usize,
    /// Leftovers of interrupted writes removed.
    pub temporaries_removed: u64,
    /// Wall time of the purge.
    pub duration_ms: u64,
    /// Phase two could not run (another operation holds the repository): what was done
    /// and what is left for the next purge. Everything phase one did stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_deferred: Option<String>,
    /// The brake stopped this purge before it expired or marked anything: why, the runs it
    /// would have expired, and the plan to approve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub braked: Option<Braked>,
}

/// Purge the repository.
pub fn purge(
    repo: &mut Repository<Indexed>,
    opts: &PurgeOptions,
    progress: &Progress,
) -> Result<PurgeReport> {
    let started = Instant::now();
    repo.check_features(Operation::Delete)?;
    opts.policy.validate()?;
    if !(0.0..=1.0).contains(&opts.repack_below) {
        return Err(Error::InvalidArgument(
            "the repack threshold must be between 0 and 1".into(),
        ));
    }
    let mut report = PurgeReport {
        dry_run: opts.dry_run,
        ..PurgeReport::default()
    };
    mark_phase(repo, opts, progress, &mut report)?;
    match delete_phase(repo, opts, &mut report) {
        Ok(()) => {}
        // Phase one's work stands and the repository is consistent: report it, and what
        // could not be done, instead of an error that hides both.
        Err(e @ Error::Locked { .. }) => {
            report.delete_deferred = Some(format!(
                "done: {} runs expired, {} volumes marked for deletion ({} bytes); not done: \
                 deleting the volumes whose grace period is over, because {e}; the next purge \
                 deletes them",
                report.runs_expired.len(),
                report.volumes_marked,
                report.bytes_marked
            ));
        }
        Err(e) => return Err(e),
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The catalog, what the policy decides for it, and the facts it decided on.
type Planned = (
    Vec<crate::format::run::RunManifest>,
    RetentionPlan,
    Vec<crate::retention::RunFacts>,
);

fn retention_plan(repo: &Repository<Indexed>, policy: &RetentionPolicy) -> Result<Planned> {
    let runs = repo.runs()?;
    let archived = repo.archived_labels()?;
    let facts = facts_of(&runs, &archived);
    let plan = plan_retention(&facts, policy, Utc::now())?;
    Ok((runs, plan, facts))
}

fn volume_stats(index: &MasterIndex, live: &HashSet<Id>) -> Vec<VolumeStats> {
    let mut stats: Vec<VolumeStats> = index
        .packs()
        .iter()
        .map(|p| VolumeStats {
            id: p.id,
            size: p.size,
            blobs: 0,
            live_blobs: 0,
            live_bytes: 0,
        })
        .collect();
    for e in index.entries() {
        let s = &mut stats[e.pack as usize];
        s.blobs += 1;
        if live.contains(&e.id) {
            s.live_blobs += 1;
            s.live_bytes += u64::from(e.length);
        }
    }
    stats
}

fn mark_phase(
    repo: &mut Repository<Indexed>,
    opts: &PurgeOptions,
    progress: &Progress,
    report: &mut PurgeReport,
) -> Result<()> {
    let lock = repo.lock(LockKind::Shared, "purge (mark)", opts.lock_wait)?;
    let (runs, plan, facts) = retention_plan(repo, &opts.policy)?;
    if let Some(brake) = &opts.brake
        && let Some(braked) = brake::check(&facts, &plan, brake)
    {
        report.runs_kept = runs.len();
        report.braked = Some(braked);
        return Ok(());
    }
    report.runs_expired = plan
        .expired()
        .map(|(label, reason)| ExpiredRun {
            label: label.to_owned(),
            reason: reason.to_owned(),
        })
        .collect();
    report.runs_kept = plan.kept();
    let kept: Vec<_> = runs
        .into_iter()
        .zip(&plan.decisions)
        .filter(|(_, (_, d))| d.is_keep())
        .map(|(r, _)| r)
        .collect();

    if !opts.dry_run {
        for e in &report.runs_expired {
            repo.delete_run(&e.label)?;
        }
        crash_point("purge:after-expire");
    }

    let live = live_blobs(repo, &kept)?;
    let already_marked = repo.marked_volumes()?;
    let index = repo.index().clone();
    let gc = plan_gc(
        &volume_stats(&index, &live),
        &already_marked,
        opts.repack_below,
    );
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    // Volumes no index names: leftovers of interrupted backups, or a running backup's newest
    // volumes. Marking (not deleting) them is safe either way: phase two rescues any that
    // became needed.
    let unindexed: Vec<(Id, u64)> = repo
        .list_volumes()?
        .into_iter()
        .filter(|(id, _)| !indexed.contains(id) && !already_marked.contains(id))
        .collect();

    report.volumes_repacked = gc.repack.len();
    report.bytes_repacked = gc.repack_live_bytes;
    report.volumes_marked = gc.dead.len() + gc.repack.len() + unindexed.len();
    report.bytes_marked =
        gc.dead_bytes + gc.repack_bytes + unindexed.iter().map(|(_, s)| s).sum::<u64>();
    if opts.dry_run {
        if opts.grace.is_zero() {
            // With no grace period the delete phase of this same purge would take them.
            report.volumes_deleted = report.volumes_marked;
            report.bytes_reclaimed = report.bytes_marked;
        }
        return Ok(());
    }
    if report.volumes_marked == 0 {
        return Ok(());
    }

    if !gc.repack.is_empty() {
        repack(repo, &gc.repack, &already_marked, &live, opts, progress)?;
        crash_point("purge:after-repack");
    }
    let mut volumes = gc.dead.clone();
    volumes.extend(&gc.repack);
    volumes.extend(unindexed.iter().map(|(id, _)| *id));
    lock.confirm()?;
    repo.write_marks(&MarkRecord {
        marked_at: Utc::now(),
        volumes,
    })?;
    crash_point("purge:after-mark");
    Ok(())
}

/// Copy the live blobs of `volumes` into new volumes (indexed before this returns).
fn repack(
    repo: &mut Repository<Indexed>,
    volumes: &[Id],
    already_marked: &HashSet<Id>,
    live: &HashSet<Id>,
    opts: &PurgeOptions,
    progress: &Progress,
) -> Result<()> {
    let mut avoid: HashSet<Id> = volumes.iter().copied().collect();
    avoid.extend(already_marked);
    // Read each blob from a copy outside the volumes being emptied where one exists.
    repo.prefer_outside(&avoid)?;
    let index = repo.index().clone();
    let sink = BlobSink::new(
        repo,
        avoid.clone(),
        &SinkOptions {
            compression: opts.compression,
            encoders: 2,
            uploads: 2,
            pack_size: repo.config().pack_size as usize,
            stop: None,
        },
    )?;
    // Each volume is read once, in a few coalesced ranges, not one request per blob.
    let mut by_volume: BTreeMap<Id, Vec<(WantedBlob, BlobKind)>> = BTreeMap::new();
    for e in index.entries() {
        let volume = index.pack_id(e);
        if !avoid.contains(&volume) || !live.contains(&e.id) {
            continue;
        }
        let wanted = WantedBlob {
            id: e.id,
            offset: e.offset,
            length: e.length,
        };
        by_volume.entry(volume).or_default().push((wanted, e.kind));
    }
    let coalescing = Coalescing::for_store(repo.store());
    for (volume, mut blobs) in by_volume {
        blobs.sort_unstable_by_key(|(b, _)| b.offset);
        let wanted: Vec<WantedBlob> = blobs.iter().map(|(b, _)| *b).collect();
        for read in plan_volume_reads(&wanted, coalescing) {
            let mut reader = repo.read_volume(&volume, &read);
            for (blob, kind) in &blobs[read.blobs.clone()] {
                let data = reader.blob(blob)?;
                sink.add(*kind, blob.id, &data)?;
                progress.add_done(0, data.len() as u64);
            }
        }
    }
    let summary = sink.finish()?;
    repo.extend_index(summary.index_segments);
    Ok(())
}

fn delete_phase(
    repo: &mut Repository<Indexed>,
    opts: &PurgeOptions,
    report: &mut PurgeReport,
) -> Result<()> {
    let now = Utc::now();
    let marks = repo.marks()?;
    let (due_keys, mut due) = due_marks(&marks, now, opts.grace);
    let pending: Vec<&MarkRecord> = marks
        .iter()
        .filter(|(k, _)| !due_keys.contains(k))
        .map(|(_, r)| r)
        .collect();
    report.volumes_pending = pending.iter().map(|r| r.volumes.len()).sum();
    let grace = chrono::Duration::from_std(opts.grace).unwrap_or(chrono::Duration::MAX);
    report.pending_until = pending
        .iter()
        .filter_map(|r| r.marked_at.checked_add_signed(grace))
        .min();
    if due.is_empty() {
        return Ok(());
    }
    if opts.dry_run {
        report.volumes_deleted += due.len();
        return Ok(());
    }
    let lock = repo.lock(LockKind::Exclusive, "purge (delete)", opts.lock_wait)?;
    // Everything is re-read under the exclusive lock: runs written since phase one count.
    repo.prefer_outside(&due)?;
    let runs = repo.runs()?;
    let live = live_blobs(repo, &runs)?;
    let index = repo.index().clone();
    for id in &live {
        if let Some(loc) = index.lookup(id)
            && due.remove(&loc.pack)
        {
            report.volumes_rescued += 1;
        }
    }
    let old_segments: Vec<String> = index.segment_names().to_vec();
    let mut written = HashSet::new();
    for seg in index.to_segments(&due, PACKS_PER_SEGMENT) {
        let (id, sealed) = seg.seal(repo.key())?;
        let name = format!("index/{}", id.to_hex());
        repo.store().put(&name, sealed)?;
        written.insert(name);
    }
    report.index_segments_written = written.len();
    crash_point("purge:after-index-write");
    for name in old_segments.iter().filter(|n| !written.contains(*n)) {
        repo.store().delete(name)?;
        report.index_segments_deleted += 1;
    }
    crash_point("purge:after-index-delete");
    let sizes: std::collections::HashMap<Id, u64> =
        index.packs().iter().map(|p| (p.id, p.size)).collect();
    let listed: std::collections::HashMap<Id, u64> = repo.list_volumes()?.into_iter().collect();
    for id in &due {
        repo.store().delete(&pack_key(id))?;
        report.volumes_deleted += 1;
        report.bytes_reclaimed += listed.get(id).or(sizes.get(id)).copied().unwrap_or(0);
    }
    crash_point("purge:after-volume-delete");
    for key in &due_keys {
        repo.store().delete(key)?;
    }
    let older_than = std::time::SystemTime::now()
        .checked_sub(opts.grace)
        .unwrap_or(std::time::UNIX_EPOCH);
    report.temporaries_removed = repo.store().remove_stale_temporaries(older_than)?;
    repo.reload_index()?;
    drop(lock);
    Ok(())
}
