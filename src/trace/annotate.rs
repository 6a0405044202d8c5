//! Reads the bytes of a connection as the protocols they carry, for the trace.
//!
//! This is smoltcp's packet-tracer idea: the tap hands the bytes that crossed the socket
//! to a [`Conversation`], which re-reads them with the project's own pure codecs and
//! returns [`Note`]s ("bytes 0x1a..0x30 are the header `Host: localhost`"). The codecs
//! that serve the connection never know that tracing exists, and with tracing off none
//! of this runs.
//!
//! A conversation has two streams: requests (client to server) and responses (server to
//! client). Where each HTTP message ends is decided by the same message streams the
//! server, the client and the proxy step (`proto::http::stream`, coupled as an
//! [`Exchange`]: a response to HEAD has no body, and a `101` turns both directions
//! into another protocol); this file only puts each unit they return into words.
//!
//! A `text/event-stream` body (WHATWG HTML §9.2) is read a second time, under its HTTP
//! framing (chunked, RFC 9112 §7.1, or until close on HTTP/1.0): the SSE codec's parser
//! names each line (`sse field id: 3`, `sse comment (heartbeat)`, `sse blank line:
//! dispatch event id=3`), at the stream offset of the line's own bytes, which sit
//! inside the chunk data that carried them.
//! After a `101`, both readers read WebSocket frames (RFC 6455 §5.2) with the codec's
//! own `FrameParts::read`, and put each part it returns into words with
//! `proto::ws::annotate`: each frame's header (FIN, RSV1-3, the
//! opcode by name, MASK, the payload length and which of the 7/16/64-bit forms carried
//! it), its masking key, and its payload unmasked (a Close frame's code and reason). A
//! frame split across reads waits in `pending` until it is whole, like any other unit;
//! a frame too large to hold is named piece by piece as it passes.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

use crate::proto::Role;
use crate::proto::http::{Event, Exchange, HeadLimits, In, Piece, ResponseBody, Unit};
use crate::proto::sse::{self, LineKind, StreamLine};
use crate::proto::ws::annotate as ws_text;
use crate::proto::ws::{FrameHeader, FrameParts};

/// "These bytes of the stream mean this."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Stream offset of the first byte, in this direction.
    pub offset: u64,
    pub len: u64,
    pub text: String,
}

/// Both directions of one connection.
pub struct Conversation {
    http: Exchange,
    client: Reader,
    server: Reader,
    /// A connection to Redis: both directions are RESP (commands out, replies in).
    resp: Option<Box<[RespReader; 2]>>,
}

impl Default for Conversation {
    fn default() -> Self {
        Self::new()
    }
}

/// What the reader of one direction reads now.
enum Mode {
    /// HTTP messages, as the exchange frames them; `sse` reads the body in progress as
    /// an event stream when its response said `text/event-stream`.
    Http { sse: Option<Box<EventStream>> },
    /// After a `101`: WebSocket frames.
    Upgraded(WsFrames),
    /// Bytes this reader can no longer interpret, and why.
    Opaque(&'static str),
}

/// One direction's reader. Keeps the bytes of any unit not yet complete, so that a unit
/// split across reads is named once it has all arrived.
struct Reader {
    /// Stream offset of `pending[0]`.
    base: u64,
    pending: BytesMut,
    mode: Mode,
}

/// The most a reader holds of bytes it cannot name yet (a head still arriving, bytes
/// held behind an upgrade request); past it, it gives up. The server refuses far
/// smaller heads.
const MAX_PENDING_HEAD: usize = 64 * 1024;

/// Generous limits: the trace shows what arrived; the server enforces its own.
const LIMITS: HeadLimits =
    HeadLimits { max_header: MAX_PENDING_HEAD, max_target: MAX_PENDING_HEAD, max_body: usize::MAX };

/// How much of a body is quoted in a note.
const PREVIEW: usize = 96;

/// Where a conversation starts. The trace always starts at the beginning of a
/// connection; `decode` may be handed a piece of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// HTTP messages (a connection's beginning).
    Http,
    /// Inside a chunked body (RFC 9112 §7.1), its head already gone by.
    ChunkedBody,
    /// Inside an event-stream body, unframed (as an HTTP/1.0 stream sends it).
    EventStream,
    /// After a `101`: WebSocket frames both ways.
    WebSocket,
}

