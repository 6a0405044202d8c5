//! The WebSocket driver: the thin loop between an upgraded socket and `proto::ws::Session`.
//!
//! `net::http` answers the opening handshake with `101` and hands over the socket and
//! whatever it had already read past the request head (a client may send its first
//! frame right behind the handshake; tungstenite learned to keep those bytes the hard
//! way). From then on every decision about bytes is the session's: it parses frames,
//! answers pings, echoes closes and fails the connection on a protocol error. Every
//! decision about time (when to ping, when a silent peer is a zombie, how long to wait
//! for a Close) is the pure timer table's, `proto::ws::liveness`: this file only sleeps
//! until its next deadline. It decides about the socket (when to stop reading, when to
//! close) and about the application (what a message means on `/echo` and on
//! `/ws/{channel}`).
//!
//! # One task, full duplex, no split
//!
//! A WebSocket is full duplex: the peer may send while we write. Rather than split the
//! stream into two halves and two tasks, one loop waits on everything at once (a
//! hand-written `select`):
//!
//! ```text
//! loop {
//!     drain session events: echo / publish / note that the peer is alive
//!     move the session's outgoing bytes to the write queue, and write it now (vectored)
//!     select {   (in this order; the channel first after it was what woke the loop)
//!         socket (poll_fn): write what is left, and read (into session.read_buf() in
//!                           the middle of a frame, else into a scratch buffer: an idle
//!                           connection holds no read buffer)
//!         hub broadcast:    the messages waiting -> send_encoded(each shared frame)
//!         the alarm:        the liveness table's next deadline -> what it says is due:
//!                           a ping / a zombie: close 1008 / no Close back: give up
//!         shutdown:         close 1001
//!     }
//! }
//! ```
//!
//! One task per connection is what keeps an idle one small (docs/performance.md); the
//! price is that a message wakes a task that also owns the socket. From a subscriber's
//! first messages on, its socket is polled with a waker of its own
//! (`net::SubscriberSocket`), so a wake-up by the channel does not look at a socket that
//! has not woken, as a two-task server's writer never does.
//!
//! The socket branch polls both directions of the one stream in the same poll, so a
//! peer that is sending does not stop us from writing and a peer that is not reading
//! does not stop us from reading. It becomes ready as soon as
//! either direction makes progress.
//!
//! # Bounds
//!
//! - Input: the session reads at most one frame ahead and refuses a message over
//!   `--max-message` from its header alone (close `1009`). A message that spans reads
//!   (a large frame, or fragments) holds what has arrived until its end: that is counted
//!   with the request bodies against `--max-body-memory` (`net::budget`), and one past
//!   its fair share of a spent budget is refused with close `1013` (try again later) and
//!   its connection dropped at once, which frees what it held. While more than
//!   [`unsent_limit`] bytes wait to be written (an `/echo` peer that sends and never
//!   reads), the driver stops reading, so the peer's own writes block instead of our
//!   memory growing.
//! - Output on a channel: each message queued for this client is remembered by the
//!   stream offset where its frame ends. A client is *behind* when its socket takes no
//!   more bytes and more than `--max-queue` messages are still queued and not written:
//!   it has stopped reading, gets close `1008`, and nobody else waits for it (each
//!   subscriber has its own queue; the frames themselves are shared `Bytes`, so a slow
//!   client costs reference counts, not copies). Only the client's own backlog counts:
//!   a task woken late on a busy machine finds many messages at once, but it offers
//!   them to the socket before judging, and one overtaken by the hub's broadcast ring
//!   catches up from the channel's history (`app::feed`) instead of being cut.
//! - While the socket refuses bytes, the driver does not take messages from the channel
//!   at all: they wait in the channel's shared ring (or, past it, in its history), and a
//!   client that stopped reading costs no wake-up, no lock and no queue entry per
//!   message. Its backlog then counts what it left unread since its socket refused
//!   bytes: its own queue, and what the channel sent meanwhile (`Feed::pending`). It is
//!   judged whenever the loop turns, and at least every [`BACKLOG_CHECK`] while the socket
//!   refuses bytes (a deadline of the liveness table), so a client that never reads
//!   again is cut at most [`BACKLOG_CHECK`] after its backlog passed `--max-queue`, and
//!   one that reads again after falling that far behind is cut before it is given more.
//!
//! # Coalescing (`--coalesce`, off by default)
//!
//! With it on, channel messages are written to this client at most once per interval
//! (`proto::coalesce`, a deadline of the liveness table): a message that comes within
//! the interval after the last write is held, what the channel sends meanwhile joins it,
//! and at the deadline they leave together (in one write, if the socket takes them). A
//! message after a quiet spell leaves at once, and so does a hold that reaches
//! [`COALESCE_MOST`] messages. A Pong or Ping queued meanwhile is held with them. Nothing
//! is held once the closing handshake starts.
//!
//! # permessage-deflate and the fan-out
//!
//! When the handshake agreed on permessage-deflate (RFC 7692, `proto::ws::deflate`), the
//! session compresses what it sends and inflates what it reads. What a channel message
//! shares between subscribers depends on the parameters (`send_message`): without
//! deflate, every subscriber queues the message's one plain frame; with deflate and no
//! server context takeover at the default window (what `net::http` answers on every
//! channel), every such subscriber queues the message's one compressed frame, compressed
//! once; with context takeover (or a smaller window) the bytes depend on the connection's
//! own history, so its session compresses for it alone.
//!
//! # Liveness
//!
//! Every `--ping-interval` the server sends a Ping. The peer then has `--ping-timeout`
//! to show that it is alive, and **any bytes read from it count**, not only the Pong: a
//! peer in the middle of sending a large frame cannot put a Pong before that frame's
//! end, and bytes arriving prove the connection is alive just as well. A peer that
//! sends nothing at all in that time is a zombie (a vanished laptop, a cut NAT
//! mapping): it gets close `1008` and is dropped after [`WS_CLOSE_TIMEOUT`]. The rules,
//! and their tests at each deadline, are in `proto::ws::liveness`; the driver tells it
//! when bytes arrive and when the closing handshake begins.
//!
//! # Closing
//!
//! However the end comes (the peer's Close, a protocol error, our own Close), the
//! driver writes what the session queued (the Close frame last), and returns; the HTTP
//! driver then shuts down the write side (TCP FIN) and drains reads for a moment
//! (`net::http::lingering_drain`), so the Close frame is not destroyed by a TCP reset
//! (RFC 6455 §7.1.1: the server closes TCP first).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::IoSlice;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::budget::Hold;
use super::{Alarm, Shared, SubscriberSocket};
use crate::app::broker::BrokerError;
use crate::app::feed::{Feed, FeedEnd};
use crate::app::hub::Message;
use crate::app::stats::Transport;
use crate::config::{BACKLOG_CHECK, COALESCE_MOST, WRITE_VECTORS, WS_CLOSE_TIMEOUT};
use crate::proto::backlog::Stall;
use crate::proto::ws::liveness::{Liveness, LivenessConfig, Timeout};
use crate::proto::ws::{CloseState, DeflateParams, Event, SendError, Session, SessionLimits, Utf8Bytes};

