//! `job pipe`, the entrypoint of a command source's container: runs the user's dump with its
//! stdout on a FIFO the backup reads, and records how it ended (`<fifo>.status`). The
//! backup's side of the protocol (`.started`, `.reading`, the status) is the engine's
//! pipe source; the `.done` marker the runner leaves when it stops reading
//! ([`DONE_MARKER`]) tells this side to stop the command.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use holdfast_engine::backup::{PipeStatus, stderr_tail, with_suffix};

use super::error::JobError;

/// How long a command container may take to start its command.
pub const PIPE_START_TIMEOUT: Duration = Duration::from_secs(600);
/// The marker a backup leaves when it is done reading, so that command containers stop.
pub const DONE_MARKER: &str = ".done";

/// Write `status` next to the FIFO, atomically (a reader never sees half of it).
fn write_status(fifo: &Path, status: &PipeStatus) {
    let path = with_suffix(fifo, ".status");
    let tmp = with_suffix(fifo, ".status.tmp");
    let json = serde_json::to_vec(status).unwrap_or_default();
    if std::fs::write(&tmp, json).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Run `command` with its stdout on `fifo` and record how it ended beside it. Returns once
/// the backup has the FIFO open (or is gone); a failing command is a result, not an error.
pub fn pipe(fifo: &Path, command: &[String], stop: &AtomicBool) -> Result<(), JobError> {
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
        .map_err(|e| JobError::Io(format!("cannot open the FIFO {}: {e}", fifo.display())))?;
    let _ = std::fs::write(with_suffix(fifo, ".started"), b"");
    let done = fifo
        .parent()
        .map(|d| d.join(DONE_MARKER))
        .unwrap_or_default();
    let stdout = end
        .try_clone()
        .map_err(|e| JobError::Io(format!("cannot share the FIFO: {e}")))?;
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
            return Ok(());
        }
    };
    // Forward stderr to this container's log, keeping the tail for the report.
    let (tail_sent, tail_received) = std::sync::mpsc::channel::<String>();
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = tail_sent.send(stderr_tail(err, Some(&mut std::io::stderr())));
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
    Ok(())
}
