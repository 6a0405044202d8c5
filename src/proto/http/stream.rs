//! An HTTP/1.1 connection read as two streams of messages: where each message ends
//! (RFC 9112 §6.3), which request each response answers (§9.3.2), and when the bytes
//! stop being HTTP at all (RFC 9110 §7.8, `101 Switching Protocols`).
//!
//! Every part of the program that reads HTTP bytes steps this machine, so each rule is
//! written here once: the server driver (`net::http`, reading requests), the client
//! (`client::http`, reading responses), the proxy (`proxy.rs`, both directions) and the
//! trace (`trace::annotate`, both directions, and `decode http`). The model is h11's
//! `Connection`: one state per direction, a queue coupling them.
//!
//! A message is always the same sequence of [`Unit`]s: its head, its body's units
//! ([`Event::Data`] and, when chunked, [`Event::Chunk`] for the framing around the data),
//! then [`Event::End`]. Each call to [`MessageStream::read`] takes one whole unit off the
//! front of the buffer (split off, not copied) or says "need more" (`Ok(None)`), so a
//! proxy forwards exactly the bytes it read and the trace names each unit with its
//! byte range.
//!
//! The rules, with their sections:
//!
//! - A request's body is framed as its head says (chunked, or `Content-Length`; both is
//!   refused as smuggling: [`super::request`]), otherwise it has none (§6.3 rule 7).
//! - A response has no body when it answers HEAD, or is 1xx, 204 or 304 (§6.3 rules 1
//!   and 2); else chunked; else `Content-Length` (the same strict reading as requests,
//!   [`super::content_length`]); else it runs until the server closes (rule 8).
//! - An interim response (1xx other than 101) comes before the final response to the
//!   same request and does not answer it (RFC 9110 §15.2): `100 Continue` then `200`.
//! - Responses answer requests in order (§9.3.2), so whether a response may have a body
//!   depends on the request it answers: [`Exchange`] queues what each request [`Asked`].
//! - A request asking to upgrade (`Upgrade` with `Connection: upgrade`, RFC 9110 §7.8)
//!   is the last HTTP its client sends until the answer: what follows it is held unread
//!   ([`MessageStream::is_paused`]). A `101` switches both directions to the new
//!   protocol, and the bytes after it, even in the same read, are that protocol's
//!   ([`MessageStream::is_switched`]); any other final answer resumes HTTP.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{BodyKind, ChunkedDecoder, HeadLimits, HttpError, Piece, RequestHead, ResponseBody, ResponseHead};
use super::{parse_head, parse_response_head};
use crate::proto::Role;

/// What a request asked that decides how its response is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// A HEAD request: its response has headers but no body (RFC 9110 §9.3.2).
    pub head: bool,
    /// It asked to switch protocols (RFC 9110 §7.8).
    pub upgrade: bool,
}

impl RequestHead {
    /// What this request asked, for reading its response.
    pub fn asked(&self) -> Asked {
        Asked { head: self.method() == "HEAD", upgrade: self.asks_upgrade() }
    }
}

/// What one unit of the stream was.
#[derive(Debug)]
pub enum Event {
    /// Empty lines before a request line, ignored (RFC 9112 §2.2).
    EmptyLines,
    Request(RequestHead),
    /// A response head, interim (1xx) or final.
    Response(ResponseHead),
    /// Body bytes (the unit's bytes), and how the body they belong to is framed.
    Data(In),
    /// A piece of the chunked framing around the data: a size line, the CRLF after a
    /// chunk's data, a trailer line, the final CRLF ([`Piece::Data`] is never one).
    Chunk(Piece),
    /// The message is complete (no bytes).
    End,
}

/// How the body that data belongs to is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    /// `Content-Length`, with this many bytes still to come after these.
    Length { left: u64 },
    /// Chunk data (RFC 9112 §7.1).
    Chunk,
    /// A body that runs until the server closes (§6.3 rule 8).
    UntilClose,
}

/// One unit: the bytes it took off the buffer, and what they were.
#[derive(Debug)]
pub struct Unit {
    pub bytes: Bytes,
    pub event: Event,
}

/// Where a direction stands.
#[derive(Clone, Debug)]
enum State {
    /// Expecting a head.
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    /// The message's last unit went by: `End` is next, then `then`.
    Ending {
        then: After,
    },
    /// After a request that asked to upgrade, until its answer.
    Paused,
    /// After a `101`: the bytes are no longer HTTP.
    Switched,
}

/// What follows a message's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Head,
    Paused,
    Switched,
}

/// One direction of a connection: requests (`Role::Client`) or responses (`Role::Server`).
#[derive(Clone, Debug)]
pub struct MessageStream {
    side: Role,
    state: State,
    limits: HeadLimits,
    /// Responses only: what each request not yet answered asked, oldest first.
    asked: VecDeque<Asked>,
    /// What follows the message in progress.
    then: After,
}

