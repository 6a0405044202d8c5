//! The accept loop, the connection limit, and graceful shutdown (mini-redis's shape).
//!
//! - The listener: a listen(2) backlog of `--listen-backlog` (a burst of connecting
//!   clients waits in the kernel's queue instead of having its SYNs dropped), and the
//!   socket options every connection needs set once on it, which each accepted socket
//!   inherits (`listen_tuned`).
//! - A semaphore caps connections at `--max-connections`; one more gets `503` and is
//!   closed, and the connections already open never notice. With `--reclaim-waiting`,
//!   the connections that have waited longest for a request head are let go of first to
//!   make room for it (`super::reclaim`), and only if none waits for one is it refused.
//! - Shutdown: a watch channel says "stop"; every connection task holds a clone of an
//!   mpsc sender, so when the last one finishes the receiver sees the channel close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Shared, http, rlimit};
use crate::app::broker::{Broker, BrokerKind};
use crate::app::redis::RedisBroker;
use crate::config::{Config, MAX_WAITING_FOR_ROOM, RECLAIM_BATCH, RECLAIM_WAIT};
use crate::proto::http::response::Context;
use crate::proto::http::{Response, Version};
use crate::trace::{PcapWriter, Recorders, Tracer};

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// `--trace-bytes` and `--trace-pcap`, when on.
    recorders: Recorders,
    limiter: Arc<Semaphore>,
    /// New connections waiting for room at the limit (`MAX_WAITING_FOR_ROOM`).
    waiting_for_room: Arc<Semaphore>,
}

