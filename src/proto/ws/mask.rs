//! Payload masking, RFC 6455 §5.3.
//!
//! Every frame a client sends carries a 4-byte masking key, and its payload is
//! XORed with that key repeated:
//!
//! > Octet i of the transformed data ("transformed-octet-i") is the XOR of
//! > octet i of the original data ("original-octet-i") with octet at index
//! > i modulo 4 of the masking key ("masking-key-octet-j"):
//! >
//! > ```text
//! > j                   = i MOD 4
//! > transformed-octet-i = original-octet-i XOR masking-key-octet-j
//! > ```
//!
//! XOR is its own inverse, so the same function masks and unmasks.
//!
//! Masking is not encryption (the key travels in the clear, right before the
//! payload). It exists so that a browser script cannot choose the exact bytes
//! that appear on the wire, which stops it from forging requests that a
//! confused intercepting proxy would cache (§10.3).
//!
//! Two implementations live here:
//!
//! * [`apply_mask_naive`]: the RFC's formula, one byte at a time. Obviously
//!   right, and kept as the reference the fast path is tested against.
//! * [`apply_mask`]: the same result, eight bytes at a time (32 at a time on a
//!   CPU with AVX2, chosen at run time). Every payload a client sends is
//!   unmasked as it is read, so this is one of the hot loops of a server.
//!
//! Both take `offset`, the position of `buf[0]` within the frame's payload, so
//! a payload that arrives over several reads can be unmasked piece by piece as
//! it arrives (the session does exactly that, see `session.rs`).

/// Unmask (or mask) `buf` in place, one byte at a time, exactly as §5.3
/// states it. `offset` is the index of `buf[0]` within the payload.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        // j = i MOD 4, where i counts from the start of the payload.
        *byte ^= key[(offset + i) % 4];
    }
}

/// Unmask (or mask) `buf` in place, a machine word at a time, or (on an x86-64 CPU
/// with AVX2, for a buffer of at least [`WIDE_MIN`] bytes) 32 bytes at a time.
///
/// `offset` is the index of `buf[0]` within the payload, so that masking can
/// resume where an earlier call stopped. The result is identical to
/// [`apply_mask_naive`]; only the speed differs.
///
/// Two steps, with no byte-by-byte head: a small message (an echoed `hello`, a
/// chat line) is mostly head and tail, and x86 and ARMv8 load a word from any
/// address at full speed.
/// 1. XOR each 8-byte chunk with the key repeated twice, turned to start at
///    the chunk's phase (`offset` mod 4);
/// 2. XOR the tail shorter than a word with that word's first bytes.
///
/// No `unsafe` is needed for the loop itself: `u64::from_le_bytes` on an 8-byte
/// chunk compiles to a single load (a load and a byte swap on big-endian CPUs),
/// and byte k of the chunk meets byte k of the key pattern whatever the CPU's
/// endianness. The compiler turns the loop into vector instructions of its own
/// accord: 16-byte ones (SSE2, which every x86-64 CPU has), or 32-byte ones when
/// the same loop is compiled for AVX2 (`apply_mask_avx2`): 11 instructions per
/// 128 bytes instead of 9 per 32, which takes a 16 KiB echoed message from about
/// 9,000 user-space instructions to 5,800 (docs/performance.md).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= WIDE_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the one requirement of a `#[target_feature]` function is that the
        // CPU has the feature, which `is_x86_feature_detected!` just checked (at run
        // time: the binary still runs on a CPU without AVX2, by the word loop below).
        unsafe { apply_mask_avx2(buf, key, offset) };
        return;
    }
    apply_mask_words(buf, key, offset);
}

/// The shortest buffer [`apply_mask`] hands to the AVX2 loop. A chat line or the
/// benchmark's 32-byte echo is a few words, which 32-byte steps would not shorten: it
/// stays on the word loop, without even the look at the CPU's features.
pub const WIDE_MIN: usize = 64;

