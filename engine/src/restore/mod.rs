//! Restoring a run to a directory, Zextras-style: everything that can be restored is, and
//! the report lists restored, skipped and unrestored items with reasons.

mod content;
mod file;
mod links;
mod plan;
mod report;
mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::bounded;

use crate::Result;
use crate::format::config::Operation;
use crate::format::tree::Node;
use crate::fsmeta::{MetadataOptions, apply_metadata};
use crate::pattern::PathFilter;
use crate::progress::Progress;
use crate::repo::{Indexed, Repository, RunSelector, select_sources};

pub(crate) use plan::target_roots;
pub use plan::{Overwrite, RestoreTarget};
pub use report::{ItemOutcome, RestoreReport, RestoreStatus, SourceTarget, UnrestoredItem};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Which run (or point in time) to restore from.
    pub selector: RunSelector,
    /// Consider Partial runs when picking the newest / point-in-time run.
    pub allow_partial: bool,
    /// Source names to restore; empty means all.
    pub sources: Vec<String>,
    /// Glob patterns of paths to restore (empty: everything).
    pub include: Vec<String>,
    /// Glob patterns of paths to leave out.
    pub exclude: Vec<String>,
    /// Where to write.
    pub target: RestoreTarget,
    /// What to do with files that exist at the target.
    pub overwrite: Overwrite,
    /// Keep going after an item fails; otherwise stop at the first failure.
    pub continue_on_error: bool,
    /// Restore ownership (uid/gid). Effective only as root.
    pub owner: bool,
    /// Volumes read in parallel; `None` picks by storage: one per core when reads are
    /// local, four per core when they wait on an object store's latency.
    pub threads: Option<usize>,
    /// How long to wait for a conflicting (exclusive) lock.
    pub lock_wait: std::time::Duration,
    /// Set (by a signal handler) to stop early; the report says so.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            selector: RunSelector::Newest,
            allow_partial: false,
            sources: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            target: RestoreTarget::Original,
            overwrite: Overwrite::Never,
            continue_on_error: true,
            owner: true,
            lock_wait: std::time::Duration::ZERO,
            threads: None,
            stop: None,
        }
    }
}

struct FileJob {
    path: PathBuf,
    node: Node,
    rel: String,
    replace: bool,
}

/// Shared restore state.
struct Ctx<'a> {
    repo: &'a Repository<Indexed>,
    opts: &'a RestoreOptions,
    filter: PathFilter,
    meta: MetadataOptions,
    report: Mutex<report::Builder>,
    progress: &'a Progress,
    /// First restored path of each hard-link group.
    link_firsts: Mutex<HashMap<u64, PathBuf>>,
    /// Set at the first unrestored item when not continuing on errors; checked per item
    /// without taking the report's lock.
    stopped: std::sync::atomic::AtomicBool,
    /// Volume readers running.
    threads: usize,
}

