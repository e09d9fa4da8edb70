//! Backing up sources into a run.

mod file;
mod level;
mod promise;
mod scan;
mod stream;
mod walk;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
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
use crate::sink::{BlobSink, SinkOptions, SinkSummary};
use crate::{Error, Result};

pub(crate) use level::{LevelPlan, SourceLevelPlan, plan_levels};
pub use stream::{PipeSpec, PipeStatus, stderr_tail, with_suffix};

/// Where a source's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// A directory tree or a single file (a FIFO is read as a stream).
    Path(PathBuf),
    /// This process's standard input, stored as one file.
    Stdin,
    /// A shell command (`sh -c`); its standard output is stored as one file.
    Command(String),
    /// A command in another container writing to a FIFO (see [`PipeSpec`]).
    Pipe(PipeSpec),
}

/// One thing to back up.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Name of the source within the run (unique per run).
    pub name: String,
    /// Where the data comes from.
    pub input: SourceInput,
    /// Patterns left out of this source (besides the run's own).
    pub exclude: Vec<String>,
    /// The file name a stream is stored under (default: the source name).
    pub file_name: Option<String>,
    /// The instant the data was frozen at, when `input` is a snapshot of the source (a CSI
    /// VolumeSnapshot's creation time): recorded as the source's restore-point time. `None`
    /// for a source read live, whose files date from anywhere within the run.
    pub captured: Option<chrono::DateTime<Utc>>,
}

impl SourceSpec {
    /// A source named after the last component of its path.
    pub fn from_path(path: PathBuf) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "root".to_owned());
        Self::new(name, SourceInput::Path(path))
    }

    fn new(name: impl Into<String>, input: SourceInput) -> Self {
        SourceSpec {
            name: name.into(),
            input,
            exclude: Vec::new(),
            file_name: None,
            captured: None,
        }
    }

    /// A directory tree or a single file at `path`.
    pub fn path(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::new(name, SourceInput::Path(path.into()))
    }

    /// This process's standard input, stored as one stream.
    pub fn stdin(name: impl Into<String>) -> Self {
        Self::new(name, SourceInput::Stdin)
    }

    /// The standard output of `command`, run through `sh -c`, stored as one stream.
    pub fn command(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self::new(name, SourceInput::Command(command.into()))
    }

    /// A stream another container writes into a FIFO (see [`PipeSpec`]).
    pub fn pipe(name: impl Into<String>, pipe: PipeSpec) -> Self {
        Self::new(name, SourceInput::Pipe(pipe))
    }

    /// The name a stream source's one file is stored under.
    fn stream_name(&self) -> &str {
        self.file_name.as_deref().unwrap_or(&self.name)
    }
}

/// The scheduled slot a run belongs to (a controller's job): its label takes the slot's
/// time, and a retried job finds the run it already recorded instead of making another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The slot's scheduled time, which the run's label takes.
    pub time: chrono::DateTime<Utc>,
    /// Unique per slot, e.g. the job name; recorded as the tag `job:<id>`.
    pub id: String,
}

impl Slot {
    pub(crate) fn tag(&self) -> String {
        format!("job:{}", self.id)
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
    /// Glob patterns of paths to leave out (matched against paths inside each source).
    pub exclude: Vec<String>,
    /// Stay on each source's filesystem: do not descend into other mounts.
    pub one_file_system: bool,
    /// How new blobs are compressed.
    pub compression: CompressionLevel,
    /// Threads reading files (default: one per core).
    pub read_threads: usize,
    /// How many files the walk may be ahead of the readers (listed, not yet stored in a
    /// directory tree) before it waits; bounds memory on huge trees.
    pub read_ahead_files: usize,
    /// Threads compressing and sealing blobs (default: one per core).
    pub encode_threads: usize,
    /// Volume uploads in flight at once (default 4).
    pub uploads: usize,
    /// The host recorded in the run (default: this machine's name).
    pub host: String,
    /// Free-form tags recorded in the run.
    pub tags: Vec<String>,
    /// Count the sources first (in parallel) so progress has a total.
    pub scan_totals: bool,
    /// How long to wait for a conflicting (exclusive) lock.
    pub lock_wait: std::time::Duration,
    /// Set (by a signal handler) to stop: the run is recorded as Aborted with every source
    /// finished before the stop, and the repository stays consistent.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The scheduled slot this run belongs to.
    pub slot: Option<Slot>,
    /// Count the repository's volumes and bytes after the run (one listing).
    pub totals: bool,
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
            read_ahead_files: 8192,
            encode_threads: cpus,
            uploads: 4,
            host: crate::repo::hostname(),
            tags: Vec::new(),
            scan_totals: false,
            lock_wait: std::time::Duration::ZERO,
            stop: None,
            slot: None,
            totals: false,
        }
    }
}

