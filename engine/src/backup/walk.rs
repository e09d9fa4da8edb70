//! Walking a source tree: one tree blob per directory, written bottom-up.
//!
//! The walker runs on one thread and hands regular files to the reader pool, in batches, as
//! it meets them. It does not wait for a directory's files: a directory still being read is
//! kept pending and its tree stored once they are in (children before parents), so the
//! readers stay busy while the walk goes on, up to a bound on the files pending.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

use crate::format::pack::BlobKind;
use crate::format::run::{ItemError, RunStats};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::fsmeta::{EntryStat, lstat, path_bytes, read_xattrs};
use crate::id::Id;
use crate::pattern::PathFilter;
use crate::progress::Progress;
use crate::repo::{Indexed, Repository};
use crate::{Error, Result};

use super::file::{FileContent, FileFailure};
use super::promise::Promise;
use crate::sink::BlobSink;

pub(super) type FileResult = std::result::Result<FileContent, FileFailure>;

/// A file for the reader pool.
pub(super) struct FileJob {
    pub path: PathBuf,
    pub stat: EntryStat,
    pub promise: Promise<FileResult>,
}

/// Files go to the reader pool in batches of up to this many files or bytes: handing over
/// a small file cost more than reading it.
const BATCH_FILES: usize = 32;
const BATCH_BYTES: u64 = 1024 * 1024;

/// The walker's end of the reader pool's queue. Whoever waits for a file's promise must
/// [`FileQueue::flush`] first, or the file may still be here.
pub(super) struct FileQueue<'a> {
    tx: &'a Sender<Vec<FileJob>>,
    pending: Vec<FileJob>,
    bytes: u64,
}

impl<'a> FileQueue<'a> {
    pub(crate) fn new(tx: &'a Sender<Vec<FileJob>>) -> Self {
        FileQueue {
            tx,
            pending: Vec::new(),
            bytes: 0,
        }
    }

    pub(crate) fn push(&mut self, job: FileJob) -> Result<()> {
        self.bytes += job.stat.size;
        self.pending.push(job);
        if self.pending.len() >= BATCH_FILES || self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        // The reader pool only goes away after the walk: a refused send means it died.
        self.tx
            .send(std::mem::take(&mut self.pending))
            .map_err(|_| Error::Interrupted)
    }
}

/// A directory's tree: stored, or waiting for files still being read.
enum Subtree {
    Stored(Id),
    Pending(Box<PendingDir>),
}

/// A listed directory whose tree waits for some of its files or subdirectories.
struct PendingDir {
    /// Its entries in name order; `None` where a file or subdirectory is pending (or failed).
    nodes: Vec<Option<Node>>,
    files: Vec<PendingFile>,
    /// Subdirectories still pending, oldest first: position, node, contents.
    dirs: VecDeque<(usize, Node, Box<PendingDir>)>,
}

struct PendingFile {
    pos: usize,
    node: Node,
    rel: Vec<u8>,
    promise: Promise<FileResult>,
}

impl PendingDir {
    /// Whether its tree can be stored without waiting.
    fn is_ready(&self) -> bool {
        // Files finish roughly in the order they were queued: ask the last first.
        self.files.iter().rev().all(|f| f.promise.is_set())
            && self.dirs.iter().all(|(_, _, d)| d.is_ready())
    }
}

enum Slot {
    Ready(Node),
    File {
        node: Node,
        rel: Vec<u8>,
        promise: Promise<FileResult>,
    },
    Dir {
        node: Node,
        path: PathBuf,
        rel: Vec<u8>,
        parent: Option<Id>,
    },
}

