//! Stream sources: stdin, a command's stdout (e.g. `pg_dumpall`), or a FIFO, stored as one
//! file named after the source.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::chunker::ChunkerConfig;
use crate::format::run::{ItemError, RunStats};
use crate::format::tree::{Node, NodeKind, Timespec};
use crate::progress::Progress;
use crate::{Error, Result};

use super::file::{FileFailure, chunk_stream};
use crate::sink::BlobSink;

/// How many trailing bytes of a failing command's stderr the report keeps.
pub const STDERR_TAIL: usize = 2048;

/// Read a command's stderr to its end, copying it to `forward` if given, and keep its last
/// 2 KiB for the report: a chatty command must not grow memory.
pub fn stderr_tail(mut err: impl Read, mut forward: Option<&mut dyn Write>) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = err.read(&mut chunk) {
        if n == 0 {
            break;
        }
        if let Some(out) = forward.as_mut() {
            let _ = out.write_all(&chunk[..n]);
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    let start = tail.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&tail[start..]).trim().to_owned()
}

/// The outcome of reading one stream.
pub(super) struct StreamOutcome {
    pub node: Option<Node>,
    pub stats: RunStats,
    pub errors: Vec<ItemError>,
}

fn stream_node(name: &str, content: Vec<crate::id::Id>, size: u64) -> Node {
    let now = chrono::Utc::now();
    Node {
        name: name.as_bytes().to_vec(),
        kind: NodeKind::File,
        mode: 0o600,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        mtime: Timespec {
            sec: now.timestamp(),
            nsec: now.timestamp_subsec_nanos(),
        },
        ctime: Timespec::default(),
        inode: 0,
        device: 0,
        size,
        xattrs: Vec::new(),
        content,
        extents: None,
        subtree: None,
        target: Vec::new(),
        rdev: 0,
        link_group: None,
        flags: 0,
    }
}

/// Read a whole stream into one file node.
pub(super) fn read_stream<R: Read>(
    name: &str,
    reader: R,
    chunker: &ChunkerConfig,
    sink: &BlobSink,
    progress: &Progress,
) -> Result<StreamOutcome> {
    let mut buf = Vec::new();
    let mut stats = RunStats {
        files: 1,
        ..RunStats::default()
    };
    match chunk_stream(reader, chunker, sink, progress, &mut buf) {
        Ok((content, n)) => {
            stats.bytes_read = n;
            stats.bytes_total = n;
            progress.add_done(1, 0);
            Ok(StreamOutcome {
                node: Some(stream_node(name, content, n)),
                stats,
                errors: Vec::new(),
            })
        }
        Err(FileFailure::Aborted) => Err(Error::Interrupted),
        Err(FileFailure::Unreadable(msg)) => {
            stats.errors = 1;
            Ok(StreamOutcome {
                node: None,
                stats,
                errors: vec![ItemError {
                    path: "/".into(),
                    error: format!("stream not read: {msg}"),
                }],
            })
        }
    }
}

/// Run `sh -c command` and store its stdout. A command that fails (cannot start, or exits
/// non-zero) fails the source, with its exit status and the tail of its stderr.
pub(super) fn read_command(
    name: &str,
    command: &str,
    chunker: &ChunkerConfig,
    sink: &BlobSink,
    progress: &Progress,
) -> Result<StreamOutcome> {
    let failed = |msg: String| StreamOutcome {
        node: None,
        stats: RunStats {
            errors: 1,
            ..RunStats::default()
        },
        errors: vec![ItemError {
            path: "/".into(),
            error: msg,
        }],
    };
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Ok(failed(format!("command could not start: {e}"))),
    };
    let stderr_tail = child
        .stderr
        .take()
        .map(|err| std::thread::spawn(move || stderr_tail(err, None)));
    let outcome = match child.stdout.take() {
        Some(out) => read_stream(name, out, chunker, sink, progress),
        None => Ok(failed("command stdout unavailable".into())),
    };
    if outcome.is_err() {
        // The backup is failing anyway; do not leave the command running.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| Error::io("sh", e))?;
    let tail = stderr_tail.and_then(|h| h.join().ok()).unwrap_or_default();
    let outcome = outcome?;
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_owned(),
        };
        let detail = if tail.is_empty() {
            String::new()
        } else {
            format!("; stderr: {tail}")
        };
        return Ok(failed(format!("command {command:?} {how}{detail}")));
    }
    Ok(outcome)
}

/// A command run in another container (a database dump in its own image) whose stdout
/// reaches this process through a FIFO on a shared volume. The other side is `holdfast job
/// pipe`: it opens the FIFO, writes `<fifo>.started`, runs the command with its stdout on the
/// FIFO, and when the command ends writes `<fifo>.status` before closing its end, so the
/// status is there when the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeSpec {
    /// The FIFO both containers share.
    pub fifo: std::path::PathBuf,
    /// How long the other container may take to start the command.
    pub start_timeout: std::time::Duration,
}