impl Server {
    /// Binds the listener and prepares everything; nothing is served until `run`.
    pub async fn bind(mut config: Config) -> io::Result<Server> {
        let broker_kind = crate::app::broker::parse_broker_url(&config.broker)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let want = config.max_connections as u64 + rlimit::RESERVED_FDS;
        let (limit, problem) = rlimit::raise_nofile(want);
        if let Some(problem) = problem {
            let fit = limit.saturating_sub(rlimit::RESERVED_FDS).max(1) as usize;
            eprintln!("wire-academy: {problem}; serving at most {fit} connections until then");
            config.max_connections = fit;
        }
        // A build without the trace (`--no-default-features`, the build docs/performance.md
        // measures the trace's cost against) cannot record: it says so rather than ignore it.
        #[cfg(not(feature = "trace"))]
        if config.trace != crate::config::TraceTarget::Off || config.pcap.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this build has no byte trace (built without the `trace` feature): \
                 --trace-bytes, --trace-out and --trace-pcap need the default build",
            ));
        }
        let listener = listen_tuned(config.addr, config.listen_backlog, |socket| {
            // Small writes (a poll answer, an event) should leave now, not wait for Nagle.
            socket.set_nodelay(true)?;
            // Before any byte is written, so the kernel never grows it (`DEFAULT_SEND_BUFFER`).
            set_send_buffer(socket, config.send_buffer)?;
            set_notsent_lowat(socket, config.notsent_lowat)
        })?;
        let tracer = Tracer::start(&config.trace)?;
        let pcap = PcapWriter::start(config.pcap.as_ref()).map_err(|e| {
            let path = config.pcap.as_ref().map_or(String::new(), |p| p.path.display().to_string());
            io::Error::new(e.kind(), format!("cannot create the capture {path}: {e}"))
        })?;
        let broker = match broker_kind {
            BrokerKind::Memory => Broker::memory(config.history, config.max_queue, config.max_channels),
            // Redis unreachable at start: no server (exit 1), with the address in the error.
            BrokerKind::Redis(url) => Broker::Redis(
                RedisBroker::connect(url, config.history, config.max_queue, config.max_channels, tracer.clone())
                    .await
                    .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e))?,
            ),
        };
        let shared = Arc::new(Shared::with_broker(config, broker, tracer.clone()));
        let limiter = Arc::new(Semaphore::new(shared.config.max_connections));
        let waiting_for_room = Arc::new(Semaphore::new(MAX_WAITING_FOR_ROOM));
        Ok(Server { listener, shared, recorders: Recorders { trace: tracer, pcap }, limiter, waiting_for_room })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `stop` completes, then shuts down gracefully: held requests are
    /// answered, idle connections closed, and it waits up to `--shutdown-timeout`.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.start(stream, peer, done_tx.clone()),
                    Err(e) => {
                        // Out of descriptors (EMFILE/ENFILE) and the like: wait a moment
                        // rather than spin on an accept that keeps failing.
                        eprintln!("wire-academy: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = &mut stop => break,
            }
        }
        drop(self.listener);
        self.shared.stop();
        drop(done_tx);
        let _ = tokio::time::timeout(self.shared.config.shutdown_timeout, done_rx.recv()).await;
        // The trace and capture of everything that happened are written before the
        // process may exit.
        if self.recorders.any() {
            let r = self.recorders.clone();
            let _ = tokio::task::spawn_blocking(move || r.flush()).await;
        }
    }

    fn start(&self, stream: TcpStream, peer: SocketAddr, done: mpsc::Sender<()>) {
        // TCP_NODELAY, SO_SNDBUF and TCP_NOTSENT_LOWAT came with the socket: they were set
        // once on the listener (`listen_tuned`), and Linux copies them into each
        // connection it accepts, so no `setsockopt` is made per connection.
        let shared = self.shared.clone();
        match self.limiter.clone().try_acquire_owned() {
            Ok(permit) => spawn_connection(&self.recorders, stream, peer, done, shared, Ok(permit)),
            // At the limit, by default: 503.
            Err(_) if !shared.config.reclaim_waiting => {
                spawn_connection(&self.recorders, stream, peer, done, shared, Err(()))
            }
            // With --reclaim-waiting: room is made by letting go of the connections that
            // have waited longest for a request head, and this one waits for it
            // (`reclaim`), in a task of its own; its own task starts once it has a slot.
            Err(_) => match self.waiting_for_room.clone().try_acquire_owned() {
                Ok(waiting) => {
                    let room = Room { limiter: self.limiter.clone(), shared: shared.clone(), _waiting: waiting };
                    let recorders = self.recorders.clone();
                    tokio::spawn(async move {
                        let permit = room.wait().await.ok_or(());
                        spawn_connection(&recorders, stream, peer, done, shared, permit);
                    });
                }
                Err(_) => spawn_connection(&self.recorders, stream, peer, done, shared, Err(())),
            },
        }
    }
}

/// Starts a connection's task: served with its slot, or answered `503` without one.
fn spawn_connection(
    recorders: &Recorders,
    stream: TcpStream,
    peer: SocketAddr,
    done: mpsc::Sender<()>,
    shared: Arc<Shared>,
    permit: Result<OwnedSemaphorePermit, ()>,
) {
    // Recording off: the driver gets the bare socket, not even a branch on the data path.
    shared.stats.accepted.fetch_add(1, Relaxed);
    // One `spawn` per kind of connection: a task is sized for its own future, and the
    // common one (served, not traced) is not made room for the others.
    #[cfg(feature = "trace")]
    if recorders.any() {
        let r = recorders.clone();
        match permit {
            // A traced connection runs in a trace scope, so that the one carrying the
            // live trace (`GET /trace`) can keep its own bytes out of it.
            Ok(permit) => spawn_holding((done, permit), move || {
                let io = r.wrap(stream, peer.to_string(), crate::trace::Role::Server);
                crate::trace::connection_scope(serve_counted(io, shared))
            }),
            Err(()) => spawn_holding(done, move || {
                refuse_busy(r.wrap(stream, peer.to_string(), crate::trace::Role::Server), shared)
            }),
        }
        return;
    }
    let _ = (peer, recorders); // named only by the trace
    match permit {
        Ok(permit) => spawn_holding((done, permit), move || serve_counted(stream, shared)),
        Err(()) => spawn_holding(done, move || refuse_busy(stream, shared)),
    }
}

