//! The invariants the fuzz targets check, kept in the library so that the stable test
//! `tests/fuzz_corpus.rs` replays the corpus through the very same checks the fuzzer runs
//! (`fuzz/fuzz_targets/*.rs` are one line each). docs/fuzzing.md says how to run them.
//!
//! Every check takes arbitrary bytes and never returns an error: a broken invariant is a
//! panic, which libFuzzer reports as a crash and the test as a failure. "No panic" is
//! the least of it; each target also checks, on every input:
//!
//! - **split**: the same bytes fed in one piece and in three (cut at two offsets the
//!   input chooses) give the same units, events, errors and leftover bytes: a parser's
//!   reading never depends on how TCP cut the stream;
//! - **round trip**: what our encoder writes (a request, a response, frames, events,
//!   a hexdump) parses back to what was encoded;
//! - **limits**: no unit is larger than its limit, every byte taken off a buffer is
//!   accounted for, and a refused input stays refused when more bytes arrive.
//!
//! An input is [`PARAMS`](crate::fuzzing::PARAMS) bytes of parameters (the two cuts, flags, a limit), then the
//! bytes the parser reads. The corpus files in `fuzz/corpus/TARGET/` have that layout;
//! [`seeds`](crate::fuzzing::seeds) builds the hand-written ones (RFC vectors, the codecs' own test inputs).
//!

use bytes::{BufMut, BytesMut};

use crate::proto::Role;
use crate::proto::http::body::{MAX_CHUNK_LINE, MAX_TRAILER};
use crate::proto::http::response::{Context, LAST_CHUNK, chunk};
use crate::proto::http::{
    Asked, BodyKind, Event as HttpEvent, Exchange, HeadLimits, HttpError, MessageStream, Piece, Response, ResponseBody,
    Version, parse_head, parse_response_head, write_request,
};
use crate::proto::ws::deflate::ServerDeflateConfig;
use crate::proto::ws::frame::MAX_CONTROL_PAYLOAD;
use crate::proto::ws::{
    Event as WsEvent, HandshakeError, HandshakeOptions, OpCode, Session, SessionLimits, accept_key, client_request,
    client_verify, encode_frame, server_accept,
};
use crate::proto::{resp, sse};
use crate::trace::annotate::{Conversation, Note, Start};
use crate::trace::{hexdump, hexread};

/// A target's check: panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every fuzz target: its name (the file under `fuzz/fuzz_targets/` and the directory
/// under `fuzz/corpus/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("http_requests", http_requests),
    ("http_responses", http_responses),
    ("http_exchange", http_exchange),
    ("ws_session", ws_session),
    ("ws_handshake", ws_handshake),
    ("sse_parser", sse_parser),
    ("hexread", hexread),
    ("trace_conversation", trace_conversation),
    ("resp", resp),
];

/// Bytes of parameters before the input proper: two cut offsets (u16 each), flags, a limit.
pub const PARAMS: usize = 6;

/// The parameters an input starts with.
#[derive(Clone, Copy, Debug)]
struct Params {
    cut_a: usize,
    cut_b: usize,
    flags: u8,
    limit: u8,
}

fn split_params(data: &[u8]) -> (Params, &[u8]) {
    let mut p = [0u8; PARAMS];
    let n = data.len().min(PARAMS);
    p[..n].copy_from_slice(&data[..n]);
    let params = Params {
        cut_a: u16::from_le_bytes([p[0], p[1]]) as usize,
        cut_b: u16::from_le_bytes([p[2], p[3]]) as usize,
        flags: p[4],
        limit: p[5],
    };
    (params, &data[n..])
}

impl Params {
    /// `body` in three pieces, at the two cuts (taken modulo its length, in order).
    fn pieces<'a>(&self, body: &'a [u8]) -> [&'a [u8]; 3] {
        let (a, b) = self.cuts(body.len());
        [&body[..a], &body[a..b], &body[b..]]
    }

    fn cuts(&self, len: usize) -> (usize, usize) {
        let a = self.cut_a % (len + 1);
        let b = self.cut_b % (len + 1);
        (a.min(b), a.max(b))
    }

    fn flag(&self, bit: u8) -> bool {
        self.flags & (1 << bit) != 0
    }
}

/// Builds an input from its parts (for seeds and regression tests).
pub fn input(cut_a: u16, cut_b: u16, flags: u8, limit: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(PARAMS + body.len());
    v.extend_from_slice(&cut_a.to_le_bytes());
    v.extend_from_slice(&cut_b.to_le_bytes());
    v.push(flags);
    v.push(limit);
    v.extend_from_slice(body);
    v
}

// ---------------------------------------------------------------------------
// HTTP/1.1 message streams (proto::http::stream)
// ---------------------------------------------------------------------------

/// Small limits, so that inputs of a few hundred bytes reach every limit.
fn http_limits(p: &Params) -> HeadLimits {
    let l = p.limit as usize;
    HeadLimits { max_header: 64 + 4 * l, max_target: 16 + l, max_body: 32 + 8 * l }
}

/// What one direction of a stream read: the units (consecutive data and empty-line
/// units merged, as a split may cut them anywhere), the error that stopped it, and the
/// bytes left unread.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    units: Vec<(String, Vec<u8>)>,
    error: Option<HttpError>,
    rest: Vec<u8>,
    paused: bool,
    switched: bool,
}

/// How a direction is read: what to do when the request stream pauses for an upgrade.
#[derive(Clone, Copy)]
struct HttpRun {
    side: Role,
    limits: HeadLimits,
    /// The status a paused request stream is answered with (101 switches); `None`: the
    /// responses answer it (an exchange).
    answer: Option<u16>,
}

/// Reads `pieces` of what `run.side` wrote through `ex`, checking the limits and that
/// every byte taken off the buffer is in a unit.
fn read_side(ex: &mut Exchange, run: HttpRun, pieces: &[&[u8]]) -> Reading {
    read_into(ex, run, &mut BytesMut::new(), pieces)
}

