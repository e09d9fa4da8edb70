//! Authenticated encryption, keyed MACs and key wrapping.
//!
//! Every object in a repository is sealed with AES-256-GCM under the repository's random
//! master key; blob identifiers are HMAC-SHA256 under a separate MAC key, so equal plaintext
//! deduplicates without an identifier revealing a plain hash of it.

mod key_file;
mod master_key;

pub use key_file::{DEFAULT_KDF_ITERATIONS, KdfParams, KeyFile, KeyFileError, MIN_KDF_ITERATIONS};
pub use master_key::{IdScheme, MasterKey};

/// A sealed object could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext or its associated data failed authentication: the bytes were altered,
    /// or they were sealed under another key.
    #[error("authentication failed: the data was altered or sealed under another key")]
    Authentication,
    /// The input is too short to be a sealed object.
    #[error("sealed object is truncated ({0} bytes)")]
    Truncated(usize),
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// ring refused key material (only possible with a key of the wrong length).
    #[error("key material rejected by the cipher")]
    KeyRejected,
}

/// Bytes of the random nonce prefixed to every sealed object.
pub const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag appended to every sealed object.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// Seal `plaintext` as `nonce || ciphertext || tag` with a random nonce.
pub(crate) fn seal_with(
    key: &ring::aead::LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(plaintext);
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce_bytes);
    let tag = key
        .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), &mut out[NONCE_LEN..])
        .map_err(|_| CryptoError::Authentication)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Seal in place: `buf[at..]` holds the plaintext; a random nonce is inserted at `at`
/// (moving nothing: the caller reserved 12 bytes there) and the tag appended, so that
/// `buf[at..]` becomes `nonce || ciphertext || tag` without another allocation.
pub(crate) fn seal_in_place_at(
    key: &ring::aead::LessSafeKey,
    aad: &[u8],
    buf: &mut Vec<u8>,
    at: usize,
) -> Result<(), CryptoError> {
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    buf[at..at + NONCE_LEN].copy_from_slice(&nonce_bytes);
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce_bytes);
    let tag = key
        .seal_in_place_separate_tag(
            nonce,
            ring::aead::Aad::from(aad),
            &mut buf[at + NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Authentication)?;
    buf.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Open a `nonce || ciphertext || tag` object sealed by [`seal_with`].
pub(crate) fn open_with(
    key: &ring::aead::LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Truncated(sealed.len()));
    }
    let (nonce_bytes, rest) = sealed.split_at(NONCE_LEN);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce_bytes)
        .map_err(|_| CryptoError::Truncated(sealed.len()))?;
    let mut buf = rest.to_vec();
    let plain_len = key
        .open_in_place(nonce, ring::aead::Aad::from(aad), &mut buf)
        .map_err(|_| CryptoError::Authentication)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

pub(crate) fn aes_key(bytes: &[u8; 32]) -> Result<ring::aead::LessSafeKey, CryptoError> {
    let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, bytes)
        .map_err(|_| CryptoError::KeyRejected)?;
    Ok(ring::aead::LessSafeKey::new(unbound))
}
