//! The tap: a stream wrapper that shows every byte read and written, then passes it on.
//!
//! `Tap<S>` is the [`Traced`] observer on any stream `S` ([`super::observed`]). Each
//! completed read or write is formatted (header line, hexdump rows, the [`Conversation`]'s notes) and
//! handed to the [`Tracer`]'s writer thread, so a slow terminal never stalls a task.
//!
//! Tracing off costs nothing: the drivers are generic over the stream, and the server
//! hands them a bare `TcpStream` when `--trace-bytes` is off, so not even a branch is
//! left on the data path.
//!
//! The same blocks can also be watched live ([`Tracer::watch`], served as `GET /trace`
//! to the dashboard). A block is copied for watchers only while someone watches.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::broadcast;

use super::annotate::{Conversation, Note};
use super::hexdump;
use super::observed::{Observed, Observer};
use crate::config::TraceTarget;

/// How many blocks a live watcher may fall behind before it is told it skipped some.
pub const WATCH_BACKLOG: usize = 512;

/// Where traces go: one writer thread per process, fed over a channel; and, while
/// anyone watches, a broadcast of the same blocks.
pub struct Tracer {
    tx: mpsc::Sender<Block>,
    next_conn: AtomicU64,
    live: broadcast::Sender<Arc<str>>,
}

/// What the writer thread is sent.
enum Block {
    /// Trace text, written in the order sent.
    Text(String),
    /// Answered once everything sent before it is written.
    Barrier(mpsc::Sender<()>),
}

/// Longest [`Tracer::flush`] waits for the writer (a terminal that stopped reading).
const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

tokio::task_local! {
    /// Set (by [`unwatched`]) in a connection's task whose own bytes must not reach the
    /// live watchers: the connection that carries the live trace. Were its writes shown
    /// to watchers, each block sent would be traced as a new block, sent in turn, without
    /// end. The file or terminal trace still shows everything.
    static UNWATCHED: Cell<bool>;
    /// Why the driver is closing this connection, when the bytes alone do not show it
    /// (an idle keep-alive connection is closed without a byte being sent): said on the
    /// trace's "connection closed" line. Set by [`closing_because`].
    static CLOSE_REASON: Cell<Option<&'static str>>;
}

/// Runs a connection's task so that [`unwatched`] and [`closing_because`] can mark it.
pub async fn connection_scope<F: std::future::Future>(f: F) -> F::Output {
    UNWATCHED.scope(Cell::new(false), CLOSE_REASON.scope(Cell::new(None), f)).await
}

/// The driver closes this connection for `reason`: the trace says so when it closes.
/// A no-op outside a traced connection (one task-local lookup, on a closing path).
pub fn closing_because(reason: &'static str) {
    let _ = CLOSE_REASON.try_with(|r| r.set(Some(reason)));
}

/// From now on, this connection's bytes go to the trace output but not to live watchers.
pub fn unwatched() {
    let _ = UNWATCHED.try_with(|u| u.set(true));
}

