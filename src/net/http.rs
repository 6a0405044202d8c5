//! The HTTP/1.1 connection driver: the thin loop between a socket and the pure codecs.
//!
//! Read bytes into one reused buffer, step the request stream over them
//! (`proto::http::MessageStream`, the one reading of RFC 9112 that the client, the proxy
//! and the trace step too), route, answer, repeat. Every decision about bytes is made by
//! the codecs; this file decides only about time (timeouts, holding a long-poll) and
//! about the socket (when to close).
//!
//! Requests on one connection are served one at a time, in order, which is what makes
//! pipelining safe: a pipelined request waits in the buffer until its turn (RFC 9112
//! §9.3.2: responses go out in the order the requests came).
//!
//! `GET /sse/{channel}` and `GET /trace` are the requests that never finish: they are
//! handed to the stream drivers in `net::sse` and `net::trace` (the live byte trace), and
//! the connection closes when the stream ends.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::reclaim::Entry;
use super::timers::{sleep, sleep_until, timeout};
use super::{Shared, ws};
use crate::app::broker::BrokerError;
use crate::app::hub::{Snapshot, Subscription};
use crate::app::query_param;
use crate::app::routes::{self, Route, RouteError};
use crate::app::stats::Transport;
use crate::config::{COALESCE_MOST, LINGER_BYTES, LINGER_TIME, MAX_POLL_ANSWER};
use crate::proto::coalesce::Coalesce;
use crate::proto::http::response::Context;
use crate::proto::http::{BodyKind, Event, HeadLimits, HttpError, MessageStream, RequestHead, Response, Unit, Version};
use crate::proto::ws::deflate::ServerDeflateConfig;
use crate::proto::ws::{HandshakeOptions, server_accept};

/// Room reserved for a response's status line and headers, before its body.
const RESPONSE_HEAD_ROOM: usize = 256;
/// Largest write buffer a connection keeps between responses (a short-polling client
/// reuses it); a larger one, made for one large answer, is dropped after it.
const RESPONSE_KEEP: usize = 4 * 1024;

/// What happens to the connection after a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    KeepAlive,
    Close,
}

/// How one request ended: answered, or the start of a long-lived mode that
/// `Conn::run` runs outside the request's own (boxed) state.
enum Step {
    /// The client went away, or went quiet between requests: close without a word.
    Gone,
    Answered(Next),
    /// `GET /long-poll/{channel}` with nothing to answer yet: hold it.
    Hold {
        head: RequestHead,
        channel: String,
        after: Option<u64>,
        hold: Duration,
    },
    /// `GET /sse/{channel}`: the event stream.
    Stream {
        head: RequestHead,
        channel: String,
    },
    /// A WebSocket handshake answered `101`: the session to run (boxed: this enum
    /// stays small, and the session moves into its driver without a copy left behind).
    Upgraded(Box<ws::Upgraded>),
}

/// Why no request head could be read.
enum HeadError {
    /// The client closed, or went quiet between requests: close without a word.
    Gone,
    /// The header section did not finish within `--header-timeout`: `408`.
    Timeout,
    Http(HttpError),
}

/// Completes when the connection is told to make room (`reclaim`); never without an entry.
async fn reclaimed(heads: &Option<Entry>) {
    match heads {
        Some(heads) => heads.reclaimed().await,
        None => std::future::pending().await,
    }
}

/// What a held long poll waits for on its channel: each message; or, while it holds an
/// answer for `--coalesce`, only the channel's pressure signal (every
/// `hub::PRESSURE_EVERY` messages), so that it is not woken once per message.
async fn wait_on(rx: &mut Subscription, coalescing: bool) {
    if coalescing {
        rx.pressure().await;
    } else {
        let _ = rx.recv().await;
    }
}

/// Takes what the ring holds and counts the messages after `last` (the answer has those
/// up to it already), moving `last` on. The answer itself is read from the history.
fn newer_in_ring(rx: &mut Subscription, last: &mut u64) -> usize {
    let mut n = 0usize;
    loop {
        match rx.try_recv() {
            Ok(m) if m.id > *last => {
                *last = m.id;
                n += 1;
            }
            Ok(_) => {}
            Err(TryRecvError::Lagged(k)) => n = n.saturating_add(usize::try_from(k).unwrap_or(usize::MAX)),
            Err(TryRecvError::Empty) => return n,
            // The channel is gone: answer with what there is.
            Err(TryRecvError::Closed) => return COALESCE_MOST,
        }
    }
}

/// How the wait of a held long poll ended (`Conn::hold`).
enum Woken {
    /// The channel sent a message (while coalescing: its pressure signal came), or the
    /// receiver lagged behind, or the channel closed: the history has the answer.
    Message,
    Expired,
    ShuttingDown,
}

/// One connection: the socket, its read buffer, its write buffer, and what every
/// connection shares. The fields are visible to the sibling drivers (`net::sse`), which
/// take over a connection once its request is routed to them.
pub struct Conn<S> {
    pub(super) io: S,
    pub(super) buf: BytesMut,
    pub(super) out: BytesMut,
    pub(super) shared: Arc<Shared>,
    /// The requests on this connection: where each one and its body ends.
    requests: MessageStream,
    /// `--coalesce` for the long polls on this connection: at most one answer with
    /// messages per interval (`long_poll`).
    coalesce: Coalesce,
    /// Its place among the connections that may wait for a request head (`reclaim`),
    /// with `--reclaim-waiting`: given up when it becomes an event stream or a WebSocket.
    heads: Option<Entry>,
}

