//! `holdfast job`: what the controller's job pods run.
//!
//! * `job run` executes the plan in `HOLDFAST_JOB_PLAN` (backup, purge, verify, restore,
//!   storage check, repository deletion), prints its report and leaves the compact
//!   [`JobSummary`] as the termination message (`HOLDFAST_SUMMARY_FILE`). It exits 0
//!   whenever it produced a result (a Partial backup, a damaged verify: the summary says
//!   so), 5 when stopped by a signal, and the CLI's codes when it could not produce one, so
//!   that a Job retries only what a retry can fix.
//! * `job tools` (an init container) copies this binary, with the dynamic loader and shared
//!   libraries it runs with, into a shared volume and creates the FIFOs of command sources,
//!   so that any image (without a shell, without glibc) can run `job pipe`.
//! * `job pipe` (the command container's entrypoint) runs the user's command with its stdout
//!   on a FIFO and records how it ended; it always exits 0, so a failing dump makes the run
//!   Partial instead of failing the pod.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use holdfast_engine::Error;
use holdfast_engine::backup::{
    BackupOptions, PipeSpec, PipeStatus, Slot, SourceSpec, backup, repository_totals, with_suffix,
};
use holdfast_engine::compress::CompressionLevel;
use holdfast_engine::format::run::RunStatus;
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, purge};
use holdfast_engine::repo::{InitOptions, Repository, RunSelector};
use holdfast_engine::restore::{Overwrite, RestoreOptions, RestoreTarget, restore};
use holdfast_engine::storage::check::check;
use holdfast_engine::storage::{RepoUrl, Store};
use holdfast_engine::summary::{DeleteSummary, FailureSummary, JobSummary, RepositoryTotals};
use holdfast_engine::verify::{VerifyDepth, verify_with};

use crate::cli::{CliError, Ctx, exit, print_out};
use crate::job_plan::{self, JobPlan, Operation};

/// How long a command container may take to start its command.
const PIPE_START_TIMEOUT: Duration = Duration::from_secs(600);
/// The marker a backup leaves when it is done reading, so that command containers stop.
const DONE_MARKER: &str = ".done";
/// Bytes of a command's stderr kept for the report.
const STDERR_TAIL: usize = 2048;

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Run the plan in HOLDFAST_JOB_PLAN (or --plan FILE).
    Run {
        /// Read the plan from this file instead of HOLDFAST_JOB_PLAN.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Copy this binary into DIR and create FIFOs (an init container of backup pods).
    Tools {
        /// Where to put `holdfast`.
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
        /// A FIFO to create (repeatable).
        #[arg(long, value_name = "PATH")]
        fifo: Vec<PathBuf>,
    },
    /// Run COMMAND with its stdout on FIFO and record how it ended in FIFO.status.
    Pipe {
        #[arg(long, value_name = "PATH")]
        fifo: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, cmd: JobCommand) -> Result<u8, CliError> {
    match cmd {
        JobCommand::Run { plan } => run_plan(ctx, plan.as_deref()),
        JobCommand::Tools { into, fifo } => tools(&into, &fifo),
        JobCommand::Pipe { fifo, command } => pipe(&fifo, &command),
    }
}

fn read_plan(file: Option<&Path>) -> Result<JobPlan, CliError> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("cannot read the plan {}: {e}", f.display())))?,
        None => std::env::var(job_plan::PLAN_ENV).map_err(|_| {
            CliError::Usage(format!(
                "no plan: set {} or pass --plan",
                job_plan::PLAN_ENV
            ))
        })?,
    };
    let plan: JobPlan = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("the job plan does not parse: {e}")))?;
    if plan.version != job_plan::PLAN_VERSION {
        return Err(CliError::Usage(format!(
            "the job plan has version {}, this holdfast runs version {}: the controller and \
             the job image differ",
            plan.version,
            job_plan::PLAN_VERSION
        )));
    }
    Ok(plan)
}

