//! Backing up sources into a run.

mod file;
mod level;
mod promise;
mod scan;
mod sink;
mod spool;
mod stream;
mod walk;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use crossbeam_channel::bounded;
use serde::Serialize;

use crate::chunker::ChunkerConfig;
use crate::compress::CompressionLevel;
use crate::format::config::Operation;
use crate::format::run::{
    ItemError, Level, MANIFEST_VERSION, PathText, RunManifest, RunStats, RunStatus, SourceKind,
    SourceManifest, SourceStatus,
};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::fsmeta::{EntryStat, path_bytes, read_xattrs};
use crate::id::Id;
use crate::pattern::PathFilter;
use crate::progress::Progress;
use crate::repo::{Indexed, Repository};
use crate::{Error, Result};

pub use level::{LevelPlan, SourceLevelPlan, plan_levels, plan_source};
pub use sink::{BlobSink, SinkOptions, SinkSummary};

/// Where a source's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// A directory tree or a single file (a FIFO is read as a stream).
    Path(PathBuf),
    /// This process's standard input, stored as one file.
    Stdin,
    /// A shell command (`sh -c`); its standard output is stored as one file.
    Command(String),
}

/// One thing to back up.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Name of the source within the run (unique per run).
    pub name: String,
    pub input: SourceInput,
}

impl SourceSpec {
    /// A source named after the last component of its path.
    pub fn from_path(path: PathBuf) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "root".to_owned());
        SourceSpec {
            name,
            input: SourceInput::Path(path),
        }
    }

    pub fn path(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        SourceSpec {
            name: name.into(),
            input: SourceInput::Path(path.into()),
        }
    }

    pub fn stdin(name: impl Into<String>) -> Self {
        SourceSpec {
            name: name.into(),
            input: SourceInput::Stdin,
        }
    }

    pub fn command(name: impl Into<String>, command: impl Into<String>) -> Self {
        SourceSpec {
            name: name.into(),
            input: SourceInput::Command(command.into()),
        }
    }
}

/// How to run a backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The level asked for every source not named in `source_levels`.
    pub level: Level,
    /// Levels for particular sources (the Auto schedule gives each source its own).
    pub source_levels: std::collections::BTreeMap<String, Level>,
    /// The backup set this run is for; checked against the repository owner.
    pub owner: Option<String>,
    /// Write even into a repository owned by another set.
    pub force: bool,
    pub exclude: Vec<String>,
    pub one_file_system: bool,
    pub compression: CompressionLevel,
    pub read_threads: usize,
    pub encode_threads: usize,
    pub uploads: usize,
    pub host: String,
    pub tags: Vec<String>,
    /// Count the sources first (in parallel) so progress has a total.
    pub scan_totals: bool,
    /// How long to wait for a conflicting (exclusive) lock.
    pub lock_wait: std::time::Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        BackupOptions {
            level: Level::Full,
            source_levels: Default::default(),
            owner: None,
            force: false,
            exclude: Vec::new(),
            one_file_system: false,
            compression: CompressionLevel::default(),
            read_threads: cpus,
            encode_threads: cpus,
            uploads: 4,
            host: hostname(),
            tags: Vec::new(),
            scan_totals: false,
            lock_wait: std::time::Duration::ZERO,
        }
    }
}

/// This machine's host name, for the manifest.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The result of a backup that wrote a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    pub run: RunManifest,
    /// Some source's requested level was promoted to full because that source had no full
    /// to base it on (`run.sources[].level` says which).
    pub promoted: bool,
    /// The sources that were promoted to full.
    pub promoted_sources: Vec<String>,
    pub requested_level: Level,
    pub duration_ms: u64,
    pub volumes_written: u64,
    pub index_segments_written: usize,
}

fn validate_sources(sources: &[SourceSpec]) -> Result<()> {
    if sources.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut names = HashSet::new();
    for s in sources {
        if s.name.is_empty() || s.name.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid source name {:?}: use a plain name",
                s.name
            )));
        }
        if !names.insert(s.name.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "two sources are named {:?}: name them apart with NAME=PATH",
                s.name
            )));
        }
        if let SourceInput::Path(path) = &s.input
            && let Err(e) = std::fs::metadata(path)
        {
            return Err(Error::InvalidArgument(format!(
                "cannot back up {}: {e}",
                path.display()
            )));
        }
    }
    if sources
        .iter()
        .filter(|s| s.input == SourceInput::Stdin)
        .count()
        > 1
    {
        return Err(Error::InvalidArgument(
            "only one source can read standard input".into(),
        ));
    }
    Ok(())
}