/// The result of a backup that wrote a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    /// The run as recorded in the repository.
    pub run: RunManifest,
    /// Some source's requested level was promoted to full because that source had no full
    /// to base it on (`run.sources[].level` says which).
    pub promoted: bool,
    /// The sources that were promoted to full.
    pub promoted_sources: Vec<String>,
    /// The level asked for (a source may have been promoted, see `promoted`).
    pub requested_level: Level,
    /// Wall time of the backup.
    pub duration_ms: u64,
    /// Volumes (pack files) written.
    pub volumes_written: u64,
    /// Index segments written.
    pub index_segments_written: usize,
    /// The slot's run already existed (a retried job): it is reported, nothing was read.
    pub reused: bool,
    /// The repository's size after the run, when asked for.
    pub repository: Option<crate::repo::RepositoryTotals>,
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
    for name in opts.source_levels.keys() {
        if !sources.iter().any(|s| &s.name == name) {
            return Err(Error::InvalidArgument(format!(
                "a level is given for source {name:?}, which is not backed up in this run"
            )));
        }
    }
    let lock = repo.lock(crate::repo::LockKind::Shared, "backup", opts.lock_wait)?;
    let catalog = repo.runs()?;
    // An attempt that was stopped (a pod evicted by a drain, the engine signalled) is no
    // result: the retry runs again, and its run is saved beside it under the next free label.
    if let Some(slot) = &opts.slot
        && let Some(done) = catalog
            .iter()
            .rev()
            .find(|r| r.tags.contains(&slot.tag()) && r.status != RunStatus::Aborted)
    {
        return reused(repo, done.clone(), opts, started_clock);
    }
    // Volumes a purge has marked for deletion must not be referenced: store again instead.
    let marked = repo.marked_volumes()?;
    repo.prefer_outside(&marked)?;
    let requests: Vec<(&str, Level)> = sources
        .iter()
        .map(|s| {
            let level = opts.source_levels.get(&s.name).copied();
            (s.name.as_str(), level.unwrap_or(opts.level))
        })
        .collect();
    let plan = plan_levels(&requests, &crate::catalog::source_entries(&catalog));
    let sink = BlobSink::new(
        repo,
        marked,
        &SinkOptions {
            compression: opts.compression,
            encoders: opts.encode_threads.max(1),
            uploads: opts.uploads.max(1),
            pack_size: repo.config().pack_size as usize,
            stop: opts.stop.clone(),
        },
    )?;
    let session = Session {
        repo,
        opts,
        progress,
        sink: &sink,
        chunker: ChunkerConfig::new(repo.config().chunker, repo.key().chunker_seed()),
        plan: &plan,
        catalog: &catalog,
    };
    let outcome = session.run(sources);
    // A storage failure surfaces from the sink as the real cause; the walk only saw it as an
    // interruption.
    let (walked, mut summary) = match (outcome, sink.finish()) {
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
        (Ok(m), Ok(s)) => (m, s),
    };
    let segments_written = summary.index_segments.len();
    repo.extend_index(std::mem::take(&mut summary.index_segments));
    let manifest = assemble(repo, opts, &plan, walked, &summary, started)?;
    lock.confirm()?;
    // Binaries that read one level per run must not purge or extend this catalog.
    repo.require_feature(crate::format::config::FEATURE_SOURCE_LEVELS)?;
    if manifest.status == RunStatus::Aborted {
        // Binaries that know no Aborted status could not read the catalog at all.
        repo.require_feature(crate::format::config::FEATURE_ABORTED_RUNS)?;
    }
    let label_time = opts.slot.as_ref().map_or(started, |s| s.time);
    let run = repo.save_run(manifest, label_time)?;
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
        reused: false,
        repository: if opts.totals {
            Some(repo.totals()?)
        } else {
            None
        },
    })
}

