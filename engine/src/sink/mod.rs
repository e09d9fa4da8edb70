//! The blob sink: deduplicate, compress and seal blobs, fill volumes, store them, index them.
//!
//! Pipeline: callers hash and offer blobs → encoder threads compress and seal → volume
//! builders (one per blob kind, so tree volumes stay small and quick to read) → uploader
//! threads store finished volumes → index segments are written only for stored volumes.
//! Queues are bounded, so memory stays flat however large the backup.

mod spool;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::compress::{CompressionLevel, Compressor};
use crate::format::index::{IndexSegment, MasterIndex};
use crate::format::pack::{BlobKind, EncodedBlob, PackBuilder, PackEntry, encode_blob};
use crate::id::Id;
use crate::repo::{Indexed, Repository};
use crate::storage::{StorageError, pack_key};
use crate::{Error, Result};

use spool::{SpoolFile, TempPath};

/// Volumes per index segment: a crash loses at most this many volumes' worth of index
/// (the volumes themselves stay, unreferenced, until a purge).
const PACKS_PER_SEGMENT: usize = 64;

/// New blobs go to the encoders in batches of about this many bytes (or [`BATCH_BLOBS`]
/// blobs): a source tree of small files handed over one blob at a time spent more time
/// waking threads (futex, sched_yield) than compressing.
const BATCH_BYTES: usize = 1024 * 1024;
const BATCH_BLOBS: usize = 64;

/// Tuning for the sink.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub compression: CompressionLevel,
    pub encoders: usize,
    pub uploads: usize,
    pub pack_size: usize,
    /// Set from outside (a signal) to ask producers to stop reading; what was offered is
    /// still stored and indexed.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Byte and blob counters of what the sink stored.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Bytes of source data chunked so far (what was read, whether new or not), so a run
    /// stopped in the middle of a file still counts what it read.
    pub bytes_read: AtomicU64,
    pub blobs_new: AtomicU64,
    pub bytes_new: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub packs: AtomicU64,
}

struct EncodeJob {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
}

/// New blobs not yet handed to an encoder.
#[derive(Default)]
struct Batch {
    jobs: Vec<EncodeJob>,
    bytes: usize,
}

impl Batch {
    /// Add a job; returns the batch to send once it is full.
    fn push(&mut self, job: EncodeJob) -> Option<Vec<EncodeJob>> {
        self.bytes += job.data.len();
        self.jobs.push(job);
        (self.bytes >= BATCH_BYTES || self.jobs.len() >= BATCH_BLOBS).then(|| self.take())
    }

    fn take(&mut self) -> Vec<EncodeJob> {
        self.bytes = 0;
        std::mem::take(&mut self.jobs)
    }
}

/// A finished volume waiting in the spool for upload.
struct Spooled {
    id: Id,
    size: u64,
    path: TempPath,
    entries: Vec<PackEntry>,
}

struct Shared {
    repo: Repository<Indexed>,
    /// Blobs already in the repository that may be referenced.
    known: Arc<MasterIndex>,
    /// Volumes marked for deletion: their blobs must be stored again, never referenced.
    excluded_packs: HashSet<Id>,
    seen: Mutex<HashSet<Id>>,
    batch: Mutex<Batch>,
    builders: Mutex<[Option<PackBuilder<SpoolFile>>; 2]>,
    spool_dir: std::path::PathBuf,
    /// The spool file is the stored volume (a filesystem repository): bypass the page cache.
    spool_direct: bool,
    segment: Mutex<IndexSegment>,
    segments_written: Mutex<Vec<(String, IndexSegment)>>,
    pack_size: usize,
    failed: AtomicBool,
    stop: Option<Arc<AtomicBool>>,
    error: Mutex<Option<Error>>,
    stats: SinkStats,
    upload_tx: Mutex<Option<Sender<Spooled>>>,
}

/// Accepts blobs from any thread; see the module docs.
pub struct BlobSink {
    shared: Arc<Shared>,
    encode_tx: Option<Sender<Vec<EncodeJob>>>,
    encoders: Vec<JoinHandle<()>>,
    uploaders: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BlobSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobSink").finish_non_exhaustive()
    }
}