/// Serves one connection until it closes.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(io: S, shared: Arc<Shared>) {
    Conn::new(io, shared).run().await;
}

impl<S> Conn<S> {
    /// A fresh connection: empty buffers, no request read yet.
    pub(super) fn new(io: S, shared: Arc<Shared>) -> Self {
        let c = &shared.config;
        let limits = HeadLimits { max_header: c.max_header, max_target: c.max_target, max_body: c.max_message };
        Conn {
            io,
            // Both start empty and hold memory only while a request or an answer is
            // in them: reads go through the thread's scratch buffer (`super::read_lean`),
            // so a connection waiting for its next request holds no buffer.
            buf: BytesMut::new(),
            out: BytesMut::new(),
            requests: MessageStream::requests(limits),
            coalesce: Coalesce::new(c.coalesce, COALESCE_MOST),
            heads: c.reclaim_waiting.then(|| shared.heads.enter()),
            shared,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Serves requests until the connection ends.
    ///
    /// Each request is read and answered in a boxed future of its own (`exchange`), freed
    /// when it returns. A request that goes on for long (a held long poll, an event
    /// stream, a WebSocket) comes back out of it as a [`Step`] and runs here, so that the
    /// connection's task holds the state of the mode it is in, and not also the room
    /// that reading and answering a request needs: what an idle connection costs is
    /// little more than its task and its socket.
    async fn run(&mut self) {
        let mut first = true;
        loop {
            let step = Box::pin(self.exchange(first)).await;
            first = false;
            // Each long-lived mode runs boxed too: the task holds a pointer, and the box
            // exactly the state of the mode the connection is in.
            let next = match step {
                Step::Gone => return,
                Step::Answered(next) => next,
                Step::Hold { head, channel, after, hold } => {
                    Box::pin(self.long_poll(&head, &channel, after, hold)).await
                }
                Step::Stream { head, channel } => {
                    self.heads = None; // never waits for a request again
                    Box::pin(self.sse(head, &channel)).await
                }
                Step::Upgraded(upgraded) => {
                    // Out of its box now: the box is let go of here, not when the
                    // connection ends (a binding moved out of lives to the end of its
                    // scope, and this one's would span the whole WebSocket).
                    let upgraded = {
                        let boxed = upgraded;
                        *boxed
                    };
                    self.heads = None;
                    // Whatever was read past the request head is the start of the frame
                    // stream; the HTTP buffers go with it (the session reads into its own).
                    let leftover = std::mem::take(&mut self.buf);
                    self.out = BytesMut::new();
                    let shared = self.shared.clone();
                    let _open = shared.stats.hold_taken_over(Transport::WebSocket);
                    Box::pin(upgraded.run(&mut self.io, leftover)).await;
                    Next::Close
                }
            };
            if next == Next::Close {
                return self.close().await;
            }
        }
    }

    /// Reads one request and answers it, or says which long-lived mode it starts.
    async fn exchange(&mut self, first: bool) -> Step {
        match self.read_head(first).await {
            Ok(head) => self.handle(head).await,
            Err(HeadError::Gone) => Step::Gone,
            Err(HeadError::Timeout) => {
                let r = Response::text(408, "the request's header section did not arrive in time\n");
                self.answer_closing(r, Version::Http11, Transport::Other).await;
                Step::Answered(Next::Close)
            }
            Err(HeadError::Http(e)) => {
                self.refuse(e, Version::Http11, Transport::Other).await;
                Step::Answered(Next::Close)
            }
        }
    }

    /// Reads until a whole request head is in the buffer. Between requests an idle
    /// connection may wait `--keep-alive-timeout`; once a request has begun (or on a
    /// fresh connection) its head must be complete within `--header-timeout`.
    async fn read_head(&mut self, first: bool) -> Result<RequestHead, HeadError> {
        if let Some(heads) = &self.heads {
            heads.waiting();
        }
        let head = self.wait_for_head(first).await;
        if let Some(heads) = &self.heads {
            heads.not_waiting();
        }
        head
    }

    async fn wait_for_head(&mut self, first: bool) -> Result<RequestHead, HeadError> {
        let config = &self.shared.config;
        let mut shutdown = self.shared.watch_shutdown();
        let mut header_deadline = (first || !self.buf.is_empty()).then(|| Instant::now() + config.header_timeout);
        let idle_deadline = Instant::now() + config.keep_alive_timeout;
        loop {
            match self.requests.read(&mut self.buf).map_err(HeadError::Http)? {
                Some(Unit { event: Event::Request(head), .. }) => return Ok(head),
                Some(_) => continue, // empty lines before a request line
                None => {}
            }
            let deadline = header_deadline.unwrap_or(idle_deadline);
            tokio::select! {
                r = super::read_lean(&mut self.io, &mut self.buf) => match r {
                    Ok(0) | Err(_) => return Err(HeadError::Gone),
                    Ok(_) => {
                        header_deadline.get_or_insert_with(|| Instant::now() + self.shared.config.header_timeout);
                    }
                },
                _ = sleep_until(deadline) => {
                    if header_deadline.is_some() {
                        return Err(HeadError::Timeout);
                    }
                    crate::trace::closing_because("idle: no request within --keep-alive-timeout");
                    return Err(HeadError::Gone);
                }
                // Shutting down: a connection with no request begun simply closes (a fresh
                // one too: a browser's preconnect must not hold up the shutdown).
                _ = shutdown.wait_for(|stop| *stop), if self.buf.is_empty() => return Err(HeadError::Gone),
                // The server is at --max-connections and this one has waited longest:
                // its head did not come in the time the server could give it (`reclaim`).
                () = reclaimed(&self.heads) => {
                    crate::trace::closing_because("at --max-connections: waited longest for a request head");
                    return Err(if self.buf.is_empty() { HeadError::Gone } else { HeadError::Timeout });
                }
            }
        }
    }

    /// Routes one request and answers it.
    async fn handle(&mut self, head: RequestHead) -> Step {
        let route = routes::route(head.method(), head.path());
        let transport = route.as_ref().map_or(Transport::Other, Route::transport);
        let shared = self.shared.clone();
        let stats = &shared.stats;
        stats.of(transport).requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats.read(transport, head.raw().len());

        let body = match self.read_body(&head, transport).await {
            Ok(body) => body,
            Err(None) => return Step::Answered(Next::Close),
            Err(Some(e)) => {
                self.refuse(e, head.version, transport).await;
                return Step::Answered(Next::Close);
            }
        };

        let response = match route {
            Err(RouteError::NotFound) => Response::text(404, format!("no such endpoint: {}\n", head.path())),
            Err(RouteError::MethodNotAllowed(allow)) => {
                Response::text(405, format!("{} is not allowed here; use {allow}\n", head.method()))
                    .header("Allow", allow)
            }
            Err(RouteError::BadChannel) => Response::text(400, "a channel name is 1 to 64 of A-Z a-z 0-9 _ . -\n"),
            Ok(Route::Stats) => Response::json(200, stats.to_json()),
            Ok(Route::Dashboard) => dashboard(),
            Ok(Route::Negotiate(channel)) => match crate::app::negotiate(&shared, &channel).await {
                // Each answer carries a fresh session id: never reuse a cached one.
                Ok(body) => Response::json(200, body).header("Cache-Control", "no-store"),
                Err(e) => unavailable(&e),
            },
            Ok(Route::Publish(channel)) => match std::str::from_utf8(&body) {
                Ok(_) => match shared.broker.publish(&channel, body).await {
                    Ok(msg) => Response::json(200, format!("{{\"id\":{}}}", msg.id)),
                    Err(e) => unavailable(&e),
                },
                Err(_) => Response::text(400, "a message is UTF-8 text\n"),
            },
            Ok(Route::Poll(channel)) => match cursor(&head) {
                Ok(after) => match shared.broker.since(&channel, after).await {
                    Ok(snap) => {
                        stats.delivered(transport, snap.messages.len());
                        Response::json(200, poll_body(&snap))
                    }
                    Err(e) => unavailable(&e),
                },
                Err(r) => r,
            },
            Ok(Route::LongPoll(channel)) => match (cursor(&head), self.hold_time(&head)) {
                (Ok(after), Ok(hold)) => return Step::Hold { head, channel, after, hold },
                (Err(r), _) | (_, Err(r)) => r,
            },
            // The stream takes the head by value so that it can let go of the read buffer
            // the head's bytes share, for as long as the stream lasts (see `net::sse`).
            Ok(Route::Sse(channel)) => return Step::Stream { head, channel },
            Ok(Route::WebSocket(name)) => {
                let endpoint = cursor(&head).map(|after| ws::Endpoint::Channel { name, after });
                return self.handshake(&head, endpoint).await;
            }
            Ok(Route::Echo) => return self.handshake(&head, Ok(ws::Endpoint::Echo)).await,
            // Boxed: one watcher at a time, rarely; the other connections' tasks are not
            // sized for it.
            Ok(Route::Trace) => return Step::Answered(Box::pin(self.trace(head)).await),
        };
        Step::Answered(self.respond(&head, response, transport).await)
    }

    /// Reads the request's body, if it has one. `Err(None)`: the connection is gone or
    /// too slow, close; `Err(Some(e))`: answer `e` and close.
    async fn read_body(&mut self, head: &RequestHead, transport: Transport) -> Result<Bytes, Option<HttpError>> {
        // RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` waits for a 100
        // before sending the body (curl does, for bodies over 1 KiB). Send it.
        if head.body != BodyKind::None
            && head.version == Version::Http11
            && head.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
            && self.buf.is_empty()
        {
            const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
            self.io.write_all(CONTINUE).await.map_err(|_| None)?;
            self.shared.stats.wrote(transport, CONTINUE.len());
        }
        let max = self.shared.config.max_message;
        let mut body = BytesMut::new();
        // What this body holds, counted against what all bodies may hold together. The
        // hold borrows the budget, so a request with a body keeps its own handle on it.
        let budget = (head.body != BodyKind::None).then(|| self.shared.clone());
        let mut hold = budget.as_ref().map(|shared| shared.bodies.start());
        loop {
            match self.requests.read(&mut self.buf).map_err(Some)? {
                Some(Unit { event: Event::End, .. }) => return Ok(body.freeze()),
                Some(unit) => {
                    self.shared.stats.read(transport, unit.bytes.len());
                    if let Event::Data(_) = unit.event {
                        if body.len() + unit.bytes.len() > max {
                            return Err(Some(HttpError::PayloadTooLarge));
                        }
                        if hold.as_mut().is_some_and(|h| !h.grow(unit.bytes.len())) {
                            let r = Response::text(
                                503,
                                "the server holds too many request bodies in progress (--max-body-memory); try again\n",
                            )
                            .header("Retry-After", "1");
                            self.answer_closing(r, head.version, transport).await;
                            return Err(None);
                        }
                        body.extend_from_slice(&unit.bytes);
                    }
                    continue;
                }
                None => {}
            }
            // A body that stalls gets the header timeout per read: slow-body attacks
            // hold sockets the same way slow headers do.
            match timeout(self.shared.config.header_timeout, super::read_lean(&mut self.io, &mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Err(None),
                Err(_) => {
                    let r = Response::text(408, "the request body did not arrive in time\n");
                    self.answer_closing(r, head.version, transport).await;
                    return Err(None);
                }
            }
        }
    }

    /// `timeout=S` (seconds, default 30), capped at `--max-hold`.
    fn hold_time(&self, head: &RequestHead) -> Result<Duration, Response> {
        hold_time(query_param(head.query(), "timeout"), self.shared.config.max_hold)
    }

    /// Holds the request until a message after the cursor exists, the timeout passes
    /// (`204`), the client goes away, or the server shuts down. Waiting is a task parked
    /// on the channel's broadcast: no thread, no polling loop, and one publish wakes every
    /// held request on that channel at once.
    async fn long_poll(&mut self, head: &RequestHead, channel: &str, after: Option<u64>, hold: Duration) -> Next {
        let shared = self.shared.clone();
        let _held = shared.stats.hold(Transport::LongPoll);
        let (snap, mut rx) = match shared.broker.subscribe(channel, after).await {
            Ok(s) => s,
            Err(e) => return self.respond(head, unavailable(&e), Transport::LongPoll).await,
        };
        // Without a cursor the client starts at the live head: wait for what comes next.
        let cursor = after.unwrap_or(snap.next);
        let snap = if !snap.messages.is_empty() || snap.truncated {
            Some(snap)
        } else {
            // A held request keeps no buffer while it waits.
            self.release_buffers();
            let mut shutdown = shared.watch_shutdown();
            let expiry = sleep(hold);
            tokio::pin!(expiry);
            let woken = match self.hold(&mut rx, false, expiry, &mut shutdown).await {
                Ok(woken) => woken,
                Err(next) => return next,
            };
            match woken {
                Woken::Message => shared.broker.since(channel, Some(cursor)).await.ok(),
                Woken::Expired => None,
                // Answered now, with whatever there is (204 if nothing): held long-polls
                // must not keep a shutdown waiting.
                Woken::ShuttingDown => {
                    let snap = shared.broker.since(channel, Some(cursor)).await.ok();
                    snap.filter(|s| !s.messages.is_empty() || s.truncated)
                }
            }
        };
        let snap = match snap {
            Some(s) if !s.messages.is_empty() => match self.coalesced(channel, cursor, s, &mut rx).await {
                Ok(snap) => Some(snap),
                Err(next) => return next,
            },
            other => other,
        };
        let response = match snap {
            Some(snap) => {
                shared.stats.delivered(Transport::LongPoll, snap.messages.len());
                Response::json(200, poll_body(&snap))
            }
            None => Response::new(204),
        };
        self.respond(head, response, Transport::LongPoll).await
    }

    /// Waits while a long poll is held, for the channel's next message, `expiry`, or the
    /// server's shutdown. It reads the socket meanwhile, so that a client that gives up is
    /// noticed and its task and socket freed now, not when the timeout fires:
    /// `Err(Next::Close)`. The caller owns `expiry` and `shutdown`, so that waiting again
    /// registers nothing anew.
    async fn hold(
        &mut self,
        rx: &mut Subscription,
        coalescing: bool,
        mut expiry: Pin<&mut Sleep>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Woken, Next> {
        // Cap on bytes read ahead while holding (a pipelining client's next request).
        let read_cap = self.shared.config.max_header + self.shared.config.max_target;
        loop {
            tokio::select! {
                () = wait_on(rx, coalescing) => return Ok(Woken::Message),
                () = &mut expiry => return Ok(Woken::Expired),
                r = super::read_lean(&mut self.io, &mut self.buf), if self.buf.len() < read_cap => match r {
                    Ok(0) | Err(_) => return Err(Next::Close),
                    Ok(_) => {}
                },
                _ = shutdown.wait_for(|stop| *stop) => return Ok(Woken::ShuttingDown),
            }
        }
    }

    /// `--coalesce` on a long poll (`proto::coalesce`, as on WebSocket and SSE streams):
    /// an answer with messages goes at once if this connection's last one went at least
    /// an interval ago; otherwise it waits until an interval after the last one, and
    /// carries everything the channel sent meanwhile, so that a client polling a busy
    /// channel makes one request per interval instead of one per message. Meanwhile it is
    /// not woken by each message, only by the channel's pressure signal; it goes early once
    /// that shows `COALESCE_MOST` messages waiting, or when the server shuts down.
    /// `Err(Next::Close)`: the client went away meanwhile.
    async fn coalesced(
        &mut self,
        channel: &str,
        cursor: u64,
        snap: Snapshot,
        rx: &mut Subscription,
    ) -> Result<Snapshot, Next> {
        let mut waiting = snap.messages.len();
        if self.coalesce.on_queued(waiting, super::now) {
            return Ok(snap);
        }
        // The last message the answer has so far: what the ring holds up to it is counted.
        let mut last = snap.next;
        let shared = self.shared.clone();
        let due = self.coalesce.deadline().map_or_else(Instant::now, Instant::from_std);
        let flush = sleep_until(due);
        tokio::pin!(flush);
        let mut shutdown = shared.watch_shutdown();
        loop {
            match self.hold(rx, true, flush.as_mut(), &mut shutdown).await? {
                Woken::Expired => {
                    self.coalesce.fire(super::now());
                    break;
                }
                // Many messages have come (the hold sleeps through each one): count them.
                Woken::Message => {
                    waiting = waiting.saturating_add(newer_in_ring(rx, &mut last));
                    if self.coalesce.on_queued(waiting, super::now) {
                        break;
                    }
                }
                Woken::ShuttingDown => {
                    self.coalesce.clear();
                    break;
                }
            }
        }
        // Everything after the cursor now; what was there before if the broker fails.
        Ok(shared.broker.since(channel, Some(cursor)).await.unwrap_or(snap))
    }

    /// `GET /ws/{channel}` and `GET /echo`: the opening handshake (RFC 6455 §4.2) on
    /// this HTTP connection, then the connection belongs to the WebSocket driver. Answers it,
    /// and on `101` returns the session to run.
    ///
    /// The decision is the codec's (`proto::ws::handshake::server_accept`), made from
    /// the method and the header lines as received; this only writes the answer. A
    /// refusal (`400`; `426` with `Sec-WebSocket-Version: 13`; `403` for an Origin
    /// outside `--allowed-origin`) closes the connection: what the client sends next
    /// may already be frames, not a request. A plain GET without `Upgrade: websocket`
    /// is such a refusal too: `400`, "missing Upgrade: websocket" (§4.2.1 item 3; the
    /// codec keeps `426` for a wrong or missing version, which is what §4.4 ties it to).
    async fn handshake(&mut self, head: &RequestHead, endpoint: Result<ws::Endpoint, Response>) -> Step {
        let shared = self.shared.clone();
        let config = &shared.config;
        let headers: Vec<(&str, &[u8])> = head.headers().collect();
        let options = HandshakeOptions {
            allowed_origins: config.allowed_origins.clone(),
            subprotocols: config.subprotocols.clone(),
            deflate: ServerDeflateConfig {
                enabled: config.deflate,
                // On a channel every subscriber gets the same messages: each one is
                // compressed alone, once, and the frame is shared (net::ws).
                force_server_no_context_takeover: matches!(endpoint, Ok(ws::Endpoint::Channel { .. })),
            },
        };
        // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
        let accepted = match (head.version, endpoint) {
            (_, Err(bad_query)) => Err(bad_query),
            (Version::Http11, Ok(endpoint)) => server_accept(head.method(), &headers, &options)
                .map_err(|e| {
                    let mut r = Response::text(e.status(), format!("{}\n", e.reason()));
                    for (name, value) in e.extra_headers() {
                        r = r.header(name, *value);
                    }
                    r
                })
                .map(|a| (a, endpoint)),
            (Version::Http10, Ok(_)) => Err(Response::text(400, "a WebSocket handshake needs HTTP/1.1\n")),
        };
        let (response, upgraded) = match accepted {
            Ok((a, endpoint)) => {
                let mut r = Response::new(101)
                    .header("Upgrade", "websocket")
                    .header("Connection", "Upgrade")
                    .header("Sec-WebSocket-Accept", a.accept);
                if let Some(protocol) = a.protocol {
                    r = r.header("Sec-WebSocket-Protocol", protocol);
                }
                if let Some(d) = &a.deflate {
                    r = r.header("Sec-WebSocket-Extensions", d.response());
                }
                match ws::Upgraded::new(shared.clone(), endpoint, a.deflate).await {
                    Ok(upgraded) => (r, Some(upgraded)),
                    Err(e) => (unavailable(&e), None),
                }
            }
            Err(r) => (r, None),
        };
        let keep_alive = upgraded.is_some();
        // Counted as open before the client can see its 101, so that `/stats` never
        // shows fewer connections than the clients already hold.
        let open = upgraded.is_some().then(|| shared.stats.hold(Transport::WebSocket));
        let head_request = head.method() == "HEAD";
        if !self.write_response(&response, head.version, head_request, keep_alive, Transport::WebSocket).await {
            return Step::Answered(Next::Close);
        }
        let Some(upgraded) = upgraded else { return Step::Answered(Next::Close) };
        // `Conn::run` takes the count over (`hold_taken_over`), without a gap.
        std::mem::forget(open);
        Step::Upgraded(Box::new(upgraded))
    }

    /// Writes a response to `head`; says whether the connection goes on.
    pub(super) async fn respond(&mut self, head: &RequestHead, response: Response, transport: Transport) -> Next {
        // A request that asked to upgrade (say `Upgrade: h2c`) and got an ordinary answer:
        // what the client sends next is HTTP again (RFC 9110 §7.8).
        self.requests.answered(response.status);
        let keep_alive = head.keep_alive && !self.shared.is_stopping();
        let head_request = head.method() == "HEAD";
        if !self.write_response(&response, head.version, head_request, keep_alive, transport).await {
            return Next::Close;
        }
        if keep_alive { Next::KeepAlive } else { Next::Close }
    }

    /// Encodes `response` into the connection's reused output buffer, writes it, and
    /// counts the bytes for `/stats`. Returns whether the write succeeded.
    async fn write_response(
        &mut self,
        response: &Response,
        version: Version,
        head_request: bool,
        keep_alive: bool,
        transport: Transport,
    ) -> bool {
        self.out.clear();
        self.out.reserve(RESPONSE_HEAD_ROOM + response.body.len());
        super::date::with_now(|date| {
            let ctx = Context { version, head_request, keep_alive, date };
            response.encode(&ctx, &mut self.out);
        });
        if self.io.write_all(&self.out).await.is_err() {
            return false;
        }
        self.shared.stats.wrote(transport, self.out.len());
        if self.out.capacity() > RESPONSE_KEEP {
            // A large answer's buffer is not kept for the small ones that follow.
            self.out = BytesMut::new();
        }
        true
    }

    /// Lets go of the read and write buffers while the connection waits (a held long
    /// poll): what a waiting connection costs is its task and its socket. Bytes read
    /// ahead (a pipelined request) are kept.
    fn release_buffers(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        self.out = BytesMut::new();
    }

    /// Answers a request that cannot be served, saying `Connection: close`; the caller
    /// then closes (once: `run` does it when `handle` says `Next::Close`).
    async fn refuse(&mut self, e: HttpError, version: Version, transport: Transport) {
        let r = Response::text(e.status(), format!("{}\n", e.explain()));
        self.answer_closing(r, version, transport).await;
    }

    /// Writes a final response with `Connection: close`; does not close.
    async fn answer_closing(&mut self, response: Response, version: Version, transport: Transport) {
        self.write_response(&response, version, false, false, transport).await;
    }

    /// Closes gracefully: send FIN, then read and discard what the client still sends
    /// for a short while. Closing with unread bytes would send a TCP reset, which can
    /// destroy our last response before the client reads it (RFC 9112 §9.6).
    async fn close(&mut self) {
        let _ = self.io.flush().await;
        let _ = self.io.shutdown().await;
        lingering_drain(&mut self.io).await;
    }
}

/// Reads and discards until EOF, `LINGER_BYTES`, or `LINGER_TIME`.
pub async fn lingering_drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut total = 0;
    let drain = std::future::poll_fn(|cx| {
        while total < LINGER_BYTES {
            // The sink lives on the stack during each poll, not in every connection's
            // state (a connection's task is sized for the largest state it can be in).
            let mut sink = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
            let mut read = tokio::io::ReadBuf::uninit(&mut sink);
            match std::task::ready!(std::pin::Pin::new(&mut *io).poll_read(cx, &mut read)) {
                Ok(()) if !read.filled().is_empty() => total += read.filled().len(),
                _ => break,
            }
        }
        std::task::Poll::Ready(())
    });
    let _ = timeout(LINGER_TIME, drain).await;
}

/// `GET /`: the dashboard page, served from the bytes compiled into the binary (a
/// static `Bytes`: no copy per request).
fn dashboard() -> Response {
    Response::with_body(200, "text/html; charset=utf-8", Bytes::from_static(crate::app::dashboard::HTML.as_bytes()))
        // A new build may change the page: the browser revalidates instead of keeping an
        // old copy (no validator is sent, so it simply fetches again).
        .header("Cache-Control", "no-cache")
        // The page connects only to this server and loads nothing from anywhere else
        // (no CDN: it works offline). The policy makes that a promise the browser keeps.
        .header("Content-Security-Policy", crate::app::dashboard::CONTENT_SECURITY_POLICY)
        .header("X-Content-Type-Options", "nosniff")
}

/// The broker cannot serve this now (every channel slot in use, `--max-channels`; or
/// the Redis of `--broker redis://…` unreachable): `503` with the reason, try again later.
pub fn unavailable(e: &BrokerError) -> Response {
    Response::text(503, format!("{e}\n")).header("Retry-After", "1")
}

/// A long poll's hold: `timeout` (seconds, a number, default 30), at most `max`.
fn hold_time(timeout: Option<&str>, max: Duration) -> Result<Duration, Response> {
    match timeout {
        None => Ok(crate::config::DEFAULT_LONG_POLL_TIMEOUT.min(max)),
        // Whole seconds, as clients mostly send them, without a float's parse (a few
        // hundred instructions on every long poll): up to 9 digits, exact either way.
        Some(v) if (1..=9).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Duration::from_secs(v.parse().expect("1 to 9 digits")).min(max))
        }
        Some(v) => match v.parse::<f64>() {
            // Compared before converting: a huge value (`1e30`) does not fit a
            // Duration, and converting it would panic.
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(Duration::try_from_secs_f64(s).unwrap_or(max).min(max)),
            _ => Err(Response::text(400, "timeout is a number of seconds\n")),
        },
    }
}

/// `after=ID`: absent means the live head; present must be an unsigned integer.
pub(super) fn cursor(head: &RequestHead) -> Result<Option<u64>, Response> {
    match query_param(head.query(), "after") {
        None => Ok(None),
        Some(v) => {
            v.parse::<u64>().map(Some).map_err(|_| Response::text(400, "after is a message id: an unsigned integer\n"))
        }
    }
}

/// `{"messages":[…],"next":N}`, with `"truncated":true` first when history could not
/// cover the cursor. Each message's JSON was encoded once and is shared.
///
/// An answer holds at most [`MAX_POLL_ANSWER`] bytes of messages (always at least one):
/// a client far behind gets the oldest part, and `next` points after the last one it got,
/// so its next poll continues from there. Without the bound, one poll at the defaults could
/// make the server build an answer of gigabytes (a history of a thousand 1 MiB messages,
/// each up to six times longer escaped as JSON).
pub fn poll_body(snap: &Snapshot) -> Bytes {
    let mut size = 0;
    let included = snap
        .messages
        .iter()
        .take_while(|m| {
            let first = size == 0;
            size += m.json().len() + 1;
            first || size <= MAX_POLL_ANSWER
        })
        .count();
    let messages = &snap.messages[..included];
    let next = if included < snap.messages.len() { messages[included - 1].id } else { snap.next };
    let start: &[u8] = if snap.truncated { b"{\"truncated\":true,\"messages\":[" } else { b"{\"messages\":[" };
    const NEXT: &[u8] = b"],\"next\":";
    let commas = messages.len().saturating_sub(1);
    let len = start.len()
        + messages.iter().map(|m| m.json().len()).sum::<usize>()
        + commas
        + NEXT.len()
        + crate::proto::decimal_len(next)
        + 1;
    // Sized exactly, so that `freeze` hands the buffer over whole: with room to spare, it
    // allocates a header to keep the capacity.
    let mut out = BytesMut::with_capacity(len);
    out.extend_from_slice(start);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(m.json());
    }
    out.extend_from_slice(NEXT);
    crate::proto::put_decimal(&mut out, next);
    out.extend_from_slice(b"}");
    debug_assert_eq!(out.len(), len);
    out.freeze()
}

