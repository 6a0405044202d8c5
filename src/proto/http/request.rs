//! The HTTP/1.1 request head: request line and header section (RFC 9112 §2-§6).
//!
//! ```text
//! HTTP-message   = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]   ; RFC 9112 §2.1
//! request-line   = method SP request-target SP HTTP-version                      ; §3
//! ```
//!
//! [`parse_head`] takes the connection's read buffer and returns `Ok(None)` while the head
//! is incomplete (partial input is normal, not an error), `Ok(Some(head))` once it is whole
//! (the head's bytes are split off the buffer, so whatever follows, a body or a pipelined
//! request, stays there), or a typed [`HttpError`] that says which status to answer.
//!
//! httparse tokenizes the request line and field lines. Around it sit the checks that
//! httparse leaves to the server, each with its section: size limits, bare LF, NUL,
//! obs-fold, the Host rules, and the message-body framing rules of §6 whose misreading is
//! what request smuggling exploits.

use std::ops::Range;

use bytes::{Buf, BytesMut};

use super::{ContentLengthError, Fields, HttpError, MAX_HEADERS, header_tokens};

/// `HTTP/1.0` or `HTTP/1.1`; any other version is answered with `505` (RFC 9110 §15.6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: neither Content-Length nor Transfer-Encoding (§6.3 rule 7).
    None,
    /// Exactly this many bytes follow (§6.3 rule 6).
    Length(u64),
    /// A chunked body follows (§7.1).
    Chunked,
}

/// The limits a head must stay inside; see `config.rs` for why each exists.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_header: usize,
    pub max_target: usize,
    pub max_body: usize,
}

/// A parsed request head. It owns the head's bytes (split off the read buffer, no copy)
/// and keeps byte ranges into them, as hyper does, so no borrow leaks into the program.
#[derive(Clone, Debug)]
pub struct RequestHead {
    fields: Fields,
    /// The spans of the method and the target that httparse returned as `&str`s (read
    /// back without a second check: `Fields::text`).
    method: Range<usize>,
    target: Range<usize>,
    pub version: Version,
    pub body: BodyKind,
    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
}

impl RequestHead {
    pub fn method(&self) -> &str {
        // httparse accepts only token characters (ASCII) in a method, and returned it as
        // a `&str` (`parse_head`).
        self.fields.text(&self.method)
    }

    /// The request target as sent, e.g. `/poll/lobby?after=3`.
    pub fn target(&self) -> &str {
        // httparse returned the target as a `&str` (`parse_head`).
        self.fields.text(&self.target)
    }

    /// The path part of the target, before any `?`.
    pub fn path(&self) -> &str {
        let t = self.target();
        super::cut(t, b'?').map_or(t, |(p, _)| p)
    }

    /// The query part of the target, after the `?`, if any.
    pub fn query(&self) -> Option<&str> {
        super::cut(self.target(), b'?').map(|(_, q)| q)
    }
}

impl std::ops::Deref for RequestHead {
    type Target = Fields;
    /// The field lines: `head.header("host")`, `head.has_token(...)`, `head.raw()`.
    fn deref(&self) -> &Fields {
        &self.fields
    }
}