fn slot(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    }
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn spool_error(&self, e: std::io::Error) -> Error {
        if matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            StorageError::NoSpace {
                location: self.spool_dir.display().to_string(),
                key: "a new volume".into(),
            }
            .into()
        } else {
            Error::io(&self.spool_dir, e)
        }
    }

    fn send_pack(&self, pack: Spooled) {
        let tx = self
            .upload_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(tx) = tx {
            // Uploaders only stop after the sender is dropped, so this cannot be refused.
            let _ = tx.send(pack);
        }
    }

    fn seal_and_send(&self, builder: PackBuilder<SpoolFile>) {
        let finished = match builder.finish(self.repo.key()) {
            Ok(f) => f,
            Err(crate::format::pack::PackWriteError::Io(e)) => {
                return self.fail(self.spool_error(e));
            }
            Err(crate::format::pack::PackWriteError::Crypto(e)) => return self.fail(e.into()),
        };
        match finished.out.finish() {
            Ok(path) => self.send_pack(Spooled {
                id: finished.id,
                size: finished.size,
                path,
                entries: finished.entries,
            }),
            Err(e) => self.fail(self.spool_error(e)),
        }
    }

    fn encode(&self, compressor: &mut Compressor, job: EncodeJob) {
        let blob = match encode_blob(self.repo.key(), compressor, job.kind, job.id, &job.data) {
            Ok(b) => b,
            Err(e) => return self.fail(e.into()),
        };
        drop(job.data);
        self.append(&blob);
    }

    /// Append a sealed blob to the open volume of its kind, sealing and sending the volume
    /// once full.
    fn append(&self, blob: &EncodedBlob) {
        self.stats.blobs_new.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_new
            .fetch_add(u64::from(blob.header.raw_len), Ordering::Relaxed);
        self.stats
            .bytes_stored
            .fetch_add(blob.bytes.len() as u64, Ordering::Relaxed);
        let full = {
            let mut builders = self.builders.lock().unwrap_or_else(|p| p.into_inner());
            let slot = &mut builders[slot(blob.header.kind)];
            if slot.is_none() {
                match SpoolFile::create(&self.spool_dir, self.spool_direct)
                    .and_then(|f| PackBuilder::new(f, self.repo.key().id_scheme()))
                {
                    Ok(b) => *slot = Some(b),
                    Err(e) => return self.fail(self.spool_error(e)),
                }
            }
            let Some(b) = slot.as_mut() else { return };
            if let Err(e) = b.add(blob) {
                return self.fail(self.spool_error(e));
            }
            if b.len() >= self.pack_size as u64 {
                slot.take()
            } else {
                None
            }
        };
        if let Some(builder) = full {
            self.seal_and_send(builder);
        }
    }

    fn store_pack(&self, pack: Spooled) -> Result<()> {
        let Spooled {
            id,
            size,
            path,
            entries,
        } = pack;
        let stored = self.repo.store().put_file(&pack_key(&id), path.path());
        // put_file consumed the file whether or not it succeeded.
        path.keep();
        stored?;
        crate::faults::crash_point("sink:after-volume");
        self.stats.packs.fetch_add(1, Ordering::Relaxed);
        let full = {
            let mut seg = self.segment.lock().unwrap_or_else(|p| p.into_inner());
            seg.add_pack(id, size, &entries);
            (seg.packs.len() >= PACKS_PER_SEGMENT).then(|| std::mem::take(&mut *seg))
        };
        if let Some(seg) = full {
            self.write_segment(&seg)?;
        }
        Ok(())
    }

    fn write_segment(&self, seg: &IndexSegment) -> Result<()> {
        if seg.is_empty() {
            return Ok(());
        }
        let (id, sealed) = seg.seal(self.repo.key())?;
        let name = format!("index/{}", id.to_hex());
        self.repo.store().put(&name, sealed)?;
        self.segments_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, seg.clone()));
        Ok(())
    }
}

/// What the sink wrote, once finished.
#[derive(Debug, Clone, Default)]
pub struct SinkSummary {
    pub blobs_new: u64,
    pub bytes_new: u64,
    pub bytes_stored: u64,
    pub packs: u64,
    /// Segments written, so the caller can extend its in-memory index.
    pub index_segments: Vec<(String, IndexSegment)>,
}

