//! Writing metadata back: ownership, mode, xattrs, times; creating special files.

use std::io;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timestamps};

use crate::format::tree::{Node, NodeKind};

/// What metadata to restore.
#[derive(Debug, Clone, Copy)]
pub struct MetadataOptions {
    /// Restore uid/gid. As non-root, changing ownership to another user fails; such failures
    /// are counted (`NotKept`), because an unprivileged restore cannot do better.
    pub owner: bool,
}

/// What of an entry's metadata an unprivileged restore could not apply: its owner (a file
/// it creates is its own), or the mode and times of an existing entry it does not own (the
/// root of a volume). Root applies everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotKept {
    pub owner: bool,
    pub mode: bool,
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn ts(t: crate::format::tree::Timespec) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec) as _,
    }
}

/// Set every xattr of the node with `set`. A target filesystem without user xattrs (some
/// NFS) cannot keep them, which is not an error.
fn set_xattrs(
    node: &Node,
    mut set: impl FnMut(&std::ffi::OsStr, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    for x in &node.xattrs {
        let name: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(x.name.as_slice());
        match set(name, &x.value) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a change only root may make (giving a file away), or only the owner (a mode),
/// applied: as non-root it fails with EPERM, and an unprivileged restore cannot do better
/// (see `MetadataOptions::owner`); any other failure is an error.
fn permitted(r: rustix::io::Result<()>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::PERM) if !is_root() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn owner(node: &Node) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (
        Some(rustix::fs::Uid::from_raw(node.uid)),
        Some(rustix::fs::Gid::from_raw(node.gid)),
    )
}

/// Access time is not kept; both times are set to the modification time.
fn times(node: &Node) -> Timestamps {
    Timestamps {
        last_access: ts(node.mtime),
        last_modification: ts(node.mtime),
    }
}

/// Apply a node's metadata to `path`, in the order that keeps each step from undoing the
/// last: xattrs, owner (which clears setuid), mode, then times. What an unprivileged
/// restore could not apply is returned, not an error.
pub(crate) fn apply_metadata(
    path: &Path,
    node: &Node,
    opts: MetadataOptions,
) -> io::Result<NotKept> {
    let symlink = node.kind == NodeKind::Symlink;
    if !symlink {
        set_xattrs(node, |name, value| xattr::set(path, name, value))?;
    }
    let mut not_kept = NotKept::default();
    if opts.owner {
        let (uid, gid) = owner(node);
        not_kept.owner = !permitted(rustix::fs::chownat(
            CWD,
            path,
            uid,
            gid,
            AtFlags::SYMLINK_NOFOLLOW,
        ))?;
    }
    if !symlink {
        let mode = rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(node.mode), AtFlags::empty());
        if !permitted(mode)? {
            // Not ours (a volume's root): its times cannot be set either.
            not_kept.mode = true;
            return Ok(not_kept);
        }
    }
    rustix::fs::utimensat(CWD, path, &times(node), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(not_kept)
}

/// Apply a regular file's metadata through its open descriptor (no path lookups), in the
/// same order as `apply_metadata`; the owner only when it differs from the creator's. Call
/// after the last write.
pub(crate) fn apply_file_metadata(
    file: &std::fs::File,
    node: &Node,
    opts: MetadataOptions,
) -> io::Result<NotKept> {
    set_xattrs(node, |name, value| {
        xattr::FileExt::set_xattr(file, name, value)
    })?;
    let mut not_kept = NotKept::default();
    if opts.owner
        && (node.uid != rustix::process::geteuid().as_raw()
            || node.gid != rustix::process::getegid().as_raw())
    {
        let (uid, gid) = owner(node);
        not_kept.owner = !permitted(rustix::fs::fchown(file, uid, gid))?;
    }
    rustix::fs::fchmod(file, Mode::from_raw_mode(node.mode))?;
    rustix::fs::futimens(file, &times(node))?;
    Ok(not_kept)
}

/// Create a FIFO or device node. Devices need root; the error says so.
pub(crate) fn create_special(path: &Path, node: &Node) -> io::Result<()> {
    let file_type = match node.kind {
        NodeKind::Fifo => FileType::Fifo,
        NodeKind::CharDevice => FileType::CharacterDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
        other => {
            return Err(io::Error::other(format!(
                "cannot create a {} node",
                other.name()
            )));
        }
    };
    let needs_mknod = || {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "creating a device node needs the MKNOD capability (CAP_MKNOD), which this restore \
             does not have: restore it as root outside a container, or give the restore the \
             capability",
        )
    };
    if file_type != FileType::Fifo && !is_root() {
        return Err(needs_mknod());
    }
    match rustix::fs::mknodat(
        CWD,
        path,
        file_type,
        Mode::from_raw_mode(node.mode & 0o777),
        node.rdev,
    ) {
        // Root without CAP_MKNOD (a container that did not add it) is refused with EPERM.
        Err(rustix::io::Errno::PERM) if file_type != FileType::Fifo => Err(needs_mknod()),
        r => Ok(r?),
    }
}