/// Writes a request head (and body) as a client sends it: request line, `Host`, the
/// given headers, `Content-Length` when there is a body, the empty line, the body.
pub fn write_request(
    out: &mut BytesMut,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    use bytes::BufMut;
    out.put_slice(method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\nHost: ");
    out.put_slice(host.as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

/// Longest method plus the spaces and version around a target: a request line (with its
/// CR) longer than `max_target` plus this is refused as too long (414) whether or not its
/// LF has arrived, so the verdict is the same however the line's bytes were cut into
/// reads (found by the fuzzer, docs/fuzzing.md).
pub const REQUEST_LINE_OVERHEAD: usize = 32;

/// Parses the request head at the front of `buf`. On success the head's bytes are split
/// off `buf`; on `Ok(None)` only empty lines before the request line may have been
/// consumed, and the caller reads more.
pub fn parse_head(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHead>, HttpError> {
    // RFC 9112 §2.2: "a server that is expecting to receive and parse a request-line
    // SHOULD ignore at least one empty line (CRLF) received prior to the request-line."
    // They are dropped as they are skipped: kept, a client sending nothing but CRLFs
    // would grow the buffer without limit and make every read rescan it.
    let mut skip = 0;
    while buf[skip..].starts_with(b"\r\n") {
        skip += 2;
    }
    buf.advance(skip);
    let data = &buf[..];

    // The request line, judged alone first so a huge target gets 414, not 431. Its
    // length is judged first, on the bytes before the LF, which are the same whether the
    // LF has arrived or not: every check after it sees a line within the limit.
    let max_line = limits.max_target + REQUEST_LINE_OVERHEAD;
    let Some(line_end) = memchr(b'\n', data) else {
        if data.len() > max_line {
            return Err(HttpError::UriTooLong);
        }
        return Ok(None);
    };
    if line_end > max_line {
        return Err(HttpError::UriTooLong);
    }
    if line_end == 0 || data[line_end - 1] != b'\r' {
        // RFC 9112 §2.2 permits a recipient to accept a bare LF; we refuse, because two
        // parsers disagreeing on line ends is how requests get smuggled.
        return Err(HttpError::BadRequest("bare LF in the request line (RFC 9112 §2.2)"));
    }
    let served = check_request_line(&data[..line_end - 1], limits)?;

    // The header section: everything up to the empty line that ends it.
    let fields_start = line_end + 1;
    let Some(section_len) = scan_header_section(&data[fields_start..], limits.max_header)? else {
        return Ok(None);
    };
    if section_len > limits.max_header {
        return Err(HttpError::HeaderTooLarge);
    }
    let head_len = fields_start + section_len;

    // RFC 9110 §2.5: a recipient "SHOULD process the message as if it were in the
    // highest minor version within that major version to which the recipient is
    // conformant". httparse reads only 1.0 and 1.1, so it reads a copy of the head with
    // the minor digit rewritten; the head keeps the bytes as they arrived, which the
    // trace shows and the proxy forwards (the fuzzer found them rewritten in place).
    let rewritten;
    let parsed = match served {
        Served::AsIs => &data[..head_len],
        Served::As11 => {
            let mut copy = data[..head_len].to_vec();
            copy[line_end - 2] = b'1';
            rewritten = copy;
            &rewritten[..]
        }
    };
    // Slots left uninitialised: httparse writes only those it fills, and a head has a
    // few headers, not `MAX_HEADERS` (filling 100 empty ones cost more than a handshake's
    // whole request line).
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(parsed, &mut slots) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        Ok(_) => return Err(HttpError::BadRequest("malformed request head")),
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeaderTooLarge),
        Err(httparse::Error::HeaderName) => return Err(HttpError::BadRequest("invalid header field name")),
        Err(httparse::Error::HeaderValue) => return Err(HttpError::BadRequest("invalid header field value")),
        Err(httparse::Error::Token) => return Err(HttpError::BadRequest("invalid method")),
        Err(_) => return Err(HttpError::BadRequest("malformed request line")),
    }
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::VersionNotSupported),
    };

    // Turn httparse's borrowed slices into ranges into the head (the same in the copy),
    // then split the head off.
    let span = |part: &[u8]| super::span_in(parsed, part);
    let method = span(req.method.unwrap_or("").as_bytes());
    let target = span(req.path.unwrap_or("").as_bytes());
    let headers: Vec<_> = req.headers.iter().map(|h| (span(h.name.as_bytes()), span(h.value))).collect();
    let raw = buf.split_to(head_len).freeze();

    let mut head = RequestHead {
        fields: Fields::new(raw, headers),
        method,
        target,
        version,
        body: BodyKind::None,
        keep_alive: false,
    };
    head.body = body_kind(&head, limits)?;
    check_host(&head)?;
    head.keep_alive = match version {
        // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
        Version::Http11 => !head.has_token("connection", "close"),
        Version::Http10 => head.has_token("connection", "keep-alive"),
    };
    Ok(Some(head))
}

