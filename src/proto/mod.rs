//! The pure codecs: no tokio, no clock, no sockets. Bytes in, events or "need more"
//! out; events in, bytes out. Partial input is normal, never an error.

pub mod http;
pub mod ws;