/// Back up `sources` into a new run.
pub fn backup(
    repo: &mut Repository<Indexed>,
    sources: &[SourceSpec],
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupReport> {
    let started_clock = Instant::now();
    let started = Utc::now();
    repo.check_features(Operation::Write)?;
    repo.check_owner(opts.owner.as_deref(), opts.force)?;
    validate_sources(sources)?;
    let lock = repo.lock(crate::repo::LockKind::Shared, "backup", opts.lock_wait)?;
    // Volumes a purge has marked for deletion must not be referenced: store again instead.
    let marked = repo.marked_volumes()?;
    repo.prefer_outside(&marked)?;
    let filter = PathFilter::new(&[], &opts.exclude)?;
    for name in opts.source_levels.keys() {
        if !sources.iter().any(|s| &s.name == name) {
            return Err(Error::InvalidArgument(format!(
                "a level is given for source {name:?}, which is not backed up in this run"
            )));
        }
    }
    let catalog = repo.runs()?;
    let requests: Vec<(&str, Level)> = sources
        .iter()
        .map(|s| {
            let level = opts.source_levels.get(&s.name).copied();
            (s.name.as_str(), level.unwrap_or(opts.level))
        })
        .collect();
    let plan = plan_levels(&requests, &crate::catalog::source_entries(&catalog));
    // Each source's parent tree comes from that source's own parent run.
    let parent_tree = |name: &str| -> Option<Id> {
        let label = plan.source(name)?.parent.as_ref()?;
        let run = catalog.iter().find(|r| &r.label == label)?;
        run.sources.iter().find(|s| s.name == name)?.tree
    };

    let sink = BlobSink::new(
        repo,
        marked,
        &SinkOptions {
            compression: opts.compression,
            encoders: opts.encode_threads.max(1),
            uploads: opts.uploads.max(1),
            pack_size: repo.config().pack_size as usize,
        },
    )?;
    let chunker = ChunkerConfig::new(repo.config().chunker, repo.key().chunker_seed());

    let (file_tx, file_rx) = bounded::<walk::FileJob>(opts.read_threads.max(1) * 4);
    let scan_stop = std::sync::atomic::AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        if opts.scan_totals {
            let (filter, stop) = (&filter, &scan_stop);
            scope.spawn(move || scan::count(sources, filter, progress, stop));
        }
        for _ in 0..opts.read_threads.max(1) {
            let rx = file_rx.clone();
            let (chunker, sink) = (&chunker, &sink);
            scope.spawn(move || {
                let mut buf = Vec::new();
                for job in rx {
                    let r =
                        file::read_file(&job.path, &job.stat, chunker, sink, progress, &mut buf);
                    progress.add_done(1, 0);
                    job.promise.set(r);
                }
            });
        }
        drop(file_rx);
        let mut manifests = Vec::new();
        let mut link_group = 0u64;
        for source in sources {
            let Some(level) = plan.source(&source.name) else {
                continue;
            };
            let m = backup_source(
                repo,
                &sink,
                &filter,
                &file_tx,
                progress,
                opts,
                source,
                parent_tree(&source.name),
                level.level != Level::Full,
                &mut link_group,
            );
            match m {
                Ok(mut m) => {
                    m.level = Some(level.level);
                    m.parent = level.parent.clone();
                    m.base_full = level.base_full.clone();
                    manifests.push(m)
                }
                Err(e) => {
                    drop(file_tx);
                    scan_stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        drop(file_tx);
        scan_stop.store(true, Ordering::Relaxed);
        Ok(manifests)
    });
    // A storage failure surfaces from the sink as the real cause; the walk only saw it as an
    // interruption.
    let summary = sink.finish();
    let source_manifests = match (outcome, summary) {
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(m), Ok(s)) => (m, s),
    };
    let (sources_out, mut summary) = source_manifests;
    let segments_written = summary.index_segments.len();
    repo.extend_index(std::mem::take(&mut summary.index_segments));
    if sources_out.iter().all(|s| s.status == SourceStatus::Failed) {
        let first: Vec<String> = sources_out
            .iter()
            .flat_map(|s| {
                s.errors
                    .iter()
                    .take(3)
                    .map(move |e| format!("{}:{}: {}", s.name, e.path, e.error))
            })
            .collect();
        return Err(Error::InvalidArgument(format!(
            "every source failed, no run written: {}",
            first.join("; ")
        )));
    }
    let mut stats = RunStats::default();
    for s in &sources_out {
        stats.add(&s.stats);
    }
    stats.bytes_new = summary.bytes_new;
    stats.bytes_stored = summary.bytes_stored;
    stats.blobs_new = summary.blobs_new;
    let status = if sources_out
        .iter()
        .all(|s| s.status == SourceStatus::Complete)
    {
        RunStatus::Complete
    } else {
        RunStatus::Partial
    };
    let manifest = RunManifest {
        version: MANIFEST_VERSION,
        label: String::new(),
        level: plan.level,
        status,
        started,
        finished: Utc::now(),
        host: opts.host.clone(),
        owner: opts
            .owner
            .clone()
            .or_else(|| repo.owner().map(str::to_owned)),
        parent: plan.common_parent(),
        base_full: plan.common_base_full(),
        sources: sources_out,
        stats,
        tags: opts.tags.clone(),
    };
    lock.confirm()?;
    // Binaries that read one level per run must not purge or extend this catalog.
    repo.require_feature(crate::format::config::FEATURE_SOURCE_LEVELS)?;
    let run = repo.save_run(manifest)?;
    drop(lock);
    Ok(BackupReport {
        run,
        promoted: plan.promoted(),
        promoted_sources: plan
            .sources
            .iter()
            .filter(|s| s.promoted)
            .map(|s| s.source.clone())
            .collect(),
        requested_level: opts.level,
        duration_ms: started_clock.elapsed().as_millis() as u64,
        volumes_written: summary.packs,
        index_segments_written: segments_written,
    })
}

/// The manifest of a stream source: a root tree holding the one file, if it was read.
fn stream_manifest(
    repo: &Repository<Indexed>,
    sink: &BlobSink,
    source: &SourceSpec,
    origin: PathText,
    out: stream::StreamOutcome,
) -> Result<SourceManifest> {
    let tree = match out.node {
        Some(node) => {
            let bytes = Tree { nodes: vec![node] }
                .encode()
                .map_err(Error::internal)?;
            let id = repo.key().blob_id(&bytes);
            sink.add(crate::format::pack::BlobKind::Tree, id, &bytes)?;
            Some(id)
        }
        None => None,
    };
    Ok(SourceManifest {
        name: source.name.clone(),
        kind: SourceKind::Stream,
        origin,
        status: if tree.is_some() {
            SourceStatus::Complete
        } else {
            SourceStatus::Failed
        },
        tree,
        stats: out.stats,
        errors: out.errors,
        warnings: Vec::new(),
        level: None,
        parent: None,
        base_full: None,
    })
}

#[allow(clippy::too_many_arguments)] // reason: the walk's shared context, split by lifetime
fn backup_source(
    repo: &Repository<Indexed>,
    sink: &BlobSink,
    filter: &PathFilter,
    files: &crossbeam_channel::Sender<walk::FileJob>,
    progress: &Progress,
    opts: &BackupOptions,
    source: &SourceSpec,
    parent_tree: Option<Id>,
    reuse_unchanged: bool,
    link_group: &mut u64,
) -> Result<SourceManifest> {
    let chunker = ChunkerConfig::new(repo.config().chunker, repo.key().chunker_seed());
    let path = match &source.input {
        SourceInput::Stdin => {
            let out = stream::read_stream(
                &source.name,
                std::io::stdin().lock(),
                &chunker,
                sink,
                progress,
            )?;
            return stream_manifest(repo, sink, source, PathText::Utf8("<stdin>".into()), out);
        }
        SourceInput::Command(cmd) => {
            let out = stream::read_command(&source.name, cmd, &chunker, sink, progress)?;
            return stream_manifest(repo, sink, source, PathText::Utf8(cmd.clone()), out);
        }
        SourceInput::Path(p) => p,
    };
    // The root argument is followed if it is a symlink: `backup /data` means the data.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let stat = EntryStat::from_metadata(&meta);
    let origin = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    if stat.kind == NodeKind::Fifo {
        let fifo = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let out = stream::read_stream(&source.name, fifo, &chunker, sink, progress)?;
        return stream_manifest(
            repo,
            sink,
            source,
            PathText::from_bytes(path_bytes(&origin)),
            out,
        );
    }
    let mut walker = walk::Walker {
        repo,
        sink,
        filter,
        files,
        progress,
        reuse_unchanged,
        root_device: opts.one_file_system.then_some(stat.device),
        hardlinks: HashMap::new(),
        next_link_group: *link_group,
        errors: Vec::new(),
        warnings: Vec::new(),
        stats: RunStats::default(),
    };
    // The parent's root tree holds one node: the source root as it was then.
    let prev_root: Option<Node> = parent_tree
        .and_then(|id| repo.load_tree(&id).ok())
        .and_then(|t| t.nodes.into_iter().next());
    let mut root = stat.to_node(source.name.as_bytes().to_vec());
    root.xattrs = read_xattrs(path).unwrap_or_default();
    let stored = match stat.kind {
        NodeKind::Dir => {
            walker.stats.dirs += 1;
            let prev = prev_root
                .as_ref()
                .filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree);
            match walker.walk_dir(path, b"", prev)? {
                Some(id) => {
                    root.subtree = Some(id);
                    true
                }
                None => false,
            }
        }
        NodeKind::File
            if reuse_unchanged
                && let Some(prev) = prev_root.as_ref().filter(|p| {
                    walk::unchanged(p, &stat) && p.content.iter().all(|id| sink.is_known(id))
                }) =>
        {
            walker.stats.files += 1;
            walker.stats.files_unchanged += 1;
            walker.stats.bytes_total += stat.size;
            progress.add_done(1, stat.size);
            root.content = prev.content.clone();
            root.extents = prev.extents.clone();
            root.size = prev.size;
            true
        }
        NodeKind::File => {
            walker.stats.files += 1;
            walker.stats.bytes_total += stat.size;
            // Through the reader pool, whose chunk windows are already allocated.
            let promise = promise::Promise::new();
            let job = walk::FileJob {
                path: path.clone(),
                stat: stat.clone(),
                promise: promise.clone(),
            };
            if files.send(job).is_err() {
                return Err(Error::Interrupted);
            }
            match promise.wait() {
                Ok(c) => {
                    root.content = c.content;
                    root.extents = c.extents;
                    root.size = c.size;
                    walker.stats.bytes_read += c.bytes_read;
                    if c.changed {
                        root.flags |= Node::CHANGED_DURING_READ;
                        walker.warnings.push(ItemError {
                            path: "/".into(),
                            error: "changed while being read".into(),
                        });
                        walker.stats.warnings += 1;
                    }
                    true
                }
                Err(file::FileFailure::Unreadable(msg)) => {
                    walker.errors.push(ItemError {
                        path: "/".into(),
                        error: format!("not read: {msg}"),
                    });
                    walker.stats.errors += 1;
                    false
                }
                Err(file::FileFailure::Aborted) => return Err(Error::Interrupted),
            }
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "cannot back up {}: it is a {}, not a directory, file or FIFO",
                path.display(),
                other.name()
            )));
        }
    };
    *link_group = walker.next_link_group;
    let tree = if stored {
        Some(walker.store_tree(Tree { nodes: vec![root] })?)
    } else {
        None
    };
    let status = match (stored, walker.errors.is_empty()) {
        (false, _) => SourceStatus::Failed,
        (true, true) => SourceStatus::Complete,
        (true, false) => SourceStatus::Partial,
    };
    Ok(SourceManifest {
        name: source.name.clone(),
        kind: SourceKind::Directory,
        origin: PathText::from_bytes(path_bytes(&origin)),
        tree,
        status,
        stats: walker.stats,
        errors: walker.errors,
        warnings: walker.warnings,
        level: None,
        parent: None,
        base_full: None,
    })
}