fn run_plan(ctx: &Ctx, file: Option<&Path>) -> Result<u8, CliError> {
    let plan = read_plan(file)?;
    let op = plan.operation.name();
    match execute(ctx, &plan) {
        Ok(code) => Ok(code),
        Err(e) => {
            // The controller learns what went wrong from this, not from the log.
            let failure = match &e {
                CliError::Engine(err) => FailureSummary::of(op, err),
                other => JobSummary::Failed(FailureSummary {
                    operation: op.to_owned(),
                    category: other.category(),
                    message: other.to_string(),
                }),
            };
            ctx.summary(&failure.to_message());
            ctx.summary_written();
            Err(e)
        }
    }
}

fn store_of(plan: &JobPlan) -> Result<Store, CliError> {
    let url = RepoUrl::parse(&plan.repository.url).map_err(Error::from)?;
    Ok(Store::open(&url).map_err(Error::from)?)
}

/// Open the repository, creating it first if the plan says so and there is none.
fn open(ctx: &Ctx, plan: &JobPlan, store: Store) -> Result<Repository, CliError> {
    let pass = ctx.passphrase(false)?;
    match holdfast_engine::repo::read_config(&store) {
        Err(Error::NotARepository { .. }) if plan.repository.create => {
            let opts = InitOptions {
                owner: plan.repository.owner.clone(),
                ..InitOptions::default()
            };
            Ok(Repository::init(store, &pass, &opts)?)
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Repository::open(store, &pass)?),
    }
}

fn execute(ctx: &Ctx, plan: &JobPlan) -> Result<u8, CliError> {
    let store = store_of(plan)?;
    let progress = Arc::new(Progress::default());
    match &plan.operation {
        Operation::Backup(b) => job_backup(ctx, plan, b, store, &progress),
        Operation::Purge(p) => {
            let mut repo = open(ctx, plan, store)?.load_index()?;
            let opts = PurgeOptions {
                policy: job_plan::retention_policy(&p.retention).map_err(CliError::Usage)?,
                grace: Duration::from_secs(p.grace_seconds),
                lock_wait: Duration::from_secs(600),
                ..PurgeOptions::default()
            };
            let report = purge(&mut repo, &opts, &progress)?;
            let totals = inventory_totals(&repo)?;
            ctx.summary(&report.job_summary(Some(totals)).to_message());
            print_out(&super::purge::render(&report))?;
            // A deferred deletion is a result (phase one stands; the summary says what is
            // left), not a failure to retry.
            Ok(exit::OK)
        }
        Operation::Verify(v) => {
            let repo = open(ctx, plan, store)?.load_index()?;
            let depth = if v.deep {
                VerifyDepth::Deep {
                    sample_percent: v.sample_percent,
                }
            } else {
                VerifyDepth::Quick
            };
            let report = verify_with(&repo, depth, Duration::from_secs(600), &progress)?;
            let totals = repository_totals(&repo)?;
            ctx.summary(&report.job_summary(Some(totals)).to_message());
            print_out(&super::verify::render(&report))?;
            // Damage is the result, carried by the summary; the job did its work.
            Ok(exit::OK)
        }
        Operation::Restore(r) => {
            let repo = open(ctx, plan, store)?.load_index()?;
            let selector = match (&r.label, r.point_in_time) {
                (Some(l), _) => RunSelector::Label(l.clone()),
                (None, Some(t)) => RunSelector::At(t),
                (None, None) => RunSelector::Newest,
            };
            let opts = RestoreOptions {
                selector,
                allow_partial: r.allow_partial,
                sources: r.sources.clone(),
                include: r.include.clone(),
                exclude: r.exclude.clone(),
                target: RestoreTarget::Directory(PathBuf::from(&r.target)),
                overwrite: r.overwrite.parse::<Overwrite>()?,
                continue_on_error: r.continue_on_error,
                owner: true,
                lock_wait: Duration::from_secs(600),
                threads: None,
                stop: Some(crate::cli::signals::stop_flag()),
            };
            let report = restore(&repo, &opts, &progress)?;
            ctx.summary(&report.summary());
            print_out(&super::restore::render(&report))?;
            // Partial and failed restores are results the summary carries; only a stop on
            // request is an exit of its own.
            Ok(if report.aborted {
                exit::ABORTED
            } else {
                exit::OK
            })
        }
        Operation::StorageCheck(c) => {
            let report = check(&store);
            let (total, available) = match c.capacity_path.as_deref() {
                Some(p) => capacity(Path::new(p)),
                None => (None, None),
            };
            ctx.summary(&report.job_summary(total, available).to_message());
            for i in &report.items {
                print_out(&format!(
                    "{} {:<10} {}",
                    if i.ok { "ok  " } else { "FAIL" },
                    i.check,
                    i.detail
                ))?;
            }
            // The checks that failed are the result the summary carries.
            Ok(exit::OK)
        }
        Operation::DeleteRepository => {
            let summary = match holdfast_engine::repo::read_config(&store) {
                Err(Error::NotARepository { .. }) => DeleteSummary {
                    objects_deleted: 0,
                    bytes_deleted: 0,
                    objects_kept: 0,
                    absent: true,
                },
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let pass = ctx.passphrase(false)?;
                    let repo = Repository::open(store, &pass)?;
                    let r = repo.destroy(
                        plan.repository.owner.as_deref(),
                        Duration::from_secs(600),
                        false,
                    )?;
                    if !r.kept.is_empty() {
                        print_out(&format!(
                            "kept {} objects that are not part of the repository: {}",
                            r.objects_kept,
                            r.kept.join(", ")
                        ))?;
                    }
                    DeleteSummary {
                        objects_deleted: r.objects_deleted,
                        bytes_deleted: r.bytes_deleted,
                        objects_kept: r.objects_kept,
                        absent: false,
                    }
                }
            };
            print_out(&format!(
                "deleted the repository: {} objects, {} bytes{}",
                summary.objects_deleted,
                summary.bytes_deleted,
                if summary.absent {
                    " (there was none)"
                } else {
                    ""
                }
            ))?;
            ctx.summary(&JobSummary::DeleteRepository(summary).to_message());
            Ok(exit::OK)
        }
    }
}

