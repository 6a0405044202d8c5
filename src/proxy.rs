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
//! Otherwise it forwards bytes unchanged, both ways. The HTTP-reading parts are pure
//! ([`RequestSide`], [`ResponseSide`]); the loop around them only moves bytes and time.

use std::collections::VecDeque;
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
use crate::proto::http::{
    BodyKind, ChunkedDecoder, HeadLimits, HttpError, Piece, ResponseBody, parse_head, parse_response_head,
};
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

/// What to do with bytes a side has read.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// Pass these bytes on to the other end.
    Forward(Bytes),
    /// Answer the client with these bytes ourselves, and close.
    Refuse(Bytes),
}

/// Where a side stands in its stream of HTTP messages.
#[derive(Debug)]
enum Framing {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    /// After an upgrade, or on anything unreadable: bytes pass unread.
    Passthrough,
}

/// Steps over a body framed as `framing` at the front of `buf`; returns how many bytes
/// of it are there, and whether the body is complete.
fn body_progress(framing: &mut Framing, buf: &[u8]) -> Result<(usize, bool), HttpError> {
    match framing {
        Framing::Length(left) => {
            let n = (*left as usize).min(buf.len());
            *left -= n as u64;
            Ok((n, *left == 0))
        }
        Framing::Chunked(dec) => {
            let mut used = 0;
            while used < buf.len() {
                let (n, piece) = dec.step(&buf[used..])?;
                used += n;
                if piece == Piece::End {
                    return Ok((used, true));
                }
            }
            Ok((used, false))
        }
        Framing::UntilClose | Framing::Passthrough => Ok((buf.len(), false)),
        Framing::Head => Ok((0, true)),
    }
}

/// Client to server: finds each request, refuses WebSocket upgrades when asked, and
/// records which requests were HEAD (their responses have no body).
pub struct RequestSide {
    buf: BytesMut,
    framing: Framing,
    block_websocket: bool,
}

impl RequestSide {
    pub fn new(block_websocket: bool) -> Self {
        RequestSide { buf: BytesMut::new(), framing: Framing::Head, block_websocket }
    }

    pub fn feed(&mut self, data: &[u8], head_requests: &mut VecDeque<bool>) -> Vec<Out> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.is_empty() {
                break;
            }
            if let Framing::Head = self.framing {
                match parse_head(&mut self.buf, &LIMITS) {
                    Ok(None) => break,
                    Ok(Some(head)) => {
                        let upgrade = head.has_token("connection", "upgrade") && head.header("upgrade").is_some();
                        if self.block_websocket && head.is_websocket_upgrade() {
                            out.push(Out::Refuse(Bytes::from_static(BLOCKED)));
                            self.framing = Framing::Passthrough;
                            self.buf.clear();
                            return out;
                        }
                        head_requests.push_back(head.method() == "HEAD");
                        out.push(Out::Forward(head.raw().clone()));
                        self.framing = match head.body {
                            _ if upgrade => Framing::Passthrough,
                            BodyKind::None => Framing::Head,
                            BodyKind::Length(n) => Framing::Length(n),
                            BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new()),
                        };
                    }
                    Err(_) => self.framing = Framing::Passthrough, // the server will refuse it
                }
                continue;
            }
            match body_progress(&mut self.framing, &self.buf) {
                Ok((n, complete)) => {
                    out.push(Out::Forward(self.buf.split_to(n).freeze()));
                    if complete {
                        self.framing = Framing::Head;
                    } else if self.buf.is_empty() || n == 0 {
                        break;
                    }
                }
                Err(_) => self.framing = Framing::Passthrough,
            }
        }
        if let (Framing::Passthrough, false) = (&self.framing, self.buf.is_empty()) {
            out.push(Out::Forward(self.buf.split().freeze()));
        }
        out
    }
}

/// What a proxy that refuses WebSocket answers.
const BLOCKED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\nWebSocket upgrades blocked by proxy.\n";

/// Server to client: with buffering on, holds each response until it is complete.
pub struct ResponseSide {
    buf: BytesMut,
    framing: Framing,
    /// Bytes at the front of `buf` that belong to the response being held.
    held: usize,
    buffering: bool,
}

