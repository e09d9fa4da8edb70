//! Where a file's data goes: chunks cut the file's data stream (its data extents
//! concatenated, holes left out), and each chunk is written at its place in the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::format::tree::Extent;

/// Where each byte of a file's data stream goes. The stream is the file's data extents
/// concatenated, holes left out; chunks cut that stream, not the file.
pub(super) struct StreamMap {
    extents: Vec<Extent>,
    /// Stream position where each extent starts.
    starts: Vec<u64>,
    pub total: u64,
}

impl StreamMap {
    pub(crate) fn new(extents: Vec<Extent>) -> Self {
        let mut starts = Vec::with_capacity(extents.len());
        let mut total = 0u64;
        for e in &extents {
            starts.push(total);
            total += e.len;
        }
        StreamMap {
            extents,
            starts,
            total,
        }
    }

    /// Write `data`, which begins `pos` bytes into the stream.
    pub(crate) fn write_at(&self, file: &File, pos: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if pos + data.len() as u64 > self.total {
            return Err(io::Error::other(
                "backup holds more data than the file's size (damaged listing)",
            ));
        }
        // pos < total, so some extent starts at or before it.
        let mut i = self.starts.partition_point(|&s| s <= pos) - 1;
        let (mut pos, mut rest) = (pos, data);
        while !rest.is_empty() {
            let (e, start) = (self.extents[i], self.starts[i]);
            let within = pos - start;
            let n = (rest.len() as u64).min(e.len - within) as usize;
            file.write_all_at(&rest[..n], e.offset + within)?;
            rest = &rest[n..];
            pos += n as u64;
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(extents: &[(u64, u64)]) -> StreamMap {
        StreamMap::new(
            extents
                .iter()
                .map(|&(offset, len)| Extent { offset, len })
                .collect(),
        )
    }

    fn read_all(file: &File, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn stream_positions_map_across_extents_and_holes() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(20).unwrap();
        // Data at 2..5 and 10..14, an empty extent between; the stream is 7 bytes long.
        let m = map(&[(2, 3), (8, 0), (10, 4)]);
        m.write_at(&file, 5, b"fg").unwrap();
        m.write_at(&file, 0, b"abcde").unwrap();
        let mut want = vec![0u8; 20];
        want[2..5].copy_from_slice(b"abc");
        want[10..14].copy_from_slice(b"defg");
        assert_eq!(read_all(&file, 20), want);
    }

    #[test]
    fn data_beyond_the_stream_is_refused() {
        let file = tempfile::tempfile().unwrap();
        let m = map(&[(0, 4)]);
        let err = m.write_at(&file, 2, b"xyz").unwrap_err();
        assert!(
            err.to_string().contains("more data than the file's size"),
            "{err}"
        );
    }
}