impl MessageStream {
    /// Requests, as a server reads them, within `limits`.
    pub fn requests(limits: HeadLimits) -> Self {
        MessageStream { side: Role::Client, state: State::Head, limits, asked: VecDeque::new(), then: After::Head }
    }

    /// Responses, as a client reads them; heads up to `limits.max_header` bytes.
    pub fn responses(limits: HeadLimits) -> Self {
        MessageStream { side: Role::Server, state: State::Head, limits, asked: VecDeque::new(), then: After::Head }
    }

    /// A stream that starts inside a body framed as `framing`, with the head already
    /// gone by: for reading a body alone (`decode chunked`, `decode sse`).
    pub fn in_body(side: Role, framing: ResponseBody, limits: HeadLimits) -> Self {
        let state = match framing {
            ResponseBody::None | ResponseBody::Length(0) => State::Ending { then: After::Head },
            ResponseBody::Length(n) => State::Length(n),
            ResponseBody::Chunked => State::Chunked(ChunkedDecoder::new()),
            ResponseBody::UntilClose => State::UntilClose,
        };
        MessageStream { side, state, limits, asked: VecDeque::new(), then: After::Head }
    }

    pub fn side(&self) -> Role {
        self.side
    }

    /// Responses: a request went out asking `asked`; the next final response answers
    /// the oldest such request.
    pub fn expect(&mut self, asked: Asked) {
        self.asked.push_back(asked);
    }

    /// Requests: the final response to the request that asked to upgrade went out or
    /// came in. `101`: the connection has switched; anything else: HTTP goes on.
    pub fn answered(&mut self, status: u16) {
        let then = if status == 101 { After::Switched } else { After::Head };
        match &mut self.state {
            State::Paused => self.state = if then == After::Switched { State::Switched } else { State::Head },
            State::Ending { then: t } if *t == After::Paused => *t = then,
            _ if then == After::Switched => self.state = State::Switched,
            _ => {}
        }
    }

    /// Bytes are held until the answer to an upgrade request.
    pub fn is_paused(&self) -> bool {
        matches!(self.state, State::Paused)
    }

    /// The connection switched protocols: what follows is not HTTP.
    pub fn is_switched(&self) -> bool {
        matches!(self.state, State::Switched)
    }

    /// The body in progress runs until the server closes (RFC 9112 §6.3 rule 8): the
    /// close completes the message, and the connection cannot be reused.
    pub fn reads_until_close(&self) -> bool {
        matches!(self.state, State::UntilClose)
    }

    /// Between messages (nothing of a message read yet).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Takes the next whole unit off the front of `buf`. `Ok(None)`: nothing to take
    /// yet (a unit still arriving, a paused or switched stream, an empty buffer).
    /// After an error the stream's framing is lost: the caller stops reading HTTP.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Unit>, HttpError> {
        let unit = |bytes: Bytes, event| Ok(Some(Unit { bytes, event }));
        match &mut self.state {
            State::Ending { then } => {
                self.state = match then {
                    After::Head => State::Head,
                    After::Paused => State::Paused,
                    After::Switched => State::Switched,
                };
                unit(Bytes::new(), Event::End)
            }
            State::Paused | State::Switched => Ok(None),
            _ if buf.is_empty() => Ok(None),
            State::Head => match self.side {
                Role::Client => self.read_request_head(buf),
                Role::Server => self.read_response_head(buf),
            },
            State::Length(left) => {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                let left = *left;
                if left == 0 {
                    self.state = State::Ending { then: self.then };
                }
                unit(buf.split_to(n).freeze(), Event::Data(In::Length { left }))
            }
            State::Chunked(dec) => {
                // A size or trailer line still arriving is left in the buffer, so that
                // each unit comes out whole; the decoder steps it again, bounded by
                // MAX_CHUNK_LINE and MAX_TRAILER, once more bytes are there.
                let before = dec.clone();
                let (n, piece) = dec.step(buf)?;
                let event = match piece {
                    Piece::Partial => {
                        *dec = before;
                        return Ok(None);
                    }
                    Piece::Data => Event::Data(In::Chunk),
                    Piece::End => {
                        self.state = State::Ending { then: self.then };
                        Event::Chunk(piece)
                    }
                    _ => Event::Chunk(piece),
                };
                unit(buf.split_to(n).freeze(), event)
            }
            State::UntilClose => unit(buf.split().freeze(), Event::Data(In::UntilClose)),
        }
    }

    fn read_request_head(&mut self, buf: &mut BytesMut) -> Result<Option<Unit>, HttpError> {
        // RFC 9112 §2.2: empty lines before a request line are ignored; taken as a unit
        // of their own, so that a client sending only CRLFs cannot grow the buffer.
        let empty = buf.chunks(2).take_while(|pair| *pair == b"\r\n").count() * 2;
        if empty > 0 {
            return Ok(Some(Unit { bytes: buf.split_to(empty).freeze(), event: Event::EmptyLines }));
        }
        let Some(head) = parse_head(buf, &self.limits)? else { return Ok(None) };
        // An upgrade request with a body pauses after the body.
        self.then = if head.asks_upgrade() { After::Paused } else { After::Head };
        self.state = match head.body {
            BodyKind::None | BodyKind::Length(0) => State::Ending { then: self.then },
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Chunked(ChunkedDecoder::new()),
        };
        Ok(Some(Unit { bytes: head.raw().clone(), event: Event::Request(head) }))
    }

    fn read_response_head(&mut self, buf: &mut BytesMut) -> Result<Option<Unit>, HttpError> {
        let Some(head) = parse_response_head(buf, self.limits.max_header)? else { return Ok(None) };
        self.then = After::Head;
        self.state = if head.status < 200 && head.status != 101 {
            // Interim: the final response to the same request is still to come.
            State::Ending { then: After::Head }
        } else {
            let asked = self.asked.pop_front().unwrap_or_default();
            if head.status == 101 {
                State::Ending { then: After::Switched }
            } else {
                match head.body(asked.head)? {
                    ResponseBody::None | ResponseBody::Length(0) => State::Ending { then: self.then },
                    ResponseBody::Length(n) => State::Length(n),
                    ResponseBody::Chunked => State::Chunked(ChunkedDecoder::new()),
                    ResponseBody::UntilClose => State::UntilClose,
                }
            }
        };
        Ok(Some(Unit { bytes: head.raw().clone(), event: Event::Response(head) }))
    }
}

