//! Writing file content and replacing entries atomically.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
        bytes = super::content::write_content(ctx, &job.node, &file)?;
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
