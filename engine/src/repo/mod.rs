//! A repository: configuration, keys, index, run catalog and blob access.
//!
//! Typestate: [`Repository<Opened>`] has its key and configuration; loading the index gives
//! a [`Repository<Indexed>`], the only state that can read or write blobs.

mod check;
mod copied;
mod init;
mod layout;
mod lock;
mod marks;
mod open;
mod reachable;

mod runs;
mod totals;
mod tree_cache;
mod volume_reads;
mod walk;

use std::sync::Arc;

use crate::crypto::MasterKey;
use crate::format::config::{Operation, RepoConfig};
use crate::format::pack::decode_blob;
use crate::format::tree::Tree;
use crate::id::Id;
use crate::storage::{Store, pack_key};
use crate::{Error, Result};

pub use crate::chunker::ChunkerParams;
pub use crate::format::index::{BlobLocation, MasterIndex};
pub use check::{CheckReport, check_location};
pub use init::{InitOptions, check_empty};
pub(crate) use lock::hostname;
pub use lock::{Blocker, FoundLock, LockGuard, LockInfo, LockKind, ProcessId, default_holder};
pub use marks::MarkRecord;
pub use open::read_config;
pub(crate) use reachable::live_blobs;
pub use runs::{RunSelector, SourceChoice, select_run};
pub(crate) use runs::{nearest_labels, select_sources};
pub use totals::RepositoryTotals;
pub(crate) use volume_reads::{Coalescing, VolumeRead, WantedBlob, plan_volume_reads};

/// Marker: configuration and key loaded.
#[derive(Debug, Clone, Copy)]
pub struct Opened;

/// Marker: index loaded; blobs can be read and written.
#[derive(Debug, Clone)]
pub struct Indexed {
    index: Arc<MasterIndex>,
    trees: tree_cache::SharedTreeCache,
}

#[derive(Debug)]
struct Core {
    store: Store,
    config: RepoConfig,
    key: MasterKey,
    owner: Option<String>,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository<S = Opened> {
    core: Arc<Core>,
    state: S,
}

impl<S> Repository<S> {
    /// The storage the repository is in.
    pub fn store(&self) -> &Store {
        &self.core.store
    }

    /// The repository's configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.core.config
    }

    /// The repository's master key.
    pub fn key(&self) -> &MasterKey {
        &self.core.key
    }

    /// The backup set that owns this repository, if one was recorded at init.
    pub fn owner(&self) -> Option<&str> {
        self.core.owner.as_deref()
    }

    /// Where the repository is, for messages (never with credentials).
    pub fn location(&self) -> String {
        self.core.store.location()
    }