/// Both directions of one connection, coupled where HTTP couples them: each request
/// tells the response stream what it asked, and each final response tells the request
/// stream whether an upgrade it held for happened. For readers of both directions: the
/// proxy and the trace.
#[derive(Clone, Debug)]
pub struct Exchange {
    requests: MessageStream,
    responses: MessageStream,
}

impl Exchange {
    pub fn new(limits: HeadLimits) -> Self {
        Exchange { requests: MessageStream::requests(limits), responses: MessageStream::responses(limits) }
    }

    /// An exchange whose `writer` direction starts inside a body (see
    /// [`MessageStream::in_body`]).
    pub fn in_body(writer: Role, framing: ResponseBody, limits: HeadLimits) -> Self {
        let mut ex = Exchange::new(limits);
        *ex.stream_mut(writer) = MessageStream::in_body(writer, framing, limits);
        ex
    }

    /// Takes the next unit of what `side`'s end wrote off the front of `buf`.
    pub fn read(&mut self, side: Role, buf: &mut BytesMut) -> Result<Option<Unit>, HttpError> {
        let unit = self.stream_mut(side).read(buf)?;
        match unit.as_ref().map(|u| &u.event) {
            Some(Event::Request(head)) => self.responses.expect(head.asked()),
            // A final answer to the request the client stream paused after: it is the
            // last one queued (nothing after it was read).
            Some(Event::Response(head))
                if head.status == 101 || (head.status >= 200 && self.responses.asked.is_empty()) =>
            {
                self.requests.answered(head.status)
            }
            _ => {}
        }
        Ok(unit)
    }

    pub fn stream(&self, side: Role) -> &MessageStream {
        match side {
            Role::Client => &self.requests,
            Role::Server => &self.responses,
        }
    }

    /// One direction, to step it by hand (the fuzz checks answer an upgrade or queue
    /// what requests asked without reading them).
    pub(crate) fn stream_mut(&mut self, side: Role) -> &mut MessageStream {
        match side {
            Role::Client => &mut self.requests,
            Role::Server => &mut self.responses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 1 << 20 };

    /// (event name, the unit's text) of each unit.
    type Units = Vec<(String, String)>;

    /// Every unit of `bytes` as (event name, the unit's text), fed `split` bytes at a time.
    fn units(ex: &mut Exchange, side: Role, bytes: &[u8], split: usize) -> Units {
        let mut out: Units = Vec::new();
        let mut buf = BytesMut::new();
        for piece in bytes.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(u) = ex.read(side, &mut buf).unwrap() {
                let name = match &u.event {
                    Event::EmptyLines => "empty".to_string(),
                    Event::Request(h) => format!("request {}", h.method()),
                    Event::Response(h) => format!("response {}", h.status),
                    Event::Data(_) => "data".to_string(),
                    Event::Chunk(p) => format!("{p:?}"),
                    Event::End => "end".to_string(),
                };
                // Data (or empty lines) arriving in pieces is a unit per piece: join them.
                match out.last_mut() {
                    Some((last, text)) if *last == name && (name == "data" || name == "empty") => {
                        text.push_str(&String::from_utf8_lossy(&u.bytes));
                    }
                    _ => out.push((name, String::from_utf8_lossy(&u.bytes).into_owned())),
                }
            }
        }
        out
    }