/// The report of a run this slot already recorded.
fn reused(
    repo: &Repository<Indexed>,
    run: RunManifest,
    opts: &BackupOptions,
    started: Instant,
) -> Result<BackupReport> {
    Ok(BackupReport {
        promoted: false,
        promoted_sources: Vec::new(),
        requested_level: opts.level,
        duration_ms: started.elapsed().as_millis() as u64,
        volumes_written: 0,
        index_segments_written: 0,
        reused: true,
        repository: if opts.totals {
            Some(repo.totals()?)
        } else {
            None
        },
        run,
    })
}

/// The sources as walked: their manifests, and whether the run was stopped.
struct Walked {
    sources: Vec<SourceManifest>,
    aborted: bool,
}

/// One backup run's shared context: the repository, the sink its blobs go to, the reader
/// pool's chunker, and the level plan.
struct Session<'a> {
    repo: &'a Repository<Indexed>,
    opts: &'a BackupOptions,
    progress: &'a Progress,
    sink: &'a BlobSink,
    chunker: ChunkerConfig,
    plan: &'a LevelPlan,
    catalog: &'a [RunManifest],
}

impl Session<'_> {
    /// Walk every source, feeding files to a pool of reader threads.
    fn run(&self, sources: &[SourceSpec]) -> Result<Walked> {
        let (file_tx, file_rx) = bounded::<Vec<walk::FileJob>>(self.opts.read_threads.max(1) * 2);
        let scan_stop = std::sync::atomic::AtomicBool::new(false);
        let run_filter = PathFilter::new(&[], &self.opts.exclude)?;
        std::thread::scope(|scope| {
            if self.opts.scan_totals {
                let (filter, stop, progress) = (&run_filter, &scan_stop, self.progress);
                scope.spawn(move || scan::count(sources, filter, progress, stop));
            }
            for _ in 0..self.opts.read_threads.max(1) {
                let rx = file_rx.clone();
                let (chunker, sink, progress) = (&self.chunker, self.sink, self.progress);
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    for job in rx.iter().flatten() {
                        let r = file::read_file(
                            &job.path, &job.stat, chunker, sink, progress, &mut buf,
                        );
                        progress.add_done(1, 0);
                        job.promise.set(r);
                    }
                });
            }
            drop(file_rx);
            let result = self.walk_sources(sources, &file_tx);
            drop(file_tx);
            scan_stop.store(true, Ordering::Relaxed);
            result
        })
    }

    fn walk_sources(
        &self,
        sources: &[SourceSpec],
        files: &crossbeam_channel::Sender<Vec<walk::FileJob>>,
    ) -> Result<Walked> {
        let mut out = Walked {
            sources: Vec::new(),
            aborted: false,
        };
        let mut link_group = 0u64;
        for source in sources {
            let Some(level) = self.plan.source(&source.name) else {
                continue;
            };
            let read_before = self.sink.bytes_read();
            let manifest = if out.aborted {
                Ok(stopped_manifest(
                    source,
                    "aborted before this source was read",
                ))
            } else {
                self.source(source, level, files, &mut link_group)
            };
            let mut m = match manifest {
                Ok(m) => m,
                Err(Error::Interrupted) if self.sink.should_stop() && !self.sink.has_failed() => {
                    out.aborted = true;
                    let mut m =
                        stopped_manifest(source, "aborted while this source was being read");
                    // Nothing of it is listed, but what was read was read (and stored).
                    m.stats.bytes_read = self.sink.bytes_read() - read_before;
                    m
                }
                Err(e) => return Err(e),
            };
            m.level = Some(level.level);
            m.parent = level.parent.clone();
            m.base_full = level.base_full.clone();
            m.captured = source.captured;
            out.sources.push(m);
        }
        Ok(out)
    }

    /// Back up one source at its planned level.
    fn source(
        &self,
        source: &SourceSpec,
        level: &SourceLevelPlan,
        files: &crossbeam_channel::Sender<Vec<walk::FileJob>>,
        link_group: &mut u64,
    ) -> Result<SourceManifest> {
        if self.sink.should_stop() {
            return Err(Error::Interrupted);
        }
        // The source's parent tree comes from that source's own parent run.
        let parent_tree = level
            .parent
            .as_ref()
            .and_then(|label| self.catalog.iter().find(|r| &r.label == label))
            .and_then(|run| run.sources.iter().find(|s| s.name == source.name))
            .and_then(|s| s.tree);
        let mut excludes = self.opts.exclude.clone();
        excludes.extend(source.exclude.iter().cloned());
        let filter = PathFilter::new(&[], &excludes)?;
        backup_source(
            &SourceCtx {
                repo: self.repo,
                sink: self.sink,
                filter: &filter,
                files,
                progress: self.progress,
                opts: self.opts,
                chunker: &self.chunker,
            },
            source,
            parent_tree,
            level.level != Level::Full,
            link_group,
        )
    }
}

