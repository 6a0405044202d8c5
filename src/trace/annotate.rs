//! Reads the bytes of a connection as the protocols they carry, for the trace.
//!
//! This is smoltcp's packet-tracer idea: the tap hands the bytes that crossed the socket
//! to a [`Conversation`], which re-reads them with the project's own pure codecs and
//! returns [`Note`]s ("bytes 0x1a..0x30 are the header `Host: localhost`"). The codecs
//! that serve the connection never know that tracing exists, and with tracing off none
//! of this runs.
//!
//! A conversation has two streams: requests (client to server) and responses (server to
//! client). Each is read by its own [`Reader`], from HTTP heads through bodies; the two
//! are coupled only where HTTP couples them: a response to HEAD has no body, and a `101`
//! turns both directions into another protocol.
//!
//! A `text/event-stream` body (WHATWG HTML §9.2) is read a second time, under its HTTP
//! framing (chunked, RFC 9112 §7.1, or until close on HTTP/1.0): the SSE codec's parser
//! names each line (`sse field id: 3`, `sse comment (heartbeat)`, `sse blank line:
//! dispatch event id=3`), at the stream offset of the line's own bytes, which sit
//! inside the chunk data that carried them.
//! After a `101`, both readers read WebSocket frames (RFC 6455 §5.2) with the codec's
//! own `FrameHeader::parse` and `annotate_frame`: each frame's header (FIN, RSV1-3, the
//! opcode by name, MASK, the payload length and which of the 7/16/64-bit forms carried
//! it), its masking key, and its payload unmasked (a Close frame's code and reason). A
//! frame split across reads waits in `pending` until it is whole, like any other unit;
//! a frame too large to hold is named piece by piece as it passes.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::proto::http::{self, ChunkedDecoder, HeadLimits, Piece, ResponseBody};
use crate::proto::sse::{self, LineKind, StreamLine};
use crate::proto::ws::{FrameHeader, annotate_frame, apply_mask};

/// "These bytes of the stream mean this."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Stream offset of the first byte, in this direction.
    pub offset: u64,
    pub len: u64,
    pub text: String,
}

/// Which direction a reader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// What one reader tells the other.
enum Signal {
    /// A request head went by; the response to it has a body unless it was HEAD.
    Request { head: bool },
    /// A `101 Switching Protocols` went by: both directions now speak another protocol.
    Upgraded,
    /// A final response other than `101` answered the last request: an upgrade that
    /// was asked for was refused, so the request stream is HTTP again.
    Answered,
}

/// Both directions of one connection.
pub struct Conversation {
    request: Reader,
    response: Reader,
    head_requests: VecDeque<bool>,
    /// A connection to Redis: both directions are RESP (commands out, replies in).
    resp: Option<Box<[RespReader; 2]>>,
}

impl Default for Conversation {
    fn default() -> Self {
        Self::new()
    }
}

impl Conversation {
    pub fn new() -> Self {
        Conversation {
            request: Reader::new(Side::Request),
            response: Reader::new(Side::Response),
            head_requests: VecDeque::new(),
            resp: None,
        }
    }

    /// A connection to Redis: commands one way, replies and pub/sub messages the other.
    pub fn resp() -> Self {
        Conversation { resp: Some(Box::new([RespReader::new(true), RespReader::new(false)])), ..Self::new() }
    }

    /// Bytes the client sent.
    pub fn request_bytes(&mut self, bytes: &[u8]) -> Vec<Note> {
        if let Some(r) = &mut self.resp {
            return r[0].feed(bytes);
        }
        let mut signals = Vec::new();
        let notes = self.request.feed(bytes, &mut signals, &mut self.head_requests);
        for s in signals {
            if let Signal::Request { head } = s {
                self.head_requests.push_back(head);
            }
        }
        notes
    }

    /// Bytes the server sent.
    pub fn response_bytes(&mut self, bytes: &[u8]) -> Vec<Note> {
        if let Some(r) = &mut self.resp {
            return r[1].feed(bytes);
        }
        let mut signals = Vec::new();
        let notes = self.response.feed(bytes, &mut signals, &mut self.head_requests);
        for s in signals {
            match s {
                Signal::Upgraded => self.request.upgrade(),
                Signal::Answered if self.head_requests.is_empty() => self.request.resume_http(),
                _ => {}
            }
        }
        notes
    }
}

/// Where a reader stands in its stream.
enum Mode {
    /// Expecting a request or response head.
    Head,
    /// A body of known length, this much still to come.
    Length(u64),
    /// A chunked body; `unit` counts bytes of an unfinished unit already stepped over;
    /// `sse` reads the body as an event stream when it is one.
    Chunked { dec: ChunkedDecoder, unit: usize, sse: Option<Box<EventStream>> },
    /// A body that runs until the connection closes (HTTP/1.0 streams).
    UntilClose { sse: Option<Box<EventStream>> },
    /// A request asked to upgrade (`Upgrade: websocket`): what follows it is held,
    /// unread, until the response says whether it is frames (`101`) or HTTP again.
    AwaitingUpgrade,
    /// After a `101`: WebSocket frames.
    Upgraded(WsFrames),
    /// Bytes this reader can no longer interpret, and why.
    Opaque(&'static str),
}

/// One direction's reader. Keeps the bytes of any unit not yet complete, so that a unit
/// split across reads is named once it has all arrived.
pub struct Reader {
    side: Side,
    /// Stream offset of `pending[0]`.
    base: u64,
    pending: Vec<u8>,
    mode: Mode,
}

/// The most a reader holds while waiting for a head to complete; past it, it gives up
/// (the server itself refuses far smaller heads).
const MAX_PENDING_HEAD: usize = 64 * 1024;

/// How much of a body is quoted in a note.
const PREVIEW: usize = 96;

impl Reader {
    pub fn new(side: Side) -> Self {
        Reader { side, base: 0, pending: Vec::new(), mode: Mode::Head }
    }

