//! Deciding where each node goes and what to do with what is already there.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use crate::format::run::SourceManifest;
use crate::format::tree::{Node, NodeKind, Timespec};
use crate::fsmeta::{apply_metadata, create_special, path_from_bytes};
use crate::repo::SourceChoice;
use crate::{Error, Result};

use super::report::ItemOutcome;
use super::{Ctx, FileJob, ensure_real_dir, safe_name};

/// Where to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Each source back to the path it was read from (a file source to its file path).
    Original,
    /// Into this directory, always a directory (created if missing): with one source it is
    /// the source's directory, with several each goes to `DIR/<source name>`. A directory
    /// source fills its directory; a file source is written into it under its own file
    /// name, a stream source under the source's name, whether or not the directory existed.
    Directory(PathBuf),
}

/// What to do when the target already has an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Keep what is there; the item is skipped.
    #[default]
    Never,
    /// Replace only if the backed-up copy is newer (by modification time).
    IfNewer,
    /// Always replace.
    Always,
}

impl std::str::FromStr for Overwrite {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "never" => Ok(Overwrite::Never),
            "if-newer" | "ifnewer" => Ok(Overwrite::IfNewer),
            "always" => Ok(Overwrite::Always),
            _ => Err(Error::InvalidArgument(format!(
                "unknown overwrite policy {s:?}: use never, if-newer or always"
            ))),
        }
    }
}

/// The target path of each chosen source: its origin, or for `--target DIR` the directory
/// itself when one source is restored and `DIR/<source>` when several are.
pub(crate) fn target_roots<'r>(
    chosen: &[SourceChoice<'r>],
    target: &RestoreTarget,
) -> Vec<(SourceChoice<'r>, PathBuf)> {
    let single = chosen.len() == 1;
    chosen
        .iter()
        .map(|c| {
            let path = match target {
                RestoreTarget::Original => path_from_bytes(&c.source.origin.to_bytes()),
                RestoreTarget::Directory(d) if single => d.clone(),
                RestoreTarget::Directory(d) => d.join(&c.source.name),
            };
            (*c, path)
        })
        .collect()
}

/// The name a file or stream source is restored under inside a target directory: a file's
/// own name (from the path it was read from), a stream's source name.
fn file_name_of(source: &SourceManifest, root: &Node) -> PathBuf {
    let origin = path_from_bytes(&source.origin.to_bytes());
    match (source.kind, origin.file_name()) {
        (crate::format::run::SourceKind::Directory, Some(name)) if origin.is_absolute() => {
            PathBuf::from(name)
        }
        _ => path_from_bytes(&root.name),
    }
}

fn mtime_of(m: &std::fs::Metadata) -> Timespec {
    Timespec {
        sec: m.mtime(),
        nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}

/// What to do with an entry at a path that may already exist.
pub(super) enum Decision {
    Create,
    Replace,
    Skip(String),
}

pub(super) fn decide(path: &Path, node: &Node, policy: Overwrite) -> Decision {
    let existing = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Decision::Create,
    };
    match policy {
        Overwrite::Never => Decision::Skip("already exists (overwrite: never)".into()),
        Overwrite::Always => Decision::Replace,
        Overwrite::IfNewer if node.mtime > mtime_of(&existing) => Decision::Replace,
        Overwrite::IfNewer => {
            Decision::Skip("existing copy is as new or newer (overwrite: if-newer)".into())
        }
    }
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// A directory being walked.
struct DirState<'p> {
    path: &'p Path,
    /// Its path within the source.
    rel: &'p [u8],
    /// Selected by an include pattern, so everything below is.
    included: bool,
    depth: usize,
    /// Created by this restore: empty but for what the restore puts there.
    created: bool,
}

/// Files gathered by the walk, handed over in batches (see `volumes`).
pub(super) struct FileBatches {
    tx: Sender<Vec<FileJob>>,
    batch: Vec<FileJob>,
    blobs: usize,
}

impl FileBatches {
    pub(crate) fn new(tx: Sender<Vec<FileJob>>) -> Self {
        FileBatches {
            tx,
            batch: Vec::new(),
            blobs: 0,
        }
    }

    fn push(&mut self, job: FileJob) {
        self.blobs += job.node.content.len();
        self.batch.push(job);
        if self.batch.len() >= super::volumes::BATCH_FILES
            || self.blobs >= super::volumes::BATCH_BLOBS
        {
            self.flush();
        }
    }

    /// Hand over what is gathered.
    pub(crate) fn flush(&mut self) {
        self.blobs = 0;
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            // The writer lives until the walk ends, so the send cannot fail before then.
            let _ = self.tx.send(batch);
        }
    }
}