/// Per-source walk state.
pub(super) struct Walker<'a> {
    pub repo: &'a Repository<Indexed>,
    pub sink: &'a BlobSink,
    pub filter: &'a PathFilter,
    pub files: FileQueue<'a>,
    pub progress: &'a Progress,
    /// Compare with the parent run and reuse unchanged files' chunk lists.
    pub reuse_unchanged: bool,
    /// Device of the source root when staying on one filesystem.
    pub root_device: Option<u64>,
    pub hardlinks: HashMap<(u64, u64), (u64, Promise<FileResult>)>,
    pub next_link_group: u64,
    /// Files submitted whose directory's tree is not stored yet.
    pub pending_files: usize,
    /// How many such files the walk may run ahead by before it waits for the oldest
    /// directory (it bounds the listings held in memory).
    pub pending_limit: usize,
    pub errors: Vec<ItemError>,
    pub warnings: Vec<ItemError>,
    pub stats: RunStats,
}

fn display(rel: &[u8]) -> String {
    if rel.is_empty() {
        "/".to_owned()
    } else {
        String::from_utf8_lossy(rel).into_owned()
    }
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(rel.len() + 1 + name.len());
    r.extend_from_slice(rel);
    r.push(b'/');
    r.extend_from_slice(name);
    r
}

/// Whether a file can be taken over from the parent run without reading it.
pub(super) fn unchanged(prev: &Node, stat: &EntryStat) -> bool {
    prev.kind == NodeKind::File
        && !prev.changed_during_read()
        && prev.size == stat.size
        && prev.mtime == stat.mtime
        && prev.ctime == stat.ctime
        && prev.inode == stat.inode
}

