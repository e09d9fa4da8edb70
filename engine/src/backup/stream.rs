//! Stream sources: stdin, a command's stdout (e.g. `pg_dumpall`), or a FIFO, stored as one
//! file named after the source.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::chunker::ChunkerConfig;
use crate::format::run::{ItemError, RunStats};
use crate::format::tree::{Node, NodeKind, Timespec};
use crate::progress::Progress;
use crate::{Error, Result};

use super::file::{FileFailure, chunk_stream};
use super::sink::BlobSink;

/// How many trailing bytes of a failing command's stderr the report keeps.
pub const STDERR_TAIL: usize = 2048;

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
    let stderr_tail = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            // Keep only the tail; a chatty command must not grow memory.
            let mut tail: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let start = tail.len().saturating_sub(STDERR_TAIL);
            String::from_utf8_lossy(&tail[start..]).trim().to_owned()
        })
    });
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
