//! Tree blobs: one per directory, listing its entries sorted by name (as bytes).
//!
//! Encoded with postcard (a stable, compact, non-self-describing encoding), fields in the
//! order declared here; a change to these structs is a format change.

use serde::{Deserialize, Serialize};

use crate::id::Id;

/// The kind of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A Unix domain socket.
    Socket,
}

impl NodeKind {
    /// The kind's name as listings show it.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice => "chardev",
            NodeKind::BlockDevice => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timespec {
    /// Seconds since the Unix epoch.
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    /// The attribute's name.
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    /// Its value.
    pub value: Vec<u8>,
}

/// A byte range of a sparse file that holds data; everything else is a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    /// Where the data region starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name, raw bytes (not necessarily UTF-8).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What the entry is.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner's numeric user id.
    pub uid: u32,
    /// Owner's numeric group id.
    pub gid: u32,
    /// Last modification time.
    pub mtime: Timespec,
    /// Status change time; used only to detect changes on later runs.
    pub ctime: Timespec,
    /// Inode number at backup time, to find hard links and unchanged files.
    pub inode: u64,
    /// Device number at backup time, with `inode` identifying the file.
    pub device: u64,
    /// Logical size for files; 0 for other kinds.
    pub size: u64,
    /// Extended attributes.
    pub xattrs: Vec<Xattr>,
    /// Data blobs in order; their concatenation is the file's data (or its data extents).
    pub content: Vec<Id>,
    /// For sparse files, the data extents; `None` means one extent covering the whole file.
    pub extents: Option<Vec<Extent>>,
    /// For directories, the tree blob of its entries.
    pub subtree: Option<Id>,
    /// For symlinks, the target as raw bytes.
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    /// Device number for character and block devices.
    pub rdev: u64,
    /// Files sharing a hard-link group number were one inode; restore links them again.
    pub link_group: Option<u64>,
    /// Bit flags, see [`Node::CHANGED_DURING_READ`].
    pub flags: u32,
}

impl Node {
    /// The file changed while it was read; its stored content may mix old and new data.
    pub const CHANGED_DURING_READ: u32 = 1;

    pub(crate) fn changed_during_read(&self) -> bool {
        self.flags & Self::CHANGED_DURING_READ != 0
    }

    /// Byte ranges of the file that carry data, in order.
    pub(crate) fn data_extents(&self) -> Vec<Extent> {
        match &self.extents {
            Some(e) => e.clone(),
            None if self.size > 0 => vec![Extent {
                offset: 0,
                len: self.size,
            }],
            None => Vec::new(),
        }
    }
}

/// The entries of one directory, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The directory's entries, sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_round_trip_with_non_utf8_names() {
        let node = Node {
            name: vec![0xff, b'a', 0x80],
            kind: NodeKind::File,
            mode: 0o4755,
            uid: 1000,
            gid: 1000,
            mtime: Timespec {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            ctime: Timespec::default(),
            inode: 42,
            device: 1,
            size: 10,
            xattrs: vec![Xattr {
                name: b"user.a".to_vec(),
                value: vec![0, 1],
            }],
            content: vec![Id([1; 32])],
            extents: Some(vec![Extent {
                offset: 4096,
                len: 10,
            }]),
            subtree: None,
            target: Vec::new(),
            rdev: 0,
            link_group: Some(3),
            flags: Node::CHANGED_DURING_READ,
        };
        let tree = Tree { nodes: vec![node] };
        let back = Tree::decode(&tree.encode().unwrap()).unwrap();
        assert_eq!(back, tree);
        assert!(back.nodes[0].changed_during_read());
    }
}