impl Ctx<'_> {
    fn not_kept(&self, n: crate::fsmeta::NotKept) {
        if n != crate::fsmeta::NotKept::default() {
            self.report
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .not_kept(n);
        }
    }

    fn record(&self, rel: &str, outcome: ItemOutcome) {
        if matches!(outcome, ItemOutcome::Unrestored(_)) && !self.opts.continue_on_error {
            self.stopped
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(rel, outcome);
    }

    fn record_leftover(&self, found: report::Leftover) {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .leftover(found);
    }

    fn should_stop(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed) || self.aborted()
    }

    fn aborted(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Restore a run. Fails only when nothing can start (no such run, unknown source); item
/// failures end up in the report.
pub fn restore(
    repo: &Repository<Indexed>,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    repo.check_features(Operation::Read)?;
    let _lock = repo.lock(crate::repo::LockKind::Shared, "restore", opts.lock_wait)?;
    let runs = repo.runs()?;
    let chosen = select_sources(&runs, &opts.selector, &opts.sources, opts.allow_partial)?;
    let roots = target_roots(&chosen, &opts.target);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = opts
        .threads
        .unwrap_or_else(|| default_threads(cores, repo.store().reads_wait_on_latency()))
        .max(1);
    let ctx = Ctx {
        repo,
        opts,
        filter: PathFilter::new(&opts.include, &opts.exclude)?,
        meta: MetadataOptions { owner: opts.owner },
        report: Mutex::new(report::Builder::default()),
        progress,
        link_firsts: Mutex::new(HashMap::new()),
        stopped: std::sync::atomic::AtomicBool::new(false),
        threads,
    };
    for (c, _) in &roots {
        let source = c.source;
        progress.add_total(
            source.stats.files + source.stats.dirs,
            source.stats.bytes_total,
        );
    }
    progress
        .totals_final
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let mut deferred_links: Vec<FileJob> = Vec::new();
    let mut dirs: Vec<plan::PendingDir> = Vec::new();
    // The walk hands files over in batches; one batch is written while the next is walked.
    let (tx, rx) = bounded::<Vec<FileJob>>(1);
    let walk_result = std::thread::scope(|scope| {
        let ctx = &ctx;
        scope.spawn(move || {
            for batch in rx {
                if !ctx.should_stop() {
                    volumes::restore_files(ctx, batch);
                }
            }
        });
        let mut walker = plan::Walker {
            ctx,
            files: plan::FileBatches::new(tx),
            deferred_links: &mut deferred_links,
            dirs: &mut dirs,
        };
        let mut result = Ok(());
        for (c, root) in &roots {
            if let Err(e) = walker.restore_source(c.source, root) {
                result = Err(e);
                break;
            }
        }
        walker.files.flush();
        result
    });
    walk_result?;
    for job in deferred_links {
        if ctx.should_stop() {
            break;
        }
        links::restore_link_or_copy(&ctx, job);
    }
    // Directory times last, deepest first, so creating children does not disturb them.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.depth));
    for dir in dirs {
        let outcome = match apply_metadata(&dir.path, &dir.node, ctx.meta) {
            Ok(not_kept) => {
                ctx.not_kept(not_kept);
                ItemOutcome::Restored { bytes: 0 }
            }
            Err(e) => ItemOutcome::Unrestored(format!("metadata not applied: {e}")),
        };
        ctx.record(&dir.shown, outcome);
    }
    let aborted = ctx.aborted();
    let report = ctx.report.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(report.finish(
        roots
            .iter()
            .map(|(c, p)| SourceTarget {
                source: c.source.name.clone(),
                target: p.display().to_string(),
                run: c.run.label.clone(),
                run_started: c.run.started,
                level: crate::catalog::source_level(c.run, c.source),
            })
            .collect(),
        started.elapsed(),
        opts.continue_on_error,
        aborted,
    ))
}

/// Local reads keep a core busy each, so more writers than cores only add memory (a decode
/// buffer and an allocator arena per thread) and context switches; reads from an object store
/// mostly wait, so more are kept in flight.
fn default_threads(cores: usize, reads_wait_on_latency: bool) -> usize {
    if reads_wait_on_latency {
        cores.max(2) * 4
    } else {
        cores.max(2)
    }
}

/// Node names come from our own authenticated trees, but a restore must never write outside
/// its target whatever the tree says.
fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Make sure a real directory (not a symlink to one) is at `path`; `true` if this call
/// created it. Creating first costs a restore into an empty target no lookup per directory.
/// Whether `path` is an empty directory.
fn empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// Whether `path` holds nothing, or only the `lost+found` directory of a new file system.
fn fresh_volume_root(path: &Path) -> bool {
    std::fs::read_dir(path)
        .is_ok_and(|mut d| d.all(|e| e.is_ok_and(|e| e.file_name() == "lost+found")))
}

fn ensure_real_dir(path: &Path) -> std::io::Result<bool> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(path)?.is_dir() {
                Ok(false)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ))
            }
        }
        Err(e) => Err(e),
    }
}
