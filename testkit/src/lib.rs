//! What the test binaries of the engine, the CLI and the end-to-end suite share, so that
//! each does not keep its own copy: deterministic data to back up. A dev-only crate with no
//! dependencies; nothing here ships.

/// `len` bytes that are the same for the same `seed`, differ for different seeds, and do not
/// compress (xorshift64), so that sizes after compression and deduplication are predictable
/// in tests. The golden repositories in `engine/tests/fixtures` hold data made by this
/// function (seed 2026): changing its output for even seeds makes them fail.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    // xorshift64 needs an odd (non-zero) state. An even seed starts at seed + 1, as the
    // golden data was made; an odd one is spread over the whole range first, so that it
    // never starts where seed - 1 does.
    let mut x = if seed.is_multiple_of(2) {
        seed.wrapping_add(1)
    } else {
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // The top bits of xorshift64 mix better than the bottom ones.
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        assert_eq!(pseudo_random(4096, 7), pseudo_random(4096, 7));
        for seed in 0..64 {
            assert_ne!(
                pseudo_random(4096, seed),
                pseudo_random(4096, seed + 1),
                "seeds {seed} and {}",
                seed + 1
            );
        }
        assert_eq!(pseudo_random(10, 7).len(), 10);
    }

    #[test]
    fn the_bytes_are_spread_over_every_value() {
        let data = pseudo_random(1 << 16, 2026);
        let mut seen = [0u32; 256];
        for b in &data {
            seen[usize::from(*b)] += 1;
        }
        // 256 per value on average: none is missing or several times too common.
        assert!(seen.iter().all(|&n| (128..512).contains(&n)), "{seen:?}");
    }
}
