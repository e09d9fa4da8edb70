//! Writing file content by volume. The walk hands over files in batches; for each batch the
//! blobs are grouped by the volume that holds them, each volume is read once (whole, or a
//! few coalesced ranges) by one of several workers, and every blob is written into each file
//! that needs it as soon as it is decoded. A file is finished (metadata, then moved into
//! place) by whichever worker writes its last blob.
//!
//! Planning by volume is what keeps a restore from an object store from paying a round trip
//! per blob, and a restore of many small files from reading a volume per file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::fsmeta::apply_file_metadata;
use crate::id::Id;
use crate::repo::{Coalescing, VolumeRead, WantedBlob, plan_volume_reads};

use super::content::StreamMap;
use super::report::ItemOutcome;
use super::{Ctx, FileJob};

/// A batch closes at this many files or blobs, so the plan of a huge tree stays bounded in
/// memory (a few hundred bytes a file); a larger batch groups more of each volume's blobs
/// into one read (a volume that straddles two batches is read twice).
pub(super) const BATCH_FILES: usize = 16_384;
pub(super) const BATCH_BLOBS: usize = 1 << 18;

/// Files kept open between writes of their blobs (a file whose blobs sit in several
/// volumes is written by several reads); past this, a file is reopened for each write.
const OPEN_FILES: usize = 256;

/// Where one decoded blob goes: a file of the batch and a position in its data stream.
#[derive(Debug, Clone, Copy)]
struct Target {
    file: u32,
    pos: u64,
}

#[derive(Debug)]
struct Wanted {
    blob: WantedBlob,
    raw_len: u32,
    targets: Vec<Target>,
}

#[derive(Debug)]
struct VolumeWork {
    volume: Id,
    /// Sorted by offset.
    blobs: Vec<Wanted>,
    reads: Vec<VolumeRead>,
}

#[derive(Debug, Default)]
struct SlotState {
    /// Blob writes still to come.
    remaining: usize,
    /// The temporary file, once created.
    tmp: Option<PathBuf>,
    file: Option<File>,
    written: u64,
    failure: Option<String>,
    finished: bool,
}

