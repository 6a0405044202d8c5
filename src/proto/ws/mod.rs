//! WebSocket, RFC 6455: a pure, sans-I/O codec.
//!
//! Bytes in, events (or "need more bytes") out; calls in, bytes out. No
//! sockets, no async runtime, no clock and no randomness live here: the
//! driver in `net/` owns the socket and sleeps until the deadlines that
//! [`liveness`] computes from the instants it is given, and a client passes
//! its masking keys in. That keeps every rule below testable with plain byte
//! arrays, split at any offset.
//!
//! # Module map, in the order a connection uses them
//!
//! | file | RFC 6455 | what it does |
//! | --- | --- | --- |
//! | [`handshake`] | §1.3, §4 | the HTTP Upgrade: check the client's request, build the `101` (or the 400/403/426), and the client's side of it |
//! | [`frame`] | §5.2, §5.5.1, §7.4 | the frame header: parse, encode, describe; a frame's parts and their byte ranges ([`FrameParts`]); opcodes; close codes |
//! | [`mask`] | §5.3 | XOR masking, byte-wise reference and word-at-a-time fast path |
//! | [`utf8`] | §5.6, §8.1 | incremental fail-fast UTF-8 validation, and [`Utf8Bytes`] |
//! | [`session`] | §5.4-§5.6, §7 | the connection state machine: reassembly, control frames, closing, protocol errors |
//! | [`liveness`] | §5.5.2, §5.5.3, §7.1.1 | the server's timers as data: when to ping, when a silent peer is a zombie, how long closing may take |
//! | [`annotate`] | §5 | a frame's parts in words, for the byte trace and `decode ws` |
//!
//! # Data path
//!
//! ```text
//! socket ─► Session::read_buf ─► next_event ─► Event::{Text, Binary, Ping, Pong, Close, ProtocolError}
//!                                   │  (frame::FrameHeader::parse, mask::apply_mask, utf8::Utf8Validator)
//! app ─► send_text / send_binary / send_ping / close ─► take_outgoing ─► socket
//! ```
//!
//! The session also queues the protocol's own answers (a Pong for each Ping,
//! the echo of a Close, the Close that reports a protocol error), so the
//! driver's loop is simply: read, drain events, write what is queued, and
//! close the TCP connection once the session says it is closed.

pub mod annotate;
pub mod frame;
pub mod handshake;
pub mod liveness;
pub mod mask;
pub mod session;
pub mod utf8;

pub use annotate::annotate_frame;
pub use frame::{
    CloseBody, FrameError, FrameHeader, FrameParts, LenForm, OpCode, close_code_is_valid, close_code_name, encode_frame,
};
pub use handshake::{
    Accepted, HandshakeError, HandshakeOptions, accept_key, client_request, client_verify, server_accept,
};
pub use mask::apply_mask;
pub use session::{CloseState, Event, Role, SendError, Session, SessionLimits, Violation, encode_server_text};
pub use utf8::{Utf8Bytes, Utf8Error, Utf8Validator};