/// [`read_side`] with the read buffer of earlier reads (unread bytes are in it).
fn read_into(ex: &mut Exchange, run: HttpRun, buf: &mut BytesMut, pieces: &[&[u8]]) -> Reading {
    let mut out = Reading { units: Vec::new(), error: None, rest: Vec::new(), paused: false, switched: false };
    let mut fed = buf.to_vec();
    let mut taken = Vec::new();
    let mut trailer = 0usize;
    'pieces: for piece in pieces {
        buf.extend_from_slice(piece);
        fed.extend_from_slice(piece);
        loop {
            let unit = match ex.read(run.side, buf) {
                Ok(Some(unit)) => unit,
                Ok(None) if run.answer.is_some() && ex.stream(Role::Client).is_paused() => {
                    // The answer to the upgrade request (as the server would send it): a
                    // 101 switches, anything else resumes HTTP.
                    ex.stream_mut(Role::Client).answered(run.answer.unwrap_or(200));
                    if ex.stream(Role::Client).is_paused() {
                        break;
                    }
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    break 'pieces;
                }
            };
            taken.extend_from_slice(&unit.bytes);
            let (name, bytes) = check_unit(run, &unit, &mut trailer);
            match out.units.last_mut() {
                Some((last, b)) if *last == name && (name == "data" || name == "empty") => b.extend_from_slice(bytes),
                _ => out.units.push((name, bytes.to_vec())),
            }
        }
    }
    if out.error.is_none() {
        // Nothing lost, nothing invented: the units and what is left are what came.
        assert_eq!([&taken[..], &buf[..]].concat(), fed, "units plus leftover are the bytes fed");
    } else {
        assert!(fed.starts_with(&taken), "units are a prefix of the bytes fed");
    }
    // After an error the framing is lost: what is left unread means nothing.
    out.rest = if out.error.is_none() { buf.to_vec() } else { Vec::new() };
    out.paused = ex.stream(run.side).is_paused();
    out.switched = ex.stream(run.side).is_switched();
    out
}

/// One unit's name for comparing readings, after checking it against the limits.
fn check_unit<'u>(run: HttpRun, unit: &'u crate::proto::http::Unit, trailer: &mut usize) -> (String, &'u [u8]) {
    let bytes = &unit.bytes[..];
    let name = match &unit.event {
        HttpEvent::EmptyLines => {
            assert!(bytes.chunks(2).all(|p| p == b"\r\n"), "empty lines are CRLFs");
            "empty".to_string()
        }
        HttpEvent::Request(head) => {
            assert_eq!(run.side, Role::Client);
            let line = bytes.iter().position(|&b| b == b'\n').expect("a request line") + 1;
            assert!(head.target().len() <= run.limits.max_target, "target over its limit");
            assert!(bytes.len() - line <= run.limits.max_header, "header section over its limit");
            if let BodyKind::Length(n) = head.body {
                assert!(n <= run.limits.max_body as u64, "Content-Length over the body limit");
            }
            assert!(bytes.ends_with(b"\r\n\r\n"), "a head ends with an empty line");
            format!(
                "request {} {} {:?} {:?} {}",
                head.method(),
                head.target(),
                head.version,
                head.body,
                head.keep_alive
            )
        }
        HttpEvent::Response(head) => {
            assert_eq!(run.side, Role::Server);
            assert!(bytes.len() <= run.limits.max_header, "response head over its limit");
            format!("response {} {:?}", head.status, head.version)
        }
        HttpEvent::Data(_) => {
            assert!(!bytes.is_empty(), "a data unit has bytes");
            "data".to_string()
        }
        HttpEvent::Chunk(piece) => {
            match piece {
                Piece::SizeLine { .. } => {
                    *trailer = 0;
                    assert!(bytes.len() <= MAX_CHUNK_LINE + 2, "chunk size line over its limit");
                }
                Piece::Trailer | Piece::End => {
                    *trailer += bytes.len();
                    assert!(*trailer <= MAX_TRAILER + 2, "trailer section over its limit");
                }
                Piece::DataEnd => assert_eq!(bytes, b"\r\n"),
                Piece::Data | Piece::Partial => panic!("{piece:?} is never a chunk unit"),
            }
            format!("{piece:?}")
        }
        HttpEvent::End => {
            assert!(bytes.is_empty(), "End has no bytes");
            "end".to_string()
        }
    };
    (name, bytes)
}

/// Reads `body` whole and in three pieces with a fresh exchange each time, and checks
/// that the two readings agree.
fn whole_and_split(p: &Params, body: &[u8], fresh: impl Fn() -> Exchange, run: HttpRun) -> Reading {
    let whole = read_side(&mut fresh(), run, &[body]);
    let split = read_side(&mut fresh(), run, &p.pieces(body));
    assert_eq!(split, whole, "split at {:?} reads differently", p.cuts(body.len()));
    whole
}

/// The server reading requests: split invariance, limits, and a request our client's
/// writer makes parsing back field for field.
pub fn http_requests(data: &[u8]) {
    let (p, body) = split_params(data);
    let limits = http_limits(&p);
    let run = HttpRun { side: Role::Client, limits, answer: Some(if p.flag(0) { 101 } else { 200 }) };
    whole_and_split(&p, body, || Exchange::new(limits), run);
    request_round_trip(&p, body);
}

/// `write_request` then `parse_head`: method, target, host, headers and body come back.
fn request_round_trip(p: &Params, body: &[u8]) {
    let (a, b) = p.cuts(body.len());
    let method = ["GET", "POST", "PUT", "DELETE"][p.flags as usize % 4];
    let target = format!("/{}", token(&body[..a], b"/?=&%.-_~"));
    let host = format!("h{}", token(&body[a..b], b".:-"));
    let value = visible(&body[b..]);
    let headers = [("X-Fuzz", value.as_str())];
    let payload = &body[..a];
    let mut out = BytesMut::new();
    write_request(&mut out, method, &target, &host, &headers, payload);
    let limits = HeadLimits { max_header: 1 << 16, max_target: 1 << 16, max_body: 1 << 16 };
    let head = parse_head(&mut out, &limits)
        .unwrap_or_else(|e| panic!("our own request refused: {e:?}"))
        .expect("our own request is complete");
    assert_eq!((head.method(), head.target()), (method, target.as_str()));
    assert_eq!(head.header("host"), Some(host.as_bytes()));
    assert_eq!(head.header("x-fuzz"), Some(value.trim_matches([' ', '\t']).as_bytes()));
    let expect_body = if payload.is_empty() && method != "POST" { BodyKind::None } else { BodyKind::Length(0) };
    match (head.body, expect_body) {
        (BodyKind::Length(n), _) => assert_eq!(n as usize, payload.len()),
        (BodyKind::None, _) => assert!(payload.is_empty()),
        (BodyKind::Chunked, _) => panic!("our request is never chunked"),
    }
    assert_eq!(&out[..], payload, "the body follows the head");
}