impl ResponseSide {
    pub fn new(buffering: bool) -> Self {
        ResponseSide { buf: BytesMut::new(), framing: Framing::Head, held: 0, buffering }
    }

    pub fn feed(&mut self, data: &[u8], head_requests: &mut VecDeque<bool>) -> Vec<Out> {
        if !self.buffering || matches!(self.framing, Framing::Passthrough) {
            return vec![Out::Forward(Bytes::copy_from_slice(data))];
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            let rest = &self.buf[self.held..];
            if let Framing::Head = self.framing {
                let mut view = BytesMut::from(rest);
                match parse_response_head(&mut view, LIMITS.max_header) {
                    Ok(None) => break,
                    Ok(Some(head)) => {
                        self.held += head.raw().len();
                        let interim = head.status < 200 && head.status != 101;
                        let head_request = if interim { false } else { head_requests.pop_front().unwrap_or(false) };
                        self.framing = if head.status == 101 {
                            Framing::Passthrough
                        } else {
                            match head.body(head_request) {
                                Ok(ResponseBody::None) | Ok(ResponseBody::Length(0)) => Framing::Head,
                                Ok(ResponseBody::Length(n)) => Framing::Length(n),
                                Ok(ResponseBody::Chunked) => Framing::Chunked(ChunkedDecoder::new()),
                                Ok(ResponseBody::UntilClose) | Err(_) => Framing::UntilClose,
                            }
                        };
                        if matches!(self.framing, Framing::Head | Framing::Passthrough) {
                            out.push(self.release());
                        }
                        if matches!(self.framing, Framing::Passthrough) {
                            out.push(Out::Forward(self.buf.split().freeze()));
                            break;
                        }
                    }
                    Err(_) => {
                        self.framing = Framing::Passthrough;
                        out.push(Out::Forward(self.buf.split().freeze()));
                        break;
                    }
                }
                continue;
            }
            match body_progress(&mut self.framing, rest) {
                Ok((n, complete)) => {
                    self.held += n;
                    if complete {
                        self.framing = Framing::Head;
                        out.push(self.release());
                    } else {
                        break; // held: a streamed response waits here until it ends
                    }
                }
                Err(_) => {
                    self.framing = Framing::Passthrough;
                    out.push(Out::Forward(self.buf.split().freeze()));
                    break;
                }
            }
        }
        out.retain(|o| !matches!(o, Out::Forward(b) if b.is_empty()));
        out
    }

    fn release(&mut self) -> Out {
        let n = std::mem::take(&mut self.held);
        Out::Forward(self.buf.split_to(n).freeze())
    }

    /// The server closed: a response delimited by the close is complete now.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// Runs the proxy until `stop` completes.
pub async fn run(
    cfg: ProxyConfig,
    tracer: Option<Arc<Tracer>>,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let listener = TcpListener::bind(cfg.listen).await?;
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
    let mut requests = RequestSide::new(cfg.block_websocket);
    let mut responses = ResponseSide::new(cfg.buffer_responses);
    let mut heads = VecDeque::new();
    let http_aware = cfg.block_websocket || cfg.buffer_responses;
    let mut from_client = BytesMut::with_capacity(READ_BUFFER);
    let mut from_upstream = BytesMut::with_capacity(READ_BUFFER);
    let idle = cfg.idle_timeout.unwrap_or(Duration::from_secs(u32::MAX as u64));
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            r = client.read_buf(&mut from_client) => {
                let Ok(n) = r else { break };
                if n == 0 {
                    let _ = upstream.shutdown().await; // pass the half-close on
                    continue_until_upstream_done(&mut upstream, &mut client, &mut responses, &mut heads).await;
                    break;
                }
                deadline = Instant::now() + idle;
                let data = from_client.split();
                let outs = if http_aware { requests.feed(&data, &mut heads) } else { vec![Out::Forward(data.freeze())] };
                for o in outs {
                    match o {
                        Out::Forward(b) => if upstream.write_all(&b).await.is_err() { return },
                        Out::Refuse(b) => {
                            stats.refused_upgrades.fetch_add(1, Relaxed);
                            let _ = client.write_all(&b).await;
                            let _ = client.shutdown().await;
                            return;
                        }
                    }
                }
            }
            r = upstream.read_buf(&mut from_upstream) => {
                let Ok(n) = r else { break };
                if n == 0 {
                    if let Some(rest) = responses.finish() {
                        let _ = client.write_all(&rest).await;
                    }
                    break;
                }
                deadline = Instant::now() + idle;
                let data = from_upstream.split();
                for o in responses.feed(&data, &mut heads) {
                    if let Out::Forward(b) = o && client.write_all(&b).await.is_err() {
                        return;
                    }
                }
            }
            _ = sleep_until(deadline) => {
                stats.idle_cuts.fetch_add(1, Relaxed); // idle too long: cut both ways
                break;
            }
        }
    }
    let _ = client.shutdown().await;
    let _ = upstream.shutdown().await;
}

