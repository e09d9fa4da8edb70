//! zstd compression of blobs; chunks that do not shrink are stored raw.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How hard to compress. `fast` is zstd level 1, `default` level 3, `best` level 19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum CompressionLevel {
    /// Store blobs uncompressed.
    Off,
    /// Zstandard at this level, 1 (fastest) to 19 (smallest).
    Level(i32),
}

impl CompressionLevel {
    /// Zstandard level 1: fastest, still worthwhile on text.
    pub const FAST: Self = CompressionLevel::Level(1);
    /// Zstandard level 3: the default balance.
    pub const DEFAULT: Self = CompressionLevel::Level(3);
    /// Zstandard level 19: smallest, slowest.
    pub const BEST: Self = CompressionLevel::Level(19);
}

impl Default for CompressionLevel {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A compression level that is neither a known name nor in 1..=19.
#[derive(Debug, thiserror::Error)]
#[error("invalid compression level {0:?}: use off, fast, default, best or a number from 1 to 19")]
pub struct ParseLevelError(String);

impl FromStr for CompressionLevel {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" | "none" => Ok(Self::Off),
            "fast" => Ok(Self::FAST),
            "default" => Ok(Self::DEFAULT),
            "best" => Ok(Self::BEST),
            n => match n.parse::<i32>() {
                Ok(level @ 1..=19) => Ok(Self::Level(level)),
                _ => Err(ParseLevelError(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for CompressionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Level(n) => write!(f, "{n}"),
        }
    }
}

impl From<CompressionLevel> for String {
    fn from(l: CompressionLevel) -> String {
        l.to_string()
    }
}

impl TryFrom<String> for CompressionLevel {
    type Error = ParseLevelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// How a blob's payload is encoded, recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    /// Stored as is (compression off, or it saved nothing).
    Raw = 0,
    /// Zstandard-compressed.
    Zstd = 1,
}

impl Encoding {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// A reusable compressor; one per worker thread, since a zstd context is not shareable.
pub struct Compressor {
    level: CompressionLevel,
    ctx: Option<zstd::bulk::Compressor<'static>>,
    /// Reused output buffer, so compressing a chunk allocates nothing.
    scratch: Vec<u8>,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Compressor({})", self.level)
    }
}

impl Compressor {
    pub(crate) fn new(level: CompressionLevel) -> std::io::Result<Self> {
        let ctx = match level {
            CompressionLevel::Off => None,
            CompressionLevel::Level(n) => Some(zstd::bulk::Compressor::new(n)?),
        };
        Ok(Compressor {
            level,
            ctx,
            scratch: Vec::new(),
        })
    }

    /// Append `data`, compressed, to `out`, or raw when compression does not save anything.
    pub(crate) fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Encoding {
        if let Some(ctx) = self.ctx.as_mut() {
            self.scratch.clear();
            self.scratch.reserve(data.len());
            // Bound the output to the input size: a larger result is useless, stored raw.
            if let Ok(n) = ctx.compress_to_buffer(data, &mut self.scratch)
                && n < data.len()
            {
                out.extend_from_slice(&self.scratch[..n]);
                return Encoding::Zstd;
            }
        }
        out.extend_from_slice(data);
        Encoding::Raw
    }

    // The reference the tests compare `compress_into` with; the engine compresses in place.
    #[cfg(test)]
    /// Compress `data`, or return it raw when compression does not save anything.
    pub(crate) fn compress(&mut self, data: &[u8]) -> (Encoding, Vec<u8>) {
        if let Some(ctx) = self.ctx.as_mut() {
            // Bound the output to the input size: a larger result is useless, stored raw instead.
            let mut out = Vec::with_capacity(data.len());
            if let Ok(n) = ctx.compress_to_buffer(data, &mut out)
                && n < data.len()
            {
                return (Encoding::Zstd, out);
            }
        }
        (Encoding::Raw, data.to_vec())
    }
}

thread_local! {
    /// One decompression context per thread: creating one per blob costs more than
    /// decompressing a typical chunk.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decode a blob payload of known raw length.
pub(crate) fn decompress(
    encoding: Encoding,
    data: Vec<u8>,
    raw_len: usize,
) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Raw => Ok(data),
        Encoding::Zstd => {
            let out = DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new()?);
                }
                match slot.as_mut() {
                    Some(d) => d.decompress(&data, raw_len),
                    None => Err(std::io::Error::other("no zstd decompressor")),
                }
            })?;
            if out.len() != raw_len {
                return Err(std::io::Error::other(format!(
                    "decompressed {} bytes, header says {raw_len}",
                    out.len()
                )));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_shrinks_and_round_trips() {
        let mut c = Compressor::new(CompressionLevel::FAST).unwrap();
        let data = vec![7u8; 100_000];
        let (enc, out) = c.compress(&data);
        assert_eq!(enc, Encoding::Zstd);
        assert!(out.len() < 1000);
        assert_eq!(decompress(enc, out, data.len()).unwrap(), data);
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut c = Compressor::new(CompressionLevel::BEST).unwrap();
        let data: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let random = crate::crypto::MasterKey::generate()
            .unwrap()
            .seal(b"", &data)
            .unwrap();
        let (enc, out) = c.compress(&random);
        assert_eq!(enc, Encoding::Raw);
        assert_eq!(out, random);
    }

    #[test]
    fn level_parsing() {
        assert_eq!(
            "fast".parse::<CompressionLevel>().unwrap(),
            CompressionLevel::Level(1)
        );
        assert_eq!(
            "best".parse::<CompressionLevel>().unwrap(),
            CompressionLevel::Level(19)
        );
        assert_eq!(
            "7".parse::<CompressionLevel>().unwrap(),
            CompressionLevel::Level(7)
        );
        assert_eq!(
            "off".parse::<CompressionLevel>().unwrap(),
            CompressionLevel::Off
        );
        assert!("20".parse::<CompressionLevel>().is_err());
        assert!("0".parse::<CompressionLevel>().is_err());
        assert!("quick".parse::<CompressionLevel>().is_err());
    }
}