    fn upgrade(&mut self) {
        self.mode = Mode::Upgraded(WsFrames::default());
    }

    fn resume_http(&mut self) {
        if matches!(self.mode, Mode::AwaitingUpgrade) {
            self.mode = Mode::Head;
        }
    }

    fn feed(&mut self, bytes: &[u8], signals: &mut Vec<Signal>, head_requests: &mut VecDeque<bool>) -> Vec<Note> {
        self.pending.extend_from_slice(bytes);
        let mut notes = Vec::new();
        let mut pos = 0;
        while pos < self.pending.len() {
            let rest = &self.pending[pos..];
            let at = self.base + pos as u64;
            let used = match &mut self.mode {
                Mode::Head => match self.side {
                    Side::Request => read_request_head(rest, at, &mut notes, &mut self.mode, signals),
                    Side::Response => read_response_head(rest, at, head_requests, &mut notes, &mut self.mode, signals),
                },
                Mode::Length(left) => {
                    let n = (*left as usize).min(rest.len());
                    *left -= n as u64;
                    let text = format!(
                        "http body, {n} bytes{}: {}",
                        if *left == 0 { "" } else { " (more to come)" },
                        preview(&rest[..n])
                    );
                    notes.push(Note { offset: at, len: n as u64, text });
                    if *left == 0 {
                        self.mode = Mode::Head;
                    }
                    n
                }
                Mode::Chunked { dec, unit, sse } => {
                    match read_chunk_piece(rest, at, dec, unit, sse.as_deref_mut(), &mut notes) {
                        Ok(Some(n)) => {
                            if dec.is_done() {
                                self.mode = Mode::Head;
                            }
                            n
                        }
                        Ok(None) => break,
                        Err(why) => {
                            notes.push(Note { offset: at, len: 0, text: format!("chunked framing error: {why}") });
                            self.mode = Mode::Opaque("after a chunked framing error");
                            0
                        }
                    }
                }
                Mode::UntilClose { sse: Some(sse) } => {
                    let text = format!("event-stream body (until close), {} bytes", rest.len());
                    notes.push(Note { offset: at, len: rest.len() as u64, text });
                    sse.feed(rest, at, &mut notes);
                    rest.len()
                }
                Mode::UntilClose { sse: None } => {
                    let text = format!("http body (until close): {}", preview(rest));
                    notes.push(Note { offset: at, len: rest.len() as u64, text });
                    rest.len()
                }
                Mode::AwaitingUpgrade => 0,
                Mode::Upgraded(ws) => match read_ws_frame(rest, at, ws, &mut notes) {
                    Ok(n) => n,
                    Err(why) => {
                        notes.push(Note { offset: at, len: 0, text: format!("ws unreadable frame header: {why}") });
                        self.mode = Mode::Opaque("after an unreadable WebSocket frame header");
                        0
                    }
                },
                Mode::Opaque(why) => {
                    notes.push(Note {
                        offset: at,
                        len: rest.len() as u64,
                        text: format!("{} bytes {why}", rest.len()),
                    });
                    rest.len()
                }
            };
            if used == 0 && matches!(self.mode, Mode::Head | Mode::AwaitingUpgrade | Mode::Upgraded(_)) {
                break; // a head or a frame still arriving, or bytes held until the answer
            }
            pos += used;
        }
        self.pending.drain(..pos);
        self.base += pos as u64;
        if matches!(self.mode, Mode::Head | Mode::AwaitingUpgrade) && self.pending.len() > MAX_PENDING_HEAD {
            self.mode = Mode::Opaque("that do not form an HTTP head");
        }
        notes
    }
}

/// Names each line of a head: the start line, each field line, the empty line.
fn head_lines(raw: &[u8], at: u64, first: &str, notes: &mut Vec<Note>) {
    let mut off = 0;
    for (i, line) in raw.split_inclusive(|&b| b == b'\n').enumerate() {
        let text = String::from_utf8_lossy(line.strip_suffix(b"\r\n").unwrap_or(line));
        let text = if i == 0 {
            format!("http {first}: {text}")
        } else if text.is_empty() {
            "http end of header section (empty line)".to_string()
        } else {
            format!("http header {text}")
        };
        notes.push(Note { offset: at + off as u64, len: line.len() as u64, text });
        off += line.len();
    }
}

/// Reads a request head with the server's own parser, so the trace says what the server
/// concluded, including why it refused.
fn read_request_head(rest: &[u8], at: u64, notes: &mut Vec<Note>, mode: &mut Mode, signals: &mut Vec<Signal>) -> usize {
    // Generous limits: the trace shows what arrived; the server enforces its own.
    let limits = HeadLimits { max_header: MAX_PENDING_HEAD, max_target: MAX_PENDING_HEAD, max_body: usize::MAX };
    let mut buf = BytesMut::from(rest);
    match http::parse_head(&mut buf, &limits) {
        Ok(None) => 0,
        Ok(Some(head)) => {
            // Empty lines before the request line are consumed by the parser too.
            let skipped = (rest.len() - buf.len() - head.raw().len()) as u64;
            if skipped > 0 {
                let text = "http empty line(s) before the request line (ignored, RFC 9112 §2.2)".to_string();
                notes.push(Note { offset: at, len: skipped, text });
            }
            head_lines(head.raw(), at + skipped, "request line", notes);
            signals.push(Signal::Request { head: head.method() == "HEAD" });
            let upgrade = head.is_websocket_upgrade();
            *mode = match head.body {
                http::BodyKind::None if upgrade => Mode::AwaitingUpgrade,
                http::BodyKind::None => Mode::Head,
                http::BodyKind::Length(n) => Mode::Length(n),
                http::BodyKind::Chunked => Mode::Chunked { dec: ChunkedDecoder::new(), unit: 0, sse: None },
            };
            skipped as usize + head.raw().len()
        }
        Err(e) => {
            notes.push(Note {
                offset: at,
                len: rest.len() as u64,
                text: format!("http request refused ({}): {}", e.status(), e.explain()),
            });
            *mode = Mode::Opaque("after a refused request");
            rest.len()
        }
    }
}

fn read_response_head(
    rest: &[u8],
    at: u64,
    head_requests: &mut VecDeque<bool>,
    notes: &mut Vec<Note>,
    mode: &mut Mode,
    signals: &mut Vec<Signal>,
) -> usize {
    let mut buf = BytesMut::from(rest);
    match http::parse_response_head(&mut buf, MAX_PENDING_HEAD) {
        Ok(None) => 0,
        Ok(Some(head)) => {
            head_lines(head.raw(), at, "status line", notes);
            // A final response (not an interim 1xx) answers the oldest request.
            let head_request = if head.status >= 200 || head.status == 101 {
                head_requests.pop_front().unwrap_or(false)
            } else {
                false
            };
            let stream = head.header("content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
            let sse = || stream.then(|| Box::new(EventStream::new()));
            if head.status >= 200 {
                signals.push(Signal::Answered);
            }
            *mode = if head.status == 101 {
                signals.push(Signal::Upgraded);
                Mode::Upgraded(WsFrames::default())
            } else {
                match head.body(head_request) {
                    Ok(ResponseBody::None) => Mode::Head,
                    Ok(ResponseBody::Length(n)) if n > 0 => Mode::Length(n),
                    Ok(ResponseBody::Length(_)) => Mode::Head,
                    Ok(ResponseBody::Chunked) => Mode::Chunked { dec: ChunkedDecoder::new(), unit: 0, sse: sse() },
                    Ok(ResponseBody::UntilClose) => Mode::UntilClose { sse: sse() },
                    Err(_) => Mode::Opaque("of a body with unreadable framing"),
                }
            };
            head.raw().len()
        }
        Err(e) => {
            notes.push(Note { offset: at, len: 0, text: format!("not a readable response head: {}", e.explain()) });
            *mode = Mode::Opaque("after an unreadable response head");
            rest.len()
        }
    }
}

/// Steps the chunked decoder over the next unit. `Ok(None)`: the unit is unfinished and
/// its bytes stay pending; `Ok(Some(n))`: `n` bytes were named.
fn read_chunk_piece(
    rest: &[u8],
    at: u64,
    dec: &mut ChunkedDecoder,
    unit: &mut usize,
    sse: Option<&mut EventStream>,
    notes: &mut Vec<Note>,
) -> Result<Option<usize>, &'static str> {
    let (n, piece) = dec.step(&rest[*unit..]).map_err(|e| e.explain())?;
    let total = *unit + n;
    let bytes = &rest[..total];
    let text = match piece {
        Piece::Partial => {
            *unit = total;
            return Ok(None);
        }
        Piece::SizeLine { size: 0 } => "chunked last-chunk: 0 (end of body)".to_string(),
        Piece::SizeLine { size } => {
            let line = String::from_utf8_lossy(bytes.strip_suffix(b"\r\n").unwrap_or(bytes));
            format!("chunked chunk-size line: {line} (hex) = {size} bytes of data follow")
        }
        Piece::Data if sse.is_some() => format!("chunk data, {} bytes of event-stream", bytes.len()),
        Piece::Data => format!("chunk data, {} bytes: {}", bytes.len(), preview(bytes)),
        Piece::DataEnd => "chunked CRLF ending the chunk".to_string(),
        Piece::Trailer => format!("chunked trailer field: {}", preview(bytes)),
        Piece::End => "chunked end of trailer section (empty line): body complete".to_string(),
    };
    notes.push(Note { offset: at, len: total as u64, text });
    if let (Piece::Data, Some(sse)) = (piece, sse) {
        sse.feed(bytes, at, notes);
    }
    *unit = 0;
    Ok(Some(total))
}

/// An event-stream body read line by line with the SSE codec's own parser, so the trace
/// says what an EventSource would make of the bytes: the same line ends, the same
/// fields, the same dispatches.
///
/// The parser counts offsets in the body; the notes need offsets in the connection's
/// stream, where chunk framing sits between pieces of the body. So each piece fed is
/// remembered as a segment (body offset, stream offset, length) until its lines are read.
pub struct EventStream {
    parser: sse::Parser,
    segments: VecDeque<Segment>,
    fed: u64,
    failed: bool,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    body: u64,
    stream: u64,
    len: u64,
}

impl Default for EventStream {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStream {
    pub fn new() -> Self {
        EventStream { parser: sse::Parser::new(), segments: VecDeque::new(), fed: 0, failed: false }
    }

