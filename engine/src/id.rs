//! 32-byte identifiers: keyed MACs for blobs; a hash of the ciphertext for volumes and
//! index segments (SHA-256, or BLAKE3 in repositories with BLAKE3 ids).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::IdScheme;

/// A 32-byte object identifier, shown as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Id)
    }

    // The tests tell a keyed blob id from a plain SHA-256 with it.
    #[cfg(test)]
    /// SHA-256 of `data`; used for volume names, whose content is ciphertext.
    pub(crate) fn sha256(data: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, data);
        // SHA-256 always yields 32 bytes.
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Id(out)
    }

    /// The name of stored ciphertext (a volume, an index segment) under `scheme`.
    pub(crate) fn content(scheme: IdScheme, data: &[u8]) -> Self {
        let mut h = ContentHasher::new(scheme);
        h.update(data);
        h.finish()
    }

    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// The first eight hex digits, enough for humans to tell volumes apart.
    pub(crate) fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// Hashes stored ciphertext as it streams by, the way the repository names it.
pub struct ContentHasher(Hasher);

enum Hasher {
    Sha256(Box<ring::digest::Context>),
    Blake3(Box<blake3::Hasher>),
}

impl fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Hasher::Sha256(_) => "ContentHasher(sha256)",
            Hasher::Blake3(_) => "ContentHasher(blake3)",
        })
    }
}

impl ContentHasher {
    pub(crate) fn new(scheme: IdScheme) -> Self {
        ContentHasher(match scheme {
            IdScheme::HmacSha256 => {
                Hasher::Sha256(Box::new(ring::digest::Context::new(&ring::digest::SHA256)))
            }
            IdScheme::Blake3Keyed => Hasher::Blake3(Box::default()),
        })
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Hasher::Sha256(c) => c.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub(crate) fn finish(self) -> Id {
        match self.0 {
            Hasher::Sha256(c) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(c.finish().as_ref());
                Id(out)
            }
            Hasher::Blake3(h) => Id(*h.finalize().as_bytes()),
        }
    }
}

/// Parsing an id from hex failed.
#[derive(Debug, thiserror::Error)]
#[error("not a 64-digit hex identifier: {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| ParseIdError(s.to_owned()))?;
        Id::from_slice(&bytes).ok_or_else(|| ParseIdError(s.to_owned()))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes: serde_bytes::ByteBuf = serde_bytes::ByteBuf::deserialize(d)?;
            Id::from_slice(&bytes)
                .ok_or_else(|| serde::de::Error::custom("identifier must be 32 bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id::sha256(b"holdfast");
        let parsed: Id = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert_eq!(id.short().len(), 8);
    }

    #[test]
    fn rejects_short_hex() {
        assert!("abcd".parse::<Id>().is_err());
    }

    #[test]
    fn serde_binary_and_json() {
        let id = Id::sha256(b"x");
        let bin = postcard::to_allocvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<Id>(&bin).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
    }
}