    fn names(u: &[(String, String)]) -> Vec<&str> {
        u.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The same units whatever the reads' sizes.
    fn every_split(requests: &[u8], responses: &[u8]) -> (Units, Units) {
        let whole = {
            let mut ex = Exchange::new(LIMITS);
            (
                units(&mut ex, Role::Client, requests, requests.len()),
                units(&mut ex, Role::Server, responses, responses.len()),
            )
        };
        for split in 1..8 {
            let mut ex = Exchange::new(LIMITS);
            let r = units(&mut ex, Role::Client, requests, split);
            let s = units(&mut ex, Role::Server, responses, split);
            assert_eq!((r, s), whole, "split every {split} bytes");
        }
        whole
    }

    #[test]
    fn head_response_with_content_length_has_no_body() {
        let (_, resp) = every_split(
            b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!(names(&resp), ["response 200", "end", "response 200", "data", "end"]);
        assert_eq!(resp[3].1, "hi");
    }

    #[test]
    fn continue_then_200_answers_one_request() {
        let (_, resp) = every_split(
            b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert_eq!(names(&resp), ["response 100", "end", "response 200", "data", "end"]);
    }

    #[test]
    fn no_content_and_not_modified_have_no_body_whatever_they_say() {
        let (_, resp) = every_split(
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n",
        );
        assert_eq!(names(&resp), ["response 204", "end", "response 304", "end"]);
    }

    #[test]
    fn bytes_after_a_101_are_the_new_protocol_in_both_directions() {
        let mut ex = Exchange::new(LIMITS);
        let mut req = BytesMut::from(
            &b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85frame"[..],
        );
        assert!(matches!(ex.read(Role::Client, &mut req).unwrap().unwrap().event, Event::Request(_)));
        assert!(matches!(ex.read(Role::Client, &mut req).unwrap().unwrap().event, Event::End));
        assert!(ex.read(Role::Client, &mut req).unwrap().is_none(), "held until the answer");
        assert!(ex.stream(Role::Client).is_paused());
        let mut resp = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"[..]);
        assert!(matches!(ex.read(Role::Server, &mut resp).unwrap().unwrap().event, Event::Response(_)));
        assert!(matches!(ex.read(Role::Server, &mut resp).unwrap().unwrap().event, Event::End));
        assert!(ex.read(Role::Server, &mut resp).unwrap().is_none());
        assert!(ex.stream(Role::Server).is_switched() && ex.stream(Role::Client).is_switched());
        assert_eq!(&resp[..], b"\x81\x02hi", "the frame in the same read stays for its reader");
        assert_eq!(&req[..], b"\x81\x85frame");
    }

    #[test]
    fn a_refused_upgrade_resumes_http() {
        let (req, resp) = every_split(
            b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno",
        );
        assert_eq!(names(&req), ["request GET", "end"]);
        assert_eq!(names(&resp), ["response 400", "data", "end"]);
        let mut ex = Exchange::new(LIMITS);
        units(&mut ex, Role::Client, b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 99);
        assert!(ex.stream(Role::Client).is_paused());
        units(&mut ex, Role::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 99);
        assert!(ex.stream(Role::Client).is_idle(), "HTTP goes on after a 200");
        let next = units(&mut ex, Role::Client, b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n", 99);
        assert_eq!(names(&next), ["request GET", "end"]);
    }

    #[test]
    fn a_response_without_length_runs_until_close() {
        let (_, resp) = every_split(b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nall of this, and more");
        assert_eq!(names(&resp), ["response 200", "data"]);
        assert_eq!(resp[1].1, "all of this, and more");
    }

    #[test]
    fn chunked_units_come_out_whole() {
        let (req, resp) = every_split(
            b"\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        );
        assert_eq!(
            req,
            [
                ("empty", "\r\n\r\n"),
                ("request POST", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
                ("SizeLine { size: 5 }", "5;x=y\r\n"),
                ("data", "hello"),
                ("DataEnd", "\r\n"),
                ("SizeLine { size: 0 }", "0\r\n"),
                ("Trailer", "T: 1\r\n"),
                ("End", "\r\n"),
                ("end", ""),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(
            names(&resp),
            ["response 200", "SizeLine { size: 2 }", "data", "DataEnd", "SizeLine { size: 0 }", "End", "end"]
        );
    }

    #[test]
    fn a_response_content_length_is_read_strictly() {
        let mut ex = Exchange::new(LIMITS);
        units(&mut ex, Role::Client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 99);
        let mut resp = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"[..]);
        assert!(ex.read(Role::Server, &mut resp).is_err());
    }
}
