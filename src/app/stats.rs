//! Counters for `GET /stats` (API.md): per transport, connections held now, requests
//! served, bytes read and written, messages delivered.
//!
//! Plain relaxed atomics: each is an independent tally, read for display only, so no
//! ordering between them is needed and no lock sits on the data path. The counters
//! every delivery adds to are [`Tally`]s, striped by thread: two worker threads adding to
//! one atomic would pass its cache line back and forth once per message per subscriber.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};

/// Stripes of a [`Tally`]: at least the worker threads that add to it at once.
const STRIPES: usize = 8;

/// One atomic on a cache line of its own (128 bytes: adjacent-line prefetching pairs
/// 64-byte lines on x86).
#[derive(Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A counter many threads add to: each thread adds to its own stripe, and reading sums
/// them. Reads are rare (`/stats`) and adds are on the data path. The same calls as
/// `AtomicU64`'s, so counting code reads the same either way.
#[derive(Default)]
pub struct Tally([Stripe; STRIPES]);

impl Tally {
    pub fn fetch_add(&self, n: u64, _order: Ordering) {
        self.0[stripe()].0.fetch_add(n, Relaxed);
    }

    pub fn load(&self, _order: Ordering) -> u64 {
        self.0.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

/// This thread's stripe, handed out round-robin the first time a thread counts.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// What a request or connection is doing, for accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    ShortPoll,
    LongPoll,
    Sse,
    WebSocket,
    /// `POST /publish`: not a transport, but traffic worth seeing.
    Publish,
    /// Everything else: stats, errors, unknown paths.
    Other,
}

impl Transport {
    pub const ALL: [Transport; 6] = [
        Transport::ShortPoll,
        Transport::LongPoll,
        Transport::Sse,
        Transport::WebSocket,
        Transport::Publish,
        Transport::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::ShortPoll => "short_poll",
            Transport::LongPoll => "long_poll",
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
            Transport::Publish => "publish",
            Transport::Other => "other",
        }
    }
}

#[derive(Default)]
pub struct Counters {
    pub open: AtomicI64,
    pub requests: Tally,
    pub bytes_read: Tally,
    pub bytes_written: Tally,
    pub delivered: Tally,
}

#[derive(Default)]
pub struct Stats {
    per: [Counters; 6],
    /// TCP connections open now, of any kind.
    pub connections: AtomicI64,
    /// TCP connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused with 503 past `--max-connections`.
    pub refused: AtomicU64,
}

impl Stats {
    pub fn of(&self, t: Transport) -> &Counters {
        &self.per[t as usize]
    }

    pub fn read(&self, t: Transport, n: usize) {
        self.of(t).bytes_read.fetch_add(n as u64, Relaxed);
    }

    pub fn wrote(&self, t: Transport, n: usize) {
        self.of(t).bytes_written.fetch_add(n as u64, Relaxed);
    }

    pub fn delivered(&self, t: Transport, n: usize) {
        self.of(t).delivered.fetch_add(n as u64, Relaxed);
    }

    /// Counts a connection as held by `t` until the guard is dropped.
    pub fn hold(&self, t: Transport) -> HoldGuard<'_> {
        self.of(t).open.fetch_add(1, Relaxed);
        HoldGuard(&self.of(t).open)
    }

    /// The guard of a hold counted already by a guard that was forgotten
    /// (`std::mem::forget`) where the count began: one count, handed from one scope to
    /// another without a moment where it is missing.
    pub fn hold_taken_over(&self, t: Transport) -> HoldGuard<'_> {
        HoldGuard(&self.of(t).open)
    }

    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"transports\":{");
        for (i, t) in Transport::ALL.iter().enumerate() {
            let c = self.of(*t);
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "\"{}\":{{\"open\":{},\"requests\":{},\"bytes_read\":{},\"bytes_written\":{},\"delivered\":{}}}",
                t.name(),
                c.open.load(Relaxed),
                c.requests.load(Relaxed),
                c.bytes_read.load(Relaxed),
                c.bytes_written.load(Relaxed),
                c.delivered.load(Relaxed),
            ));
        }
        s.push_str(&format!(
            "}},\"connections\":{{\"open\":{},\"accepted\":{},\"refused\":{}}}}}",
            self.connections.load(Relaxed),
            self.accepted.load(Relaxed),
            self.refused.load(Relaxed),
        ));
        s
    }
}

pub struct HoldGuard<'a>(&'a AtomicI64);

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_parses_and_counts() {
        let s = Stats::default();
        s.read(Transport::LongPoll, 10);
        s.of(Transport::LongPoll).requests.fetch_add(1, Relaxed);
        {
            let _g = s.hold(Transport::Sse);
            let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
            assert_eq!(v["transports"]["sse"]["open"], 1);
        }
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["transports"]["sse"]["open"], 0);
        assert_eq!(v["transports"]["long_poll"]["bytes_read"], 10);
        assert_eq!(v["transports"]["long_poll"]["requests"], 1);
    }
}
