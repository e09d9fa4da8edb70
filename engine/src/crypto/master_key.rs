//! The repository master key: encryption key, MAC key and chunker seed.

use std::fmt;

use super::{CryptoError, aes_key, open_with, random_bytes, seal_with};
use crate::id::Id;

/// Bytes of a serialized master key: 32 (AES key) + 32 (MAC key) + 8 (chunker seed).
pub(crate) const MASTER_KEY_LEN: usize = 72;

/// The random master key of one repository. Never serialized outside a sealed key file.
pub struct MasterKey {
    raw: [u8; MASTER_KEY_LEN],
    enc: ring::aead::LessSafeKey,
    mac: ring::hmac::Key,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material must never reach a log line.
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Self::from_raw(random_bytes::<MASTER_KEY_LEN>()?)
    }

    pub(crate) fn from_raw(raw: [u8; MASTER_KEY_LEN]) -> Result<Self, CryptoError> {
        let mut enc = [0u8; 32];
        enc.copy_from_slice(&raw[..32]);
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw[32..64]);
        Ok(MasterKey {
            raw,
            enc: aes_key(&enc)?,
            mac,
        })
    }

    pub(crate) fn raw(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.raw
    }

    /// Seed for the content-defined chunker's gear table, so chunk boundaries differ per
    /// repository and chunk sizes are harder to match against known files.
    pub fn chunker_seed(&self) -> u64 {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&self.raw[64..72]);
        u64::from_le_bytes(seed)
    }

    /// The keyed identifier of a blob's plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        let tag = ring::hmac::sign(&self.mac, plaintext);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Id(out)
    }

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

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
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