impl Conversation {
    pub fn new() -> Self {
        Self::starting(Start::Http)
    }

    /// A conversation that starts at `start`, for bytes `decode` is handed. A body
    /// alone is read as what the server writes.
    pub fn starting(start: Start) -> Self {
        let reader = |mode| Reader { base: 0, pending: BytesMut::new(), mode };
        let http = || Mode::Http { sse: None };
        let (exchange, server) = match start {
            Start::Http => (Exchange::new(LIMITS), http()),
            Start::ChunkedBody => (Exchange::in_body(Role::Server, ResponseBody::Chunked, LIMITS), http()),
            Start::EventStream => (
                Exchange::in_body(Role::Server, ResponseBody::UntilClose, LIMITS),
                Mode::Http { sse: Some(Box::new(EventStream::new())) },
            ),
            Start::WebSocket => (Exchange::new(LIMITS), Mode::Upgraded(WsFrames::default())),
        };
        let client = if start == Start::WebSocket { Mode::Upgraded(WsFrames::default()) } else { http() };
        Conversation { http: exchange, client: reader(client), server: reader(server), resp: None }
    }

    /// A connection to Redis: commands one way, replies and pub/sub messages the other.
    pub fn resp() -> Self {
        Conversation { resp: Some(Box::new([RespReader::new(true), RespReader::new(false)])), ..Self::new() }
    }

    /// Bytes `writer` sent that no unit has taken yet: a unit still arriving (or held
    /// behind an upgrade request until its answer).
    pub fn pending(&self, writer: Role) -> &[u8] {
        match writer {
            Role::Client => &self.client.pending,
            Role::Server => &self.server.pending,
        }
    }

    /// Where the next byte `writer` sends sits in its stream (a [`Start`] other than
    /// the beginning may be handed bytes from the middle of one).
    pub fn set_offset(&mut self, writer: Role, offset: u64) {
        match writer {
            Role::Client => self.client.base = offset,
            Role::Server => self.server.base = offset,
        }
    }

    /// Bytes the client sent.
    pub fn request_bytes(&mut self, bytes: &[u8]) -> Vec<Note> {
        self.bytes(Role::Client, bytes)
    }

    /// Bytes the server sent.
    pub fn response_bytes(&mut self, bytes: &[u8]) -> Vec<Note> {
        self.bytes(Role::Server, bytes)
    }

    /// Bytes `writer`'s end sent, named unit by unit.
    pub fn bytes(&mut self, writer: Role, bytes: &[u8]) -> Vec<Note> {
        if let Some(resp) = &mut self.resp {
            return resp[usize::from(writer == Role::Server)].feed(bytes);
        }
        let r = match writer {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        };
        r.pending.extend_from_slice(bytes);
        let mut notes = Vec::new();
        loop {
            let at = r.base;
            match &mut r.mode {
                Mode::Http { .. } if self.http.stream(writer).is_switched() => {
                    r.mode = Mode::Upgraded(WsFrames::default());
                }
                Mode::Http { sse } => {
                    let at_head = self.http.stream(writer).is_idle();
                    let before = r.pending.len();
                    match self.http.read(writer, &mut r.pending) {
                        Ok(None) => break,
                        Ok(Some(unit)) => {
                            name_unit(&unit, at, sse, &mut notes);
                            r.base += unit.bytes.len() as u64;
                        }
                        Err(e) => {
                            // A head's bytes may already be split off: count them.
                            let used = (before - r.pending.len()) as u64;
                            let (text, after) = match (writer, at_head) {
                                (Role::Client, true) => {
                                    // The refusal covers all that came: the server closes.
                                    let all = used + r.pending.len() as u64;
                                    let text = format!("http request refused ({}): {}", e.status(), e.explain());
                                    notes.push(Note { offset: at, len: all, text });
                                    r.base += all;
                                    r.pending.clear();
                                    r.mode = Mode::Opaque("after a refused request");
                                    continue;
                                }
                                (Role::Server, true) => (
                                    format!("not a readable response head: {}", e.explain()),
                                    "after an unreadable response head",
                                ),
                                (_, false) => {
                                    (format!("chunked framing error: {}", e.explain()), "after a chunked framing error")
                                }
                            };
                            notes.push(Note { offset: at, len: used, text });
                            r.base += used;
                            r.mode = Mode::Opaque(after);
                        }
                    }
                }
                Mode::Upgraded(_) | Mode::Opaque(_) if r.pending.is_empty() => break,
                Mode::Upgraded(ws) => match read_ws_frame(&r.pending, at, ws, &mut notes) {
                    Ok(0) => break,
                    Ok(n) => {
                        r.pending.advance(n);
                        r.base += n as u64;
                    }
                    Err(why) => {
                        notes.push(Note { offset: at, len: 0, text: format!("ws unreadable frame header: {why}") });
                        r.mode = Mode::Opaque("after an unreadable WebSocket frame header");
                    }
                },
                Mode::Opaque(why) => {
                    let len = r.pending.len() as u64;
                    notes.push(Note { offset: at, len, text: format!("{len} bytes {why}") });
                    r.base += len;
                    r.pending.clear();
                }
            }
        }
        if matches!(r.mode, Mode::Http { .. }) && r.pending.len() > MAX_PENDING_HEAD {
            r.mode = Mode::Opaque("that do not form an HTTP head");
        }
        notes
    }
}

