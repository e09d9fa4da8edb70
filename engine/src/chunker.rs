//! Content-defined chunking (FastCDC 2020) over a byte stream.
//!
//! Parameters: minimum 512 KiB, average 1 MiB, maximum 2 MiB, normalization level 1. Large
//! chunks keep the index small (one entry per MiB of unique data) and let FastCDC skip the
//! first 512 KiB of every chunk without hashing, which is most of its speed; the low maximum
//! bounds the memory each reader and encoder holds (a 4 MiB window, 2 MiB buffers); an insertion
//! still only disturbs the one or two chunks around it. The gear table is XORed with a seed
//! from the master key so chunk boundaries differ per repository.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

/// Chunk size bounds, recorded in the repository configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk, in bytes (the last chunk of a file may be smaller).
    pub min: u32,
    /// Average chunk size the cut points aim for, in bytes.
    pub avg: u32,
    /// Largest chunk, in bytes.
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 2 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Whether fastcdc accepts these bounds (it requires even sizes within its limits).
    pub(crate) fn is_valid(&self) -> bool {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0
    }
}

/// The seeded gear tables and masks; cheap to share, built once per backup.
#[derive(Debug, Clone)]
pub struct ChunkerConfig {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Vec<u64>,
    gear_ls: Vec<u64>,
}

impl ChunkerConfig {
    pub(crate) fn new(params: ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg as usize, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        ChunkerConfig {
            params,
            mask_s,
            mask_l,
            gear: gear.into_owned(),
            gear_ls: gear_ls.into_owned(),
        }
    }

    /// Length of the next chunk at the start of `data`; `data` must hold at least `max`
    /// bytes unless it is the end of the stream.
    fn cut(&self, data: &[u8]) -> usize {
        let p = self.params;
        let (_, len) = cut_gear(
            data,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }
}

/// Splits a reader into content-defined chunks, holding at most two maximum chunks in memory.
#[derive(Debug)]
pub struct Chunker<'c, R> {
    config: &'c ChunkerConfig,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<'c, R: Read> Chunker<'c, R> {
    #[cfg(test)]
    pub(crate) fn new(config: &'c ChunkerConfig, reader: R) -> Self {
        Chunker {
            config,
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Reuse `buf` (from [`Chunker::into_buffer`]) so a worker chunking many small files
    /// does not allocate a window per file.
    pub(crate) fn with_buffer(config: &'c ChunkerConfig, reader: R, buf: Vec<u8>) -> Self {
        Chunker {
            config,
            reader,
            buf,
            start: 0,
            end: 0,
            eof: false,
        }
    }

    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Read until a whole maximum-size chunk is buffered or the stream ends.
    fn fill(&mut self) -> io::Result<()> {
        let max = self.config.params.max as usize;
        while !self.eof && self.end - self.start < max {
            if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    // Grow lazily, so small files never touch a full window.
                    let grown = (self.buf.len() * 2).clamp(64 * 1024, 2 * max);
                    self.buf.resize(grown, 0);
                }
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        self.fill()?;
        if self.start == self.end {
            return Ok(None);
        }
        let len = self.config.cut(&self.buf[self.start..self.end]);
        let chunk = &self.buf[self.start..self.start + len];
        self.start += len;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_testkit::pseudo_random;

    fn chunk_all(cfg: &ChunkerConfig, data: &[u8]) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(cfg, data);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch.to_vec());
        }
        out
    }

    #[test]
    fn chunks_concatenate_to_input_and_respect_bounds() {
        let cfg = ChunkerConfig::new(ChunkerParams::default(), 42);
        let data = pseudo_random(20 * 1024 * 1024 + 123, 7);
        let chunks = chunk_all(&cfg, &data);
        assert!(chunks.len() > 5);
        assert_eq!(chunks.concat(), data);
        for ch in &chunks[..chunks.len() - 1] {
            assert!(
                ch.len() >= 512 * 1024 && ch.len() <= 2 * 1024 * 1024,
                "{}",
                ch.len()
            );
        }
    }

    #[test]
    fn insertion_disturbs_only_nearby_chunks() {
        let cfg = ChunkerConfig::new(ChunkerParams::default(), 1);
        let data = pseudo_random(16 * 1024 * 1024, 3);
        let mut edited = data.clone();
        edited.splice(
            8 * 1024 * 1024..8 * 1024 * 1024,
            b"inserted".iter().copied(),
        );
        let a = chunk_all(&cfg, &data);
        let b = chunk_all(&cfg, &edited);
        let shared = a.iter().filter(|c| b.contains(c)).count();
        assert!(
            shared + 2 >= a.len(),
            "only {shared} of {} chunks survived",
            a.len()
        );
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(8 * 1024 * 1024, 9);
        let a = chunk_all(&ChunkerConfig::new(ChunkerParams::default(), 1), &data);
        let b = chunk_all(&ChunkerConfig::new(ChunkerParams::default(), 2), &data);
        assert_ne!(
            a.iter().map(Vec::len).collect::<Vec<_>>(),
            b.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let cfg = ChunkerConfig::new(ChunkerParams::default(), 0);
        assert!(chunk_all(&cfg, b"").is_empty());
        assert_eq!(chunk_all(&cfg, b"abc"), vec![b"abc".to_vec()]);
    }

    #[test]
    fn default_params_are_valid() {
        assert!(ChunkerParams::default().is_valid());
        assert!(
            !ChunkerParams {
                min: 3,
                avg: 1024,
                max: 4096
            }
            .is_valid()
        );
    }
}