/// The manifest of a source the run stopped before finishing: nothing of it is recorded.
fn stopped_manifest(source: &SourceSpec, why: &str) -> SourceManifest {
    SourceManifest {
        name: source.name.clone(),
        kind: match source.input {
            SourceInput::Path(_) => SourceKind::Directory,
            _ => SourceKind::Stream,
        },
        origin: PathText::Utf8(match &source.input {
            SourceInput::Path(p) => p.display().to_string(),
            SourceInput::Stdin => "<stdin>".into(),
            SourceInput::Command(c) => c.clone(),
            SourceInput::Pipe(p) => p.fifo.display().to_string(),
        }),
        tree: None,
        status: SourceStatus::Failed,
        stats: RunStats {
            errors: 1,
            ..RunStats::default()
        },
        errors: vec![ItemError {
            path: "/".into(),
            error: why.into(),
        }],
        warnings: Vec::new(),
        level: None,
        parent: None,
        base_full: None,
        captured: None,
    }
}

/// The run's manifest from its sources (refused when every source failed, unless the run
/// was stopped: an aborted run is recorded so the catalog shows it).
fn assemble(
    repo: &Repository<Indexed>,
    opts: &BackupOptions,
    plan: &LevelPlan,
    walked: Walked,
    summary: &SinkSummary,
    started: chrono::DateTime<Utc>,
) -> Result<RunManifest> {
    let sources = walked.sources;
    if !walked.aborted && sources.iter().all(|s| s.status == SourceStatus::Failed) {
        let first: Vec<String> = sources
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
    for s in &sources {
        stats.add(&s.stats);
    }
    stats.bytes_new = summary.bytes_new;
    stats.bytes_stored = summary.bytes_stored;
    stats.blobs_new = summary.blobs_new;
    let complete = !walked.aborted && sources.iter().all(|s| s.status == SourceStatus::Complete);
    let mut tags = opts.tags.clone();
    if let Some(slot) = &opts.slot {
        tags.push(slot.tag());
    }
    Ok(RunManifest {
        version: MANIFEST_VERSION,
        label: String::new(),
        level: plan.level,
        status: if walked.aborted {
            RunStatus::Aborted
        } else if complete {
            RunStatus::Complete
        } else {
            RunStatus::Partial
        },
        started,
        finished: Utc::now(),
        host: opts.host.clone(),
        owner: opts
            .owner
            .clone()
            .or_else(|| repo.owner().map(str::to_owned)),
        parent: plan.common_parent(),
        base_full: plan.common_base_full(),
        sources,
        stats,
        tags,
        aborted: walked.aborted,
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
        captured: None,
    })
}

/// What backing up one source needs from its run.
struct SourceCtx<'a> {
    repo: &'a Repository<Indexed>,
    sink: &'a BlobSink,
    filter: &'a PathFilter,
    files: &'a crossbeam_channel::Sender<Vec<walk::FileJob>>,
    progress: &'a Progress,
    opts: &'a BackupOptions,
    chunker: &'a ChunkerConfig,
}