/// The word loop, compiled for a CPU with AVX2: the same source, so the same
/// result; the compiler may use 32-byte registers in it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_words(buf, key, offset);
}

/// The word loop of [`apply_mask`], inlined into each caller so that each is
/// compiled for its own target features.
#[inline(always)]
fn apply_mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as a little-endian word holds key[0] in its low byte; turning it
    // right by one byte per step of phase makes key[phase] the low byte, the
    // pattern's first (`rotate_right` by 8 * phase, phase < 4).
    let phase = (offset % 4) as u32;
    let turned = u64::from(u32::from_le_bytes(key).rotate_right(8 * phase));
    let word_key = turned | turned << 32;

    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunk of 8"));
        chunk.copy_from_slice(&(word ^ word_key).to_le_bytes());
    }
    // Whole words keep the phase (8 is a multiple of 4): the tail starts at it too.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= (word_key >> (8 * i)) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Deterministic, varied test data (no randomness in tests either).
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn rfc_5_7_masked_hello() {
        // §5.7: "Hello" masked with 37 fa 21 3d is 7f 9f 4d 51 58.
        let mut buf = *b"Hello";
        apply_mask(&mut buf, KEY, 0);
        assert_eq!(buf, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        apply_mask(&mut buf, KEY, 0);
        assert_eq!(&buf, b"Hello");
    }

    type Mask = fn(&mut [u8], [u8; 4], usize);

    /// Every way `apply_mask` may go on this machine: as called, and each of its loops
    /// called straight (the word loop, which a CPU without AVX2 uses for every length,
    /// and the AVX2 loop where this CPU has it), so each is checked at every length.
    fn implementations() -> Vec<(&'static str, Mask)> {
        let mut all: Vec<(&'static str, Mask)> =
            vec![("apply_mask", apply_mask), ("words", |b, k, o| apply_mask_words(b, k, o))];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: only added when this CPU has AVX2, checked just above.
            all.push(("avx2", |b, k, o| unsafe { apply_mask_avx2(b, k, o) }));
        } else {
            eprintln!("this CPU has no AVX2: its mask loop is not tested here");
        }
        all
    }

    #[test]
    fn fast_matches_naive_every_alignment_offset_length() {
        for (name, mask) in implementations() {
            for align in 0..8 {
                for offset in 0..4 {
                    for len in (0..200).chain([1000, 4099, 16_384, 65_537]) {
                        // Over-allocate, then start at an address whose value
                        // mod 8 is exactly `align`.
                        let mut backing = vec![0u8; len + 16];
                        let base = backing.as_ptr().align_offset(8);
                        let start = base + align;
                        let src = data(len);
                        backing[start..start + len].copy_from_slice(&src);
                        assert_eq!(backing[start..].as_ptr() as usize % 8, align);

                        let mut expected = src.clone();
                        apply_mask_naive(&mut expected, KEY, offset);
                        mask(&mut backing[start..start + len], KEY, offset);
                        assert_eq!(
                            &backing[start..start + len],
                            &expected[..],
                            "{name}: align {align} offset {offset} len {len}"
                        );
                        // Nothing around the buffer is touched.
                        assert!(backing[..start].iter().chain(&backing[start + len..]).all(|&b| b == 0), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn resuming_mid_payload_equals_one_pass() {
        let src = data(1000);
        let mut whole = src.clone();
        apply_mask(&mut whole, KEY, 0);
        for split in 0..=src.len() {
            let mut pieces = src.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, KEY, 0);
            apply_mask(b, KEY, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn offset_is_taken_modulo_four() {
        let src = data(50);
        for offset in 0..16 {
            let mut a = src.clone();
            let mut b = src.clone();
            apply_mask(&mut a, KEY, offset);
            apply_mask_naive(&mut b, KEY, offset % 4);
            assert_eq!(a, b);
        }
    }
}