impl Walker<'_> {
    fn error(&mut self, rel: &[u8], msg: impl Into<String>) {
        self.stats.errors += 1;
        self.progress
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.errors.push(ItemError {
            path: display(rel),
            error: msg.into(),
        });
    }

    fn warn(&mut self, rel: &[u8], msg: impl Into<String>) {
        self.stats.warnings += 1;
        self.warnings.push(ItemError {
            path: display(rel),
            error: msg.into(),
        });
    }

    fn load_parent(&mut self, rel: &[u8], id: Option<Id>) -> Vec<Node> {
        let Some(id) = id else { return Vec::new() };
        match self.repo.load_tree(&id) {
            Ok(t) => t.nodes,
            Err(e) => {
                // Without the parent listing every file is simply read again.
                self.warn(
                    rel,
                    format!("parent run's listing unreadable, reading everything: {e}"),
                );
                Vec::new()
            }
        }
    }

    /// Describe one entry as a slot, submitting files to the reader pool.
    fn visit(
        &mut self,
        path: PathBuf,
        rel: Vec<u8>,
        name: Vec<u8>,
        stat: EntryStat,
        prev: Option<&Node>,
    ) -> Result<Option<Slot>> {
        let mut node = stat.to_node(name);
        // Any change to extended attributes changes ctime, so an entry whose metadata matches
        // the parent run's has the same attributes: skip the syscalls.
        let same_as_before = prev.is_some_and(|p| {
            p.kind == stat.kind
                && p.ctime == stat.ctime
                && p.mtime == stat.mtime
                && p.inode == stat.inode
                && p.size == stat.size
        });
        if let (true, Some(p)) = (same_as_before, prev) {
            node.xattrs = p.xattrs.clone();
        } else if node.kind != NodeKind::Symlink {
            match read_xattrs(&path) {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(&rel, format!("extended attributes not read: {e}")),
            }
        }
        match stat.kind {
            NodeKind::Dir => {
                self.stats.dirs += 1;
                let parent = prev
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                Ok(Some(Slot::Dir {
                    node,
                    path,
                    rel,
                    parent,
                }))
            }
            NodeKind::Symlink => match std::fs::read_link(&path) {
                Ok(target) => {
                    self.stats.others += 1;
                    node.target = path_bytes(&target).to_vec();
                    Ok(Some(Slot::Ready(node)))
                }
                Err(e) => {
                    self.error(&rel, format!("symlink not read: {e}"));
                    Ok(None)
                }
            },
            NodeKind::File => self.visit_file(path, rel, node, &stat, prev).map(Some),
            _ => {
                self.stats.others += 1;
                Ok(Some(Slot::Ready(node)))
            }
        }
    }

    fn visit_file(
        &mut self,
        path: PathBuf,
        rel: Vec<u8>,
        mut node: Node,
        stat: &EntryStat,
        prev: Option<&Node>,
    ) -> Result<Slot> {
        self.stats.files += 1;
        self.stats.bytes_total += stat.size;
        if stat.nlink > 1 {
            if let Some((group, promise)) = self.hardlinks.get(&(stat.device, stat.inode)) {
                node.link_group = Some(*group);
                return Ok(Slot::File {
                    node,
                    rel,
                    promise: promise.clone(),
                });
            }
            node.link_group = Some(self.next_link_group);
        }
        let promise = Promise::new();
        if let Some(group) = node.link_group {
            self.hardlinks
                .insert((stat.device, stat.inode), (group, promise.clone()));
            self.next_link_group += 1;
        }
        if self.reuse_unchanged
            && let Some(prev) = prev.filter(|p| unchanged(p, stat))
            && prev.content.iter().all(|id| self.sink.is_known(id))
        {
            self.stats.files_unchanged += 1;
            self.progress.add_done(1, stat.size);
            promise.set(Ok(FileContent {
                content: prev.content.clone(),
                extents: prev.extents.clone(),
                bytes_read: 0,
                changed: false,
                size: prev.size,
            }));
            return Ok(Slot::File { node, rel, promise });
        }
        self.files.push(FileJob {
            path,
            stat: stat.clone(),
            promise: promise.clone(),
        })?;
        Ok(Slot::File { node, rel, promise })
    }

    /// Walk a source's root directory and store its tree; `None` when it could not be
    /// listed (reported as an error).
    pub(crate) fn walk_root(&mut self, path: &Path, parent: Option<Id>) -> Result<Option<Id>> {
        match self.walk_dir(path, b"", parent)? {
            None => Ok(None),
            Some(Subtree::Stored(id)) => Ok(Some(id)),
            Some(Subtree::Pending(dir)) => {
                self.files.flush()?;
                self.settle(*dir).map(Some)
            }
        }
    }

    /// List a directory and submit its files. Its tree is stored at once when nothing of it
    /// is still being read; otherwise it is returned pending, and the walk goes on: waiting
    /// here for each directory's files kept the readers idle while the walker listed the
    /// next directory, and a tree of small files backed up at half speed.
    fn walk_dir(&mut self, path: &Path, rel: &[u8], parent: Option<Id>) -> Result<Option<Subtree>> {
        if self.sink.has_failed() || self.sink.should_stop() {
            return Err(Error::Interrupted);
        }
        let mut names: Vec<Vec<u8>> = match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names = Vec::new();
                for entry in entries {
                    match entry {
                        Ok(e) => names.push(
                            std::os::unix::ffi::OsStrExt::as_bytes(e.file_name().as_os_str())
                                .to_vec(),
                        ),
                        Err(e) => {
                            self.error(rel, format!("directory not fully listed: {e}"));
                            return Ok(None);
                        }
                    }
                }
                names
            }
            Err(e) => {
                self.error(rel, format!("directory not listed: {e}"));
                return Ok(None);
            }
        };
        names.sort_unstable();
        let prev_nodes = self.load_parent(rel, parent);
        let mut slots = Vec::with_capacity(names.len());
        for name in names {
            let child_rel = join_rel(rel, &name);
            if self.filter.is_excluded(&child_rel) {
                continue;
            }
            let child_path = path.join(crate::fsmeta::path_from_bytes(&name));
            let stat = match lstat(&child_path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.warn(&child_rel, "vanished during the backup");
                    continue;
                }
                Err(e) => {
                    self.error(&child_rel, format!("not read: {e}"));
                    continue;
                }
            };
            let prev = prev_nodes
                .binary_search_by(|n| n.name.as_slice().cmp(&name))
                .ok()
                .map(|i| &prev_nodes[i]);
            if let Some(slot) = self.visit(child_path, child_rel, name, stat, prev)? {
                slots.push(slot);
            }
        }
        drop(prev_nodes);
        let mut dir = PendingDir {
            nodes: Vec::with_capacity(slots.len()),
            files: Vec::new(),
            dirs: VecDeque::new(),
        };
        for slot in slots {
            let pos = dir.nodes.len();
            match slot {
                Slot::Ready(n) => dir.nodes.push(Some(n)),
                Slot::Dir {
                    mut node,
                    path,
                    rel,
                    parent,
                } => {
                    let other_fs = self.root_device.is_some_and(|d| d != node.device);
                    let subtree = if other_fs {
                        self.warn(&rel, "on another filesystem, contents skipped");
                        Some(Subtree::Stored(self.store_tree(Tree::default())?))
                    } else {
                        self.walk_dir(&path, &rel, parent)?
                    };
                    match subtree {
                        Some(Subtree::Stored(id)) => {
                            node.subtree = Some(id);
                            dir.nodes.push(Some(node));
                        }
                        Some(Subtree::Pending(child)) => {
                            dir.dirs.push_back((pos, node, child));
                            dir.nodes.push(None);
                        }
                        None => dir.nodes.push(None),
                    }
                    self.settle_ready(&mut dir)?;
                }
                Slot::File { node, rel, promise } => {
                    self.pending_files += 1;
                    dir.files.push(PendingFile {
                        pos,
                        node,
                        rel,
                        promise,
                    });
                    dir.nodes.push(None);
                }
            }
        }
        if dir.is_ready() {
            return self.settle(dir).map(|id| Some(Subtree::Stored(id)));
        }
        Ok(Some(Subtree::Pending(Box::new(dir))))
    }

    /// Store the trees of `dir`'s oldest subdirectories while they can be stored without
    /// waiting, and, when too many files are pending, wait for the oldest: the walk may run
    /// ahead of the readers, but not hold a whole tree's listing in memory. Only the oldest
    /// are looked at (files are read in the order they were queued), so a directory with
    /// many pending subdirectories costs no more per entry.
    fn settle_ready(&mut self, dir: &mut PendingDir) -> Result<()> {
        while let Some((_, _, oldest)) = dir.dirs.front() {
            let blocking = self.pending_files > self.pending_limit;
            if !blocking && !oldest.is_ready() {
                break;
            }
            if blocking {
                self.files.flush()?;
            }
            if let Some((pos, mut node, child)) = dir.dirs.pop_front() {
                node.subtree = Some(self.settle(*child)?);
                dir.nodes[pos] = Some(node);
            }
        }
        Ok(())
    }

    /// Store a pending directory's tree, waiting for its files as needed. The caller flushes
    /// the file queue first if anything may still be in it.
    fn settle(&mut self, dir: PendingDir) -> Result<Id> {
        let PendingDir {
            mut nodes,
            files,
            dirs,
        } = dir;
        for (pos, mut node, child) in dirs {
            node.subtree = Some(self.settle(*child)?);
            nodes[pos] = Some(node);
        }
        for PendingFile {
            pos,
            mut node,
            rel,
            promise,
        } in files
        {
            self.pending_files -= 1;
            match promise.wait() {
                Ok(c) => {
                    if c.changed {
                        node.flags |= Node::CHANGED_DURING_READ;
                        self.warn(
                            &rel,
                            "changed while being read; the stored copy may be inconsistent",
                        );
                    }
                    self.stats.bytes_read += c.bytes_read;
                    node.content = c.content;
                    node.extents = c.extents;
                    node.size = c.size;
                    nodes[pos] = Some(node);
                }
                Err(FileFailure::Unreadable(msg)) => self.error(&rel, format!("not read: {msg}")),
                Err(FileFailure::Aborted) => return Err(Error::Interrupted),
            }
        }
        self.store_tree(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })
    }

    pub(crate) fn store_tree(&mut self, tree: Tree) -> Result<Id> {
        let bytes = tree.encode().map_err(Error::internal)?;
        let id = self.sink.key().blob_id(&bytes);
        self.sink.add(BlobKind::Tree, id, &bytes)?;
        Ok(id)
    }
}