/// Names one unit of an HTTP message.
fn name_unit(unit: &Unit, at: u64, sse: &mut Option<Box<EventStream>>, notes: &mut Vec<Note>) {
    let bytes = &unit.bytes[..];
    let n = bytes.len();
    let text = match &unit.event {
        Event::EmptyLines => "http empty line(s) before the request line (ignored, RFC 9112 §2.2)".to_string(),
        Event::Request(head) => return head_lines(head.raw(), at, "request line", notes),
        Event::Response(head) => {
            let stream = head.header("content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
            *sse = stream.then(|| Box::new(EventStream::new()));
            return head_lines(head.raw(), at, "status line", notes);
        }
        Event::End => {
            *sse = None;
            return;
        }
        Event::Data(In::Length { left }) => {
            format!("http body, {n} bytes{}: {}", if *left == 0 { "" } else { " (more to come)" }, preview(bytes))
        }
        Event::Data(In::Chunk) if sse.is_some() => format!("chunk data, {n} bytes of event-stream"),
        Event::Data(In::Chunk) => format!("chunk data, {n} bytes: {}", preview(bytes)),
        Event::Data(In::UntilClose) if sse.is_some() => format!("event-stream body (until close), {n} bytes"),
        Event::Data(In::UntilClose) => format!("http body (until close): {}", preview(bytes)),
        Event::Chunk(Piece::SizeLine { size: 0 }) => "chunked last-chunk: 0 (end of body)".to_string(),
        Event::Chunk(Piece::SizeLine { size }) => {
            let line = String::from_utf8_lossy(bytes.strip_suffix(b"\r\n").unwrap_or(bytes));
            format!("chunked chunk-size line: {line} (hex) = {size} bytes of data follow")
        }
        Event::Chunk(Piece::DataEnd) => "chunked CRLF ending the chunk".to_string(),
        Event::Chunk(Piece::Trailer) => format!("chunked trailer field: {}", preview(bytes)),
        Event::Chunk(_) => "chunked end of trailer section (empty line): body complete".to_string(),
    };
    notes.push(Note { offset: at, len: n as u64, text });
    if let (Event::Data(_), Some(sse)) = (&unit.event, sse) {
        sse.feed(bytes, at, notes);
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

/// Names the next frame (or the next piece of a large frame's payload), one note per
/// part the codec read ([`FrameParts`]). `Ok(0)`: the frame is still arriving; its
/// bytes stay pending.
fn read_ws_frame(rest: &[u8], at: u64, ws: &mut WsFrames, notes: &mut Vec<Note>) -> Result<usize, String> {
    if let Some((header, seen)) = &mut ws.large {
        let n = (header.payload_len - *seen).min(rest.len() as u64) as usize;
        let mut piece = rest[..n].to_vec();
        header.unmask(&mut piece, *seen);
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
    let Some(frame) = FrameParts::read(rest).map_err(|e| e.to_string())? else {
        return Ok(0);
    };
    let whole = frame.is_complete();
    if !whole && frame.payload.end <= MAX_PENDING_FRAME {
        return Ok(0);
    }
    // The header's two parts (the fixed bytes and any extended length) are one note.
    let (start, end) = (frame.base.start as u64, frame.ext_len.end as u64);
    notes.push(Note {
        offset: at + start,
        len: end - start,
        text: format!("ws frame {}", ws_text::header_line(&frame)),
    });
    if let Some(key) = ws_text::key_line(&frame) {
        notes.push(Note {
            offset: at + frame.key.start as u64,
            len: frame.key.len() as u64,
            text: format!("ws {key}"),
        });
    }
    let payload_at = at + frame.payload.start;
    if !whole {
        let text = format!("ws payload of {} bytes follows, named as it arrives", frame.header.payload_len);
        notes.push(Note { offset: payload_at, len: 0, text });
        ws.large = Some((frame.header, 0));
        return Ok(frame.payload.start as usize);
    }
    let unmasked = if frame.header.mask.is_some() && frame.close.is_none() { "unmasked " } else { "" };
    let text = format!("ws {unmasked}{}", ws_text::payload_line(&frame));
    notes.push(Note { offset: payload_at, len: frame.header.payload_len, text });
    Ok(frame.payload.end as usize)
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

    /// The trace and the parser read the same fields the same way: each field line
    /// here, as its own event, fed to both (`agreement::sse`, which the parser's
    /// whole suite also calls on every vector it checks).
    #[test]
    fn the_trace_and_the_parser_agree_on_every_field() {
        let fields = [
            "data: x",
            "event: e",
            "id: 7",
            "id: a\0b",
            "id",
            "retry: 1500",
            "retry: +5",
            "retry: 99999999999999999999999",
            "retry:",
            "Data: x",
            "foo: bar",
        ];
        for field in fields {
            agreement::sse(format!("{field}\ndata: y\n\n").as_bytes());
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
    fn every_split(side: Role, bytes: &[u8]) -> Vec<String> {
        let feed = |pieces: &[&[u8]]| {
            let (mut c, _, _) = upgraded();
            let mut all = Vec::new();
            for p in pieces {
                all.extend(match side {
                    Role::Client => c.request_bytes(p),
                    Role::Server => c.response_bytes(p),
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
        let t = every_split(Role::Client, &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
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
        let t = every_split(Role::Server, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            t,
            vec![
                format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0x1 text MASK=0 len=5 (7-bit)"),
                format!("{}+5 ws payload (5 bytes, UTF-8): \"Hello\"", at + 2),
            ]
        );
        let t = every_split(Role::Server, &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        assert_eq!(t[0], format!("{at}+2 ws frame FIN=0 RSV=000 opcode=0x1 text MASK=0 len=3 (7-bit)"));
        assert_eq!(t[2], format!("{}+2 ws frame FIN=1 RSV=000 opcode=0x0 continuation MASK=0 len=2 (7-bit)", at + 5));
        assert_eq!(t[3], format!("{}+2 ws payload (2 bytes, UTF-8): \"lo\"", at + 7));
    }

    #[test]
    fn rfc_6455_5_7_ping_pong_and_close() {
        let (_, _, at) = upgraded();
        let t = every_split(Role::Server, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(t[0], format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0x9 ping MASK=0 len=5 (7-bit)"));
        let (_, at, _) = upgraded();
        let t = every_split(Role::Client, &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        assert_eq!(t[0], format!("{at}+2 ws frame FIN=1 RSV=000 opcode=0xa pong MASK=1 len=5 (7-bit) key=37fa213d"));
        assert_eq!(t[2], format!("{}+5 ws unmasked payload (5 bytes, UTF-8): \"Hello\"", at + 6));
        // A masked Close with code 1000 and a reason.
        let close =
            crate::proto::ws::encode_frame(crate::proto::ws::OpCode::Close, true, b"\x03\xe8bye", Some([1, 2, 3, 4]));
        let t = every_split(Role::Client, &close);
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

/// The trace and the codecs conclude the same from the same bytes: the SSE parser's and
/// the WebSocket session's test suites hand every vector they check to these, which
/// read it again through a [`Conversation`] and compare.
#[cfg(test)]
pub(crate) mod agreement {
    use std::collections::VecDeque;

    use super::{Conversation, Note, plain};
    use crate::proto::Role;
    use crate::proto::sse;
    use crate::proto::ws::{Event, OpCode, Violation, encode_frame};

    /// `input`, an event-stream body, read by the trace and by a parser: the same
    /// events dispatched (type, id, data line by line), the same reconnection time and
    /// the same last event ID buffer, whether the trace gets the bytes whole or one at a
    /// time.
    pub(crate) fn sse(input: &[u8]) {
        let trace = |pieces: &mut dyn Iterator<Item = &[u8]>| {
            let mut c = Conversation::new();
            c.request_bytes(b"GET /sse/a HTTP/1.0\r\n\r\n");
            c.response_bytes(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
            let mut notes = Vec::new();
            for piece in pieces {
                notes.extend(c.response_bytes(piece).into_iter().map(|n| n.text).filter(|t| t.starts_with("sse ")));
            }
            notes
        };
        let notes = trace(&mut std::iter::once(input));
        assert_eq!(trace(&mut input.chunks(1)), notes, "the trace, one byte at a time");

        let mut p = sse::Parser::new();
        p.feed(input);
        let mut events = VecDeque::new();
        while let Some(e) = p.next_event().expect("the suites' vectors are within the limits") {
            events.push_back(e);
        }
        let why = || format!("{:?}: the trace said {notes:#?}", String::from_utf8_lossy(input));
        // What the trace concluded, field by field.
        let (mut data, mut retry, mut id) = (Vec::new(), None, String::new());
        for note in &notes {
            if let Some(value) = note.strip_prefix("sse field data: ") {
                data.push(value.to_string());
            } else if let Some(value) = note.strip_prefix("sse field retry: ").filter(|v| !v.contains("(ignored")) {
                retry = Some(value.parse::<u64>().unwrap_or_else(|_| panic!("retry {value}: {}", why())));
            } else if let Some(value) = note.strip_prefix("sse field id: ").filter(|v| !v.contains("(ignored")) {
                id = value.to_string();
            } else if note.starts_with("sse blank line: dispatch event") {
                let e = events.pop_front().unwrap_or_else(|| panic!("the parser dispatched no event: {}", why()));
                let kind =
                    if e.event_type == "message" { String::new() } else { format!(" type={}", plain(&e.event_type)) };
                let eid =
                    if e.last_event_id.is_empty() { String::new() } else { format!(" id={}", plain(&e.last_event_id)) };
                assert_eq!(note, &format!("sse blank line: dispatch event{kind}{eid}"), "{}", why());
                let lines: Vec<String> = e.data.split('\n').map(plain).collect();
                assert_eq!(data, lines, "the data of {e:?}: {}", why());
                data.clear();
            } else if note.starts_with("sse blank line: nothing to dispatch") {
                data.clear();
            }
        }
        assert!(events.is_empty(), "the trace dispatched none of {events:?}: {}", why());
        assert_eq!(retry, p.retry(), "retry: {}", why());
        assert_eq!(id, plain(p.last_event_id_buffer()), "the last event ID buffer: {}", why());
    }

    /// One frame as the trace named it: its header's fields and the notes on its
    /// payload (or its Close body).
    struct Named {
        fin: bool,
        opcode: OpCode,
        len: usize,
        masked: bool,
        payload: Vec<String>,
    }

    /// The frames the trace names in `wire`, sent by `writer` after a `101`.
    fn frames(writer: Role, wire: &[u8]) -> (Vec<Named>, Option<String>) {
        let mut c = Conversation::new();
        c.request_bytes(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        c.response_bytes(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        let notes: Vec<Note> = c.bytes(writer, wire);
        let mut named: Vec<Named> = Vec::new();
        for note in notes {
            if let Some(header) = note.text.strip_prefix("ws frame ") {
                let field = |name: &str| header.split(' ').find_map(|f| f.strip_prefix(name)).unwrap().to_string();
                named.push(Named {
                    fin: field("FIN=") == "1",
                    opcode: OpCode::from_u8(u8::from_str_radix(field("opcode=0x").as_str(), 16).unwrap()),
                    len: field("len=").parse().unwrap(),
                    masked: field("MASK=") == "1",
                    payload: Vec::new(),
                });
            } else if note.text.starts_with("ws unreadable frame header") {
                return (named, Some(note.text));
            } else if !note.text.starts_with("ws masking key") {
                named.last_mut().expect("a payload note follows a header note").payload.push(note.text);
            }
        }
        (named, None)
    }

    /// `wire`, the frames a peer sent to a session of `role`, read by the trace: the
    /// frames the session took as `events` (data messages cut at the frames' lengths,
    /// controls, a Close's code and reason) read the same when re-encoded, and a frame
    /// the session refused for its Close body or its header is one the trace calls
    /// invalid or unreadable.
    pub(crate) fn ws(role: Role, wire: &[u8], events: &[Event]) {
        let writer = match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        let (named, unreadable) = frames(writer, wire);
        let mut events: VecDeque<Event> = events.iter().cloned().collect();
        // The payload notes the trace gives the same frame carrying `payload` unmasked
        // (the session's conclusion, with no key for the trace to apply).
        let renamed = |f: &Named, payload: &[u8]| {
            let (mut again, _) = frames(writer, &encode_frame(f.opcode, f.fin, payload, None));
            let notes = again.pop().expect("one frame").payload;
            match f.masked {
                true => notes.into_iter().map(|n| n.replacen("ws payload", "ws unmasked payload", 1)).collect(),
                false => notes,
            }
        };
        let why = |f: &Named| format!("{:?} frame of {} bytes in {wire:02x?}", f.opcode, f.len);
        let close_body = [Violation::CloseBodyOneByte, Violation::InvalidCloseCode, Violation::InvalidCloseReason];
        let mut message: Option<(Vec<u8>, usize)> = None;
        for f in &named {
            if let Some(Event::ProtocolError { reason, .. }) = events.front() {
                // Refused for its Close body: the trace says why. (Refused for
                // anything else, the session may not have read the body at all.)
                if close_body.iter().any(|v| v.reason() == *reason) {
                    let says = f.payload.iter().any(|p| p.contains("invalid") || p.contains("not UTF-8"));
                    assert!(says, "{reason}, but the trace said {:?}: {}", f.payload, why(f));
                }
                return;
            }
            match f.opcode {
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    if message.is_none() {
                        // The message this frame starts is the first one the session
                        // delivered after what it delivered so far, unless it failed first.
                        let at = events.iter().position(|e| {
                            matches!(
                                e,
                                Event::Text(_) | Event::Binary(_) | Event::ProtocolError { .. } | Event::Close { .. }
                            )
                        });
                        match at.map(|i| (i, &events[i])) {
                            Some((i, Event::Text(_) | Event::Binary(_))) => {
                                let bytes = match events.remove(i) {
                                    Some(Event::Text(t)) => t.as_bytes().to_vec(),
                                    Some(Event::Binary(b)) => b.to_vec(),
                                    _ => unreachable!(),
                                };
                                message = Some((bytes, 0));
                            }
                            _ => return, // the session never completed this message
                        }
                    }
                    let (bytes, at) = message.as_mut().unwrap();
                    let part = bytes.get(*at..*at + f.len).unwrap_or_else(|| panic!("too short: {}", why(f)));
                    assert_eq!(f.payload, renamed(f, part), "{}", why(f));
                    *at += f.len;
                    if f.fin {
                        assert_eq!(*at, bytes.len(), "the message ends with its last frame: {}", why(f));
                        message = None;
                    }
                }
                OpCode::Ping | OpCode::Pong | OpCode::Close => {
                    let body = match events.pop_front() {
                        Some(Event::Ping(p) | Event::Pong(p)) => p.to_vec(),
                        Some(Event::Close { code, reason }) => {
                            let mut body = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                            body.extend_from_slice(reason.as_bytes());
                            body
                        }
                        other => panic!("the session saw {other:?}: {}", why(f)),
                    };
                    assert_eq!(f.payload, renamed(f, &body), "{}", why(f));
                    if f.opcode == OpCode::Close {
                        return;
                    }
                }
                OpCode::Reserved(_) => panic!("the session took a reserved opcode: {}", why(f)),
            }
        }
        if let Some(text) = unreadable {
            assert_eq!(
                events.front(),
                Some(&Event::ProtocolError { code: 1002, reason: Violation::LengthMsbSet.reason() }),
                "{text}"
            );
            return;
        }
        // Nothing delivered beyond the frames the trace named; a refusal may come from a
        // header alone, before the frame it opens has arrived.
        assert!(message.is_none(), "the trace saw the message end in {wire:02x?}");
        assert!(
            events.is_empty() || matches!(events.make_contiguous(), [Event::ProtocolError { .. }]),
            "the session saw {events:?} beyond what the trace named in {wire:02x?}"
        );
    }
}
