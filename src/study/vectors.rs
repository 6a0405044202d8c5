//! `wire-academy vectors`: the published test vectors the codecs are built on, run
//! against the codecs themselves.
//!
//! One table, two uses: the unit test at the bottom of this file runs [`all`] and fails
//! on any vector that fails, and the command prints the same table with PASS or FAIL.
//! A vector can therefore never pass in one and not the other.
//!
//! Each vector names its source (document and section), what was fed, what the source
//! says comes out, and what the codec made of it. Inputs that can arrive in pieces are
//! fed whole and split at every offset, through the same incremental code the server
//! runs (the chunked decoder through the HTTP message stream, the event-stream parser,
//! the WebSocket session, the UTF-8 validator); a split that reads differently is a
//! failure, shown in `got`.
//!
//! The suites: RFC 6455 §1.3 (the accept key) and §5.7 (every example frame), RFC 6455
//! §7.4 (which close codes may be sent), RFC 9112 §7.1 (chunked bodies and the chunk
//! grammar's edge cases), the WHATWG HTML §9.2.6 event-stream examples, and UTF-8 per
//! RFC 3629 (§7's examples, §10's warnings, and the classic decoder stress cases), and
//! RFC 7692 §7.2.3 (permessage-deflate: each example payload, read by a session that
//! negotiated the extension, and the two our compressor must write byte for byte).

use bytes::BytesMut;

use crate::proto::Role;
use crate::proto::http::{Event as HttpEvent, Exchange, HeadLimits, ResponseBody};
use crate::proto::sse::Parser;
use crate::proto::ws::deflate::Deflater;
use crate::proto::ws::frame::parse_close_body;
use crate::proto::ws::{
    DeflateParams, Event as WsEvent, OpCode, Session, SessionLimits, Utf8Validator, accept_key, encode_frame,
};

/// One vector and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vector {
    /// Short and stable, for `--filter`: `rfc6455-5.7-masked-text`.
    pub id: String,
    /// Document and section.
    pub source: &'static str,
    pub title: &'static str,
    /// What was fed, as a person would write it.
    pub fed: String,
    /// What the source says comes out.
    pub expected: String,
    /// What the codec made of it.
    pub got: String,
}

impl Vector {
    pub fn passed(&self) -> bool {
        self.expected == self.got
    }
}

/// Every vector, run.
pub fn all() -> Vec<Vector> {
    let mut v = Vec::new();
    handshake(&mut v);
    frames(&mut v);
    close_codes(&mut v);
    chunked(&mut v);
    event_stream(&mut v);
    utf8(&mut v);
    deflate(&mut v);
    v
}

/// Env var that breaks one vector's expectation on purpose (debug builds only), so a
/// test can watch `vectors` fail: `WIRE_ACADEMY_BREAK_VECTOR=rfc6455-1.3-accept-key`.
pub const BREAK_VECTOR: &str = "WIRE_ACADEMY_BREAK_VECTOR";

/// [`all`], with the vector named by [`BREAK_VECTOR`] broken in a debug build.
pub fn run() -> Vec<Vector> {
    let mut v = all();
    if cfg!(debug_assertions)
        && let Ok(id) = std::env::var(BREAK_VECTOR)
    {
        for vector in v.iter_mut().filter(|x| x.id == id) {
            vector.expected.push_str(" (deliberately broken)");
        }
    }
    v
}

fn push(
    v: &mut Vec<Vector>,
    id: &str,
    source: &'static str,
    title: &'static str,
    fed: String,
    expected: &str,
    got: String,
) {
    v.push(Vector { id: id.to_string(), source, title, fed, expected: expected.to_string(), got });
}

/// Bytes as hex, the first 24 and a count of the rest.
fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(24).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 24 { format!(" ... ({} bytes)", bytes.len()) } else { String::new() };
    format!("{}{more}", shown.join(" "))
}

