//! The Server-Sent Events driver: `GET /sse/{channel}` as a `text/event-stream` (WHATWG
//! HTML §9.2, "Server-sent events"), chunked on HTTP/1.1 (RFC 9112 §7.1) and delimited
//! by closing the connection on HTTP/1.0, which has no chunked coding (RFC 9112 §6.3
//! rule 8).
//!
//! ```text
//! HTTP/1.1 200 OK                      head: text/event-stream, no-cache, chunked
//! d\r\nretry: 3000\n\n\r\n             how long the browser waits before reconnecting
//! 13\r\nid: 7\ndata: hello\n\n\r\n      each message: id, one data line per line, blank
//! 4\r\n: \n\n\r\n                       a heartbeat comment after --heartbeat of silence
//! 0\r\n\r\n                             the last chunk, when the server shuts down
//! ```
//!
//! The bytes are decided by pure pieces: the codec in `proto::sse` encodes, [`Framing`]
//! chooses chunked or bare, and [`Outbox`] is the queue of bytes not yet written. A
//! message's event is encoded once, by the first subscriber that needs it, and every
//! other subscriber queues the very same `Bytes` (see `hub::Message::sse_chunk`). Time
//! is decided by a pure table too, `proto::sse_timers`: when a heartbeat is due (after
//! `--heartbeat` with nothing written) and how long a shutdown's last bytes may take
//! (`--shutdown-timeout`).
//!
//! The loop is full-duplex on one unsplit stream: one `select!` receives from the
//! channel, writes the queue, reads the socket (only to notice the client leaving),
//! sleeps until the timer table's next deadline and watches for shutdown. The shutdown
//! future and the timer are made once per stream, not per turn of the loop. Writing is
//! a branch like the others rather than an `.await` between them, so a client that
//! stops reading never stalls the task.
//!
//! "Behind" means the client's own backlog: more than `--max-queue` live messages that
//! its socket would not take. A task woken late on a busy machine finds many messages
//! at once and offers them to the socket before judging; one overtaken by the hub's
//! broadcast ring catches up from the channel's history (`app::feed`). While the socket
//! refuses bytes, the driver takes nothing from the channel (the messages wait in its
//! shared ring, so a client that stopped reading costs no work per message); its
//! backlog then also counts what the channel sent meanwhile (`Feed::pending`), judged
//! every turn and at each backlog check of the timer table (`BACKLOG_CHECK`), and past
//! `--max-queue` that one stream is cut, as in `net::ws`.
//!
//! With `--coalesce` on (off by default), channel messages are written at most once per
//! interval, as in `net::ws`: one that comes within the interval after the last write is
//! held, what the channel sends meanwhile joins it, and at the table's `Flush` they leave
//! together; a hold that reaches `COALESCE_MOST` messages leaves at once.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::http::{Conn, Next, cursor};
use super::{Alarm, SubscriberSocket};
use crate::app::feed::{Feed, FeedEnd};
use crate::app::hub::{Message, Snapshot};
use crate::app::stats::{Stats, Transport};
use crate::config::{BACKLOG_CHECK, COALESCE_MOST, SSE_READ_SINK, WRITE_VECTORS};
use crate::proto::backlog::Stall;
use crate::proto::http::response::{Context as HttpContext, LAST_CHUNK};
use crate::proto::http::{RequestHead, Response, Version};
use crate::proto::sse;
use crate::proto::sse_timers::{StreamTimers, Timeout};

/// The `data:` of the `truncated` event. EventSource fires no event whose data is empty
/// (§9.2.6, dispatch step 2), so a bare `event: truncated` would vanish silently.
pub const TRUNCATED_DATA: &str = "{\"truncated\":true}";

/// How the stream's pieces are framed: as HTTP/1.1 chunks, or bare bytes on HTTP/1.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    pub chunked: bool,
}

impl Framing {
    pub fn for_version(version: Version) -> Self {
        Framing { chunked: version == Version::Http11 }
    }

    fn wrap(self, payload: Bytes) -> Bytes {
        if self.chunked { sse::http_chunk(&payload) } else { payload }
    }

    /// A message's event: the shared encoding, never a copy.
    pub fn event(self, message: &Message) -> Bytes {
        if self.chunked { message.sse_chunk().clone() } else { message.sse_event().clone() }
    }

    /// `retry: MS`: how long the browser waits before reconnecting.
    pub fn retry(self, delay: Duration) -> Bytes {
        self.wrap(sse::encode_retry(delay.as_millis().try_into().unwrap_or(u64::MAX)))
    }