/// Bytes as a token made of ASCII alphanumerics and `extra` (others dropped).
fn token(bytes: &[u8], extra: &[u8]) -> String {
    bytes.iter().filter(|b| b.is_ascii_alphanumeric() || extra.contains(b)).map(|&b| b as char).collect()
}

/// Bytes as a header value: visible ASCII and spaces (others dropped).
fn visible(bytes: &[u8]) -> String {
    bytes.iter().filter(|b| b.is_ascii_graphic() || **b == b' ').map(|&b| b as char).collect()
}

/// The client reading responses to requests that asked what the flags say: split
/// invariance, limits, no body where the rules forbid one, and our own responses
/// (Content-Length and chunked) parsing back.
pub fn http_responses(data: &[u8]) {
    let (p, body) = split_params(data);
    let limits = http_limits(&p);
    let fresh = || {
        let mut ex = Exchange::new(limits);
        for i in 0..3 {
            ex.stream_mut(Role::Server).expect(Asked { head: p.flag(i), upgrade: i == 0 && p.flag(3) });
        }
        ex
    };
    let run = HttpRun { side: Role::Server, limits, answer: None };
    let reading = whole_and_split(&p, body, fresh, run);
    // RFC 9112 §6.3 rules 1 and 2: no body after a HEAD's answer, 1xx, 204 or 304.
    let mut answered = 0;
    let mut no_body = false;
    for (name, _) in &reading.units {
        if let Some(rest) = name.strip_prefix("response ") {
            let status: u16 = rest.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let head = status >= 200 && answered < 3 && p.flag(answered as u8);
            if status >= 200 || status == 101 {
                answered += 1;
            }
            no_body = head || status < 200 || status == 204 || status == 304;
        } else if no_body {
            assert_eq!(name, "end", "a response that has no body has only an End after its head");
        }
    }
    response_round_trip(&p, body);
}

/// Our response writer's output read back by the client's stream: the status and the
/// body, with Content-Length and chunked framing.
fn response_round_trip(p: &Params, body: &[u8]) {
    let status = [200, 201, 400, 404, 500][p.limit as usize % 5];
    let (a, b) = p.cuts(body.len());
    let ctx = Context { version: Version::Http11, head_request: false, keep_alive: true, date: "x" };
    let mut wire = BytesMut::new();
    Response::with_body(status, "text/plain", body[..a].to_vec()).encode(&ctx, &mut wire);
    Response::new(200).header("Content-Type", "text/event-stream").encode_stream_head(&ctx, &mut wire);
    for part in [&body[a..b], &body[b..]] {
        if !part.is_empty() {
            wire.extend_from_slice(&chunk(part));
        }
    }
    wire.extend_from_slice(LAST_CHUNK);
    let limits = HeadLimits { max_header: 1 << 16, max_target: 1 << 16, max_body: 1 << 16 };
    let mut s = MessageStream::responses(limits);
    let mut bodies = vec![Vec::new()];
    let mut statuses = Vec::new();
    while let Some(unit) = s.read(&mut wire).unwrap_or_else(|e| panic!("our own response refused: {e:?}")) {
        match unit.event {
            HttpEvent::Response(h) => statuses.push(h.status),
            HttpEvent::Data(_) => bodies.last_mut().expect("one").extend_from_slice(&unit.bytes),
            HttpEvent::End => bodies.push(Vec::new()),
            _ => {}
        }
    }
    assert_eq!(statuses, [status, 200]);
    assert_eq!(bodies, [&body[..a], &body[a..], &[][..]]);
    assert!(wire.is_empty() && s.is_idle());
}

/// Both directions coupled, as the proxy and the trace read them: the requests (before
/// the first cut) and the responses (after it), each read whole and in two pieces,
/// requests first; and once interleaved, which must still account for every byte.
pub fn http_exchange(data: &[u8]) {
    let (p, body) = split_params(data);
    let limits = http_limits(&p);
    let (a, b) = p.cuts(body.len());
    let (req, resp) = body.split_at(a);
    let b = b - a;
    let requests = HttpRun { side: Role::Client, limits, answer: None };
    let responses = HttpRun { side: Role::Server, limits, answer: None };
    let mut whole = Exchange::new(limits);
    let whole = (read_side(&mut whole, requests, &[req]), read_side(&mut whole, responses, &[resp]));
    let mut split = Exchange::new(limits);
    let split = (
        read_side(&mut split, requests, &[&req[..b.min(req.len())], &req[b.min(req.len())..]]),
        read_side(&mut split, responses, &[&resp[..b.min(resp.len())], &resp[b.min(resp.len())..]]),
    );
    assert_eq!(split, whole, "split reads differently");
    // A 101 read from the server switches both directions once its End went by.
    if whole.1.error.is_none() && whole.1.units.iter().any(|(n, _)| n.starts_with("response 101")) {
        let after = whole.1.units.iter().rposition(|(n, _)| n.starts_with("response 101")).unwrap_or(0);
        if whole.1.units[after..].iter().any(|(n, _)| n == "end") {
            assert!(whole.1.switched, "a 101 switches the responses");
        }
    }
    // Interleaved: a response may arrive before its request; bytes are still all named.
    let mut ex = Exchange::new(limits);
    let (rq, rs) = (req.len() / 2, resp.len() / 2);
    let (mut req_buf, mut resp_buf) = (BytesMut::new(), BytesMut::new());
    let mut failed = [false; 2];
    for (i, piece) in [&req[..rq], &resp[..rs], &req[rq..], &resp[rs..]].into_iter().enumerate() {
        let (run, buf) = if i % 2 == 0 { (requests, &mut req_buf) } else { (responses, &mut resp_buf) };
        if !failed[i % 2] {
            // After an error the reader stops reading HTTP.
            failed[i % 2] = read_into(&mut ex, run, buf, &[piece]).error.is_some();
        }
    }
}

// ---------------------------------------------------------------------------
// WebSocket session (proto::ws::session)
// ---------------------------------------------------------------------------

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn session(role: Role, limits: SessionLimits) -> Session {
    match role {
        Role::Server => Session::server(limits),
        Role::Client => Session::client(limits, || KEY),
    }
}