/// Runs `read` on `input` whole and split at every offset; the whole reading, or the
/// first split that read differently.
fn at_every_split(input: &[u8], read: impl Fn(&[&[u8]]) -> String) -> String {
    let whole = read(&[input]);
    // Long inputs: every offset of the first and last 300 bytes (where headers and
    // ends are), and one in the middle.
    let cuts: Vec<usize> = if input.len() <= 600 {
        (1..input.len()).collect()
    } else {
        (1..300).chain(input.len() / 2..input.len() / 2 + 1).chain(input.len() - 300..input.len()).collect()
    };
    for cut in cuts {
        let split = read(&[&input[..cut], &input[cut..]]);
        if split != whole {
            return format!("{whole}, but split at byte {cut}: {split}");
        }
    }
    whole
}

fn handshake(v: &mut Vec<Vector>) {
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    push(
        v,
        "rfc6455-1.3-accept-key",
        "RFC 6455 §1.3",
        "the server's Sec-WebSocket-Accept for the sample Sec-WebSocket-Key",
        key.to_string(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        accept_key(key.as_bytes()),
    );
}

/// What the receiving end's session delivers from `pieces`.
fn session_reads(reader: Role, pieces: &[&[u8]]) -> String {
    session_reads_with(reader, None, pieces)
}

/// The same, on a session that negotiated permessage-deflate with `deflate`.
fn session_reads_with(reader: Role, deflate: Option<DeflateParams>, pieces: &[&[u8]]) -> String {
    let limits = SessionLimits { max_message: 1 << 20, max_frame: 1 << 20 };
    let mut s = match reader {
        Role::Server => Session::server(limits),
        Role::Client => Session::client(limits, || [0; 4]),
    };
    if let Some(params) = deflate {
        s = s.with_deflate(params);
    }
    let mut out = Vec::new();
    for p in pieces {
        s.receive_data(p);
        while let Some(e) = s.next_event() {
            out.push(match e {
                WsEvent::Text(t) if t.len() <= 32 => format!("text {:?}", t.as_str()),
                WsEvent::Text(t) => format!("text of {} bytes", t.len()),
                WsEvent::Binary(b) => format!("binary of {} bytes", b.len()),
                WsEvent::Ping(p) => format!("ping {:?}", String::from_utf8_lossy(&p)),
                WsEvent::Pong(p) => format!("pong {:?}", String::from_utf8_lossy(&p)),
                WsEvent::Close { code, reason } => format!("close {code:?} {reason:?}"),
                WsEvent::ProtocolError { code, reason } => format!("fails with {code} ({reason})"),
            });
        }
    }
    if out.is_empty() { "nothing".to_string() } else { out.join(", ") }
}

/// (id, title, reader, the RFC's bytes, what the codec must deliver, the frames our
/// encoder writes for the same message: they must be the RFC's bytes).
type FrameCase = (&'static str, &'static str, Role, Vec<u8>, &'static str, Vec<u8>);

fn frames(v: &mut Vec<Vector>) {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let hello = b"Hello";
    let big256 = vec![0xab; 256];
    let big64k = vec![b'z'; 65536];
    let cases: Vec<FrameCase> = vec![
        (
            "unmasked-text",
            "a single-frame unmasked text message",
            Role::Client,
            vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            "text \"Hello\"",
            encode_frame(OpCode::Text, true, hello, None).to_vec(),
        ),
        (
            "masked-text",
            "a single-frame masked text message",
            Role::Server,
            vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
            "text \"Hello\"",
            encode_frame(OpCode::Text, true, hello, Some(KEY)).to_vec(),
        ),
        (
            "fragmented-text",
            "a fragmented unmasked text message: \"Hel\" then \"lo\"",
            Role::Client,
            vec![0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
            "text \"Hello\"",
            [encode_frame(OpCode::Text, false, b"Hel", None), encode_frame(OpCode::Continuation, true, b"lo", None)]
                .concat(),
        ),
        (
            "unmasked-ping",
            "an unmasked Ping request",
            Role::Client,
            vec![0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            "ping \"Hello\"",
            encode_frame(OpCode::Ping, true, hello, None).to_vec(),
        ),
        (
            "masked-pong",
            "a masked Ping response (Pong)",
            Role::Server,
            vec![0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
            "pong \"Hello\"",
            encode_frame(OpCode::Pong, true, hello, Some(KEY)).to_vec(),
        ),
        (
            "256-bytes",
            "256 bytes of binary data in a single unmasked message (16-bit length)",
            Role::Client,
            [&[0x82, 0x7e, 0x01, 0x00][..], &big256].concat(),
            "binary of 256 bytes",
            encode_frame(OpCode::Binary, true, &big256, None).to_vec(),
        ),
        (
            "64-kib",
            "64 KiB of binary data in a single unmasked message (64-bit length)",
            Role::Client,
            [&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0][..], &big64k].concat(),
            "binary of 65536 bytes",
            encode_frame(OpCode::Binary, true, &big64k, None).to_vec(),
        ),
    ];
    for (id, title, reader, bytes, expected, ours) in cases {
        let mut got = at_every_split(&bytes, |pieces| session_reads(reader, pieces));
        if ours != bytes {
            got.push_str(&format!("; our encoder writes {}", hex(&ours)));
        }
        push(v, &format!("rfc6455-5.7-{id}"), "RFC 6455 §5.7", title, hex(&bytes), expected, got);
    }
}

/// RFC 7692 §7.2.3: each example payload in a frame (RSV1 set on the first frame, as
/// the server would receive it from a browser: masked), read by a session that
/// negotiated permessage-deflate, at every split; and §7.2.3.1-2 written by our
/// compressor, which must produce the RFC's bytes.
fn deflate(v: &mut Vec<Vector>) {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    // A compressed message's first frame: RSV1 and the opcode in the first byte.
    let frame = |opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]| {
        let mut f = encode_frame(opcode, fin, payload, Some(KEY)).to_vec();
        if rsv1 {
            f[0] |= 0x40;
        }
        f
    };
    let hello: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let cases: Vec<(&str, &str, &'static str, Vec<u8>, &str)> = vec![
        (
            "7.2.3.1-hello",
            "RFC 7692 §7.2.3.1",
            "\"Hello\" compressed, in one frame",
            frame(OpCode::Text, true, true, hello),
            "text \"Hello\"",
        ),
        (
            "7.2.3.1-fragmented",
            "RFC 7692 §7.2.3.1",
            "the same payload in two fragments, RSV1 on the first only",
            [frame(OpCode::Text, false, true, &hello[..3]), frame(OpCode::Continuation, true, false, &hello[3..])]
                .concat(),
            "text \"Hello\"",
        ),
        (
            "7.2.3.2-context-takeover",
            "RFC 7692 §7.2.3.2",
            "\"Hello\" twice; the second refers back to the first (context takeover)",
            [frame(OpCode::Text, true, true, hello), frame(OpCode::Text, true, true, &[0xf2, 0x00, 0x11, 0x00, 0x00])]
                .concat(),
            "text \"Hello\", text \"Hello\"",
        ),
        (
            "7.2.3.3-no-compression",
            "RFC 7692 §7.2.3.3",
            "\"Hello\" in a DEFLATE block with no compression",
            frame(OpCode::Text, true, true, &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]),
            "text \"Hello\"",
        ),
        (
            "7.2.3.4-bfinal",
            "RFC 7692 §7.2.3.4",
            "\"Hello\" in a DEFLATE block with BFINAL set",
            frame(OpCode::Text, true, true, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]),
            "text \"Hello\"",
        ),
        (
            "7.2.3.5-two-blocks",
            "RFC 7692 §7.2.3.5",
            "\"He\" and \"llo\" in two DEFLATE blocks of one message",
            frame(
                OpCode::Text,
                true,
                true,
                &[0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00],
            ),
            "text \"Hello\"",
        ),
    ];
    for (id, source, title, bytes, expected) in cases {
        let got =
            at_every_split(&bytes, |pieces| session_reads_with(Role::Server, Some(DeflateParams::default()), pieces));
        push(v, &format!("rfc7692-{id}"), source, title, hex(&bytes), expected, got);
    }
    // The sender: our compressor, with context takeover, for two "Hello" messages.
    let mut d = Deflater::new(false, crate::proto::ws::deflate::MAX_WINDOW_BITS);
    let first = d.compress(b"Hello");
    let second = d.compress(b"Hello");
    push(
        v,
        "rfc7692-7.2.3.2-our-compressor",
        "RFC 7692 §7.2.3.1-2",
        "our compressor's payloads for \"Hello\" twice, with context takeover",
        "\"Hello\", \"Hello\"".to_string(),
        "f2 48 cd c9 c9 07 00, then f2 00 11 00 00",
        format!("{}, then {}", hex(&first), hex(&second)),
    );
}

fn close_codes(v: &mut Vec<Vector>) {
    // §7.4.1 defines 1000-1011 (1004 reserved; 1005, 1006 and 1015 "MUST NOT be set as
    // a status code in a Close control frame"); §7.4.2: 0-999 unused, 1000-2999 for
    // the protocol and its extensions (the IANA registry adds 1012-1014), 3000-3999
    // registered, 4000-4999 private.
    let cases: [(u16, &str); 17] = [
        (999, "invalid"),
        (1000, "valid"),
        (1001, "valid"),
        (1002, "valid"),
        (1003, "valid"),
        (1004, "invalid"),
        (1005, "invalid"),
        (1006, "invalid"),
        (1007, "valid"),
        (1011, "valid"),
        (1014, "valid"),
        (1015, "invalid"),
        (1016, "invalid"),
        (2999, "invalid"),
        (3000, "valid"),
        (4999, "valid"),
        (5000, "invalid"),
    ];
    for (code, expected) in cases {
        let body = code.to_be_bytes();
        let got = if parse_close_body(&body).is_ok() { "valid" } else { "invalid" };
        push(
            v,
            &format!("rfc6455-7.4-code-{code}"),
            "RFC 6455 §7.4",
            "whether a Close frame may carry this status code",
            format!("code {code}"),
            expected,
            got.to_string(),
        );
    }
    // A one-byte body cannot hold a code (§5.5.1), and a reason must be UTF-8 (§5.5.1,
    // §8.1): the session fails the connection with 1002 and 1007.
    for (id, title, payload, expected) in [
        ("one-byte-body", "a Close body of one byte", &b"\x03"[..], "fails with 1002"),
        ("reason-not-utf8", "a Close reason that is not UTF-8", &b"\x03\xe8\xff"[..], "fails with 1007"),
    ] {
        let frame = encode_frame(OpCode::Close, true, payload, Some([1, 2, 3, 4]));
        let got = session_reads(Role::Server, &[&frame]);
        let got = got.split(" (").next().unwrap_or("").to_string();
        push(v, &format!("rfc6455-7.4-{id}"), "RFC 6455 §5.5.1", title, hex(&frame), expected, got);
    }
}

/// The body a chunked decoder reads from `pieces`, through the same message stream the
/// server steps, and what follows it; or the refusal.
fn chunked_reads(pieces: &[&[u8]]) -> String {
    let limits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 1 << 20 };
    let mut ex = Exchange::in_body(Role::Client, ResponseBody::Chunked, limits);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        buf.extend_from_slice(p);
        loop {
            match ex.read(Role::Client, &mut buf) {
                Ok(Some(u)) if matches!(u.event, HttpEvent::End) => {
                    let rest = [&buf[..], &pieces[i + 1..].concat()].concat();
                    let after = if rest.is_empty() { String::new() } else { format!(", then {:?}", show(&rest)) };
                    return format!("body {:?}{after}", show(&body));
                }
                Ok(Some(u)) if matches!(u.event, HttpEvent::Data(_)) => body.extend_from_slice(&u.bytes),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return format!("refused ({})", e.status()),
            }
        }
    }
    "incomplete".to_string()
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn chunked(v: &mut Vec<Vector>) {
    let cases: [(&str, &'static str, &'static str, &[u8], &str); 13] = [
        (
            "wikipedia",
            "RFC 9112 §7.1",
            "two chunks and the last chunk",
            b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
            "body \"Wikipedia\"",
        ),
        (
            "extensions",
            "RFC 9112 §7.1.1",
            "chunk extensions, with and without values and whitespace, are ignored",
            b"5;name=value\r\nhello\r\n6 ; ext\r\n world\r\n0;last\r\n\r\n",
            "body \"hello world\"",
        ),
        (
            "trailer",
            "RFC 9112 §7.1.2",
            "a trailer section is read and set aside",
            b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n",
            "body \"abc\"",
        ),
        (
            "hex-digits",
            "RFC 9112 §7.1",
            "upper-case hex and leading zeros",
            b"000A\r\n0123456789\r\n00\r\n\r\n",
            "body \"0123456789\"",
        ),
        (
            "pipelined",
            "RFC 9112 §9.3.2",
            "an empty body, and the next request's bytes after it untouched",
            b"0\r\n\r\nGET / HTTP/1.1\r\n",
            "body \"\", then \"GET / HTTP/1.1\\r\\n\"",
        ),
        ("not-hex", "RFC 9112 §7.1", "a chunk size that is not hex", b"x\r\nabc\r\n0\r\n\r\n", "refused (400)"),
        ("no-size", "RFC 9112 §7.1", "an extension with no chunk size", b";ext\r\n", "refused (400)"),
        ("bare-lf-size", "RFC 9112 §7.1", "a size line ended by a bare LF", b"3\nabc\r\n0\r\n\r\n", "refused (400)"),
        ("data-too-long", "RFC 9112 §7.1", "more data than the size said", b"3\r\nabcX\r\n0\r\n\r\n", "refused (400)"),
        ("bare-lf-data", "RFC 9112 §7.1", "data ended by a bare LF", b"3\r\nabc\n0\r\n\r\n", "refused (400)"),
        ("size-overflow", "RFC 9112 §7.1", "a chunk size past 64 bits", b"11111111111111111\r\n", "refused (400)"),
        ("negative", "RFC 9112 §7.1", "a negative chunk size", b"-1\r\n", "refused (400)"),
        ("bare-lf-end", "RFC 9112 §7.1", "a last chunk ended by a bare LF", b"0\r\n\n", "refused (400)"),
    ];
    for (id, source, title, input, expected) in cases {
        let got = at_every_split(input, chunked_reads);
        push(v, &format!("rfc9112-chunked-{id}"), source, title, format!("{:?}", show(input)), expected, got);
    }
}

