//! `wire-academy proxy`: a hostile middlebox, to show why real-time clients negotiate.
//!
//! Corporate proxies and load balancers do three things to real-time traffic, and each
//! mode reproduces one:
//!
//! - `--block-websocket`: refuses requests that ask to `Upgrade: websocket` (`403`),
//!   as proxies that only understand plain HTTP do.
//! - `--buffer-responses`: holds each response until it is complete before passing it
//!   on, as buffering proxies (and nginx's default `proxy_buffering on`) do. A long-poll
//!   answer is complete, so it passes; an SSE stream never completes, so nothing arrives.
//! - `--idle-timeout S`: cuts a connection on which no byte moved for S seconds, as load
//!   balancers do. A long-poll held longer than S is cut.
//! - `--latency MS`: delays every byte by MS milliseconds in each direction, as a long
//!   link does (a round trip then costs 2 × MS). Not hostile, but it shows what each
//!   transport pays per message: a short poll a round trip per question, a WebSocket
//!   only the one-way delay. Bytes are held in memory for MS, not throttled: the link
//!   is long, not narrow.
//!
//! Otherwise it forwards bytes unchanged, both ways. The HTTP-reading part is pure
//! ([`Filter`], over the same message streams the server and the trace read); the loop
//! around it only moves bytes and time.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep_until};

use crate::config::READ_BUFFER;
use crate::proto::http::{Event, Exchange, HeadLimits, Unit};
use crate::trace::{Recorders, Role, Tracer};

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub upstream: String,
    pub block_websocket: bool,
    pub buffer_responses: bool,
    pub idle_timeout: Option<Duration>,
    /// Added to every byte in each direction (`--latency`); zero for none.
    pub latency: Duration,
}

/// What the proxy did, for tests and for people watching.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections cut for being idle past `--idle-timeout`.
    pub idle_cuts: AtomicU64,
    /// WebSocket upgrades refused by `--block-websocket`.
    pub refused_upgrades: AtomicU64,
}

/// Generous limits: the proxy is not the server; it only needs to find message ends.
const LIMITS: HeadLimits = HeadLimits { max_header: 64 * 1024, max_target: 64 * 1024, max_body: usize::MAX };

/// What to do with bytes the proxy has read.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// Pass these bytes on to the server.
    ToServer(Bytes),
    /// Pass these bytes on to the client.
    ToClient(Bytes),
    /// Answer the client with these bytes ourselves, and close.
    Refuse(Bytes),
}

/// The HTTP-reading part of the proxy, pure: both directions of one connection read
/// as the server and the trace read them ([`Exchange`]), so it finds each message where
/// they do. It refuses WebSocket upgrades when blocking and, when buffering, holds each
/// response until its end.
pub struct Filter {
    http: Exchange,
    from_client: BytesMut,
    from_server: BytesMut,
    /// Buffering: the bytes of the response not yet complete.
    held: BytesMut,
    block_websocket: bool,
    buffering: bool,
    /// A direction the proxy could not read (the server will refuse what the client
    /// sent; a response it cannot frame passes as it comes): its bytes pass unread.
    unread: [bool; 2],
}

impl Filter {
    pub fn new(block_websocket: bool, buffering: bool) -> Self {
        Filter {
            http: Exchange::new(LIMITS),
            from_client: BytesMut::new(),
            from_server: BytesMut::new(),
            held: BytesMut::new(),
            block_websocket,
            buffering,
            unread: [false; 2],
        }
    }

    /// Bytes the client sent.
    pub fn client_bytes(&mut self, data: &[u8]) -> Vec<Out> {
        self.from_client.extend_from_slice(data);
        let mut out = Vec::new();
        self.requests(&mut out);
        coalesce(out)
    }

    /// Bytes the server sent. A final answer may let requests held behind an upgrade
    /// request go on (HTTP again, or frames after a `101`), so those are read again.
    pub fn server_bytes(&mut self, data: &[u8]) -> Vec<Out> {
        self.from_server.extend_from_slice(data);
        let mut out = Vec::new();
        self.responses(&mut out);
        self.requests(&mut out);
        coalesce(out)
    }