#[cfg(test)]
mod tests {
    //! Long polls with `--coalesce`, under paused time (tokio's test-util): the clock
    //! stands still while any task can run and jumps to the next timer when all wait, so
    //! each answer's moment is checked exactly, over an in-memory pipe.

    use tokio::io::{AsyncReadExt, DuplexStream, duplex};
    use tokio::time::sleep;

    use super::*;
    use crate::config::Config;

    #[test]
    fn a_long_polls_hold_is_the_same_whether_its_seconds_are_whole_or_not() {
        let max = Duration::from_secs(120);
        let hold = |v: &str| hold_time(Some(v), max).map_err(|r| r.status);
        for (v, want) in [
            ("0", Duration::ZERO),
            ("30", Duration::from_secs(30)),
            ("030", Duration::from_secs(30)),
            ("120", max),
            ("999999999", max),
            ("9999999999", max),
            ("0.5", Duration::from_millis(500)),
            ("30.0", Duration::from_secs(30)),
            ("1e30", max),
            ("+5", Duration::from_secs(5)),
        ] {
            assert_eq!(hold(v), Ok(want), "timeout={v}");
            if v.bytes().all(|b| b.is_ascii_digit()) {
                let as_float = Duration::try_from_secs_f64(v.parse::<f64>().unwrap()).unwrap_or(max).min(max);
                assert_eq!(as_float, want, "timeout={v} read as a float");
            }
        }
        for v in ["", "-1", "abc", "NaN", "inf", "1 "] {
            assert_eq!(hold(v), Err(400), "timeout={v:?}");
        }
        assert_eq!(hold_time(None, max).map_err(|r| r.status), Ok(Duration::from_secs(30)));
    }

