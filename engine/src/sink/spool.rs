//! Spool files: volumes are built on local disk, not in memory, then handed to storage.
//!
//! For a filesystem repository the spool directory is inside the repository, so storing a
//! finished volume is a rename; for object storage it is a local temporary directory.
//! Either way memory use does not grow with volume size or upload concurrency.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use rustix::fs::OFlags;

use crate::storage::TEMP_PREFIX;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A path removed when dropped, unless [`TempPath::keep`] was called.
#[derive(Debug, Default)]
pub struct TempPath(Option<PathBuf>);

impl TempPath {
    pub(crate) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// The file was moved or consumed elsewhere; do not remove it.
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes go out in pieces of this size (a multiple of any filesystem's block size).
const PIECE: usize = 1024 * 1024;
/// Alignment of buffers, offsets and lengths for direct I/O.
const ALIGN: usize = 4096;

/// Pieces one spool file may have: one being filled, the others queued for its writer.
const PIECES: usize = 3;

/// A spool file being written; removed if dropped before [`SpoolFile::finish`].
///
/// When the spool file is the stored volume itself (a filesystem repository), it is written
/// with `O_DIRECT`: a backup then neither evicts the page cache the applications being backed
/// up rely on nor pays for allocating and writing back a gigabyte of cache pages it never
/// reads again (on the benchmark machine that was 0.3–1.5 s of a 4 s backup, and most of its
/// variance). Where the filesystem refuses direct I/O, writes fall back to the page cache.
/// A thread per file does the writing, so an encoder filling the volume never waits for the
/// disk (a direct write returns only once the device has the data).
#[derive(Debug)]
pub struct SpoolFile {
    current: Piece,
    /// Pieces made so far (at most `PIECES`).
    pieces: usize,
    to_writer: Option<Sender<(Piece, bool)>>,
    free: Receiver<Piece>,
    writer: Option<JoinHandle<io::Result<()>>>,
    /// Whether the file was opened for direct I/O (only the tests ask).
    #[cfg_attr(not(test), allow(dead_code))] // reason: read by the tests alone
    direct: bool,
    path: TempPath,
}

/// `PIECE` bytes starting at `start`, aligned for direct I/O (the slack before is for the
/// alignment); `len` of them hold data. The default, with no buffer, stands in for a piece
/// handed over.
#[derive(Debug, Default)]
struct Piece {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Piece {
    fn new() -> Self {
        let buf = vec![0u8; PIECE + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Piece { buf, start, len: 0 }
    }
}

/// How a filesystem says no to direct I/O (at open, or for a write it cannot align): EINVAL.
fn refuses_direct_io(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// The writing end: one file, written piece by piece in order.
struct Writer {
    file: File,
    direct: bool,
    /// Bytes of data written so far.
    written: u64,
}

impl Writer {
    fn write(&mut self, piece: &mut Piece, last: bool) -> io::Result<()> {
        let mut len = piece.len;
        if self.direct && last && !len.is_multiple_of(ALIGN) {
            // Direct writes are whole blocks: pad the last one, then cut the file back.
            len = len.div_ceil(ALIGN) * ALIGN;
            piece.buf[piece.start + piece.len..piece.start + len].fill(0);
        }
        let data = &piece.buf[piece.start..piece.start + len];
        let mut done = 0;
        while done < data.len() {
            match (&self.file).write(&data[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The filesystem refused this direct write (alignment, or no support after
                // all): go on through the page cache; nothing was written by the refused call.
                Err(e) if self.direct && refuses_direct_io(&e) => {
                    let flags = rustix::fs::fcntl_getfl(&self.file)?;
                    rustix::fs::fcntl_setfl(&self.file, flags - OFlags::DIRECT)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.written += piece.len as u64;
        if len != piece.len {
            self.file.set_len(self.written)?;
        }
        Ok(())
    }
}

impl SpoolFile {
    /// A spool file in `dir`; `direct` asks for writes that bypass the page cache.
    pub(crate) fn create(dir: &Path, direct: bool) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!(
            "{TEMP_PREFIX}spool-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let open = |flags: OFlags| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(flags.bits() as i32)
                .open(&path)
        };
        let (file, direct) = match direct.then(|| open(OFlags::DIRECT)) {
            Some(Ok(f)) => (f, true),
            Some(Err(e)) if refuses_direct_io(&e) => (open(OFlags::empty())?, false),
            Some(Err(e)) => return Err(e),
            None => (open(OFlags::empty())?, false),
        };
        let path = TempPath(Some(path));
        let (to_writer, pieces) = bounded::<(Piece, bool)>(PIECES);
        let (give_back, free) = bounded::<Piece>(PIECES);
        let mut w = Writer {
            file,
            direct,
            written: 0,
        };
        let writer = std::thread::Builder::new()
            .name("holdfast-spool".into())
            .spawn(move || {
                let mut result = Ok(());
                for (mut piece, last) in pieces {
                    if result.is_ok() {
                        result = w.write(&mut piece, last);
                    }
                    piece.len = 0;
                    let _ = give_back.send(piece);
                }
                result
            })?;
        Ok(SpoolFile {
            current: Piece::new(),
            pieces: 1,
            to_writer: Some(to_writer),
            free,
            writer: Some(writer),
            direct,
            path,
        })
    }

    /// Whether writes were asked to bypass the page cache and the filesystem took it.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Hand `piece` to the writer; a failed writer's error comes back here.
    fn send(&mut self, piece: Piece, last: bool) -> io::Result<()> {
        let sent = match &self.to_writer {
            Some(tx) => tx.send((piece, last)).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self
                .stop_writer()
                .err()
                .unwrap_or_else(|| io::Error::other("the spool file's writer stopped early")))
        }
    }

    /// Close the writer's queue and wait for it: its result is the file's.
    fn stop_writer(&mut self) -> io::Result<()> {
        self.to_writer.take();
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the spool file's writer panicked")),
            None => Ok(()),
        }
    }

    /// Write out what is buffered and close; the returned path still removes the file when
    /// dropped.
    pub(crate) fn finish(mut self) -> io::Result<TempPath> {
        let last = std::mem::take(&mut self.current);
        self.send(last, true)?;
        self.stop_writer()?;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        // Let the writer finish before the file is removed.
        let _ = self.stop_writer();
    }
}

impl Write for SpoolFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let cur = &mut self.current;
        let n = data.len().min(PIECE - cur.len);
        let at = cur.start + cur.len;
        cur.buf[at..at + n].copy_from_slice(&data[..n]);
        cur.len += n;
        if cur.len == PIECE {
            let next = if self.pieces < PIECES {
                self.pieces += 1;
                self.free.try_recv().unwrap_or_else(|_| Piece::new())
            } else {
                // Every piece is queued: wait for the writer to give one back.
                match self.free.recv() {
                    Ok(p) => p,
                    Err(_) => Piece::new(),
                }
            };
            let full = std::mem::replace(&mut self.current, next);
            self.send(full, false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Only `finish` writes a partial piece: a direct write must be whole blocks.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(dir: &Path, direct: bool) -> bool {
        let data: Vec<u8> = (0..(3 * PIECE + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut f = SpoolFile::create(dir, direct).unwrap();
        let used_direct = f.is_direct();
        // Odd piece sizes, so writes straddle the buffer's end.
        for piece in data.chunks(77_777) {
            f.write_all(piece).unwrap();
        }
        let path = f.finish().unwrap();
        assert_eq!(std::fs::read(path.path()).unwrap(), data, "direct {direct}");
        used_direct
    }

    #[test]
    fn spooled_bytes_read_back_exactly_with_and_without_direct_io() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!round_trip(dir.path(), false));
        let direct = round_trip(dir.path(), true);
        // ext4 (where the tests usually run) has direct I/O; others may fall back.
        const EXT4_MAGIC: i64 = 0xEF53;
        if rustix::fs::statfs(dir.path()).unwrap().f_type as i64 == EXT4_MAGIC {
            assert!(direct, "ext4 takes direct writes");
        }
    }

    #[test]
    fn a_small_direct_spool_file_is_cut_back_to_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SpoolFile::create(dir.path(), true).unwrap();
        f.write_all(b"holdfast").unwrap();
        let path = f.finish().unwrap();
        assert_eq!(std::fs::read(path.path()).unwrap(), b"holdfast");
    }

    #[test]
    fn an_unfinished_spool_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SpoolFile::create(dir.path(), true).unwrap();
        f.write_all(&[1; 5000]).unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
