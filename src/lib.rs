//! wire-academy: the four ways a server pushes data to a browser (short polling, long
//! polling, Server-Sent Events, WebSocket), written from bare TCP sockets upward, with
//! every byte on the wire visible.
//!
//! # Layout
//!
//! ```text
//! config.rs     every limit and default, named, in one place
//! proto/        pure codecs (sans-I/O): bytes in, events out; events in, bytes out
//!   http/       request head parser, body decoders, response writer (RFC 9112)
//!   ws/         WebSocket (RFC 6455): handshake, frame header, masking, UTF-8,
//!               the message session (fragments, control frames, closing), annotations
//! trace/        the hexdump formatter and annotator (pure) and the tap around a stream
//! net/          thin tokio drivers: accept loop, limits, shutdown, the HTTP driver,
//!               the WebSocket driver (one full-duplex select loop per connection)
//! app/          routes, the channel hub (ids, history, cursors, shared encodings),
//!               counters
//! ```
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

pub mod app;
pub mod config;
pub mod net;
pub mod proto;
pub mod trace;
