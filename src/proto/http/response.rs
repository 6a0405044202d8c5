//! The response writer (RFC 9112 §4 status line, §6 framing, §7.1 chunked coding).
//!
//! ```text
//! status-line = HTTP-version SP status-code SP [ reason-phrase ]    ; RFC 9112 §4
//! chunk       = chunk-size [ chunk-ext ] CRLF chunk-data CRLF      ; RFC 9112 §7.1
//! ```
//!
//! A [`Response`] with a complete body is written with `Content-Length`. A stream that
//! never ends (SSE) is written with [`Response::encode_stream_head`] and then one
//! [`chunk`] per piece: chunked on HTTP/1.1, and on HTTP/1.0, which has no chunked coding,
//! raw bytes delimited by closing the connection (RFC 9112 §6.3 rule 8).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Fields, HttpError, MAX_HEADERS, Version, header_tokens};
use crate::proto::put_decimal;

/// The reason phrase for a status code (RFC 9110 §15). Clients ignore it; people read it.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A response whose body is known in full.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Field lines after `Date`; a value known at compile time is not copied.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Bytes,
}

/// What the writer needs to know about the exchange, besides the response itself.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The request's version: an HTTP/1.0 client gets an HTTP/1.0 answer's framing.
    pub version: Version,
    /// A response to HEAD carries the headers of a GET but no body (RFC 9110 §9.3.2).
    pub head_request: bool,
    /// Whether the connection stays open after this response.
    pub keep_alive: bool,
    /// The `Date` value, an IMF-fixdate (RFC 9110 §6.6.1), supplied by the driver.
    pub date: &'a str,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Bytes::new() }
    }

    pub fn with_body(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut r = Response::new(status);
        r.headers.push(("Content-Type", Cow::Borrowed(content_type)));
        r.body = body.into();
        r
    }

    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Self::with_body(status, "application/json", body)
    }

    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Self::with_body(status, "text/plain; charset=utf-8", body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the whole response: status line, headers, `Content-Length`, body.
    pub fn encode(&self, ctx: &Context, out: &mut BytesMut) {
        self.encode_status_and_headers(ctx, out);
        // RFC 9110 §8.6: no Content-Length in a 1xx or 204 response.
        if self.status >= 200 && self.status != 204 {
            out.put_slice(b"Content-Length: ");
            put_decimal(out, self.body.len() as u64);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        if !ctx.head_request && self.status != 204 {
            out.put_slice(&self.body);
        }
    }

    /// Writes the head of a response whose body is a stream of [`chunk`]s. On HTTP/1.0
    /// the body is delimited by closing the connection (RFC 9112 §6.3 rule 8), so the
    /// head says `Connection: close` whatever the caller asked.
    pub fn encode_stream_head(&self, ctx: &Context, out: &mut BytesMut) {
        let close_delimited = Context { keep_alive: ctx.keep_alive && ctx.version == Version::Http11, ..*ctx };
        let ctx = &close_delimited;
        self.encode_status_and_headers(ctx, out);
        if ctx.version == Version::Http11 {
            put_header(out, "Transfer-Encoding", "chunked");
        }
        out.put_slice(b"\r\n");
    }

    fn encode_status_and_headers(&self, ctx: &Context, out: &mut BytesMut) {
        out.put_slice(ctx.version.as_str().as_bytes());
        out.put_u8(b' ');
        put_decimal(out, self.status as u64);
        out.put_u8(b' ');
        out.put_slice(reason_phrase(self.status).as_bytes());
        out.put_slice(b"\r\n");
        // RFC 9110 §6.6.1: an origin server with a clock MUST send Date in 2xx-4xx.
        put_header(out, "Date", ctx.date);
        for (name, value) in &self.headers {
            put_header(out, name, value);
        }
        if self.status != 101 {
            let connection = match (ctx.keep_alive, ctx.version) {
                (false, _) => Some("close"),
                (true, Version::Http10) => Some("keep-alive"),
                (true, Version::Http11) => None, // persistence is HTTP/1.1's default
            };
            if let Some(c) = connection {
                put_header(out, "Connection", c);
            }
        }
    }
}

fn put_header(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// The chunk-size line for `len` bytes of data: `{len:x}\r\n`, in lowercase hex digits
/// (RFC 9112 §7.1: `chunk-size = 1*HEXDIG`, either case).
pub fn chunk_size_line(len: usize, out: &mut BytesMut) {
    crate::proto::put_hex(out, len as u64);
    out.put_slice(b"\r\n");
}

/// One whole chunk: size line, data, CRLF (RFC 9112 §7.1). An empty `data` would be
/// the last chunk, so it is refused here; use [`LAST_CHUNK`] to end a body.
pub fn chunk(data: &[u8]) -> Bytes {
    assert!(!data.is_empty(), "an empty chunk is the last-chunk; use LAST_CHUNK");
    chunked(data.len(), |out| out.put_slice(data))
}

/// A chunk of `len` bytes that `write` puts straight into the one buffer, after the size
/// line: `chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF` (RFC 9112 §7.1). One
/// allocation per chunk, and the data is written once, not copied in afterwards.
pub fn chunked(len: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let hex_digits = (len.checked_ilog2().unwrap_or(0) / 4 + 1) as usize;
    let mut out = BytesMut::with_capacity(hex_digits + 2 + len + 2);
    chunk_size_line(len, &mut out);
    let start = out.len();
    write(&mut out);
    debug_assert_eq!(out.len() - start, len, "chunk-size must match chunk-data");
    out.put_slice(b"\r\n");
    out.freeze()
}

/// The last chunk with an empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A parsed response head (the client's side of RFC 9112 §4).
#[derive(Clone, Debug)]
pub struct ResponseHead {
    fields: Fields,
    pub version: Version,
    pub status: u16,
}

impl std::ops::Deref for ResponseHead {
    type Target = Fields;
    fn deref(&self) -> &Fields {
        &self.fields
    }
}

/// How a response's body is delimited (RFC 9112 §6.3, the response rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: a HEAD response, 1xx, 204 or 304 (rules 1 and 2).
    None,
    Length(u64),
    Chunked,
    /// Read until the server closes the connection (rule 8).
    UntilClose,
}

impl ResponseHead {
    /// The body's framing, given whether the request was HEAD.
    pub fn body(&self, head_request: bool) -> Result<ResponseBody, HttpError> {
        if head_request || self.status < 200 || self.status == 204 || self.status == 304 {
            return Ok(ResponseBody::None);
        }
        if self.header("transfer-encoding").is_some() {
            let codings: Vec<&str> = header_tokens(self.headers(), "transfer-encoding").collect();
            return match codings.last() {
                Some(last) if last.eq_ignore_ascii_case("chunked") && codings.len() == 1 => Ok(ResponseBody::Chunked),
                // Not chunked last: the body runs until close (§6.3 rule 4, responses).
                Some(last) if !last.eq_ignore_ascii_case("chunked") => Ok(ResponseBody::UntilClose),
                _ => Err(HttpError::BadRequest("unsupported transfer coding in response")),
            };
        }
        // §6.3 rule 5: the same one reading of the field as for requests.
        match super::content_length(self.headers()) {
            Ok(Some(n)) => return Ok(ResponseBody::Length(n)),
            Ok(None) => {}
            Err(_) => return Err(HttpError::BadRequest("invalid Content-Length in response (RFC 9112 §6.3)")),
        }
        Ok(ResponseBody::UntilClose)
    }
}

/// Parses a response head at the front of `buf`, splitting it off when complete.
/// `Ok(None)`: incomplete, read more. Refuses heads over `max_head` bytes.
pub fn parse_response_head(buf: &mut BytesMut, max_head: usize) -> Result<Option<ResponseHead>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    // Only the first `max_head` bytes are read: past them the head is too large whatever
    // they hold, so the verdict does not depend on how many bytes one read brought
    // (found by the fuzzer, docs/fuzzing.md).
    let window = &buf[..buf.len().min(max_head)];
    let len = match res.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => return Err(HttpError::HeaderTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeaderTooLarge),
        Err(_) => return Err(HttpError::BadRequest("malformed response head")),
    };
    if len > max_head {
        return Err(HttpError::HeaderTooLarge);
    }
    let version = if res.version == Some(0) { Version::Http10 } else { Version::Http11 };
    let status = res.code.unwrap_or(0);
    let headers: Vec<_> = res
        .headers
        .iter()
        .map(|h| (super::span_in(window, h.name.as_bytes()), super::span_in(window, h.value)))
        .collect();
    let raw = buf.split_to(len).freeze();
    Ok(Some(ResponseHead { fields: Fields::new(raw, headers), version, status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn ctx(version: Version, keep_alive: bool, head_request: bool) -> Context<'static> {
        Context { version, head_request, keep_alive, date: DATE }
    }

    fn encode(r: &Response, c: &Context) -> String {
        let mut out = BytesMut::new();
        r.encode(c, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn content_length_response() {
        let r = Response::json(200, "{\"id\":1}");
        assert_eq!(
            encode(&r, &ctx(Version::Http11, true, false)),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":1}"
        );
    }

    #[test]
    fn numbers_are_written_as_format_would() {
        for n in [0u64, 1, 9, 10, 99, 100, 204, 65_535, 1 << 32, u64::MAX] {
            let mut out = BytesMut::new();
            put_decimal(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
            assert_eq!(crate::proto::decimal_len(n), n.to_string().len());
        }
        for len in [1usize, 9, 10, 15, 16, 255, 256, 4096, 1 << 20, usize::MAX] {
            let mut out = BytesMut::new();
            chunk_size_line(len, &mut out);
            assert_eq!(&out[..], format!("{len:x}\r\n").as_bytes());
        }
    }

    #[test]
    fn head_gets_headers_but_no_body() {
        let r = Response::text(200, "hello");
        let s = encode(&r, &ctx(Version::Http11, true, true));
        assert!(s.ends_with("Content-Length: 5\r\n\r\n"), "{s}");
    }

    #[test]
    fn close_and_http10_connection_headers() {
        let r = Response::new(204);
        let s = encode(&r, &ctx(Version::Http11, false, false));
        assert_eq!(s, "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n");
        let s = encode(&Response::text(200, "x"), &ctx(Version::Http10, true, false));
        assert!(s.starts_with("HTTP/1.0 200 OK\r\n") && s.contains("Connection: keep-alive\r\n"), "{s}");
    }

    #[test]
    fn stream_head_is_chunked_on_11_only() {
        let r = Response::new(200).header("Content-Type", "text/event-stream");
        let mut out = BytesMut::new();
        r.encode_stream_head(&ctx(Version::Http11, true, false), &mut out);
        assert!(out.ends_with(b"Transfer-Encoding: chunked\r\n\r\n"));
        let mut out = BytesMut::new();
        r.encode_stream_head(&ctx(Version::Http10, true, false), &mut out);
        assert!(!out.windows(8).any(|w| w == b"chunked\r"));
        assert!(out.ends_with(b"Connection: close\r\n\r\n"), "1.0 streams end by closing, even if asked to keep alive");
    }

    #[test]
    fn our_responses_parse_back() {
        let r = Response::json(200, "{}").header("X-A", "1");
        let mut out = BytesMut::new();
        r.encode(&ctx(Version::Http11, true, false), &mut out);
        out.extend_from_slice(b"rest");
        for cut in 0..out.len() - 6 {
            assert!(parse_response_head(&mut BytesMut::from(&out[..cut]), 8192).unwrap().is_none());
        }
        let head = parse_response_head(&mut out, 8192).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("x-a"), Some(&b"1"[..]));
        assert_eq!(head.body(false), Ok(ResponseBody::Length(2)));
        assert_eq!(head.body(true), Ok(ResponseBody::None));
        assert_eq!(&out[..], b"{}rest");
    }

    #[test]
    fn a_head_over_the_limit_is_too_large_however_it_arrives() {
        // Found by the fuzzer: 431 when the first read ended past the limit, 400 when one
        // read brought a bad byte further on.
        let head = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 40], b"\0\r\n\r\n"].concat();
        for cut in 0..=head.len() {
            let mut buf = BytesMut::from(&head[..cut]);
            let first = parse_response_head(&mut buf, 32);
            buf.extend_from_slice(&head[cut..]);
            let verdict = first.and_then(|h| h.map_or_else(|| parse_response_head(&mut buf, 32), |h| Ok(Some(h))));
            assert_eq!(verdict.map(|h| h.is_some()), Err(HttpError::HeaderTooLarge), "cut at {cut}");
        }
    }

    #[test]
    fn content_length_is_read_as_strictly_as_in_requests() {
        let body = |cl: &str| {
            let mut buf = BytesMut::from(format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n").as_bytes());
            parse_response_head(&mut buf, 8192).unwrap().unwrap().body(false)
        };
        assert_eq!(body("5"), Ok(ResponseBody::Length(5)));
        assert_eq!(body("5, 5"), Ok(ResponseBody::Length(5)), "a list of one value (§6.3 rule 5)");
        for bad in ["+5", "-1", "0x10", "5, 6", "99999999999999999999"] {
            assert!(body(bad).is_err(), "Content-Length: {bad} must not be read as a length");
        }
    }

    #[test]
    fn chunks_decode_with_our_decoder() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&chunk(b"Wiki"));
        wire.extend_from_slice(&chunk(&[b'x'; 300]));
        wire.extend_from_slice(LAST_CHUNK);
        assert_eq!(&wire[..9], b"4\r\nWiki\r\n");
        assert_eq!(&wire[9..14], b"12c\r\n");
        let (body, rest) = crate::proto::http::body::tests::decode(&wire, 0).unwrap();
        assert_eq!((body.len(), rest.len()), (304, 0));
    }
}