/// Walks a run's trees, creating directories and small entries inline and handing files
/// over in batches to be written by volume.
pub(super) struct Walker<'c, 'a> {
    pub ctx: &'c Ctx<'a>,
    pub files: FileBatches,
    pub deferred_links: &'c mut Vec<FileJob>,
    pub dirs: &'c mut Vec<PendingDir>,
}

/// A directory whose metadata is applied after everything below it exists; its outcome is
/// recorded only then, so a failure to apply it is never also counted as restored.
pub(super) struct PendingDir {
    pub shown: String,
    pub path: PathBuf,
    pub node: Node,
    pub depth: usize,
}

impl Walker<'_, '_> {
    pub(crate) fn restore_source(&mut self, source: &SourceManifest, root: &Path) -> Result<()> {
        let Some(tree_id) = source.tree else {
            return Ok(());
        };
        let tree = self.ctx.repo.load_tree(&tree_id)?;
        let Some(root_node) = tree.nodes.into_iter().next() else {
            return Err(Error::corrupt(format!(
                "source {} has an empty root",
                source.name
            )));
        };
        let label = format!("{}:/", source.name);
        match root_node.kind {
            NodeKind::Dir => {
                if let Some(parent) = root.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let created = match ensure_real_dir(root) {
                    Ok(created) => {
                        // A freshly provisioned volume's root (empty, or holding only the
                        // `lost+found` of a new file system) takes the backed-up root's
                        // owner and mode: a database refuses a data directory it does not
                        // own, so keeping the provisioner's would make the restore useless.
                        let fresh = created || super::fresh_volume_root(root);
                        self.directory_ready(label, root, &root_node, 0, fresh);
                        created || super::empty_dir(root)
                    }
                    Err(e) => {
                        self.ctx.record(
                            &label,
                            ItemOutcome::Unrestored(format!("target {}: {e}", root.display())),
                        );
                        return Ok(());
                    }
                };
                if let Some(sub) = root_node.subtree {
                    let dir = DirState {
                        path: root,
                        rel: b"",
                        included: false,
                        depth: 1,
                        created,
                    };
                    self.walk(&source.name, sub, &dir)?;
                }
            }
            _ => {
                // One rule for file sources: a target directory is a directory, created if
                // missing, and the file goes inside under its own name; the original path
                // is the file's own path.
                let (dir, path) = match &self.ctx.opts.target {
                    super::RestoreTarget::Directory(_) => (
                        root.to_path_buf(),
                        root.join(file_name_of(source, &root_node)),
                    ),
                    super::RestoreTarget::Original => (
                        root.parent()
                            .map(Path::to_path_buf)
                            .unwrap_or_else(|| PathBuf::from("/")),
                        root.to_path_buf(),
                    ),
                };
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                self.entry(&source.name, &path, b"", root_node, false)?;
            }
        }
        Ok(())
    }

    fn walk(&mut self, source: &str, tree_id: crate::id::Id, dir: &DirState<'_>) -> Result<()> {
        let tree = match self.ctx.repo.load_tree(&tree_id) {
            Ok(t) => t,
            Err(e) => {
                let shown = if dir.rel.is_empty() {
                    "/".to_owned()
                } else {
                    String::from_utf8_lossy(dir.rel).into_owned()
                };
                self.ctx.record(
                    &format!("{source}:{shown}"),
                    ItemOutcome::Unrestored(format!("directory listing unreadable: {e}")),
                );
                return Ok(());
            }
        };
        // A directory this restore created holds nothing it did not put there: no entry
        // needs looking up before it is created, and no earlier restore left anything.
        let mut dir_exists = dir.created;
        if !dir.created {
            for found in super::file::leftovers_in(dir.path) {
                self.ctx.record_leftover(found);
            }
        }
        for node in tree.nodes {
            if self.ctx.should_stop() {
                return Ok(());
            }
            let mut child_rel = dir.rel.to_vec();
            child_rel.push(b'/');
            child_rel.extend_from_slice(&node.name);
            let shown = format!("{source}:{}", String::from_utf8_lossy(&child_rel));
            if !safe_name(&node.name) {
                self.ctx.record(
                    &shown,
                    ItemOutcome::Unrestored("unsafe file name in the backup".into()),
                );
                continue;
            }
            if self.ctx.filter.is_excluded(&child_rel) {
                continue;
            }
            let included = dir.included || self.ctx.filter.is_included(&child_rel);
            let path = dir.path.join(path_from_bytes(&node.name));
            if node.kind == NodeKind::Dir {
                let mut created = false;
                if included {
                    match ensure_real_dir(&path).or_else(|e| self.replace_with_dir(&path, e)) {
                        Ok(c) => {
                            created = c;
                            self.ctx.progress.add_done(1, 0);
                            self.directory_ready(shown, &path, &node, dir.depth, created);
                        }
                        Err(e) => {
                            self.ctx
                                .record(&shown, ItemOutcome::Unrestored(e.to_string()));
                            continue;
                        }
                    }
                }
                // A directory that is not itself included is created only if something below
                // it is restored (see `ensure_dir`).
                if let Some(sub) = node.subtree {
                    let child = DirState {
                        path: &path,
                        rel: &child_rel,
                        included,
                        depth: dir.depth + 1,
                        created,
                    };
                    self.walk(source, sub, &child)?;
                }
                continue;
            }
            if !included {
                continue;
            }
            if !dir_exists {
                ensure_dir(dir.path)?;
                dir_exists = true;
            }
            self.entry(source, &path, &child_rel, node, dir.created)?;
        }
        Ok(())
    }