/// What the upgraded connection is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /echo`: every text and binary message comes back unchanged.
    Echo,
    /// `GET /ws/{channel}?after=ID`: the channel's messages, and each text message the
    /// client sends is published to it.
    Channel { name: String, after: Option<u64> },
}

/// Close codes the driver itself decides on (RFC 6455 §7.4.1). Protocol errors
/// (1002, 1007, 1009) are the session's.
mod code {
    /// "an endpoint is "going away", such as a server going down".
    pub const GOING_AWAY: u16 = 1001;
    /// "received a type of data it cannot accept (e.g., an endpoint that understands
    /// only text data MAY send this if it receives a binary message)".
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// "a message that violates its policy ... a generic status code that can be
    /// returned when there is no other more suitable status code". Used for a client
    /// that stopped reading and for one that stopped answering.
    pub const POLICY: u16 = 1008;
    /// "Try Again Later" (IANA WebSocket close code registry, RFC 6455 §11.7): a message
    /// the client sent could not be published (the shared broker is unreachable), or
    /// could not be held while it arrives (`--max-body-memory` is spent).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Bytes waiting to be written past which the driver stops reading from the peer. One
/// message's echo must fit (Autobahn echoes 16 MiB messages), so the bound follows
/// `--max-message`; with a floor so that small limits still batch writes.
pub fn unsent_limit(max_message: usize) -> usize {
    max_message.max(64 * 1024)
}

/// A connection whose handshake has been accepted and whose `101` is about to be
/// written. Made *before* the `101` goes out, so that on a channel the subscription
/// already exists when the client learns it is connected: anything published after the
/// client saw its `101` reaches it.
pub struct Upgraded {
    session: Session,
    subscription: Option<Feed>,
    endpoint: Endpoint,
    shared: Arc<Shared>,
}

impl Upgraded {
    /// Creates the session and, on a channel, subscribes and queues the replay from
    /// the cursor: a `{"truncated":true}` text message first when history no longer
    /// covers it, then the retained messages, oldest first. Fails when the channel does
    /// not exist and every channel slot is in use (`--max-channels`): the handshake is
    /// then answered `503` instead of `101`.
    pub async fn new(
        shared: Arc<Shared>,
        endpoint: Endpoint,
        deflate: Option<DeflateParams>,
    ) -> Result<Upgraded, BrokerError> {
        let config = &shared.config;
        let limits = SessionLimits { max_message: config.max_message, max_frame: config.max_message };
        let mut session = Session::server(limits);
        if let Some(params) = deflate {
            session = session.with_deflate(params);
        }
        let mut subscription = None;
        if let Endpoint::Channel { name, after } = &endpoint {
            let (snap, rx) = shared.broker.subscribe(name, *after).await?;
            if snap.truncated {
                let _ = session.send_text("{\"truncated\":true}");
            }
            // The replay is not counted against --max-queue (it is not put in `unsent`):
            // it is bounded by --history already, and a client resuming from far back is
            // not a slow one. Live messages that pile up behind it are counted, as in SSE.
            for m in &snap.messages {
                if send_message(&mut session, m).is_ok() {
                    shared.stats.delivered(Transport::WebSocket, 1);
                }
            }
            subscription = Some(Feed::new(name, &snap, rx));
        }
        Ok(Upgraded { session, subscription, endpoint, shared })
    }

    /// Runs the WebSocket protocol on the upgraded connection until it ends. `leftover`
    /// is what the HTTP driver had read past the handshake (perhaps the first frames).
    /// Returns when the connection is finished; the caller then shuts down TCP.
    ///
    /// Not an `async fn` itself: it moves the session into the driver first, so that the
    /// connection's future holds one session, not a moved-from copy beside it.
    pub fn run<S: AsyncRead + AsyncWrite + Unpin>(self, io: &mut S, leftover: BytesMut) -> impl Future<Output = ()> {
        let Upgraded { mut session, subscription, endpoint, shared } = self;
        session.receive_data(&leftover);
        drop(leftover);
        let unsent = VecDeque::new();
        let driver = Driver { io, session, written: 0, unsent, shared, endpoint, counted: 0 };
        driver.serve_to_end(subscription)
    }
}

struct Driver<'a, S> {
    io: &'a mut S,
    session: Session,
    /// Bytes written since the upgrade: the stream offset where the session's outgoing
    /// queue (what it has queued and not yet seen written) begins.
    written: u64,
    /// For each channel message queued and not yet fully written, the stream offset
    /// (bytes written since the upgrade) at which its frame ends.
    unsent: VecDeque<u64>,
    shared: Arc<Shared>,
    endpoint: Endpoint,
    /// Bytes written that `/stats` has been told about.
    counted: u64,
}

/// Which of the loop's waits ended it (the branches of its `select`).
enum Woken {
    Io(Io),
    Messages(Result<(), FeedEnd>),
    Alarm(std::time::Instant),
    Stop,
}

/// Turns in a row that may look at the channel before the socket (after the channel was
/// what woke the loop), before the socket is looked at first again: a channel that is
/// always ready cannot keep the socket from being read for longer than this.
const CHANNEL_FIRST_MOST: u32 = 8;

/// The turns in a row that will have looked at the channel first, after a turn that
/// `channel_turns` say so far and that messages ended or not.
fn next_channel_turns(channel_turns: u32, by_messages: bool) -> u32 {
    if by_messages && channel_turns < CHANNEL_FIRST_MOST { channel_turns + 1 } else { 0 }
}

/// What the socket branch reports.
enum Io {
    /// Bytes were written, or read into the session, or both.
    Progress { read: usize },
    /// The peer closed its side (EOF).
    Eof,
    /// The socket failed; nothing more can be done on it.
    Failed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<'_, S> {
    /// Not an `async fn`: one would move its arguments into locals of its own and keep
    /// both copies for as long as the connection lives (about 460 bytes per WebSocket);
    /// an `async move` block uses what it captured where it is.
    #[expect(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
    fn serve_to_end(mut self, mut subscription: Option<Feed>) -> impl Future<Output = ()> {
        async move {
            self.serve(subscription.as_mut()).await;
            self.count_writes();
        }
    }

