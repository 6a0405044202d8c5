//! What a client costs on the wire, counted at its own sockets (for `compare`).
//!
//! [`Metered`] wraps a connection and adds every byte read and written to a shared
//! [`Meter`]; the client loops add what only they know (a request sent, a short poll
//! that came back empty, a reconnection). Nothing is estimated: the bytes are the ones
//! the kernel took and gave, headers, chunk lines, frame headers and masks included.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::trace::observed::{Observed, Observer};

/// Counters shared by every connection of one client (or one group of clients).
#[derive(Debug, Default)]
pub struct Meter {
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// TCP connections opened.
    pub connections: AtomicU64,
    /// HTTP requests sent (a WebSocket handshake and an SSE request count as one each).
    pub requests: AtomicU64,
    /// Short polls answered with no message.
    pub empty_polls: AtomicU64,
    /// Times a client failed (a refused connection, an error answer, a cut stream) and
    /// tried again after its backoff.
    pub reconnections: AtomicU64,
    /// What the last failure was, to tell people why a transport delivered nothing.
    pub last_error: Mutex<Option<String>>,
}

/// A plain copy of a [`Meter`]'s counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub connections: u64,
    pub requests: u64,
    pub empty_polls: u64,
    pub reconnections: u64,
}

impl Meter {
    pub fn read(&self) -> Reading {
        Reading {
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            connections: self.connections.load(Relaxed),
            requests: self.requests.load(Relaxed),
            empty_polls: self.empty_polls.load(Relaxed),
            reconnections: self.reconnections.load(Relaxed),
        }
    }
}

/// Adds one to `counter` of `meter`, if there is a meter.
pub fn count(meter: &Option<Arc<Meter>>, counter: fn(&Meter) -> &AtomicU64) {
    if let Some(m) = meter {
        counter(m).fetch_add(1, Relaxed);
    }
}

/// Records a failure the client is about to retry after: one more reconnection, and why.
pub fn failed(meter: &Option<Arc<Meter>>, why: &str) {
    if let Some(m) = meter {
        m.reconnections.fetch_add(1, Relaxed);
        *m.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
    }
}

/// A stream whose bytes are counted: the [`Counted`] observer on a stream.
pub type Metered<S> = Observed<S, Counted>;

/// Adds what crosses a stream to a [`Meter`].
pub struct Counted(Arc<Meter>);

impl<S> Observed<S, Counted> {
    pub fn new(inner: S, meter: Arc<Meter>) -> Self {
        meter.connections.fetch_add(1, Relaxed);
        Observed::with(inner, Counted(meter))
    }
}

impl Observer for Counted {
    fn read(&mut self, bytes: &[u8]) {
        self.0.bytes_read.fetch_add(bytes.len() as u64, Relaxed);
    }

    fn wrote(&mut self, bytes: &[u8]) {
        self.0.bytes_written.fetch_add(bytes.len() as u64, Relaxed);
    }

    fn wrote_vectored(&mut self, _: &[IoSlice<'_>], n: usize) {
        self.0.bytes_written.fetch_add(n as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_what_crosses_in_both_directions() {
        let meter = Arc::new(Meter::default());
        let (a, mut b) = tokio::io::duplex(64);
        let mut m = Metered::new(a, meter.clone());
        m.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        b.write_all(b"abc").await.unwrap();
        let mut back = [0u8; 3];
        m.read_exact(&mut back).await.unwrap();
        let r = meter.read();
        assert_eq!((r.bytes_written, r.bytes_read, r.connections), (5, 3, 1));
    }
}
