//! Giving memory back to the system after many connections have closed.
//!
//! glibc's allocator keeps what freed memory it can for reuse: a heap shrinks only from
//! its top, and each worker thread allocates from an arena of its own. After a thousand
//! connections close (the end of a burst, or of an attack: docs/abuse.md), most of what
//! they used sits free inside those arenas, and the process's resident memory stays near
//! its peak though nothing uses it. `malloc_trim(0)` returns the whole free pages of
//! every arena to the kernel (glibc ≥ 2.8, malloc_trim(3)).
//!
//! When to trim is decided here without I/O, from the count of open connections: once at
//! least [`TRIM_AFTER_CLOSED`] connections have closed since the last trim and the open
//! ones are down to half of their peak since then. A steady server never trims; one that
//! just lost most of its connections trims once, then again only after as many more
//! have closed. The trim itself walks the arenas (a few milliseconds for hundreds of
//! megabytes), so the server runs it on a blocking thread, off the connections' workers.

use std::sync::atomic::AtomicI64;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};

/// Connections that must close between two trims.
pub const TRIM_AFTER_CLOSED: u64 = 256;

/// When the last trim was, in connections. Two counters, no lock: every connection's
/// open and close passes through here, on whichever worker runs it.
#[derive(Default)]
pub struct TrimPolicy {
    /// Most connections open at once since the last trim.
    peak: AtomicI64,
    /// Connections closed since the last trim.
    closed: AtomicU64,
}

impl TrimPolicy {
    /// A connection opened; `open` are open now (itself included).
    pub fn opened(&self, open: i64) {
        self.peak.fetch_max(open, Relaxed);
    }

    /// A connection closed; `open` are open now. `true`: trim now.
    pub fn closed(&self, open: i64) -> bool {
        let closed = self.closed.fetch_add(1, Relaxed) + 1;
        // Of closes racing past the threshold, the one whose count is still current
        // takes the trim (and starts the next count); another close, counted meanwhile,
        // judges again with its own count. An open racing with the reset may have its
        // peak overwritten: the next trim then comes a little later, nothing worse.
        if closed >= TRIM_AFTER_CLOSED
            && open * 2 <= self.peak.load(Relaxed)
            && self.closed.compare_exchange(closed, 0, AcqRel, Relaxed).is_ok()
        {
            self.peak.store(open, Relaxed);
            return true;
        }
        false
    }
}

/// Returns free memory to the system (glibc); nothing elsewhere.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe
    // (each arena is locked while trimmed) and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_server_never_trims() {
        let p = TrimPolicy::default();
        for _ in 0..10_000 {
            p.opened(100);
            assert!(!p.closed(99), "one in, one out: never half the peak");
        }
    }

    #[test]
    fn a_server_that_lost_most_of_its_connections_trims_once_then_after_as_many_more() {
        let p = TrimPolicy::default();
        for open in 1..=1000 {
            p.opened(open);
        }
        let mut trims = Vec::new();
        for open in (0..1000).rev() {
            if p.closed(open) {
                trims.push(open);
            }
        }
        // At half the peak (500 open, 500 closed); then at half of that and 256 more
        // closed (244 open); not again for the last 244, fewer than 256.
        assert_eq!(trims, vec![500, 244]);
    }

    #[test]
    fn few_closes_do_not_trim_even_from_a_small_peak() {
        let p = TrimPolicy::default();
        for open in 1..=10 {
            p.opened(open);
        }
        assert!((0..10).rev().all(|open| !p.closed(open)), "10 closed, fewer than TRIM_AFTER_CLOSED");
    }

    #[test]
    fn closes_on_several_threads_at_once_trim_at_most_once_per_count() {
        const THREADS: i64 = 4;
        const EACH: i64 = 1000;
        let p = TrimPolicy::default();
        p.opened(THREADS * EACH);
        let open = AtomicI64::new(THREADS * EACH);
        let trims = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..EACH {
                        let now = open.fetch_sub(1, Relaxed) - 1;
                        if p.closed(now) {
                            trims.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        let trims = trims.load(Relaxed);
        let most = (THREADS * EACH) as u64 / TRIM_AFTER_CLOSED;
        assert!((1..=most).contains(&trims), "{trims} trims for {} closes", THREADS * EACH);
    }
}