fn job_backup(
    ctx: &Ctx,
    plan: &JobPlan,
    b: &job_plan::BackupPlan,
    store: Store,
    progress: &Arc<Progress>,
) -> Result<u8, CliError> {
    let stop = crate::cli::signals::stop_flag();
    let sources: Vec<SourceSpec> = b
        .sources
        .iter()
        .map(|s| {
            let mut spec = match (&s.path, &s.fifo) {
                (Some(p), _) => SourceSpec::path(&s.name, p),
                (None, Some(f)) => SourceSpec::pipe(
                    &s.name,
                    PipeSpec {
                        fifo: PathBuf::from(f),
                        start_timeout: PIPE_START_TIMEOUT,
                    },
                ),
                (None, None) => SourceSpec::path(&s.name, "/nonexistent"),
            };
            spec.exclude = s.exclude.clone();
            spec.file_name = s.file_name.clone();
            spec
        })
        .collect();
    let fifo_dirs: Vec<PathBuf> = b
        .sources
        .iter()
        .filter_map(|s| s.fifo.as_ref())
        .filter_map(|f| Path::new(f).parent().map(Path::to_path_buf))
        .collect();
    let compression = match &b.compression {
        Some(c) => c
            .parse::<CompressionLevel>()
            .map_err(|e| CliError::Usage(e.to_string()))?,
        None => CompressionLevel::default(),
    };
    let result = (|| -> Result<holdfast_engine::backup::BackupReport, CliError> {
        let mut repo = open(ctx, plan, store)?.load_index()?;
        let opts = BackupOptions {
            level: b.level,
            source_levels: b.source_levels.clone(),
            owner: plan.repository.owner.clone(),
            compression,
            uploads: b.uploads.map_or(4, |u| u as usize).max(1),
            lock_wait: Duration::from_secs(600),
            stop: Some(stop.clone()),
            slot: Some(Slot {
                time: b.slot_time,
                id: b.slot_id.clone(),
            }),
            totals: true,
            ..BackupOptions::default()
        };
        Ok(backup(&mut repo, &sources, &opts, progress)?)
    })();
    // Whatever happened, command containers must not wait for a reader that is gone.
    for dir in &fifo_dirs {
        let _ = std::fs::write(dir.join(DONE_MARKER), b"");
    }
    let report = result?;
    ctx.summary(&report.summary());
    print_out(&super::backup::render(&report))?;
    // A Partial run is a recorded run: the job succeeded (a retry would only find it again).
    Ok(if report.run.status == RunStatus::Aborted {
        exit::ABORTED
    } else {
        exit::OK
    })
}

