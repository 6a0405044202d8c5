//! HTTP/1.1 (RFC 9112) as pure codecs: request heads and bodies in, responses out.
//!
//! - [`request`]: the request head parser, with every check that refuses an ambiguous
//!   or oversized request.
//! - [`body`]: the chunked transfer coding's decoder, for requests and responses.
//! - [`response`]: the response writer, for Content-Length, chunked and close-delimited
//!   bodies, and the response head parser.
//! - [`stream`]: a connection as two streams of messages: where each message ends, which
//!   request a response answers, when the bytes stop being HTTP. Everything that reads
//!   HTTP (server, client, proxy, trace) steps it.
//!
//! Nothing here reads a socket or a clock: the driver in `net::http` feeds bytes in and
//! writes the bytes that come out, and hands in the `Date` it wants sent.

pub mod body;
pub mod request;
pub mod response;
pub mod stream;

use std::ops::Range;

use bytes::Bytes;

pub use body::{ChunkedDecoder, Piece};
pub use request::{BodyKind, HeadLimits, RequestHead, Version, parse_head, write_request};
pub use response::{Response, ResponseBody, ResponseHead, parse_response_head, reason_phrase};
pub use stream::{Asked, Event, Exchange, In, MessageStream, Unit};

/// Why a request is refused. Each variant is one row of API.md's bad-input table, and
/// each says which status answers it; the connection closes after all of them, because
/// after a framing error the server can no longer tell where the next request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// `400`, with the reason shown to the client.
    BadRequest(&'static str),
    /// `413`: the body is over its limit.
    PayloadTooLarge,
    /// `414`: the request target is over its limit.
    UriTooLong,
    /// `431`: the header section is over its limit.
    HeaderTooLarge,
    /// `505`: an HTTP version other than 1.0 and 1.1 (the HTTP/2 preface included).
    VersionNotSupported,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::HeaderTooLarge => 431,
            HttpError::VersionNotSupported => 505,
        }
    }

    /// A one-line explanation for the response body, so a person at `nc` learns why.
    pub fn explain(&self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::PayloadTooLarge => "the request body is larger than this server accepts",
            HttpError::UriTooLong => "the request target is longer than this server accepts",
            HttpError::HeaderTooLarge => "the header section is larger than this server accepts",
            HttpError::VersionNotSupported => "this server speaks HTTP/1.0 and HTTP/1.1 only",
        }
    }
}

/// The field lines of a parsed head. It owns the head's bytes (split off the read
/// buffer, not copied) and keeps byte ranges into them, as hyper does, so no borrow of the
/// read buffer leaks into the rest of the program.
#[derive(Clone, Debug)]
pub struct Fields {
    raw: Bytes,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Fields {
    /// `headers` are (name, value) ranges of `raw`, each name the span of a `&str` that
    /// httparse returned from `raw`'s bytes (the only two callers, the request and the
    /// response head parsers, make them so): what [`Fields::text`] relies on.
    fn new(raw: Bytes, headers: Vec<(Range<usize>, Range<usize>)>) -> Self {
        let fields = Fields { raw, headers };
        debug_assert!(fields.headers.iter().all(|(n, _)| std::str::from_utf8(&fields.raw[n.clone()]).is_ok()));
        fields
    }

    /// The text at `range` of the head, without checking it again: only for ranges that
    /// were a `&str` when httparse returned them (a method, a target, a field name).
    /// Checking them on every look-up cost more than anything else in reading a request's
    /// fields (a look-up walks every name, and a request is looked up a dozen times).
    fn text(&self, range: &Range<usize>) -> &str {
        let bytes = &self.raw[range.clone()];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: `range` covers the bytes of a `&str` (valid UTF-8) that httparse handed
        // out from these same bytes, or from a copy that differs only in the version's
        // minor digit (`request::parse_head`; see `new` and `RequestHead`'s fields); `raw`
        // is an immutable `Bytes`, so they are still those bytes.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Every field line in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Field names are tokens (ASCII); httparse checked them.
        self.headers.iter().map(|(n, v)| (self.text(n), &self.raw[v.clone()]))
    }

    /// The first field with this name (names are case-insensitive, RFC 9110 §5.1).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Whether a comma-separated header (such as Connection) lists `token`, in any of
    /// its field lines (RFC 9110 §5.3: repeated lines are one comma-joined list).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        header_tokens(self.headers(), name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether this request asks to switch to WebSocket: an `Upgrade` list naming
    /// `websocket` and a `Connection` list naming `Upgrade`, each token compared without
    /// regard to case (RFC 6455 §4.2.1 items 3 and 4; RFC 9110 §7.8 and §7.6.1: both are
    /// lists, so `Upgrade: h2c, websocket` and `Connection: keep-alive, Upgrade` ask it
    /// too). The proxy and the trace apply this; the server's handshake checks the same
    /// two items one at a time, with the same list rule, to say which one is missing.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.has_token("upgrade", "websocket") && self.has_token("connection", "upgrade")
    }