    async fn serve(&mut self, mut feed: Option<&mut Feed>) {
        let shared = self.shared.clone();
        let config = &shared.config;
        let mut shutdown = self.shared.watch_shutdown();
        // Every rule about time is the table's; this loop only sleeps until its next
        // deadline and does what it says then.
        let timing = LivenessConfig {
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            close_timeout: WS_CLOSE_TIMEOUT,
            backlog_check: BACKLOG_CHECK,
            coalesce: config.coalesce,
            coalesce_most: COALESCE_MOST,
        };
        let mut timers = Liveness::new(timing, super::now());
        let mut alarm = Alarm::new();
        // The shutdown future is made once: made afresh in every turn of the loop, it
        // would join the watch's waiter list once per message, for every subscriber of a
        // busy channel.
        let stopping = shutdown.wait_for(|stop| *stop);
        tokio::pin!(stopping);
        // Polled once, here; then only once the server stops (`super::watch_stop`).
        let stopped_already = super::watch_stop(stopping.as_mut()).await;
        let mut stop_seen = false;
        // Messages the feed handed over, moved into the session at once (kept to reuse
        // its allocation).
        let mut batch: Vec<Arc<Message>> = Vec::new();
        // Whether the client is too far behind (`--max-queue`): judged from when its
        // socket refuses bytes until the channel is read again.
        let mut stall = Stall::default();
        // The message in progress's share of `--max-body-memory`, while one spans reads.
        let mut incoming: Option<Hold<'_>> = None;
        // Turns in a row that looked at the channel first (`CHANNEL_FIRST_MOST`).
        let mut channel_turns = 0;
        // Its own waker from the first messages on, so that the channel's many wake-ups
        // cost no look at an empty socket that has not woken.
        let mut socket = SubscriberSocket::default();

        loop {
            self.count_writes();
            // Events first, one at a time, each answered before the next is read: an
            // echo must leave before anything the session queues for a later frame
            // (such as the Close of a protocol error right behind it).
            while let Some(event) = self.session.next_event() {
                // Answered here, without an await, unless it is a message to publish
                // (an echo is queued at once: no future is made per message for it).
                if let Some(publish) = self.on_event(event) {
                    self.publish(publish).await;
                }
            }
            // What a message spanning reads holds now, against the budget all message
            // bodies share (0 between messages: no hold, no shared counter touched).
            let held = self.session.incoming_held();
            if held == 0 {
                incoming = None;
            } else if !incoming.get_or_insert_with(|| shared.bodies.start()).set(held) {
                // Past its fair share of a spent budget: it cannot wait for a closing
                // handshake while the peer goes on sending, so it ends now (as an HTTP
                // body gets 503 and a close), which frees what it held.
                let _ = self.session.abort(code::TRY_AGAIN_LATER, "server busy: too many messages in progress");
                incoming = None;
            }
            // Channel messages held by `--coalesce` wait for their flush (the table's).
            let holding = timers.is_holding();
            if self.session.outgoing_len() > 0 && !holding {
                // Straight to the socket, in this turn: an echo, or the burst the feed
                // handed over, leaves in one vectored write without another round of the
                // loop. What the socket does not take waits in the select below.
                let (io, session, written) = (&mut *self.io, &mut self.session, &mut self.written);
                if poll_fn(|cx| Poll::Ready(poll_flush(io, cx, session, written))).await.is_err() {
                    return;
                }
            }
            self.forget_written();
            // What was just offered did not all leave: the socket refuses bytes. Until it
            // takes them, the channel is not read: the messages wait in its shared ring, at
            // no cost per message.
            let refused = !holding && self.session.outgoing_len() > 0;
            // The socket was just offered everything (above), so its backlog is judged
            // by the one rule (`Stall`): what is queued here and not written, and what
            // the channel sent meanwhile that was not taken.
            stall.on_offered(refused);
            if self.session.state() == CloseState::Open
                && stall.too_far_behind(
                    self.unsent.len(),
                    || feed.as_ref().map_or(0, |f| f.pending()),
                    config.max_queue,
                )
            {
                self.close(code::POLICY, "too far behind: more than --max-queue messages unsent");
            }
            if self.session.state() != CloseState::Open && !timers.is_closing() {
                timers.on_closing(super::now());
            }
            if self.session.is_closed() && self.session.outgoing_len() == 0 {
                return; // both Close frames have crossed, or the connection failed
            }
            // While the socket refuses bytes, the table wakes the loop every backlog check,
            // so that a client that never reads again is judged (above) all the same.
            timers.set_blocked(refused, super::now);

            // Again: a closing handshake that began above holds nothing back.
            let holding = timers.is_holding();
            let open = self.session.state() == CloseState::Open;
            let reading = matches!(self.session.state(), CloseState::Open | CloseState::CloseSent)
                && self.session.outgoing_len() < unsent_limit(config.max_message);
            let stats = &shared.stats;
            alarm.set(timers.poll_timeout());
            // The socket, the channel, time, the shutdown: in this order, without drawing
            // a random one per turn, except that after the channel woke the loop, the
            // channel is looked at first (a subscriber's wake-ups are mostly messages),
            // at most `CHANNEL_FIRST_MOST` turns in a row. A socket that holds its own
            // waker and has not woken is not looked at (`SubscriberSocket`).
            let channel_first = channel_turns > 0;
            let woken = {
                let messages_on = open && feed.is_some() && !refused;
                // Made only when it is to be polled (never on `/echo`).
                let mut messages =
                    pin!(messages_on.then(|| next_messages(&mut feed, &shared.broker, holding, &mut batch)));
                let alarm_on = alarm.is_set();
                let alarm = &mut alarm;
                let stop_on = open && !stop_seen;
                let mut stop = pin!(super::stopped(&shared, stopping.as_mut(), stopped_already));
                let (io, session, written) = (&mut *self.io, &mut self.session, &mut self.written);
                let socket = &mut socket;
                poll_fn(|cx| {
                    let mut channel = |cx: &mut Context<'_>| match messages.as_mut().as_pin_mut() {
                        Some(messages) => messages.poll(cx).map(Woken::Messages),
                        None => Poll::Pending,
                    };
                    if channel_first && let Poll::Ready(woken) = channel(cx) {
                        return Poll::Ready(woken);
                    }
                    // Without a waker of its own (`/echo`, a subscriber before its first
                    // messages) the socket is polled straight: every wake-up may be its.
                    let polled = if socket.has_own_waker() {
                        let writing = !holding && session.outgoing_len() > 0;
                        socket.poll(cx, writing, reading, |cx| poll_io(io, cx, session, !holding, reading, written))
                    } else {
                        poll_io(io, cx, session, !holding, reading, written)
                    };
                    if let Poll::Ready(io) = polled {
                        return Poll::Ready(Woken::Io(io));
                    }
                    if !channel_first && let Poll::Ready(woken) = channel(cx) {
                        return Poll::Ready(woken);
                    }
                    if alarm_on && let Poll::Ready(now) = alarm.poll_fired(cx) {
                        return Poll::Ready(Woken::Alarm(now));
                    }
                    if stop_on && stop.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woken::Stop);
                    }
                    Poll::Pending
                })
                .await
            };
            channel_turns = next_channel_turns(channel_turns, matches!(woken, Woken::Messages(_)));
            match woken {
                Woken::Io(io) => match io {
                    Io::Progress { read } => {
                        if read > 0 {
                            stats.read(Transport::WebSocket, read);
                            timers.on_bytes_received(); // any bytes show the peer alive
                        }
                    }
                    // EOF before the closing handshake: the peer is gone (1006,
                    // "abnormal closure", in the RFC's terms). Nothing to send to.
                    Io::Eof | Io::Failed => return,
                },
                // While holding, not per message: what comes meanwhile waits in the
                // channel's ring, and is taken when the channel signals that many have come
                // (a hold that fills ends at once: the ring must not overtake us) or at the
                // flush (`Feed::next`).
                Woken::Messages(r) => {
                    socket.on_messages();
                    stall.on_channel_read();
                    self.on_messages(r, &mut batch);
                    // Written now, or held to leave with what follows.
                    timers.on_queued(self.unsent.len(), super::now);
                }
                Woken::Alarm(now) => {
                    let due = timers.handle_timeout(now);
                    if !matches!(due, Some(Timeout::CheckBacklog | Timeout::Flush)) {
                        // A liveness deadline (at least a ping interval since the last
                        // one): the buffers a connection keeps while messages flow are let
                        // go of if they hold nothing, so an idle connection keeps none.
                        self.session.release_idle_buffers();
                        if self.unsent.is_empty() {
                            self.unsent = VecDeque::new();
                        }
                        batch = Vec::new();
                        socket.release();
                        alarm.release();
                    }
                    match due {
                        Some(Timeout::Ping(n)) => {
                            let _ = self.session.send_ping(n.to_string().as_bytes());
                        }
                        Some(Timeout::Zombie) => self.close(code::POLICY, "no answer to ping within --ping-timeout"),
                        // The peer's Close did not come, or the last bytes did not leave.
                        Some(Timeout::CloseTimedOut) => return,
                        // The socket still refuses bytes: the top of the loop judges the
                        // backlog, counting what the channel sent meanwhile.
                        Some(Timeout::CheckBacklog) => {}
                        // The held channel messages are due: the top of the loop writes them,
                        // with what the channel sent meanwhile.
                        Some(Timeout::Flush) => {
                            if let Some(f) = feed.as_mut() {
                                f.take_ready(&mut batch);
                                self.on_messages(Ok(()), &mut batch);
                            }
                        }
                        None => {} // woke before a deadline that moved later
                    }
                }
                Woken::Stop => {
                    stop_seen = true; // a finished future must not be polled again
                    self.close(code::GOING_AWAY, "server shutting down");
                }
            }
        }
    }

    /// Answers one event; returns a channel message that is to be published (which
    /// waits for the broker), and handles every other event at once.
    fn on_event(&mut self, event: Event) -> Option<Utf8Bytes> {
        let stats = &self.shared.stats;
        match (event, &self.endpoint) {
            (Event::Text(text), Endpoint::Echo) => {
                if self.session.send_text_bytes(text).is_ok() {
                    stats.delivered(Transport::WebSocket, 1);
                }
            }
            (Event::Binary(data), Endpoint::Echo) => {
                if self.session.send_binary_bytes(data).is_ok() {
                    stats.delivered(Transport::WebSocket, 1);
                }
            }
            // Validated as UTF-8 by the session, so it is a message as it stands; it
            // comes back to this client too, with its id, through the hub.
            (Event::Text(text), Endpoint::Channel { .. }) => return Some(text),
            (Event::Binary(_), Endpoint::Channel { .. }) => {
                self.close(code::UNSUPPORTED_DATA, "a channel carries text messages only");
            }
            // The session has already queued the Pong, the Close echo, or the Close
            // that reports a protocol error; reading the bytes proved the peer alive.
            (Event::Ping(_) | Event::Pong(_) | Event::Close { .. } | Event::ProtocolError { .. }, _) => {}
        }
        None
    }

    /// Publishes a text message this client sent to its channel.
    async fn publish(&mut self, text: Utf8Bytes) {
        let Endpoint::Channel { name, .. } = &self.endpoint else { return };
        // This connection subscribes to the channel, so it exists and has its slot:
        // publishing to it cannot be refused for want of channels. A shared broker can
        // refuse it (Redis unreachable): a text frame has no answer of its own, so the
        // client is told by the close, and resumes by cursor, knowing its message was
        // not taken.
        if self.shared.broker.publish(name, text.into_bytes()).await.is_err() {
            self.close(code::TRY_AGAIN_LATER, "not published: the message broker is unavailable");
        }
    }

    /// Queues the messages the feed handed over: each one's shared frame, remembered by
    /// the stream offset where it ends.
    fn on_messages(&mut self, r: Result<(), FeedEnd>, batch: &mut Vec<Arc<Message>>) {
        // Where the session's queue starts in the stream (unchanged while queuing).
        let ahead = self.written;
        let mut delivered = 0;
        for m in batch.drain(..) {
            if send_message(&mut self.session, &m).is_ok() {
                delivered += 1;
                self.unsent.push_back(ahead + self.session.outgoing_len() as u64);
            }
        }
        self.shared.stats.delivered(Transport::WebSocket, delivered);
        match r {
            Ok(()) => {}
            // Missed more than the history holds: only a reconnection with its cursor
            // can tell this client what it lost (`truncated`).
            Err(FeedEnd::Gap) => self.close(code::POLICY, "too far behind: missed more than --history messages"),
            Err(FeedEnd::Closed) => self.close(code::GOING_AWAY, "channel closed"),
        }
    }

    /// Drops the messages whose frames have been written completely.
    fn forget_written(&mut self) {
        while self.unsent.front().is_some_and(|&end| end <= self.written) {
            self.unsent.pop_front();
        }
    }

    fn count_writes(&mut self) {
        let new = self.written - self.counted;
        if new > 0 {
            self.shared.stats.wrote(Transport::WebSocket, new as usize);
            self.counted = self.written;
        }
    }

    /// Starts the closing handshake from our side (§7.1.2).
    fn close(&mut self, code: u16, reason: &str) {
        // Queued in the session, behind what is already there; written by the loop.
        let _ = self.session.close(code, reason);
    }
}