/// How a request's version is served.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    /// As it says: HTTP/1.0 or HTTP/1.1.
    AsIs,
    /// HTTP/1.2 to 1.9: as HTTP/1.1, the highest 1.x this server speaks.
    As11,
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3), checked before httparse so
/// that the status is the specific one: 414 for a long target, 505 for a version.
fn check_request_line(line: &[u8], limits: &HeadLimits) -> Result<Served, HttpError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (_method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m, t, v),
        _ => return Err(HttpError::BadRequest("malformed request line")),
    };
    if target.len() > limits.max_target {
        return Err(HttpError::UriTooLong);
    }
    // HTTP-version = HTTP-name "/" DIGIT "." DIGIT (RFC 9112 §2.3).
    let well_formed = version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if !well_formed {
        return Err(HttpError::BadRequest("malformed HTTP version"));
    }
    // 505 is for a major version this server does not speak (RFC 9110 §15.6.6): HTTP/2.0
    // (the HTTP/2 connection preface), HTTP/3.0, HTTP/0.9.
    if version[5] != b'1' {
        return Err(HttpError::VersionNotSupported);
    }
    Ok(if version[7] > b'1' { Served::As11 } else { Served::AsIs })
}

/// Scans the field lines for the empty line that ends them. Returns the length of the
/// section including that final CRLF, or `None` if it has not arrived yet. Refuses the
/// bytes that make two parsers disagree about where a header ends, and a section over
/// `max_header` bytes (431).
///
/// Only the first `max_header` bytes are judged, and a byte only with the byte after it
/// when that matters (a CR): whatever follows them, and however the bytes were cut into
/// reads, a section gets the same verdict (found by the fuzzer, docs/fuzzing.md).
fn scan_header_section(fields: &[u8], max_header: usize) -> Result<Option<usize>, HttpError> {
    scan_fields::<true>(fields, max_header)
}

/// The scan itself; `WORDS` false judges every byte alone (the scan as first written, which
/// the tests compare the word-at-a-time one with).
fn scan_fields<const WORDS: bool>(fields: &[u8], max_header: usize) -> Result<Option<usize>, HttpError> {
    let limit = fields.len().min(max_header);
    let mut line_start = 0;
    let mut i = 0;
    while i < limit {
        // Most of a head's bytes are names and values, judged 8 at a time: a word that
        // holds no CR, LF or NUL, and does not begin a line, can neither end a line nor be
        // refused, and is passed over whole. Otherwise the scan goes to the first of those
        // bytes and judges it alone, below (the same verdict as a byte at a time, in a
        // fraction of the instructions: every request's head is scanned).
        if WORDS && i != line_start && i + 8 <= limit {
            let w = u64::from_le_bytes(fields[i..i + 8].try_into().expect("8 bytes"));
            let found = zero_bytes(w ^ bytes_of(b'\r')) | zero_bytes(w ^ bytes_of(b'\n')) | zero_bytes(w);
            if found == 0 {
                i += 8;
                continue;
            }
            i += found.trailing_zeros() as usize / 8;
        }
        match fields[i] {
            0 => return Err(HttpError::BadRequest("NUL in the header section (RFC 9110 §5.5)")),
            b'\n' if i == 0 || fields[i - 1] != b'\r' => {
                return Err(HttpError::BadRequest("bare LF in the header section (RFC 9112 §2.2)"));
            }
            b'\r' if i + 1 < fields.len() && fields[i + 1] != b'\n' => {
                return Err(HttpError::BadRequest("bare CR in the header section (RFC 9112 §2.2)"));
            }
            b'\n' => {
                if i + 1 - line_start == 2 {
                    return Ok(Some(i + 1)); // an empty line: the section is complete
                }
                line_start = i + 1;
            }
            b' ' | b'\t' if i == line_start => {
                // RFC 9112 §5.2: "A server that receives an obs-fold in a request message
                // ... MUST either reject the message by sending a 400 (Bad Request) ..."
                return Err(HttpError::BadRequest("obs-fold (line folding) in a header (RFC 9112 §5.2)"));
            }
            _ => {}
        }
        i += 1;
    }
    if fields.len() > max_header {
        return Err(HttpError::HeaderTooLarge);
    }
    Ok(None)
}