/// A new connection at `--max-connections`, waiting for room.
struct Room {
    limiter: Arc<Semaphore>,
    shared: Arc<Shared>,
    _waiting: OwnedSemaphorePermit,
}

impl Room {
    /// Lets go of the connections that have waited longest for a request head, unless
    /// room is already on its way, and waits for a slot (at most `RECLAIM_WAIT`).
    async fn wait(self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.limiter.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.shared.heads.reclaim(RECLAIM_BATCH);
        tokio::time::timeout(RECLAIM_WAIT, self.limiter.acquire_owned()).await.ok()?.ok()
    }
}

/// Sets `SO_SNDBUF` (socket(7)); 0 leaves the kernel's autotuning on. Linux stores
/// twice the value asked for (the other half is its bookkeeping) and, once set, no
/// longer grows the buffer by itself.
pub fn set_send_buffer(stream: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    if bytes == 0 { Ok(()) } else { set_int_option(stream, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes) }
}

/// A listener on `addr` whose kernel queue holds `backlog` connections not yet accepted
/// (listen(2); Linux caps it at `net.core.somaxconn`). `TcpListener::bind` asks for 128,
/// too few for a burst of reconnecting clients (`config::DEFAULT_LISTEN_BACKLOG`).
/// `SO_REUSEADDR` as `bind` sets it, so a restarted server binds past TIME_WAIT.
pub fn listen(addr: SocketAddr, backlog: usize) -> io::Result<TcpListener> {
    listen_tuned(addr, backlog, |_| Ok(()))
}

/// `listen`, with `tune` setting socket options on the listening socket before it
/// listens. Linux creates each accepted connection as a copy of the listening socket, so
/// the options set here (`TCP_NODELAY`, `SO_SNDBUF`, `TCP_NOTSENT_LOWAT`, …) are every
/// connection's from its first byte, at no system call per connection (a connected
/// socket inherits its listener's options, as UNIX Network Programming's chapter on
/// socket options lists them; the test `accepted_connections_inherit_the_listeners_options`
/// checks it on the kernel at hand).
pub fn listen_tuned(
    addr: SocketAddr,
    backlog: usize,
    tune: impl FnOnce(&TcpSocket) -> io::Result<()>,
) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    tune(&socket)?;
    socket.bind(addr)?;
    socket.listen(backlog.min(i32::MAX as usize) as u32) // listen(2) takes an int
}

/// Sets `TCP_NOTSENT_LOWAT` (tcp(7)): the socket refuses writes while more than `bytes`
/// written are not yet sent (see `DEFAULT_NOTSENT_LOWAT`); 0 leaves it unset.
pub fn set_notsent_lowat(stream: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    if bytes == 0 { Ok(()) } else { set_int_option(stream, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, bytes) }
}

/// `setsockopt` with an `int` value (capped at `c_int::MAX`).
fn set_int_option(stream: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: a live socket descriptor, and a pointer to a c_int with its true size.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Runs the work `start` makes as a task of its own, holding `guards` (the shutdown
/// tracker, the connection permit) until it ends. The work is made inside the task: a
/// future handed in ready-made would be moved once more to be awaited, and the task
/// would hold room for it twice.
fn spawn_holding<G, W>(guards: G, start: impl FnOnce() -> W + Send + 'static)
where
    G: Send + 'static,
    W: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let _guards = guards;
        start().await
    });
}

async fn serve_counted<S: AsyncRead + AsyncWrite + Unpin>(io: S, shared: Arc<Shared>) {
    shared.trim.opened(shared.stats.connections.fetch_add(1, Relaxed) + 1);
    http::serve(io, shared.clone()).await;
    let open = shared.stats.connections.fetch_sub(1, Relaxed) - 1;
    if shared.trim.closed(open) {
        // Most connections just closed: what they used goes back to the system
        // (`super::trim`), on a blocking thread.
        drop(tokio::task::spawn_blocking(super::trim::trim));
    }
}