    fn replace_with_dir(&self, path: &Path, e: std::io::Error) -> std::io::Result<bool> {
        if e.kind() == std::io::ErrorKind::AlreadyExists
            && self.ctx.opts.overwrite == Overwrite::Always
        {
            std::fs::remove_file(path)?;
            std::fs::create_dir(path)?;
            return Ok(true);
        }
        Err(e)
    }

    /// A directory exists at `path`: queue its metadata if we created it or may overwrite
    /// it; otherwise it is kept as found, which the report says.
    fn directory_ready(
        &mut self,
        shown: String,
        path: &Path,
        node: &Node,
        depth: usize,
        created: bool,
    ) {
        if created || self.ctx.opts.overwrite == Overwrite::Always {
            self.dirs.push(PendingDir {
                shown,
                path: path.to_path_buf(),
                node: node.clone(),
                depth,
            });
        } else {
            self.ctx.record(
                &shown,
                ItemOutcome::Skipped(
                    "directory exists; its metadata was kept (overwrite policy)".into(),
                ),
            );
        }
    }

    /// Create an entry that has no content (symlink, FIFO, device) with its metadata, and
    /// record the outcome.
    fn create_small(
        &self,
        shown: &str,
        path: &Path,
        replace: bool,
        node: &Node,
        create: impl FnOnce(&Path) -> std::io::Result<()>,
    ) {
        let outcome = super::file::with_replacement(path, replace, |tmp| {
            create(tmp)?;
            let not_kept = apply_metadata(tmp, node, self.ctx.meta)?;
            self.ctx.not_kept(not_kept);
            Ok(())
        });
        self.ctx.progress.add_done(1, 0);
        self.ctx.record(
            shown,
            outcome.map_or_else(
                |e| ItemOutcome::Unrestored(e.to_string()),
                |_| ItemOutcome::Restored { bytes: 0 },
            ),
        );
    }

    /// Restore one non-directory entry.
    /// `in_created_dir`: the parent was created by this restore, so nothing is there yet.
    fn entry(
        &mut self,
        source: &str,
        path: &Path,
        rel: &[u8],
        node: Node,
        in_created_dir: bool,
    ) -> Result<()> {
        let shown = format!(
            "{source}:{}",
            if rel.is_empty() {
                "/".into()
            } else {
                String::from_utf8_lossy(rel)
            }
        );
        let decision = if in_created_dir {
            Decision::Create
        } else {
            decide(path, &node, self.ctx.opts.overwrite)
        };
        let replace = match decision {
            Decision::Skip(reason) => {
                self.ctx.progress.add_done(1, node.size);
                self.ctx.record(&shown, ItemOutcome::Skipped(reason));
                return Ok(());
            }
            Decision::Create => false,
            Decision::Replace => true,
        };
        match node.kind {
            NodeKind::File => {
                let job = FileJob {
                    path: path.to_path_buf(),
                    node,
                    rel: shown,
                    replace,
                };
                let first_of_group = match job.node.link_group {
                    Some(g) => {
                        let mut firsts = self
                            .ctx
                            .link_firsts
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        // Reserve the group; the worker records the real path on success.
                        match firsts.entry(g) {
                            std::collections::hash_map::Entry::Occupied(_) => false,
                            std::collections::hash_map::Entry::Vacant(v) => {
                                v.insert(PathBuf::new());
                                true
                            }
                        }
                    }
                    None => true,
                };
                if first_of_group {
                    self.files.push(job);
                } else {
                    self.deferred_links.push(job);
                }
            }
            NodeKind::Symlink => self.create_small(&shown, path, replace, &node, |tmp| {
                std::os::unix::fs::symlink(path_from_bytes(&node.target), tmp)
            }),
            NodeKind::Socket => {
                self.ctx.record(
                    &shown,
                    ItemOutcome::Skipped(
                        "sockets are recreated by the program that owns them".into(),
                    ),
                );
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                self.create_small(&shown, path, replace, &node, |tmp| {
                    create_special(tmp, &node)
                })
            }
            NodeKind::Dir => {}
        }
        Ok(())
    }
}
