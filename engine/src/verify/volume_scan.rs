//! Reading one volume front to back without holding it whole: its SHA-256, every expected
//! blob authenticated and decoded, and its header and trailer kept for the caller.

use std::collections::HashSet;

use crate::crypto::MasterKey;
use crate::format::pack::{FOOTER_LEN, PACK_HEADER_LEN, decode_blob, trailer_start};
use crate::id::{ContentHasher, Id};

/// A local volume's length and last bytes, read before streaming it so the trailer can be
/// kept when the stream reaches it.
pub(super) fn volume_footer(file: &std::fs::File) -> Result<(u64, Vec<u8>), String> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let n = FOOTER_LEN.min(usize::try_from(len).unwrap_or(FOOTER_LEN));
    let mut footer = vec![0u8; n];
    file.read_exact_at(&mut footer, len - n as u64)
        .map_err(|e| e.to_string())?;
    Ok((len, footer))
}

/// Where to start keeping bytes for the trailer: where the footer says it begins, or, for a
/// volume whose footer is damaged, only the footer itself (the trailer check then fails).
pub(super) fn trailer_from(len: u64, footer: &[u8]) -> u64 {
    trailer_start(len, footer).unwrap_or_else(|| len.saturating_sub(FOOTER_LEN as u64))
}

/// What reading a volume once found.
pub(super) struct Scan {
    pub len: u64,
    pub name: Id,
    /// The volume's first bytes (its header).
    pub head: Vec<u8>,
    /// The volume's bytes from where its trailer begins.
    pub tail: Vec<u8>,
    pub bad_blobs: HashSet<Id>,
}