/// Totals including live and reclaimable bytes (walks every run).
fn inventory_totals(
    repo: &Repository<holdfast_engine::repo::Indexed>,
) -> Result<RepositoryTotals, CliError> {
    let inv = holdfast_engine::inventory::inventory(repo)?;
    let mut t = repository_totals(repo)?;
    t.live_bytes = Some(inv.live_bytes);
    t.reclaimable_bytes = Some(inv.reclaimable_bytes);
    Ok(t)
}

/// Size and free space of the filesystem holding `path`.
fn capacity(path: &Path) -> (Option<u64>, Option<u64>) {
    match rustix::fs::statvfs(path) {
        Ok(s) => (
            Some(s.f_blocks.saturating_mul(s.f_frsize)),
            Some(s.f_bavail.saturating_mul(s.f_frsize)),
        ),
        Err(_) => (None, None),
    }
}

fn tools(into: &Path, fifos: &[PathBuf]) -> Result<u8, CliError> {
    let me = std::env::current_exe()
        .map_err(|e| CliError::Io(format!("cannot find this program: {e}")))?;
    std::fs::create_dir_all(into).map_err(|e| CliError::Io(format!("{}: {e}", into.display())))?;
    let dest = into.join("holdfast");
    std::fs::copy(&me, &dest).map_err(|e| CliError::Io(format!("{}: {e}", dest.display())))?;
    std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| CliError::Io(format!("{}: {e}", dest.display())))?;
    copy_runtime(into)?;
    for f in fifos {
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
        }
        match rustix::fs::mknodat(
            rustix::fs::CWD,
            f,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        ) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::EXIST => {}
            Err(e) => return Err(CliError::Io(format!("mkfifo {}: {e}", f.display()))),
        }
        // Whatever user the command's image runs as must be able to write it (past umask).
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| CliError::Io(format!("{}: {e}", f.display())))?;
    }
    Ok(exit::OK)
}

/// Copy the dynamic loader (as `ld.so`) and every shared library this process has mapped
/// (into `lib/`): what `helper_command` starts the copied binary with, so that it never
/// depends on the command image's libc.
fn copy_runtime(into: &Path) -> Result<(), CliError> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| CliError::Io(format!("/proc/self/maps: {e}")))?;
    let libs = into.join("lib");
    std::fs::create_dir_all(&libs).map_err(|e| CliError::Io(format!("{}: {e}", libs.display())))?;
    let mut loader = false;
    let mut seen = std::collections::BTreeSet::new();
    for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
        let file = Path::new(path);
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.starts_with('/') || !name.contains(".so") || !seen.insert(path.to_owned()) {
            continue;
        }
        let dest = if name.starts_with("ld-") {
            loader = true;
            into.join("ld.so")
        } else {
            libs.join(name)
        };
        std::fs::copy(file, &dest).map_err(|e| CliError::Io(format!("{path}: {e}")))?;
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| CliError::Io(format!("{}: {e}", dest.display())))?;
    }
    if !loader {
        return Err(CliError::Io(
            "this holdfast binary runs without a dynamic loader (a static build): command \
             sources need the image's glibc build, whose loader the helper carries"
                .into(),
        ));
    }
    Ok(())
}