/// Everything a session did with some input.
#[derive(Debug, PartialEq, Eq)]
struct SessionRun {
    events: Vec<WsEvent>,
    out: Vec<u8>,
    state: crate::proto::ws::CloseState,
    failure: Option<crate::proto::ws::Violation>,
}

fn run_session(role: Role, limits: SessionLimits, pieces: &[&[u8]]) -> SessionRun {
    let mut s = session(role, limits);
    let mut events = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        s.receive_data(piece);
        while let Some(e) = s.next_event() {
            assert!(
                !matches!(events.last(), Some(WsEvent::ProtocolError { .. })),
                "no event after a protocol error: {e:?}"
            );
            events.push(e);
        }
        out.extend(s.drain_outgoing().flat_map(|b| b.to_vec()));
    }
    // A failed or closed session stays so whatever else arrives.
    if matches!(events.last(), Some(WsEvent::ProtocolError { .. })) {
        s.receive_data(&encode_frame(OpCode::Ping, true, b"late", (role == Role::Server).then_some(KEY)));
        assert_eq!(s.next_event(), None, "a failed session reads nothing more");
        assert!(s.is_closed());
    }
    SessionRun { events, out, state: s.state(), failure: s.failure() }
}

/// One session, server or client (flag 0): split invariance of events and of the bytes
/// it answers with, limits, our answers read correctly by a peer, and fragmented
/// messages our encoder writes delivered whole.
pub fn ws_session(data: &[u8]) {
    let (p, body) = split_params(data);
    let role = if p.flag(0) { Role::Client } else { Role::Server };
    let max_frame = 1 + p.limit as usize * 8;
    let limits = SessionLimits { max_frame, max_message: max_frame * (1 + (p.flags as usize >> 1 & 3)) };
    let whole = run_session(role, limits, &[body]);
    let split = run_session(role, limits, &p.pieces(body));
    assert_eq!(split, whole, "split at {:?} reads differently", p.cuts(body.len()));

    for e in &whole.events {
        match e {
            WsEvent::Text(t) => assert!(t.len() <= limits.max_message),
            WsEvent::Binary(b) => assert!(b.len() <= limits.max_message),
            WsEvent::Ping(b) | WsEvent::Pong(b) => assert!(b.len() <= MAX_CONTROL_PAYLOAD),
            WsEvent::Close { reason, .. } => assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2),
            WsEvent::ProtocolError { .. } => {}
        }
    }
    peer_reads_answers(role, &whole);
    fragments_round_trip(&p, role, limits, body);
}

/// The bytes a session answered with, read by a session of the other role: valid frames
/// (masked exactly when a client sent them), a Pong for each Ping, and the Close that
/// says why the connection failed.
fn peer_reads_answers(role: Role, run: &SessionRun) {
    let peer_role = if role == Role::Server { Role::Client } else { Role::Server };
    let peer = run_session(peer_role, SessionLimits::default(), &[&run.out]);
    let mut expected = Vec::new();
    for e in &run.events {
        match e {
            WsEvent::Ping(b) => expected.push(WsEvent::Pong(b.clone())),
            WsEvent::ProtocolError { code, .. } => {
                let reason = crate::proto::ws::Violation::reason(run.failure.expect("a failure"));
                expected.push(WsEvent::Close { code: Some(*code), reason: reason.to_string() });
            }
            // The echo of a Close: the same code, no reason (§5.5.1).
            WsEvent::Close { code, .. } if !expected.iter().any(|e| matches!(e, WsEvent::Close { .. })) => {
                expected.push(WsEvent::Close { code: *code, reason: String::new() })
            }
            _ => {}
        }
    }
    assert_eq!(peer.events, expected, "the peer reads our answers");
}

