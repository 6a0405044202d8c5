//! Randomness from the operating system (`/dev/urandom`): WebSocket masking keys,
//! session ids, backoff jitter. Unpredictability matters for masking keys (RFC 6455
//! §10.3: an attacker must not guess the next key), so no seeded generator is used.

/// Fills `buf` from the operating system's random source.
pub fn fill(buf: &mut [u8]) {
    use std::io::Read;
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf)).is_ok();
    assert!(ok, "the operating system's random source (/dev/urandom) is unavailable");
}

/// `n` random bytes as lowercase hex.
pub fn hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