impl BlobSink {
    pub(crate) fn new(
        repo: &Repository<Indexed>,
        excluded_packs: HashSet<Id>,
        opts: &SinkOptions,
    ) -> Result<Self> {
        let (encode_tx, encode_rx) = bounded::<Vec<EncodeJob>>(opts.encoders);
        let (upload_tx, upload_rx) = bounded::<Spooled>(opts.uploads.max(1));
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            known: repo.index().clone(),
            excluded_packs,
            seen: Mutex::new(HashSet::new()),
            batch: Mutex::new(Batch::default()),
            builders: Mutex::new([None, None]),
            spool_dir: repo.store().spool_dir(),
            spool_direct: repo.store().spool_is_destination(),
            segment: Mutex::new(IndexSegment::default()),
            segments_written: Mutex::new(Vec::new()),
            pack_size: opts.pack_size,
            failed: AtomicBool::new(false),
            stop: opts.stop.clone(),
            error: Mutex::new(None),
            stats: SinkStats::default(),
            upload_tx: Mutex::new(Some(upload_tx)),
        });
        let mut encoders = Vec::new();
        for i in 0..opts.encoders.max(1) {
            let rx: Receiver<Vec<EncodeJob>> = encode_rx.clone();
            let sh = shared.clone();
            let mut compressor = Compressor::new(opts.compression).map_err(Error::internal)?;
            encoders.push(
                std::thread::Builder::new()
                    .name(format!("holdfast-encode-{i}"))
                    .spawn(move || {
                        for batch in rx {
                            for job in batch {
                                // After a failure, drain so producers never block forever.
                                if !sh.failed.load(Ordering::Relaxed) {
                                    sh.encode(&mut compressor, job);
                                }
                            }
                        }
                    })
                    .map_err(Error::internal)?,
            );
        }
        let mut uploaders = Vec::new();
        for i in 0..opts.uploads.max(1) {
            let rx = upload_rx.clone();
            let sh = shared.clone();
            uploaders.push(
                std::thread::Builder::new()
                    .name(format!("holdfast-upload-{i}"))
                    .spawn(move || {
                        for pack in rx {
                            if !sh.failed.load(Ordering::Relaxed)
                                && let Err(e) = sh.store_pack(pack)
                            {
                                sh.fail(e);
                            }
                        }
                    })
                    .map_err(Error::internal)?,
            );
        }
        Ok(BlobSink {
            shared,
            encode_tx: Some(encode_tx),
            encoders,
            uploaders,
        })
    }

    pub(crate) fn key(&self) -> &crate::crypto::MasterKey {
        self.shared.repo.key()
    }

    /// Whether an earlier step failed; producers should stop early.
    pub(crate) fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Count `n` bytes read from a source.
    pub(crate) fn count_read(&self, n: u64) {
        self.shared.stats.bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes read from the sources so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.shared.stats.bytes_read.load(Ordering::Relaxed)
    }

    /// Whether the backup was asked to stop (the run is then recorded as Aborted).
    pub(crate) fn should_stop(&self) -> bool {
        self.shared
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Whether a blob can be referenced without storing it: it is in a live volume.
    pub(crate) fn is_known(&self, id: &Id) -> bool {
        match self.shared.known.lookup(id) {
            Some(loc) => !self.shared.excluded_packs.contains(&loc.pack),
            None => false,
        }
    }

    /// Whether blob `id` is this caller's to store: neither in a live volume nor offered
    /// before. An earlier failure stops every producer.
    fn claim(&self, id: Id) -> Result<bool> {
        if self.has_failed() {
            return Err(Error::Interrupted);
        }
        Ok(!self.is_known(&id)
            && self
                .shared
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id))
    }

    /// Offer a blob. Returns `true` if it is new and will be stored. `data` is copied only
    /// when new.
    pub(crate) fn add(&self, kind: BlobKind, id: Id, data: &[u8]) -> Result<bool> {
        if !self.claim(id)? {
            return Ok(false);
        }
        let job = EncodeJob {
            kind,
            id,
            data: data.to_vec(),
        };
        let full = self
            .shared
            .batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job);
        if let Some(batch) = full {
            self.send(batch)?;
        }
        Ok(true)
    }

    /// Offer a blob already sealed under this repository's key (a copy's, moved from a
    /// repository that shares it): stored as it is, on the caller's thread, unless the
    /// repository has it. Returns `true` if it will be stored.
    pub(crate) fn add_sealed(&self, blob: &EncodedBlob) -> Result<bool> {
        if !self.claim(blob.header.id)? {
            return Ok(false);
        }
        self.shared.append(blob);
        if self.has_failed() {
            return Err(Error::Interrupted);
        }
        Ok(true)
    }

    fn send(&self, batch: Vec<EncodeJob>) -> Result<()> {
        match &self.encode_tx {
            Some(tx) => tx.send(batch).map_err(|_| Error::Interrupted),
            None => Err(Error::Interrupted),
        }
    }

    /// Flush everything, wait for storage, write the last index segment. On any failure the
    /// first error is returned and nothing further is indexed.
    pub(crate) fn finish(mut self) -> Result<SinkSummary> {
        let last = self
            .shared
            .batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if !last.is_empty() && self.send(last).is_err() {
            self.shared.fail(Error::internal(
                "the encoders stopped before the last blobs",
            ));
        }
        self.encode_tx.take();
        for h in self.encoders.drain(..) {
            if h.join().is_err() {
                self.shared
                    .fail(Error::internal("an encoder thread panicked"));
            }
        }
        let partial = {
            let mut builders = self
                .shared
                .builders
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            [builders[0].take(), builders[1].take()]
        };
        if !self.has_failed() {
            for b in partial.into_iter().flatten() {
                self.shared.seal_and_send(b);
            }
        }
        self.shared
            .upload_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for h in self.uploaders.drain(..) {
            if h.join().is_err() {
                self.shared
                    .fail(Error::internal("an upload thread panicked"));
            }
        }
        if !self.has_failed() {
            let seg = std::mem::take(
                &mut *self
                    .shared
                    .segment
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            if let Err(e) = self.shared.write_segment(&seg) {
                self.shared.fail(e);
            }
        }
        if let Some(e) = self
            .shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        let s = &self.shared.stats;
        Ok(SinkSummary {
            blobs_new: s.blobs_new.load(Ordering::Relaxed),
            bytes_new: s.bytes_new.load(Ordering::Relaxed),
            bytes_stored: s.bytes_stored.load(Ordering::Relaxed),
            packs: s.packs.load(Ordering::Relaxed),
            index_segments: self
                .shared
                .segments_written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        // Dropped without finish (an error elsewhere): stop the threads without indexing.
        self.shared.failed.store(true, Ordering::SeqCst);
        self.encode_tx.take();
        self.shared
            .upload_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for h in self.encoders.drain(..).chain(self.uploaders.drain(..)) {
            let _ = h.join();
        }
    }
}
