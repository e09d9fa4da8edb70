//! Reading metadata with `lstat`, `llistxattr` and `SEEK_DATA`/`SEEK_HOLE`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::format::tree::{Extent, Node, NodeKind, Timespec, Xattr};

/// What `lstat` says about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryStat {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub inode: u64,
    pub device: u64,
    pub size: u64,
    pub rdev: u64,
    pub nlink: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
}

impl EntryStat {
    pub(crate) fn from_metadata(m: &std::fs::Metadata) -> Self {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::CharDevice
        } else if ft.is_block_device() {
            NodeKind::BlockDevice
        } else if ft.is_socket() {
            NodeKind::Socket
        } else {
            NodeKind::File
        };
        EntryStat {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: Timespec {
                sec: m.mtime(),
                nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
            },
            ctime: Timespec {
                sec: m.ctime(),
                nsec: m.ctime_nsec().clamp(0, 999_999_999) as u32,
            },
            inode: m.ino(),
            device: m.dev(),
            size: if kind == NodeKind::File { m.len() } else { 0 },
            rdev: m.rdev(),
            nlink: m.nlink(),
            blocks: m.blocks(),
        }
    }

    /// A node with this metadata and no content yet.
    pub(crate) fn to_node(&self, name: Vec<u8>) -> Node {
        Node {
            name,
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            ctime: self.ctime,
            inode: self.inode,
            device: self.device,
            size: self.size,
            xattrs: Vec::new(),
            content: Vec::new(),
            extents: None,
            subtree: None,
            target: Vec::new(),
            rdev: if matches!(self.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
                self.rdev
            } else {
                0
            },
            link_group: None,
            flags: 0,
        }
    }

    /// Whether the content may have changed between two stats of the same file.
    pub(crate) fn content_changed(&self, later: &EntryStat) -> bool {
        self.size != later.size
            || self.mtime != later.mtime
            || self.ctime != later.ctime
            || self.inode != later.inode
    }
}

pub(crate) fn lstat(path: &Path) -> io::Result<EntryStat> {
    Ok(EntryStat::from_metadata(&std::fs::symlink_metadata(path)?))
}

/// The `user.*` extended attributes of the entry itself (symlinks are not followed), sorted.
/// Filesystems without xattr support yield none.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec();
        if !bytes.starts_with(b"user.") {
            continue;
        }
        // An attribute removed between list and get is simply gone.
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr { name: bytes, value });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Data extents of a file that has holes; `None` for a dense file or when the filesystem
/// cannot tell. Leaves the file position at 0.
pub(crate) fn data_extents(file: &File, stat: &EntryStat) -> io::Result<Option<Vec<Extent>>> {
    use rustix::fs::{SeekFrom, seek};
    // A file with every byte allocated has no holes worth finding.
    if stat.size == 0 || stat.blocks.saturating_mul(512) >= stat.size {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < stat.size {
        let data = match seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::OPNOTSUPP) => {
                seek(file, SeekFrom::Start(0))?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if data >= stat.size {
            break;
        }
        let hole = seek(file, SeekFrom::Hole(data))?.min(stat.size);
        out.push(Extent {
            offset: data,
            len: hole - data,
        });
        pos = hole;
    }
    seek(file, SeekFrom::Start(0))?;
    if out.len() == 1 && out[0].offset == 0 && out[0].len == stat.size {
        return Ok(None);
    }
    Ok(Some(out))
}
