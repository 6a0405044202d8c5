//! Server-Sent Events: the `text/event-stream` wire format, sans-I/O.
//!
//! Implements the WHATWG HTML Living Standard, §9.2 "Server-sent events":
//!
//! - §9.2.5 "Parsing an event stream" — the ABNF grammar of the format. The
//!   encoder ([`encode_event`] and friends) produces streams matching it; this
//!   is what our server writes.
//! - §9.2.6 "Interpreting an event stream" — the line-by-line algorithm and the
//!   "dispatch the event" steps. [`Parser`] follows it step by step; this is
//!   what a browser's `EventSource` does with the bytes.
//! - §9.2.4 "The `Last-Event-ID` header" — [`Parser::last_event_id`] is the
//!   value a reconnecting `EventSource` would send.
//!
//! Plus the HTTP/1.1 chunked coding (RFC 9112 §7.1) for [`encode_event_chunk`],
//! so one published event is encoded once and the same bytes go to every
//! subscriber.
//!
//! Sans-I/O: no sockets, no async runtime, no clocks. Bytes in → events out
//! ([`Parser`]); events in → bytes out (`encode_*`). The caller owns the I/O.
//!
//! Map of the file:
//! 1. Lines — where a line ends (`find_line_end`: the encoder splits data and
//!    comments with it, the parser reads with it) and what a line is
//!    (`classify_line`: the parser's, which `StreamLine::kind` hands to the
//!    trace), each written once.
//! 2. Encoder (server side).
//! 3. Parser (client side).
//! 4. Line-level view for the byte-trace annotator ([`Parser::next_line`]).
//! 5. Tests.

use std::borrow::Cow;
use std::fmt;
use std::mem;
use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

// HTTP's chunked coding belongs to the HTTP codec: one implementation, used here.
use super::http::response::chunked;
use super::{decimal_len, put_decimal};

// ---------------------------------------------------------------------------
// 1. Lines
// ---------------------------------------------------------------------------

/// Finds the first line end in `bytes`; returns `(end, next)` where the line
/// is `bytes[..end]` and its terminator is `bytes[end..next]`.
///
/// §9.2.6: "The stream must then be parsed by reading everything line by line,
/// with a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a
/// single U+000A LINE FEED (LF) character not preceded by a U+000D CARRIAGE
/// RETURN (CR) character, and a single U+000D CARRIAGE RETURN (CR) character
/// not followed by a U+000A LINE FEED (LF) character being the ways in which a
/// line can end."
///
/// Searching bytes rather than chars is safe: CR and LF are ASCII, and UTF-8
/// never uses a byte below 0x80 inside a multi-byte sequence, so a line end can
/// never cut a character in half.
///
/// A CR that is the *last* byte of `bytes` is reported as a complete one-byte
/// line end. A streaming caller must then remember to skip an LF arriving next
/// (see [`Parser`]); waiting for that next byte instead would delay dispatch
/// of a CR-terminated event until the server sends something else.
fn find_line_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let next = if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
        end + 2 // CRLF
    } else {
        end + 1 // lone LF, or lone CR
    };
    Some((end, next))
}