    /// Every volume in storage with its size, whether or not an index names it.
    pub fn list_volumes(&self) -> Result<Vec<(Id, u64)>> {
        Ok(self
            .store()
            .list("data/")?
            .into_iter()
            .filter_map(|o| {
                o.key
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.parse::<Id>().ok())
                    .map(|id| (id, o.size))
            })
            .collect())
    }

    /// Refuse an operation whose required features this build does not know.
    pub(crate) fn check_features(&self, op: Operation) -> Result<()> {
        let unknown = self.core.config.features.unknown_for(op);
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::UnsupportedFeature {
                location: self.location(),
                operation: op.name(),
                features: unknown,
            })
        }
    }

    /// Record in `config` that this repository now needs `feature`, before the first object
    /// that uses it is written, so older binaries refuse the operations it concerns instead
    /// of misreading the new objects. `config` is replaced atomically.
    pub(crate) fn require_feature(&self, feature: &str) -> Result<()> {
        if self.config().features.requires(feature) {
            return Ok(());
        }
        // Another process may have upgraded it since this one opened the repository.
        let mut config = open::read_config(self.store())?;
        if config.features.requires(feature) {
            return Ok(());
        }
        config.features.add(feature);
        let json = serde_json::to_vec_pretty(&config).map_err(Error::internal)?;
        self.store().put("config", json)?;
        Ok(())
    }

    /// Refuse to write on behalf of `requested` into a repository owned by another set.
    pub(crate) fn check_owner(&self, requested: Option<&str>, force: bool) -> Result<()> {
        match (self.owner(), requested) {
            (Some(owner), Some(req)) if owner != req && !force => Err(Error::OwnedByOther {
                location: self.location(),
                owner: owner.to_owned(),
                requested: req.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

impl Repository<Opened> {
    /// Read every index segment and merge them.
    pub fn load_index(self) -> Result<Repository<Indexed>> {
        let index = self.read_index()?;
        Ok(Repository {
            core: self.core,
            state: Indexed {
                index: Arc::new(index),
                trees: Default::default(),
            },
        })
    }
}

impl<S> Repository<S> {
    fn read_index(&self) -> Result<MasterIndex> {
        self.read_index_avoiding(&std::collections::HashSet::new())
    }

    fn read_index_avoiding(&self, avoid: &std::collections::HashSet<Id>) -> Result<MasterIndex> {
        let names: Vec<String> = self
            .store()
            .list("index/")?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let bodies = self.store().get_many(&names, 16);
        let mut segments = Vec::with_capacity(names.len());
        for (name, body) in names.into_iter().zip(bodies) {
            let body = body?;
            let seg = crate::format::index::IndexSegment::open(self.key(), &body, &name)?;
            segments.push((name, seg));
        }
        Ok(MasterIndex::from_segments_avoiding(segments, avoid))
    }
}

impl Repository<Indexed> {
    /// Forget the tree volumes kept from walking runs, when the walk is over and the disk
    /// space is better spent elsewhere (deep verify reads data volumes next).
    pub(crate) fn drop_cached_trees(&self) {
        self.state.trees.clear();
    }

    /// The index of every blob.
    pub fn index(&self) -> &Arc<MasterIndex> {
        &self.state.index
    }

    /// Rebuild the index so that a blob stored both inside and outside `avoid` resolves to
    /// the copy outside (used to steer clear of volumes marked for deletion).
    pub(crate) fn prefer_outside(&mut self, avoid: &std::collections::HashSet<Id>) -> Result<()> {
        if !avoid.is_empty() {
            self.state.index = Arc::new(self.read_index_avoiding(avoid)?);
        }
        Ok(())
    }

    /// Reload the index (after another process changed it).
    pub(crate) fn reload_index(&mut self) -> Result<()> {
        self.state.index = Arc::new(self.read_index()?);
        Ok(())
    }

    /// Add segments this handle just wrote to its in-memory index.
    pub(crate) fn extend_index(
        &mut self,
        segments: Vec<(String, crate::format::index::IndexSegment)>,
    ) {
        if !segments.is_empty() {
            self.state.index = Arc::new(self.state.index.with_segments(segments));
        }
    }

    /// A tree blob. Locally it is read where the index places it; from an object store
    /// through the tree-volume spill (see `tree_cache`), so walking a run costs about one
    /// request per tree volume, not one per directory.
    fn load_tree_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self
            .index()
            .lookup(id)
            .ok_or_else(|| Error::corrupt(format!("listing {} is not in the index", id.short())))?;
        if loc.kind != crate::format::pack::BlobKind::Tree || !self.store().reads_wait_on_latency()
        {
            return self.load_blob(id);
        }
        let short = || {
            Error::corrupt(format!(
                "volume {} is shorter than the index says",
                loc.pack.short()
            ))
        };
        match self.state.trees.plan(&loc.pack, u64::from(loc.offset)) {
            tree_cache::TreeRead::Spilled(file, at) => {
                use std::os::unix::fs::FileExt;
                let mut entry = vec![0u8; loc.length as usize];
                file.read_exact_at(&mut entry, at).map_err(|_| short())?;
                self.decode_entry(id, &loc.pack, &entry)
            }
            tree_cache::TreeRead::FetchRange => self.load_blob(id),
            tree_cache::TreeRead::FetchVolume => {
                let volume = self.store().get(&pack_key(&loc.pack))?;
                if volume.len() as u64 != loc.pack_size {
                    return Err(Error::corrupt(format!(
                        "volume {} has {} bytes, the index says {}",
                        loc.pack.short(),
                        volume.len(),
                        loc.pack_size
                    )));
                }
                self.state.trees.insert(loc.pack, &volume);
                let start = loc.offset as usize;
                let entry = volume
                    .get(start..start + loc.length as usize)
                    .ok_or_else(short)?;
                self.decode_entry(id, &loc.pack, entry)
            }
        }
    }

    /// Decode one volume entry and check it is the blob the index promised.
    fn decode_entry(&self, id: &Id, volume: &Id, entry: &[u8]) -> Result<Vec<u8>> {
        let (header, plain) = decode_blob(self.key(), entry)
            .map_err(|e| Error::corrupt(format!("volume {}: {e}", volume.short())))?;
        if header.id != *id {
            return Err(Error::corrupt(format!(
                "volume {} holds blob {} where the index expects {}",
                volume.short(),
                header.id.short(),
                id.short()
            )));
        }
        Ok(plain)
    }

    /// Read, authenticate and decode one blob.
    pub(crate) fn load_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self
            .index()
            .lookup(id)
            .ok_or_else(|| Error::corrupt(format!("blob {} is not in the index", id.short())))?;
        let entry = self.store().get_range(
            &pack_key(&loc.pack),
            u64::from(loc.offset),
            u64::from(loc.length),
        )?;
        self.decode_entry(id, &loc.pack, &entry)
    }

    /// The directory listing `id`.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.load_tree_blob(id)?;
        Tree::decode(&bytes)
            .map_err(|e| Error::corrupt(format!("tree {} does not decode: {e}", id.short())))
    }
}

/// What destroying a repository removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestroyReport {
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Their size.
    pub bytes_deleted: u64,
    /// Objects under the repository's location that are not part of it, left alone (the
    /// first 20 keys; `objects_kept` counts them all).
    pub kept: Vec<String>,
    /// How many objects were kept.
    pub objects_kept: u64,
    /// Nothing was deleted: the counts say what would have been.
    pub dry_run: bool,
}