    /// `: ` and a blank line: a comment the browser ignores, sent so that proxies and
    /// the browser see traffic on an otherwise idle connection.
    pub fn heartbeat(self) -> Bytes {
        self.wrap(sse::encode_comment(""))
    }

    /// `event: truncated` with a `data:` line, for a cursor older than the history.
    ///
    /// It carries `id:` set to just before the first retained message, so that a client
    /// cut off right after it resumes exactly there (and is not told "truncated" twice);
    /// with nothing retained, the id is the channel's head.
    pub fn truncated(self, snap: &Snapshot) -> Bytes {
        let resume_at = snap.messages.first().map_or(snap.next, |m| m.id - 1);
        self.wrap(sse::encode_event_bytes(Some(resume_at), Some("truncated"), TRUNCATED_DATA))
    }

    /// What ends the body: the last chunk on HTTP/1.1; on HTTP/1.0, closing does.
    pub fn end(self) -> Option<Bytes> {
        self.chunked.then(|| Bytes::from_static(LAST_CHUNK))
    }
}

/// What a queued piece of bytes completes once written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The head, a `retry:`, a heartbeat, the `truncated` notice, the last chunk.
    Control,
    /// A message the client resumed into (from the channel's history).
    History,
    /// A message that arrived while the stream was open.
    Live,
}

/// Messages completed by a write, by where they came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub history: usize,
    pub live: usize,
}

/// The bytes queued for one stream, oldest first. Each entry is a cheap handle on bytes
/// that may be shared with every other subscriber; a partial write advances the front
/// handle, it never copies.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<(Bytes, Part)>,
}

impl Outbox {
    pub fn push(&mut self, bytes: Bytes, piece: Part) {
        if !bytes.is_empty() {
            self.queue.push_back((bytes, piece));
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Fills `dst` with the queued buffers, front first; returns how many.
    pub fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for ((bytes, _), slot) in self.queue.iter().zip(dst.iter_mut()) {
            *slot = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Drops `written` bytes off the front; says which messages that completed.
    pub fn advance(&mut self, mut written: usize) -> Delivered {
        let mut done = Delivered::default();
        while written > 0 {
            let Some((front, piece)) = self.queue.front_mut() else { break };
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            match piece {
                Part::Control => {}
                Part::History => done.history += 1,
                Part::Live => done.live += 1,
            }
            self.queue.pop_front();
        }
        done
    }
}

/// The cursor a stream resumes from. `Last-Event-ID` (WHATWG §9.2.4), which a
/// reconnecting EventSource sends with the id of the last event it received, wins over
/// `?after=`, which the browser repeats unchanged from the original URL on every
/// reconnection. An empty header is no cursor (EventSource sends none when it has no id).
pub fn stream_cursor(head: &RequestHead) -> Result<Option<u64>, Response> {
    let header = head.header("last-event-id").map(|v| v.trim_ascii()).filter(|v| !v.is_empty());
    match header {
        None => cursor(head),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| Response::text(400, "Last-Event-ID is a message id: an unsigned integer\n")),
    }
}

/// The response head of every stream.
fn stream_response() -> Response {
    Response::new(200)
        .header("Content-Type", "text/event-stream")
        // Events are live: a cache that kept this response would replay stale ones.
        .header("Cache-Control", "no-cache")
        // nginx buffers proxied responses unless told not to, which would hold events
        // back until a buffer fills.
        .header("X-Accel-Buffering", "no")
}

/// Why a stream ended.
#[derive(Debug)]
enum End {
    /// Shutting down, and everything queued (the last `retry:`, the last chunk) is out.
    Finished,
    /// The client closed its side, or the socket failed.
    Gone,
    /// The client fell `--max-queue` behind: cut off so that it cannot make the server
    /// buffer without bound. It resumes from its `Last-Event-ID` when it reconnects.
    TooSlow,
    /// Shutting down, but the client did not take the last bytes in time.
    Stuck,
}

/// What the socket did, from the one branch that polls both of its directions.
enum Io {
    Wrote(usize),
    Read(usize),
    Closed,
}

/// Polls the write side (when something is queued and `writing`) and then the read side of `io`.
/// Both register the task's waker, so whichever becomes ready wakes the loop; neither
/// waits for the other, which is what keeps the stream full-duplex without splitting it.
fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    outbox: &Outbox,
    writing: bool,
    cx: &mut Context<'_>,
) -> Poll<Io> {
    match if writing { try_write(io, outbox, cx) } else { None } {
        Some(Ok(n)) => return Poll::Ready(Io::Wrote(n)),
        Some(Err(())) => return Poll::Ready(Io::Closed),
        None => {}
    }
    // Read into a sink on the stack and forget it: an open stream holds no read buffer.
    let mut sink = [std::mem::MaybeUninit::<u8>::uninit(); SSE_READ_SINK];
    let mut read = ReadBuf::uninit(&mut sink);
    match Pin::new(io).poll_read(cx, &mut read) {
        Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Io::Closed),
        Poll::Ready(Ok(())) => Poll::Ready(Io::Read(read.filled().len())),
        Poll::Ready(Err(_)) => Poll::Ready(Io::Closed),
        Poll::Pending => Poll::Pending,
    }
}

