//! Spool files: volumes are built on local disk, not in memory, then handed to storage.
//!
//! For a filesystem repository the spool directory is inside the repository, so storing a
//! finished volume is a rename; for object storage it is a local temporary directory.
//! Either way memory use does not grow with volume size or upload concurrency.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::TEMP_PREFIX;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A path removed when dropped, unless [`TempPath::keep`] was called.
#[derive(Debug)]
pub struct TempPath(Option<PathBuf>);

impl TempPath {
    pub fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// The file was moved or consumed elsewhere; do not remove it.
    pub fn keep(mut self) {
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

/// A spool file being written; removed if dropped before [`SpoolFile::finish`].
#[derive(Debug)]
pub struct SpoolFile {
    writer: BufWriter<File>,
    path: TempPath,
}

impl SpoolFile {
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!(
            "{TEMP_PREFIX}spool-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(SpoolFile {
            writer: BufWriter::with_capacity(256 * 1024, file),
            path: TempPath(Some(path)),
        })
    }

    /// Flush and close; the returned path still removes the file when dropped.
    pub fn finish(self) -> io::Result<TempPath> {
        let SpoolFile { writer, path } = self;
        writer.into_inner().map_err(|e| e.into_error())?;
        Ok(path)
    }
}

impl Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.write_all(buf)
    }
}
