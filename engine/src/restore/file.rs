//! Writing file content and replacing entries atomically.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::tree::{Extent, Node};
use crate::fsmeta::apply_file_metadata;

use super::report::ItemOutcome;
use super::{Ctx, FileJob};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    dir.join(format!(
        ".holdfast-restore-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Build an entry under a temporary name next to `path`, then move it into place: with
/// `replace`, over whatever is there; without, only if nothing appeared there meanwhile.
/// A half-written entry never sits at the final path.
pub(super) fn with_replacement(
    path: &Path,
    replace: bool,
    build: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    if let Err(e) = build(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let flags = if replace {
        rustix::fs::RenameFlags::empty()
    } else {
        rustix::fs::RenameFlags::NOREPLACE
    };
    match rustix::fs::renameat_with(rustix::fs::CWD, &tmp, rustix::fs::CWD, path, flags) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(if e == rustix::io::Errno::EXIST {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "an entry appeared at this path during the restore",
                )
            } else if e == rustix::io::Errno::ISDIR || e == rustix::io::Errno::NOTEMPTY {
                io::Error::other("a directory is in the way")
            } else {
                e.into()
            })
        }
    }
}

/// Files of at least this many chunks are written by several threads at once: one worker
/// restoring a 1 GiB file alone would otherwise leave the other cores idle at the end.
const PARALLEL_MIN_CHUNKS: usize = 8;

/// Write the node's data into `file` at its extents; large files in parallel segments.
fn write_content(ctx: &Ctx<'_>, node: &Node, file: &std::fs::File) -> io::Result<u64> {
    let extents = node.data_extents();
    let expected: u64 = extents.iter().map(|e| e.len).sum();
    let parts = segments(ctx, &node.content);
    let written = if parts.is_empty() {
        write_segment(ctx, &node.content, 0, expected, &extents, file)?
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .map(|part| {
                    let chunks = &node.content[part.chunks.clone()];
                    let extents = &extents;
                    scope.spawn(move || {
                        write_segment(ctx, chunks, part.stream_start, part.len, extents, file)
                    })
                })
                .collect();
            let mut total = 0u64;
            for h in handles {
                total += h
                    .join()
                    .map_err(|_| io::Error::other("a restore thread panicked"))??;
            }
            Ok::<u64, io::Error>(total)
        })?
    };
    if written != expected {
        return Err(io::Error::other(format!(
            "backup holds {written} bytes of data, the file had {expected}"
        )));
    }
    Ok(written)
}

/// A contiguous run of a file's chunks and where its data sits in the file's data stream.
struct Segment {
    chunks: std::ops::Range<usize>,
    stream_start: u64,
    len: u64,
}

/// Split a file's chunks into up to one segment per core, placed by the index's plaintext
/// lengths so nothing is read to plan. An empty plan means: write sequentially (small file,
/// one core, or a chunk missing from the index, which the sequential path then reports).
fn segments(ctx: &Ctx<'_>, content: &[crate::id::Id]) -> Vec<Segment> {
    let cores = ctx.cores;
    if content.len() < PARALLEL_MIN_CHUNKS || cores < 2 || ctx.opts.threads < 2 {
        return Vec::new();
    }
    let index = ctx.repo.index();
    let Some(lens) = content
        .iter()
        .map(|id| index.lookup(id).map(|l| u64::from(l.raw_len)))
        .collect::<Option<Vec<u64>>>()
    else {
        return Vec::new();
    };
    let per = content.len().div_ceil(cores.min(content.len()));
    let mut out = Vec::new();
    let mut stream_start = 0u64;
    for start in (0..content.len()).step_by(per) {
        let end = (start + per).min(content.len());
        let len = lens[start..end].iter().sum::<u64>();
        out.push(Segment {
            chunks: start..end,
            stream_start,
            len,
        });
        stream_start += len;
    }
    out
}

/// Write `chunks`, whose `len` bytes of data start `stream_start` bytes into the file's data
/// stream, at the file offsets the extents give for that part of the stream.
fn write_segment(
    ctx: &Ctx<'_>,
    chunks: &[crate::id::Id],
    stream_start: u64,
    len: u64,
    extents: &[Extent],
    file: &std::fs::File,
) -> io::Result<u64> {
    // Find the extent holding `stream_start` and the position within it.
    let mut ext = extents.iter().copied();
    let mut current = ext.next();
    let mut within = stream_start;
    while let Some(e) = current {
        if within < e.len {
            break;
        }
        within -= e.len;
        current = ext.next();
    }
    let mut written = 0u64;
    for id in chunks {
        let data = ctx
            .repo
            .load_blob(id)
            .map_err(|e| io::Error::other(format!("backup data unreadable: {e}")))?;
        let mut rest: &[u8] = &data;
        while !rest.is_empty() {
            let Some(e) = current else {
                return Err(io::Error::other(
                    "backup holds more data than the file's size (damaged listing)",
                ));
            };
            let n = (rest.len() as u64).min(e.len - within) as usize;
            file.write_all_at(&rest[..n], e.offset + within)?;
            rest = &rest[n..];
            within += n as u64;
            written += n as u64;
            ctx.progress.add_done(0, n as u64);
            if within == e.len {
                current = ext.next();
                within = 0;
            }
        }
    }
    // A segment that wrote more or less than planned would overlap or leave a gap next to
    // its neighbour, which the file's total alone cannot reveal.
    if written != len {
        return Err(io::Error::other(format!(
            "backup holds {written} bytes for a part of the file the index gives as {len}"
        )));
    }
    Ok(written)
}

fn restore_content(ctx: &Ctx<'_>, job: &FileJob) -> io::Result<u64> {
    let mut bytes = 0;
    with_replacement(&job.path, job.replace, |tmp| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        // Extending first leaves holes wherever the data extents do not reach; a dense file
        // is written end to end and needs no extending.
        if job.node.extents.is_some() {
            file.set_len(job.node.size)?;
        }
        bytes = write_content(ctx, &job.node, &file)?;
        apply_file_metadata(&file, &job.node, ctx.meta)
    })?;
    Ok(bytes)
}

/// Restore a file's content; the first file of a hard-link group records its path.
pub(super) fn restore_file(ctx: &Ctx<'_>, job: &FileJob) -> ItemOutcome {
    let outcome = match restore_content(ctx, job) {
        Ok(bytes) => ItemOutcome::Restored { bytes },
        Err(e) => ItemOutcome::Unrestored(e.to_string()),
    };
    ctx.progress.add_done(1, 0);
    if let (Some(g), ItemOutcome::Restored { .. }) = (job.node.link_group, &outcome) {
        ctx.link_firsts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(g, job.path.clone());
    }
    outcome
}

/// A later member of a hard-link group: link to the first restored member, or, when that
/// one was not restored, write the content and become the group's first.
pub(super) fn restore_link_or_copy(ctx: &Ctx<'_>, job: &FileJob) -> ItemOutcome {
    let first = job.node.link_group.and_then(|g| {
        ctx.link_firsts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g)
            .cloned()
    });
    match first.filter(|p| !p.as_os_str().is_empty()) {
        Some(first) => {
            let r = with_replacement(&job.path, job.replace, |tmp| {
                std::fs::hard_link(&first, tmp)
            });
            ctx.progress.add_done(1, 0);
            match r {
                Ok(()) => ItemOutcome::Restored { bytes: 0 },
                Err(e) => ItemOutcome::Unrestored(format!(
                    "hard link to {} not created: {e}",
                    first.display()
                )),
            }
        }
        None => restore_file(ctx, job),
    }
}