/// Write `status` next to the FIFO, atomically (a reader never sees half of it).
fn write_status(fifo: &Path, status: &PipeStatus) {
    let path = with_suffix(fifo, ".status");
    let tmp = with_suffix(fifo, ".status.tmp");
    let json = serde_json::to_vec(status).unwrap_or_default();
    if std::fs::write(&tmp, json).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

fn pipe(fifo: &Path, command: &[String]) -> Result<u8, CliError> {
    // The init container created the FIFO; wait a little in case it is still coming.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !fifo.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Read and write: opening does not wait for the reader, and this end keeps the pipe (and
    // what the command already wrote) alive until the command's status is recorded.
    let end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .map_err(|e| CliError::Io(format!("cannot open the FIFO {}: {e}", fifo.display())))?;
    let _ = std::fs::write(with_suffix(fifo, ".started"), b"");
    let done = fifo
        .parent()
        .map(|d| d.join(DONE_MARKER))
        .unwrap_or_default();
    let stdout = end
        .try_clone()
        .map_err(|e| CliError::Io(format!("cannot share the FIFO: {e}")))?;
    // This helper is its container's pid 1, which the kernel spares signals it has no
    // handler for: without one, a pod being deleted (a drain, an abort) would wait its whole
    // grace period for the dump. With it, SIGTERM stops the dump like the end of reading.
    let stop = crate::cli::signals::stop_flag();
    // In a process group of its own, so that stopping it reaches what it started too (a
    // shell's `pg_dump | gzip`, a background job): a survivor would hold the pod open.
    let spawned = std::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            write_status(
                fifo,
                &PipeStatus {
                    error: Some(format!("{}: {e}", command[0])),
                    ..PipeStatus::default()
                },
            );
            drop(end);
            return Ok(exit::OK);
        }
    };
    // Forward stderr to this container's log, keeping the tail for the report.
    let (tail_sent, tail_received) = std::sync::mpsc::channel::<String>();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut tail: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let _ = std::io::stderr().write_all(&chunk[..n]);
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let start = tail.len().saturating_sub(STDERR_TAIL);
            let _ = tail_sent.send(String::from_utf8_lossy(&tail[start..]).trim().to_owned());
        });
    }
    let group = rustix::process::Pid::from_raw(child.id() as i32);
    let signal_group = |signal| {
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, signal);
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if done.exists() || stop.load(std::sync::atomic::Ordering::Relaxed) {
            // The reader is gone (finished or stopped), or the pod is: stop the command,
            // kindly first.
            signal_group(rustix::process::Signal::TERM);
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            signal_group(rustix::process::Signal::KILL);
            break child.wait();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // What the command left behind in its group ends with it: a stray holding its stderr
    // would keep this helper, and the pod, from ever finishing.
    signal_group(rustix::process::Signal::KILL);
    // One that left the group may still hold stderr: the report does not wait for it.
    let stderr_tail = tail_received
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    let recorded = match status {
        Ok(s) => PipeStatus {
            exit_code: s.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&s),
            error: None,
            stderr_tail,
        },
        Err(e) => PipeStatus {
            error: Some(format!("waiting for the command: {e}")),
            stderr_tail,
            ..PipeStatus::default()
        },
    };
    write_status(fifo, &recorded);
    // Hold this end until the reader has the FIFO open (or is gone): closing it first would
    // destroy the pipe with whatever short output it still holds.
    let reading = with_suffix(fifo, ".reading");
    let until = std::time::Instant::now() + PIPE_START_TIMEOUT;
    while !reading.exists()
        && !done.exists()
        && !stop.load(std::sync::atomic::Ordering::Relaxed)
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(end);
    // Exit 0 whatever the command did: the backup reports it, the pod must not fail for it.
    Ok(exit::OK)
}
