//! The pure codecs: no tokio, no clock, no sockets. Bytes in, events or "need more"
//! out; events in, bytes out. Partial input is normal, never an error.
//!
//! - [`http`]: HTTP/1.1 request heads, bodies and responses (RFC 9112).
//! - [`sse`]: the `text/event-stream` encoder and parser (WHATWG HTML §9.2).
//! - [`ws`]: WebSocket framing, masking, handshake and message session (RFC 6455).

pub mod http;
pub mod sse;
pub mod ws;

/// Which end of a connection: the client (it sends requests and, on WebSocket, masks
/// its frames) or the server. Says which end a session or a tap is, and which end wrote
/// the bytes an HTTP message stream reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}