/// One vectored write of what is queued: `None` when there is nothing to write or the
/// socket would block (the waker is then registered), `Err` when the socket failed.
fn try_write<S: AsyncWrite + Unpin>(io: &mut S, outbox: &Outbox, cx: &mut Context<'_>) -> Option<Result<usize, ()>> {
    if outbox.is_empty() {
        return None;
    }
    let mut slices = [IoSlice::new(&[]); WRITE_VECTORS];
    let n = outbox.slices(&mut slices);
    match Pin::new(io).poll_write_vectored(cx, &slices[..n]) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Some(Err(())),
        Poll::Ready(Ok(n)) => Some(Ok(n)),
        Poll::Pending => None,
    }
}

/// Accounts for `n` bytes the socket took: drops them off the outbox, counts them and
/// the messages they completed, tells the timers the line is not silent; returns how
/// many of those messages were live (no longer behind).
fn written(stats: &Stats, outbox: &mut Outbox, timers: &mut StreamTimers, n: usize) -> usize {
    timers.on_sent(super::now());
    stats.wrote(Transport::Sse, n);
    let done = outbox.advance(n);
    stats.delivered(Transport::Sse, done.history + done.live);
    done.live
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Serves `GET` (or `HEAD`) `/sse/{channel}` until the stream ends. A stream is
    /// never followed by another response on the same connection, so this always ends
    /// in `Next::Close`, except for a HEAD request, which is answered like any other.
    pub(super) async fn sse(&mut self, head: RequestHead, channel: &str) -> Next {
        // A bad cursor is refused before the stream begins, as an ordinary response.
        let after = match stream_cursor(&head) {
            Ok(after) => after,
            Err(r) => return self.respond(&head, r, Transport::Sse).await,
        };
        let shared = self.shared.clone();
        let stats = &shared.stats;
        let config = &shared.config;
        let framing = Framing::for_version(head.version);
        let head_request = head.method() == "HEAD";
        let stopping = shared.is_stopping();
        // HTTP/1.0 has no chunked coding: the body ends when the connection closes, so
        // the head says `Connection: close`. On HTTP/1.1 the chunked body delimits itself
        // (the connection still closes when the stream ends: nothing follows a stream).
        let keep_alive = !stopping && head.keep_alive && (head_request || framing.chunked);
        let date = super::date::now();
        let ctx = HttpContext { version: head.version, head_request, keep_alive, date: &date };
        let mut start = BytesMut::new();
        stream_response().encode_stream_head(&ctx, &mut start);
        if head_request {
            if self.io.write_all(&start).await.is_err() {
                return Next::Close;
            }
            stats.wrote(Transport::Sse, start.len());
            return if keep_alive { Next::KeepAlive } else { Next::Close };
        }
        // Snapshot and subscription are taken together: nothing falls between them.
        let (snap, rx) = match shared.broker.subscribe(channel, after).await {
            Ok(s) => s,
            Err(e) => return self.respond(&head, super::http::unavailable(&e), Transport::Sse).await,
        };
        let mut feed = Feed::new(channel, &snap, rx);
        // Let go of the head and of the request buffers (the head's bytes share the read
        // buffer's allocation): an open stream keeps only a small sink for reads.
        drop(head);
        self.buf = BytesMut::new();
        self.out = BytesMut::new();

        let _held = stats.hold(Transport::Sse);
        let mut outbox = Outbox::default();
        outbox.push(start.freeze(), Part::Control);
        outbox.push(framing.retry(config.sse_retry), Part::Control);
        if snap.truncated {
            outbox.push(framing.truncated(&snap), Part::Control);
        }
        // Messages owed to the client and not yet in the outbox, oldest first: first the
        // history it resumed into (already in memory, shared with the channel), then live
        // ones. They are framed into the outbox a batch at a time, as the socket takes them.
        let mut history_left = snap.messages.len();
        let mut owed: VecDeque<Arc<Message>> = snap.messages.into();
        // Live messages received and not yet written: how far behind the client is.
        let mut behind = 0usize;
        let mut batch: Vec<Arc<Message>> = Vec::new();
        let heartbeat_bytes = framing.heartbeat();
        // Every rule about time is the table's: this loop sleeps until its next deadline
        // and does what it says then.
        let mut timers = StreamTimers::new(config.heartbeat, super::now())
            .with_backlog_check(BACKLOG_CHECK)
            .with_coalesce(config.coalesce, COALESCE_MOST);
        // Whether the client is too far behind (`--max-queue`): judged from when its
        // socket refuses bytes until the channel is read again.
        let mut stall = Stall::default();
        // Its own waker from the first messages on, so that the channel's many wake-ups
        // cost no look at an empty socket that has not woken.
        let mut socket = SubscriberSocket::default();
        let mut alarm = Alarm::new();
        let mut shutdown = shared.watch_shutdown();
        // The shutdown future is made once and kept: made afresh in every turn of the
        // loop (once per message, for every subscriber of a busy channel), it would join
        // the watch's waiter list again each time.
        let stopping = shutdown.wait_for(|stop| *stop);
        tokio::pin!(stopping);
        // Polled once, here; then only once the server stops (`super::watch_stop`).
        let stopped_already = super::watch_stop(stopping.as_mut()).await;

        let end = 'stream: loop {
            let mut refill = |outbox: &mut Outbox| {
                while outbox.len() < WRITE_VECTORS
                    && let Some(m) = owed.pop_front()
                {
                    let piece = if history_left > 0 { Part::History } else { Part::Live };
                    history_left = history_left.saturating_sub(1);
                    outbox.push(framing.event(&m), piece);
                }
            };
            refill(&mut outbox);
            // Offer the socket what is queued now, in this turn: what the feed handed over
            // leaves without another round of the loop. And before judging a client slow:
            // many messages received at once (a late wake-up, a catch-up from history) are
            // not a slow client; what is left when the socket refuses is its backlog.
            // Messages held by `--coalesce` wait for their flush (the table's).
            let holding = timers.is_holding();
            while !outbox.is_empty() && !holding {
                match poll_fn(|cx| Poll::Ready(try_write(&mut self.io, &outbox, cx))).await {
                    Some(Ok(n)) => {
                        behind -= written(stats, &mut outbox, &mut timers, n);
                        refill(&mut outbox);
                    }
                    Some(Err(())) => break 'stream End::Gone,
                    None => break,
                }
            }
            // Until the socket takes what it refused, the channel is not read: what it
            // sends meanwhile waits in its ring and counts as behind.
            let refused = !holding && !outbox.is_empty();
            stall.on_offered(refused);
            if stall.too_far_behind(behind, || feed.pending(), config.max_queue) {
                break End::TooSlow;
            }
            timers.set_blocked(refused, super::now);
            if timers.is_closing() && outbox.is_empty() {
                break End::Finished;
            }
            alarm.set(timers.poll_timeout());
            tokio::select! {
                // Biased: writing comes before receiving more, so a client that keeps
                // up is never cut off just because the publisher is fast.
                biased;
                // Enabled until it fires once: the table is closing then, so a finished
                // future is never polled again.
                () = super::stopped(&shared, stopping.as_mut(), stopped_already), if !timers.is_closing() => {
                    // Whatever is still owed stays in history for the reconnection. Say
                    // when to come back, end the body, close (API.md: "SSE streams end
                    // after telling clients when to retry").
                    owed.clear();
                    outbox.push(framing.retry(config.sse_retry), Part::Control);
                    if let Some(end) = framing.end() {
                        outbox.push(end, Part::Control);
                    }
                    timers.on_shutdown(super::now(), config.shutdown_timeout);
                }
                io = poll_fn(|cx| {
                    let writing = !timers.is_holding();
                    let io = &mut self.io;
                    socket.poll(cx, writing && !outbox.is_empty(), true, |cx| poll_io(io, &outbox, writing, cx))
                }) => match io {
                    Io::Wrote(n) => behind -= written(stats, &mut outbox, &mut timers, n),
                    Io::Read(n) => stats.read(Transport::Sse, n),
                    Io::Closed => break End::Gone,
                },
                // A burst comes as one batch, so that it leaves in one vectored write.
                // While holding, not per message: what comes meanwhile waits in the
                // channel's ring, and is taken when the channel signals that many have come
                // (a hold that fills ends at once: the ring must not overtake us) or at the
                // flush (`Feed::next`).
                r = feed.next(&shared.broker, timers.is_holding(), &mut batch), if !timers.is_closing() && !refused => {
                    socket.on_messages();
                    stall.on_channel_read();
                    behind += batch.len();
                    owed.extend(batch.drain(..));
                    // Written now, or held to leave with what follows.
                    timers.on_queued(behind, super::now);
                    match r {
                        Ok(()) => {}
                        // Missed more than the history holds: cut, and the client,
                        // resuming with its Last-Event-ID, is told `truncated`.
                        Err(FeedEnd::Gap) => break End::TooSlow,
                        Err(FeedEnd::Closed) => break End::Gone,
                    }
                }
                now = alarm.fired(), if alarm.is_set() => match timers.handle_timeout(now) {
                    // Only into an empty queue: pending bytes keep the line busy anyway.
                    // A heartbeat's period with nothing written: the socket's own waker is let go of too.
                    Some(Timeout::Heartbeat) if outbox.is_empty() => {
                        socket.release();
                        alarm.release();
                        outbox.push(heartbeat_bytes.clone(), Part::Control);
                    }
                    Some(Timeout::Heartbeat) => {}
                    Some(Timeout::GiveUp) => break End::Stuck,
                    // Still blocked: the top of the loop judges the backlog.
                    Some(Timeout::CheckBacklog) => {}
                    // The held messages are due: the top of the loop writes them, with
                    // what the channel sent meanwhile.
                    Some(Timeout::Flush) => {
                        feed.take_ready(&mut batch);
                        behind += batch.len();
                        owed.extend(batch.drain(..));
                    }
                    None => {} // woke before a deadline that moved later
                },
            }
        };
        match end {
            // The body is complete: the last chunk (HTTP/1.1) is out, or on HTTP/1.0 the
            // close that follows ends it.
            End::Finished => Next::Close,
            // Nobody left to write to.
            End::Gone => Next::Close,
            // Cut mid-stream, without the last chunk: the client learns that the body
            // ended early (EventSource reconnects with its Last-Event-ID; curl reports a
            // transfer closed with outstanding data), and the server forgets its queue.
            End::TooSlow | End::Stuck => Next::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream, duplex};
    use tokio::task::JoinHandle;
    use tokio::time::{Instant, sleep};

    use super::*;
    use crate::app::hub::Hub;
    use crate::config::Config;
    use crate::net::Shared;
    use crate::net::counted::{Counted, Counts};
    use crate::proto::http::{HeadLimits, parse_head};

    fn head(raw: &str) -> RequestHead {
        let limits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 0 };
        parse_head(&mut BytesMut::from(raw), &limits).unwrap().unwrap()
    }

    #[test]
    fn last_event_id_wins_over_after() {
        let c = |raw: &str| stream_cursor(&head(raw)).map_err(|r| r.status);
        assert_eq!(c("GET /sse/a HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(None));
        assert_eq!(c("GET /sse/a?after=4 HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(Some(4)));
        assert_eq!(c("GET /sse/a?after=4 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 9\r\n\r\n"), Ok(Some(9)));
        assert_eq!(c("GET /sse/a HTTP/1.1\r\nHost: x\r\nlast-event-id:  12 \r\n\r\n"), Ok(Some(12)));
        assert_eq!(c("GET /sse/a?after=4 HTTP/1.1\r\nHost: x\r\nLast-Event-ID:\r\n\r\n"), Ok(Some(4)));
        assert_eq!(c("GET /sse/a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: x1\r\n\r\n"), Err(400));
        assert_eq!(c("GET /sse/a?after=-1 HTTP/1.1\r\nHost: x\r\n\r\n"), Err(400));
    }

    #[test]
    fn framing_chunked_and_bare() {
        let c = Framing::for_version(Version::Http11);
        let b = Framing::for_version(Version::Http10);
        assert_eq!(&c.retry(Duration::from_millis(3000))[..], b"d\r\nretry: 3000\n\n\r\n");
        assert_eq!(&b.retry(Duration::from_millis(3000))[..], b"retry: 3000\n\n");
        assert_eq!(&c.heartbeat()[..], b"4\r\n: \n\n\r\n");
        assert_eq!(&b.heartbeat()[..], b": \n\n");
        assert_eq!(c.end().as_deref(), Some(&b"0\r\n\r\n"[..]));
        assert_eq!(b.end(), None);
    }

    #[test]
    fn truncated_event_has_data_and_resumes_before_the_retained() {
        let hub = Hub::new(2, 8);
        for i in 1..=5 {
            hub.publish("a", Bytes::from(format!("m{i}"))).unwrap();
        }
        let snap = hub.since("a", Some(1));
        let bare = Framing { chunked: false };
        assert_eq!(&bare.truncated(&snap)[..], b"id: 3\nevent: truncated\ndata: {\"truncated\":true}\n\n");
        // A cursor from the future with an empty channel: the id is the head.
        let snap = hub.since("empty", Some(7));
        assert!(snap.truncated);
        assert!(bare.truncated(&snap).starts_with(b"id: 0\n"));
    }

    #[test]
    fn events_are_the_shared_bytes() {
        let hub = Hub::new(4, 8);
        let m = hub.publish("a", Bytes::from("hi")).unwrap();
        let (c, b) = (Framing { chunked: true }, Framing { chunked: false });
        // Two subscribers' queues hold the same allocation, not two copies.
        let (mut one, mut two) = (Outbox::default(), Outbox::default());
        one.push(c.event(&m), Part::Live);
        two.push(c.event(&m), Part::Live);
        let mut s1 = [IoSlice::new(&[])];
        let mut s2 = [IoSlice::new(&[])];
        one.slices(&mut s1);
        two.slices(&mut s2);
        assert!(std::ptr::eq(s1[0].as_ptr(), s2[0].as_ptr()));
        assert!(std::ptr::eq(s1[0].as_ptr(), m.sse_chunk().as_ptr()));
        assert!(std::ptr::eq(b.event(&m).as_ptr(), m.sse_event().as_ptr()));
    }

    #[test]
    fn outbox_partial_writes_and_message_count() {
        let d = |history, live| Delivered { history, live };
        let mut o = Outbox::default();
        o.push(Bytes::from_static(b"head"), Part::Control);
        o.push(Bytes::from_static(b"one"), Part::History);
        o.push(Bytes::new(), Part::Live); // nothing to write: not queued
        o.push(Bytes::from_static(b"two"), Part::Live);
        assert_eq!(o.len(), 3);
        assert_eq!(o.advance(2), d(0, 0));
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(o.slices(&mut slices), 2, "limited by the slots");
        assert_eq!((&*slices[0], &*slices[1]), (&b"ad"[..], &b"one"[..]));
        assert_eq!(o.advance(5), d(1, 0), "head's rest and `one` are out");
        assert_eq!(o.advance(2), d(0, 0));
        assert_eq!(o.advance(1), d(0, 1));
        assert!(o.is_empty());
        assert_eq!(o.advance(5), d(0, 0));
    }

    // The driver and its timer table together, under paused time (tokio's test-util):
    // the clock stands still while any task can run and jumps straight to the next timer
    // when all wait, so each deadline is checked to the millisecond, in memory (a duplex
    // pipe of `pipe` bytes, no socket), without waiting for it.

    const HEARTBEAT: &[u8] = b"4\r\n: \n\n\r\n";

    /// `GET /sse/beat` served on one end of a pipe; the client's end, and the stream's task.
    fn stream(config: Config, pipe: usize) -> (DuplexStream, Arc<Shared>, JoinHandle<Next>) {
        let shared = Arc::new(Shared::new(config, None));
        let (client, server) = duplex(pipe);
        (client, shared.clone(), serve_beat(server, shared))
    }

    /// As `stream`, with a server end that counts what is done with it.
    fn counted_stream(config: Config, pipe: usize) -> (DuplexStream, Arc<Shared>, JoinHandle<Next>, Arc<Counts>) {
        let shared = Arc::new(Shared::new(config, None));
        let (client, server) = duplex(pipe);
        let counts = Arc::new(Counts::default());
        let server = Counted { inner: server, counts: counts.clone() };
        (client, shared.clone(), serve_beat(server, shared), counts)
    }

    fn serve_beat<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        server: S,
        shared: Arc<Shared>,
    ) -> JoinHandle<Next> {
        let mut conn = Conn::new(server, shared);
        tokio::spawn(async move { conn.sse(head("GET /sse/beat HTTP/1.1\r\nHost: x\r\n\r\n"), "beat").await })
    }

    /// Reads up to and including the event whose data is `data`.
    async fn read_event(client: &mut DuplexStream, data: &str) {
        read_through(client, format!("data: {data}\n\n\r\n").as_bytes()).await;
    }

    /// A stream that messages wake looks at its empty socket only when the socket woke
    /// it: once the socket holds its own waker (`SubscriberSocket`, from the first
    /// message on), a message costs no look at it.
    #[tokio::test(start_paused = true)]
    async fn a_stream_woken_by_messages_looks_at_its_socket_only_when_it_woke() {
        use std::sync::atomic::Ordering::Relaxed;
        const N: usize = 20;
        let (mut client, shared, _task, counts) = counted_stream(Config::default(), 64 * 1024);
        read_past_the_head(&mut client).await;
        let before = counts.reads.load(Relaxed);
        for i in 0..N {
            shared.broker.publish("beat", Bytes::from(format!("m{i}"))).await.unwrap();
            read_event(&mut client, &format!("m{i}")).await;
        }
        let tries = counts.reads.load(Relaxed) - before;
        assert!(tries <= 2, "{tries} read tries for {N} messages (at most 2; looked at in every turn: N or more)");
    }

    /// A client that leaves while messages keep the stream's task busy is noticed at
    /// once all the same, however long its socket has gone unlooked-at.
    #[tokio::test(start_paused = true)]
    async fn a_stream_not_looking_at_its_socket_still_sees_the_client_leave() {
        let (mut client, shared, task) = stream(Config::default(), 64 * 1024);
        read_past_the_head(&mut client).await;
        for i in 0..5 {
            shared.broker.publish("beat", Bytes::from(format!("m{i}"))).await.unwrap();
            read_event(&mut client, &format!("m{i}")).await;
        }
        let left = Instant::now();
        drop(client);
        assert_eq!(task.await.unwrap(), Next::Close);
        assert_eq!(left.elapsed(), Duration::ZERO, "at once, not at the next heartbeat's write");
    }

    /// Reads exactly `n` bytes.
    async fn read(client: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        client.read_exact(&mut got).await.unwrap();
        got
    }

    /// Reads up to and including the first `retry:` chunk, which follows the head.
    async fn read_past_the_head(client: &mut DuplexStream) {
        read_through(client, b"\r\n\r\nd\r\nretry: 3000\n\n\r\n").await;
    }

    /// Reads up to and including the first `end`.
    async fn read_through(client: &mut DuplexStream, end: &[u8]) {
        let mut got = Vec::new();
        while !got.ends_with(end) {
            got.push(client.read_u8().await.unwrap());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_come_after_each_period_with_nothing_written() {
        let beat = Duration::from_secs(15);
        let (mut client, shared, task) = stream(Config { heartbeat: beat, ..Config::default() }, 64 * 1024);
        let opened = Instant::now();
        read_past_the_head(&mut client).await;
        for n in 1..=2 {
            assert_eq!(read(&mut client, HEARTBEAT.len()).await, HEARTBEAT);
            assert_eq!(opened.elapsed(), beat * n, "heartbeat {n}");
        }
        // An event half a period later restarts the silence: the next heartbeat comes a
        // full period after it, not at the old deadline.
        sleep(beat / 2).await;
        shared.broker.publish("beat", Bytes::from("x")).await.unwrap();
        let event = b"f\r\nid: 1\ndata: x\n\n\r\n";
        assert_eq!(read(&mut client, event.len()).await, event);
        assert_eq!(read(&mut client, HEARTBEAT.len()).await, HEARTBEAT);
        assert_eq!(opened.elapsed(), beat * 2 + beat / 2 + beat);
        // Shutting down: the `retry:` and the last chunk, at once, and the stream is over.
        shared.stop();
        let stopped = Instant::now();
        let goodbye = b"d\r\nretry: 3000\n\n\r\n0\r\n\r\n";
        assert_eq!(read(&mut client, goodbye.len()).await, goodbye);
        assert_eq!(task.await.unwrap(), Next::Close);
        assert_eq!(stopped.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_nothing_is_given_up_at_the_shutdown_timeout() {
        let config =
            Config { heartbeat: Duration::from_secs(1), shutdown_timeout: Duration::from_secs(5), ..Config::default() };
        // The pipe takes the head's first 16 bytes; the client reads none of them.
        let (mut client, shared, task) = stream(config.clone(), 16);
        sleep(Duration::from_secs(10)).await;
        shared.stop();
        let stopped = Instant::now();
        assert_eq!(task.await.unwrap(), Next::Close);
        assert_eq!(stopped.elapsed(), config.shutdown_timeout, "given up exactly at the deadline");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r");
    }

    #[tokio::test(start_paused = true)]
    async fn no_heartbeat_is_queued_behind_bytes_the_client_has_not_taken() {
        let beat = Duration::from_secs(1);
        let (mut client, _shared, _task) = stream(Config { heartbeat: beat, ..Config::default() }, 16);
        let opened = Instant::now();
        // Ten heartbeats fall due while the head waits in the full pipe: none is queued.
        sleep(beat * 10).await;
        read_past_the_head(&mut client).await;
        // The next comes a period after the head's last bytes were written.
        assert_eq!(read(&mut client, HEARTBEAT.len()).await, HEARTBEAT);
        assert_eq!(opened.elapsed(), beat * 11);
    }

    /// A client that stopped reading: once its socket refuses bytes the stream takes
    /// nothing from the channel (were it to take the messages published meanwhile, it
    /// would be past `--max-queue` at once), and at its backlog check what the channel
    /// sent meanwhile counts and the stream is cut.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stopped_reading_takes_nothing_and_is_cut_at_its_backlog_check() {
        const QUEUE: usize = 8;
        let (_client, shared, task) = stream(Config { max_queue: QUEUE, ..Config::default() }, 4 * 1024);
        let publish = |n: usize| {
            let shared = shared.clone();
            async move {
                for _ in 0..n {
                    shared.broker.publish("beat", Bytes::from("x".repeat(1000))).await.unwrap();
                }
            }
        };
        sleep(Duration::from_millis(1)).await; // the head is written
        publish(QUEUE).await; // taken: some fill the pipe of 4 KiB, the rest wait
        sleep(Duration::from_millis(1)).await;
        let blocked = Instant::now();
        publish(30).await;
        sleep(BACKLOG_CHECK - Duration::from_millis(2)).await;
        assert!(!task.is_finished(), "38 published, but what was not taken is judged only at the check");
        sleep(Duration::from_millis(2)).await;
        assert!(task.is_finished(), "cut at the check");
        assert_eq!(task.await.unwrap(), Next::Close);
        assert!(blocked.elapsed() <= BACKLOG_CHECK + Duration::from_millis(1));
    }

    /// With `--coalesce`, the first event leaves at once; those published within the
    /// interval after that write leave together at its end; one after a quiet spell
    /// leaves at once again.
    #[tokio::test(start_paused = true)]
    async fn coalesced_events_leave_together_one_interval_after_the_last_write() {
        const EVERY: Duration = Duration::from_millis(20);
        let (mut client, shared, _task) = stream(Config { coalesce: EVERY, ..Config::default() }, 64 * 1024);
        read_past_the_head(&mut client).await;
        let publish = |i: u32| {
            let shared = shared.clone();
            async move { shared.broker.publish("beat", Bytes::from(format!("m{i}"))).await.unwrap() }
        };
        // Reads up to the end of event `i` and says when it came.
        let mut until = async |i: u32| {
            let end = format!("id: {i}\ndata: m{i}\n\n\r\n");
            let mut got = Vec::new();
            while !got.ends_with(end.as_bytes()) {
                got.push(client.read_u8().await.unwrap());
            }
            Instant::now()
        };
        let start = Instant::now();
        publish(1).await;
        assert_eq!(until(1).await, start, "the first: at once");
        sleep(Duration::from_millis(5)).await;
        publish(2).await;
        sleep(Duration::from_millis(5)).await;
        publish(3).await;
        assert_eq!(until(2).await, start + EVERY, "held until an interval after the last write");
        assert_eq!(until(3).await, start + EVERY, "the one published while 2 was held goes with it");
        sleep(EVERY * 3).await;
        let quiet = Instant::now();
        publish(4).await;
        assert_eq!(until(4).await, quiet, "after a quiet spell: at once");
    }

    /// A channel that sends more in one interval than the ring and the history hold does
    /// not overtake a coalescing stream (see `net::ws` for why).
    #[tokio::test(start_paused = true)]
    async fn a_channel_faster_than_a_hold_overtakes_no_coalescing_stream() {
        const EVERY: Duration = Duration::from_secs(1);
        let config = Config { coalesce: EVERY, max_queue: 100, history: 100, ..Config::default() };
        let (mut client, shared, _task) = stream(config, 1024 * 1024);
        read_past_the_head(&mut client).await;
        let start = Instant::now();
        shared.broker.publish("beat", Bytes::from("m0")).await.unwrap();
        for c in 0..6 {
            sleep(Duration::from_millis(1)).await;
            for i in 0..50 {
                shared.broker.publish("beat", Bytes::from(format!("m{}", 1 + c * 50 + i))).await.unwrap();
            }
        }
        let mut got = Vec::new();
        for i in 0..=300 {
            let event = format!("id: {}\ndata: m{i}\n\n\r\n", i + 1);
            while !got.ends_with(event.as_bytes()) {
                got.push(client.read_u8().await.unwrap());
            }
        }
        assert!(start.elapsed() < EVERY, "none waited for the interval: {:?}", start.elapsed());
    }
}
