//! `--trace-pcap`'s moving parts: the stream wrapper that notes what each connection
//! moved, and the writer thread that turns it into the capture file ([`super::pcap`]).
//!
//! `PcapTap<S>` is the [`Captured`] observer on a connection's stream
//! ([`super::observed`], as the byte trace's [`super::Tap`] is), and sends each completed read or write, each half-close and the close, stamped with the
//! wall clock, to one writer thread per process. The thread keeps the TCP bookkeeping
//! and the file: a slow disk never stalls a task. Off (no `--trace-pcap`), nothing of it
//! exists and no stream is wrapped.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use super::observed::{Observed, Observer};
use super::pcap::{Capture, Side};
use super::tap::Role;
use crate::config::PcapTarget;

/// Longest [`PcapWriter::flush`] waits for the writer thread.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// What the writer thread is sent.
enum Event {
    Open {
        id: u64,
        client: SocketAddr,
        server: SocketAddr,
        at: Duration,
    },
    Data {
        id: u64,
        from: Side,
        bytes: Vec<u8>,
        at: Duration,
    },
    Fin {
        id: u64,
        from: Side,
        at: Duration,
    },
    Close {
        id: u64,
        closer: Side,
        at: Duration,
    },
    /// Answered once everything sent before it is in the file.
    Barrier(mpsc::Sender<()>),
}

/// The capture file's writer: one thread per process, fed over a channel.
pub struct PcapWriter {
    tx: mpsc::Sender<Event>,
    next_conn: AtomicU64,
    /// Set by the writer once the capture has stopped (its limit, a write error): from
    /// then on the taps copy and send nothing.
    stopped: Arc<AtomicBool>,
}

impl PcapWriter {
    /// Creates the file and starts its writer; `None` when there is no `--trace-pcap`.
    pub fn start(target: Option<&PcapTarget>) -> io::Result<Option<Arc<PcapWriter>>> {
        let Some(target) = target else { return Ok(None) };
        let mut file = io::BufWriter::new(std::fs::File::create(&target.path)?);
        let mut capture = Capture::new(target.limit);
        let mut out = Vec::new();
        capture.file_header(&mut out);
        file.write_all(&out).and_then(|_| file.flush())?;
        let (tx, rx) = mpsc::channel::<Event>();
        let path = target.path.clone();
        let limit = target.limit;
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        let full = move |capture: &Capture| {
            eprintln!(
                "wire-academy: the capture {} reached --trace-pcap-limit ({limit} bytes): capture stopped; \
                 the file holds {} bytes of whole packets",
                path.display(),
                capture.written()
            );
            stop.store(true, Ordering::Relaxed);
        };
        if capture.is_full() {
            full(&capture);
        }
        let path = target.path.clone();
        let stop = stopped.clone();
        std::thread::Builder::new().name("pcap-writer".into()).spawn(move || {
            for event in rx {
                out.clear();
                match event {
                    Event::Open { id, client, server, at } => capture.open(id, client, server, at, &mut out),
                    Event::Data { id, from, bytes, at } => capture.data(id, from, &bytes, at, &mut out),
                    Event::Fin { id, from, at } => capture.fin(id, from, at, &mut out),
                    Event::Close { id, closer, at } => capture.close(id, closer, at, &mut out),
                    Event::Barrier(done) => {
                        let _ = done.send(());
                        continue;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    continue; // events sent before the taps saw the capture stop
                }
                // Flushed per event: the file is complete for whoever opens it while the
                // program runs (a learner's tshark, a test).
                if let Err(e) = file.write_all(&out).and_then(|_| file.flush()) {
                    eprintln!("wire-academy: cannot write the capture {}: {e}; capture stopped", path.display());
                    stop.store(true, Ordering::Relaxed);
                } else if capture.is_full() {
                    full(&capture);
                }
            }
        })?;
        Ok(Some(Arc::new(PcapWriter { tx, next_conn: AtomicU64::new(1), stopped })))
    }

    /// Waits (at most `FLUSH_LIMIT`) until everything recorded so far is in the file:
    /// what a command does before it exits.
    pub fn flush(&self) {
        let (done, written) = mpsc::channel();
        if self.tx.send(Event::Barrier(done)).is_ok() {
            let _ = written.recv_timeout(FLUSH_LIMIT);
        }
    }

    /// Sends the event `make` makes, unless the capture has stopped (then nothing is
    /// made: no bytes are copied for a file that takes no more).
    fn send(&self, make: impl FnOnce() -> Event) {
        if !self.stopped.load(Ordering::Relaxed) {
            let _ = self.tx.send(make());
        }
    }
}

/// Now, as the capture's timestamps count it: since the Unix epoch.
fn now() -> Duration {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

/// A stream whose bytes go into the capture: the [`Captured`] observer on a stream.
pub type PcapTap<S> = Observed<S, Captured>;

/// What the capture keeps of one connection: which it is, and which end we are.
pub struct Captured {
    id: u64,
    /// Which end of the TCP connection this process is.
    local: Side,
    peer_eof: bool,
    writer: Arc<PcapWriter>,
}

impl<S> Observed<S, Captured> {
    /// `local` and `peer` are the socket's own addresses; `role` says which end connected.
    pub fn new(inner: S, local: SocketAddr, peer: SocketAddr, role: Role, writer: Arc<PcapWriter>) -> Self {
        let id = writer.next_conn.fetch_add(1, Ordering::Relaxed);
        let (side, client, server) = match role {
            Role::Server => (Side::Server, peer, local),
            Role::Client => (Side::Client, local, peer),
        };
        writer.send(|| Event::Open { id, client, server, at: now() });
        Observed::with(inner, Captured { id, local: side, peer_eof: false, writer })
    }
}

impl Observer for Captured {
    fn read(&mut self, bytes: &[u8]) {
        let (id, from) = (self.id, self.local.other());
        self.writer.send(|| Event::Data { id, from, bytes: bytes.to_vec(), at: now() });
    }

    fn eof(&mut self) {
        if !std::mem::replace(&mut self.peer_eof, true) {
            let (id, from) = (self.id, self.local.other());
            self.writer.send(|| Event::Fin { id, from, at: now() });
        }
    }

    fn wrote(&mut self, bytes: &[u8]) {
        let (id, from) = (self.id, self.local);
        self.writer.send(|| Event::Data { id, from, bytes: bytes.to_vec(), at: now() });
    }

    fn shut_down(&mut self) {
        let (id, from) = (self.id, self.local);
        self.writer.send(|| Event::Fin { id, from, at: now() });
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let (id, closer) = (self.id, self.local);
        self.writer.send(|| Event::Close { id, closer, at: now() });
    }
}
