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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use holdfast_engine::progress::Progress;

use crate::cli::{CliError, Ctx, exit, print_out};
use crate::job::error::JobError;
use crate::job::execute::{Job, Report, execute, read_plan};
use crate::job::summary::{FailureSummary, JobSummary};
use crate::job::{pipe, tools};

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
        JobCommand::Tools { into, fifo } => {
            tools::tools(&into, &fifo)?;
            Ok(exit::OK)
        }
        JobCommand::Pipe { fifo, command } => {
            // This helper is its container's pid 1, which the kernel spares signals it has
            // no handler for: without one, a pod being deleted (a drain, an abort) would wait
            // its whole grace period for the dump. With it, SIGTERM stops the dump like the
            // end of reading.
            let stop = crate::cli::signals::stop_flag();
            // Exit 0 whatever the command did: the backup reports it, the pod must not fail
            // for it.
            pipe::pipe(&fifo, &command, &stop)?;
            Ok(exit::OK)
        }
    }
}

fn run_plan(ctx: &Ctx, file: Option<&Path>) -> Result<u8, CliError> {
    let plan = read_plan(file)?;
    let progress = Arc::new(Progress::default());
    let key = || ctx.passphrase(false).map_err(|e| e.to_string());
    let job = Job {
        plan: &plan,
        key: &key,
        stop: &crate::cli::signals::stop_flag,
        progress: &progress,
    };
    match execute(&job) {
        Ok(outcome) => {
            ctx.summary(&outcome.summary.to_message());
            print_out(&render(&outcome.report))?;
            Ok(if outcome.stopped {
                exit::ABORTED
            } else {
                exit::OK
            })
        }
        Err(e) => {
            // The controller learns what went wrong from this, not from the log.
            let op = plan.operation.name();
            let failure = match &e {
                JobError::Engine(err) => FailureSummary::of(op, err),
                other => JobSummary::Failed(FailureSummary {
                    operation: op.to_owned(),
                    category: other.category(),
                    message: other.to_string(),
                }),
            };
            ctx.summary(&failure.to_message());
            ctx.summary_written();
            Err(e.into())
        }
    }
}

/// The report for the pod's log, as the matching CLI command prints it.
fn render(report: &Report) -> String {
    match report {
        Report::Backup(r) => super::backup::render(r),
        Report::Purge(r) => super::purge::render(r),
        Report::Verify(r) => super::verify::render(r),
        Report::Restore(r) => super::restore::render(r),
        Report::Copy { report, created } => super::copy::render(report, *created),
        Report::StorageCheck(r) => r
            .items
            .iter()
            .map(|i| {
                format!(
                    "{} {:<10} {}",
                    if i.ok { "ok  " } else { "FAIL" },
                    i.check,
                    i.detail
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Report::DeleteRepository { summary, kept } => {
            let mut lines = Vec::new();
            if !kept.is_empty() {
                lines.push(format!(
                    "kept {} objects that are not part of the repository: {}",
                    summary.objects_kept,
                    kept.join(", ")
                ));
            }
            lines.push(format!(
                "deleted the repository: {} objects, {} bytes{}",
                summary.objects_deleted,
                summary.bytes_deleted,
                if summary.absent {
                    " (there was none)"
                } else {
                    ""
                }
            ));
            lines.join("\n")
        }
    }
}