/// Read a volume front to back once, `window` bytes at a time: hash every byte, check each
/// expected blob (`(id, offset, entry length)`, sorted by offset) as soon as it is complete,
/// and keep only what is still needed: the bytes from the next unchecked blob, or from the
/// trailer on. `buf` is reused across volumes.
pub(super) fn scan(
    key: &MasterKey,
    expected: &[(Id, u32, u32)],
    reader: &mut dyn std::io::Read,
    trailer_from: u64,
    window: usize,
    buf: &mut Vec<u8>,
) -> Result<Scan, String> {
    let mut hasher = ContentHasher::new(key.id_scheme());
    let mut head = Vec::with_capacity(PACK_HEADER_LEN);
    let mut bad_blobs = HashSet::new();
    // `buf` holds the volume's bytes from offset `base`.
    buf.clear();
    let mut base = 0u64;
    let mut next = 0;
    loop {
        let old = buf.len();
        buf.resize(old + window.max(1), 0);
        let n = loop {
            match reader.read(&mut buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            break;
        }
        let fresh = &buf[old..];
        hasher.update(fresh);
        if head.len() < PACK_HEADER_LEN {
            head.extend_from_slice(&fresh[..fresh.len().min(PACK_HEADER_LEN - head.len())]);
        }
        let end = base + buf.len() as u64;
        while let Some(&(id, off, len)) = expected.get(next) {
            let (off, len) = (u64::from(off), u64::from(len));
            if off + len > end {
                break;
            }
            // Offsets are sorted and `base` never passes the next one, so off >= base.
            let entry = usize::try_from(off.saturating_sub(base))
                .ok()
                .and_then(|from| buf.get(from..from + len as usize));
            let intact = entry
                .is_some_and(|entry| matches!(decode_blob(key, entry), Ok((h, _)) if h.id == id));
            if !intact {
                bad_blobs.insert(id);
            }
            next += 1;
        }
        let keep_from = expected
            .get(next)
            .map_or(u64::MAX, |e| u64::from(e.1))
            .min(trailer_from)
            .clamp(base, end);
        buf.drain(..(keep_from - base) as usize);
        base = keep_from;
    }
    // Blobs the volume ends before are missing.
    bad_blobs.extend(expected[next..].iter().map(|e| e.0));
    let len = base + buf.len() as u64;
    Ok(Scan {
        len,
        name: hasher.finish(),
        head,
        tail: buf.to_vec(),
        bad_blobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{CompressionLevel, Compressor};
    use crate::format::pack::{BlobKind, PackBuilder, encode_blob, parse_trailer, read_trailer};

    struct Volume {
        id: Id,
        bytes: Vec<u8>,
        expected: Vec<(Id, u32, u32)>,
    }

    /// Blobs of mixed sizes, some incompressible, so entries straddle small windows.
    fn volume(key: &MasterKey) -> Volume {
        let mut c = Compressor::new(CompressionLevel::FAST).unwrap();
        let mut p = PackBuilder::new(Vec::new(), key.id_scheme()).unwrap();
        for (seed, size) in [0usize, 1, 300, 5000, 70_000, 12, 20_000]
            .into_iter()
            .enumerate()
        {
            let data = holdfast_testkit::pseudo_random(size, seed as u64 + 7);
            let blob = encode_blob(key, &mut c, BlobKind::Data, key.blob_id(&data), &data).unwrap();
            p.add(&blob).unwrap();
        }
        let f = p.finish(key).unwrap();
        let expected = f
            .entries
            .iter()
            .map(|e| (e.header.id, e.offset, e.header.entry_len()))
            .collect();
        Volume {
            id: f.id,
            bytes: f.out,
            expected,
        }
    }

    fn scan_bytes(key: &MasterKey, v: &Volume, bytes: &[u8], window: usize) -> Scan {
        let footer = &bytes[bytes.len().saturating_sub(FOOTER_LEN)..];
        let from = trailer_from(bytes.len() as u64, footer);
        scan(
            key,
            &v.expected,
            &mut &bytes[..],
            from,
            window,
            &mut Vec::new(),
        )
        .unwrap()
    }

    #[test]
    fn every_window_size_finds_an_intact_volume_intact() {
        let key = MasterKey::generate().unwrap();
        let v = volume(&key);
        for window in [1, 7, 44, 100, 4096, 65_536, 1 << 20] {
            let s = scan_bytes(&key, &v, &v.bytes, window);
            assert_eq!(s.len, v.bytes.len() as u64, "window {window}");
            assert_eq!(s.name, v.id, "window {window}");
            assert!(s.bad_blobs.is_empty(), "window {window}: {:?}", s.bad_blobs);
            assert_eq!(
                parse_trailer(&key, &s.head, &s.tail, s.len).unwrap(),
                read_trailer(&key, &v.bytes).unwrap(),
                "window {window}"
            );
            // Only the trailer is kept, not the volume.
            assert!(s.tail.len() < v.bytes.len() / 10, "window {window}");
        }
    }

    #[test]
    fn a_flipped_byte_names_its_blob_and_breaks_the_volume_hash() {
        let key = MasterKey::generate().unwrap();
        let v = volume(&key);
        let (id, off, len) = v.expected[4];
        let mut bytes = v.bytes.clone();
        bytes[(off + len / 2) as usize] ^= 0x01;
        for window in [3, 1000, 1 << 20] {
            let s = scan_bytes(&key, &v, &bytes, window);
            assert_ne!(s.name, v.id);
            assert_eq!(s.bad_blobs, HashSet::from([id]), "window {window}");
            assert!(parse_trailer(&key, &s.head, &s.tail, s.len).is_ok());
        }
    }

    #[test]
    fn a_truncated_volume_loses_the_cut_blob_the_rest_and_its_trailer() {
        let key = MasterKey::generate().unwrap();
        let v = volume(&key);
        let (_, off, len) = v.expected[4];
        let bytes = &v.bytes[..(off + len / 2) as usize];
        let s = scan_bytes(&key, &v, bytes, 1000);
        let lost: HashSet<Id> = v.expected[4..].iter().map(|e| e.0).collect();
        assert_eq!(s.bad_blobs, lost);
        let err = parse_trailer(&key, &s.head, &s.tail, s.len).unwrap_err();
        assert!(err.to_string().contains("trailer"), "{err}");
    }

    #[test]
    fn a_damaged_footer_fails_the_trailer_without_holding_the_volume() {
        let key = MasterKey::generate().unwrap();
        let v = volume(&key);
        let mut bytes = v.bytes.clone();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        let s = scan_bytes(&key, &v, &bytes, 1000);
        assert!(s.bad_blobs.is_empty());
        assert_eq!(s.tail.len(), FOOTER_LEN);
        assert!(parse_trailer(&key, &s.head, &s.tail, s.len).is_err());
    }
}
