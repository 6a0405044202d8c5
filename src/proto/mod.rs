//! The pure codecs: no tokio, no clock, no sockets. Bytes in, events or "need more"
//! out; events in, bytes out. Partial input is normal, never an error.
//!
//! - [`backlog`]: the backlog check of a push stream whose socket refuses bytes, as data
//!   (both tables below carry one).
//! - [`coalesce`]: write coalescing of a push stream (`--coalesce`), as data (both tables
//!   below carry one).
//! - [`http`]: HTTP/1.1 (RFC 9112): request heads, the chunked decoder, responses, and
//!   [`http::stream`], a connection as two streams of messages (where each ends, which
//!   request a response answers, the switch after a `101`), which the server, the
//!   client, the proxy and the trace all step.
//! - [`resp`]: RESP, the Redis protocol (the Redis broker's client side).
//! - [`sse`]: the `text/event-stream` encoder and parser (WHATWG HTML §9.2), and what
//!   each field does ([`sse::field_effect`]), which the parser carries out and the trace
//!   shows.
//! - [`sse_timers`]: an open event stream's timers as data: heartbeats, and how long a
//!   shutdown's last bytes may take (WHATWG HTML §9.2.7).
//! - [`ws`]: WebSocket (RFC 6455): handshake, frames and their parts (what the trace and
//!   `decode ws` print), masking, the message session, and [`ws::liveness`], the
//!   server's ping, zombie and closing timers as data.
//! - [`Role`] (this file): which end of a connection, for all of them; and
//!   [`put_decimal`], numbers written without formatting a `String`.
//!
//! Time is data here too: a timer table is given instants and says when its next
//! deadline is (`poll_timeout`) and what is due when it comes (`handle_timeout`); the
//! drivers in `net/` only sleep until then.

pub mod backlog;
pub mod coalesce;
pub mod http;
pub mod resp;
pub mod sse;
pub mod sse_timers;
pub mod ws;

/// How many decimal digits `n` has (to size a buffer exactly before writing it).
pub fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes `n` in decimal digits (a status code, a length, a message id, an SSE `id:`)
/// straight into `out`: formatting it as a `String` first would allocate per number.
pub fn put_decimal(out: &mut impl bytes::BufMut, n: u64) {
    put_digits(out, n, 10);
}

/// Writes `n` in lowercase hexadecimal digits (a chunk size), as [`put_decimal`] does.
pub fn put_hex(out: &mut impl bytes::BufMut, n: u64) {
    put_digits(out, n, 16);
}

fn put_digits(out: &mut impl bytes::BufMut, mut n: u64, radix: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 decimal digits, 16 hex ones
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

/// Which end of a connection: the client (it sends requests and, on WebSocket, masks
/// its frames) or the server. Says which end a session or a tap is, and which end wrote
/// the bytes an HTTP message stream reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}