/// `b` in each of 8 bytes.
const fn bytes_of(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The zero bytes of `x`, each marked by its top bit: `(x - 0x01…01) & !x & 0x80…80`. A
/// borrow can mark a byte above a zero one too, never one below the first: so the
/// lowest mark (the first byte, read little-endian) is exact, and `0` means none.
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(bytes_of(0x01)) & !x & bytes_of(0x80)
}

/// Decides the body's framing (RFC 9112 §6.3) and refuses every ambiguity. A proxy and a
/// server that frame the same bytes differently see two different requests: refusing
/// ambiguity outright is the only safe answer (RFC 9112 §11.2).
fn body_kind(head: &RequestHead, limits: &HeadLimits) -> Result<BodyKind, HttpError> {
    let has_te = head.header("transfer-encoding").is_some();
    let has_cl = head.header("content-length").is_some();
    if has_te && has_cl {
        // §6.1: "A server MAY reject a request that contains both Content-Length and
        // Transfer-Encoding ... Such a message might indicate an attempt to perform
        // request smuggling."
        return Err(HttpError::BadRequest("both Content-Length and Transfer-Encoding (RFC 9112 §6.1)"));
    }
    if has_te {
        if head.version == Version::Http10 {
            // §6.1: a Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            return Err(HttpError::BadRequest("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)"));
        }
        // §6.3 rule 4: if chunked is not the final coding the length is unknowable, and
        // "the server MUST respond with the 400 (Bad Request) status code". Any other
        // coding before a final chunked (`gzip, chunked`) is one we do not implement:
        // §6.1 says a server SHOULD answer 501 there; we refuse it as a framing we cannot
        // read, with 400 and a close, like every other ambiguity here (API.md).
        let codings: Vec<&str> = header_tokens(head.headers(), "transfer-encoding").collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok(BodyKind::Chunked),
            [.., last] if last.eq_ignore_ascii_case("chunked") => {
                Err(HttpError::BadRequest("a transfer coding this server does not implement (RFC 9112 §6.1)"))
            }
            _ => Err(HttpError::BadRequest("chunked is not the final transfer coding (RFC 9112 §6.3 rule 4)")),
        };
    }
    if has_cl {
        // §6.3 rule 5: a list of differing lengths, or an invalid one, is unrecoverable.
        let n = match super::content_length(head.headers()) {
            Ok(Some(n)) => n,
            Ok(None) | Err(ContentLengthError::Invalid) => {
                return Err(HttpError::BadRequest("invalid Content-Length (RFC 9112 §6.3)"));
            }
            Err(ContentLengthError::Differing) => {
                return Err(HttpError::BadRequest("differing Content-Length values (RFC 9112 §6.3)"));
            }
        };
        if n > limits.max_body as u64 {
            return Err(HttpError::PayloadTooLarge);
        }
        return Ok(if n == 0 { BodyKind::None } else { BodyKind::Length(n) });
    }
    Ok(BodyKind::None)
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request message
/// that contains more than one Host header field line".
fn check_host(head: &RequestHead) -> Result<(), HttpError> {
    let hosts = head.headers().filter(|(n, _)| n.eq_ignore_ascii_case("host")).count();
    if hosts > 1 {
        return Err(HttpError::BadRequest("more than one Host header (RFC 9112 §3.2)"));
    }
    if hosts == 0 && head.version == Version::Http11 {
        return Err(HttpError::BadRequest("HTTP/1.1 request without a Host header (RFC 9112 §3.2)"));
    }
    Ok(())
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HTTP/2 connection preface (RFC 9113 §3.4). It parses as a request line with
    /// version `HTTP/2.0`, so it gets `505` like any other version we do not speak.
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    const LIMITS: HeadLimits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 1 << 20 };

    fn parse(input: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        parse_head(&mut BytesMut::from(input), &LIMITS)
    }

    fn status(input: &[u8]) -> u16 {
        parse(input).expect_err("should be refused").status()
    }

    #[test]
    fn simple_get_borrows_ranges_and_leaves_the_rest() {
        let mut buf = BytesMut::from(&b"GET /poll/lobby?after=3 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nNEXT"[..]);
        let head = parse_head(&mut buf, &LIMITS).unwrap().unwrap();
        assert_eq!(head.method(), "GET");
        assert_eq!(head.target(), "/poll/lobby?after=3");
        assert_eq!(head.path(), "/poll/lobby");
        assert_eq!(head.query(), Some("after=3"));
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.header("HOST"), Some(&b"x"[..]));
        assert_eq!(head.headers().count(), 2);
        assert_eq!(head.body, BodyKind::None);
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"NEXT", "bytes after the head stay in the buffer");
    }

    #[test]
    fn every_split_point_is_partial_until_the_end() {
        let input = b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        for cut in 0..input.len() {
            assert!(parse(&input[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let head = parse(input).unwrap().unwrap();
        assert_eq!(head.body, BodyKind::Length(5));
    }

    #[test]
    fn leading_empty_lines_are_ignored_and_dropped() {
        let head = parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.target(), "/");
        // A stream of nothing but CRLFs does not pile up in the buffer.
        let mut buf = BytesMut::from(&b"\r\n".repeat(10_000)[..]);
        assert!(parse_head(&mut buf, &LIMITS).unwrap().is_none());
        assert!(buf.is_empty(), "{} bytes kept", buf.len());
    }

    #[test]
    fn unknown_and_misplaced_transfer_codings_are_told_apart() {
        let why =
            |te: &str| match parse(format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n").as_bytes())
            {
                Err(HttpError::BadRequest(why)) => why,
                other => panic!("{te}: {other:?}"),
            };
        assert!(why("gzip, chunked").contains("does not implement (RFC 9112 §6.1)"));
        assert!(why("chunked, gzip").contains("§6.3 rule 4"));
        assert!(why("gzip").contains("§6.3 rule 4"));
        assert!(parse(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").is_ok());
    }

    #[test]
    fn a_higher_minor_version_is_served_as_1_1() {
        // RFC 9110 §2.5; a new 1.x is still HTTP/1, so 505 would be wrong.
        let head = parse(b"GET /poll/a HTTP/1.2\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.version, head.keep_alive), (Version::Http11, true));
        // The head's bytes are the ones that arrived (the fuzzer found them rewritten).
        assert_eq!(&head.raw()[..], b"GET /poll/a HTTP/1.2\r\nHost: x\r\n\r\n");
        assert_eq!(parse(b"GET / HTTP/1.9\r\nHost: x\r\n\r\n").unwrap().unwrap().version, Version::Http11);
        assert_eq!(status(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"), 505);
    }

    #[test]
    fn keep_alive_rules() {
        let h = |s: &[u8]| parse(s).unwrap().unwrap().keep_alive;
        assert!(h(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!h(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n"));
        assert!(!h(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(h(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn sizes() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(long_target.as_bytes()), 414);
        // Still arriving, but already too long to be anything but a long target.
        assert_eq!(status(&long_target.as_bytes()[..8300]), 414);
        let big_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
        assert_eq!(status(big_header.as_bytes()), 431);
        assert_eq!(status(&big_header.as_bytes()[..8400]), 431, "refused before it ends");
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(status(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()), 431);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"), 413);
    }

    #[test]
    fn versions() {
        assert_eq!(status(H2_PREFACE), 505);
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/0.9\r\n\r\n"), 505);
        assert_eq!(status(b"GET / FOO/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\r\n\r\n"), 400);
    }

    /// What the server answers to `input` arriving in two reads cut at `cut`: the
    /// request's method, "more" or the refusal's status.
    fn verdict(input: &[u8], cut: usize, limits: &HeadLimits) -> String {
        let mut buf = BytesMut::from(&input[..cut]);
        match parse_head(&mut buf, limits) {
            Ok(None) => {}
            Ok(Some(head)) => return head.method().to_string(),
            Err(e) => return e.status().to_string(),
        }
        buf.extend_from_slice(&input[cut..]);
        match parse_head(&mut buf, limits) {
            Ok(None) => "more".to_string(),
            Ok(Some(head)) => head.method().to_string(),
            Err(e) => e.status().to_string(),
        }
    }

    #[test]
    fn the_verdict_does_not_depend_on_where_reads_end() {
        // Found by the fuzzer (fuzz/corpus/http_requests/regress-*): a request line
        // without its LF was judged by its length (414), the same line whole by its
        // parts (400, or accepted with a long method); a header section without its end
        // was 431, the same section whole 400 for a NUL past the limit.
        let limits = HeadLimits { max_header: 64, max_target: 16, max_body: 100 };
        let long_method = [&[b'M'; 60][..], b" / HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
        let no_spaces = [&[b'P'; 60][..], b"\r\n\r\n"].concat();
        let nul_late = [&b"GET / HTTP/1.1\r\nHost: x\r\nX: "[..], &[b'a'; 60], b"\0\r\n\r\n"].concat();
        let cr_at_limit = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; 60], b"\rz\r\n\r\n"].concat();
        for (input, status) in [(long_method, "414"), (no_spaces, "414"), (nul_late, "431"), (cr_at_limit, "400")] {
            for cut in 0..=input.len() {
                assert_eq!(verdict(&input, cut, &limits), status, "{:?} cut at {cut}", String::from_utf8_lossy(&input));
            }
        }
    }

    #[test]
    fn smuggling_vectors_are_refused() {
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        ] {
            assert_eq!(status(bad), 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn identical_duplicate_content_lengths_are_one() {
        let head =
            parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.body, BodyKind::Length(4));
        let head = parse(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.body, BodyKind::Chunked);
    }

    #[test]
    fn written_requests_parse_back() {
        let mut out = BytesMut::new();
        write_request(&mut out, "POST", "/publish/a", "localhost:8080", &[("Accept", "*/*")], b"hi");
        let head = parse_head(&mut out, &LIMITS).unwrap().unwrap();
        assert_eq!((head.method(), head.target(), head.body), ("POST", "/publish/a", BodyKind::Length(2)));
        assert_eq!(head.header("host"), Some(&b"localhost:8080"[..]));
        assert_eq!(&out[..], b"hi");
    }

    #[test]
    fn tokens_span_field_lines() {
        let head = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.has_token("connection", "upgrade"));
        assert!(!head.has_token("connection", "close"));
    }

    #[test]
    fn the_header_scan_a_word_at_a_time_agrees_with_the_bytewise_one() {
        // Field lines made mostly of the bytes that matter (CR, LF, NUL, SP, HT) among
        // plain ones, at every length and limit around the 8-byte words.
        let alphabet = b"\r\n\0 \tab:\r\n";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in 0..20_000 {
            let len = (next() % 96) as usize;
            let plain = next() % 9; // how often a byte is a plain one, in eighths
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 8 < plain {
                    true => b'x',
                    false => alphabet[(next() % alphabet.len() as u64) as usize],
                })
                .collect();
            let max_header = match n % 3 {
                0 => usize::MAX,
                _ => (next() % 96) as usize,
            };
            let (fast, slow) = (scan_header_section(&input, max_header), scan_fields::<false>(&input, max_header));
            assert_eq!(fast, slow, "{input:?}, max_header {max_header}");
        }
        // And a real head, with long lines, each way.
        let head = b"Host: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nrest";
        for cut in 0..=head.len() {
            let (fast, slow) = (scan_header_section(&head[..cut], 8192), scan_fields::<false>(&head[..cut], 8192));
            assert_eq!(fast, slow);
        }
        assert_eq!(scan_header_section(head, 8192).unwrap(), Some(head.len() - 4));
    }
}
