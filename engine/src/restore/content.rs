//! Writing a file's data: chunks in order, placed at the file's data extents. A large file's
//! chunks are decoded by one thread per core while a single thread writes them.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use crossbeam_channel::{Sender, bounded};

use crate::format::tree::{Extent, Node};
use crate::id::Id;

use super::Ctx;

/// Files of at least this many chunks are decoded in parallel: one worker restoring a 1 GiB
/// file alone would otherwise leave the other cores idle at the end of a restore.
const PARALLEL_MIN_CHUNKS: usize = 8;

/// Write the node's data into `file` at its extents and return the bytes written.
pub(super) fn write_content(ctx: &Ctx<'_>, node: &Node, file: &File) -> io::Result<u64> {
    let map = StreamMap::new(node.data_extents());
    let written = match plan_segments(ctx, &node.content) {
        None => write_sequentially(ctx, &node.content, &map, file)?,
        Some(segments) => write_in_parallel(ctx, &node.content, &segments, &map, file)?,
    };
    if written != map.total {
        return Err(io::Error::other(format!(
            "backup holds {written} bytes of data, the file had {}",
            map.total
        )));
    }
    Ok(written)
}

/// Where each byte of a file's data stream goes. The stream is the file's data extents
/// concatenated, holes left out; chunks cut that stream, not the file.
struct StreamMap {
    extents: Vec<Extent>,
    /// Stream position where each extent starts.
    starts: Vec<u64>,
    total: u64,
}

impl StreamMap {
    fn new(extents: Vec<Extent>) -> Self {
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
    fn write_at(&self, file: &File, pos: u64, data: &[u8]) -> io::Result<()> {
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

fn load(ctx: &Ctx<'_>, id: &Id) -> io::Result<Vec<u8>> {
    ctx.repo
        .load_blob(id)
        .map_err(|e| io::Error::other(format!("backup data unreadable: {e}")))
}

fn write_sequentially(
    ctx: &Ctx<'_>,
    content: &[Id],
    map: &StreamMap,
    file: &File,
) -> io::Result<u64> {
    let mut pos = 0u64;
    for id in content {
        let data = load(ctx, id)?;
        map.write_at(file, pos, &data)?;
        pos += data.len() as u64;
        ctx.progress.add_done(0, data.len() as u64);
    }
    Ok(pos)
}

/// A contiguous run of a file's chunks and where its data sits in the file's data stream.
struct Segment {
    chunks: Range<usize>,
    stream_start: u64,
    len: u64,
}

/// Split a file's chunks into one segment per core, placed by the index's plaintext lengths
/// so nothing is read to plan. `None` means: write sequentially (small file, one core, or a
/// chunk missing from the index, which the sequential path then reports).
fn plan_segments(ctx: &Ctx<'_>, content: &[Id]) -> Option<Vec<Segment>> {
    if content.len() < PARALLEL_MIN_CHUNKS || ctx.cores < 2 || ctx.threads < 2 {
        return None;
    }
    let index = ctx.repo.index();
    let lens = content
        .iter()
        .map(|id| index.lookup(id).map(|l| u64::from(l.raw_len)))
        .collect::<Option<Vec<u64>>>()?;
    let per = content.len().div_ceil(ctx.cores);
    let mut segments = Vec::with_capacity(ctx.cores);
    let mut stream_start = 0u64;
    for start in (0..content.len()).step_by(per) {
        let end = (start + per).min(content.len());
        let len = lens[start..end].iter().sum::<u64>();
        segments.push(Segment {
            chunks: start..end,
            stream_start,
            len,
        });
        stream_start += len;
    }
    Some(segments)
}

/// Decode the segments in parallel and write on this thread: writes to one file take its
/// inode lock, so concurrent writers would only spin on each other.
fn write_in_parallel(
    ctx: &Ctx<'_>,
    content: &[Id],
    segments: &[Segment],
    map: &StreamMap,
    file: &File,
) -> io::Result<u64> {
    let (tx, rx) = bounded::<(u64, Vec<u8>)>(segments.len() * 2);
    std::thread::scope(|scope| {
        let decoders: Vec<_> = segments
            .iter()
            .map(|segment| {
                let tx = tx.clone();
                let chunks = &content[segment.chunks.clone()];
                scope.spawn(move || decode_segment(ctx, chunks, segment, &tx))
            })
            .collect();
        drop(tx);
        let mut written = 0u64;
        let mut write_result = Ok(());
        for (pos, data) in &rx {
            if let Err(e) = map.write_at(file, pos, &data) {
                write_result = Err(e);
                break;
            }
            written += data.len() as u64;
            ctx.progress.add_done(0, data.len() as u64);
        }
        // After a failed write, decoders find the channel closed and stop.
        drop(rx);
        let mut decode_result = Ok(());
        for decoder in decoders {
            let outcome = decoder
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a restore thread panicked")));
            if decode_result.is_ok() {
                decode_result = outcome;
            }
        }
        write_result?;
        decode_result?;
        Ok(written)
    })
}

fn decode_segment(
    ctx: &Ctx<'_>,
    chunks: &[Id],
    segment: &Segment,
    tx: &Sender<(u64, Vec<u8>)>,
) -> io::Result<()> {
    let mut pos = segment.stream_start;
    for id in chunks {
        let data = load(ctx, id)?;
        let n = data.len() as u64;
        if tx.send((pos, data)).is_err() {
            // The writer failed and reports why.
            return Ok(());
        }
        pos += n;
    }
    // A segment longer or shorter than planned overlaps or leaves a gap next to its
    // neighbour, which the file's total alone cannot reveal.
    let decoded = pos - segment.stream_start;
    if decoded != segment.len {
        return Err(io::Error::other(format!(
            "backup holds {decoded} bytes for a part of the file the index gives as {}",
            segment.len
        )));
    }
    Ok(())
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
