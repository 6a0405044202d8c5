//! Counters for `GET /stats` (API.md): per transport, connections held now, requests
//! served, bytes read and written, messages delivered.
//!
//! Plain relaxed atomics: each is an independent tally, read for display only, so no
//! ordering between them is needed and no lock sits on the data path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

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
    pub requests: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub delivered: AtomicU64,
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