    const EVERY: Duration = Duration::from_millis(20);
    const MS: Duration = Duration::from_millis(1);

    /// A keep-alive connection to a server with `coalesce`; the client's end and the state.
    fn connect(coalesce: Duration) -> (DuplexStream, Arc<Shared>) {
        let shared = Arc::new(Shared::new(Config { coalesce, ..Config::default() }, None));
        let (client, server) = duplex(64 * 1024);
        tokio::spawn(serve(server, shared.clone()));
        (client, shared)
    }

    /// Sends a long poll for what follows `after`, and lets the server take it in.
    async fn send(client: &mut DuplexStream, after: u64) {
        let request = format!("GET /long-poll/c?after={after}&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        for _ in 0..50 {
            tokio::task::yield_now().await; // the clock does not move meanwhile
        }
    }

    /// The answer to the poll sent: its status, its body, and when it came.
    async fn answer(client: &mut DuplexStream) -> (u16, String, Instant) {
        let mut got = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let length =
                head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |v| v.parse().unwrap());
            if body.len() >= length {
                return (head[9..12].parse().unwrap(), body.to_string(), Instant::now());
            }
        }
    }

    async fn publish(shared: &Shared, text: &'static str) {
        shared.broker.publish("c", Bytes::from_static(text.as_bytes())).await.unwrap();
    }

    /// The messages' texts in an answer's body, and its `next`.
    fn texts(body: &str) -> (Vec<String>, u64) {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let texts = v["messages"].as_array().unwrap().iter().map(|m| m["data"].as_str().unwrap().to_string()).collect();
        (texts, v["next"].as_u64().unwrap())
    }

    /// With `--coalesce`, a connection gets at most one answer with messages per interval:
    /// one that would come sooner waits until an interval after the last one, and carries
    /// what the channel sent meanwhile; one after a quiet spell goes at once.
    #[tokio::test(start_paused = true)]
    async fn coalesced_long_polls_answer_at_most_once_per_interval() {
        let (mut client, shared) = connect(EVERY);
        publish(&shared, "m1").await;
        let t0 = Instant::now();
        send(&mut client, 0).await;
        let (status, body, at) = answer(&mut client).await;
        assert_eq!((status, texts(&body), at), (200, (vec!["m1".into()], 1), t0), "the first answer: at once");

        // A message already there when the next poll comes, within the interval: held.
        sleep(5 * MS).await;
        publish(&shared, "m2").await;
        sleep(3 * MS).await;
        send(&mut client, 1).await;
        sleep(2 * MS).await;
        publish(&shared, "m3").await;
        let (status, body, at) = answer(&mut client).await;
        assert_eq!((status, texts(&body)), (200, (vec!["m2".into(), "m3".into()], 3)), "both in one answer");
        assert_eq!(at - t0, EVERY, "an interval after the last answer");

        // After a quiet spell, at once; a message that wakes a held poll within the next
        // interval waits for its end.
        send(&mut client, 3).await;
        sleep(100 * MS).await;
        publish(&shared, "m4").await;
        let t1 = Instant::now();
        let (_, body, at) = answer(&mut client).await;
        assert_eq!((texts(&body), at), ((vec!["m4".into()], 4), t1), "after a quiet spell: at once");
        send(&mut client, 4).await;
        sleep(5 * MS).await;
        publish(&shared, "m5").await;
        let (_, body, at) = answer(&mut client).await;
        assert_eq!((texts(&body), at - t1), ((vec!["m5".into()], 5), EVERY), "woken within the interval: held");
    }

    /// Without `--coalesce` (the default), each message is answered as it comes.
    #[tokio::test(start_paused = true)]
    async fn without_coalesce_a_held_poll_is_answered_at_once() {
        let (mut client, shared) = connect(Duration::ZERO);
        publish(&shared, "m1").await;
        send(&mut client, 0).await;
        let (_, body, _) = answer(&mut client).await;
        assert_eq!(texts(&body), (vec!["m1".into()], 1));
        send(&mut client, 1).await;
        sleep(5 * MS).await;
        publish(&shared, "m2").await;
        let t = Instant::now();
        let (_, body, at) = answer(&mut client).await;
        assert_eq!((texts(&body), at), ((vec!["m2".into()], 2), t));
    }

    /// A coalescing connection whose first poll was answered (m1) and whose second waits,
    /// a millisecond later: an answer now would come within the interval.
    async fn second_poll_waiting() -> (DuplexStream, Arc<Shared>) {
        let (mut client, shared) = connect(EVERY);
        publish(&shared, "m1").await;
        send(&mut client, 0).await;
        answer(&mut client).await;
        send(&mut client, 1).await;
        sleep(MS).await;
        (client, shared)
    }

    /// A hold that fills while it waits (it is not woken by each message) ends at the
    /// channel's next pressure signal, not at the end of its interval.
    #[tokio::test(start_paused = true)]
    async fn a_coalesced_hold_that_fills_meanwhile_ends_before_its_interval() {
        let (mut client, shared) = second_poll_waiting().await;
        publish(&shared, "m2").await; // wakes the poll, which holds it: within the interval
        sleep(MS).await;
        let t = Instant::now();
        // Ids 3 to 66: the channel signals pressure at 32 and 64.
        let more = 2 * crate::app::hub::PRESSURE_EVERY as usize;
        for _ in 0..more {
            publish(&shared, "m").await;
        }
        let (_, body, at) = answer(&mut client).await;
        assert_eq!((texts(&body).0.len(), at), (1 + more, t), "all of them, at once");
    }

    /// A hold ends early once `COALESCE_MOST` messages wait.
    #[tokio::test(start_paused = true)]
    async fn a_coalesced_hold_ends_when_enough_messages_wait() {
        let (mut client, shared) = second_poll_waiting().await;
        let t = Instant::now();
        for _ in 0..COALESCE_MOST {
            publish(&shared, "m").await;
        }
        let (_, body, at) = answer(&mut client).await;
        assert_eq!((texts(&body).0.len(), at), (COALESCE_MOST, t));
    }
}