/// A message cut into up to three fragments at the cuts, each frame written by our
/// encoder as the peer would send it: delivered whole, or refused with 1009 when over a
/// limit. And the same message sent by a session of the other role.
fn fragments_round_trip(p: &Params, role: Role, limits: SessionLimits, body: &[u8]) {
    let text = p.flag(3);
    let message: Vec<u8> = if text { String::from_utf8_lossy(body).into_owned().into_bytes() } else { body.to_vec() };
    let (a, b) = p.cuts(message.len());
    let parts: Vec<&[u8]> =
        [&message[..a], &message[a..b], &message[b..]].into_iter().filter(|f| !f.is_empty()).collect();
    let parts = if parts.is_empty() { vec![&message[..]] } else { parts };
    let mask = (role == Role::Server).then_some(KEY);
    let mut wire = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let opcode = match (i, text) {
            (0, true) => OpCode::Text,
            (0, false) => OpCode::Binary,
            _ => OpCode::Continuation,
        };
        wire.extend_from_slice(&encode_frame(opcode, i + 1 == parts.len(), part, mask));
    }
    let got = run_session(role, limits, &[&wire]);
    let too_big = parts.iter().any(|f| f.len() > limits.max_frame) || message.len() > limits.max_message;
    if too_big {
        assert!(matches!(got.events.last(), Some(WsEvent::ProtocolError { code: 1009, .. })), "{got:?}");
    } else {
        let want = if text {
            WsEvent::Text(crate::proto::ws::Utf8Bytes::try_from_bytes(message.clone().into()).expect("UTF-8"))
        } else {
            WsEvent::Binary(message.clone().into())
        };
        assert_eq!(got.events, [want], "fragments {:?}", parts.iter().map(|f| f.len()).collect::<Vec<_>>());
    }
    // The same message from a session of the other role.
    let peer_role = if role == Role::Server { Role::Client } else { Role::Server };
    let mut sender = session(peer_role, SessionLimits::default());
    if text {
        sender.send_text(std::str::from_utf8(&message).expect("UTF-8")).expect("open");
    } else {
        sender.send_binary(&message).expect("open");
    }
    let sent: Vec<u8> = sender.drain_outgoing().flat_map(|b| b.to_vec()).collect();
    let got = run_session(role, limits, &[&sent]);
    match got.events.as_slice() {
        [WsEvent::Text(t)] => assert_eq!(t.as_bytes(), &message[..]),
        [WsEvent::Binary(b)] => assert_eq!(&b[..], &message[..]),
        [WsEvent::ProtocolError { code: 1009, .. }] => {
            assert!(message.len() > limits.max_frame.min(limits.max_message))
        }
        other => panic!("sent one message, read {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// WebSocket opening handshake (proto::ws::handshake)
// ---------------------------------------------------------------------------

/// The server's decision on a request (the bytes before the first cut, read by the
/// request parser), checked against the rules it must have applied, and its `101` read
/// back by `client_verify`; the client's check of a response (the rest); and a request
/// our client writes always accepted.
pub fn ws_handshake(data: &[u8]) {
    let (p, body) = split_params(data);
    let (a, _) = p.cuts(body.len());
    let limits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 0 };
    let opts = HandshakeOptions {
        allowed_origins: if p.flag(0) { vec!["http://example.com".into()] } else { vec![] },
        subprotocols: if p.flag(1) { vec!["chat".into(), "superchat".into()] } else { vec![] },
        // permessage-deflate offered or not, and answered with or without
        // server_no_context_takeover: the accept rules hold either way.
        deflate: ServerDeflateConfig { enabled: p.flag(2), force_server_no_context_takeover: p.flag(3) },
    };
    if let Ok(Some(head)) = parse_head(&mut BytesMut::from(&body[..a]), &limits) {
        let headers: Vec<(&str, &[u8])> = head.headers().collect();
        match server_accept(head.method(), &headers, &opts) {
            Ok(accepted) => {
                assert_eq!(head.method(), "GET");
                assert!(head.is_websocket_upgrade(), "accepted without Upgrade and Connection");
                let keys: Vec<&[u8]> =
                    headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key")).map(|h| h.1).collect();
                assert_eq!(keys.len(), 1, "exactly one key");
                let key = std::str::from_utf8(keys[0]).expect("base64 is ASCII").trim_matches([' ', '\t']);
                assert_eq!(accepted.accept, accept_key(key.as_bytes()));
                if let Some(proto) = &accepted.protocol {
                    assert!(opts.subprotocols.contains(proto));
                    let mut offered = crate::proto::http::header_tokens(head.headers(), "sec-websocket-protocol");
                    assert!(offered.any(|t| t == proto), "selected what was offered");
                }
                // The server's 101, as net::http writes it, verified by our client.
                let mut r = Response::new(101)
                    .header("Upgrade", "websocket")
                    .header("Connection", "Upgrade")
                    .header("Sec-WebSocket-Accept", accepted.accept.clone());
                if let Some(proto) = &accepted.protocol {
                    r = r.header("Sec-WebSocket-Protocol", proto.clone());
                }
                let mut wire = BytesMut::new();
                let ctx = Context { version: Version::Http11, head_request: false, keep_alive: true, date: "x" };
                r.encode(&ctx, &mut wire);
                let answer = parse_response_head(&mut wire, 8192).expect("our 101 parses").expect("whole");
                let answer_headers: Vec<(&str, &[u8])> = answer.headers().collect();
                assert_eq!(client_verify(key, answer.status, &answer_headers), Ok(accepted.protocol.clone()));
            }
            Err(e) => assert!(matches!(e.status(), 400 | 403 | 426), "{e:?}"),
        }
    }
    // The client's side: whatever the response, Ok only with the right accept value.
    let nonce: [u8; 16] = std::array::from_fn(|i| body.get(i).copied().unwrap_or(i as u8));
    let key = crate::proto::ws::handshake::client_key(nonce);
    if let Ok(Some(answer)) = parse_response_head(&mut BytesMut::from(&body[a..]), 8192) {
        let headers: Vec<(&str, &[u8])> = answer.headers().collect();
        if client_verify(&key, answer.status, &headers).is_ok() {
            assert_eq!(answer.status, 101);
            assert_eq!(answer.header("sec-websocket-accept").map(trim), Some(accept_key(key.as_bytes()).as_bytes()));
        }
    }
    // Our client's request, with a host and path from the input, is accepted.
    let host = format!("h{}", token(&body[a..], b".:-"));
    let path = format!("/{}", token(&body[..a], b"/?=&"));
    let request = client_request(&host, &path, &key, &["superchat"]);
    let head = parse_head(&mut BytesMut::from(&request[..]), &limits).expect("ours parses").expect("whole");
    let headers: Vec<(&str, &[u8])> = head.headers().collect();
    let opts =
        HandshakeOptions { allowed_origins: vec![], subprotocols: opts.subprotocols, deflate: Default::default() };
    let accepted = server_accept(head.method(), &headers, &opts).map_err(|e: HandshakeError| e.reason());
    assert_eq!(
        accepted.map(|a| (a.accept, a.protocol)),
        Ok((accept_key(key.as_bytes()), opts.subprotocols.get(1).cloned()))
    );
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

// ---------------------------------------------------------------------------
// Server-Sent Events (proto::sse)
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct SseRun {
    events: Vec<sse::Event>,
    error: Option<sse::ParseError>,
    last_event_id: String,
    buffer: String,
    retry: Option<u64>,
    discarded: bool,
}

fn run_sse(max_line: usize, max_data: usize, pieces: &[&[u8]]) -> SseRun {
    let mut parser = sse::Parser::with_limits(max_line, max_data);
    let mut events = Vec::new();
    let mut error = None;
    for piece in pieces {
        parser.feed(piece);
        match drain_sse(&mut parser, &mut events) {
            Ok(()) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    if let Some(e) = error {
        // Refused stays refused: more bytes change nothing.
        parser.feed(b"data: more\n\n");
        assert_eq!(parser.next_event(), Err(e), "an error is sticky");
    }
    for e in &events {
        assert!(e.data.len() < max_data, "event data over its limit");
    }
    SseRun {
        events,
        error,
        last_event_id: parser.last_event_id().to_owned(),
        buffer: parser.last_event_id_buffer().to_owned(),
        retry: parser.retry(),
        discarded: parser.finish(),
    }
}

fn drain_sse(parser: &mut sse::Parser, events: &mut Vec<sse::Event>) -> Result<(), sse::ParseError> {
    while let Some(e) = parser.next_event()? {
        events.push(e);
    }
    Ok(())
}

/// The event-stream parser: split invariance (events, last event ID, retry, errors),
/// the line and data limits, the trace's line-by-line reading agreeing with it, and our
/// encoder's events parsing back (alone and inside chunks).
pub fn sse_parser(data: &[u8]) {
    let (p, body) = split_params(data);
    let max_line = 1 + p.limit as usize * 4;
    let max_data = max_line * (1 + (p.flags as usize & 7));
    let whole = run_sse(max_line, max_data, &[body]);
    let split = run_sse(max_line, max_data, &p.pieces(body));
    assert_eq!(split, whole, "split at {:?} reads differently", p.cuts(body.len()));
    if whole.error.is_none() {
        // The trace reads line by line: the same events.
        let mut parser = sse::Parser::with_limits(max_line, max_data);
        parser.feed(body);
        let mut events = Vec::new();
        while let Some(line) = parser.next_line().expect("no error whole") {
            events.extend(line.event);
        }
        assert_eq!(events, whole.events, "next_line and next_event agree");
    }
    sse_round_trip(&p, body);
}

/// `encode_event` then the parser: the data (CR and CRLF read as LF), the type, the id.
fn sse_round_trip(p: &Params, body: &[u8]) {
    let (a, _) = p.cuts(body.len());
    let name = String::from_utf8_lossy(&body[..a]);
    let text = String::from_utf8_lossy(&body[a..]);
    let id = p.flag(4).then_some(p.cut_a as u64 * 65_537 + p.cut_b as u64);
    let event = p.flag(5).then_some(&*name);
    let one = sse::encode_event_bytes(id, event, &text);
    let chunked = sse::encode_event_chunk(id, event, &text);
    let want_type = match event.map(|n| n.replace(['\r', '\n'], " ")) {
        Some(n) if !n.is_empty() => n,
        _ => "message".to_string(),
    };
    let want = sse::Event {
        event_type: want_type,
        data: text.replace("\r\n", "\n").replace('\r', "\n"),
        last_event_id: id.map(|i| i.to_string()).unwrap_or_default(),
    };
    let got = run_sse(sse::MAX_LINE, sse::MAX_DATA, &[&one]);
    assert_eq!(got.events, std::slice::from_ref(&want), "{:?}", String::from_utf8_lossy(&one));
    // Through the chunked framing, as a client reads an HTTP/1.1 event stream.
    let limits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 0 };
    let mut s = MessageStream::in_body(Role::Server, ResponseBody::Chunked, limits);
    let mut wire = BytesMut::from(&chunked[..]);
    wire.put_slice(LAST_CHUNK);
    let mut parser = sse::Parser::new();
    let mut events = Vec::new();
    while let Some(unit) = s.read(&mut wire).expect("our chunks") {
        if let HttpEvent::Data(_) = unit.event {
            parser.feed(&unit.bytes);
            drain_sse(&mut parser, &mut events).expect("within limits");
        }
    }
    assert_eq!(events, [want]);
}

// ---------------------------------------------------------------------------
// The hex reader of `decode` (trace::hexread)
// ---------------------------------------------------------------------------

/// Any text: read or refused with the line and column of the character at fault. And
/// the forms we print (the trace's rows, plain hex, escapes) read back exactly.
pub fn hexread(data: &[u8]) {
    let (p, body) = split_params(data);
    let text = String::from_utf8_lossy(body);
    match hexread::read(&text) {
        Ok(hex) => assert!(!hex.bytes.is_empty()),
        Err(hexread::HexError::BadChar { line, column, ch }) => {
            let at = text.lines().nth(line - 1).and_then(|l| l.chars().nth(column - 1));
            assert_eq!(at, Some(ch), "line {line} column {column} is the bad character");
        }
        Err(hexread::HexError::BadEscape { line, column }) => {
            let text = text.trim_end_matches(['\n', '\r']);
            let at = text.split('\n').nth(line - 1).map(|l| l.chars().skip(column - 1).take(2).collect::<String>());
            assert_eq!(at.as_deref(), Some("\\x"), "line {line} column {column} is the bad escape");
        }
        Err(hexread::HexError::OddDigits { line }) => assert!(line >= 1 && line <= text.lines().count().max(1)),
        Err(hexread::HexError::Empty) => {}
    }
    if body.is_empty() {
        return;
    }
    // The trace's rows, at an offset: bytes and offset come back.
    let offset = (p.cut_a as u64) << 16 | p.cut_b as u64;
    let mut rows = String::new();
    hexdump::rows(offset, body, &mut rows);
    let back = hexread::read(&rows).unwrap_or_else(|e| panic!("{e} in {rows}"));
    assert_eq!((back.bytes.as_slice(), back.offset), (body, offset));
    // Plain hex, as Wireshark's hex stream or spaced pairs.
    let sep = if p.flag(0) { " " } else { "" };
    let plain: Vec<String> = body.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hexread::read(&plain.join(sep)).map(|h| h.bytes).as_deref(), Ok(body));
    // Escapes: printable ASCII as itself, the rest as \xNN. The first byte always as
    // \xNN: a text whose line starts like a row (`00000010: ...`) is read as rows.
    let mut esc = String::new();
    for (i, &b) in body.iter().enumerate() {
        if i > 0 && (b.is_ascii_graphic() && b != b'\\' || b == b' ') {
            esc.push(b as char);
        } else {
            esc.push_str(&format!("\\x{b:02x}"));
        }
    }
    assert_eq!(hexread::read(&esc).map(|h| h.bytes).as_deref(), Ok(body), "{esc}");
}

// ---------------------------------------------------------------------------
// The trace's Conversation (trace::annotate)
// ---------------------------------------------------------------------------

/// What one direction of a conversation said.
#[derive(Debug, PartialEq, Eq)]
struct Said {
    /// The notes that name structure (heads, chunk lines, frames, event-stream lines),
    /// which a split must not change; refusals without their length (they cover what
    /// came so far).
    structure: Vec<(u64, u64, String)>,
    pending: Vec<u8>,
}

/// Notes about body bytes or bytes given up on: how many there are per note depends on
/// the reads.
fn is_data_note(text: &str) -> bool {
    ["http body", "chunk data", "event-stream body", "ws payload bytes", "sse stream refused", "http empty line"]
        .iter()
        .any(|p| text.starts_with(p))
        || text.contains(" bytes after ")
        || text.ends_with("that do not form an HTTP head")
}

/// Feeds the pieces of each direction (client first), checking that every byte fed is
/// named by a note or still pending, and that no note points past what was fed.
fn converse(start: Start, client: &[&[u8]], server: &[&[u8]]) -> (Said, Said) {
    let mut c = Conversation::starting(start);
    let said = |c: &mut Conversation, writer: Role, pieces: &[&[u8]]| {
        let mut fed = 0u64;
        let mut notes = Vec::new();
        for piece in pieces {
            fed += piece.len() as u64;
            notes.extend(c.bytes(writer, piece));
            check_coverage(&notes, fed, c.pending(writer).len() as u64);
        }
        let structure = notes
            .into_iter()
            .filter(|n: &Note| !is_data_note(&n.text))
            // A refusal covers what came so far; an event-stream line whose CRLF was cut
            // between reads covers only its CR (sse::StreamLine::terminator).
            .map(|n| match n.text.contains("refused") || n.text.starts_with("sse ") {
                true => (n.offset, 0, n.text),
                false => (n.offset, n.len, n.text),
            })
            .collect();
        Said { structure, pending: c.pending(writer).to_vec() }
    };
    let client = said(&mut c, Role::Client, client);
    let server = said(&mut c, Role::Server, server);
    (client, server)
}

/// Every byte before the pending ones is inside some note, and none past `fed`.
fn check_coverage(notes: &[Note], fed: u64, pending: u64) {
    let mut ranges: Vec<(u64, u64)> = notes.iter().map(|n| (n.offset, n.offset + n.len)).collect();
    for &(_, end) in &ranges {
        assert!(end <= fed, "a note past the bytes fed ({end} > {fed}): {notes:?}");
    }
    ranges.sort_unstable();
    let named = fed - pending;
    let mut covered = 0;
    for (start, end) in ranges {
        if start > covered {
            break;
        }
        covered = covered.max(end);
    }
    assert!(covered >= named, "bytes {covered}..{named} are named by no note: {notes:?}");
}

/// The trace's conversation, started where the flags say (a connection's start, a
/// chunked body, an event stream, WebSocket frames): every byte accounted for, and the
/// same structure named whether the bytes come whole or in pieces.
pub fn trace_conversation(data: &[u8]) {
    let (p, body) = split_params(data);
    let start = [Start::Http, Start::ChunkedBody, Start::EventStream, Start::WebSocket][p.flags as usize & 3];
    let (a, b) = p.cuts(body.len());
    let (client, server) = body.split_at(a);
    let b = (b - a).min(server.len());
    let whole = converse(start, &[client], &[server]);
    let ca = client.len() / 2;
    let split = converse(start, &[&client[..ca], &client[ca..]], &[&server[..b], &server[b..]]);
    assert_eq!(split, whole, "split reads differently");
    // Interleaved, as the tap sees reads and writes: coverage still holds.
    let mut c = Conversation::starting(start);
    let mut notes = (Vec::new(), Vec::new());
    notes.0.extend(c.bytes(Role::Client, &client[..ca]));
    notes.1.extend(c.bytes(Role::Server, &server[..b]));
    notes.0.extend(c.bytes(Role::Client, &client[ca..]));
    notes.1.extend(c.bytes(Role::Server, &server[b..]));
    check_coverage(&notes.0, client.len() as u64, c.pending(Role::Client).len() as u64);
    check_coverage(&notes.1, server.len() as u64, c.pending(Role::Server).len() as u64);
}

// ---------------------------------------------------------------------------
// RESP (proto::resp), what the broker reads from Redis
// ---------------------------------------------------------------------------

/// Values read off the front of the bytes fed so far, as the broker's reader takes them;
/// the error that stopped it; the bytes left.
fn read_resp(limits: &resp::Limits, pieces: &[&[u8]]) -> (Vec<resp::Value>, Option<resp::RespError>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut values = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match resp::parse(&buf, limits) {
                Ok(Some((v, n))) => {
                    assert!(n > 0 && n <= buf.len());
                    // A value is complete exactly at its last byte, and stands alone.
                    assert_eq!(resp::parse(&buf[..n - 1], limits), Ok(None), "complete before its end");
                    assert_eq!(resp::parse(&buf[..n], limits), Ok(Some((v.clone(), n))));
                    check_resp_limits(&v, limits, 0);
                    values.push(v);
                    buf.drain(..n);
                }
                Ok(None) => break,
                Err(e) => return (values, Some(e), Vec::new()),
            }
        }
    }
    (values, None, buf)
}