/// Queues a channel message on one connection, from the encoding it can share
/// (the module doc's "permessage-deflate and the fan-out"):
///
/// - no permessage-deflate: the message's one uncompressed frame (`Message::ws_frame`),
///   the same `Bytes` for every such subscriber;
/// - deflate with `server_no_context_takeover` and the default window (what the server
///   answers on every channel, see `net::http`): the message's one compressed frame
///   (`Message::ws_frame_deflated`), compressed once and shared by all of them;
/// - deflate with context takeover or a smaller window (only if a client's own offer
///   reached a channel some other way; `/echo` keeps the client's choice): compressed
///   for this connection alone by its session, since those bytes depend on what this
///   connection sent before, or on its window.
fn send_message(session: &mut Session, m: &Message) -> Result<(), SendError> {
    match session.deflate() {
        None => session.send_encoded(m.ws_frame()),
        Some(p) if p.server_output_is_shareable() => session.send_encoded(m.ws_frame_deflated()),
        Some(_) => session.send_text(std::str::from_utf8(m.json()).unwrap_or_default()),
    }
}

/// The feed's next messages (`Feed::next`: while holding, once the channel signals that
/// many have come); pending forever on `/echo`, which has no subscription.
async fn next_messages(
    feed: &mut Option<&mut Feed>,
    broker: &crate::app::broker::Broker,
    holding: bool,
    batch: &mut Vec<Arc<Message>>,
) -> Result<(), FeedEnd> {
    match feed {
        Some(feed) => feed.next(broker, holding, batch).await,
        None => std::future::pending().await,
    }
}