/// Splits text into lines for the *encoder*: `n` line ends give `n + 1`
/// lines, so `""` is one empty line and `"a\n"` is `["a", ""]`. That final
/// empty piece matters: it becomes a `data: ` line, which is how a trailing
/// newline in the data survives the trip (the parser strips only one LF).
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match find_line_end(r.as_bytes()) {
            Some((end, next)) => {
                // Slicing is on char boundaries: CR/LF are single ASCII bytes.
                rest = Some(&r[next..]);
                Some(&r[..end])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Decodes one complete line.
///
/// §9.2.6: "Streams must be decoded using the UTF-8 decode algorithm." Doing it
/// per line gives the same characters as decoding the whole stream: a line
/// boundary is an ASCII byte, which always ends any pending (invalid)
/// sequence, and Rust's lossy decoder emits U+FFFD per maximal invalid
/// subpart exactly like the WHATWG decoder. We only ever decode *complete*
/// lines, so a character split across two `feed` calls is never decoded in
/// halves.
fn decode(line: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(line)
}

/// What one line means to the §9.2.6 algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind<'a> {
    /// "If the line is empty (a blank line) — Dispatch the event".
    Blank,
    /// "If the line starts with a U+003A COLON character (:) — Ignore the line."
    /// Holds the text after the colon, untouched (the spec strips no space here).
    Comment(&'a str),
    /// A field line; see [`classify_line`] for how it is cut.
    Field { name: &'a str, value: &'a str },
}

/// Classifies one line (without its terminator), following §9.2.6:
///
/// - "If the line is empty (a blank line)" → [`LineKind::Blank`].
/// - "If the line starts with a U+003A COLON character (:)" → [`LineKind::Comment`].
/// - "If the line contains a U+003A COLON character (:) — Collect the
///   characters on the line before the first U+003A COLON character (:), and
///   let field be that string. Collect the characters on the line after the
///   first U+003A COLON character (:), and let value be that string. If value
///   starts with a U+0020 SPACE character, remove it from value."
/// - "Otherwise, the string is not empty but does not contain a U+003A COLON
///   character (:) — … using the whole line as the field name, and the empty
///   string as the field value."
pub fn classify_line(line: &str) -> LineKind<'_> {
    if line.is_empty() {
        return LineKind::Blank;
    }
    if let Some(comment) = line.strip_prefix(':') {
        return LineKind::Comment(comment);
    }
    match line.split_once(':') {
        // `strip_prefix` removes at most ONE space: "data:  x" keeps " x".
        Some((name, value)) => LineKind::Field { name, value: value.strip_prefix(' ').unwrap_or(value) },
        None => LineKind::Field { name: line, value: "" },
    }
}

// ---------------------------------------------------------------------------
// 2. Encoder (server side)
// ---------------------------------------------------------------------------
//
// The grammar we produce (§9.2.5):
//
//   stream        = [ bom ] *event
//   event         = *( comment / field ) end-of-line
//   comment       = colon *any-char end-of-line
//   field         = 1*name-char [ colon [ space ] *any-char ] end-of-line
//   end-of-line   = ( cr lf / cr / lf )
//   any-char      = ; a scalar value other than U+000A LINE FEED (LF) or
//                   ; U+000D CARRIAGE RETURN (CR)
//
// We always write LF line ends and never a BOM: both are optional, LF is the
// shortest, and "line buffering with lines are defined to end with a single
// U+000A LINE FEED (LF) character is safe" (§9.2.5).
//
// `any-char` excludes CR and LF, so a value can never contain them: a raw
// newline inside `data` would end the line early at the client and the rest
// would be read as a new (possibly injected) field. That is why data is split
// into one `data:` line per line of text.

/// The event name as it will be written, if a line is written at all.
///
/// `Some("")` is treated like `None`: an empty event type buffer already means
/// "message" at dispatch (step 6), so the line would change nothing.
fn event_name(event: Option<&str>) -> Option<&str> {
    event.filter(|name| !name.is_empty())
}

/// Exact number of bytes [`encode_event`] writes for these arguments.
///
/// Lets the caller size one buffer up front, or frame the event (e.g. as an
/// HTTP chunk) before writing it.
pub fn encoded_len(id: Option<u64>, event: Option<&str>, data: &str) -> usize {
    let mut len = 1; // the blank line that dispatches
    if let Some(id) = id {
        len += "id: ".len() + decimal_len(id) + 1;
    }
    if let Some(name) = event_name(event) {
        // CR/LF are replaced 1:1 by spaces, so the length is unchanged.
        len += "event: ".len() + name.len() + 1;
    }
    len + split_lines(data).map(|line| "data: ".len() + line.len() + 1).sum::<usize>()
}

/// Writes one event: `id: N\n` (if any), `event: NAME\n` (if any, non-empty),
/// one `data: LINE\n` per line of `data`, then the blank line that dispatches.
///
/// Writes exactly [`encoded_len`] bytes. (With a fixed-size `BufMut` such as
/// `&mut [u8]`, too little room panics, as `BufMut::put_slice` does.)
///
/// What a browser gets back (`MessageEvent.data`) is `data` with every CRLF
/// and lone CR turned into LF: the wire has no way to carry a CR inside a
/// value (`any-char` excludes it), and the parser rebuilds multi-line data
/// with LF only ("append a single U+000A LINE FEED (LF) character"). Every
/// other string, including `""`, lines starting with `:` or a space, and a
/// trailing newline, comes back exactly.
///
/// `event` must not contain CR or LF (they would end the line and could inject
/// fields); each one is replaced with a space so the framing stays intact.
pub fn encode_event(out: &mut impl BufMut, id: Option<u64>, event: Option<&str>, data: &str) {
    if let Some(id) = id {
        // A u64 is digits only: never NUL (which would make the client ignore
        // the field) and never CR/LF.
        out.put_slice(b"id: ");
        put_decimal(out, id);
        out.put_u8(b'\n');
    }
    if let Some(name) = event_name(event) {
        out.put_slice(b"event: ");
        for (i, part) in name.as_bytes().split(|&b| b == b'\r' || b == b'\n').enumerate() {
            if i > 0 {
                out.put_u8(b' ');
            }
            out.put_slice(part);
        }
        out.put_u8(b'\n');
    }
    // Always `data: ` WITH the space: the parser removes exactly one leading
    // space ("If value starts with a U+0020 SPACE character, remove it"), so
    // it removes ours and a line that itself starts with a space survives.
    //
    // Empty data still gets one `data: ` line: the data buffer becomes "\n",
    // which is non-empty, so an event with data "" IS dispatched (dispatch
    // step 2 only skips a buffer that is entirely empty).
    for line in split_lines(data) {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    // "If the line is empty (a blank line) — Dispatch the event".
    out.put_u8(b'\n');
}

/// One event as standalone bytes, without chunk framing: for HTTP/1.0 (or
/// `Connection: close`) responses whose body is delimited by closing the
/// connection.
pub fn encode_event_bytes(id: Option<u64>, event: Option<&str>, data: &str) -> Bytes {
    let len = encoded_len(id, event, data);
    let mut buf = BytesMut::with_capacity(len);
    encode_event(&mut buf, id, event, data);
    debug_assert_eq!(buf.len(), len);
    buf.freeze()
}

/// One event as a complete HTTP/1.1 chunk (size line, event bytes, CRLF).
///
/// Encode a publish once with this and write the same (cheaply cloned)
/// `Bytes` to every subscriber of a `Transfer-Encoding: chunked` stream.
pub fn encode_event_chunk(id: Option<u64>, event: Option<&str>, data: &str) -> Bytes {
    // An event is never empty (at least "data: \n\n"), so this can never be
    // mistaken for the zero-size last-chunk.
    chunked(encoded_len(id, event, data), |buf| encode_event(buf, id, event, data))
}

/// Wraps an already-encoded payload (e.g. [`encode_comment`] or
/// [`encode_retry`] output) in HTTP/1.1 chunk framing.
///
/// An empty payload yields empty `Bytes`, NOT `0\r\n\r\n`: a zero-size chunk
/// is the `last-chunk` and would end the response.
pub fn http_chunk(payload: &[u8]) -> Bytes {
    if payload.is_empty() {
        return Bytes::new();
    }
    chunked(payload.len(), |buf| buf.put_slice(payload))
}

/// `retry: MS\n\n`: sets the client's reconnection time.
///
/// The client handles it as "If the field name is "retry" — If the field
/// value consists of only ASCII digits, then … set the event stream's
/// reconnection time to that integer". The blank line after it dispatches
/// nothing (the data buffer is empty), it just closes the block cleanly.
pub fn encode_retry(ms: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity("retry: ".len() + decimal_len(ms) + 2);
    buf.put_slice(b"retry: ");
    put_decimal(&mut buf, ms);
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// `: TEXT\n\n`: a comment, e.g. a heartbeat that keeps proxies from timing
/// the connection out (the spec suggests one "every 15 seconds or so").
///
/// `comment = colon *any-char end-of-line`: a comment cannot hold CR or LF,
/// so multi-line text becomes one comment line per line. Clients ignore
/// comments entirely; the trailing blank line dispatches nothing (empty data
/// buffer). Send comments only between events, never inside one.
pub fn encode_comment(text: &str) -> Bytes {
    let len = split_lines(text).map(|line| ": ".len() + line.len() + 1).sum::<usize>() + 1;
    let mut buf = BytesMut::with_capacity(len);
    for line in split_lines(text) {
        buf.put_slice(b": ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

// ---------------------------------------------------------------------------
// 3. Parser (client side)
// ---------------------------------------------------------------------------

/// Default maximum line length in bytes (terminator excluded).
///
/// The spec sets no limit; without one, a peer that never sends a newline
/// makes us buffer forever.
pub const MAX_LINE: usize = 1 << 20; // 1 MiB

/// Default maximum size of one event's data buffer in bytes (including the
/// LF appended per `data` line). Bounds an event made of many short lines,
/// which the line limit alone cannot.
pub const MAX_DATA: usize = 16 << 20; // 16 MiB

/// UTF-8 encoding of U+FEFF BYTE ORDER MARK.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event: what `EventSource` hands to a `message` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `MessageEvent.type`: the event type buffer, or "message" if it was empty.
    pub event_type: String,
    /// `MessageEvent.data`: the data buffer minus its final LF.
    pub data: String,
    /// `MessageEvent.lastEventId`: the last event ID string at dispatch time.
    pub last_event_id: String,
}

/// What a field line does to the stream (WHATWG HTML §9.2.6, "process the field"):
/// decided here once, carried out by the [`Parser`] and shown by the trace, so the two
/// can never disagree about a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldEffect {
    /// `event`: "Set the event type buffer to the field value."
    EventType,
    /// `data`: "Append the field value to the data buffer, then append a single
    /// U+000A LINE FEED (LF) character to the data buffer."
    Data,
    /// `id` without NUL: "set the last event ID buffer to the field value".
    IdSet,
    /// `id` with a NUL: "Otherwise, ignore the field."
    IdIgnoredNul,
    /// `retry` of only ASCII digits: "set the event stream's reconnection time".
    RetrySet(u64),
    /// `retry` that is not only ASCII digits (or overflows what we can hold): ignored.
    RetryIgnored,
    /// Any other name: "Otherwise — The field is ignored." Names are compared
    /// literally, with no case folding.
    Unknown,
}

/// The effect of the field `name: value` (see [`FieldEffect`]).
pub fn field_effect(name: &str, value: &str) -> FieldEffect {
    match name {
        "event" => FieldEffect::EventType,
        "data" => FieldEffect::Data,
        "id" if value.contains('\0') => FieldEffect::IdIgnoredNul,
        "id" => FieldEffect::IdSet,
        "retry" => parse_retry(value).map_or(FieldEffect::RetryIgnored, FieldEffect::RetrySet),
        _ => FieldEffect::Unknown,
    }
}

/// The value of a `retry` field as milliseconds, if it "consists of only
/// ASCII digits".
///
/// The explicit digit check matters: Rust's `parse` alone would also accept a
/// leading '+'. An empty value (no integer at all) and one overflowing `u64`
/// (not an integer we can hold) are ignored too, like any non-digit value.
fn parse_retry(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Why the parser refused the stream. Errors are sticky: every later call
/// returns the same error until [`Parser::finish`] starts a new stream. The
/// caller should drop the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A line exceeded the parser's maximum line length.
    LineTooLong,
    /// One event's data buffer exceeded the parser's maximum data size.
    EventTooLarge,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::LineTooLong => "event-stream line exceeds the maximum line length",
            ParseError::EventTooLarge => "event-stream event data exceeds the maximum size",
        })
    }
}

impl std::error::Error for ParseError {}

/// The §9.2.6 state, kept apart from the byte buffer so a decoded line can
/// borrow the buffer while this is updated.
#[derive(Debug, Default)]
struct Interpreter {
    // "When a stream is parsed, a data buffer, an event type buffer, and a
    // last event ID buffer must be associated with it. They must be
    // initialized to the empty string."
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    // These two belong to the EventSource, not to one stream: they survive
    // reconnection (see `Parser::finish`).
    /// "the last event ID string of the event source" — sent as `Last-Event-ID`.
    last_event_id: String,
    /// "the event stream's reconnection time"; `None` = implementation default.
    reconnection_time: Option<u64>,
    max_data: usize,
}

impl Interpreter {
    /// "Lines must be processed, in the order they are received, as follows".
    fn process_line(&mut self, line: LineKind<'_>) -> Result<Option<Event>, ParseError> {
        match line {
            LineKind::Blank => Ok(self.dispatch()),
            LineKind::Comment(_) => Ok(None),
            LineKind::Field { name, value } => {
                self.process_field(name, value)?;
                Ok(None)
            }
        }
    }

    /// "The steps to process the field given a field name and a field value
    /// depend on the field name": decided by [`field_effect`], carried out here.
    fn process_field(&mut self, name: &str, value: &str) -> Result<(), ParseError> {
        match field_effect(name, value) {
            FieldEffect::EventType => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            FieldEffect::Data => {
                if self.data.len() + value.len() + 1 > self.max_data {
                    return Err(ParseError::EventTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            // Only the *buffer*: the EventSource's last event ID string changes at
            // dispatch. An empty value is allowed and clears the ID ("id" alone).
            FieldEffect::IdSet => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer.push_str(value);
            }
            FieldEffect::RetrySet(ms) => self.reconnection_time = Some(ms),
            FieldEffect::IdIgnoredNul | FieldEffect::RetryIgnored | FieldEffect::Unknown => {}
        }
        Ok(())
    }

    /// "Dispatch the event" — the steps "for web browsers".
    fn dispatch(&mut self) -> Option<Event> {
        // 1. "Set the last event ID string of the event source to the value of
        //    the last event ID buffer. The buffer does not get reset". This
        //    happens even when no event fires, so an `id:`-only block still
        //    moves Last-Event-ID.
        self.last_event_id.clone_from(&self.last_event_id_buffer);
        // 2. "If the data buffer is an empty string, set the data buffer and
        //    the event type buffer to the empty string and return."
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        // 3. "If the data buffer's last character is a U+000A LINE FEED (LF)
        //    character, then remove the last character from the data buffer."
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        // 5./6. type is "message" unless "the event type buffer has a value
        //    other than the empty string"; lastEventId is "the last event ID
        //    string of the event source".
        // 7. "Set the data buffer and the event type buffer to the empty
        //    string." (`mem::take` moves the text out and leaves "" behind.)
        let event_type = match mem::take(&mut self.event_type) {
            t if t.is_empty() => "message".to_owned(),
            t => t,
        };
        Some(Event { event_type, data: mem::take(&mut self.data), last_event_id: self.last_event_id.clone() })
    }
}

/// Streaming `text/event-stream` parser: the client side of §9.2.6.
///
/// Feed bytes as they arrive, split anywhere (between CR and LF, inside a
/// UTF-8 sequence, inside the BOM), then drain:
///
/// ```text
/// parser.feed(&bytes_from_socket);
/// while let Some(event) = parser.next_event()? { /* deliver */ }
/// ```
///
/// Drain after every `feed`: buffered memory is then bounded by the line
/// limit plus one `feed`. One `Parser` models one `EventSource`: call
/// [`finish`](Parser::finish) when a response body ends, then feed the
/// reconnected stream to the same parser.
#[derive(Debug)]
pub struct Parser {
    /// Bytes received but not yet consumed as complete lines.
    buf: BytesMut,
    /// Stream offset of `buf[0]` (for the tracer's byte ranges).
    offset: u64,
    /// Length of the prefix of `buf` already searched without finding a line
    /// end. Rescanning it on every `feed` would make a long line fed in tiny
    /// pieces quadratic.
    scanned: usize,
    /// Still at the very start of the stream, where one BOM may be skipped.
    at_stream_start: bool,
    /// The previous line ended with a CR that was the last byte we had; if the
    /// next byte is LF, it is the second half of that CRLF, not a blank line.
    skip_lf: bool,
    max_line: usize,
    error: Option<ParseError>,
    interp: Interpreter,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser with the default limits [`MAX_LINE`] and [`MAX_DATA`].
    pub fn new() -> Self {
        Self::with_limits(MAX_LINE, MAX_DATA)
    }

    /// A parser rejecting lines longer than `max_line` bytes (terminator
    /// excluded) with [`ParseError::LineTooLong`] and events whose data
    /// buffer would exceed `max_data` bytes with [`ParseError::EventTooLarge`].
    pub fn with_limits(max_line: usize, max_data: usize) -> Self {
        Parser {
            buf: BytesMut::new(),
            offset: 0,
            scanned: 0,
            at_stream_start: true,
            skip_lf: false,
            max_line,
            error: None,
            interp: Interpreter { max_data, ..Interpreter::default() },
        }
    }

    /// Appends received bytes. Nothing is parsed until
    /// [`next_event`](Parser::next_event) or [`next_line`](Parser::next_line).
    /// Ignored after an error.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Processes buffered lines until one dispatches an event; `Ok(None)`
    /// means more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, ParseError> {
        while let Some(line) = self.step(false)? {
            if line.event.is_some() {
                return Ok(line.event);
            }
        }
        Ok(None)
    }

    /// Processes exactly one buffered line, exactly as `next_event` would, and
    /// returns it with its stream byte offsets, its text, and the event it
    /// dispatched (if any). For the byte tracer: it sees every line, with
    /// line ends split across feeds already handled.
    pub fn next_line(&mut self) -> Result<Option<StreamLine>, ParseError> {
        self.step(true)
    }

    /// Ends the current stream (the response body ended or the connection
    /// closed). Returns whether anything was discarded.
    ///
    /// §9.2.6: "Once the end of the file is reached, any pending data must be
    /// discarded. (If the file ends in the middle of an event, before the
    /// final empty line, the incomplete event is not dispatched.)" So an
    /// unterminated last line is dropped (it is not a line: it has no line
    /// end, and any field on it is NOT processed, including `retry`), and so
    /// are the data and event type of an event lacking its blank line.
    ///
    /// Afterwards the parser is ready for the *next* stream, as an
    /// `EventSource` is after reconnecting: a BOM may appear again, the line
    /// error (if any) is cleared, offsets restart at 0, and the three
    /// per-stream buffers are empty ("When a stream is parsed, a data buffer,
    /// an event type buffer, and a last event ID buffer must be associated
    /// with it. They must be initialized to the empty string."). The
    /// EventSource-level [`last_event_id`](Parser::last_event_id) and
    /// [`retry`](Parser::retry) are kept: they are what the reconnection
    /// uses.
    pub fn finish(&mut self) -> bool {
        let discarded = !self.buf.is_empty() || !self.interp.data.is_empty() || !self.interp.event_type.is_empty();
        self.buf.clear();
        self.offset = 0;
        self.scanned = 0;
        self.at_stream_start = true;
        self.skip_lf = false;
        self.error = None;
        self.interp.data.clear();
        self.interp.event_type.clear();
        self.interp.last_event_id_buffer.clear();
        discarded
    }

    /// The EventSource's "last event ID string": set from the last event ID
    /// buffer at each dispatch (even one that fires no event). A reconnecting
    /// `EventSource` sends it as `Last-Event-ID` unless it is empty (§9.2.3).
    pub fn last_event_id(&self) -> &str {
        &self.interp.last_event_id
    }

    /// The stream's "last event ID buffer": set immediately by each valid `id`
    /// field, copied to [`last_event_id`](Parser::last_event_id) at the next
    /// blank line. They differ only between an `id:` line and its blank line.
    pub fn last_event_id_buffer(&self) -> &str {
        &self.interp.last_event_id_buffer
    }

    /// The reconnection time in milliseconds set by the last valid `retry`
    /// field, or `None` if the server never set one (the spec leaves the
    /// initial value implementation-defined, "probably in the region of a few
    /// seconds").
    pub fn retry(&self) -> Option<u64> {
        self.interp.reconnection_time
    }

    /// Takes one complete line off the buffer and interprets it.
    fn step(&mut self, keep_text: bool) -> Result<Option<StreamLine>, ParseError> {
        let Some((end, next)) = self.split()? else {
            return Ok(None);
        };
        let text = decode(&self.buf[..end]);
        let event = match self.interp.process_line(classify_line(&text)) {
            Ok(event) => event,
            Err(e) => return Err(self.fail(e)),
        };
        let line = StreamLine {
            content: self.offset..self.offset + end as u64,
            terminator: self.offset + end as u64..self.offset + next as u64,
            text: if keep_text { text.into_owned() } else { String::new() },
            event,
        };
        self.consume(next);
        Ok(Some(line))
    }

    /// Finds the next complete line in `buf`: `Some((end, next))` as in
    /// [`find_line_end`], or `None` if more bytes are needed.
    fn split(&mut self) -> Result<Option<(usize, usize)>, ParseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.at_stream_start {
            // "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order
            // Mark (BOM), if any." Only one, only at the very start; it may
            // arrive split across feeds, so wait while what we have is a
            // proper prefix of it.
            let n = self.buf.len().min(BOM.len());
            if self.buf[..n] != BOM[..n] {
                self.at_stream_start = false;
            } else if n == BOM.len() {
                self.consume(n);
                self.at_stream_start = false;
            } else {
                return Ok(None);
            }
        }
        if self.skip_lf {
            // "a single U+000D CARRIAGE RETURN (CR) character not followed by
            // a U+000A LINE FEED (LF)": the CR already ended its line; an LF
            // right after it belongs to that same line end.
            match self.buf.first() {
                None => return Ok(None),
                Some(&b) => {
                    self.skip_lf = false;
                    if b == b'\n' {
                        self.consume(1);
                    }
                }
            }
        }
        match find_line_end(&self.buf[self.scanned..]) {
            None => {
                self.scanned = self.buf.len();
                if self.scanned > self.max_line {
                    return Err(self.fail(ParseError::LineTooLong));
                }
                Ok(None)
            }
            Some((end, next)) => {
                let (end, next) = (self.scanned + end, self.scanned + next);
                self.scanned = 0;
                if end > self.max_line {
                    return Err(self.fail(ParseError::LineTooLong));
                }
                // A lone CR that is the last byte we have: its LF (if any) is
                // still on the wire.
                self.skip_lf = next == end + 1 && next == self.buf.len() && self.buf[end] == b'\r';
                Ok(Some((end, next)))
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.offset += n as u64;
    }

    /// Records a sticky error and frees the buffered bytes.
    fn fail(&mut self, e: ParseError) -> ParseError {
        self.error = Some(e);
        self.buf = BytesMut::new();
        self.scanned = 0;
        e
    }
}

// ---------------------------------------------------------------------------
// 4. Line-level view for the byte-trace annotator
// ---------------------------------------------------------------------------

/// One line as seen by [`Parser::next_line`], with offsets in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLine {
    /// Stream byte offsets of the line's content, counted from the first byte
    /// of the stream (a skipped BOM occupies offsets 0..3).
    pub content: Range<u64>,
    /// Stream byte offsets of the line end (CRLF, LF or CR). For a CRLF split
    /// across feeds this covers only the CR; the LF is skipped silently.
    pub terminator: Range<u64>,
    /// The decoded line (U+FFFD for invalid UTF-8).
    pub text: String,
    /// The event this line dispatched: only ever `Some` for a blank line that
    /// ended an event with data.
    pub event: Option<Event>,
}

impl StreamLine {
    /// What the line means (same rules the parser applied).
    pub fn kind(&self) -> LineKind<'_> {
        classify_line(&self.text)
    }
}

// ---------------------------------------------------------------------------
// 5. Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: &str, data: &str, last_event_id: &str) -> Event {
        Event { event_type: event_type.to_owned(), data: data.to_owned(), last_event_id: last_event_id.to_owned() }
    }

    fn msg(data: &str) -> Event {
        ev("message", data, "")
    }

    /// Everything observable after parsing a stream.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        events: Vec<Event>,
        last_event_id: String,
        last_event_id_buffer: String,
        retry: Option<u64>,
        /// What `finish()` reported as discarded.
        discarded: bool,
    }

    /// Feeds `pieces` one by one, draining after each.
    fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut p = Parser::new();
        let mut events = Vec::new();
        for piece in pieces {
            p.feed(piece);
            while let Some(e) = p.next_event().expect("within limits") {
                events.push(e);
            }
        }
        let (last_event_id, last_event_id_buffer, retry) =
            (p.last_event_id().to_owned(), p.last_event_id_buffer().to_owned(), p.retry());
        Outcome { events, last_event_id, last_event_id_buffer, retry, discarded: p.finish() }
    }

    /// Runs a parser test three ways — whole input, one byte at a time, and
    /// split in two at every offset — plus once through `next_line`, and
    /// checks they all agree; then checks that the byte trace reads the same
    /// input to the same events, fields, id and retry.
    fn check(input: &[u8], expected: &[Event]) -> Outcome {
        let whole = run([input]);
        assert_eq!(whole.events, expected, "whole input {:?}", String::from_utf8_lossy(input));
        assert_eq!(run(input.chunks(1)), whole, "one byte at a time");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run([a, b]), whole, "split at {i}");
        }
        let mut p = Parser::new();
        p.feed(input);
        let mut via_lines = Vec::new();
        while let Some(line) = p.next_line().unwrap() {
            via_lines.extend(line.event);
        }
        assert_eq!(via_lines, expected, "next_line");
        crate::trace::annotate::agreement::sse(input);
        whole
    }

    // --- The standard's own examples (§9.2.1, §9.2.6) ---

    #[test]
    fn spec_intro_example() {
        check(
            b"data: This is the first message.\n\n\
              data: This is the second message, it\n\
              data: has two lines.\n\n\
              data: This is the third message.\n\n",
            &[
                msg("This is the first message."),
                msg("This is the second message, it\nhas two lines."),
                msg("This is the third message."),
            ],
        );
    }

    #[test]
    fn spec_event_types_example() {
        check(
            b"event: add\ndata: 73857293\n\n\
              event: remove\ndata: 2153\n\n\
              event: add\ndata: 113411\n\n",
            &[ev("add", "73857293", ""), ev("remove", "2153", ""), ev("add", "113411", "")],
        );
    }

    #[test]
    fn spec_stock_ticker() {
        check(b"data: YHOO\ndata: +2\ndata: 10\n\n", &[msg("YHOO\n+2\n10")]);
    }

    #[test]
    fn spec_four_blocks() {
        let stream: &[u8] = b": test stream\n\n\
              data: first event\nid: 1\n\n\
              data:second event\nid\n\n\
              data:  third event\n\n";
        let out = check(
            stream,
            &[ev("message", "first event", "1"), ev("message", "second event", ""), ev("message", " third event", "")],
        );
        assert_eq!(out.last_event_id, "");
        assert!(!out.discarded);

        // "Note that the last still has to end with a blank line, the end of
        // the stream is not enough to trigger the dispatch of the last event."
        let out =
            check(&stream[..stream.len() - 1], &[ev("message", "first event", "1"), ev("message", "second event", "")]);
        assert!(out.discarded);
    }

    #[test]
    fn spec_four_blocks_last_event_id_between_blocks() {
        // "...will then set the last event ID to "1" so that if the connection
        // died between this block and the next, the server would be sent a
        // `Last-Event-ID` header with the value `1`."
        let mut p = Parser::new();
        p.feed(b": test stream\n\ndata: first event\nid: 1\n\n");
        assert_eq!(p.next_event().unwrap(), Some(ev("message", "first event", "1")));
        assert_eq!(p.last_event_id(), "1");
        p.feed(b"data:second event\nid\n\n");
        assert_eq!(p.next_event().unwrap(), Some(ev("message", "second event", "")));
        assert_eq!(p.last_event_id(), "");
    }

    #[test]
    fn spec_two_events() {
        let out = check(b"data\n\ndata\ndata\n\ndata:", &[msg(""), msg("\n")]);
        // "The last block is discarded because it is not followed by a blank line."
        assert!(out.discarded);
        // "...as would the last block if it was followed by a blank line."
        check(b"data\n\ndata\ndata\n\ndata:\n\n", &[msg(""), msg("\n"), msg("")]);
    }

    #[test]
    fn spec_space_after_colon_is_optional() {
        check(b"data:test\n\ndata: test\n\n", &[msg("test"), msg("test")]);
    }

    // --- BOM ---

    #[test]
    fn bom_is_skipped_at_start() {
        check(b"\xEF\xBB\xBFdata: x\n\n", &[msg("x")]);
        // A BOM then a blank line: just a blank line.
        check(b"\xEF\xBB\xBF\ndata: x\n\n", &[msg("x")]);
    }

    #[test]
    fn bom_only_once() {
        // The second U+FEFF is an ordinary character of the field name
        // "\u{FEFF}data", an unknown field.
        check(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", &[]);
    }

    #[test]
    fn bom_only_at_start() {
        check(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n", &[msg("a")]);
        // In a value it is kept as U+FEFF.
        check(b"data: \xEF\xBB\xBFb\n\n", &[msg("\u{FEFF}b")]);
    }

    #[test]
    fn bom_prefix_that_is_not_a_bom() {
        // EF BB then 'd': an invalid sequence (one U+FFFD), part of the name.
        check(b"\xEF\xBBdata: x\n\n", &[]);
        let mut p = Parser::new();
        p.feed(b"\xEF\xBB");
        assert_eq!(p.next_line().unwrap(), None, "waits: could still be a BOM");
        p.feed(b"\n");
        let line = p.next_line().unwrap().unwrap();
        assert_eq!(line.text, "\u{FFFD}");
        assert_eq!(line.content, 0..2);
    }

    #[test]
    fn bom_allowed_again_after_finish() {
        let mut p = Parser::new();
        p.feed(b"\xEF\xBB\xBFdata: a\n\n");
        assert_eq!(p.next_event().unwrap(), Some(msg("a")));
        assert!(!p.finish());
        p.feed(b"\xEF\xBB\xBFdata: b\n\n");
        assert_eq!(p.next_event().unwrap(), Some(msg("b")));
    }

    // --- Line ends ---

    #[test]
    fn line_ends_lf_cr_crlf() {
        check(b"data: a\ndata: b\n\n", &[msg("a\nb")]);
        check(b"data: a\rdata: b\r\r", &[msg("a\nb")]);
        check(b"data: a\r\ndata: b\r\n\r\n", &[msg("a\nb")]);
        // Mixed: "\r\r\n" is CR (ends "c") then CRLF (blank line).
        check(b"data: a\r\ndata: b\ndata: c\r\r\n", &[msg("a\nb\nc")]);
        // "\n\r" is two line ends: LF then a lone CR (blank line).
        check(b"data: a\n\rdata: b\n\n", &[msg("a"), msg("b")]);
        // "\r\n\n": CRLF then LF, exactly one blank line.
        check(b"data: a\r\n\ndata: b\r\n\n", &[msg("a"), msg("b")]);
    }

    #[test]
    fn crlf_split_across_feeds_is_one_line_end() {
        let mut p = Parser::new();
        p.feed(b"data: a\r");
        assert_eq!(p.next_event().unwrap(), None);
        p.feed(b"\n");
        // Had the LF counted as a blank line, "a" would be dispatched here.
        assert_eq!(p.next_event().unwrap(), None);
        p.feed(b"data: b\r\n\r");
        assert_eq!(p.next_event().unwrap(), Some(msg("a\nb")));
        p.feed(b"\n");
        assert_eq!(p.next_event().unwrap(), None);
        assert!(!p.finish());
    }

    #[test]
    fn lone_cr_dispatches_without_waiting_for_more_bytes() {
        let mut p = Parser::new();
        p.feed(b"data: a\r\r");
        assert_eq!(p.next_event().unwrap(), Some(msg("a")));
    }

    // --- Fields ---

    #[test]
    fn id_with_nul_is_ignored() {
        let out = check(
            b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid: \0\ndata: c\n\n",
            &[ev("message", "a", "1"), ev("message", "b", "1"), ev("message", "c", "1")],
        );
        assert_eq!(out.last_event_id, "1");
    }

    #[test]
    fn id_keeps_spaces_and_colons() {
        check(b"id:  a:b \ndata: x\n\n", &[ev("message", "x", " a:b ")]);
    }

    #[test]
    fn retry_digits_only() {
        let retry = |s: &[u8]| check(s, &[]).retry;
        assert_eq!(retry(b"retry: 1500\n"), Some(1500));
        assert_eq!(retry(b"retry:0\n"), Some(0));
        assert_eq!(retry(b"retry: 1500\nretry: 20\n"), Some(20));
        assert_eq!(retry(b"retry: 15x0\n"), None);
        assert_eq!(retry(b"retry: -5\n"), None);
        assert_eq!(retry(b"retry: +5\n"), None);
        assert_eq!(retry(b"retry: 1.5\n"), None);
        // One space is removed; the second one makes it non-digit.
        assert_eq!(retry(b"retry:  1500\n"), None);
        assert_eq!(retry(b"retry: 1500 \n"), None);
        assert_eq!(retry(b"retry:\n"), None);
        assert_eq!(retry(b"retry\n"), None);
        // Does not fit a u64: ignored rather than wrapped.
        assert_eq!(retry(b"retry: 99999999999999999999999\n"), None);
        assert_eq!(retry(b"retry: 1000\nretry: x\n"), Some(1000), "invalid keeps old");
        // Unterminated at end of stream: not a line, not processed.
        assert_eq!(retry(b"retry: 1000"), None);
    }

    #[test]
    fn retry_does_not_dispatch_or_disturb_event() {
        check(b"data: a\nretry: 10\ndata: b\n\n", &[msg("a\nb")]);
    }

    #[test]
    fn field_without_colon() {
        // "data" alone appends "" + LF; "event" alone resets the type.
        check(b"event: x\nevent\ndata\ndata: y\n\n", &[msg("\ny")]);
        check(b"id: 5\nid\ndata: z\n\n", &[msg("z")]);
    }

    #[test]
    fn unknown_and_case_sensitive_fields_are_ignored() {
        check(b"foo: bar\nDATA: x\nData: x\ndata : x\n data: x\n\n", &[]);
        check(b"foo: bar\ndata: x\nfoo\n\n", &[msg("x")]);
    }

    #[test]
    fn value_details() {
        check(b"data: a:b\n\n", &[msg("a:b")]);
        check(b"data::\n\n", &[msg(":")]);
        check(b"data:\tx\n\n", &[msg("\tx")]);
        check(b"data: \n\n", &[msg("")]);
        check(b"data:  \n\n", &[msg(" ")]);
        check(b"data: \0\n\n", &[msg("\0")]);
    }

    #[test]
    fn comments_are_ignored() {
        check(b":\n: hb\ndata: x\n:data: y\n\n", &[msg("x")]);
        check(b": only a comment\n\n", &[]);
    }

    #[test]
    fn event_type_reset_after_dispatch() {
        check(b"event: a\ndata: 1\n\ndata: 2\n\n", &[ev("a", "1", ""), msg("2")]);
        // Also reset by a dispatch that fires nothing (step 2).
        check(b"event: a\n\ndata: 2\n\n", &[msg("2")]);
        // The last event line wins.
        check(b"event: a\nevent: b\ndata: 1\n\n", &[ev("b", "1", "")]);
        check(b"event:\ndata: 1\n\n", &[msg("1")]);
    }

    #[test]
    fn last_event_id_persists() {
        let out = check(
            b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n",
            &[ev("message", "a", "7"), ev("message", "b", "7"), ev("message", "c", "8")],
        );
        assert_eq!(out.last_event_id, "8");
    }

    #[test]
    fn id_only_block_updates_last_event_id() {
        // Dispatch step 1 runs before the empty-data check in step 2.
        let out = check(b"data: a\n\nid: 9\n\n", &[msg("a")]);
        assert_eq!(out.last_event_id, "9");
    }

    #[test]
    fn last_event_id_changes_only_at_dispatch() {
        let out = check(b"id: 1\ndata: a\n\nid: 2\ndata: b\n", &[ev("message", "a", "1")]);
        assert_eq!(out.last_event_id, "1", "the event with id 2 never completed");
        assert_eq!(out.last_event_id_buffer, "2");
        assert!(out.discarded);
    }

    #[test]
    fn finish_starts_a_new_stream() {
        let mut p = Parser::new();
        p.feed(b"id: 3\nretry: 500\ndata: a\n\nevent: e\nid: 4\ndata: partial\n");
        assert_eq!(p.next_event().unwrap(), Some(ev("message", "a", "3")));
        assert_eq!(p.next_event().unwrap(), None);
        assert!(p.finish());
        // EventSource-level state survives; per-stream buffers do not.
        assert_eq!(p.last_event_id(), "3");
        assert_eq!(p.last_event_id_buffer(), "");
        assert_eq!(p.retry(), Some(500));
        p.feed(b"\n");
        assert_eq!(p.next_event().unwrap(), None, "old data was discarded");
        p.feed(b"data: b\n\n");
        // Per the spec text the new stream's last event ID buffer starts
        // empty, so this dispatch resets the last event ID string.
        assert_eq!(p.next_event().unwrap(), Some(msg("b")));
        assert_eq!(p.last_event_id(), "");
        assert!(!p.finish());
    }

    #[test]
    fn empty_and_blank_streams() {
        check(b"", &[]);
        check(b"\n\n\n", &[]);
        check(b"\r\n\r\n", &[]);
    }

    // --- UTF-8 ---

    #[test]
    fn utf8_split_anywhere() {
        check("data: é😀\u{10FFFF}\n\n".as_bytes(), &[msg("é😀\u{10FFFF}")]);
        check("event: ünï\ndata: x\n\n".as_bytes(), &[ev("ünï", "x", "")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement() {
        check(b"data: \xFF\xFE\n\n", &[msg("\u{FFFD}\u{FFFD}")]);
        // A truncated 3-byte sequence cut by the line end: one U+FFFD, as the
        // WHATWG decoder gives for the whole stream.
        check(b"data: \xE2\x82\ndata: ok\n\n", &[msg("\u{FFFD}\nok")]);
        check(b"data: a\xC3(b\n\n", &[msg("a\u{FFFD}(b")]);
        // Surrogates encoded in UTF-8 are invalid: one U+FFFD per byte.
        check(b"data: \xED\xA0\x80\n\n", &[msg("\u{FFFD}\u{FFFD}\u{FFFD}")]);
    }

    // --- Limits ---

    #[test]
    fn line_too_long() {
        let mut p = Parser::with_limits(8, MAX_DATA);
        p.feed(b"data: 12\n\n"); // exactly 8: fine
        assert_eq!(p.next_event().unwrap(), Some(msg("12")));
        p.feed(b"data: 123\n\n"); // 9, terminated in the same feed
        assert_eq!(p.next_event(), Err(ParseError::LineTooLong));
        // Sticky, and further input is not buffered.
        p.feed(b"data: x\n\n");
        assert_eq!(p.next_event(), Err(ParseError::LineTooLong));
        assert_eq!(p.next_line(), Err(ParseError::LineTooLong));
        // A new stream is clean again.
        p.finish();
        p.feed(b"data: y\n\n");
        assert_eq!(p.next_event().unwrap(), Some(msg("y")));
    }

    #[test]
    fn unterminated_line_too_long_fails_early() {
        let mut p = Parser::with_limits(8, MAX_DATA);
        for _ in 0..8 {
            p.feed(b"x");
            assert_eq!(p.next_event(), Ok(None));
        }
        p.feed(b"x");
        assert_eq!(p.next_event(), Err(ParseError::LineTooLong));
    }

    #[test]
    fn long_line_fed_bytewise_is_linear() {
        // With rescanning this would be ~n²/2 = 5·10⁹ byte comparisons.
        let n = 100_000;
        let mut p = Parser::new();
        p.feed(b"data: ");
        for _ in 0..n {
            p.feed(b"a");
            assert_eq!(p.next_event(), Ok(None));
        }
        p.feed(b"\n\n");
        assert_eq!(p.next_event().unwrap().unwrap().data.len(), n);
    }

    #[test]
    fn event_too_large() {
        let mut p = Parser::with_limits(MAX_LINE, 10);
        p.feed(b"data: 1234\ndata: 1234\n\n"); // 5 + 5 = 10 bytes: fine
        assert_eq!(p.next_event().unwrap(), Some(msg("1234\n1234")));
        p.feed(b"data: 1234\ndata: 12345\n\n");
        assert_eq!(p.next_event(), Err(ParseError::EventTooLarge));
        assert_eq!(p.next_event(), Err(ParseError::EventTooLarge));
    }

    // --- Encoder ---

    fn normalize(s: &str) -> String {
        s.replace("\r\n", "\n").replace('\r', "\n")
    }

    /// Encodes, checks the length promise, parses back.
    fn round_trip(id: Option<u64>, event: Option<&str>, data: &str) {
        let bytes = encode_event_bytes(id, event, data);
        assert_eq!(bytes.len(), encoded_len(id, event, data), "{data:?}");
        let mut p = Parser::new();
        p.feed(&bytes);
        let got = p.next_event().unwrap().expect("one event");
        let want = Event {
            event_type: event_name(event).unwrap_or("message").to_owned(),
            data: normalize(data),
            last_event_id: id.map(|i| i.to_string()).unwrap_or_default(),
        };
        assert_eq!(got, want, "encoded as {bytes:?}");
        assert_eq!(p.next_event().unwrap(), None);
        assert!(!p.finish(), "nothing left over");
    }

    #[test]
    fn encoder_exact_bytes() {
        assert_eq!(
            &encode_event_bytes(Some(42), Some("update"), "a\nb")[..],
            b"id: 42\nevent: update\ndata: a\ndata: b\n\n"
        );
        assert_eq!(&encode_event_bytes(None, None, "")[..], b"data: \n\n");
        assert_eq!(&encode_event_bytes(None, Some(""), "x")[..], b"data: x\n\n");
        assert_eq!(
            &encode_event_bytes(Some(0), None, "a\r\nb\rc\n")[..],
            b"id: 0\ndata: a\ndata: b\ndata: c\ndata: \n\n"
        );
        assert_eq!(&encode_event_bytes(Some(u64::MAX), None, "x")[..], b"id: 18446744073709551615\ndata: x\n\n");
    }

    #[test]
    fn encoder_into_any_bufmut() {
        let mut v = Vec::new();
        encode_event(&mut v, Some(1), None, "x");
        encode_event(&mut v, Some(2), None, "y");
        assert_eq!(v, b"id: 1\ndata: x\n\nid: 2\ndata: y\n\n");
    }

    #[test]
    fn event_name_cannot_inject_fields() {
        let bytes = encode_event_bytes(None, Some("x\ndata: injected\rid: 9"), "real");
        assert_eq!(&bytes[..], b"event: x data: injected id: 9\ndata: real\n\n");
        let mut p = Parser::new();
        p.feed(&bytes);
        assert_eq!(p.next_event().unwrap(), Some(ev("x data: injected id: 9", "real", "")));
    }

    #[test]
    fn round_trip_exhaustive_small_alphabet() {
        // Every string of length ≤ 5 over the characters that matter to the
        // framing: 3906 strings.
        let alphabet = ['a', '\r', '\n', ':', ' '];
        let events = [None, Some(""), Some("update"), Some(" sp:x ")];
        let mut strings = vec![String::new()];
        let mut start = 0;
        for _ in 0..5 {
            let end = strings.len();
            for i in start..end {
                for c in alphabet {
                    let mut s = strings[i].clone();
                    s.push(c);
                    strings.push(s);
                }
            }
            start = end;
        }
        assert_eq!(strings.len(), 3906);
        for (i, s) in strings.iter().enumerate() {
            let id = (i % 3 != 0).then_some(i as u64);
            round_trip(id, events[i % events.len()], s);
        }
    }

    struct Rng(u64);

    impl Rng {
        /// xorshift64: deterministic, dependency-free.
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_data(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            " ",
            ":",
            "\r",
            "\n",
            "\r\n",
            "\n\r",
            "é",
            "😀",
            "\u{FEFF}",
            "\0",
            "\t",
            "data: ",
            "id: 1",
            "event: x",
            "retry: 5",
            ": comment",
            "\u{FFFD}",
            "\u{10FFFF}",
        ];
        (0..rng.below(24)).map(|_| PIECES[rng.below(PIECES.len())]).collect()
    }

    #[test]
    fn round_trip_random_unicode() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for i in 0..5000u64 {
            let data = random_data(&mut rng);
            let id = (rng.below(2) == 0).then_some(rng.next());
            let event = ["ping", "ünï", ""][rng.below(3)];
            round_trip(id, Some(event).filter(|_| i % 2 == 0), &data);
        }
    }

    #[test]
    fn round_trip_whole_stream_any_split() {
        // Many events back to back in one stream, fed whole and byte by byte.
        let mut rng = Rng(42);
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        let mut last_id = String::new();
        for i in 0..400u64 {
            let data = random_data(&mut rng);
            let id = (i % 3 == 0).then_some(i);
            if let Some(id) = id {
                last_id = id.to_string();
            }
            if i % 7 == 0 {
                wire.extend_from_slice(&encode_comment("heart\nbeat"));
            }
            encode_event(&mut wire, id, None, &data);
            want.push(ev("message", &normalize(&data), &last_id));
        }
        wire.extend_from_slice(&encode_retry(2500));
        let whole = run([&wire[..]]);
        assert_eq!(whole.events, want);
        assert_eq!(whole.retry, Some(2500));
        assert_eq!(run(wire.chunks(1)), whole);
        assert_eq!(run(wire.chunks(7)), whole);
    }

    /// Parses one HTTP/1.1 chunk, checking the size line; returns chunk-data.
    fn unchunk(chunk: &[u8]) -> &[u8] {
        let eol = chunk.windows(2).position(|w| w == b"\r\n").expect("size line");
        let size_line = std::str::from_utf8(&chunk[..eol]).unwrap();
        let size = usize::from_str_radix(size_line, 16).expect("hex size");
        let rest = &chunk[eol + 2..];
        assert_eq!(rest.len(), size + 2, "size line matches payload length");
        assert_eq!(&rest[size..], b"\r\n");
        &rest[..size]
    }

    #[test]
    fn event_chunk_is_valid_http_chunk() {
        for data in ["", "x", "hello\nworld", &"0123456789abcdef".repeat(300)] {
            let chunk = encode_event_chunk(Some(7), Some("tick"), data);
            let payload = unchunk(&chunk);
            assert_eq!(payload, &encode_event_bytes(Some(7), Some("tick"), data)[..]);
            let mut p = Parser::new();
            p.feed(payload);
            assert_eq!(p.next_event().unwrap(), Some(ev("tick", data, "7")));
        }
        assert_eq!(&encode_event_chunk(None, None, "hi")[..], b"a\r\ndata: hi\n\n\r\n");
        // 6 + 5000 + 2 = 5008 = 0x1390 bytes: a multi-digit size line.
        let big = encode_event_chunk(None, None, &"x".repeat(5000));
        assert!(big.starts_with(b"1390\r\n"), "{:?}", &big[..8]);
    }

    #[test]
    fn http_chunk_framing() {
        assert_eq!(&http_chunk(b": hb\n\n")[..], b"6\r\n: hb\n\n\r\n");
        assert_eq!(unchunk(&http_chunk(&encode_retry(3000))), b"retry: 3000\n\n");
        assert!(http_chunk(b"").is_empty(), "never the last-chunk");
    }

    #[test]
    fn retry_encoding() {
        assert_eq!(&encode_retry(3000)[..], b"retry: 3000\n\n");
        assert_eq!(&encode_retry(0)[..], b"retry: 0\n\n");
        let out = check(&encode_retry(3000), &[]);
        assert_eq!(out.retry, Some(3000));
        assert!(!out.discarded);
    }

    #[test]
    fn comment_encoding() {
        assert_eq!(&encode_comment("keep-alive")[..], b": keep-alive\n\n");
        assert_eq!(&encode_comment("")[..], b": \n\n");
        assert_eq!(&encode_comment("a\r\nb\rc")[..], b": a\n: b\n: c\n\n");
        let bytes = encode_comment("x\ndata: not data");
        let mut p = Parser::new();
        p.feed(&bytes);
        while let Some(l) = p.next_line().unwrap() {
            assert!(matches!(l.kind(), LineKind::Comment(_) | LineKind::Blank), "{l:?}");
        }
        let out = check(&bytes, &[]);
        assert!(!out.discarded);
        // A comment between events leaves them intact.
        let mut wire = encode_event_bytes(Some(1), None, "a").to_vec();
        wire.extend_from_slice(&encode_comment("hb"));
        wire.extend_from_slice(&encode_event_bytes(None, Some("e"), "b"));
        check(&wire, &[ev("message", "a", "1"), ev("e", "b", "1")]);
    }

    // --- Line-level view ---

    #[test]
    fn stream_lines_and_their_byte_ranges() {
        let input: &[u8] = b"event: up\r\ndata: x\n: hb\r\n\ndata";
        // Content, line end, text; the unterminated "data" is not a line yet.
        let want: Vec<(Range<u64>, Range<u64>, String)> = vec![
            (0..9, 9..11, "event: up".into()),
            (11..18, 18..19, "data: x".into()),
            (19..23, 23..25, ": hb".into()),
            (25..25, 25..26, "".into()),
        ];
        // Same lines whether fed whole or byte by byte (the CRLFs get split).
        for piece_len in [input.len(), 1] {
            let mut p = Parser::new();
            let mut got = Vec::new();
            let mut dispatched = Vec::new();
            for piece in input.chunks(piece_len) {
                p.feed(piece);
                while let Some(line) = p.next_line().unwrap() {
                    dispatched.extend(line.event.clone());
                    // A CRLF split across feeds reports only the CR.
                    let mut term = line.terminator.clone();
                    if piece_len == 1 && input[term.start as usize] == b'\r' {
                        term.end = term.start + 2;
                    }
                    got.push((line.content, term, line.text));
                }
            }
            assert_eq!(got, want);
            assert_eq!(dispatched, [ev("up", "x", "")]);
        }
    }

    #[test]
    fn stream_lines_decode_invalid_utf8() {
        let mut p = Parser::new();
        p.feed(b"data: \xFF\n");
        let line = p.next_line().unwrap().unwrap();
        assert_eq!(line.kind(), LineKind::Field { name: "data", value: "\u{FFFD}" });
    }

    #[test]
    fn stream_line_offsets_count_the_bom() {
        let mut p = Parser::new();
        p.feed(b"\xEF\xBB\xBFdata: x\n\n");
        let first = p.next_line().unwrap().unwrap();
        assert_eq!(first.content, 3..10);
        assert_eq!(first.kind(), LineKind::Field { name: "data", value: "x" });
        let blank = p.next_line().unwrap().unwrap();
        assert_eq!(blank.kind(), LineKind::Blank);
        assert_eq!(blank.terminator, 11..12);
        assert_eq!(blank.event, Some(msg("x")));
    }

    #[test]
    fn classify_examples() {
        assert_eq!(classify_line(""), LineKind::Blank);
        assert_eq!(classify_line(":"), LineKind::Comment(""));
        assert_eq!(classify_line(": x"), LineKind::Comment(" x"));
        assert_eq!(classify_line("data"), LineKind::Field { name: "data", value: "" });
        assert_eq!(classify_line("data:"), LineKind::Field { name: "data", value: "" });
        assert_eq!(classify_line("data: "), LineKind::Field { name: "data", value: "" });
        assert_eq!(classify_line("data:  x"), LineKind::Field { name: "data", value: " x" });
        assert_eq!(classify_line("a:b:c"), LineKind::Field { name: "a", value: "b:c" });
        assert_eq!(classify_line(" data: x"), LineKind::Field { name: " data", value: "x" });
    }
}