fn check_resp_limits(v: &resp::Value, limits: &resp::Limits, depth: usize) {
    match v {
        resp::Value::Bulk(b) => assert!(b.len() <= limits.max_bulk, "bulk over its limit"),
        resp::Value::Array(items) | resp::Value::Push(items) => {
            assert!(items.len() <= limits.max_array, "array over its limit");
            assert!(depth < limits.max_depth, "nested past the limit");
            items.iter().for_each(|i| check_resp_limits(i, limits, depth + 1));
        }
        _ => {}
    }
}

/// A value as `resp::encode` writes it (RESP2): what it reads back as.
fn resp2(v: &resp::Value) -> resp::Value {
    match v {
        resp::Value::Boolean(b) => resp::Value::Integer(*b as i64),
        resp::Value::Array(items) | resp::Value::Push(items) => resp::Value::Array(items.iter().map(resp2).collect()),
        other => other.clone(),
    }
}

/// The RESP reader with small limits: split invariance (values, error, leftover), every
/// value complete exactly at its end and within the limits, every value read written
/// back by `encode` and read again the same (in its RESP2 form), and a command our
/// `encode_command` writes read as the array of its arguments.
pub fn resp(data: &[u8]) {
    let (p, body) = split_params(data);
    let l = p.limit as usize;
    let limits = resp::Limits {
        max_bulk: 8 + 4 * l,
        max_array: 1 + l / 4,
        max_depth: 1 + (p.flags as usize & 7),
        max_line: 8 + 2 * l,
    };
    let whole = read_resp(&limits, &[body]);
    let split = read_resp(&limits, &p.pieces(body));
    assert_eq!(split, whole, "split at {:?} reads differently", p.cuts(body.len()));
    for v in &whole.0 {
        let mut out = BytesMut::new();
        resp::encode(v, &mut out);
        let big = resp::Limits::default();
        assert_eq!(resp::parse(&out, &big), Ok(Some((resp2(v), out.len()))), "encode then parse");
    }
    let (a, b) = p.cuts(body.len());
    let args = [&body[..a], &body[a..b], &body[b..]];
    let mut out = BytesMut::new();
    resp::encode_command(&args, &mut out);
    let want = resp::Value::Array(args.iter().map(|a| resp::Value::Bulk(bytes::Bytes::copy_from_slice(a))).collect());
    assert_eq!(resp::parse(&out, &resp::Limits::default()), Ok(Some((want, out.len()))), "a command reads back");
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

/// The hand-written seeds of each target's corpus: (target, name, input). Written to
/// `fuzz/corpus/TARGET/seed-NAME` by `UPDATE_CORPUS=1 cargo test --test fuzz_corpus`.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let get = b"GET /poll/lobby?after=3 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".to_vec();
    let chunked_post =
        b"\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"
            .to_vec();
    let upgrade = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    let smuggle = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let post = b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let responses = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close".to_vec();
    let no_body = b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n".to_vec();
    let switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi".to_vec();
    let sse_stream = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n13\r\nid: 3\ndata: hello\n\n\r\n0\r\n\r\n".to_vec();
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let at = |v: &[u8]| v.len() as u16;
    // RFC 6455 §5.7: masked "Hello" (to a server), fragmented unmasked, ping, pong.
    let masked_hello = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58".to_vec();
    let frags = b"\x01\x03Hel\x80\x02lo\x89\x05Hello".to_vec();
    let close = b"\x88\x82\x37\xfa\x21\x3d\x34\x12".to_vec();
    let sse_spec = b"\xEF\xBB\xBFdata: YHOO\ndata: +2\ndata: 10\n\n: comment\r\nevent: add\r\nid: 1\rdata\n\nretry: 1000\ndata:  x\n\n".to_vec();
    let xxd = "00000010: 4854 5450 2f31 2e31 0d0a 486f 7374 3a20  HTTP/1.1..Host: \n  00000010+4  note\n";
    let wireshark = "0000   81 05 48 65 6c 6c 6f                              ..Hello\n";
    vec![
        ("http_requests", "get", input(10, 30, 0, 255, &get)),
        ("http_requests", "chunked-post", input(3, 70, 0, 255, &chunked_post)),
        ("http_requests", "upgrade-then-frame", input(50, 120, 1, 255, &cat(&upgrade, b"\x81\x85frame"))),
        ("http_requests", "smuggling", input(20, 40, 0, 255, &smuggle)),
        ("http_requests", "h2-preface", input(5, 9, 0, 255, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")),
        ("http_requests", "pipelined", input(at(&post), at(&post) + 3, 2, 40, &cat(&post, &get))),
        ("http_responses", "continue-length-chunked-close", input(20, 90, 0, 255, &responses)),
        ("http_responses", "head-and-no-body", input(10, 40, 1, 255, &no_body)),
        ("http_responses", "switch", input(30, 100, 8, 255, &switch)),
        ("http_exchange", "post-and-responses", input(at(&post), at(&post) + 20, 0, 255, &cat(&post, &responses))),
        ("http_exchange", "upgrade-101", input(at(&upgrade), at(&upgrade) + 40, 0, 255, &cat(&upgrade, &switch))),
        (
            "http_exchange",
            "head",
            input(29, 60, 0, 255, b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        ),
        ("ws_session", "rfc-masked-hello", input(3, 7, 0, 255, &masked_hello)),
        ("ws_session", "rfc-fragments-ping", input(4, 9, 1, 255, &frags)),
        ("ws_session", "close-4660", input(2, 6, 0, 255, &close)),
        ("ws_session", "unmasked-to-server", input(1, 2, 0, 255, b"\x81\x05Hello")),
        ("ws_session", "text-fragments", input(2, 5, 8, 2, "héllo wörld".as_bytes())),
        ("ws_handshake", "rfc-request", input(at(&upgrade), 0, 3, 0, &cat(&upgrade, &switch))),
        ("ws_handshake", "client-request", input(4, 0, 0, 0, b"/echoHTTP/1.1 101 x\r\n\r\n")),
        ("sse_parser", "spec-examples", input(2, 40, 7, 255, &sse_spec)),
        ("sse_parser", "round-trip", input(3, 9, 0x30, 8, b"addline one\r\nline two\rthree\n")),
        ("sse_parser", "line-too-long", input(3, 9, 0, 1, b"data: far too long a line\n\n")),
        ("hexread", "xxd-trace", input(1, 2, 0, 0, xxd.as_bytes())),
        ("hexread", "wireshark-dump", input(1, 2, 1, 0, wireshark.as_bytes())),
        ("hexread", "escapes", input(0, 0, 0, 0, b"GET / HTTP/1.1\\r\\n\\x81\\x05Hello")),
        ("hexread", "bad-char", input(0, 0, 0, 0, b"81 05 4g")),
        (
            "trace_conversation",
            "http-sse",
            input(28, 50, 0, 0, &cat(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", &sse_stream)),
        ),
        (
            "trace_conversation",
            "upgrade",
            input(at(&upgrade), at(&upgrade) + 60, 0, 0, &cat(&cat(&upgrade, &masked_hello), &switch)),
        ),
        ("trace_conversation", "chunked-body", input(0, 9, 1, 0, b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n")),
        ("trace_conversation", "event-stream", input(0, 20, 2, 0, &sse_spec)),
        ("trace_conversation", "ws-frames", input(11, 20, 3, 0, &cat(&masked_hello, &frags))),
        // The spec's examples (redis.io "RESP protocol description") and a pub/sub message.
        ("resp", "spec-types", input(5, 20, 3, 40, b"+OK\r\n-ERR unknown command 'x'\r\n:1000\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n_\r\n#t\r\n")),
        ("resp", "nested", input(9, 30, 3, 40, b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n")),
        ("resp", "pubsub-message", input(12, 40, 2, 40, b"*3\r\n$7\r\nmessage\r\n$5\r\nlobby\r\n$11\r\n{\"id\":1,\"x\"}\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n")),
        ("resp", "too-deep", input(2, 4, 1, 40, b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")),
    ]
}

/// Runs `target`'s check on one input.
pub fn check(target: &str, data: &[u8]) {
    let (_, f) = TARGETS.iter().find(|(n, _)| *n == target).unwrap_or_else(|| panic!("no fuzz target {target}"));
    f(data)
}
