//! The repository master key: encryption key, MAC key and chunker seed.

use std::fmt;

use super::{CryptoError, aes_key, open_with, random_bytes, seal_with};
use crate::id::Id;

/// Bytes of a serialized master key: 32 (AES key) + 32 (MAC key) + 8 (chunker seed).
pub(crate) const MASTER_KEY_LEN: usize = 72;

/// How blob identifiers are computed from plaintext: a repository's choice, recorded in its
/// `config` (feature `blake3-ids`), fixed for its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdScheme {
    /// HMAC-SHA256 under the MAC key: repositories made before BLAKE3 ids.
    HmacSha256,
    /// Keyed BLAKE3 under a key derived from the MAC key: several times faster, and as
    /// keyed: without the master key nobody can compute or confirm an id.
    Blake3Keyed,
}

/// The random master key of one repository. Never serialized outside a sealed key file.
pub struct MasterKey {
    raw: [u8; MASTER_KEY_LEN],
    enc: ring::aead::LessSafeKey,
    mac: ring::hmac::Key,
    /// The keyed-BLAKE3 key, derived from the MAC key with its own context string so the
    /// two schemes never share a key.
    blake3: [u8; 32],
    ids: IdScheme,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material must never reach a log line.
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub(crate) fn generate() -> Result<Self, CryptoError> {
        Self::from_raw(random_bytes::<MASTER_KEY_LEN>()?)
    }

    pub(crate) fn from_raw(raw: [u8; MASTER_KEY_LEN]) -> Result<Self, CryptoError> {
        let mut enc = [0u8; 32];
        enc.copy_from_slice(&raw[..32]);
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw[32..64]);
        let blake3 = blake3::derive_key("holdfast 2026-12 blob identifiers", &raw[32..64]);
        Ok(MasterKey {
            raw,
            enc: aes_key(&enc)?,
            mac,
            blake3,
            ids: IdScheme::HmacSha256,
        })
    }

    /// Compute blob ids the way the repository's config says.
    pub(crate) fn set_id_scheme(&mut self, ids: IdScheme) {
        self.ids = ids;
    }

    /// How this repository names blobs (see [`IdScheme`]).
    pub fn id_scheme(&self) -> IdScheme {
        self.ids
    }

    pub(crate) fn raw(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.raw
    }

    /// Whether `other` is the same key (a copy's repository shares its source's), compared
    /// in constant time.
    pub(crate) fn same_as(&self, other: &MasterKey) -> bool {
        let diff = self
            .raw
            .iter()
            .zip(other.raw.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0 && self.ids == other.ids
    }

    /// Seed for the content-defined chunker's gear table, so chunk boundaries differ per
    /// repository and chunk sizes are harder to match against known files.
    pub(crate) fn chunker_seed(&self) -> u64 {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&self.raw[64..72]);
        u64::from_le_bytes(seed)
    }

    /// The keyed identifier of a blob's plaintext.
    pub(crate) fn blob_id(&self, plaintext: &[u8]) -> Id {
        match self.ids {
            IdScheme::HmacSha256 => {
                let tag = ring::hmac::sign(&self.mac, plaintext);
                let mut out = [0u8; 32];
                out.copy_from_slice(tag.as_ref());
                Id(out)
            }
            IdScheme::Blake3Keyed => Id(*blake3::keyed_hash(&self.blake3, plaintext).as_bytes()),
        }
    }

    /// Encrypt and authenticate `plaintext`, bound to `aad` (one of [`crate::format::aad`]).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.enc, aad, plaintext)
    }

    /// Seal `buf[at + 12..]` in place; see [`super::seal_in_place_at`].
    pub(crate) fn seal_in_place_at(
        &self,
        aad: &[u8],
        buf: &mut Vec<u8>,
        at: usize,
    ) -> Result<(), CryptoError> {
        super::seal_in_place_at(&self.enc, aad, buf, at)
    }

    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.enc, aad, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"kind-a", b"secret data").unwrap();
        assert_eq!(key.open(b"kind-a", &sealed).unwrap(), b"secret data");
        assert!(matches!(
            key.open(b"kind-b", &sealed),
            Err(CryptoError::Authentication)
        ));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.open(b"kind-a", &sealed),
            Err(CryptoError::Authentication)
        ));
    }

    #[test]
    fn flipped_bit_fails_authentication() {
        let key = MasterKey::generate().unwrap();
        let mut sealed = key.seal(b"", b"payload").unwrap();
        sealed[14] ^= 1;
        assert!(matches!(
            key.open(b"", &sealed),
            Err(CryptoError::Authentication)
        ));
        assert!(matches!(
            key.open(b"", &sealed[..10]),
            Err(CryptoError::Truncated(10))
        ));
    }

    #[test]
    fn both_id_schemes_are_keyed_and_differ() {
        let mut a = MasterKey::generate().unwrap();
        let hmac = a.blob_id(b"same");
        a.set_id_scheme(IdScheme::Blake3Keyed);
        let b3 = a.blob_id(b"same");
        assert_ne!(hmac, b3);
        assert_eq!(b3, a.blob_id(b"same"));
        assert_ne!(
            b3,
            Id(*blake3::hash(b"same").as_bytes()),
            "keyed, not plain BLAKE3"
        );
        let mut other = MasterKey::generate().unwrap();
        other.set_id_scheme(IdScheme::Blake3Keyed);
        assert_ne!(b3, other.blob_id(b"same"));
        // Fixed vectors: the scheme never changes under a repository.
        let mut fixed = MasterKey::from_raw([7u8; MASTER_KEY_LEN]).unwrap();
        assert_eq!(
            fixed.blob_id(b"holdfast").to_hex(),
            hex::encode(ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7u8; 32]),
                b"holdfast"
            ))
        );
        fixed.set_id_scheme(IdScheme::Blake3Keyed);
        let key = blake3::derive_key("holdfast 2026-12 blob identifiers", &[7u8; 32]);
        assert_eq!(
            fixed.blob_id(b"holdfast").0,
            *blake3::keyed_hash(&key, b"holdfast").as_bytes()
        );
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_eq!(a.blob_id(b"same"), a.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same"), Id::sha256(b"same"));
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let key = MasterKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}