    /// Body bytes that sit at stream offset `at`; appends a note per complete line.
    pub fn feed(&mut self, bytes: &[u8], at: u64, notes: &mut Vec<Note>) {
        if self.failed || bytes.is_empty() {
            return;
        }
        self.segments.push_back(Segment { body: self.fed, stream: at, len: bytes.len() as u64 });
        self.fed += bytes.len() as u64;
        self.parser.feed(bytes);
        loop {
            match self.parser.next_line() {
                Ok(Some(line)) => {
                    // From the line's first byte to its terminator's last, on the wire
                    // (a line split across chunks also spans the framing between them).
                    let start = self.stream_offset(line.content.start);
                    let end = self.stream_offset(line.terminator.end - 1) + 1;
                    notes.push(Note { offset: start, len: end - start, text: describe(&line) });
                    while self.segments.front().is_some_and(|s| s.body + s.len <= line.terminator.end) {
                        self.segments.pop_front();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    notes.push(Note { offset: at, len: 0, text: format!("sse stream refused: {e}") });
                    self.failed = true;
                    break;
                }
            }
        }
    }

    /// Where body byte `body` sits in the stream.
    fn stream_offset(&self, body: u64) -> u64 {
        self.segments
            .iter()
            .find(|s| (s.body..s.body + s.len).contains(&body))
            .map_or(body, |s| s.stream + (body - s.body))
    }
}

/// One line, as the WHATWG §9.2.6 algorithm reads it.
fn describe(line: &StreamLine) -> String {
    match line.kind() {
        LineKind::Blank => match &line.event {
            Some(e) => {
                let kind =
                    if e.event_type == "message" { String::new() } else { format!(" type={}", plain(&e.event_type)) };
                let id =
                    if e.last_event_id.is_empty() { String::new() } else { format!(" id={}", plain(&e.last_event_id)) };
                format!("sse blank line: dispatch event{kind}{id}")
            }
            None => "sse blank line: nothing to dispatch (no data)".to_string(),
        },
        LineKind::Comment(text) if text.trim().is_empty() => "sse comment (heartbeat)".to_string(),
        LineKind::Comment(text) => format!("sse comment:{}", plain(text)),
        LineKind::Field { name, value } => {
            // The parser's own decision, only put into words here.
            let why = match sse::field_effect(name, value) {
                sse::FieldEffect::EventType | sse::FieldEffect::Data => "",
                sse::FieldEffect::IdSet | sse::FieldEffect::RetrySet(_) => "",
                sse::FieldEffect::IdIgnoredNul => " (ignored: contains NUL)",
                sse::FieldEffect::RetryIgnored => " (ignored: not a number of milliseconds)",
                sse::FieldEffect::Unknown => " (ignored: unknown field)",
            };
            format!("sse field {}: {}{why}", plain(name), plain(value))
        }
    }
}

/// Text shown as is, except control characters (escaped) and past `PREVIEW` characters.
fn plain(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == PREVIEW {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a reader stands in a stream of WebSocket frames.
#[derive(Debug, Default)]
pub struct WsFrames {
    /// A frame too large to hold whole: its header, and how much of its payload has
    /// been named so far.
    large: Option<(FrameHeader, u64)>,
}

/// A frame up to this size (header and payload) is named once it has all arrived, as
/// one unit; a larger one is named as its bytes pass, so the trace holds no more than
/// this per direction.
const MAX_PENDING_FRAME: u64 = 64 * 1024;

/// Names the next frame (or the next piece of a large frame's payload). `Ok(0)`: the
/// frame is still arriving; its bytes stay pending.
fn read_ws_frame(rest: &[u8], at: u64, ws: &mut WsFrames, notes: &mut Vec<Note>) -> Result<usize, String> {
    if let Some((header, seen)) = &mut ws.large {
        let n = (header.payload_len - *seen).min(rest.len() as u64) as usize;
        let mut piece = rest[..n].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut piece, key, (*seen % 4) as usize);
        }
        let unmasked = if header.mask.is_some() { ", unmasked" } else { "" };
        let text = format!(
            "ws payload bytes {}..{} of {}{unmasked}: {}",
            *seen,
            *seen + n as u64,
            header.payload_len,
            preview(&piece)
        );
        notes.push(Note { offset: at, len: n as u64, text });
        *seen += n as u64;
        if *seen == header.payload_len {
            ws.large = None;
        }
        return Ok(n);
    }
    let Some((header, header_len)) = FrameHeader::parse(rest).map_err(|e| e.to_string())? else {
        return Ok(0);
    };
    let total = header_len as u64 + header.payload_len;
    let whole = total <= rest.len() as u64;
    if !whole && total <= MAX_PENDING_FRAME {
        return Ok(0);
    }
    let payload = if whole { &rest[header_len..total as usize] } else { &[][..] };
    // annotate_frame's lines: the header, the masking key (if any), then the payload
    // or the close code and reason. Each is pinned to the bytes it describes.
    let mut lines = annotate_frame(&header, payload).into_iter();
    let first = lines.next().unwrap_or_default();
    let key_len = if header.mask.is_some() { 4 } else { 0 };
    notes.push(Note { offset: at, len: (header_len - key_len) as u64, text: format!("ws frame {first}") });
    if header.mask.is_some() {
        let key = lines.next().unwrap_or_default();
        notes.push(Note { offset: at + (header_len - key_len) as u64, len: 4, text: format!("ws {key}") });
    }
    let payload_at = at + header_len as u64;
    if !whole {
        let text = format!("ws payload of {} bytes follows, named as it arrives", header.payload_len);
        notes.push(Note { offset: payload_at, len: 0, text });
        ws.large = Some((header, 0));
        return Ok(header_len);
    }
    for line in lines {
        let line = match line.strip_prefix("payload") {
            Some(rest) if header.mask.is_some() => format!("ws unmasked payload{rest}"),
            _ => format!("ws {line}"),
        };
        notes.push(Note { offset: payload_at, len: header.payload_len, text: line });
    }
    Ok(total as usize)
}

/// Quotes bytes for a note: text as an escaped string, anything else as a byte count.
pub fn preview(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            let mut out = String::from("\"");
            for (i, c) in s.chars().enumerate() {
                if i == PREVIEW {
                    out.push_str("...");
                    break;
                }
                out.extend(c.escape_debug());
            }
            out.push('"');
            out
        }
        Err(_) => format!("({} bytes, not UTF-8)", bytes.len()),
    }
}

/// One direction of a connection to Redis, read as RESP values (the Redis protocol
/// spec, see [`crate::proto::resp`]): each complete value is named once all its bytes
/// have arrived; a command as the words it is made of, a pub/sub message as such.
pub struct RespReader {
    commands: bool,
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    base: u64,
    /// Bytes that are not RESP: nothing after them can be read.
    broken: bool,
}

impl RespReader {
    pub fn new(commands: bool) -> Self {
        RespReader { commands, pending: Vec::new(), base: 0, broken: false }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Note> {
        use crate::proto::resp::{self, Limits, Value};
        let mut notes = Vec::new();
        if self.broken {
            return notes;
        }
        self.pending.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            match resp::parse(&self.pending[used..], &Limits::default()) {
                Ok(Some((v, n))) => {
                    let text = match (&v, self.commands) {
                        (Value::Array(args), true) => describe_command(args),
                        (Value::Array(parts) | Value::Push(parts), false)
                            if parts.first().and_then(Value::as_bytes) == Some(b"message") =>
                        {
                            let on = parts.get(1).map_or(String::new(), resp::describe);
                            let payload = parts.get(2).map_or(String::new(), resp::describe);
                            format!("resp pub/sub message on {on}: {payload}")
                        }
                        (v, true) => format!("resp {}", resp::describe(v)),
                        (v, false) => format!("resp reply {}", resp::describe(v)),
                    };
                    notes.push(Note { offset: self.base + used as u64, len: n as u64, text });
                    used += n;
                }
                Ok(None) => break,
                Err(e) => {
                    let len = (self.pending.len() - used) as u64;
                    notes.push(Note { offset: self.base + used as u64, len, text: format!("not RESP: {e}") });
                    self.broken = true;
                    used = self.pending.len();
                    break;
                }
            }
        }
        self.pending.drain(..used);
        self.base += used as u64;
        notes
    }
}

/// `resp command EVALSHA (the publish script) 2 "wa:ch:lobby:seq" …`.
fn describe_command(args: &[crate::proto::resp::Value]) -> String {
    use crate::proto::resp;
    let mut words = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let word = match (i, a.as_bytes()) {
            (0, Some(name)) => String::from_utf8_lossy(name).to_uppercase(),
            (1, Some(sha)) if words.first().is_some_and(|w: &String| w == "EVALSHA") => {
                match crate::app::redis::script_name(sha) {
                    Some(name) => format!("({name})"),
                    None => resp::describe(a),
                }
            }
            _ => resp::describe(a),
        };
        words.push(word);
    }
    format!("resp command {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_traffic_is_named_once_whole_however_it_is_split() {
        use crate::app::redis::PUBLISH_SCRIPT;
        use sha1::{Digest, Sha1};
        let sha: String = Sha1::digest(PUBLISH_SCRIPT.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let mut cmd = bytes::BytesMut::new();
        crate::proto::resp::encode_command(
            &["evalsha", &sha, "2", "wa:ch:lobby:seq", "wa:ch:lobby:hist", "hi"],
            &mut cmd,
        );
        let replies = b":7\r\n*3\r\n$7\r\nmessage\r\n$13\r\nwa:messages:0\r\n$10\r\nlobby 7 hi\r\n";
        for cut in 0..cmd.len() {
            let mut c = Conversation::resp();
            let mut notes = c.request_bytes(&cmd[..cut]);
            notes.extend(c.request_bytes(&cmd[cut..]));
            assert_eq!(notes.len(), 1, "cut at {cut}");
            assert_eq!((notes[0].offset, notes[0].len), (0, cmd.len() as u64));
            assert_eq!(
                notes[0].text,
                r#"resp command EVALSHA (the publish script) "2" "wa:ch:lobby:seq" "wa:ch:lobby:hist" "hi""#
            );
        }
        for cut in 0..replies.len() {
            let mut c = Conversation::resp();
            let mut notes = c.response_bytes(&replies[..cut]);
            notes.extend(c.response_bytes(&replies[cut..]));
            let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
            assert_eq!(
                texts,
                vec!["resp reply 7", r#"resp pub/sub message on "wa:messages:0": "lobby 7 hi""#],
                "cut at {cut}"
            );
            assert_eq!((notes[1].offset, notes[1].len), (4, replies.len() as u64 - 4));
        }
        let mut c = Conversation::resp();
        assert!(c.response_bytes(b"!oops\r\n")[0].text.starts_with("not RESP"));
        assert!(c.response_bytes(b":1\r\n").is_empty(), "nothing is read after bytes that are not RESP");
    }

    fn texts(notes: &[Note]) -> Vec<String> {
        notes.iter().map(|n| format!("{}+{} {}", n.offset, n.len, n.text)).collect()
    }

    #[test]
    fn request_head_and_body_split_across_reads() {
        let mut c = Conversation::new();
        let req = b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let mut all = Vec::new();
        for piece in req.chunks(5) {
            all.extend(c.request_bytes(piece));
        }
        assert_eq!(
            texts(&all),
            vec![
                "0+26 http request line: POST /publish/a HTTP/1.1",
                "26+9 http header Host: x",
                "35+19 http header Content-Length: 5",
                "54+2 http end of header section (empty line)",
                "56+4 http body, 4 bytes (more to come): \"hell\"",
                "60+1 http body, 1 bytes: \"o\"",
            ]
        );
    }

    #[test]
    fn empty_lines_before_a_request_are_named_and_counted() {
        let mut c = Conversation::new();
        let t = texts(&c.request_bytes(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(t[0], "0+4 http empty line(s) before the request line (ignored, RFC 9112 §2.2)");
        assert_eq!(t[1], "4+16 http request line: GET / HTTP/1.1");
        // The next request starts where this one ended.
        let t = texts(&c.request_bytes(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(t[0], "31+17 http request line: GET /a HTTP/1.1");
    }

    #[test]
    fn chunked_response_pieces() {
        let mut c = Conversation::new();
        c.request_bytes(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
        let notes = c.response_bytes(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n");
        let t = texts(&notes);
        assert_eq!(t[3], "47+3 chunked chunk-size line: 4 (hex) = 4 bytes of data follow");
        assert_eq!(t[4], "50+4 chunk data, 4 bytes: \"Wiki\"");
        assert_eq!(t[5], "54+2 chunked CRLF ending the chunk");
        assert_eq!(t[6], "56+3 chunked last-chunk: 0 (end of body)");
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn head_response_has_no_body_and_refusals_are_explained() {
        let mut c = Conversation::new();
        c.request_bytes(b"HEAD /stats HTTP/1.1\r\nHost: x\r\n\r\n");
        let notes = c.response_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert!(notes.iter().any(|n| n.text == "http status line: HTTP/1.1 204 No Content"), "{notes:?}");
        let mut c = Conversation::new();
        let notes = c.request_bytes(b"GET / HTTP/1.1\nHost: x\r\n\r\n");
        assert_eq!(notes[0].text, "http request refused (400): bare LF in the request line (RFC 9112 §2.2)");
    }

    /// The notes that name SSE lines, as `offset+len text`.
    fn sse_notes(notes: &[Note]) -> Vec<String> {
        texts(notes).into_iter().filter(|t| t.split_once(' ').is_some_and(|(_, r)| r.starts_with("sse "))).collect()
    }

    const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn chunked_event_stream_fields_at_their_stream_offsets() {
        let mut wire = SSE_HEAD.to_vec();
        let body_at = wire.len() as u64;
        wire.extend_from_slice(&sse::http_chunk(&sse::encode_retry(3000)));
        wire.extend_from_slice(&sse::encode_event_chunk(Some(3), None, "hello\nworld"));
        wire.extend_from_slice(&sse::http_chunk(&sse::encode_comment("")));
        wire.extend_from_slice(&sse::encode_event_chunk(Some(2), Some("truncated"), "{}"));
        wire.extend_from_slice(b"0\r\n\r\n");
        let read = |pieces: &mut dyn Iterator<Item = &[u8]>| {
            let mut c = Conversation::new();
            c.request_bytes(b"GET /sse/a HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut notes = Vec::new();
            for piece in pieces {
                notes.extend(c.response_bytes(piece));
            }
            notes
        };
        let whole = read(&mut std::iter::once(&wire[..]));
        let o = |n: u64| body_at + n;
        // "d\r\n" is 3 bytes of framing before "retry: 3000\n"; each chunk ends in CRLF.
        assert_eq!(
            sse_notes(&whole),
            vec![
                format!("{}+12 sse field retry: 3000", o(3)),
                format!("{}+1 sse blank line: nothing to dispatch (no data)", o(15)),
                format!("{}+6 sse field id: 3", o(22)),
                format!("{}+12 sse field data: hello", o(28)),
                format!("{}+12 sse field data: world", o(40)),
                format!("{}+1 sse blank line: dispatch event id=3", o(52)),
                format!("{}+3 sse comment (heartbeat)", o(58)),
                format!("{}+1 sse blank line: nothing to dispatch (no data)", o(61)),
                format!("{}+6 sse field id: 2", o(68)),
                format!("{}+17 sse field event: truncated", o(74)),
                format!("{}+9 sse field data: {{}}", o(91)),
                format!("{}+1 sse blank line: dispatch event type=truncated id=2", o(100)),
            ]
        );
        for (i, n) in whole.iter().filter(|n| n.text.starts_with("sse field")).enumerate() {
            let bytes = &wire[n.offset as usize..(n.offset + n.len) as usize];
            assert!(bytes.ends_with(b"\n") && !bytes.contains(&b'\r'), "note {i} covers one line: {bytes:?}");
        }
        assert!(texts(&whole).iter().any(|t| t.ends_with("chunked last-chunk: 0 (end of body)")));
        // The same notes whichever way the bytes were cut into reads.
        for size in [1, 2, 5, 7] {
            assert_eq!(sse_notes(&read(&mut wire.chunks(size))), sse_notes(&whole), "reads of {size} bytes");
        }
    }

    #[test]
    fn a_line_split_across_chunks_is_named_once_it_is_whole() {
        let mut c = Conversation::new();
        c.request_bytes(b"GET /sse/a HTTP/1.1\r\nHost: x\r\n\r\n");
        let at = SSE_HEAD.len() as u64;
        let mut notes = c.response_bytes(SSE_HEAD);
        notes.extend(c.response_bytes(b"4\r\nid: \r\n"));
        assert!(sse_notes(&notes).is_empty(), "no line end yet");
        notes.extend(c.response_bytes(b"3\r\n9\n\r\r\n1\r\n\n\r\n0\r\n\r\n"));
        // "id: ", the framing "\r\n3\r\n", then "9\n": from the line's first byte to its LF.
        // Then a CR ending one chunk and an LF starting the next: one line end, one
        // blank line (the codec's parser names the CR; the LF is its second half).
        assert_eq!(
            sse_notes(&notes),
            vec![
                format!("{}+11 sse field id: 9", at + 3),
                format!("{}+1 sse blank line: nothing to dispatch (no data)", at + 14),
            ]
        );
    }

    #[test]
    fn http10_event_stream_until_close() {
        let mut c = Conversation::new();
        c.request_bytes(b"GET /sse/a HTTP/1.0\r\n\r\n");
        let head = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
        let mut notes = c.response_bytes(head);
        let at = head.len() as u64;
        let mut body = sse::encode_retry(1500).to_vec();
        body.extend_from_slice(&sse::encode_event_bytes(Some(1), None, "a\r\nb"));
        body.extend_from_slice(b": keep\nfoo: bar\nretry: soon\n\n");
        for piece in body.chunks(4) {
            notes.extend(c.response_bytes(piece));
        }
        assert_eq!(
            sse_notes(&notes),
            vec![
                format!("{at}+12 sse field retry: 1500"),
                format!("{}+1 sse blank line: nothing to dispatch (no data)", at + 12),
                format!("{}+6 sse field id: 1", at + 13),
                format!("{}+8 sse field data: a", at + 19),
                format!("{}+8 sse field data: b", at + 27),
                format!("{}+1 sse blank line: dispatch event id=1", at + 35),
                format!("{}+7 sse comment: keep", at + 36),
                format!("{}+9 sse field foo: bar (ignored: unknown field)", at + 43),
                format!("{}+12 sse field retry: soon (ignored: not a number of milliseconds)", at + 52),
                format!("{}+1 sse blank line: nothing to dispatch (no data)", at + 64),
            ]
        );
        assert!(texts(&notes).iter().any(|t| t.contains("event-stream body (until close), 4 bytes")));
    }

    /// The trace and the parser read the same fields the same way: every field line
    /// here, fed to both, is shown as ignored exactly when the parser ignores it.
    #[test]
    fn the_trace_and_the_parser_agree_on_every_field() {
        let fields = [
            "data: x",
            "event: e",
            "id: 7",
            "id: a\0b",
            "retry: 1500",
            "retry: +5",
            "retry: 99999999999999999999999",
            "retry:",
            "Data: x",
            "foo: bar",
        ];
        for field in fields {
            let mut c = Conversation::new();
            c.request_bytes(b"GET /sse/a HTTP/1.0\r\n\r\n");
            c.response_bytes(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
            let notes = c.response_bytes(format!("{field}\n").as_bytes());
            let shown = sse_notes(&notes).join("");
            // The parser: does the field change anything it keeps?
            let mut p = sse::Parser::new();
            let before = (p.retry(), p.last_event_id_buffer().to_string());
            p.feed(format!("{field}\n").as_bytes());
            p.next_event().unwrap();
            let (name, value) = field.split_once(':').unwrap();
            let value = value.strip_prefix(' ').unwrap_or(value);
            let used = (p.retry(), p.last_event_id_buffer().to_string()) != before || matches!(name, "data" | "event");
            let used_by_id_clear = name == "id" && value.is_empty();
            assert_eq!(shown.contains("(ignored"), !(used || used_by_id_clear), "{field:?}: {shown}");
        }
    }

    #[test]
    fn a_plain_chunked_body_is_not_read_as_sse() {
        let mut c = Conversation::new();
        c.request_bytes(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
        let notes = c.response_bytes(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: x\r\n0\r\n\r\n");
        assert!(sse_notes(&notes).is_empty());
    }
    const UPGRADE_REQUEST: &[u8] = b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const SWITCHED: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    /// A conversation past its `101`, and the stream offsets where frames start.
    fn upgraded() -> (Conversation, u64, u64) {
        let mut c = Conversation::new();
        c.request_bytes(UPGRADE_REQUEST);
        c.response_bytes(SWITCHED);
        (c, UPGRADE_REQUEST.len() as u64, SWITCHED.len() as u64)
    }

    /// Feeds `bytes` whole, one byte at a time, and at every split point, and checks
    /// that each way names the same units.
    fn every_split(side: Side, bytes: &[u8]) -> Vec<String> {
        let feed = |pieces: &[&[u8]]| {
            let (mut c, _, _) = upgraded();
            let mut all = Vec::new();
            for p in pieces {
                all.extend(match side {
                    Side::Request => c.request_bytes(p),
                    Side::Response => c.response_bytes(p),
                });
            }
            texts(&all)
        };
        let whole = feed(&[bytes]);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(feed(&bytewise), whole, "one byte at a time");
        for cut in 1..bytes.len() {
            assert_eq!(feed(&[&bytes[..cut], &bytes[cut..]]), whole, "split at {cut}");
        }
        whole
    }

    #[test]
    fn rfc_6455_5_7_masked_text_from_the_client() {
        let (_, at, _) = upgraded();
        let t = every_split(Side::Request, &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        assert_eq!(
            t,
            vec![
                format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d"),
                format!("{}+4 ws masking key: 37 fa 21 3d", at + 2),
                format!("{}+5 ws unmasked payload (5 bytes, UTF-8): \"Hello\"", at + 6),
            ]
        );
    }

    #[test]
    fn rfc_6455_5_7_unmasked_frames_from_the_server() {
        let (_, _, at) = upgraded();
        // A single-frame unmasked text message, then a fragmented one ("Hel", "lo").
        let t = every_split(Side::Response, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            t,
            vec![
                format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0x1 text MASK=0 len=5 (7-bit)"),
                format!("{}+5 ws payload (5 bytes, UTF-8): \"Hello\"", at + 2),
            ]
        );
        let t = every_split(Side::Response, &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        assert_eq!(t[0], format!("{at}+2 ws frame FIN=0 RSV=000 opcode=0x1 text MASK=0 len=3 (7-bit)"));
        assert_eq!(t[2], format!("{}+2 ws frame FIN=1 RSV=000 opcode=0x0 continuation MASK=0 len=2 (7-bit)", at + 5));
        assert_eq!(t[3], format!("{}+2 ws payload (2 bytes, UTF-8): \"lo\"", at + 7));
    }

    #[test]
    fn rfc_6455_5_7_ping_pong_and_close() {
        let (_, _, at) = upgraded();
        let t = every_split(Side::Response, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(t[0], format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0x9 ping MASK=0 len=5 (7-bit)"));
        let (_, at, _) = upgraded();
        let t = every_split(Side::Request, &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        assert_eq!(t[0], format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0xa pong MASK=1 len=5 (7-bit) key=37fa213d"));
        assert_eq!(t[2], format!("{}+5 ws unmasked payload (5 bytes, UTF-8): \"Hello\"", at + 6));
        // A masked Close with code 1000 and a reason.
        let close =
            crate::proto::ws::encode_frame(crate::proto::ws::OpCode::Close, true, b"\x03\xe8bye", Some([1, 2, 3, 4]));
        let t = every_split(Side::Request, &close);
        assert_eq!(t[2], format!("{}+5 ws close code=1000 (normal closure) reason=\"bye\"", at + 6));
    }

    #[test]
    fn rfc_6455_5_7_length_forms() {
        use crate::proto::ws::{OpCode, encode_frame};
        // 256 bytes: the 16-bit form, held until whole.
        let (mut c, _, at) = upgraded();
        let frame = encode_frame(OpCode::Binary, true, &[0xab; 256], None);
        assert_eq!(&frame[..4], &[0x82, 0x7e, 0x01, 0x00]);
        assert!(c.response_bytes(&frame[..100]).is_empty(), "a small frame is named once whole");
        let t = texts(&c.response_bytes(&frame[100..]));
        assert_eq!(t[0], format!("{at}+4 ws frame FIN=1 RSV=000 opcode=0x2 binary MASK=0 len=256 (16-bit)"));
        assert!(t[1].starts_with(&format!("{}+256 ws payload (256 bytes, hex): ab ab", at + 4)), "{}", t[1]);
        // 64 KiB: the 64-bit form, too big to hold, named as it passes.
        let (mut c, at, _) = upgraded();
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let frame = encode_frame(OpCode::Binary, true, &vec![b'z'; 65536], Some(key));
        assert_eq!(&frame[..10], &[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut t = texts(&c.request_bytes(&frame[..1000]));
        t.extend(texts(&c.request_bytes(&frame[1000..])));
        assert_eq!(
            t,
            vec![
                format!("{at}+10 ws frame FIN=1 RSV=000 opcode=0x2 binary MASK=1 len=65536 (64-bit) key=37fa213d"),
                format!("{}+4 ws masking key: 37 fa 21 3d", at + 10),
                format!("{}+0 ws payload of 65536 bytes follows, named as it arrives", at + 14),
                format!("{}+986 ws payload bytes 0..986 of 65536, unmasked: {}", at + 14, preview(&[b'z'; 986])),
                format!("{}+64550 ws payload bytes 986..65536 of 65536, unmasked: {}", at + 1000, preview(&[b'z'; 99])),
            ]
        );
    }

    #[test]
    fn bytes_behind_an_upgrade_request_wait_for_the_answer() {
        let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        // The client sent its first frame right behind the handshake: it is held...
        let mut c = Conversation::new();
        let notes = c.request_bytes(&[UPGRADE_REQUEST, &frame[..]].concat());
        assert!(notes.iter().all(|n| n.text.starts_with("http ")), "{notes:?}");
        c.response_bytes(SWITCHED);
        // ...and read as a frame once the 101 has gone by.
        let t = texts(&c.request_bytes(b""));
        assert!(t[0].contains("ws frame FIN=1 RSV=000 opcode=0x1 text MASK=1"), "{t:?}");
        // Refused: the held bytes are HTTP again.
        let mut c = Conversation::new();
        c.request_bytes(&[UPGRADE_REQUEST, &b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"[..]].concat());
        c.response_bytes(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        let t = texts(&c.request_bytes(b""));
        assert_eq!(t[0], format!("{}+21 http request line: GET /stats HTTP/1.1", UPGRADE_REQUEST.len()));
    }
}