/// The events an EventSource dispatches from `pieces`.
fn events_read(pieces: &[&[u8]]) -> String {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for piece in pieces {
        p.feed(piece);
        while let Ok(Some(e)) = p.next_event() {
            out.push(format!("[{} data={:?} id={:?}]", e.event_type, e.data, e.last_event_id));
        }
    }
    if out.is_empty() { "no event".to_string() } else { out.join(" ") }
}

fn event_stream(v: &mut Vec<Vector>) {
    let cases: [(&str, &'static str, &[u8], &str); 7] = [
        (
            "stock",
            "three data lines make one event, joined by LF",
            b"data: YHOO\ndata: +2\ndata: 10\n\n",
            "[message data=\"YHOO\\n+2\\n10\" id=\"\"]",
        ),
        (
            "ids",
            "a comment, an id, an empty id that resets it, a leading space kept after the first",
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
            "[message data=\"first event\" id=\"1\"] [message data=\"second event\" id=\"\"] [message data=\" third event\" id=\"\"]",
        ),
        (
            "empty-data",
            "a field with no colon, an empty data buffer, and a last event never dispatched",
            b"data\n\ndata\ndata\n\ndata:\n",
            "[message data=\"\" id=\"\"] [message data=\"\\n\" id=\"\"]",
        ),
        (
            "one-space",
            "one space after the colon is removed, no more",
            b"data:test\n\ndata: test\n\n",
            "[message data=\"test\" id=\"\"] [message data=\"test\" id=\"\"]",
        ),
        (
            "line-ends",
            "lines end with CRLF, LF or a lone CR",
            b"data: a\r\n\r\ndata: b\r\rdata: c\n\n",
            "[message data=\"a\" id=\"\"] [message data=\"b\" id=\"\"] [message data=\"c\" id=\"\"]",
        ),
        ("bom", "a leading byte order mark is skipped", b"\xef\xbb\xbfdata: x\n\n", "[message data=\"x\" id=\"\"]"),
        (
            "event-type",
            "an event type, and an unknown field ignored",
            b"event: add\nfoo: bar\ndata: 73857293\n\n",
            "[add data=\"73857293\" id=\"\"]",
        ),
    ];
    for (id, title, input, expected) in cases {
        let got = at_every_split(input, events_read);
        push(v, &format!("whatwg-sse-{id}"), "WHATWG HTML §9.2.6", title, format!("{:?}", show(input)), expected, got);
    }
}

/// Whether the incremental validator accepts `pieces` as one UTF-8 text.
fn utf8_reads(pieces: &[&[u8]]) -> String {
    let mut val = Utf8Validator::new();
    for p in pieces {
        if let Err(e) = val.feed(p) {
            return format!("invalid: {e}");
        }
    }
    match val.finish() {
        Ok(()) => "valid".to_string(),
        Err(e) => format!("invalid: {e}"),
    }
}

fn utf8(v: &mut Vec<Vector>) {
    let cases: [(&str, &'static str, &'static str, &[u8], &str); 13] = [
        ("a-not-identical", "RFC 3629 §7", "\"A≢Α.\"", b"\x41\xe2\x89\xa2\xce\x91\x2e", "valid"),
        ("korean", "RFC 3629 §7", "\"한국어\" (Korean)", b"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", "valid"),
        ("japanese", "RFC 3629 §7", "\"日本語\" (Japanese)", b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "valid"),
        ("bom-4-byte", "RFC 3629 §7", "a BOM, then U+233B4 (four bytes)", b"\xef\xbb\xbf\xf0\xa3\x8e\xb4", "valid"),
        ("overlong-nul", "RFC 3629 §10", "an overlong NUL (C0 80)", b"\xc0\x80", "invalid: invalid UTF-8 at byte 0"),
        (
            "overlong-slash",
            "RFC 3629 §10",
            "an overlong \"/\" (E0 80 AF)",
            b"\xe0\x80\xaf",
            "invalid: invalid UTF-8 at byte 1",
        ),
        (
            "surrogate",
            "RFC 3629 §3",
            "a UTF-16 surrogate (U+D800)",
            b"\xed\xa0\x80",
            "invalid: invalid UTF-8 at byte 1",
        ),
        (
            "past-10ffff",
            "RFC 3629 §3",
            "past U+10FFFF (F4 90 80 80)",
            b"\xf4\x90\x80\x80",
            "invalid: invalid UTF-8 at byte 1",
        ),
        ("fe", "Kuhn's stress test §3.5", "the byte FE", b"a\xfe", "invalid: invalid UTF-8 at byte 1"),
        ("ff", "Kuhn's stress test §3.5", "the byte FF", b"a\xff", "invalid: invalid UTF-8 at byte 1"),
        (
            "lone-continuation",
            "Kuhn's stress test §3.1",
            "a continuation byte alone",
            b"\x80",
            "invalid: invalid UTF-8 at byte 0",
        ),
        (
            "truncated",
            "Kuhn's stress test §3.3",
            "a sequence cut short at the end",
            b"\xe6\x97",
            "invalid: truncated UTF-8 sequence starting at byte 0",
        ),
        ("max", "Kuhn's stress test §2.2", "the last code point, U+10FFFF", b"\xf4\x8f\xbf\xbf", "valid"),
    ];
    for (id, source, title, input, expected) in cases {
        let got = at_every_split(input, utf8_reads);
        push(v, &format!("utf8-{id}"), source, title, hex(input), expected, got);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table the `vectors` command prints: every vector passes.
    #[test]
    fn every_vector_passes() {
        let failed: Vec<_> = all().into_iter().filter(|v| !v.passed()).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn ids_are_unique() {
        let v = all();
        let ids: std::collections::BTreeSet<_> = v.iter().map(|x| &x.id).collect();
        assert_eq!(ids.len(), v.len());
    }
}
