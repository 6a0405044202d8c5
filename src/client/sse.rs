//! The SSE client: what a browser's `EventSource` does, by hand.
//!
//! `GET /sse/{channel}` with `Accept: text/event-stream`; the body (chunked, or until
//! close on HTTP/1.0) goes through the project's WHATWG parser (`proto::sse`). When an
//! open stream ends or breaks, the client waits the reconnection time (the last `retry:`
//! any stream sent, none until one does) or the backoff's delay when that is longer, and
//! reconnects with `Last-Event-ID`, so the server resumes exactly after the last event
//! received (WHATWG HTML §9.2.3, "reestablish the connection"). The backoff is jittered,
//! doubles on each attempt and starts again once a stream delivers bytes. When an attempt
//! itself fails (no connection, no head in time, a status or type that is not an event
//! stream), the client waits the backoff's delay alone, as every client loop does
//! (`poll::retry`), and tries again where an `EventSource` would give up on a bad status.

use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::backoff::Backoff;
use super::http::HttpClient;
use super::poll::{Round, next_round, publish, retry};
use super::sink::{Delivery, Sink, status};
use super::{ClientConfig, Ended};
use crate::proto::http::{Event, Unit};
use crate::proto::sse::Parser;

const TRANSPORT: &str = "sse";
/// How long to wait for the response head.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Runs the SSE client until `--count` is reached (or forever). With `first_byte` (the
/// cascade's probe), a stream on which nothing at all arrives within that time, not
/// even the `retry:` line or a heartbeat, ends with [`Ended::Fallback`]: something in
/// between is buffering the stream.
pub async fn run(
    cfg: &ClientConfig,
    sink: &mut Sink,
    sends: &mut Vec<String>,
    first_byte: Option<Duration>,
) -> io::Result<Ended> {
    let mut http = HttpClient::new(&cfg.url.authority, cfg.taps());
    let mut backoff = Backoff::default();
    // The reconnection time: the server's `retry:` when it sent one.
    let mut reconnect: Option<Duration> = None;
    loop {
        let cursor = match next_round(&mut http, cfg, sink, &mut backoff, TRANSPORT).await {
            Round::Done => return Ok(Ended::Done),
            Round::Again => continue,
            Round::From(c) => c,
        };
        let id = cursor.to_string();
        let headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache"), ("Last-Event-ID", id.as_str())];
        let target = cfg.url.target(&format!("/sse/{}", cfg.channel));
        let opened = http.open("GET", &target, &headers, first_byte.unwrap_or(CONNECT_LIMIT)).await;
        let (head, mut conn, mut buf, mut body) = match opened {
            Ok(o) => o,
            // Probing: not even the head arrived in time (a buffering proxy holds it).
            Err(e) if first_byte.is_some() => {
                return Ok(Ended::Fallback(format!("{e}: something in between holds the stream")));
            }
            Err(e) => {
                retry(cfg, &mut backoff, TRANSPORT, &e).await;
                continue;
            }
        };
        let is_stream = head.header("content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
        if head.status != 200 || !is_stream {
            // WHATWG: a wrong status or type "fails the connection": EventSource stops.
            // A command-line client is more useful if it says so and keeps trying.
            let e = io::Error::other(format!("{target} answered {} (not an event stream)", head.status));
            if first_byte.is_some() {
                return Ok(Ended::Fallback(e.to_string()));
            }
            retry(cfg, &mut backoff, TRANSPORT, &e).await;
            continue;
        }
        let mut parser = Parser::new();
        let mut got_bytes = false;
        let mut first_deadline = first_byte.map(|d| tokio::time::Instant::now() + d);
        let ended = loop {
            // Hand the body's bytes that have arrived (chunked on HTTP/1.1, until close
            // on HTTP/1.0: the message stream knows which) to the parser, then the
            // parser's events to the sink.
            let ended = loop {
                match body.read(&mut buf) {
                    Ok(Some(Unit { event: Event::Data(_), bytes })) => {
                        parser.feed(&bytes);
                        got_bytes |= !bytes.is_empty();
                    }
                    Ok(Some(Unit { event: Event::End, .. })) => break Some("the server ended the stream".to_string()),
                    Ok(Some(_)) => {}
                    Ok(None) => break None,
                    Err(e) => break Some(format!("chunked framing error: {}", e.explain())),
                }
            };
            if got_bytes {
                first_deadline = None;
            }
            loop {
                match parser.next_event() {
                    Ok(Some(ev)) => {
                        let d = if ev.event_type == "truncated" {
                            // Its id is where the retained messages begin: resume there
                            // (after a server restart, lower than the old cursor).
                            if let Ok(id) = ev.last_event_id.parse::<u64>() {
                                sink.cursor = Some(id);
                            }
                            Delivery::Truncated
                        } else {
                            match ev.last_event_id.parse::<u64>() {
                                Ok(id) => Delivery::Message { id, data: ev.data },
                                Err(_) => continue, // not one of ours: no id
                            }
                        };
                        if sink.deliver(TRANSPORT, d) {
                            return Ok(Ended::Done);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                }
            }
            if let Some(ms) = parser.retry() {
                reconnect = Some(Duration::from_millis(ms));
            }
            if let Some(why) = ended {
                break why;
            }
            if got_bytes {
                backoff.reset();
                sink.established(TRANSPORT);
                // The stream is established: publish what was asked, once.
                while let Some(text) = sends.first() {
                    match publish(&mut http, cfg, text).await {
                        Ok(_) => {
                            sends.remove(0);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let read = conn.read_buf(&mut buf);
            let n = match first_deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Ok(Ended::Fallback(format!(
                            "nothing arrived on the stream within {:?}: something in between buffers it",
                            first_byte.unwrap_or_default()
                        )));
                    }
                },
                None => read.await,
            };
            match n {
                Ok(0) => break "the connection closed".to_string(),
                Ok(_) => {}
                Err(e) => break e.to_string(),
            }
        };
        if first_byte.is_some() && !got_bytes {
            return Ok(Ended::Fallback(format!("{ended} before anything arrived on the stream")));
        }
        // Reconnect after the server's retry delay (WHATWG HTML §9.2.3: "wait a delay
        // equal to the reconnection time"), or the backoff's if it is longer ("user agents
        // might introduce an exponential backoff delay" after failed attempts).
        let delay = backoff.delay().max(reconnect.unwrap_or_default());
        super::meter::failed(&cfg.meter, &ended);
        status(&format!(
            "[sse] {ended}; reconnecting in {} ms with Last-Event-ID: {}",
            delay.as_millis(),
            sink.cursor.unwrap_or(cursor)
        ));
        tokio::time::sleep(delay).await;
    }
}
