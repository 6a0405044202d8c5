//! The pure codecs: no tokio, no clock, no sockets. Bytes in, events or "need more"
//! out; events in, bytes out. Partial input is normal, never an error.
//!
//! - [`http`]: HTTP/1.1 request heads, bodies and responses (RFC 9112).
//! - [`sse`]: the `text/event-stream` encoder and parser (WHATWG HTML §9.2).
//! - [`sse_timers`]: an open event stream's timers as data: heartbeats, and how long a
//!   shutdown's last bytes may take (WHATWG HTML §9.2.7).
//! - [`ws`]: WebSocket framing, masking, handshake, message session and liveness
//!   timers (RFC 6455).
//!
//! Time is data here too: a timer table is given instants and says when its next
//! deadline is (`poll_timeout`) and what is due when it comes (`handle_timeout`); the
//! drivers in `net/` only sleep until then.

pub mod http;
pub mod sse;
pub mod sse_timers;
pub mod ws;

/// Which end of a connection: the client (it sends requests and, on WebSocket, masks
/// its frames) or the server. Says which end a session or a tap is, and which end wrote
/// the bytes an HTTP message stream reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}
