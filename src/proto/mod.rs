//! The pure codecs: no tokio, no clock, no sockets. Bytes in, events or "need more"
//! out; events in, bytes out. Partial input is normal, never an error.
//!
//! - [`http`]: HTTP/1.1 request heads, bodies and responses (RFC 9112).
//! - [`resp`]: RESP, the Redis protocol (the Redis broker's client side).
//! - [`sse`]: the `text/event-stream` encoder and parser (WHATWG HTML §9.2).
//! - [`ws`]: WebSocket framing, masking, handshake and message session (RFC 6455).

pub mod http;
pub mod resp;
pub mod sse;
pub mod ws;