impl PipeSpec {
    pub(crate) fn started_marker(&self) -> std::path::PathBuf {
        with_suffix(&self.fifo, ".started")
    }

    pub(crate) fn status_file(&self) -> std::path::PathBuf {
        with_suffix(&self.fifo, ".status")
    }

    /// Left by the reader once it holds the FIFO open: until then the writer keeps its own
    /// end open, so a short output that fits in the pipe is not lost with the pipe.
    pub(crate) fn reading_marker(&self) -> std::path::PathBuf {
        with_suffix(&self.fifo, ".reading")
    }
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    std::path::PathBuf::from(s)
}

/// How the command behind a pipe ended, as `holdfast job pipe` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The command's exit code, when it exited.
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The signal that ended the command, when one did.
    pub signal: Option<i32>,
    /// The command could not be run at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    /// The end of the command's standard error, for the failure's message.
    pub stderr_tail: String,
}

impl PipeStatus {
    /// `None` when the command succeeded, else what went wrong, for the run's error list.
    pub(crate) fn failure(&self, what: &str) -> Option<String> {
        let detail = if self.stderr_tail.is_empty() {
            String::new()
        } else {
            format!("; stderr: {}", self.stderr_tail)
        };
        if let Some(e) = &self.error {
            return Some(format!("{what} could not run: {e}{detail}"));
        }
        match (self.exit_code, self.signal) {
            (Some(0), _) => None,
            (Some(c), _) => Some(format!("{what} exited with status {c}{detail}")),
            (None, Some(s)) => Some(format!("{what} was killed by signal {s}{detail}")),
            (None, None) => Some(format!("{what} ended without an exit status{detail}")),
        }
    }
}

/// A FIFO whose reads give up once the backup is stopping. A dump that writes nothing (a
/// database holding a lock, a command waiting on input) would otherwise keep a blocking
/// read, and with it the whole job, past a SIGTERM: a pod being deleted or drained would
/// wait out its grace period, and an abort would not abort.
struct StoppableFifo<'a> {
    file: std::fs::File,
    sink: &'a BlobSink,
}

impl Read for StoppableFifo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let tick = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        loop {
            if self.sink.should_stop() {
                return Err(std::io::Error::other("the backup is stopping"));
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.file,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&tick)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                // Data, or no writer left (the read then says end of stream).
                Ok(_) => return self.file.read(buf),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Wait for `path` to exist, up to `timeout`, giving up early if the backup is stopping.
fn wait_for_file(path: &std::path::Path, timeout: std::time::Duration, sink: &BlobSink) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if path.exists() {
            return true;
        }
        if std::time::Instant::now() >= deadline || sink.should_stop() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Read a pipe source. A command that did not start, or ended badly, fails the source with
/// its exit status and the tail of its stderr; the run goes on with the other sources.
pub(super) fn read_pipe(
    name: &str,
    pipe: &PipeSpec,
    chunker: &ChunkerConfig,
    sink: &BlobSink,
    progress: &Progress,
) -> Result<StreamOutcome> {
    let failed = |msg: String| StreamOutcome {
        node: None,
        stats: RunStats {
            errors: 1,
            ..RunStats::default()
        },
        errors: vec![ItemError {
            path: "/".into(),
            error: msg,
        }],
    };
    if !wait_for_file(&pipe.started_marker(), pipe.start_timeout, sink) {
        if sink.should_stop() {
            return Err(Error::Interrupted);
        }
        return Ok(failed(format!(
            "the command container did not start its command within {} s",
            pipe.start_timeout.as_secs()
        )));
    }
    // Opened without waiting for a writer (the writer may have given up), then switched to
    // blocking reads: with no writer left, the stream simply ends.
    let fifo = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&pipe.fifo)
            .map_err(|e| Error::io(&pipe.fifo, e))?
    };
    rustix::fs::fcntl_setfl(&fifo, rustix::fs::OFlags::empty())
        .map_err(|e| Error::io(&pipe.fifo, e.into()))?;
    std::fs::write(pipe.reading_marker(), b"").map_err(|e| Error::io(pipe.reading_marker(), e))?;
    let outcome = read_stream(
        name,
        StoppableFifo { file: fifo, sink },
        chunker,
        sink,
        progress,
    );
    if sink.should_stop() {
        return Err(Error::Interrupted);
    }
    let outcome = outcome?;
    let status_path = pipe.status_file();
    // Written before the writer closed its end; a moment's grace for slow filesystems.
    wait_for_file(&status_path, std::time::Duration::from_secs(30), sink);
    let status: PipeStatus = match std::fs::read(&status_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| PipeStatus {
            error: Some(format!("unreadable status file: {e}")),
            ..PipeStatus::default()
        }),
        Err(e) => PipeStatus {
            error: Some(format!(
                "no status file ({e}): the command container ended abnormally"
            )),
            ..PipeStatus::default()
        },
    };
    match status.failure("the command") {
        Some(msg) => Ok(failed(msg)),
        None => Ok(outcome),
    }
}