    fn requests(&mut self, out: &mut Vec<Out>) {
        loop {
            if self.unread[0] || self.http.stream(Role::Client).is_switched() {
                if !self.from_client.is_empty() {
                    out.push(Out::ToServer(self.from_client.split().freeze()));
                }
                return;
            }
            match self.http.read(Role::Client, &mut self.from_client) {
                Ok(None) => return,
                Ok(Some(Unit { event: Event::Request(head), .. }))
                    if self.block_websocket && head.is_websocket_upgrade() =>
                {
                    out.push(Out::Refuse(Bytes::from_static(BLOCKED)));
                    self.from_client.clear();
                    self.unread[0] = true;
                    return;
                }
                Ok(Some(unit)) if !unit.bytes.is_empty() => out.push(Out::ToServer(unit.bytes)),
                Ok(Some(_)) => {}
                Err(_) => self.unread[0] = true,
            }
        }
    }

    fn responses(&mut self, out: &mut Vec<Out>) {
        loop {
            if self.unread[1] || self.http.stream(Role::Server).is_switched() {
                self.held.unsplit(self.from_server.split());
                if !self.held.is_empty() {
                    out.push(Out::ToClient(self.held.split().freeze()));
                }
                return;
            }
            match self.http.read(Role::Server, &mut self.from_server) {
                Ok(None) => return,
                Ok(Some(unit)) if self.buffering => {
                    self.held.extend_from_slice(&unit.bytes);
                    if matches!(unit.event, Event::End) {
                        out.push(Out::ToClient(self.held.split().freeze()));
                    }
                }
                Ok(Some(unit)) if !unit.bytes.is_empty() => out.push(Out::ToClient(unit.bytes)),
                Ok(Some(_)) => {}
                Err(_) => self.unread[1] = true,
            }
        }
    }

    /// The server closed: a response delimited by the close is complete now.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.held.unsplit(self.from_server.split());
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }
}

/// Joins the units read in one go that go the same way, so that what arrived in one
/// read leaves in one write: the proxy reads messages unit by unit, but must not change
/// how the bytes are cut into segments (a client's trace would show it).
fn coalesce(outs: Vec<Out>) -> Vec<Out> {
    let mut joined: Vec<Out> = Vec::with_capacity(outs.len());
    for o in outs {
        match (joined.last_mut(), o) {
            (Some(Out::ToServer(a)), Out::ToServer(b)) | (Some(Out::ToClient(a)), Out::ToClient(b)) => {
                *a = [&a[..], &b[..]].concat().into();
            }
            (_, o) => joined.push(o),
        }
    }
    joined
}

/// What a proxy that refuses WebSocket answers.
const BLOCKED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\nWebSocket upgrades blocked by proxy.\n";

/// Runs the proxy until `stop` completes.
pub async fn run(
    cfg: ProxyConfig,
    tracer: Option<Arc<Tracer>>,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let listener = crate::net::server::listen(cfg.listen, crate::config::DEFAULT_LISTEN_BACKLOG)?;
    run_on(listener, cfg, tracer, Arc::default(), stop).await
}

/// Runs the proxy on a bound listener, traced by `tracer` (`--trace-bytes`) if any.
pub async fn run_on(
    listener: TcpListener,
    cfg: ProxyConfig,
    tracer: Option<Arc<Tracer>>,
    stats: Arc<ProxyStats>,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    run_recorded(listener, cfg, Recorders { trace: tracer, pcap: None }, stats, stop).await
}

/// Runs the proxy on a bound listener, both sides of each connection recorded by
/// `recorders` (`--trace-bytes`, `--trace-pcap`).
pub async fn run_recorded(
    listener: TcpListener,
    cfg: ProxyConfig,
    recorders: Recorders,
    stats: Arc<ProxyStats>,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    tokio::pin!(stop);
    let cfg = Arc::new(cfg);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, peer)) = accepted else { continue };
                let cfg = cfg.clone();
                let recorders = recorders.clone();
                let stats = stats.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let Ok(upstream) = TcpStream::connect(&cfg.upstream).await else {
                        return; // upstream down: the client sees its connection close
                    };
                    let _ = upstream.set_nodelay(true);
                    let c = recorders.wrap(client, peer.to_string(), Role::Server);
                    let u = recorders.wrap(upstream, cfg.upstream.clone(), Role::Client);
                    if cfg.latency.is_zero() {
                        relay(c, u, &cfg, &stats).await
                    } else {
                        // What is written towards either end reaches it MS later.
                        relay(Delayed::new(c, cfg.latency), Delayed::new(u, cfg.latency), &cfg, &stats).await
                    }
                });
            }
            _ = &mut stop => return Ok(()),
        }
    }
}