fn backup_source(
    cx: &SourceCtx<'_>,
    source: &SourceSpec,
    parent_tree: Option<Id>,
    reuse_unchanged: bool,
    link_group: &mut u64,
) -> Result<SourceManifest> {
    let SourceCtx {
        repo,
        sink,
        progress,
        chunker,
        ..
    } = *cx;
    let name = source.stream_name();
    let (out, origin) = match &source.input {
        SourceInput::Stdin => (
            stream::read_stream(name, std::io::stdin().lock(), chunker, sink, progress)?,
            PathText::Utf8("<stdin>".into()),
        ),
        SourceInput::Command(cmd) => (
            stream::read_command(name, cmd, chunker, sink, progress)?,
            PathText::Utf8(cmd.clone()),
        ),
        SourceInput::Pipe(pipe) => (
            stream::read_pipe(name, pipe, chunker, sink, progress)?,
            PathText::from_bytes(path_bytes(&pipe.fifo)),
        ),
        SourceInput::Path(path) => {
            return backup_path(cx, source, path, parent_tree, reuse_unchanged, link_group);
        }
    };
    stream_manifest(repo, sink, source, origin, out)
}

/// A source read from a path: a directory tree, a single file, or a FIFO read as a stream.
fn backup_path(
    cx: &SourceCtx<'_>,
    source: &SourceSpec,
    path: &Path,
    parent_tree: Option<Id>,
    reuse_unchanged: bool,
    link_group: &mut u64,
) -> Result<SourceManifest> {
    let SourceCtx {
        repo,
        sink,
        filter,
        files,
        progress,
        opts,
        chunker,
    } = *cx;
    // The root argument is followed if it is a symlink: `backup /data` means the data.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let stat = EntryStat::from_metadata(&meta);
    let origin = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if stat.kind == NodeKind::Fifo {
        let fifo = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let out = stream::read_stream(source.stream_name(), fifo, chunker, sink, progress)?;
        let origin = PathText::from_bytes(path_bytes(&origin));
        return stream_manifest(repo, sink, source, origin, out);
    }
    let mut walker = walk::Walker {
        repo,
        sink,
        filter,
        files: walk::FileQueue::new(files),
        progress,
        reuse_unchanged,
        root_device: opts.one_file_system.then_some(stat.device),
        hardlinks: HashMap::new(),
        next_link_group: *link_group,
        pending_files: 0,
        pending_limit: opts.read_ahead_files.max(1),
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
            root.subtree = walker.walk_root(path, prev)?;
            root.subtree.is_some()
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
        NodeKind::File => read_root_file(&mut walker, path, &stat, &mut root)?,
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
        captured: None,
    })
}

/// A source that is one file, read through the reader pool (whose chunk windows are already
/// allocated) into `root`. Whether it was stored; an unreadable file is the source's error.
fn read_root_file(
    walker: &mut walk::Walker<'_>,
    path: &Path,
    stat: &EntryStat,
    root: &mut Node,
) -> Result<bool> {
    walker.stats.files += 1;
    walker.stats.bytes_total += stat.size;
    let promise = promise::Promise::new();
    walker.files.push(walk::FileJob {
        path: path.to_path_buf(),
        stat: stat.clone(),
        promise: promise.clone(),
    })?;
    walker.files.flush()?;
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
            Ok(true)
        }
        Err(file::FileFailure::Unreadable(msg)) => {
            walker.errors.push(ItemError {
                path: "/".into(),
                error: format!("not read: {msg}"),
            });
            walker.stats.errors += 1;
            Ok(false)
        }
        Err(file::FileFailure::Aborted) => Err(Error::Interrupted),
    }
}