    /// Whether this request asks to switch protocols at all (RFC 9110 §7.8): an
    /// `Upgrade` list naming any protocol and a `Connection` list naming `Upgrade`. After
    /// such a request the client's next bytes may be the new protocol, so every reader
    /// holds them until the answer ([`stream`]).
    pub fn asks_upgrade(&self) -> bool {
        header_tokens(self.headers(), "upgrade").next().is_some() && self.has_token("connection", "upgrade")
    }

    /// The bytes of the whole head, as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
}

/// What is wrong with a message's `Content-Length` (RFC 9112 §6.3 rule 5: "unrecoverable").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentLengthError {
    /// Not 1 to 19 ASCII digits (`+5`, `-1`, `0x10`, empty, or more than fits a u64).
    Invalid,
    /// A list (or several lines) of values that are not all the same.
    Differing,
}

/// The message's `Content-Length`, if it has one: every field line and every element of
/// a list must be `1*DIGIT` (RFC 9112 §6.2; Rust's `parse` would also take `+5`) and
/// all must agree (§6.3 rule 5 allows `5, 5`). The one reading of the field, for
/// requests and responses alike.
pub fn content_length<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<Option<u64>, ContentLengthError> {
    let mut length: Option<u64> = None;
    for (_, line) in headers.filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        // Each element of each line; an empty line or element is invalid, not absent.
        for value in list_elements(std::str::from_utf8(line).unwrap_or("")) {
            if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ContentLengthError::Invalid);
            }
            let n: u64 = value.parse().map_err(|_| ContentLengthError::Invalid)?;
            if length.is_some_and(|l| l != n) {
                return Err(ContentLengthError::Differing);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Most field lines in one request. A count limit as well as a size limit, because the
/// parser keeps one slot per field line (httparse's caller-supplied array).
pub const MAX_HEADERS: usize = 100;

/// The comma-separated tokens of every field line named `name`, trimmed of optional
/// whitespace (SP, HTAB: RFC 9110 §5.6.3), empty elements skipped (§5.6.1 allows
/// `a, , b`). A value that is not UTF-8 contributes no tokens.
pub fn header_tokens<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| list_elements(std::str::from_utf8(v).unwrap_or("")))
        .filter(|t| !t.is_empty())
}

/// The elements of one comma-separated value, each trimmed of SP and HTAB, by a plain
/// scan of its bytes: `str::split` and `trim_matches` set up pattern searchers that cost
/// more than a value's few bytes, and every request's Connection header (and its route's
/// allowed methods) is read this way.
pub fn list_elements(v: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(v);
    std::iter::from_fn(move || {
        let (element, after) = match cut(rest?, b',') {
            Some((element, after)) => (element, Some(after)),
            None => (rest?, None),
        };
        rest = after;
        // Both ends of the trimmed bytes are next to an ASCII byte (or the element's
        // ends): character boundaries.
        Some(&element[span_in(element.as_bytes(), trim_ows(element.as_bytes()))])
    })
}

/// `v` without the optional whitespace (SP, HTAB: RFC 9110 §5.6.3) at either end: the one
/// reading of OWS around a field value or a list element.
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let ows = |b: &u8| matches!(b, b' ' | b'\t');
    let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// `s` cut at the first `byte` (an ASCII delimiter such as `?`, `/`, `&`, `=`), without
/// it: `str::split_once` for one ASCII byte, by a plain scan. The pattern searcher that
/// `split_once` sets up costs more than the scan of a request target's few bytes, and
/// each request cuts its target half a dozen times (path, query, route, parameters).
pub fn cut(s: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(byte.is_ascii());
    let i = s.bytes().position(|b| b == byte)?;
    // An ASCII byte is always a whole character in UTF-8, so both sides are `str`s.
    Some((&s[..i], &s[i + 1..]))
}

/// Turns a sub-slice of `buf` (as httparse returns them) into a range of `buf`.
fn span_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_elements_are_what_split_and_trim_give() {
        // Values made of commas, spaces, tabs, letters and a two-byte character, at
        // every length up to 7: the scan must cut and trim as `split` and `trim_matches` do.
        let parts = [",", " ", "\t", "a", "Up", "é", ", ,"];
        let mut values = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> =
                values.iter().flat_map(|v| parts.iter().map(move |p| format!("{v}{p}"))).collect();
            values.extend(longer);
        }
        for v in &values {
            let ours: Vec<&str> = list_elements(v).collect();
            let std: Vec<&str> = v.split(',').map(|t| t.trim_matches([' ', '\t'])).collect();
            assert_eq!(ours, std, "{v:?}");
        }
        let headers = [("Connection", &b"keep-alive, , Upgrade"[..]), ("X", b"a"), ("connection", b"\tclose ")];
        let tokens: Vec<&str> = header_tokens(headers.iter().copied(), "connection").collect();
        assert_eq!(tokens, ["keep-alive", "Upgrade", "close"]);
        // A value that is not UTF-8 lists nothing.
        assert_eq!(header_tokens([("connection", &b"close, \xff"[..])].into_iter(), "connection").count(), 0);
    }
}
