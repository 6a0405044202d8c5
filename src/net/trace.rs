//! `GET /trace`: the byte trace, live, as a `text/event-stream`, for the dashboard's
//! trace pane. It exists only while the server traces (`--trace-bytes`, `--trace-out`);
//! otherwise the answer is `404`, saying how to turn it on.
//!
//! **What it exposes: every byte of every connection to this server**, not only the
//! watcher's: every request and response, every header (cookies and `Authorization`
//! included), every message of every channel, from every client. That is what a learner
//! on their own machine wants to see, and why it exists only when tracing is explicitly
//! on. Never run a traced server where other people connect to it.
//!
//! ```text
//! : the byte trace of every connection (…)      a comment, for whoever reads it raw
//! data: #7 read 95 bytes from 127.0.0.1:50632 +0.000131s
//! data: 00000000: 4745 5420 2f70 6f6c 6c2f …      each trace block is one event,
//! data:   00000000+34    http request line: …      one data line per line of the block
//!
//! event: skipped                                  a watcher that fell behind is told
//! data: 12                                        how many blocks it missed
//! ```
//!
//! The blocks are the tracer's own ([`Tracer::watch`](crate::trace::Tracer::watch)), formatted once, for the output
//! and for every watcher. This connection's own bytes are kept out of them
//! ([`trace::unwatched`](crate::trace::unwatched)): each block sent here would otherwise
//! be traced as a new block, sent here in turn, without end.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::timeout;

use super::Alarm;
use super::http::{Conn, Next};
use super::sse::Framing;
use crate::app::stats::Transport;
use crate::config::{SSE_READ_SINK, TRACE_WRITE_TIMEOUT};
use crate::proto::http::response::Context as HttpContext;
use crate::proto::http::{RequestHead, Response};
use crate::proto::sse;
use crate::proto::sse_timers::{StreamTimers, Timeout};

/// The answer when tracing is off.
pub const TRACE_OFF: &str = "the live trace is off: start the server with --trace-bytes (or --trace-out FILE) \
     to watch every byte of every connection here. It shows every connection, not only yours: \
     only on your own machine.\n";

/// The comment that opens the stream.
const PREAMBLE: &str = "the byte trace of every connection to this server, every byte of every client: for \
     local teaching only (see src/net/trace.rs)";

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Serves `GET` (or `HEAD`) `/trace` until the watcher leaves or the server stops.
    pub(super) async fn trace(&mut self, head: RequestHead) -> Next {
        let shared = self.shared.clone();
        let Some(tracer) = shared.tracer.clone() else {
            return self.respond(&head, Response::text(404, TRACE_OFF), Transport::Other).await;
        };
        let config = &shared.config;
        let framing = Framing::for_version(head.version);
        let head_request = head.method() == "HEAD";
        let keep_alive = !shared.is_stopping() && head.keep_alive && (head_request || framing.chunked);
        let date = super::date::now();
        let ctx = HttpContext { version: head.version, head_request, keep_alive, date: &date };
        let mut start = BytesMut::new();
        Response::new(200)
            .header("Content-Type", "text/event-stream")
            .header("Cache-Control", "no-cache")
            .header("X-Accel-Buffering", "no")
            .encode_stream_head(&ctx, &mut start);
        if head_request {
            return match self.write(start.freeze()).await {
                true if keep_alive => Next::KeepAlive,
                _ => Next::Close,
            };
        }
        // From here on, this connection's bytes stay out of the live trace.
        crate::trace::unwatched();
        let mut blocks = tracer.watch();
        drop(head);
        self.buf = BytesMut::with_capacity(SSE_READ_SINK);
        start.extend_from_slice(&framing.retry(config.sse_retry));
        start.extend_from_slice(&wrap(framing, sse::encode_comment(PREAMBLE)));
        if !self.write(start.freeze()).await {
            return Next::Close;
        }
        let _held = shared.stats.hold(Transport::Other);
        // Heartbeats follow the event stream's one rule (`proto::sse_timers`): due after
        // `--heartbeat` with nothing written.
        let mut timers = StreamTimers::new(config.heartbeat, super::now());
        let mut alarm = Alarm::new();
        let mut shutdown = shared.watch_shutdown();
        // Made once, not per turn of the loop; the watch's guard is dropped inside it, so
        // none is held across the awaits below.
        let stopping = async { drop(shutdown.wait_for(|stop| *stop).await) };
        tokio::pin!(stopping);
        loop {
            alarm.set(timers.poll_timeout());
            let out = tokio::select! {
                r = blocks.recv() => match r {
                    Ok(block) => event(framing, None, block.trim_end_matches('\n')),
                    Err(RecvError::Lagged(n)) => event(framing, Some("skipped"), &n.to_string()),
                    Err(RecvError::Closed) => break,
                },
                now = alarm.fired(), if alarm.is_set() => match timers.handle_timeout(now) {
                    Some(Timeout::Heartbeat) => framing.heartbeat(),
                    // Woke before a deadline that moved later. (Never `GiveUp`: this
                    // stream ends on shutdown at once, each write bounded on its own;
                    // never `CheckBacklog` or `Flush`: its table has neither.)
                    Some(Timeout::GiveUp | Timeout::CheckBacklog | Timeout::Flush) | None => continue,
                },
                // Read only to notice the watcher leaving; what it sends is dropped.
                r = self.io.read_buf(&mut self.buf) => match r {
                    Ok(n) if n > 0 => {
                        self.buf.clear();
                        continue;
                    }
                    _ => return Next::Close,
                },
                () = &mut stopping => match framing.end() {
                    Some(end) => {
                        self.write(end).await;
                        break;
                    }
                    None => break,
                },
            };
            if !self.write(out).await {
                break;
            }
            timers.on_sent(super::now());
        }
        Next::Close
    }

    /// Writes `bytes` within [`TRACE_WRITE_TIMEOUT`]; says whether it went out.
    async fn write(&mut self, bytes: Bytes) -> bool {
        let ok = matches!(timeout(TRACE_WRITE_TIMEOUT, self.io.write_all(&bytes)).await, Ok(Ok(())));
        if ok {
            self.shared.stats.wrote(Transport::Other, bytes.len());
        }
        ok
    }
}

/// One event, framed for the stream.
fn event(framing: Framing, name: Option<&str>, data: &str) -> Bytes {
    if framing.chunked { sse::encode_event_chunk(None, name, data) } else { sse::encode_event_bytes(None, name, data) }
}

/// An encoded piece, in a chunk on HTTP/1.1.
fn wrap(framing: Framing, payload: Bytes) -> Bytes {
    if framing.chunked { sse::http_chunk(&payload) } else { payload }
}