impl Tracer {
    /// Starts the writer for `target`; `None` when tracing is off.
    pub fn start(target: &TraceTarget) -> io::Result<Option<Arc<Tracer>>> {
        let mut out: Box<dyn Write + Send> = match target {
            TraceTarget::Off => return Ok(None),
            TraceTarget::Stderr => Box::new(io::stderr()),
            TraceTarget::File(path) => Box::new(std::fs::File::create(path)?),
        };
        let (tx, rx) = mpsc::channel::<Block>();
        std::thread::Builder::new().name("trace-writer".into()).spawn(move || {
            for block in rx {
                match block {
                    // Flush each block: the trace is read live, and a file must be
                    // complete for whoever reads it after a request finishes.
                    Block::Text(text) => {
                        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
                    }
                    Block::Barrier(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })?;
        Ok(Some(Arc::new(Tracer { tx, next_conn: AtomicU64::new(1), live: broadcast::channel(WATCH_BACKLOG).0 })))
    }

    /// Every block traced from now on, as it is traced (except the watcher's own
    /// connection's, see [`unwatched`]). A watcher that falls [`WATCH_BACKLOG`] blocks
    /// behind is told how many it skipped (`RecvError::Lagged`); nobody else waits for it.
    pub fn watch(&self) -> broadcast::Receiver<Arc<str>> {
        self.live.subscribe()
    }

    /// Waits (at most `FLUSH_LIMIT`) until every block traced so far is written: what
    /// a command does before it exits, since the writer thread dies with the process
    /// and would take the last blocks with it.
    pub fn flush(&self) {
        let (done, written) = mpsc::channel();
        if self.tx.send(Block::Barrier(done)).is_ok() {
            let _ = written.recv_timeout(FLUSH_LIMIT);
        }
    }

    /// Numbers connections 1, 2, 3… in the order they are traced.
    pub fn next_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn emit(&self, block: String) {
        // A copy for watchers only while there are some, and never of the bytes of the
        // connection that carries the live trace to them.
        if self.live.receiver_count() > 0 && !UNWATCHED.try_with(Cell::get).unwrap_or(false) {
            let _ = self.live.send(Arc::from(block.as_str()));
        }
        let _ = self.tx.send(Block::Text(block));
    }
}

/// Which end of the conversation this process is: decides whether what it reads is
/// requests (a server) or responses (a client).
pub use crate::proto::Role;

/// A traced stream: the [`Traced`] observer on a stream.
pub type Tap<S> = Observed<S, Traced>;

/// What the trace keeps of one connection, and what it prints as bytes go by.
pub struct Traced {
    id: u64,
    peer: String,
    role: Role,
    opened: Instant,
    conversation: Conversation,
    read_offset: u64,
    write_offset: u64,
    /// The peer's EOF has been traced: a driver that reads again after it (a lingering
    /// close, a stream noticing the client left) must not make the trace say it twice.
    eof_traced: bool,
    tracer: Arc<Tracer>,
}

impl<S> Observed<S, Traced> {
    pub fn new(inner: S, peer: String, role: Role, tracer: Arc<Tracer>) -> Self {
        Self::reading(inner, peer, role, tracer, Conversation::new())
    }

    /// A client connection to Redis (the Redis broker's), read as RESP both ways.
    pub fn resp(inner: S, peer: String, tracer: Arc<Tracer>) -> Self {
        Self::reading(inner, peer, Role::Client, tracer, Conversation::resp())
    }

    fn reading(inner: S, peer: String, role: Role, tracer: Arc<Tracer>, conversation: Conversation) -> Self {
        let id = tracer.next_id();
        let traced = Traced {
            id,
            peer,
            role,
            opened: Instant::now(),
            conversation,
            read_offset: 0,
            write_offset: 0,
            eof_traced: false,
            tracer,
        };
        traced.tracer.emit(format!("#{} connection with {} opened\n\n", traced.id, traced.peer));
        Observed::with(inner, traced)
    }
}

impl Traced {
    fn elapsed(&self) -> String {
        format!("+{:.6}s", self.opened.elapsed().as_secs_f64())
    }

    fn record(&mut self, wrote: bool, bytes: &[u8]) {
        let is_request = (self.role == Role::Server) != wrote;
        let notes =
            if is_request { self.conversation.request_bytes(bytes) } else { self.conversation.response_bytes(bytes) };
        let offset = if wrote { &mut self.write_offset } else { &mut self.read_offset };
        let start = *offset;
        *offset += bytes.len() as u64;
        let (verb, prep) = if wrote { ("wrote", "to") } else { ("read", "from") };
        let mut block = format!("#{} {verb} {} bytes {prep} {} {}\n", self.id, bytes.len(), self.peer, self.elapsed());
        hexdump::rows(start, bytes, &mut block);
        render_notes(&notes, &mut block);
        block.push('\n');
        self.tracer.emit(block);
    }
}

impl Observer for Traced {
    fn read(&mut self, bytes: &[u8]) {
        self.record(false, bytes);
    }

    fn eof(&mut self) {
        if !std::mem::replace(&mut self.eof_traced, true) {
            let line = format!("#{} {} closed its side (EOF) {}\n\n", self.id, self.peer, self.elapsed());
            self.tracer.emit(line);
        }
    }

    fn wrote(&mut self, bytes: &[u8]) {
        self.record(true, bytes);
    }

    fn shut_down(&mut self) {
        let line = format!("#{} sent FIN: no more bytes from this side {}\n\n", self.id, self.elapsed());
        self.tracer.emit(line);
    }
}

/// The notes under a dump: `  offset+len  text`.
pub fn render_notes(notes: &[Note], out: &mut String) {
    for n in notes {
        let _ = writeln!(out, "  {:08x}+{:<5} {}", n.offset, n.len, n.text);
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let reason = CLOSE_REASON.try_with(Cell::get).ok().flatten().map_or(String::new(), |r| format!("({r}) "));
        self.tracer.emit(format!("#{} connection closed {reason}{}\n\n", self.id, self.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A tracer writing to a fresh file; returns it and the file's path.
    fn tracer(name: &str) -> (Arc<Tracer>, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("wire-academy-tap-{}-{name}.trace", std::process::id()));
        (Tracer::start(&TraceTarget::File(path.clone())).unwrap().unwrap(), path)
    }

    fn written(t: &Tracer, path: &std::path::Path) -> String {
        t.flush();
        let text = std::fs::read_to_string(path).unwrap();
        let _ = std::fs::remove_file(path);
        text
    }

    #[tokio::test]
    async fn the_peers_eof_is_said_once_however_often_it_is_read() {
        let (t, path) = tracer("eof");
        let (a, mut b) = tokio::io::duplex(64);
        let mut tap = Tap::new(a, "peer".into(), Role::Server, t.clone());
        b.write_all(b"x").await.unwrap();
        drop(b);
        let mut buf = [0u8; 8];
        assert_eq!(tap.read(&mut buf).await.unwrap(), 1);
        assert_eq!(tap.read(&mut buf).await.unwrap(), 0);
        assert_eq!(tap.read(&mut buf).await.unwrap(), 0, "a lingering close reads EOF again");
        drop(tap);
        let text = written(&t, &path);
        assert_eq!(text.matches("closed its side (EOF)").count(), 1, "{text}");
        assert!(text.contains("connection closed +"), "{text}");
    }

    #[tokio::test]
    async fn a_close_the_bytes_do_not_explain_carries_its_reason() {
        let (t, path) = tracer("reason");
        let (a, _b) = tokio::io::duplex(64);
        let tap = Tap::new(a, "peer".into(), Role::Server, t.clone());
        connection_scope(async move {
            closing_because("idle: no request within --keep-alive-timeout");
            drop(tap);
        })
        .await;
        closing_because("outside a traced connection: ignored");
        let text = written(&t, &path);
        assert!(text.contains("connection closed (idle: no request within --keep-alive-timeout) +"), "{text}");
    }
}