impl Repository<Opened> {
    /// Delete the whole repository (a BackupSet deleted with `deletionPolicy: Purge`, or
    /// `holdfast destroy`). Only with the key, so a wrong location or another set's
    /// repository is never touched by mistake; under an exclusive lock, so nothing runs
    /// meanwhile. Only the objects of the repository's own layout go: anything else under
    /// its location is kept and reported, and when another repository lies inside, nothing
    /// is deleted. `config` goes last: a destroy stopped half-way leaves a repository that
    /// says it is one, and running it again finishes the job. A dry run takes no lock and
    /// deletes nothing.
    pub fn destroy(
        self,
        owner: Option<&str>,
        lock_wait: std::time::Duration,
        dry_run: bool,
    ) -> Result<DestroyReport> {
        self.check_features(Operation::Delete)?;
        self.check_owner(owner, false)?;
        let lock = if dry_run {
            None
        } else {
            Some(self.lock(LockKind::Exclusive, "destroy", lock_wait)?)
        };
        // Everything but this operation's own lock, which its release removes.
        let own_lock = lock.as_ref().map(|l| l.key().to_owned());
        let mut objects = self.store().list("")?;
        objects.retain(|o| Some(&o.key) != own_lock.as_ref());
        let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
        let inner = layout::nested_repositories(self.store(), &keys)?;
        if !inner.is_empty() {
            if let Some(lock) = lock {
                lock.release()?;
            }
            return Err(Error::ContainsRepository {
                location: self.location(),
                inner,
            });
        }
        let (own, foreign): (Vec<_>, Vec<_>) =
            objects.iter().partition(|o| layout::is_layout_key(&o.key));
        let mut report = DestroyReport {
            objects_kept: foreign.len() as u64,
            kept: foreign.iter().take(20).map(|o| o.key.clone()).collect(),
            dry_run,
            ..DestroyReport::default()
        };
        let Some(lock) = lock else {
            report.objects_deleted = own.len() as u64;
            report.bytes_deleted = own.iter().map(|o| o.size).sum();
            return Ok(report);
        };
        let last = |k: &str| k == "config" || k.starts_with("locks/");
        for o in own.iter().filter(|o| !last(&o.key)) {
            self.store().delete(&o.key)?;
            report.objects_deleted += 1;
            report.bytes_deleted += o.size;
        }
        lock.release()?;
        for o in own.iter().filter(|o| o.key.starts_with("locks/")) {
            self.store().delete(&o.key)?;
            report.objects_deleted += 1;
        }
        if let Some(c) = own.iter().find(|o| o.key == "config") {
            self.store().delete("config")?;
            report.objects_deleted += 1;
            report.bytes_deleted += c.size;
        }
        self.store().prune_empty()?;
        Ok(report)
    }
}
