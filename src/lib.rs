//! wire-academy: the four ways a server pushes data to a browser (short polling, long
//! polling, Server-Sent Events, WebSocket), written from bare TCP sockets upward, with
//! every byte on the wire visible.
//!
//! # Layout
//!
//! ```text
//! config.rs     the program's settings and their defaults, each named once (clap's
//!               defaults are these constants); each codec owns its protocol limits
//! proto/        pure codecs (sans-I/O): bytes in, events out; events in, bytes out;
//!               proto::Role, which end of a connection
//!   http/       request head parser, chunked decoder, response writer and parser, and
//!               stream.rs: a connection as two streams of messages (RFC 9112 §6.3
//!               framing, HEAD, 1xx, the switch after 101), stepped by every reader
//!   resp.rs     RESP, the Redis protocol (the Redis broker's side of it)
//!   sse.rs      text/event-stream encoder and parser, each field's effect (WHATWG HTML §9.2)
//!   sse_timers.rs  an event stream's heartbeat and shutdown deadlines, as data
//!   ws/         WebSocket (RFC 6455): handshake, frame header and parts, masking, UTF-8,
//!               the message session (fragments, control frames, closing), the
//!               liveness timers as data (liveness.rs), a frame's parts in words
//! trace/        the hexdump formatter and annotator (pure) and the tap around a stream
//! net/          thin tokio drivers: accept loop, limits, shutdown, one timer per stream
//!   http.rs     the HTTP/1.1 connection: requests, short and long polls, the upgrade
//!   sse.rs      an SSE stream: one full-duplex loop per subscriber
//!   ws.rs       a WebSocket: one full-duplex select loop per connection
//!   trace.rs    `GET /trace`: the byte trace, live, as an event stream (tracing on only)
//! app/          routes, the brokers: the channel hub (ids, history, cursors, shared
//!               encodings) and Redis (several instances, one system), counters, the
//!               dashboard page (`GET /`)
//! client/       the clients: a hand-written HTTP/1.1 client, one loop per transport,
//!               and the negotiation cascade
//! compare/      `compare`: the four transports at once, measured at the clients' sockets
//! proxy.rs      a hostile middlebox: blocks upgrades, buffers streams, cuts idle links, adds latency
//! study/        `vectors` (the RFC test vectors, run) and `decode` (pasted hex, annotated)
//! random.rs     randomness from the operating system (masking keys, session ids)
//! ```
//!
//! Beside `src/`: `tests/` (the suites, with real peers), `bench/` (the benchmark
//! harness, a workspace of its own), `scripts/` (`test.sh`, the Autobahn runner), `docs/`
//! (the reference and the guides, checked against the program).
//!
//! # The sans-I/O contract
//!
//! Nothing under `proto/` or `trace::{hexdump, annotate}` touches a socket, a task or a
//! clock. A parser takes a buffer and returns `Ok(None)` when it needs more bytes, an
//! event when it has one, or a typed error that names the answer to send. That is what
//! lets every parser be tested on byte strings, split at every offset, with no network.
//!
//! The data path reads left to right: socket -> trace tap -> driver buffer -> codec ->
//! events -> app.
//!
//! For example, the request parser on bytes that arrive in two reads:
//!
//! ```
//! use bytes::BytesMut;
//! use wire_academy::proto::http::{parse_head, BodyKind, HeadLimits};
//!
//! let limits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 1 << 20 };
//! let mut buf = BytesMut::from(&b"POST /publish/lobby HTTP/1.1\r\nHost: x\r\nContent-Le"[..]);
//! assert!(parse_head(&mut buf, &limits).unwrap().is_none()); // not an error: need more
//!
//! buf.extend_from_slice(b"ngth: 5\r\n\r\nhello");
//! let head = parse_head(&mut buf, &limits).unwrap().unwrap();
//! assert_eq!((head.method(), head.path()), ("POST", "/publish/lobby"));
//! assert_eq!(head.body, BodyKind::Length(5));
//! assert_eq!(&buf[..], b"hello"); // the body stays in the buffer, for the message stream to frame
//! ```

pub mod app;
pub mod client;
pub mod compare;
pub mod config;
/// The invariants the fuzz targets check (`fuzz/`), shared with `tests/fuzz_corpus.rs`.
#[doc(hidden)]
pub mod fuzzing;
pub mod net;
pub mod proto;
pub mod proxy;
pub mod random;
pub mod study;
pub mod trace;