/// The socket branch: if `writing`, writes what is queued (as one vectored write of up to
/// [`WRITE_VECTORS`] buffers: a large frame's header and its shared payload leave together
/// without being copied into one buffer) and, if `reading`, reads into the session's
/// buffer. Ready as soon as either direction made progress, or on EOF or an error;
/// pending (with both directions' wakers registered) otherwise.
fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    cx: &mut Context<'_>,
    session: &mut Session,
    writing: bool,
    reading: bool,
    written: &mut u64,
) -> Poll<Io> {
    // Nothing queued is the common case here (the loop wrote what it queued before
    // waiting): no write is tried for it.
    let wrote = if writing && session.outgoing_len() > 0 {
        let Ok(wrote) = poll_flush(io, cx, session, written) else { return Poll::Ready(Io::Failed) };
        wrote
    } else {
        0
    };
    if reading {
        let read = if session.wants_read_buf() {
            // In the middle of a frame: straight into the session's buffer, which it
            // sized for the frame. `read_buf` is cancel-safe and keeps no state between
            // polls, so a fresh future per poll is fine.
            pin!(io.read_buf(session.read_buf())).poll(cx)
        } else {
            // Between messages: wait without holding a buffer (`super::poll_read_lean`).
            super::poll_read_scratch(io, cx, |bytes| session.receive_data(bytes))
        };
        match read {
            Poll::Ready(Ok(0)) => return Poll::Ready(Io::Eof),
            Poll::Ready(Ok(n)) => return Poll::Ready(Io::Progress { read: n }),
            Poll::Ready(Err(_)) => return Poll::Ready(Io::Failed),
            Poll::Pending => {}
        }
    }
    if wrote > 0 { Poll::Ready(Io::Progress { read: 0 }) } else { Poll::Pending }
}