/// A stream whose writes arrive `delay` later: each write is accepted at once, stamped,
/// and written by a task of its own when its time comes, in order; a shutdown passes
/// the same way. Reads are not delayed (the other end's writes already were).
struct Delayed<S> {
    read: tokio::io::ReadHalf<S>,
    line: tokio::sync::mpsc::UnboundedSender<(Instant, Option<Bytes>)>,
    delay: Duration,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Delayed<S> {
    fn new(stream: S, delay: Duration) -> Self {
        let (read, mut write) = tokio::io::split(stream);
        let (line, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
        tokio::spawn(async move {
            while let Some((due, bytes)) = rx.recv().await {
                sleep_until(due).await;
                let Some(b) = bytes else {
                    let _ = write.shutdown().await;
                    return;
                };
                if write.write_all(&b).await.is_err() {
                    return;
                }
            }
        });
        Delayed { read, line, delay }
    }
}

impl<S: AsyncRead> AsyncRead for Delayed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for Delayed<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let sent = self.line.send((Instant::now() + self.delay, Some(Bytes::copy_from_slice(data))));
        std::task::Poll::Ready(sent.map(|_| data.len()).map_err(|_| io::ErrorKind::BrokenPipe.into()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let _ = self.line.send((Instant::now() + self.delay, None));
        std::task::Poll::Ready(Ok(()))
    }
}

/// Moves bytes both ways through the two sides' filters until either end closes or the
/// connection is idle too long.
async fn relay<C, U>(mut client: C, mut upstream: U, cfg: &ProxyConfig, stats: &ProxyStats)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut filter = Filter::new(cfg.block_websocket, cfg.buffer_responses);
    let http_aware = cfg.block_websocket || cfg.buffer_responses;
    let mut from_client = BytesMut::with_capacity(READ_BUFFER);
    let mut from_upstream = BytesMut::with_capacity(READ_BUFFER);
    let idle = cfg.idle_timeout.unwrap_or(Duration::from_secs(u32::MAX as u64));
    let mut deadline = Instant::now() + idle;
    loop {
        let outs = tokio::select! {
            r = client.read_buf(&mut from_client) => {
                let Ok(n) = r else { break };
                if n == 0 {
                    let _ = upstream.shutdown().await; // pass the half-close on
                    continue_until_upstream_done(&mut upstream, &mut client, &mut filter, http_aware).await;
                    break;
                }
                let data = from_client.split();
                if http_aware { filter.client_bytes(&data) } else { vec![Out::ToServer(data.freeze())] }
            }
            r = upstream.read_buf(&mut from_upstream) => {
                let Ok(n) = r else { break };
                if n == 0 {
                    if let Some(rest) = filter.finish() {
                        let _ = client.write_all(&rest).await;
                    }
                    break;
                }
                let data = from_upstream.split();
                if http_aware { filter.server_bytes(&data) } else { vec![Out::ToClient(data.freeze())] }
            }
            _ = sleep_until(deadline) => {
                stats.idle_cuts.fetch_add(1, Relaxed); // idle too long: cut both ways
                break;
            }
        };
        deadline = Instant::now() + idle;
        for o in outs {
            let sent = match o {
                Out::ToServer(b) => upstream.write_all(&b).await,
                Out::ToClient(b) => client.write_all(&b).await,
                Out::Refuse(b) => {
                    stats.refused_upgrades.fetch_add(1, Relaxed);
                    let _ = client.write_all(&b).await;
                    let _ = client.shutdown().await;
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }
    let _ = client.shutdown().await;
    let _ = upstream.shutdown().await;
}

/// After the client half-closed: keep relaying the server's answer until it ends.
async fn continue_until_upstream_done<U, C>(upstream: &mut U, client: &mut C, filter: &mut Filter, http_aware: bool)
where
    U: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    while let Ok(n) = upstream.read_buf(&mut buf).await {
        if n == 0 {
            break;
        }
        let data = buf.split();
        let outs = if http_aware { filter.server_bytes(&data) } else { vec![Out::ToClient(data.freeze())] };
        for o in outs {
            if let Out::ToClient(b) = o
                && client.write_all(&b).await.is_err()
            {
                return;
            }
        }
    }
    if let Some(rest) = filter.finish() {
        let _ = client.write_all(&rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the filter passed on, one direction.
    fn passed(outs: &[Out], to_server: bool) -> Vec<u8> {
        outs.iter()
            .flat_map(|o| match o {
                Out::ToServer(b) if to_server => b.to_vec(),
                Out::ToClient(b) if !to_server => b.to_vec(),
                Out::Refuse(_) => panic!("refused"),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn requests_pass_unchanged_in_any_pieces() {
        let input = b"POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /poll/a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stats HTTP/1.1\r\nHost: x\r\n\r\n";
        for size in [1, 2, 5, input.len()] {
            let mut filter = Filter::new(true, true);
            let mut all = Vec::new();
            for piece in input.chunks(size) {
                all.extend(passed(&filter.client_bytes(piece), true));
            }
            assert_eq!(all, input, "size {size}");
            // The HEAD request's answer has no body: the next response follows at once.
            let answers = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
            assert_eq!(passed(&filter.server_bytes(answers), false), answers);
        }
    }

    #[test]
    fn websocket_upgrade_is_refused_when_blocking() {
        let up = b"GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let outs = Filter::new(true, false).client_bytes(up);
        assert!(matches!(&outs[..], [Out::Refuse(b)] if b.starts_with(b"HTTP/1.1 403")));
        let outs = Filter::new(false, true).client_bytes(up);
        assert_eq!(passed(&outs, true), up);
        // The same test as the server's handshake: token lists, any case. Each of these
        // is an upgrade the server would accept, so each must be refused.
        for (upgrade, connection) in
            [("h2c, websocket", "Upgrade"), ("WebSocket", "Upgrade"), ("websocket", "keep-alive, Upgrade")]
        {
            let req = format!(
                "GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: {upgrade}\r\nConnection: {connection}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            let outs = Filter::new(true, false).client_bytes(req.as_bytes());
            assert!(matches!(&outs[..], [Out::Refuse(_)]), "Upgrade: {upgrade} / Connection: {connection}");
        }
    }

    #[test]
    fn after_a_101_both_directions_pass_unread() {
        let mut filter = Filter::new(false, true);
        let up = b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(passed(&filter.client_bytes(up), true), up);
        assert!(filter.client_bytes(b"\x81\x80abcd").is_empty(), "held until the answer");
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
        let outs = filter.server_bytes(answer);
        assert_eq!(outs.len(), 2, "one write each way: {outs:?}");
        assert_eq!(passed(&outs, false), answer, "the 101 and the frame after it, unheld");
        assert_eq!(passed(&outs, true), b"\x81\x80abcd", "the frame held behind the request goes on");
        assert_eq!(passed(&filter.server_bytes(b"\x88\x00"), false), b"\x88\x00");
    }

    #[test]
    fn buffering_holds_a_stream_until_it_ends() {
        let mut filter = Filter::new(false, true);
        filter.client_bytes(b"GET /sse/a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(filter.server_bytes(head).is_empty(), "nothing passes while the stream is open");
        assert!(filter.server_bytes(b"d\r\nretry: 3000\n\n\r\n").is_empty());
        let all = passed(&filter.server_bytes(b"0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), false);
        assert!(
            all.starts_with(head) && all.ends_with(b"204 No Content\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&all)
        );
    }

    #[test]
    fn buffering_passes_complete_answers_and_heads() {
        let mut filter = Filter::new(false, true);
        filter.client_bytes(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let mut all = Vec::new();
        for piece in input.chunks(3) {
            all.extend(passed(&filter.server_bytes(piece), false));
        }
        assert_eq!(all, input, "a HEAD answer has no body; the second is released when complete");
    }

    #[test]
    fn a_response_read_until_close_is_released_at_the_close() {
        let mut filter = Filter::new(false, true);
        filter.client_bytes(b"GET / HTTP/1.0\r\n\r\n");
        assert!(filter.server_bytes(b"HTTP/1.0 200 OK\r\n\r\nsome").is_empty());
        assert!(filter.server_bytes(b" more").is_empty());
        assert_eq!(&filter.finish().unwrap()[..], b"HTTP/1.0 200 OK\r\n\r\nsome more");
    }
}