struct Slot {
    job: FileJob,
    map: StreamMap,
    state: Mutex<SlotState>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Restore the content of `files` (first members of hard-link groups and plain files; the
/// walk has decided each one's place and overwrite), recording each file's outcome.
pub(super) fn restore_files(ctx: &Ctx<'_>, files: Vec<FileJob>) {
    let (slots, volumes) = plan(ctx, files);
    let open = AtomicUsize::new(0);
    let run = Run {
        ctx,
        slots: &slots,
        open: &open,
    };
    // Files with nothing to read (empty, all holes, or already failed) finish at once.
    for slot in &slots {
        let mut st = slot.lock();
        if st.remaining == 0 {
            run.finish(slot, &mut st);
        }
    }
    let next = AtomicUsize::new(0);
    let workers = ctx.threads.min(volumes.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(work) = volumes.get(i) else { break };
                    if ctx.should_stop() {
                        break;
                    }
                    run.volume(work);
                }
            });
        }
    });
    // Only a stop leaves files unfinished: their temporary files go, nothing is recorded.
    for slot in &slots {
        let mut st = slot.lock();
        if !st.finished {
            st.file = None;
            if let Some(tmp) = st.tmp.take() {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

/// Group the batch's blobs by volume, in the order the files need them.
fn plan(ctx: &Ctx<'_>, files: Vec<FileJob>) -> (Vec<Slot>, Vec<VolumeWork>) {
    let index = ctx.repo.index();
    let mut volumes: Vec<VolumeWork> = Vec::new();
    let mut volume_of: HashMap<Id, usize> = HashMap::new();
    let mut blob_at: HashMap<Id, (usize, usize)> = HashMap::new();
    let mut slots = Vec::with_capacity(files.len());
    for (n, job) in files.into_iter().enumerate() {
        let map = StreamMap::new(job.node.data_extents());
        let mut st = SlotState::default();
        let mut pos = 0u64;
        for id in &job.node.content {
            let Some(loc) = index.lookup(id) else {
                st.failure = Some(format!(
                    "backup data unreadable: blob {} is not in the index",
                    id.short()
                ));
                break;
            };
            let target = Target {
                file: n as u32,
                pos,
            };
            pos += u64::from(loc.raw_len);
            st.remaining += 1;
            if let Some(&(v, b)) = blob_at.get(id) {
                volumes[v].blobs[b].targets.push(target);
                continue;
            }
            let v = *volume_of.entry(loc.pack).or_insert_with(|| {
                volumes.push(VolumeWork {
                    volume: loc.pack,
                    blobs: Vec::new(),
                    reads: Vec::new(),
                });
                volumes.len() - 1
            });
            volumes[v].blobs.push(Wanted {
                blob: WantedBlob {
                    id: *id,
                    offset: loc.offset,
                    length: loc.length,
                },
                raw_len: loc.raw_len,
                targets: vec![target],
            });
            blob_at.insert(*id, (v, volumes[v].blobs.len() - 1));
        }
        if st.failure.is_none() && pos != map.total {
            st.failure = Some(format!(
                "backup holds {pos} bytes of data, the file had {}",
                map.total
            ));
        }
        slots.push(Slot {
            job,
            map,
            state: Mutex::new(st),
        });
    }
    let coalescing = Coalescing::for_store(ctx.repo.store());
    for work in &mut volumes {
        work.blobs.sort_unstable_by_key(|w| w.blob.offset);
        let wanted: Vec<WantedBlob> = work.blobs.iter().map(|w| w.blob).collect();
        work.reads = plan_volume_reads(&wanted, coalescing);
    }
    (slots, volumes)
}

struct Run<'r, 'c> {
    ctx: &'r Ctx<'c>,
    slots: &'r [Slot],
    open: &'r AtomicUsize,
}

impl Run<'_, '_> {
    /// Read one volume's planned ranges and write every blob where it goes, as it comes.
    fn volume(&self, work: &VolumeWork) {
        for read in &work.reads {
            if self.ctx.should_stop() {
                return;
            }
            let mut reader = self.ctx.repo.read_volume(&work.volume, read);
            for wanted in &work.blobs[read.blobs.clone()] {
                let data = reader
                    .blob(&wanted.blob)
                    // The cause (a reset connection, a short body) is what a user acts on.
                    .map_err(|e| crate::error_category::error_chain(&e))
                    .and_then(|data| {
                        if data.len() == wanted.raw_len as usize {
                            Ok(data)
                        } else {
                            Err(format!(
                                "blob {} holds {} bytes, the index says {}",
                                wanted.blob.id.short(),
                                data.len(),
                                wanted.raw_len
                            ))
                        }
                    })
                    .map_err(|e| format!("backup data unreadable: {e}"));
                for target in &wanted.targets {
                    self.write(*target, data.as_deref());
                }
            }
        }
    }

    /// Write one blob into one file (or note why it cannot be), and finish the file after
    /// its last blob.
    fn write(&self, target: Target, data: std::result::Result<&[u8], &String>) {
        let slot = &self.slots[target.file as usize];
        let mut st = slot.lock();
        if st.finished {
            return;
        }
        if st.failure.is_none() {
            let written = data.map_err(|e| e.clone()).and_then(|data| {
                self.ensure_open(slot, &mut st)
                    .and_then(|file| slot.map.write_at(file, target.pos, data))
                    .map(|()| data.len() as u64)
                    .map_err(|e| e.to_string())
            });
            match written {
                Ok(n) => {
                    st.written += n;
                    self.ctx.progress.add_done(0, n);
                }
                Err(e) => st.failure = Some(e),
            }
        }
        st.remaining = st.remaining.saturating_sub(1);
        if st.remaining == 0 {
            self.finish(slot, &mut st);
        } else if self.open.load(Ordering::Relaxed) > OPEN_FILES && st.file.take().is_some() {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The file's temporary file, open for writing: created at its first write.
    fn ensure_open<'s>(&self, slot: &Slot, st: &'s mut SlotState) -> io::Result<&'s File> {
        if st.file.is_none() {
            let file = match &st.tmp {
                Some(tmp) => OpenOptions::new().write(true).open(tmp)?,
                None => {
                    let tmp = super::file::temp_path(&slot.job.path);
                    let file = create_temp(&tmp, slot)?;
                    st.tmp = Some(tmp);
                    file
                }
            };
            self.open.fetch_add(1, Ordering::Relaxed);
            st.file = Some(file);
        }
        st.file
            .as_ref()
            .ok_or_else(|| io::Error::other("temporary file not open"))
    }

    /// Apply the metadata and move the file into place (or remove it and say why not).
    fn finish(&self, slot: &Slot, st: &mut SlotState) {
        st.finished = true;
        let outcome = match st.failure.take() {
            Some(reason) => Err(reason),
            None => self.place(slot, st).map_err(|e| e.to_string()),
        };
        if st.file.take().is_some() {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(tmp) = st.tmp.take() {
            // After a successful move nothing is left at the temporary path.
            let _ = std::fs::remove_file(tmp);
        }
        self.ctx.progress.add_done(1, 0);
        let outcome = match outcome {
            Ok(()) => {
                if let Some(g) = slot.job.node.link_group {
                    self.ctx
                        .link_firsts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(g, slot.job.path.clone());
                }
                ItemOutcome::Restored { bytes: st.written }
            }
            Err(reason) => ItemOutcome::Unrestored(reason),
        };
        self.ctx.record(&slot.job.rel, outcome);
    }

    fn place(&self, slot: &Slot, st: &mut SlotState) -> io::Result<()> {
        // A file with no data was never opened: create it now.
        self.ensure_open(slot, st)?;
        if let Some(file) = &st.file {
            let not_kept = apply_file_metadata(file, &slot.job.node, self.ctx.meta)?;
            self.ctx.not_kept(not_kept);
        }
        let tmp = st
            .tmp
            .take()
            .ok_or_else(|| io::Error::other("temporary file missing"))?;
        super::file::move_into_place(&tmp, &slot.job.path, slot.job.replace)
    }
}

/// Create a file's temporary file; a sparse file is extended first, which leaves holes
/// wherever its data extents do not reach (a dense file is written end to end).
fn create_temp(tmp: &std::path::Path, slot: &Slot) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    if slot.job.node.extents.is_some() {
        file.set_len(slot.job.node.size)?;
    }
    Ok(file)
}