/// Writes what is queued until the socket would block (registering the waker then) or
/// the queue is empty; returns the bytes written, or `Err` when the socket failed.
/// The session's queue is written where it is (`Session::outgoing_slices`), and
/// `written` counts the bytes written since the upgrade.
fn poll_flush<S: AsyncWrite + Unpin>(
    io: &mut S,
    cx: &mut Context<'_>,
    session: &mut Session,
    written: &mut u64,
) -> Result<usize, ()> {
    let mut wrote = 0;
    while let Some((first, alone)) = session.outgoing_front() {
        let r = if alone {
            // The common case (a burst of small frames is one buffer): a plain write,
            // without filling an array of slices for it.
            Pin::new(&mut *io).poll_write(cx, first)
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_VECTORS];
            let n = session.outgoing_slices(&mut slices);
            Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n])
        };
        match r {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
            Poll::Ready(Ok(k)) => {
                session.consume_outgoing(k);
                *written += k as u64;
                wrote += k;
            }
            Poll::Pending => break,
        }
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    //! The driver and its liveness table together, under paused time (tokio's
    //! test-util): the clock stands still while any task can run and jumps straight to
    //! the next timer when all wait, so each deadline is checked to the millisecond, in
    //! memory (a duplex pipe, no socket), without waiting for it.

    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::{AsyncWriteExt, DuplexStream, duplex};
    use tokio::task::JoinHandle;
    use tokio::time::{Instant, sleep};

    use super::*;
    use crate::config::Config;
    use crate::net::counted::{Counted, Counts};

    const INTERVAL: Duration = Duration::from_secs(20);
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// The client's end: the pipe and our own codec, as a client.
    struct Peer {
        io: DuplexStream,
        session: Session,
    }

    impl Peer {
        /// The next event from the server; `None` once it has dropped the connection.
        async fn next(&mut self) -> Option<Event> {
            loop {
                if let Some(event) = self.session.next_event() {
                    return Some(event);
                }
                if self.io.read_buf(self.session.read_buf()).await.unwrap() == 0 {
                    return None;
                }
            }
        }

        /// Writes what the client's session queued (the Pong to a Ping, the Close echo).
        async fn flush(&mut self) {
            let queued: Vec<Bytes> = self.session.drain_outgoing().collect();
            for chunk in queued {
                self.io.write_all(&chunk).await.unwrap();
            }
        }
    }

    /// A server connection on `/echo`, pinging every INTERVAL with TIMEOUT to answer.
    async fn open() -> (Peer, Arc<Shared>, JoinHandle<()>) {
        let config = Config { ping_interval: INTERVAL, ping_timeout: TIMEOUT, ..Config::default() };
        let shared = Arc::new(Shared::new(config, None));
        let (peer, task) = echo_on(&shared).await;
        (peer, shared, task)
    }

    /// One more `/echo` connection on the server of `shared`.
    async fn echo_on(shared: &Arc<Shared>) -> (Peer, JoinHandle<()>) {
        let (client, mut server) = duplex(64 * 1024);
        let upgraded = Upgraded::new(shared.clone(), Endpoint::Echo, None).await.unwrap();
        let task = tokio::spawn(async move { upgraded.run(&mut server, BytesMut::new()).await });
        let session = Session::client(SessionLimits::default(), || [1, 2, 3, 4]);
        (Peer { io: client, session }, task)
    }

    /// A subscriber of `channel` on a server with `config`, over a pipe of `pipe` bytes:
    /// the client's end, the server's state, the connection's task, and counts of what the
    /// server did with its socket.
    async fn subscribe(config: Config, channel: &str, pipe: usize) -> (Peer, Arc<Shared>, JoinHandle<()>, Arc<Counts>) {
        let shared = Arc::new(Shared::new(config, None));
        let endpoint = Endpoint::Channel { name: channel.into(), after: None };
        let upgraded = Upgraded::new(shared.clone(), endpoint, None).await.unwrap();
        let (client, server) = duplex(pipe);
        let counts = Arc::new(Counts::default());
        let mut io = Counted { inner: server, counts: counts.clone() };
        let task = tokio::spawn(async move { upgraded.run(&mut io, BytesMut::new()).await });
        let session = Session::client(SessionLimits::default(), || [1, 2, 3, 4]);
        (Peer { io: client, session }, shared, task, counts)
    }

    /// An open WebSocket's future (boxed by the HTTP driver, and kept for as long as the
    /// connection lives) holds the driver's state once: the driver, its subscription and
    /// the loop, nothing twice. (An `async fn` taking them by value would keep a moved-from
    /// copy of both beside them, about 460 bytes more per connection.)
    #[tokio::test]
    async fn an_open_websocket_holds_its_state_once() {
        use std::mem::{size_of, size_of_val};
        let shared = Arc::new(Shared::new(Config::default(), None));
        let endpoint = Endpoint::Channel { name: "sized".into(), after: None };
        let upgraded = Upgraded::new(shared.clone(), endpoint, None).await.unwrap();
        let (_client, mut server) = duplex(64);
        let whole = size_of_val(&upgraded.run(&mut server, BytesMut::new()));
        let (_client, mut server) = duplex(64);
        let session = Session::server(SessionLimits::default());
        let mut driver = Driver {
            io: &mut server,
            session,
            written: 0,
            unsent: VecDeque::new(),
            shared,
            endpoint: Endpoint::Echo,
            counted: 0,
        };
        let the_loop = size_of_val(&driver.serve(None));
        let parts = size_of::<Driver<'_, DuplexStream>>() + size_of::<Option<Feed>>() + the_loop;
        assert!(whole <= parts + 16, "{whole} bytes for parts of {parts} in all");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_to_one_subscriber_leaves_in_fewer_writes_than_messages() {
        const BURST: usize = 50;
        let (mut peer, shared, _task, counts) = subscribe(Config::default(), "burst", 256 * 1024).await;
        // The whole burst is published before the subscriber's task first runs (this
        // test's runtime has one thread, and nothing here yields until the reads below),
        // as when a publisher outpaces the scheduler.
        for i in 1..=BURST {
            shared.broker.publish("burst", Bytes::from(format!("m{i}"))).await.unwrap();
        }
        for i in 1..=BURST {
            let expected = format!("{{\"id\":{i},\"data\":\"m{i}\"}}");
            assert!(
                matches!(peer.next().await, Some(Event::Text(t)) if t == expected.as_str()),
                "message {i}, in order"
            );
        }
        let writes = counts.writes.load(std::sync::atomic::Ordering::Relaxed);
        assert!(writes < BURST, "{BURST} messages left in {writes} writes");
        // One batch from the feed (at most feed::BATCH), one vectored write.
        assert_eq!(writes, BURST.div_ceil(crate::app::feed::BATCH), "{BURST} messages left in {writes} writes");
    }

    /// With `--coalesce`, the first message leaves at once; those published within the
    /// interval after that write are held and leave together, in one write, at its end;
    /// one after a quiet spell leaves at once again.
    #[tokio::test(start_paused = true)]
    async fn coalesced_messages_leave_together_one_interval_after_the_last_write() {
        use std::sync::atomic::Ordering::Relaxed;
        const EVERY: Duration = Duration::from_millis(20);
        let config = Config { coalesce: EVERY, ..Config::default() };
        let (mut peer, shared, _task, counts) = subscribe(config, "c", 64 * 1024).await;
        let publish = |i: u32| {
            let shared = shared.clone();
            async move { shared.broker.publish("c", Bytes::from(format!("m{i}"))).await.unwrap() }
        };
        let mut expect = async |i: u32| {
            let want = format!("{{\"id\":{i},\"data\":\"m{i}\"}}");
            assert!(matches!(peer.next().await, Some(Event::Text(t)) if t == want.as_str()), "message {i}, in order");
            Instant::now()
        };
        let start = Instant::now();
        publish(1).await;
        assert_eq!(expect(1).await, start, "the first: at once");
        assert_eq!(counts.writes.load(Relaxed), 1);
        // Two more within the interval, 5 and 10 ms after that write.
        sleep(Duration::from_millis(5)).await;
        publish(2).await;
        sleep(Duration::from_millis(5)).await;
        publish(3).await;
        assert_eq!(expect(2).await, start + EVERY, "held until an interval after the last write");
        assert_eq!(expect(3).await, start + EVERY, "the one published while 2 was held goes with it");
        assert_eq!(counts.writes.load(Relaxed), 2, "both in one write");
        // A quiet spell longer than the interval: the next leaves at once.
        sleep(EVERY * 3).await;
        let quiet = Instant::now();
        publish(4).await;
        assert_eq!(expect(4).await, quiet, "after a quiet spell: at once");
        assert_eq!(counts.writes.load(Relaxed), 3);
    }

    /// While it holds messages for `--coalesce`, a subscriber is not woken by each message
    /// the channel sends: they wait in the channel's ring and it takes them all at the
    /// flush, woken once for the hold instead of once per message.
    #[tokio::test(start_paused = true)]
    async fn a_coalescing_subscriber_is_woken_once_per_hold_not_once_per_message() {
        use std::sync::atomic::Ordering::Relaxed;
        const EVERY: Duration = Duration::from_millis(20);
        const HELD: usize = 15;
        let config = Config { coalesce: EVERY, ..Config::default() };
        let (mut peer, shared, _task, counts) = subscribe(config, "quiet", 64 * 1024).await;
        let publish = |i: usize| {
            let shared = shared.clone();
            async move { shared.broker.publish("quiet", Bytes::from(format!("m{i}"))).await.unwrap() }
        };
        let start = Instant::now();
        publish(0).await;
        assert!(matches!(peer.next().await, Some(Event::Text(_))), "the first: at once");
        let before = counts.reads.load(Relaxed);
        // Fifteen more, one a millisecond: all within the interval after that write
        // (fewer than the channel's pressure signal, every PRESSURE_EVERY messages).
        assert!((HELD as u64) < crate::app::hub::PRESSURE_EVERY);
        for i in 1..=HELD {
            sleep(Duration::from_millis(1)).await;
            publish(i).await;
        }
        for i in 1..=HELD {
            let want = format!("{{\"id\":{},\"data\":\"m{i}\"}}", i + 1);
            assert!(matches!(peer.next().await, Some(Event::Text(t)) if t == want.as_str()), "message {i}, in order");
        }
        assert_eq!(start.elapsed(), EVERY, "held until an interval after the first write");
        // Two wake-ups, the hold's start (the first held message) and its flush, none per
        // message; each tries a read twice (the turn that handles it and the next one,
        // which finds nothing and sleeps).
        let tries = counts.reads.load(Relaxed) - before;
        assert!(tries <= 4, "{tries} read tries for {HELD} held messages");
        assert_eq!(counts.writes.load(Relaxed), 2, "the first, then the fifteen together");
    }

    /// A subscriber that messages wake looks at its empty socket only when the socket
    /// woke it: once its socket holds its own waker (`SubscriberSocket`, from the first
    /// message on), a message costs no look at it.
    #[tokio::test(start_paused = true)]
    async fn a_subscriber_woken_by_messages_looks_at_its_socket_only_when_it_woke() {
        use std::sync::atomic::Ordering::Relaxed;
        const N: usize = 20;
        let (mut peer, shared, _task, counts) = subscribe(Config::default(), "busy", 64 * 1024).await;
        let before = counts.reads.load(Relaxed);
        for i in 0..N {
            shared.broker.publish("busy", Bytes::from(format!("m{i}"))).await.unwrap();
            assert!(matches!(peer.next().await, Some(Event::Text(_))), "message {i}");
        }
        // The first message finds the socket holding the task's waker: it is looked at
        // once more, with its own; then never, as nothing arrives on it. (Looked at in
        // every turn: N + 1 or more.)
        let tries = counts.reads.load(Relaxed) - before;
        assert!(tries <= 2, "{tries} read tries for {N} messages (at most 2)");
    }

    /// What arrives on a subscriber's socket while messages keep its task busy is read
    /// and answered all the same, however long the socket has gone unlooked-at: its own
    /// waker tells the loop.
    #[tokio::test(start_paused = true)]
    async fn a_subscriber_not_looking_at_its_socket_still_answers_what_comes_on_it() {
        let (mut peer, shared, _task, _counts) = subscribe(Config::default(), "busy", 64 * 1024).await;
        for round in 0..3 {
            for i in 0..5 {
                shared.broker.publish("busy", Bytes::from(format!("m{round}.{i}"))).await.unwrap();
                assert!(matches!(peer.next().await, Some(Event::Text(_))), "message {round}.{i}");
            }
            peer.session.send_ping(format!("p{round}").as_bytes()).unwrap();
            peer.flush().await;
            // Answered without another message to wake the loop.
            let pong = peer.next().await;
            assert!(matches!(&pong, Some(Event::Pong(p)) if p[..] == *format!("p{round}").as_bytes()), "{pong:?}");
        }
        // And a Close from the client ends it.
        peer.session.close(1000, "bye").unwrap();
        peer.flush().await;
        assert!(matches!(peer.next().await, Some(Event::Close { code: Some(1000), .. })));
    }

    /// After `CHANNEL_FIRST_MOST` turns in a row that messages ended, the socket is looked
    /// at first again, however busy the channel; any other end of a turn resets it.
    #[test]
    fn a_busy_channel_gives_the_socket_its_turn() {
        let mut turns = 0;
        let mut socket_first = 0;
        for _ in 0..10 * (CHANNEL_FIRST_MOST + 1) {
            if turns == 0 {
                socket_first += 1;
            }
            turns = next_channel_turns(turns, true);
        }
        assert_eq!(socket_first, 10, "once every CHANNEL_FIRST_MOST + 1 turns");
        assert_eq!(next_channel_turns(3, false), 0);
    }

    /// A coalescing subscriber of a channel that sends more in one interval than its ring
    /// and the history hold still gets everything, in order and without waiting for the
    /// interval: the channel's pressure signal wakes it while it holds, it takes what the
    /// ring holds then, and a hold that reaches `COALESCE_MOST` leaves at once. (Were it to
    /// sleep until its flush, the ring would overtake it, the history would not cover the
    /// gap, and it would be cut.)
    #[tokio::test(start_paused = true)]
    async fn a_channel_faster_than_a_hold_overtakes_no_coalescing_subscriber() {
        const EVERY: Duration = Duration::from_secs(1);
        const CHUNKS: usize = 6;
        const CHUNK: usize = 50;
        let config = Config { coalesce: EVERY, max_queue: 100, history: 100, ..Config::default() };
        let (mut peer, shared, _task, _) = subscribe(config, "busy", 1024 * 1024).await;
        let start = Instant::now();
        shared.broker.publish("busy", Bytes::from("m0")).await.unwrap();
        // 300 more within a millisecond each chunk, 6 ms in all: three times the ring.
        for c in 0..CHUNKS {
            sleep(Duration::from_millis(1)).await;
            for i in 0..CHUNK {
                shared.broker.publish("busy", Bytes::from(format!("m{}", 1 + c * CHUNK + i))).await.unwrap();
            }
        }
        for i in 0..=CHUNKS * CHUNK {
            let want = format!("{{\"id\":{},\"data\":\"m{i}\"}}", i + 1);
            assert!(matches!(peer.next().await, Some(Event::Text(t)) if t == want.as_str()), "message {i}, in order");
        }
        assert!(start.elapsed() < EVERY, "none waited for the interval: {:?}", start.elapsed());
    }

    /// A subscriber whose socket refuses bytes (its client stopped reading) takes nothing
    /// from its channel, however much is published meanwhile; at its backlog check what
    /// the channel sent meanwhile counts (past the ring of `QUEUE`, too), the backlog is
    /// past `--max-queue`, and it is closed with 1008 without being given more.
    #[tokio::test(start_paused = true)]
    async fn a_subscriber_whose_socket_is_full_takes_nothing_and_is_cut_at_its_backlog_check() {
        use std::sync::atomic::Ordering::Relaxed;
        const QUEUE: usize = 8;
        const MORE: usize = 30;
        let config = Config { max_queue: QUEUE, ..Config::default() };
        let (mut peer, shared, task, _) = subscribe(config, "full", 4 * 1024).await;
        let delivered = || shared.stats.of(Transport::WebSocket).delivered.load(Relaxed);
        let body = "x".repeat(1000);
        let publish = |n: usize| {
            let (shared, body) = (shared.clone(), body.clone());
            async move {
                for _ in 0..n {
                    shared.broker.publish("full", Bytes::from(body.clone())).await.unwrap();
                }
            }
        };
        // Eight messages of 1 KB into a pipe of 4 KiB: taken, half written, then blocked.
        let start = Instant::now();
        publish(QUEUE).await;
        sleep(Duration::from_millis(1)).await;
        assert_eq!(delivered(), QUEUE as u64, "taken while the socket took bytes");
        // Far more than --max-queue while the socket refuses bytes: none of it is taken.
        publish(MORE).await;
        sleep(BACKLOG_CHECK - Duration::from_millis(2)).await;
        assert_eq!(delivered(), QUEUE as u64, "nothing taken while blocked, until the check");
        assert!(!task.is_finished());
        // The check: what the channel sent meanwhile is counted, not taken.
        sleep(Duration::from_millis(2)).await;
        assert_eq!(start.elapsed(), BACKLOG_CHECK + Duration::from_millis(1));
        assert_eq!(delivered(), QUEUE as u64, "nothing more given to a client that far behind");
        // The client reads now: what it was given, in order, then the 1008.
        for i in 1..=QUEUE {
            let expected = format!("{{\"id\":{i},\"data\":\"{body}\"}}");
            assert!(matches!(peer.next().await, Some(Event::Text(t)) if t == expected.as_str()), "message {i}");
        }
        let close = peer.next().await;
        assert!(matches!(close, Some(Event::Close { code: Some(1008), .. })), "{close:?}");
        task.await.unwrap();
        // Closed at the check: dropped when the Close went unanswered for the close timeout.
        assert_eq!(start.elapsed(), BACKLOG_CHECK + WS_CLOSE_TIMEOUT);
    }

    /// Messages spanning reads share `--max-body-memory` with request bodies: past it, the
    /// one past its fair share is closed with 1013 at once and what it held is given back;
    /// the other goes on and is echoed.
    #[tokio::test(start_paused = true)]
    async fn a_message_in_progress_past_its_share_of_the_body_memory_is_closed_with_1013() {
        use crate::proto::ws::frame::{OpCode, encode_frame};
        let config = Config { max_body_memory: 10_000, ..Config::default() };
        let shared = Arc::new(Shared::new(config, None));
        let (mut hog, hog_task) = echo_on(&shared).await;
        let (mut small, _small_task) = echo_on(&shared).await;
        let frame = |op, fin, n: usize| encode_frame(op, fin, &vec![b'x'; n], Some([1, 2, 3, 4]));
        // Settled: the server has read all that was sent (nothing else runs meanwhile).
        let settle = || sleep(Duration::from_millis(1));
        hog.io.write_all(&frame(OpCode::Binary, false, 8_000)).await.unwrap();
        settle().await;
        assert_eq!(shared.bodies.held(), 8_000, "a message spanning reads is counted");
        small.io.write_all(&frame(OpCode::Binary, false, 3_000)).await.unwrap();
        settle().await;
        assert_eq!(shared.bodies.held(), 11_000, "past the budget, but within its share of 5,000");
        hog.io.write_all(&frame(OpCode::Continuation, false, 100)).await.unwrap();
        settle().await;
        let close = hog.next().await;
        assert!(matches!(close, Some(Event::Close { code: Some(1013), .. })), "{close:?}");
        assert_eq!(hog.next().await, None, "dropped at once, without waiting for a Close");
        hog_task.await.unwrap();
        assert_eq!(shared.bodies.held(), 3_000, "what it held is given back");
        // The other one finishes its message and has it echoed, whole.
        small.io.write_all(&frame(OpCode::Continuation, true, 2_000)).await.unwrap();
        assert!(matches!(small.next().await, Some(Event::Binary(b)) if b.len() == 5_000));
        assert_eq!(shared.bodies.held(), 0, "nothing held between messages");
    }

    fn ping(n: u64) -> Option<Event> {
        Some(Event::Ping(Bytes::from(n.to_string())))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_closed_with_1008_then_dropped_each_on_time() {
        let (mut peer, _shared, task) = open().await;
        let opened = Instant::now();
        assert_eq!(peer.next().await, ping(1));
        assert_eq!(opened.elapsed(), INTERVAL, "the first ping, an interval after opening");
        // The peer never answers (its Pong stays queued): a zombie at the deadline.
        let close = peer.next().await;
        assert_eq!(opened.elapsed(), INTERVAL + TIMEOUT, "closed exactly at the answer deadline");
        assert!(matches!(close, Some(Event::Close { code: Some(1008), .. })), "{close:?}");
        // Nor does it answer the Close: dropped once the close deadline passes.
        assert_eq!(peer.next().await, None);
        assert_eq!(opened.elapsed(), INTERVAL + TIMEOUT + WS_CLOSE_TIMEOUT);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_is_pinged_on_and_any_bytes_count_as_an_answer() {
        let (mut peer, _shared, _task) = open().await;
        let opened = Instant::now();
        for n in 1..=2 {
            assert_eq!(peer.next().await, ping(n));
            assert_eq!(opened.elapsed(), INTERVAL * n as u32);
            peer.flush().await; // the Pong
        }
        // The third ping is answered not by a Pong but by a message, at the last moment.
        assert_eq!(peer.next().await, ping(3));
        let _ = peer.session.drain_outgoing().count(); // no Pong this time
        sleep(TIMEOUT - Duration::from_millis(1)).await;
        peer.session.send_text("still here").unwrap();
        peer.flush().await;
        assert!(matches!(peer.next().await, Some(Event::Text(t)) if t == "still here"), "echoed");
        // No Close at the deadline: the next thing is the fourth ping, on schedule.
        assert_eq!(peer.next().await, ping(4));
        assert_eq!(opened.elapsed(), INTERVAL * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_close_waits_for_the_answer_at_most_the_close_timeout() {
        for answers in [true, false] {
            let (mut peer, shared, task) = open().await;
            sleep(Duration::from_secs(5)).await;
            shared.stop();
            let stopped = Instant::now();
            let close = peer.next().await;
            assert!(matches!(close, Some(Event::Close { code: Some(1001), .. })), "{close:?}");
            assert_eq!(stopped.elapsed(), Duration::ZERO);
            if answers {
                peer.flush().await; // the client's Close echo
            }
            assert_eq!(peer.next().await, None);
            let expected = if answers { Duration::ZERO } else { WS_CLOSE_TIMEOUT };
            assert_eq!(stopped.elapsed(), expected, "answered: {answers}");
            task.await.unwrap();
        }
    }
}
