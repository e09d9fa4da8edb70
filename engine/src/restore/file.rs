//! Building entries under temporary names and moving them into place atomically; what an
//! interrupted restore left behind; later members of hard-link groups.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::report::Leftover;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Entries are built under `<TEMP_PREFIX><pid>-<n>` next to their final path.
const TEMP_PREFIX: &str = ".holdfast-restore-";

pub(super) fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Find the temporary entries an interrupted restore (killed, out of power) left in `dir`,
/// and remove those whose restore is no longer running. They never sit at a final path,
/// so nothing restored depends on them.
pub(super) fn leftovers_in(dir: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
        if pid == Some(me) {
            continue;
        }
        let path = entry.path();
        if let Some(pid) = pid.filter(|p| restore_running(*p)) {
            out.push(Leftover::Kept(
                path,
                format!("a restore that is still running (process {pid}) is writing it"),
            ));
            continue;
        }
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => Err(io::Error::other("it is a directory")),
            _ => std::fs::remove_file(&path),
        };
        out.push(match removed {
            Ok(()) => Leftover::Removed(path),
            Err(e) => Leftover::Kept(path, format!("could not be removed: {e}")),
        });
    }
    out
}

/// Whether `pid` is a running holdfast process (on this machine).
fn restore_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end().starts_with("holdfast"))
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
    move_into_place(&tmp, path, replace)
}

/// Move a finished entry from its temporary name to `path` (see [`with_replacement`]); the
/// temporary entry is removed if the move fails.
pub(super) fn move_into_place(tmp: &Path, path: &Path, replace: bool) -> io::Result<()> {
    let flags = if replace {
        rustix::fs::RenameFlags::empty()
    } else {
        rustix::fs::RenameFlags::NOREPLACE
    };
    match rustix::fs::renameat_with(rustix::fs::CWD, tmp, rustix::fs::CWD, path, flags) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
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