/// Past `--max-connections`: `503`, close. Costs the refused client one round trip and
/// the server one short-lived task; nobody already connected is affected.
async fn refuse_busy<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, shared: Arc<Shared>) {
    shared.stats.refused.fetch_add(1, Relaxed);
    let date = super::date::now();
    let ctx = Context { version: Version::Http11, head_request: false, keep_alive: false, date: &date };
    let mut out = bytes::BytesMut::new();
    Response::text(503, "the server is at its connection limit; try again shortly\n")
        .header("Retry-After", "1")
        .encode(&ctx, &mut out);
    if io.write_all(&out).await.is_ok() {
        let _ = io.shutdown().await;
        http::lingering_drain(&mut io).await;
    }
}

/// A server running on its own task, for tests and embedding.
pub struct Running {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Binds (use port 0 for an ephemeral port) and serves in the background.
    pub async fn start(config: Config) -> io::Result<Running> {
        let server = Server::bind(config).await?;
        let addr = server.local_addr();
        let shared = server.shared();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Ok(Running { addr, shared, stop: Some(tx), task: Some(task) })
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_LISTEN_BACKLOG;

    /// A burst of clients connecting before the server accepts any of them (a bound
    /// server that does not run yet): with `TcpListener::bind`'s backlog of 128, the
    /// kernel would drop the SYN of the 130th, and its connect would wait for a
    /// retransmission (1 s, 3 s, …, about two minutes in all) and fail the timeout here.
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_listen_queue_before_any_is_accepted() {
        const BURST: usize = 300;
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .expect("/proc/sys/net/core/somaxconn (this test needs Linux)");
        assert!(
            somaxconn >= BURST,
            "net.core.somaxconn is {somaxconn}: the kernel caps every listen backlog there, below this \
             test's burst of {BURST}; raise it (sysctl -w net.core.somaxconn=4096, Linux's default since 5.4)"
        );
        const { assert!(DEFAULT_LISTEN_BACKLOG >= BURST) };
        let config = Config { addr: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr();
        let mut held = Vec::with_capacity(BURST);
        for n in 1..=BURST {
            let connect = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr));
            let stream = connect.await.unwrap_or_else(|_| panic!("connection {n} of {BURST} was not let in"));
            held.push(stream.expect("connect"));
        }
        drop(server);
    }

    fn int_option(stream: &TcpStream, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let (mut value, mut len): (libc::c_int, libc::socklen_t) = (0, std::mem::size_of::<libc::c_int>() as _);
        // SAFETY: a live socket descriptor, and pointers to a c_int and its size.
        let r = unsafe {
            libc::getsockopt(stream.as_raw_fd(), level, name, (&mut value as *mut libc::c_int).cast(), &mut len)
        };
        assert_eq!(r, 0, "getsockopt: {}", io::Error::last_os_error());
        value
    }

    /// The server sets TCP_NODELAY, SO_SNDBUF and TCP_NOTSENT_LOWAT once, on its listener:
    /// each connection it accepts must have them from the start, as if set on it.
    #[tokio::test]
    async fn accepted_connections_inherit_the_listeners_options() {
        let (send_buffer, notsent_lowat) = (96 * 1024, 12 * 1024);
        let config = Config { addr: "127.0.0.1:0".parse().unwrap(), send_buffer, notsent_lowat, ..Config::default() };
        let server = Server::bind(config).await.expect("bind");
        let client = TcpStream::connect(server.local_addr()).await.expect("connect");
        let (accepted, _) = server.listener.accept().await.expect("accept");
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY");
        // Linux stores twice the SO_SNDBUF asked for (socket(7)).
        assert_eq!(int_option(&accepted, libc::SOL_SOCKET, libc::SO_SNDBUF), 2 * send_buffer as libc::c_int);
        assert_eq!(int_option(&accepted, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT), notsent_lowat as libc::c_int);
        // The client's socket, never tuned, shows these are not the kernel's defaults.
        assert!(!client.nodelay().unwrap());
        assert_ne!(int_option(&client, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT), notsent_lowat as libc::c_int);
    }
}
