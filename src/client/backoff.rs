//! Reconnection delays: exponential backoff with jitter.
//!
//! When a server restarts, every client notices at once. If all retried on the same
//! schedule they would arrive together, again and again (a "thundering herd"); a random
//! part in each delay spreads them out.

use std::time::Duration;

/// First delay after a failure.
pub const INITIAL: Duration = Duration::from_millis(100);
/// Longest delay between attempts.
pub const MAX: Duration = Duration::from_secs(5);

pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: INITIAL }
    }
}

impl Backoff {
    /// The delay before the next attempt: a random point in [d/2, d], then d doubles.
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(MAX);
        let mut r = [0u8; 4];
        crate::random::fill(&mut r);
        let frac = u32::from_le_bytes(r) as f64 / u32::MAX as f64;
        d.mul_f64(0.5 + 0.5 * frac)
    }

    /// After a success, start again from the shortest delay.
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_caps() {
        let mut b = Backoff::default();
        let first = b.delay();
        assert!(first >= INITIAL / 2 && first <= INITIAL);
        for _ in 0..20 {
            assert!(b.delay() <= MAX);
        }
        assert!(b.delay() >= MAX / 2);
        b.reset();
        assert!(b.delay() <= INITIAL);
    }
}