/// After the client half-closed: keep relaying the server's answer until it ends.
async fn continue_until_upstream_done<U, C>(
    upstream: &mut U,
    client: &mut C,
    responses: &mut ResponseSide,
    heads: &mut VecDeque<bool>,
) where
    U: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    while let Ok(n) = upstream.read_buf(&mut buf).await {
        if n == 0 {
            break;
        }
        for o in responses.feed(&buf.split(), heads) {
            if let Out::Forward(b) = o
                && client.write_all(&b).await.is_err()
            {
                return;
            }
        }
    }
    if let Some(rest) = responses.finish() {
        let _ = client.write_all(&rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(outs: &[Out]) -> Vec<u8> {
        outs.iter()
            .flat_map(|o| match o {
                Out::Forward(b) => b.to_vec(),
                Out::Refuse(_) => panic!("refused"),
            })
            .collect()
    }

    #[test]
    fn requests_pass_unchanged_in_any_pieces() {
        let input = b"POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /poll/a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stats HTTP/1.1\r\nHost: x\r\n\r\n";
        for size in [1, 2, 5, input.len()] {
            let mut side = RequestSide::new(true);
            let mut heads = VecDeque::new();
            let mut all = Vec::new();
            for piece in input.chunks(size) {
                all.extend(forwarded(&side.feed(piece, &mut heads)));
            }
            assert_eq!(all, input, "size {size}");
            assert_eq!(heads, VecDeque::from(vec![false, false, true]));
        }
    }

    #[test]
    fn websocket_upgrade_is_refused_when_blocking() {
        let up = b"GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut heads = VecDeque::new();
        let outs = RequestSide::new(true).feed(up, &mut heads);
        assert!(matches!(&outs[..], [Out::Refuse(b)] if b.starts_with(b"HTTP/1.1 403")));
        let outs = RequestSide::new(false).feed(up, &mut heads);
        assert_eq!(forwarded(&outs), up);
        // The same test as the server's handshake: token lists, any case. Each of these
        // is an upgrade the server would accept, so each must be refused.
        for (upgrade, connection) in
            [("h2c, websocket", "Upgrade"), ("WebSocket", "Upgrade"), ("websocket", "keep-alive, Upgrade")]
        {
            let req = format!(
                "GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: {upgrade}\r\nConnection: {connection}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            let outs = RequestSide::new(true).feed(req.as_bytes(), &mut heads);
            assert!(matches!(&outs[..], [Out::Refuse(_)]), "Upgrade: {upgrade} / Connection: {connection}");
        }
    }

    #[test]
    fn buffering_holds_a_stream_until_it_ends() {
        let mut side = ResponseSide::new(true);
        let mut heads = VecDeque::from(vec![false, false]);
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(side.feed(head, &mut heads).is_empty(), "nothing passes while the stream is open");
        assert!(side.feed(b"d\r\nretry: 3000\n\n\r\n", &mut heads).is_empty());
        let outs = side.feed(b"0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", &mut heads);
        let all = forwarded(&outs);
        assert!(
            all.starts_with(head) && all.ends_with(b"204 No Content\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&all)
        );
    }

    #[test]
    fn buffering_passes_complete_answers_and_heads() {
        let mut side = ResponseSide::new(true);
        let mut heads = VecDeque::from(vec![true, false]);
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let mut all = Vec::new();
        for piece in input.chunks(3) {
            all.extend(forwarded(&side.feed(piece, &mut heads)));
        }
        assert_eq!(all, input, "a HEAD answer has no body; the second is released when complete");
    }
}
