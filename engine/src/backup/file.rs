//! Reading one regular file into content-defined chunks.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::chunker::{Chunker, ChunkerConfig};
use crate::format::pack::BlobKind;
use crate::format::tree::Extent;
use crate::fsmeta::{EntryStat, data_extents};
use crate::id::Id;
use crate::progress::Progress;

use crate::sink::BlobSink;

/// The content of one file as stored.
#[derive(Debug, Clone, Default)]
pub struct FileContent {
    pub content: Vec<Id>,
    pub extents: Option<Vec<Extent>>,
    pub bytes_read: u64,
    /// The file's stat after reading, when it differs from the stat before.
    pub changed: bool,
    /// Size as read (the stat size may be stale when the file changed).
    pub size: u64,
}

/// Why a file could not be stored.
#[derive(Debug, Clone)]
pub enum FileFailure {
    /// The file could not be read; the run continues without it.
    Unreadable(String),
    /// The backup as a whole is failing (storage error); stop.
    Aborted,
}

/// Reads the data extents of a file in order, as one stream.
struct ExtentReader<'f> {
    file: &'f File,
    extents: Vec<Extent>,
    current: usize,
    remaining: u64,
}

impl<'f> ExtentReader<'f> {
    fn new(file: &'f File, extents: Vec<Extent>) -> io::Result<Self> {
        let mut r = ExtentReader {
            file,
            extents,
            current: 0,
            remaining: 0,
        };
        r.start_extent()?;
        Ok(r)
    }

    fn start_extent(&mut self) -> io::Result<()> {
        if let Some(e) = self.extents.get(self.current) {
            let mut f = self.file;
            f.seek(SeekFrom::Start(e.offset))?;
            self.remaining = e.len;
        }
        Ok(())
    }
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current >= self.extents.len() {
                return Ok(0);
            }
            if self.remaining == 0 {
                self.current += 1;
                self.start_extent()?;
                continue;
            }
            let want = buf
                .len()
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            let mut f = self.file;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                // The file shrank under us: stop; the caller notices the size change.
                self.extents.truncate(self.current + 1);
                self.remaining = 0;
                return Ok(0);
            }
            self.remaining -= n as u64;
            return Ok(n);
        }
    }
}

fn open_for_backup(path: &Path) -> io::Result<File> {
    // O_NOATIME keeps backups from touching access times, but only the owner (or root) may
    // use it; fall back to a plain open.
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NOATIME).bits() as i32;
    match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path),
        Err(e) => Err(e),
    }
}

/// Chunk and store everything `reader` yields; returns the data blob ids and byte count.
pub(crate) fn chunk_stream<R: Read>(
    reader: R,
    chunker: &ChunkerConfig,
    sink: &BlobSink,
    progress: &Progress,
    buf: &mut Vec<u8>,
) -> Result<(Vec<Id>, u64), FileFailure> {
    let mut chunks = Chunker::with_buffer(chunker, reader, std::mem::take(buf));
    let mut content = Vec::new();
    let mut bytes_read = 0u64;
    let result = loop {
        if sink.should_stop() {
            break Err(FileFailure::Aborted);
        }
        match chunks.next_chunk() {
            Ok(Some(chunk)) => {
                sink.count_read(chunk.len() as u64);
                let id = sink.key().blob_id(chunk);
                // The sink only refuses blobs once the whole backup is failing.
                if sink.add(BlobKind::Data, id, chunk).is_err() {
                    break Err(FileFailure::Aborted);
                }
                content.push(id);
                bytes_read += chunk.len() as u64;
                progress.add_done(0, chunk.len() as u64);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(FileFailure::Unreadable(e.to_string())),
        }
    };
    *buf = chunks.into_buffer();
    result.map(|()| (content, bytes_read))
}

/// Chunk and store a file's content. `buf` is the worker's reusable chunk window.
pub(crate) fn read_file(
    path: &Path,
    stat: &EntryStat,
    chunker: &ChunkerConfig,
    sink: &BlobSink,
    progress: &Progress,
    buf: &mut Vec<u8>,
) -> Result<FileContent, FileFailure> {
    let unreadable = |e: io::Error| FileFailure::Unreadable(e.to_string());
    let file = open_for_backup(path).map_err(unreadable)?;
    let before = EntryStat::from_metadata(&file.metadata().map_err(unreadable)?);
    let extents = data_extents(&file, &before).map_err(unreadable)?;
    let ranges = extents.clone().unwrap_or_else(|| {
        if before.size > 0 {
            vec![Extent {
                offset: 0,
                len: before.size,
            }]
        } else {
            Vec::new()
        }
    });
    let reader = ExtentReader::new(&file, ranges).map_err(unreadable)?;
    let (content, bytes_read) = chunk_stream(reader, chunker, sink, progress, buf)?;
    let after = EntryStat::from_metadata(&file.metadata().map_err(unreadable)?);
    let expected: u64 = match &extents {
        Some(e) => e.iter().map(|x| x.len).sum(),
        None => before.size,
    };
    let changed =
        before.content_changed(&after) || before.content_changed(stat) || bytes_read != expected;
    let extents = extents.map(|mut e| {
        // Keep the extent list consistent with what was actually read.
        let mut left = bytes_read;
        for x in e.iter_mut() {
            x.len = x.len.min(left);
            left -= x.len;
        }
        e.retain(|x| x.len > 0);
        e
    });
    // A sparse file keeps its logical size (trailing holes included); a dense one is what was read.
    let size = if extents.is_some() {
        before.size
    } else {
        bytes_read
    };
    Ok(FileContent {
        content,
        extents,
        bytes_read,
        changed,
        size,
    })
}
