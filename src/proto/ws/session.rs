//! The message-level state machine, RFC 6455 §5.4 (fragmentation), §5.5
//! (control frames), §5.6 (data frames) and §7 (closing the connection).
//!
//! A [`Session`] is one side of one WebSocket connection after the opening
//! handshake. It never touches a socket, a clock or a random number
//! generator (sans-I/O, in the style of Python's wsproto):
//!
//! ```text
//!   bytes read ──► receive_data / read_buf ──► next_event() ──► Event ──► app
//!   app ──► send_text / send_binary / send_ping / close ─┐
//!   protocol's own replies (pong, close echo) ───────────┴──► take_outgoing() ──► bytes to write
//! ```
//!
//! Inside, `next_event` works in three stages per frame:
//!
//! 1. **header**: parse it (`frame.rs`) and check it against the role and the
//!    state (masking, RSV bits, opcodes, control frame rules, fragmentation
//!    order, size limits). A bad header fails the connection before a single
//!    payload byte is waited for.
//! 2. **payload as it arrives**: unmask the bytes that have arrived so far,
//!    in place, and if they belong to a text message feed them to the UTF-8
//!    validator. Invalid text is therefore rejected the moment the offending
//!    byte arrives, even in the middle of a frame (Autobahn 6.4.x: "fail
//!    fast"), and the unmasking work is spread over the reads while the
//!    bytes are still in cache.
//! 3. **complete frame**: split the payload off the read buffer (no copy),
//!    then act on it: a control frame is answered and reported at once; a
//!    data frame is either a whole message, or a fragment appended to the
//!    message being reassembled.
//!
//! Frames are processed one `next_event` call at a time, so events come out
//! in wire order and the caller's reaction to one event (an echo, say) is
//! queued before anything the protocol queues for a later frame (such as the
//! close frame of a protocol error).
//!
//! With permessage-deflate (RFC 7692, [`Session::with_deflate`]), a message whose
//! first frame has RSV1 is inflated in stage 2 as its bytes arrive, into a buffer
//! capped at `max_message` (so a compression bomb costs at most that), and its text is
//! validated as it inflates; text and binary messages sent are compressed (`deflate.rs`).
//!
//! Violations end the connection with a close frame whose code says why
//! (§7.4.1): 1002 "protocol error", 1007 "data inconsistent with the message
//! type" (bad UTF-8), 1009 "message too big". See [`Violation`].

use std::collections::VecDeque;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::{DeflateParams, Deflater, InflateError, Inflater};
use super::frame::{
    CloseBodyError, FrameError, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, close_code_is_valid,
    encode_frame, parse_close_body,
};
use super::mask::apply_mask;
use super::utf8::{Utf8Bytes, Utf8Validator};

/// Default limit on a whole message (the sum of its fragments): 1 MiB, the
/// same as the server's `--max-message`. The RFC sets no limit; §10.4 asks
/// implementations to impose one.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// Default limit on a single frame's payload.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// §5.5.1: a close body is a 2-byte code plus a reason, inside the 125 bytes
/// every control frame is limited to, so a reason has at most 123 bytes.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Reads are at least this big: room for many small frames per syscall.
const READ_CHUNK: usize = 4 * 1024;

/// Room left in the read buffer below which it is made room in again before a read
/// (after frames were cut from its front, usually by reclaiming that front: no
/// allocation). Above it, the read goes into what is left, so a stream of small frames
/// reclaims once per few dozen frames, not once per frame.
const READ_MIN_SPARE: usize = 1024;

/// While a large frame is arriving, reserve up to this much of what is still
/// missing, so it lands in few reads without committing `max_frame` bytes of
/// memory on the peer's word alone.
const READ_AHEAD_MAX: usize = 64 * 1024;

/// Outgoing payloads up to this size are copied next to their header in one
/// shared buffer, so a burst of small frames becomes one write. Larger
/// payloads (server side only; a client has to copy in order to mask) are
/// queued as their own `Bytes`, without a copy, for a vectored write.
const COALESCE_MAX: usize = 1024;

/// Which end of the connection this session is. The difference is masking:
/// §5.1 "a client MUST mask all frames that it sends to the server" and "A
/// server MUST NOT mask any frames that it sends to the client."
pub use crate::proto::Role;

/// Size limits, checked as soon as a frame header announces a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest message (sum of all its fragments' payloads), in bytes.
    pub max_message: usize,
    /// Largest single frame payload, in bytes.
    pub max_frame: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { max_message: DEFAULT_MAX_MESSAGE, max_frame: DEFAULT_MAX_FRAME }
    }
}

/// Where the closing handshake stands (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Messages flow both ways.
    Open,
    /// We queued a Close frame (the application called `close`) and wait for
    /// the peer's. Incoming data frames are dropped; only its Close matters.
    CloseSent,
    /// The peer's Close arrived and our reply is queued but not yet taken
    /// with [`Session::take_outgoing`]. Nothing more is read.
    CloseReceived,
    /// Nothing more will be read or queued: either both Close frames have
    /// crossed, or the connection failed (see [`Session::failure`]). Write
    /// whatever `take_outgoing` still returns, then close TCP (§5.5.1: "The
    /// server MUST close the underlying TCP connection immediately; the
    /// client SHOULD wait for the server to close the connection").
    Closed,
}

/// What `next_event` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, already checked to be UTF-8.
    Text(Utf8Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A Ping arrived; the matching Pong is already queued.
    Ping(Bytes),
    /// A Pong arrived (an answer to our ping, or a heartbeat).
    Pong(Bytes),
    /// The peer's Close frame. `code` is `None` if it had no body. If we had
    /// not closed first, our reply is already queued.
    Close { code: Option<u16>, reason: String },
    /// The peer broke the protocol. A Close frame with `code` and `reason`
    /// is queued (unless we had already sent one) and the session reads
    /// nothing more: §7.1.7 "An endpoint MUST NOT continue to attempt to
    /// process data (including a responding Close frame) from the remote
    /// endpoint after being instructed to _Fail the WebSocket Connection_."
    ProtocolError { code: u16, reason: &'static str },
}

/// Everything that fails the connection, with its close code (§7.4.1):
///
/// * 1002: "an endpoint is terminating the connection due to a protocol error."
/// * 1007: "an endpoint is terminating the connection because it has received
///   data within a message that was not consistent with the type of the
///   message (e.g., non-UTF-8 \[RFC3629\] data within a text message)."
/// * 1009: "an endpoint is terminating the connection because it has received
///   a message that is too big for it to process."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A server received an unmasked frame.
    UnmaskedFrame,
    /// A client received a masked frame.
    MaskedFrame,
    /// RSV1, RSV2 or RSV3 set, and no extension was negotiated.
    ReservedBits,
    /// Opcode 0x3-0x7 or 0xB-0xF.
    ReservedOpcode,
    /// A control frame with FIN=0.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is unfinished.
    ExpectedContinuation,
    /// A 64-bit length with its most significant bit set.
    LengthMsbSet,
    /// A Close body of exactly one byte.
    CloseBodyOneByte,
    /// A Close code that may not be sent.
    InvalidCloseCode,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// A Close reason that is not UTF-8.
    InvalidCloseReason,
    /// A frame whose payload exceeds `max_frame`.
    FrameTooBig,
    /// A message whose fragments add up to more than `max_message`, or
    /// whose compressed payload inflates past it.
    MessageTooBig,
    /// RSV1 on a control frame or a continuation frame while
    /// permessage-deflate is on (RFC 7692 §6.1: only a message's first frame
    /// says whether it is compressed).
    MisplacedRsv1,
    /// A compressed message that is not valid DEFLATE data (RFC 7692 §7.2.2).
    BadDeflateData,
}

impl Violation {
    /// The close code sent for this violation.
    pub fn code(self) -> u16 {
        match self {
            Violation::InvalidUtf8 | Violation::InvalidCloseReason | Violation::BadDeflateData => 1007,
            Violation::FrameTooBig | Violation::MessageTooBig => 1009,
            _ => 1002,
        }
    }

    /// The close reason sent for this violation (well under 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            Violation::UnmaskedFrame => "client frames must be masked",
            Violation::MaskedFrame => "server frames must not be masked",
            Violation::ReservedBits => "reserved bits set without an extension",
            Violation::ReservedOpcode => "reserved opcode",
            Violation::FragmentedControl => "fragmented control frame",
            Violation::ControlTooLong => "control frame payload over 125 bytes",
            Violation::UnexpectedContinuation => "continuation frame without a message to continue",
            Violation::ExpectedContinuation => "new message before the previous one finished",
            Violation::LengthMsbSet => "64-bit payload length has its top bit set",
            Violation::CloseBodyOneByte => "close frame body of 1 byte",
            Violation::InvalidCloseCode => "invalid close code",
            Violation::InvalidUtf8 => "invalid UTF-8 in text message",
            Violation::InvalidCloseReason => "invalid UTF-8 in close reason",
            Violation::FrameTooBig => "frame too big",
            Violation::MessageTooBig => "message too big",
            Violation::MisplacedRsv1 => "RSV1 set on a control or continuation frame",
            Violation::BadDeflateData => "compressed message is not valid DEFLATE data",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.code())
    }
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The session is not [`CloseState::Open`]. §5.5.1: "The application
    /// MUST NOT send any more data frames after sending a Close frame."
    Closed,
    /// A ping or pong payload over 125 bytes (§5.5).
    ControlTooLong,
    /// A close code that may not be sent (see `close_code_is_valid`).
    InvalidCloseCode(u16),
    /// `send_encoded` on a client: pre-encoded frames are unmasked, and a
    /// client must mask.
    NotServer,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closing or closed"),
            SendError::ControlTooLong => f.write_str("control frame payload over 125 bytes"),
            SendError::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            SendError::NotServer => f.write_str("pre-encoded frames are for servers only"),
        }
    }
}

impl std::error::Error for SendError {}

/// The frame whose header has been read and whose payload is arriving. Its
/// payload, as far as it has arrived, sits at the front of `read_buf`.
#[derive(Debug)]
struct IncomingFrame {
    header: FrameHeader,
    /// Payload length (checked against the limits, so it fits in usize).
    len: usize,
    /// Payload bytes at the front of `read_buf` already unmasked (and, for
    /// text, validated). Also the mask offset of the next byte.
    done: usize,
    /// The payload belongs to a text message: validate it as it arrives.
    text: bool,
    /// The payload belongs to a compressed message: inflate it as it
    /// arrives (and validate what comes out, if text).
    compressed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Text,
    Binary,
}

/// A fragmented message being reassembled (§5.4), or a compressed one
/// being inflated (RFC 7692 §7.2.2).
#[derive(Debug)]
struct PartialMessage {
    kind: MessageKind,
    /// The payloads of the fragments completed so far.
    data: BytesMut,
    /// RSV1 was set on its first frame: `inflated` holds the message.
    compressed: bool,
    /// What the compressed payload has inflated to so far.
    inflated: Vec<u8>,
}

impl PartialMessage {
    fn new(kind: MessageKind, compressed: bool) -> PartialMessage {
        PartialMessage { kind, data: BytesMut::new(), compressed, inflated: Vec::new() }
    }
}

/// permessage-deflate on one connection (RFC 7692). Both halves are made the
/// first time they are needed: a connection that never sends (or never
/// receives) a compressed message holds no compressor (or inflater).
#[derive(Debug)]
struct DeflateState {
    params: DeflateParams,
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
    /// Bytes inflated by inflaters dropped so far (see `inflated_bytes`).
    inflated_before: u64,
}

/// Supplies masking keys for a client. §5.3: "the masking key MUST be
/// derived from a strong source of entropy", which is the caller's business:
/// the codec stays deterministic and testable.
type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// One side of a WebSocket connection, after the handshake.
pub struct Session {
    role: Role,
    limits: SessionLimits,
    /// Client only: where masking keys come from.
    mask_source: Option<MaskSource>,

    /// Bytes read from the peer and not yet consumed.
    read_buf: BytesMut,
    /// The frame being received, once its header has been read.
    frame: Option<IncomingFrame>,
    /// The payload length of the last frame read (at most `READ_AHEAD_MAX`), while
    /// frames flow; 0 once the idle buffers were let go of. Between frames the next one
    /// is expected to be like it: `read_buf` has room for it, so a peer that sends
    /// 16 KiB messages has each read in one piece, straight into this buffer.
    recent_frame: u32,
    /// The fragmented message being reassembled, from its first frame's
    /// header until its final fragment.
    message: Option<PartialMessage>,
    /// Validates the current text message across frames and reads.
    utf8: Utf8Validator,

    state: CloseState,
    failure: Option<Violation>,

    /// permessage-deflate, if negotiated (boxed: a session without it, the common
    /// case, stays small).
    deflate: Option<Box<DeflateState>>,

    /// Outgoing bytes: `out_chunks` first, then `out_tail`, which collects
    /// small frames so that they go out together.
    out_chunks: VecDeque<Bytes>,
    out_tail: Tail,
    out_len: usize,
}

/// The small-frame output buffer: frames are appended at the back and written from
/// `head`; once all of it is written it starts again at the front of the same
/// allocation. (A `BytesMut` advanced to its end gives back its room only through
/// `reserve`'s reclaiming path, which cost more than the rest of queuing a small echo.)
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    /// Where the bytes not yet written start.
    head: usize,
}

impl Tail {
    fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    /// The bytes not yet written.
    fn unwritten(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// `n` of them were written.
    fn consume(&mut self, n: usize) {
        self.head += n;
        debug_assert!(self.head <= self.buf.len());
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        }
    }

    /// The bytes not yet written, as a chunk of their own (left empty). Without a copy
    /// when nothing of them was written yet, which is the usual case.
    fn take(&mut self) -> Bytes {
        let taken = if self.head == 0 {
            Bytes::from(std::mem::take(&mut self.buf))
        } else {
            let rest = Bytes::copy_from_slice(self.unwritten());
            self.buf.clear();
            rest
        };
        self.head = 0;
        taken
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("failure", &self.failure)
            .field("buffered_in", &self.read_buf.len())
            .field("frame", &self.frame)
            .field("message", &self.message)
            .field("buffered_out", &self.out_len)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A server-side session: incoming frames must be masked, outgoing
    /// frames are not.
    pub fn server(limits: SessionLimits) -> Session {
        Session::new(Role::Server, limits, None)
    }

    /// A client-side session: incoming frames must not be masked; every
    /// outgoing frame is masked with a fresh key from `mask_source` (give it
    /// a closure over a CSPRNG; tests give it a constant).
    pub fn client(limits: SessionLimits, mask_source: impl FnMut() -> [u8; 4] + Send + 'static) -> Session {
        Session::new(Role::Client, limits, Some(Box::new(mask_source)))
    }

    fn new(role: Role, limits: SessionLimits, mask_source: Option<MaskSource>) -> Session {
        Session {
            role,
            limits,
            mask_source,
            // No memory until bytes arrive (`read_buf`, `receive_data`).
            read_buf: BytesMut::new(),
            frame: None,
            recent_frame: 0,
            message: None,
            utf8: Utf8Validator::new(),
            state: CloseState::Open,
            failure: None,
            deflate: None,
            out_chunks: VecDeque::new(),
            out_tail: Tail::default(),
            out_len: 0,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Turn on permessage-deflate with the parameters the handshake agreed on
    /// (`deflate::server_negotiate`, `deflate::client_check_response`): RSV1
    /// frames are then inflated, and text and binary messages sent are
    /// compressed.
    pub fn with_deflate(mut self, params: DeflateParams) -> Session {
        self.deflate = Some(Box::new(DeflateState { params, deflater: None, inflater: None, inflated_before: 0 }));
        self
    }

    /// The permessage-deflate parameters in force, if any.
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.deflate.as_ref().map(|d| d.params)
    }

    /// Bytes inflated from compressed messages over the session's life: the
    /// work a compression bomb got out of it.
    pub fn inflated_bytes(&self) -> u64 {
        self.deflate.as_ref().map_or(0, |d| d.inflated_before + d.inflater.as_ref().map_or(0, |i| i.inflated()))
    }

    pub fn state(&self) -> CloseState {
        self.state
    }

    /// The closing handshake is over (or the connection failed): flush
    /// `take_outgoing`, then close TCP.
    pub fn is_closed(&self) -> bool {
        self.state == CloseState::Closed
    }

    /// Why the connection failed, if it did.
    pub fn failure(&self) -> Option<Violation> {
        self.failure
    }

    // ------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------

    /// Append bytes from the peer (e.g. the leftovers after the handshake).
    /// Prefer [`read_buf`](Self::read_buf) for socket reads: it avoids this
    /// copy.
    pub fn receive_data(&mut self, data: &[u8]) {
        if self.is_reading() && !data.is_empty() {
            // Room for what follows too (at least `READ_CHUNK`): while messages flow, the
            // next reads go straight in ([`wants_read_buf`](Self::wants_read_buf)) and
            // frames are cut from one allocation, not one each.
            self.read_buf.reserve(data.len().max(READ_CHUNK));
            self.read_buf.extend_from_slice(data);
        }
    }

    /// The buffer to read from the socket into (e.g. tokio's
    /// `AsyncReadExt::read_buf`), with spare capacity reserved: room for the
    /// frame arriving (up to 64 KiB of it) or for one like the last, plus the
    /// next header so it tends to arrive in the same read, and at least 1 KiB
    /// (4 KiB whenever room has to be made). Only
    /// append to it; then call `next_event` until it returns `None`.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        let missing = match &self.frame {
            Some(f) => f.len.saturating_sub(self.read_buf.len()),
            // Between frames: room for one like the last, so it arrives in one read.
            None => self.recent_frame as usize,
        };
        // Enough for the frame (or the one expected), header included, is what a read
        // needs; when there is less, or little, room, a READ_CHUNK at least is made.
        let need = missing.min(READ_AHEAD_MAX) + MAX_HEADER_LEN;
        if self.read_buf.capacity() - self.read_buf.len() < need.max(READ_MIN_SPARE) {
            self.read_buf.reserve(need.max(READ_CHUNK));
        }
        &mut self.read_buf
    }

    /// Whether [`read_buf`](Self::read_buf) has room already, is in the middle of a
    /// frame, or frames have been flowing since the idle buffers were last let go of:
    /// read straight into it then (a copy less per read). Otherwise the connection is
    /// idle, and a driver that keeps idle connections small reads elsewhere (a scratch
    /// buffer it shares) and hands the bytes to [`receive_data`](Self::receive_data).
    pub fn wants_read_buf(&self) -> bool {
        self.read_buf.capacity() > self.read_buf.len()
            || self.frame.is_some()
            || !self.read_buf.is_empty()
            || self.recent_frame > 0
    }

    /// Lets go of the input buffer and of the small-frame output buffer when they hold
    /// nothing: an idle connection then costs no buffer memory. The next bytes in
    /// or out allocate again. A driver calls it when the connection has been quiet.
    pub fn release_idle_buffers(&mut self) {
        if self.read_buf.is_empty() && self.frame.is_none() {
            self.read_buf = BytesMut::new();
            self.recent_frame = 0;
        }
        if self.out_tail.is_empty() {
            self.out_tail = Tail::default();
        }
    }

    /// Bytes of incoming messages held now: a frame arriving over several reads (in the
    /// read buffer), the fragments of a message being reassembled, and what a compressed
    /// one has inflated to so far. After `next_event` has returned `None` between messages
    /// it is 0 (or the few bytes of a header split across reads). A server counts it
    /// against its memory for messages in progress, since one message may hold up to
    /// `max_message` while it arrives, for as long as the peer takes to send it.
    pub fn incoming_held(&self) -> usize {
        self.read_buf.len() + self.message.as_ref().map_or(0, |m| m.data.len() + m.inflated.len())
    }

    fn is_reading(&self) -> bool {
        matches!(self.state, CloseState::Open | CloseState::CloseSent)
    }

    /// The next thing that happened, or `None` if more bytes are needed (or
    /// the session reads nothing more; check [`state`](Self::state)). Call
    /// it in a loop after every read until it returns `None`, and write
    /// [`take_outgoing`](Self::take_outgoing) afterwards.
    #[inline]
    pub fn next_event(&mut self) -> Option<Event> {
        // The usual last call after a read: between frames, not even a header's first
        // two bytes are in. Answered here, inline, without entering the parser below.
        if self.frame.is_none() && self.read_buf.len() < 2 && self.is_reading() {
            return None;
        }
        self.parse_next_event()
    }

    fn parse_next_event(&mut self) -> Option<Event> {
        loop {
            if !self.is_reading() {
                // §1.4: "after receiving a control frame indicating the
                // connection should be closed, a peer discards any further
                // data received."
                self.read_buf.clear();
                return None;
            }

            // Stage 1: the header, unless it was read before the payload's end arrived.
            // The frame is kept in `self.frame` only while it waits for more bytes.
            let mut frame = match self.frame.take() {
                Some(frame) => frame,
                None => {
                    let (header, header_len) = match FrameHeader::parse(&self.read_buf) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => return None,
                        Err(FrameError::LengthMsbSet) => {
                            return Some(self.fail(Violation::LengthMsbSet));
                        }
                    };
                    self.read_buf.advance(header_len);
                    match self.check_header(&header) {
                        Ok(frame) => frame,
                        Err(v) => return Some(self.fail(v)),
                    }
                }
            };

            // Stage 2: unmask and validate whatever part of the payload has
            // arrived, without waiting for the rest.
            let arrived = self.read_buf.len().min(frame.len);
            if arrived > frame.done {
                let new = &mut self.read_buf[frame.done..arrived];
                if let Some(key) = frame.header.mask {
                    apply_mask(new, key, frame.done);
                }
                if frame.compressed {
                    // RFC 7692 §7.2.2: inflate as the bytes arrive, against
                    // the message limit, so a bomb stops at the limit.
                    let message = self.message.as_mut().expect("a compressed frame has its message");
                    let deflate = self.deflate.as_mut().expect("RSV1 accepted only with deflate");
                    let inflater = deflate.inflater.as_mut().expect("made at the first frame");
                    let before = message.inflated.len();
                    if let Err(e) = inflater.inflate(new, &mut message.inflated, self.limits.max_message) {
                        return Some(self.fail(inflate_violation(e)));
                    }
                    if frame.text && self.utf8.feed(&message.inflated[before..]).is_err() {
                        return Some(self.fail(Violation::InvalidUtf8));
                    }
                } else if frame.text && self.utf8.feed(new).is_err() {
                    // §8.1: invalid UTF-8 MUST fail the connection; doing it
                    // as the bytes arrive is what makes it "fail fast".
                    return Some(self.fail(Violation::InvalidUtf8));
                }
                frame.done = arrived;
            }
            if frame.done < frame.len {
                self.frame = Some(frame);
                return None;
            }

            // Stage 3: the frame is complete. Split its payload off the read
            // buffer: a reference-counted view, not a copy.
            self.recent_frame = frame.len.min(READ_AHEAD_MAX) as u32;
            let payload = self.read_buf.split_to(frame.len).freeze();
            match self.on_frame(frame.header, payload) {
                Ok(Some(event)) => return Some(event),
                Ok(None) => continue, // a non-final fragment, or ignored
                Err(v) => return Some(self.fail(v)),
            }
        }
    }

    /// Check a header against the role, the state and the limits, and set
    /// up the frame's reception. The checks follow §5.2's field order.
    fn check_header(&mut self, h: &FrameHeader) -> Result<IncomingFrame, Violation> {
        // §5.2 RSV1-3: "MUST be 0 unless an extension is negotiated that
        // defines meanings for non-zero values. If a nonzero value is
        // received and none of the negotiated extensions defines the meaning
        // of such a nonzero value, the receiving endpoint MUST _Fail the
        // WebSocket Connection_." Only permessage-deflate gives one a
        // meaning: RSV1, "Per-Message Compressed" (RFC 7692 §6).
        if h.rsv2 || h.rsv3 || (h.rsv1 && self.deflate.is_none()) {
            return Err(Violation::ReservedBits);
        }
        // RFC 7692 §6.1: "An endpoint MUST NOT set the RSV1 bit on control
        // frames" and it is set "on the first frame of a message" only;
        // §6.2 has the receiver fail the connection otherwise.
        if h.rsv1 && (h.opcode.is_control() || h.opcode == OpCode::Continuation) {
            return Err(Violation::MisplacedRsv1);
        }
        // §5.2 Opcode: "If an unknown opcode is received, the receiving
        // endpoint MUST _Fail the WebSocket Connection_."
        if h.opcode.is_reserved() {
            return Err(Violation::ReservedOpcode);
        }
        // §5.1: "The server MUST close the connection upon receiving a frame
        // that is not masked." ... "A client MUST close a connection if it
        // detects a masked frame." Both MAY use 1002.
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(Violation::UnmaskedFrame),
            (Role::Client, true) => return Err(Violation::MaskedFrame),
            _ => {}
        }

        if h.opcode.is_control() {
            // §5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if !h.fin {
                return Err(Violation::FragmentedControl);
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(Violation::ControlTooLong);
            }
            // Control frames may arrive in the middle of a fragmented
            // message (§5.4: "An endpoint MUST be capable of handling control
            // frames in the middle of a fragmented message."), so they touch
            // neither `message` nor the UTF-8 validator.
            return Ok(IncomingFrame {
                header: *h,
                len: h.payload_len as usize,
                done: 0,
                text: false,
                compressed: false,
            });
        }

        // Data frames. §5.4: "A fragmented message consists of a single
        // frame with the FIN bit clear and an opcode other than 0, followed
        // by zero or more frames with the FIN bit clear and the opcode set to
        // 0, and terminated by a single frame with the FIN bit set and an
        // opcode of 0." and "The fragments of one message MUST NOT be
        // interleaved between the fragments of another message unless an
        // extension has been negotiated that can interpret the interleaving."
        let (kind, compressed) = match (h.opcode, &self.message) {
            (OpCode::Continuation, Some(m)) => (m.kind, m.compressed),
            (OpCode::Continuation, None) => return Err(Violation::UnexpectedContinuation),
            (_, Some(_)) => return Err(Violation::ExpectedContinuation),
            (OpCode::Text, None) => (MessageKind::Text, h.rsv1),
            (_, None) => (MessageKind::Binary, h.rsv1),
        };

        // Limits (§10.4), decided from the announced length alone, before a
        // payload byte is buffered.
        if h.payload_len > self.limits.max_frame as u64 {
            return Err(Violation::FrameTooBig);
        }
        // A compressed message's size is what it inflates to, counted as it
        // inflates (stage 2); its compressed frames are bounded by max_frame.
        let so_far = self.message.as_ref().map_or(0, |m| m.data.len()) as u64;
        if !compressed && so_far.saturating_add(h.payload_len) > self.limits.max_message as u64 {
            return Err(Violation::MessageTooBig);
        }

        if h.opcode != OpCode::Continuation {
            // The first frame of a message.
            if kind == MessageKind::Text {
                self.utf8.reset();
            }
            if compressed {
                // Inflation needs somewhere to go from the first byte on.
                let role = self.role;
                let deflate = self.deflate.as_mut().expect("checked above");
                deflate.inflater.get_or_insert_with(|| Inflater::for_role(&deflate.params, role));
                self.message = Some(PartialMessage::new(kind, true));
            } else if !h.fin {
                self.message = Some(PartialMessage::new(kind, false));
            }
        }
        Ok(IncomingFrame {
            header: *h,
            len: h.payload_len as usize, // <= max_frame, so it fits
            done: 0,
            text: kind == MessageKind::Text,
            compressed,
        })
    }

    /// Act on a complete frame (payload already unmasked and, for text,
    /// validated so far). `Ok(None)`: nothing to report yet.
    fn on_frame(&mut self, h: FrameHeader, payload: Bytes) -> Result<Option<Event>, Violation> {
        let open = self.state == CloseState::Open;
        match h.opcode {
            OpCode::Ping => {
                // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send
                // a Pong frame in response, unless it already received a
                // Close frame." §5.5.3: the Pong "must have identical
                // "Application data" as found in the message body of the Ping
                // frame being replied to." After our own Close we send
                // nothing more, so the ping is dropped.
                if !open {
                    return Ok(None);
                }
                self.queue_frame(OpCode::Pong, &payload);
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Pong => Ok(open.then_some(Event::Pong(payload))),
            OpCode::Close => self.on_close(&payload).map(Some),
            _ => self.on_data(h, payload),
        }
    }

    fn on_data(&mut self, h: FrameHeader, payload: Bytes) -> Result<Option<Event>, Violation> {
        let (kind, data) = if self.message.as_ref().is_some_and(|m| m.compressed) {
            // Already inflated as it arrived; the compressed bytes are done with.
            if !h.fin {
                return Ok(None);
            }
            let mut message = self.message.take().expect("present");
            let deflate = self.deflate.as_mut().expect("compressed only with deflate");
            let inflater = deflate.inflater.as_mut().expect("made at the first frame");
            let before = message.inflated.len();
            // §7.2.2: append 00 00 ff ff and inflate what the inflater held back.
            inflater.finish(&mut message.inflated, self.limits.max_message).map_err(inflate_violation)?;
            if message.kind == MessageKind::Text && self.utf8.feed(&message.inflated[before..]).is_err() {
                return Err(Violation::InvalidUtf8);
            }
            (message.kind, Bytes::from(message.inflated))
        } else if h.opcode != OpCode::Continuation && h.fin {
            // An unfragmented message (§5.4: "a single frame with the FIN bit
            // set and an opcode other than 0"): hand the payload over as is.
            let kind = if h.opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
            (kind, payload)
        } else {
            // One fragment: append it. check_header created `message` at
            // the first fragment and rejects continuations without one.
            let message = self.message.as_mut().expect("checked by check_header");
            message.data.extend_from_slice(&payload);
            if !h.fin {
                return Ok(None);
            }
            let message = self.message.take().expect("present");
            (message.kind, message.data.freeze())
        };

        let event = match kind {
            MessageKind::Text => {
                // Every byte was validated on arrival; what remains is a
                // sequence cut off by the end of the message (§5.6: "the
                // whole message MUST contain valid UTF-8").
                if self.utf8.finish().is_err() {
                    return Err(Violation::InvalidUtf8);
                }
                Event::Text(Utf8Bytes::from_validated(data))
            }
            MessageKind::Binary => Event::Binary(data),
        };
        // After our Close, data is read (to find the peer's Close) but
        // dropped.
        Ok((self.state == CloseState::Open).then_some(event))
    }

    fn on_close(&mut self, body: &[u8]) -> Result<Event, Violation> {
        // §5.5.1: "If there is a body, the first two bytes of the body MUST
        // be a 2-byte unsigned integer (in network byte order) representing a
        // status code with value /code/ defined in Section 7.4. Following the
        // 2-byte integer, the body MAY contain UTF-8-encoded data".
        let (code, reason) = match parse_close_body(body) {
            Ok(None) => (None, String::new()),
            Ok(Some((code, reason))) => (Some(code), reason.to_owned()),
            Err(CloseBodyError::OneByte) => return Err(Violation::CloseBodyOneByte),
            Err(CloseBodyError::InvalidCode(_)) => return Err(Violation::InvalidCloseCode),
            Err(CloseBodyError::InvalidUtf8(_)) => return Err(Violation::InvalidCloseReason),
        };
        match self.state {
            CloseState::Open => {
                // §5.5.1: "If an endpoint receives a Close frame and did not
                // previously send a Close frame, the endpoint MUST send a
                // Close frame in response. (When sending a Close frame in
                // response, the endpoint typically echos the status code it
                // received.)" A close without a code gets an empty one back.
                // Any half-received message is abandoned.
                self.queue_close(code, "");
                self.state = CloseState::CloseReceived;
            }
            // We closed first; this is the answer. Handshake complete.
            _ => self.state = CloseState::Closed,
        }
        self.message = None;
        self.read_buf.clear();
        Ok(Event::Close { code, reason })
    }

    /// _Fail the WebSocket Connection_ (§7.1.7): "If _The WebSocket
    /// Connection is Established_ prior to the point where the endpoint is
    /// required to _Fail the WebSocket Connection_, the endpoint SHOULD send
    /// a Close frame with an appropriate status code (Section 7.4) before
    /// proceeding to _Close the WebSocket Connection_."
    fn fail(&mut self, v: Violation) -> Event {
        if self.state == CloseState::Open {
            self.queue_close(Some(v.code()), v.reason());
        }
        self.failure = Some(v);
        self.stop_reading();
        Event::ProtocolError { code: v.code(), reason: v.reason() }
    }

    /// Ends the connection from this side at once, for a reason of the application's
    /// rather than the peer's breaking the protocol: a Close with `code` and `reason` is
    /// queued (unless one was sent already), nothing more is read, and what was arriving
    /// is let go of. A server does this when it cannot hold the message in progress
    /// (1013, "try again later", when its memory for messages in progress is spent): it
    /// cannot wait for the closing handshake (§7.1.2) while the peer goes on sending.
    /// Write what `take_outgoing` still returns, then close TCP, as after a violation.
    pub fn abort(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        if self.state == CloseState::Open {
            self.close(code, reason)?;
        }
        self.stop_reading();
        Ok(())
    }

    /// Reads nothing more, and lets go of every incoming buffer.
    fn stop_reading(&mut self) {
        self.state = CloseState::Closed;
        self.frame = None;
        self.message = None;
        if let Some(d) = &mut self.deflate {
            // Keep the count of work done, drop the memory.
            d.inflated_before += d.inflater.take().map_or(0, |i| i.inflated());
            d.deflater = None;
        }
        self.read_buf = BytesMut::new();
    }

    // ------------------------------------------------------------------
    // Output
    // ------------------------------------------------------------------

    /// The next chunk of bytes to write, in order. After the last one, a
    /// session in `CloseReceived` becomes `Closed`.
    pub fn take_outgoing(&mut self) -> Option<Bytes> {
        let chunk = match self.out_chunks.pop_front() {
            Some(c) => Some(c),
            None if !self.out_tail.is_empty() => Some(self.out_tail.take()),
            None => None,
        };
        if let Some(c) = &chunk {
            self.outgoing_gone(c.len());
        }
        chunk
    }

    /// `n` bytes left the outgoing queue (taken, or written in place). After the last
    /// one, a session in `CloseReceived` becomes `Closed`: our reply to the peer's Close
    /// has left.
    fn outgoing_gone(&mut self, n: usize) {
        self.out_len -= n;
        if self.out_len == 0 && self.state == CloseState::CloseReceived {
            self.state = CloseState::Closed;
        }
    }

    /// The bytes queued to write, in order, as slices for one vectored write, without
    /// taking them: fills `dst` from the front and returns how many it filled. Then
    /// tell [`consume_outgoing`](Self::consume_outgoing) how many bytes were written.
    /// A driver that writes this way copies nothing and allocates nothing per write:
    /// the small-frame buffer is written where it is and reused.
    pub fn outgoing_slices<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        let chunks = self.out_chunks.iter().map(|c| &c[..]);
        let tail = (!self.out_tail.is_empty()).then_some(self.out_tail.unwritten());
        chunks.chain(tail).zip(dst.iter_mut()).map(|(b, d)| *d = std::io::IoSlice::new(b)).count()
    }

    /// The first slice [`outgoing_slices`](Self::outgoing_slices) would give, and whether
    /// it is the only one: a driver writes it with a plain write then.
    pub fn outgoing_front(&self) -> Option<(&[u8], bool)> {
        match self.out_chunks.front() {
            Some(c) => Some((&c[..], self.out_chunks.len() == 1 && self.out_tail.is_empty())),
            None if !self.out_tail.is_empty() => Some((self.out_tail.unwritten(), true)),
            None => None,
        }
    }

    /// `n` bytes from the front of the outgoing queue were written. After the last
    /// one, a session in `CloseReceived` becomes `Closed` (as with `take_outgoing`).
    pub fn consume_outgoing(&mut self, n: usize) {
        assert!(n <= self.out_len, "wrote more than was queued");
        self.outgoing_gone(n);
        let mut n = n;
        while n > 0 {
            if let Some(front) = self.out_chunks.front_mut() {
                if n < front.len() {
                    front.advance(n);
                    break;
                }
                n -= front.len();
                self.out_chunks.pop_front();
            } else {
                // Once the tail is all written, the next frames reuse its allocation
                // from the front (`Tail::consume`).
                self.out_tail.consume(n);
                break;
            }
        }
    }

    /// All pending chunks, e.g. for one vectored write.
    pub fn drain_outgoing(&mut self) -> impl Iterator<Item = Bytes> + '_ {
        std::iter::from_fn(move || self.take_outgoing())
    }

    /// Bytes queued and not yet taken: the send queue length to compare
    /// against a limit for clients that stop reading.
    pub fn outgoing_len(&self) -> usize {
        self.out_len
    }

    /// Queue a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.check_open()?;
        self.queue_data(OpCode::Text, text.as_bytes());
        Ok(())
    }

    /// Queue a text message held in `Bytes`; large payloads are queued
    /// without a copy on the server side.
    pub fn send_text_bytes(&mut self, text: Utf8Bytes) -> Result<(), SendError> {
        self.check_open()?;
        self.queue_frame_bytes(OpCode::Text, text.into_bytes());
        Ok(())
    }

    /// Queue a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.check_open()?;
        self.queue_data(OpCode::Binary, data);
        Ok(())
    }

    /// Queue a binary message held in `Bytes` (no copy for large payloads on
    /// the server side).
    pub fn send_binary_bytes(&mut self, data: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        self.queue_frame_bytes(OpCode::Binary, data);
        Ok(())
    }

    /// Queue a Ping (e.g. for zombie detection; the driver owns the timer).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.check_control(payload)?;
        self.queue_frame(OpCode::Ping, payload);
        Ok(())
    }

    /// Queue a frame encoded beforehand, e.g. by [`encode_server_text`], so
    /// that one publish is encoded once and the same `Bytes` go to every
    /// subscriber. It must be one complete, unmasked, FIN=1 data frame.
    pub fn send_encoded(&mut self, frame: &Bytes) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::NotServer);
        }
        self.check_open()?;
        debug_assert!(matches!(
            FrameHeader::parse(frame),
            Ok(Some((h, n))) if h.fin && h.mask.is_none() && !h.opcode.is_control()
                && n as u64 + h.payload_len == frame.len() as u64
        ));
        self.out_len += frame.len();
        if frame.len() <= COALESCE_MAX {
            // Copied beside the frames around it (one write for a burst), from the
            // shared bytes: no reference count is taken, so the subscribers of a busy
            // channel do not contend for one.
            self.out_tail.buf.extend_from_slice(frame);
        } else {
            self.push_chunk(frame.clone());
        }
        Ok(())
    }

    /// Start the closing handshake (§7.1.2). `reason` is cut to 123 bytes
    /// (at a character boundary) to fit the control frame limit. Afterwards
    /// nothing more can be sent; keep calling `next_event` until the peer's
    /// Close arrives (or give up on a timer and close TCP).
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        // §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in
        // a Close control frame by an endpoint"; the rest of the invalid
        // range is unassigned.
        if !close_code_is_valid(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        self.check_open()?;
        let mut cut = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        self.queue_close(Some(code), &reason[..cut]);
        self.state = CloseState::CloseSent;
        Ok(())
    }

    fn check_open(&self) -> Result<(), SendError> {
        match self.state {
            CloseState::Open => Ok(()),
            _ => Err(SendError::Closed),
        }
    }

    fn check_control(&self, payload: &[u8]) -> Result<(), SendError> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        Ok(())
    }

    fn queue_close(&mut self, code: Option<u16>, reason: &str) {
        let mut body = Vec::with_capacity(2 + reason.len());
        if let Some(code) = code {
            body.extend_from_slice(&code.to_be_bytes());
            body.extend_from_slice(reason.as_bytes());
        }
        self.queue_frame(OpCode::Close, &body);
    }

    /// §5.3: "When preparing a masked frame, the client MUST pick a fresh
    /// masking key from the set of allowed 32-bit values."
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.mask_source.as_mut().map(|source| source())
    }

    /// Encode one whole frame (FIN=1) into the shared outgoing buffer,
    /// masking it if we are the client.
    fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        let header = FrameHeader::new(true, opcode, mask, payload.len() as u64);
        self.queue_header_and_payload(header, payload);
    }

    /// Encode `header` and its payload (masked with the header's key, if any).
    fn queue_header_and_payload(&mut self, header: FrameHeader, payload: &[u8]) {
        let frame_len = header.encoded_len() + payload.len();
        let tail = &mut self.out_tail.buf;
        // Room for the whole frame at once: the two appends below then only check it.
        tail.reserve(frame_len);
        header.encode(tail);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut tail[start..], key, 0);
        }
        self.out_len += frame_len;
    }

    /// A text or binary message: compressed if permessage-deflate is on
    /// (RFC 7692 §7.2.1), with RSV1 on its one frame (§6.1).
    fn queue_data(&mut self, opcode: OpCode, payload: &[u8]) {
        let role = self.role;
        let Some(deflate) = &mut self.deflate else {
            self.queue_frame(opcode, payload);
            return;
        };
        let deflater = deflate.deflater.get_or_insert_with(|| Deflater::for_role(&deflate.params, role));
        let compressed = deflater.compress(payload);
        let mask = self.next_mask();
        let mut header = FrameHeader::new(true, opcode, mask, compressed.len() as u64);
        header.rsv1 = true;
        self.queue_header_and_payload(header, &compressed);
    }

    /// Like `queue_data`, but a large uncompressed payload on the server side
    /// is queued as its own chunk instead of being copied.
    fn queue_frame_bytes(&mut self, opcode: OpCode, payload: Bytes) {
        if self.deflate.is_some() {
            self.queue_data(opcode, &payload);
            return;
        }
        if self.role == Role::Client || payload.len() <= COALESCE_MAX {
            // What `queue_data` does without deflate, one call less (an echo's path).
            self.queue_frame(opcode, &payload);
            return;
        }
        let header = FrameHeader::new(true, opcode, None, payload.len() as u64);
        header.encode(&mut self.out_tail.buf);
        self.out_len += header.encoded_len() + payload.len();
        self.push_chunk(payload);
    }

    /// Queue `chunk` after everything queued so far.
    fn push_chunk(&mut self, chunk: Bytes) {
        if !self.out_tail.is_empty() {
            self.out_chunks.push_back(self.out_tail.take());
        }
        self.out_chunks.push_back(chunk);
    }
}

/// Encode a complete, unmasked text frame (what a server sends). Encode a
/// published message once and queue the same `Bytes` on every connection
/// with [`Session::send_encoded`]: the payload is neither re-encoded nor
/// copied per subscriber. `payload` must be UTF-8.
pub fn encode_server_text(payload: &[u8]) -> Bytes {
    debug_assert!(std::str::from_utf8(payload).is_ok());
    encode_frame(OpCode::Text, true, payload, None)
}

/// The same message compressed alone (RFC 7692 §7.2.1, no context, window
/// 2^15), RSV1 set: one frame right for every connection whose parameters
/// say [`DeflateParams::server_output_is_shareable`]. A fan-out compresses a
/// message once with it, not once per subscriber.
pub fn encode_server_text_deflated(payload: &[u8]) -> Bytes {
    debug_assert!(std::str::from_utf8(payload).is_ok());
    thread_local! {
        // One compressor per thread, reset after each message: making one
        // costs a few hundred KiB of zeroed state.
        static DEFLATER: std::cell::RefCell<Deflater> =
            std::cell::RefCell::new(Deflater::new(true, super::deflate::MAX_WINDOW_BITS));
    }
    let compressed = DEFLATER.with(|d| d.borrow_mut().compress(payload));
    let mut header = FrameHeader::new(true, OpCode::Text, None, compressed.len() as u64);
    header.rsv1 = true;
    let mut out = BytesMut::with_capacity(header.encoded_len() + compressed.len());
    header.encode(&mut out);
    out.extend_from_slice(&compressed);
    out.freeze()
}

/// The close violation for an inflation failure.
fn inflate_violation(e: InflateError) -> Violation {
    match e {
        InflateError::TooBig => Violation::MessageTooBig,
        InflateError::BadData => Violation::BadDeflateData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn limits(max_message: usize, max_frame: usize) -> SessionLimits {
        SessionLimits { max_message, max_frame }
    }

    fn new_session(role: Role, limits: SessionLimits) -> Session {
        match role {
            Role::Server => Session::server(limits),
            Role::Client => Session::client(limits, || KEY),
        }
    }

    /// A frame as the peer of `role` would send it: masked towards a server.
    fn peer(role: Role, opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = (role == Role::Server).then_some(KEY);
        encode_frame(opcode, fin, payload, mask).to_vec()
    }

    fn text(s: &str) -> Event {
        Event::Text(Utf8Bytes::from(s))
    }

    fn error(v: Violation) -> Event {
        Event::ProtocolError { code: v.code(), reason: v.reason() }
    }

    /// Feed `input` in pieces of `chunk` bytes, collecting every event.
    fn feed(s: &mut Session, input: &[u8], chunk: usize) -> Vec<Event> {
        let mut events = Vec::new();
        for piece in input.chunks(chunk) {
            s.receive_data(piece);
            while let Some(e) = s.next_event() {
                events.push(e);
            }
        }
        events
    }

    fn drain(s: &mut Session) -> Vec<u8> {
        s.drain_outgoing().flat_map(|b| b.to_vec()).collect()
    }

    /// Decode frames that we sent (unmasking them if we are a client).
    fn sent_frames(bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (h, n) = FrameHeader::parse(rest).unwrap().expect("complete frame");
            let len = h.payload_len as usize;
            let mut payload = rest[n..n + len].to_vec();
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key, 0);
            }
            out.push((h, payload));
            rest = &rest[n + len..];
        }
        out
    }

    /// Run `input` through a fresh session three ways (all at once, one
    /// byte at a time, and followed by the bytes of another frame) and check
    /// that each way yields `expected` and the same outgoing bytes, and that
    /// the byte trace reads the same frames, payloads and close codes from
    /// `input` (`trace::annotate::agreement`). Returns the all-at-once session (its outgoing bytes already drained) and
    /// those outgoing bytes.
    fn check3(role: Role, lim: SessionLimits, input: &[u8], expected: &[Event]) -> (Session, Vec<u8>) {
        let mut whole = new_session(role, lim);
        assert_eq!(feed(&mut whole, input, input.len().max(1)), expected, "all at once");
        let out = drain(&mut whole);

        let mut bytewise = new_session(role, lim);
        assert_eq!(feed(&mut bytewise, input, 1), expected, "one byte at a time");
        assert_eq!(drain(&mut bytewise), out, "same output bytewise");
        assert_eq!(bytewise.state(), whole.state());

        // Trailing bytes: a ping follows. It is seen only if the input left
        // the session reading.
        let tail = peer(role, OpCode::Ping, true, b"tail");
        let mut with_tail = input.to_vec();
        with_tail.extend_from_slice(&tail);
        let mut expected_tail = expected.to_vec();
        let stops = matches!(expected.last(), Some(Event::Close { .. } | Event::ProtocolError { .. }));
        if !stops {
            expected_tail.push(Event::Ping(Bytes::from_static(b"tail")));
        }
        for chunk in [with_tail.len(), 1] {
            let mut s = new_session(role, lim);
            assert_eq!(feed(&mut s, &with_tail, chunk), expected_tail, "with trailing bytes, chunk {chunk}");
        }
        crate::trace::annotate::agreement::ws(role, input, expected);
        crate::trace::annotate::agreement::ws(role, &with_tail, &expected_tail);
        (whole, out)
    }

    // ---------------------------------------------------------------
    // RFC 6455 §5.7 examples, decoded by a session and produced by one.
    // ---------------------------------------------------------------

    #[test]
    fn rfc_5_7_single_frame_unmasked_text() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        check3(Role::Client, SessionLimits::default(), &wire, &[text("Hello")]);
        let mut server = Session::server(SessionLimits::default());
        server.send_text("Hello").unwrap();
        assert_eq!(drain(&mut server), wire);
        assert_eq!(encode_server_text(b"Hello"), &wire[..]);
    }

    #[test]
    fn rfc_5_7_single_frame_masked_text() {
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        check3(Role::Server, SessionLimits::default(), &wire, &[text("Hello")]);
        let mut client = Session::client(SessionLimits::default(), || KEY);
        client.send_text("Hello").unwrap();
        assert_eq!(drain(&mut client), wire);
    }

    #[test]
    fn rfc_5_7_fragmented_unmasked_text() {
        let wire = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        check3(Role::Client, SessionLimits::default(), &wire, &[text("Hello")]);
    }

    #[test]
    fn rfc_5_7_unmasked_ping_gets_the_masked_pong() {
        // The client receives the RFC's unmasked Ping and answers with the
        // RFC's masked Pong, byte for byte.
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (_, out) =
            check3(Role::Client, SessionLimits::default(), &ping, &[Event::Ping(Bytes::from_static(b"Hello"))]);
        assert_eq!(out, pong);
        // And the server receiving that Pong reports it and answers nothing.
        let (_, out) =
            check3(Role::Server, SessionLimits::default(), &pong, &[Event::Pong(Bytes::from_static(b"Hello"))]);
        assert!(out.is_empty());
        // A server's own ping is the RFC's unmasked one.
        let mut server = Session::server(SessionLimits::default());
        server.send_ping(b"Hello").unwrap();
        assert_eq!(drain(&mut server), ping);
    }

    #[test]
    fn rfc_5_7_256_bytes_binary() {
        let payload: Vec<u8> = (0..256).map(|i| i as u8).collect();
        let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
        wire.extend_from_slice(&payload);
        check3(Role::Client, SessionLimits::default(), &wire, &[Event::Binary(Bytes::from(payload.clone()))]);
        let mut server = Session::server(SessionLimits::default());
        server.send_binary(&payload).unwrap();
        assert_eq!(drain(&mut server), wire);
    }

    #[test]
    fn rfc_5_7_64k_binary() {
        let payload: Vec<u8> = (0..65536).map(|i| (i * 7) as u8).collect();
        let mut wire = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        wire.extend_from_slice(&payload);
        check3(Role::Client, SessionLimits::default(), &wire, &[Event::Binary(Bytes::from(payload.clone()))]);
        let mut server = Session::server(SessionLimits::default());
        server.send_binary_bytes(Bytes::from(payload)).unwrap();
        assert_eq!(drain(&mut server), wire);
    }

    #[test]
    fn incoming_held_is_what_a_message_spanning_reads_holds_so_far() {
        let mut s = new_session(Role::Server, SessionLimits::default());
        let first = peer(Role::Server, OpCode::Text, false, &[b'a'; 100]);
        let last = peer(Role::Server, OpCode::Continuation, true, &[b'b'; 300]);
        assert!(feed(&mut s, &first, first.len()).is_empty());
        assert_eq!(s.incoming_held(), 100, "the first fragment, reassembled");
        // The second frame's header (8 bytes: 2, the 16-bit length, the key) and 50 bytes.
        assert!(feed(&mut s, &last[..58], 58).is_empty());
        assert_eq!(s.incoming_held(), 150, "and the part of the frame that has arrived");
        let events = feed(&mut s, &last[58..], last.len());
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(s.incoming_held(), 0, "handed over: nothing held");
        // Half a header, between messages.
        assert!(feed(&mut s, &first[..1], 1).is_empty());
        assert_eq!(s.incoming_held(), 1);
    }

    #[test]
    fn abort_closes_with_the_code_given_and_lets_go_of_the_message_in_progress() {
        let mut s = new_session(Role::Server, SessionLimits::default());
        let first = peer(Role::Server, OpCode::Binary, false, &[7; 5000]);
        assert!(feed(&mut s, &first, 1000).is_empty());
        assert_eq!(s.incoming_held(), 5000);
        s.abort(1013, "busy").unwrap();
        assert_eq!(s.state(), CloseState::Closed);
        assert_eq!(s.incoming_held(), 0);
        assert!(s.failure().is_none(), "not the peer's violation");
        let frames = sent_frames(&drain(&mut s));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0.opcode, OpCode::Close);
        assert_eq!(frames[0].1, b"\x03\xf5busy", "1013, then the reason");
        // Whatever comes next is not read.
        assert!(feed(&mut s, &peer(Role::Server, OpCode::Continuation, true, b"more"), 64).is_empty());
        assert_eq!(s.incoming_held(), 0);
        // After our own Close, an abort queues no second one.
        let mut s = new_session(Role::Server, SessionLimits::default());
        s.close(1000, "bye").unwrap();
        drain(&mut s);
        s.abort(1013, "busy").unwrap();
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.state(), CloseState::Closed);
    }

    // ---------------------------------------------------------------
    // Fragmentation and control frames
    // ---------------------------------------------------------------

    #[test]
    fn fragmented_message_with_interleaved_ping() {
        let r = Role::Server;
        let mut wire = peer(r, OpCode::Text, false, b"Hel");
        wire.extend(peer(r, OpCode::Ping, true, b"are you there"));
        wire.extend(peer(r, OpCode::Continuation, false, b""));
        wire.extend(peer(r, OpCode::Pong, true, b"hb"));
        wire.extend(peer(r, OpCode::Continuation, true, b"lo"));
        let (_, out) = check3(
            r,
            SessionLimits::default(),
            &wire,
            &[Event::Ping(Bytes::from_static(b"are you there")), Event::Pong(Bytes::from_static(b"hb")), text("Hello")],
        );
        let frames = sent_frames(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, FrameHeader::new(true, OpCode::Pong, None, 13));
        assert_eq!(frames[0].1, b"are you there");
    }

    #[test]
    fn utf8_character_split_across_fragments_and_controls() {
        // "€" = E2 82 AC, split over three fragments with a ping between.
        let r = Role::Client;
        let mut wire = peer(r, OpCode::Text, false, b"\xE2");
        wire.extend(peer(r, OpCode::Continuation, false, b"\x82"));
        wire.extend(peer(r, OpCode::Ping, true, b""));
        wire.extend(peer(r, OpCode::Continuation, true, b"\xAC!"));
        check3(r, SessionLimits::default(), &wire, &[Event::Ping(Bytes::new()), text("€!")]);
    }

    #[test]
    fn binary_fragments_and_empty_messages() {
        let r = Role::Server;
        let mut wire = peer(r, OpCode::Binary, false, &[1, 2]);
        wire.extend(peer(r, OpCode::Continuation, true, &[3]));
        wire.extend(peer(r, OpCode::Text, true, b""));
        wire.extend(peer(r, OpCode::Binary, true, b""));
        check3(
            r,
            SessionLimits::default(),
            &wire,
            &[Event::Binary(Bytes::from_static(&[1, 2, 3])), text(""), Event::Binary(Bytes::new())],
        );
    }

    #[test]
    fn control_frame_of_exactly_125_bytes_is_fine() {
        let payload = [b'x'; 125];
        let wire = peer(Role::Server, OpCode::Ping, true, &payload);
        let (_, out) =
            check3(Role::Server, SessionLimits::default(), &wire, &[Event::Ping(Bytes::copy_from_slice(&payload))]);
        assert_eq!(sent_frames(&out)[0].1, payload);
    }

    #[test]
    fn read_buf_is_the_zero_copy_input_path() {
        let mut s = Session::server(SessionLimits::default());
        let wire = peer(Role::Server, OpCode::Text, true, b"direct");
        let buf = s.read_buf();
        assert!(buf.capacity() - buf.len() >= READ_CHUNK);
        buf.extend_from_slice(&wire[..4]);
        assert_eq!(s.next_event(), None);
        s.read_buf().extend_from_slice(&wire[4..]);
        assert_eq!(s.next_event(), Some(text("direct")));
        assert!(s.read_buf().is_empty());
    }

    #[test]
    fn after_a_large_frame_the_next_one_is_read_straight_in_and_in_one_piece() {
        let mut s = Session::server(SessionLimits::default());
        let wire = peer(Role::Server, OpCode::Binary, true, &[7; 16 * 1024]);
        // Idle: the driver reads elsewhere and hands the bytes over (one copy).
        assert!(!s.wants_read_buf());
        s.receive_data(&wire);
        assert!(matches!(s.next_event(), Some(Event::Binary(b)) if b.len() == 16 * 1024));
        // Frames are flowing: the next read goes straight in, with room for a frame
        // like the last, header included, so it does not arrive in pieces.
        assert!(s.wants_read_buf());
        let buf = s.read_buf();
        assert!(buf.capacity() - buf.len() >= wire.len(), "room for {} bytes", wire.len());
        buf.extend_from_slice(&wire);
        assert!(matches!(s.next_event(), Some(Event::Binary(b)) if b.len() == 16 * 1024));
        // Quiet again: nothing held, and reads go elsewhere until frames flow.
        s.release_idle_buffers();
        assert!(!s.wants_read_buf());
        assert_eq!(s.read_buf.capacity(), 0);
    }

    /// Small frames cut from the read buffer's front leave less room behind each; room
    /// is made again (the front reclaimed) only once little is left, not before every
    /// read, and every read still has room for a whole frame like the last.
    #[test]
    fn small_frames_reclaim_the_read_buffer_once_in_many_reads() {
        let mut s = Session::server(SessionLimits::default());
        let wire = peer(Role::Server, OpCode::Binary, true, &[5; 32]);
        s.receive_data(&wire);
        assert!(matches!(s.next_event(), Some(Event::Binary(b)) if b.len() == 32));
        let (mut reclaimed, mut last) = (0, None);
        for _ in 0..1000 {
            let buf = s.read_buf();
            assert!(buf.capacity() - buf.len() >= wire.len(), "room for a frame like the last");
            let at = buf.as_ptr() as usize;
            if last.is_some_and(|l| at <= l) {
                reclaimed += 1; // back at (or before) where the last read went
            }
            last = Some(at);
            buf.extend_from_slice(&wire);
            assert!(matches!(s.next_event(), Some(Event::Binary(b)) if b.len() == 32));
        }
        // 38-byte frames and at least READ_CHUNK - READ_MIN_SPARE bytes between reclaims.
        let most = 1000 * wire.len() / (READ_CHUNK - READ_MIN_SPARE) + 1;
        assert!(reclaimed >= 1 && reclaimed <= most, "{reclaimed} reclaims in 1000 reads (at most {most})");
    }

    #[test]
    fn single_frame_payload_is_not_copied() {
        let mut s = Session::client(SessionLimits::default(), || KEY);
        let wire = peer(Role::Client, OpCode::Binary, true, &[9; 300]);
        s.read_buf().extend_from_slice(&wire);
        let base = s.read_buf.as_ptr() as usize;
        let Some(Event::Binary(b)) = s.next_event() else { panic!() };
        // The payload is a view into the read buffer, right after the header.
        assert_eq!(b.as_ptr() as usize, base + 4);
    }

    // ---------------------------------------------------------------
    // Protocol errors, each answered with a close frame of the right code.
    // ---------------------------------------------------------------

    /// Check a violation three ways, plus the queued close frame.
    fn check_violation(role: Role, lim: SessionLimits, input: &[u8], events_before: &[Event], v: Violation) {
        let mut expected = events_before.to_vec();
        expected.push(error(v));
        let (s, out) = check3(role, lim, input, &expected);
        assert!(s.is_closed());
        assert_eq!(s.failure(), Some(v));
        let frames = sent_frames(&out);
        let (h, body) = frames.last().expect("a close frame");
        assert_eq!(h.opcode, OpCode::Close);
        assert_eq!(h.mask.is_some(), role == Role::Client);
        assert_eq!(parse_close_body(body), Ok(Some((v.code(), v.reason()))));
    }

    fn bad(role: Role, input: &[u8], v: Violation) {
        check_violation(role, SessionLimits::default(), input, &[], v);
    }

    #[test]
    fn unmasked_frame_to_server_is_1002() {
        let wire = encode_frame(OpCode::Text, true, b"hi", None);
        bad(Role::Server, &wire, Violation::UnmaskedFrame);
        assert_eq!(Violation::UnmaskedFrame.code(), 1002);
    }

    #[test]
    fn masked_frame_to_client_is_1002() {
        let wire = encode_frame(OpCode::Text, true, b"hi", Some(KEY));
        bad(Role::Client, &wire, Violation::MaskedFrame);
    }

    #[test]
    fn rsv_bits_are_1002() {
        for bit in [0x40, 0x20, 0x10] {
            for role in [Role::Server, Role::Client] {
                let mut wire = peer(role, OpCode::Text, true, b"hi");
                wire[0] |= bit;
                bad(role, &wire, Violation::ReservedBits);
            }
        }
    }

    #[test]
    fn reserved_opcodes_are_1002() {
        for op in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let wire = peer(Role::Server, OpCode::Reserved(op), true, b"");
            bad(Role::Server, &wire, Violation::ReservedOpcode);
        }
    }

    #[test]
    fn oversized_control_frame_is_1002_from_the_header_alone() {
        // Only the header: a 126-byte ping is refused before its payload.
        let mut header = BytesMut::new();
        FrameHeader::new(true, OpCode::Ping, Some(KEY), 126).encode(&mut header);
        bad(Role::Server, &header, Violation::ControlTooLong);
        let full = peer(Role::Server, OpCode::Close, true, &[b'a'; 126]);
        bad(Role::Server, &full, Violation::ControlTooLong);
    }

    #[test]
    fn fragmented_control_frame_is_1002() {
        for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
            let wire = peer(Role::Server, op, false, b"");
            bad(Role::Server, &wire, Violation::FragmentedControl);
        }
    }

    #[test]
    fn continuation_without_a_message_is_1002() {
        for fin in [true, false] {
            let wire = peer(Role::Server, OpCode::Continuation, fin, b"x");
            bad(Role::Server, &wire, Violation::UnexpectedContinuation);
        }
        // Also right after a complete message.
        let mut wire = peer(Role::Server, OpCode::Text, true, b"done");
        wire.extend(peer(Role::Server, OpCode::Continuation, true, b"x"));
        check_violation(
            Role::Server,
            SessionLimits::default(),
            &wire,
            &[text("done")],
            Violation::UnexpectedContinuation,
        );
    }

    #[test]
    fn new_message_inside_a_fragmented_one_is_1002() {
        for op in [OpCode::Text, OpCode::Binary] {
            let mut wire = peer(Role::Server, OpCode::Text, false, b"a");
            wire.extend(peer(Role::Server, op, true, b"b"));
            bad(Role::Server, &wire, Violation::ExpectedContinuation);
        }
    }

    #[test]
    fn length_with_msb_set_is_1002() {
        let wire = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        bad(Role::Server, &wire, Violation::LengthMsbSet);
    }

    #[test]
    fn one_byte_close_body_is_1002() {
        let wire = peer(Role::Server, OpCode::Close, true, &[0x03]);
        bad(Role::Server, &wire, Violation::CloseBodyOneByte);
    }

    #[test]
    fn invalid_close_codes_are_1002() {
        // Autobahn 7.9.x, plus 1015 and beyond the top of the range.
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            let wire = peer(Role::Server, OpCode::Close, true, &code.to_be_bytes());
            bad(Role::Server, &wire, Violation::InvalidCloseCode);
        }
    }

    #[test]
    fn invalid_utf8_in_text_is_1007() {
        let wire = peer(Role::Server, OpCode::Text, true, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80");
        bad(Role::Server, &wire, Violation::InvalidUtf8);
        // Truncated at the end of a single-frame message.
        let wire = peer(Role::Server, OpCode::Text, true, b"ok\xE2\x82");
        bad(Role::Server, &wire, Violation::InvalidUtf8);
        // Truncated at the end of a fragmented message.
        let mut wire = peer(Role::Client, OpCode::Text, false, b"ok");
        wire.extend(peer(Role::Client, OpCode::Continuation, true, b"\xF0\x9F\x98"));
        bad(Role::Client, &wire, Violation::InvalidUtf8);
        assert_eq!(Violation::InvalidUtf8.code(), 1007);
    }

    #[test]
    fn invalid_utf8_in_close_reason_is_1007() {
        let wire = peer(
            Role::Server,
            OpCode::Close,
            true,
            b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        );
        bad(Role::Server, &wire, Violation::InvalidCloseReason);
        assert_eq!(Violation::InvalidCloseReason.code(), 1007);
    }

    #[test]
    fn too_big_is_1009_from_the_header_alone() {
        let lim = limits(100, 100);
        // A 101-byte frame: the header is enough to refuse it.
        let mut header = BytesMut::new();
        FrameHeader::new(true, OpCode::Binary, Some(KEY), 101).encode(&mut header);
        check_violation(Role::Server, lim, &header, &[], Violation::FrameTooBig);
        // Exactly the limit is fine.
        let ok = peer(Role::Server, OpCode::Binary, true, &[0; 100]);
        check3(Role::Server, lim, &ok, &[Event::Binary(Bytes::from(vec![0; 100]))]);
        // An absurd 64-bit length never allocates anything.
        let mut header = BytesMut::new();
        FrameHeader::new(true, OpCode::Text, Some(KEY), i64::MAX as u64).encode(&mut header);
        check_violation(Role::Server, lim, &header, &[], Violation::FrameTooBig);
    }

    #[test]
    fn message_over_the_limit_is_1009_at_the_fragment_that_crosses_it() {
        let lim = limits(100, 60);
        let mut wire = peer(Role::Server, OpCode::Text, false, &[b'a'; 60]);
        // Only the header of the second fragment: 60 + 41 > 100.
        let mut header = BytesMut::new();
        FrameHeader::new(false, OpCode::Continuation, Some(KEY), 41).encode(&mut header);
        wire.extend_from_slice(&header);
        check_violation(Role::Server, lim, &wire, &[], Violation::MessageTooBig);
        // 60 + 40 fits.
        let mut ok = peer(Role::Server, OpCode::Text, false, &[b'a'; 60]);
        ok.extend(peer(Role::Server, OpCode::Continuation, true, &[b'b'; 40]));
        let expected = format!("{}{}", "a".repeat(60), "b".repeat(40));
        check3(Role::Server, lim, &ok, &[text(&expected)]);
        // A single frame over max_frame but under max_message.
        let big = peer(Role::Server, OpCode::Binary, true, &[0; 61]);
        check_violation(Role::Server, lim, &big, &[], Violation::FrameTooBig);
        assert_eq!(Violation::MessageTooBig.code(), 1009);
    }

    #[test]
    fn events_before_a_violation_come_first_and_replies_keep_order() {
        // Autobahn 5.15: a fragmented message, then a continuation with
        // nothing to continue, all in one read. The first message is
        // delivered, the app echoes it, and only then is the violation found,
        // so the echo goes out before the close frame.
        let r = Role::Server;
        let mut wire = peer(r, OpCode::Text, false, b"frag1");
        wire.extend(peer(r, OpCode::Continuation, true, b"frag2"));
        wire.extend(peer(r, OpCode::Continuation, false, b"frag3"));
        wire.extend(peer(r, OpCode::Text, true, b"frag4"));
        let mut s = Session::server(SessionLimits::default());
        s.receive_data(&wire);
        let Some(Event::Text(t)) = s.next_event() else { panic!("expected the first message") };
        assert_eq!(t, "frag1frag2");
        s.send_text_bytes(t).unwrap();
        assert_eq!(s.next_event(), Some(error(Violation::UnexpectedContinuation)));
        assert_eq!(s.next_event(), None);
        let frames = sent_frames(&drain(&mut s));
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].0.opcode, frames[0].1.as_slice()), (OpCode::Text, &b"frag1frag2"[..]));
        assert_eq!(frames[1].0.opcode, OpCode::Close);
        assert_eq!(s.send_text("late"), Err(SendError::Closed));
    }

    // ---------------------------------------------------------------
    // Fail-fast UTF-8 (Autobahn 6.4.1-6.4.4)
    // ---------------------------------------------------------------

    const PART1: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"; // κόσμε
    const PART2: &[u8] = b"\xf4\x90\x80\x80"; // would be U+110000
    const PART3: &[u8] = b"\x65\x64\x69\x74\x65\x64"; // "edited"

    /// Feed `wire` one byte at a time; return how many bytes had been fed
    /// when the 1007 came out.
    fn bytes_until_1007(role: Role, wire: &[u8]) -> usize {
        let mut s = new_session(role, SessionLimits::default());
        for (i, b) in wire.iter().enumerate() {
            s.receive_data(std::slice::from_ref(b));
            if let Some(e) = s.next_event() {
                assert_eq!(e, error(Violation::InvalidUtf8), "after {} bytes", i + 1);
                return i + 1;
            }
        }
        panic!("no error")
    }

    #[test]
    fn fail_fast_inside_one_unfinished_frame() {
        // 6.4.3/6.4.4: one frame announcing the whole payload, sent in chops.
        for role in [Role::Server, Role::Client] {
            let payload = [PART1, PART2, PART3].concat();
            let wire = peer(role, OpCode::Text, true, &payload);
            let header_len = wire.len() - payload.len();
            // Chop 1 (header + PART1) is fine and incomplete.
            let mut s = new_session(role, SessionLimits::default());
            s.receive_data(&wire[..header_len + PART1.len()]);
            assert_eq!(s.next_event(), None);
            assert_eq!(s.state(), CloseState::Open);
            // Chop 2 is rejected at once, though 6 payload bytes are missing.
            s.receive_data(&wire[header_len + PART1.len()..header_len + PART1.len() + PART2.len()]);
            assert_eq!(s.next_event(), Some(error(Violation::InvalidUtf8)));
            assert!(s.is_closed());
            let frames = sent_frames(&drain(&mut s));
            assert_eq!(parse_close_body(&frames[0].1).unwrap().unwrap().0, 1007);
            // Byte by byte: the error comes with the 0x90, not later.
            assert_eq!(bytes_until_1007(role, &wire), header_len + PART1.len() + 2);
        }
    }

    #[test]
    fn fail_fast_across_fragments() {
        // 6.4.1: three frames; the second holds the bad sequence.
        let r = Role::Server;
        let f1 = peer(r, OpCode::Text, false, PART1);
        let f2 = peer(r, OpCode::Continuation, false, PART2);
        let f3 = peer(r, OpCode::Continuation, true, PART3);
        let wire = [f1.clone(), f2, f3].concat();
        let mut s = Session::server(SessionLimits::default());
        s.receive_data(&f1);
        assert_eq!(s.next_event(), None);
        assert_eq!(bytes_until_1007(r, &wire), f1.len() + 6 + 2);

        // 6.4.2: the bad code point itself is split over two frames:
        // F4 ends the first, 90 80 80 starts the second.
        let g1 = peer(r, OpCode::Text, false, &[PART1, &PART2[..1]].concat());
        let g2 = peer(r, OpCode::Continuation, false, &[&PART2[1..], PART3].concat());
        let wire = [g1.clone(), g2].concat();
        assert_eq!(bytes_until_1007(r, &wire), g1.len() + 6 + 1);
        check_violation(r, SessionLimits::default(), &wire, &[], Violation::InvalidUtf8);
    }

    // ---------------------------------------------------------------
    // Closing (§5.5.1, §7)
    // ---------------------------------------------------------------

    #[test]
    fn peer_close_is_echoed_with_its_code() {
        for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
        {
            let mut body = code.to_be_bytes().to_vec();
            body.extend_from_slice(b"bye");
            let wire = peer(Role::Server, OpCode::Close, true, &body);
            let (s, out) = check3(
                Role::Server,
                SessionLimits::default(),
                &wire,
                &[Event::Close { code: Some(code), reason: "bye".into() }],
            );
            assert_eq!(s.state(), CloseState::Closed, "reply taken, so closed");
            let frames = sent_frames(&out);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].0.opcode, OpCode::Close);
            assert_eq!(frames[0].1, code.to_be_bytes());
        }
    }

    #[test]
    fn close_state_moves_to_closed_when_the_reply_is_taken() {
        let mut s = Session::server(SessionLimits::default());
        s.receive_data(&peer(Role::Server, OpCode::Close, true, b""));
        assert_eq!(s.next_event(), Some(Event::Close { code: None, reason: String::new() }));
        assert_eq!(s.state(), CloseState::CloseReceived);
        assert!(!s.is_closed());
        assert_eq!(s.send_text("x"), Err(SendError::Closed));
        // An empty close is answered with an empty close.
        assert_eq!(s.take_outgoing().unwrap(), &[0x88, 0x00][..]);
        assert!(s.is_closed());
        assert_eq!(s.take_outgoing(), None);
    }

    #[test]
    fn client_echo_close_is_masked() {
        let wire = peer(Role::Client, OpCode::Close, true, &1001u16.to_be_bytes());
        let (_, out) = check3(
            Role::Client,
            SessionLimits::default(),
            &wire,
            &[Event::Close { code: Some(1001), reason: String::new() }],
        );
        let frames = sent_frames(&out);
        assert_eq!(frames[0].0.mask, Some(KEY));
        assert_eq!(frames[0].1, 1001u16.to_be_bytes());
    }

    #[test]
    fn close_in_the_middle_of_a_fragmented_message() {
        // Autobahn 7.1.5: the half message is dropped, the close is echoed.
        let r = Role::Server;
        let mut wire = peer(r, OpCode::Text, false, b"fragment1");
        wire.extend(peer(r, OpCode::Close, true, &1000u16.to_be_bytes()));
        wire.extend(peer(r, OpCode::Continuation, true, b"fragment2"));
        let (_, out) =
            check3(r, SessionLimits::default(), &wire, &[Event::Close { code: Some(1000), reason: String::new() }]);
        assert_eq!(sent_frames(&out)[0].1, 1000u16.to_be_bytes());
    }

    #[test]
    fn we_close_first_then_ignore_data_until_the_peer_closes() {
        let r = Role::Server;
        let mut s = Session::server(SessionLimits::default());
        s.close(1001, "going away").unwrap();
        assert_eq!(s.state(), CloseState::CloseSent);
        let frames = sent_frames(&drain(&mut s));
        assert_eq!(parse_close_body(&frames[0].1), Ok(Some((1001, "going away"))));
        assert_eq!(s.send_text("more"), Err(SendError::Closed));
        assert_eq!(s.send_ping(b""), Err(SendError::Closed));
        assert_eq!(s.close(1000, ""), Err(SendError::Closed));

        let mut wire = peer(r, OpCode::Text, true, b"in flight");
        wire.extend(peer(r, OpCode::Ping, true, b"p"));
        wire.extend(peer(r, OpCode::Close, true, &1001u16.to_be_bytes()));
        assert_eq!(feed(&mut s, &wire, 3), [Event::Close { code: Some(1001), reason: String::new() }]);
        assert!(s.is_closed());
        assert_eq!(s.failure(), None);
        // No pong and no second close: nothing is sent after our Close.
        assert_eq!(s.outgoing_len(), 0);
    }

    #[test]
    fn violation_after_our_close_sends_no_second_close() {
        let mut s = Session::server(SessionLimits::default());
        s.close(1000, "").unwrap();
        drain(&mut s);
        s.receive_data(&peer(Role::Server, OpCode::Close, true, &[0x03]));
        assert_eq!(s.next_event(), Some(error(Violation::CloseBodyOneByte)));
        assert!(s.is_closed());
        assert_eq!(s.outgoing_len(), 0);
    }

    #[test]
    fn close_arguments_are_checked() {
        let mut s = Session::server(SessionLimits::default());
        assert_eq!(s.close(1005, ""), Err(SendError::InvalidCloseCode(1005)));
        assert_eq!(s.state(), CloseState::Open);
        // The reason is cut to 123 bytes at a character boundary.
        let long = "é".repeat(100); // 200 bytes
        s.close(4000, &long).unwrap();
        let frames = sent_frames(&drain(&mut s));
        let (code, reason) = parse_close_body(&frames[0].1).unwrap().unwrap();
        assert_eq!(code, 4000);
        assert_eq!(reason, "é".repeat(61)); // 122 bytes
        assert!(frames[0].1.len() <= 125);
    }

    // ---------------------------------------------------------------
    // Sending
    // ---------------------------------------------------------------

    #[test]
    fn small_frames_are_coalesced_large_ones_not_copied() {
        let mut s = Session::server(SessionLimits::default());
        s.send_text("a").unwrap();
        s.send_ping(b"p").unwrap();
        let big = Bytes::from(vec![7u8; 10_000]);
        s.send_binary_bytes(big.clone()).unwrap();
        s.send_text("z").unwrap();
        let chunks: Vec<Bytes> = s.drain_outgoing().collect();
        // [text a + ping + big's header], [big payload, same memory], [text z]
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        let frames = sent_frames(&all);
        let ops: Vec<OpCode> = frames.iter().map(|f| f.0.opcode).collect();
        assert_eq!(ops, [OpCode::Text, OpCode::Ping, OpCode::Binary, OpCode::Text]);
        assert_eq!(s.outgoing_len(), 0);
    }

    #[test]
    fn fan_out_encodes_once() {
        let frame = encode_server_text(b"{\"id\":1,\"data\":\"hi\"}");
        let mut a = Session::server(SessionLimits::default());
        let mut b = Session::server(SessionLimits::default());
        a.send_encoded(&frame).unwrap();
        b.send_encoded(&frame).unwrap();
        let mut direct = Session::server(SessionLimits::default());
        direct.send_text("{\"id\":1,\"data\":\"hi\"}").unwrap();
        let expected = drain(&mut direct);
        assert_eq!(drain(&mut a), expected);
        assert_eq!(drain(&mut b), expected);
        // Large frames are shared, not copied.
        let big = encode_server_text(&[b'x'; 5000]);
        a.send_encoded(&big).unwrap();
        assert_eq!(a.take_outgoing().unwrap().as_ptr(), big.as_ptr());
        let mut c = Session::client(SessionLimits::default(), || KEY);
        assert_eq!(c.send_encoded(&frame), Err(SendError::NotServer));
    }

    /// What a driver sees when the socket takes part of the queue at a time: the small
    /// frames' buffer is written on from where the last write stopped, its room is
    /// reused once it is all written, and a large frame queued behind a partly written
    /// small one keeps every byte in order.
    #[test]
    fn a_partly_written_queue_goes_on_where_it_stopped() {
        let frame = |data: &[u8]| {
            let mut one = Session::server(SessionLimits::default());
            one.send_binary(data).unwrap();
            drain(&mut one)
        };
        let mut s = Session::server(SessionLimits::default());
        s.send_binary(&[1; 10]).unwrap();
        s.consume_outgoing(5);
        s.send_binary(&[2; 3]).unwrap();
        let (front, alone) = s.outgoing_front().unwrap();
        assert_eq!((front, alone), (&[&frame(&[1; 10])[5..], &frame(&[2; 3])[..]].concat()[..], true));
        let start = front.as_ptr() as usize - 5; // where the buffer begins
        s.consume_outgoing(s.outgoing_len());
        assert_eq!(s.outgoing_front(), None);
        s.send_binary(&[3; 4]).unwrap();
        let (front, _) = s.outgoing_front().unwrap();
        assert_eq!((front, front.as_ptr() as usize), (&frame(&[3; 4])[..], start), "the same room, from its front");

        // A large frame behind a partly written small one.
        s.consume_outgoing(2);
        let big = Bytes::from(vec![4u8; 5000]);
        s.send_binary_bytes(big.clone()).unwrap();
        let mut slices = [std::io::IoSlice::new(&[]); 4];
        let n = s.outgoing_slices(&mut slices);
        let queued: Vec<u8> = slices[..n].iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(queued, [&frame(&[3; 4])[2..], &frame(&big)[..]].concat());
        assert_eq!(slices[n - 1].as_ptr(), big.as_ptr(), "the large payload is not copied");
        let total = s.outgoing_len();
        s.consume_outgoing(total);
        assert_eq!((s.outgoing_len(), s.take_outgoing()), (0, None));
    }

    #[test]
    fn client_masks_every_frame_with_a_fresh_key() {
        let mut n = 0u8;
        let mut c = Session::client(SessionLimits::default(), move || {
            n += 1;
            [n, n, n, n]
        });
        c.send_text("one").unwrap();
        c.send_binary_bytes(Bytes::from(vec![1u8; 5000])).unwrap();
        c.send_ping(b"hb").unwrap();
        c.close(1000, "done").unwrap();
        let frames = sent_frames(&drain(&mut c));
        let keys: Vec<_> = frames.iter().map(|f| f.0.mask).collect();
        assert_eq!(keys, [Some([1; 4]), Some([2; 4]), Some([3; 4]), Some([4; 4])]);
        assert_eq!(frames[0].1, b"one");
        assert_eq!(frames[1].1, vec![1u8; 5000]);
        assert_eq!(parse_close_body(&frames[3].1), Ok(Some((1000, "done"))));
    }

    #[test]
    fn session_can_move_between_threads() {
        // A tokio driver spawns one task per connection.
        fn is_send<T: Send>() {}
        is_send::<Session>();
        is_send::<Event>();
    }

    #[test]
    fn control_payload_limit_on_send() {
        let mut s = Session::server(SessionLimits::default());
        assert_eq!(s.send_ping(&[0; 126]), Err(SendError::ControlTooLong));
        assert!(s.send_ping(&[0; 125]).is_ok());
    }

    // ---------------------------------------------------------------
    // permessage-deflate (RFC 7692)
    // ---------------------------------------------------------------

    fn deflating(role: Role, lim: SessionLimits, params: DeflateParams) -> Session {
        new_session(role, lim).with_deflate(params)
    }

    /// Feed `input` split in two at every offset, and one byte at a time, to
    /// fresh deflate sessions; each way must yield `expected`.
    fn every_split_deflate(role: Role, lim: SessionLimits, input: &[u8], expected: &[Event]) {
        for cut in 0..=input.len() {
            let mut s = deflating(role, lim, DeflateParams::default());
            let mut got = Vec::new();
            for piece in [&input[..cut], &input[cut..]] {
                s.receive_data(piece);
                while let Some(e) = s.next_event() {
                    got.push(e);
                }
            }
            assert_eq!(got, expected, "split at {cut}");
        }
        let mut s = deflating(role, lim, DeflateParams::default());
        assert_eq!(feed(&mut s, input, 1), expected, "bytewise");
    }

    #[test]
    fn rfc_7692_7_2_3_frames() {
        let lim = SessionLimits::default();
        // §7.2.3.1: "Hello" in one compressed frame, and in two fragments
        // (RSV1 on the first only).
        every_split_deflate(
            Role::Client,
            lim,
            &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &[text("Hello")],
        );
        every_split_deflate(
            Role::Client,
            lim,
            &[0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00],
            &[text("Hello")],
        );
        // §7.2.3.2: the second message refers to the first (context takeover).
        let two = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
        every_split_deflate(Role::Client, lim, &two, &[text("Hello"), text("Hello")]);
        // §7.2.3.3-5: no compression, BFINAL, two blocks; a ping in between.
        let mut wire = vec![0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        wire.extend([0x89, 0x00]);
        wire.extend([0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]);
        wire.extend([0xc2, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]);
        every_split_deflate(
            Role::Client,
            lim,
            &wire,
            &[text("Hello"), Event::Ping(Bytes::new()), text("Hello"), Event::Binary(Bytes::from_static(b"Hello"))],
        );
        // And the sender: the RFC's bytes, RSV1 set, masked towards a server.
        let mut server = deflating(Role::Server, lim, DeflateParams::default());
        server.send_text("Hello").unwrap();
        server.send_text("Hello").unwrap();
        assert_eq!(drain(&mut server), two);
        let mut client = deflating(Role::Client, lim, DeflateParams::default());
        client.send_binary(b"Hello").unwrap();
        let frames = sent_frames(&drain(&mut client));
        assert!(frames[0].0.rsv1 && frames[0].0.mask == Some(KEY));
        assert_eq!(frames[0].1, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    }

    #[test]
    fn deflate_sessions_talk_and_control_frames_stay_plain() {
        for params in [
            DeflateParams::default(),
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 8,
                client_max_window_bits: 9,
            },
        ] {
            let lim = SessionLimits::default();
            let mut server = deflating(Role::Server, lim, params);
            let mut client = deflating(Role::Client, lim, params);
            let long = "the same words again and again ".repeat(200);
            client.send_text(&long).unwrap();
            client.send_text(&long).unwrap();
            client.send_ping(b"p").unwrap();
            client.send_binary(&[]).unwrap();
            let bytes = drain(&mut client);
            assert!(bytes.len() < long.len() / 4, "compressed: {}", bytes.len());
            let frames = sent_frames(&bytes);
            assert_eq!(frames.iter().map(|f| f.0.rsv1).collect::<Vec<_>>(), [true, true, false, true]);
            let events = feed(&mut server, &bytes, 7);
            assert_eq!(
                events,
                [text(&long), text(&long), Event::Ping(Bytes::from_static(b"p")), Event::Binary(Bytes::new())]
            );
            server.send_text(&long).unwrap();
            server.close(1000, "").unwrap();
            let frames = sent_frames(&drain(&mut server));
            assert_eq!(
                frames.iter().map(|f| (f.0.opcode, f.0.rsv1)).collect::<Vec<_>>(),
                [(OpCode::Pong, false), (OpCode::Text, true), (OpCode::Close, false)]
            );
        }
    }

    #[test]
    fn rsv1_rules_with_deflate() {
        let lim = SessionLimits::default();
        let params = DeflateParams::default();
        let expect = |wire: Vec<u8>, v: Violation| {
            let mut s = deflating(Role::Server, lim, params);
            let events = feed(&mut s, &wire, 1);
            assert_eq!(events.last(), Some(&error(v)), "{wire:02x?}");
        };
        // RSV1 on a control frame, on a continuation; RSV2 and RSV3 still 1002.
        let mut ping = peer(Role::Server, OpCode::Ping, true, b"");
        ping[0] |= 0x40;
        expect(ping, Violation::MisplacedRsv1);
        let mut wire = peer(Role::Server, OpCode::Text, false, b"a");
        let mut cont = peer(Role::Server, OpCode::Continuation, true, b"b");
        cont[0] |= 0x40;
        wire.extend(cont);
        expect(wire, Violation::MisplacedRsv1);
        for bit in [0x20, 0x10] {
            let mut w = peer(Role::Server, OpCode::Text, true, b"a");
            w[0] |= bit;
            expect(w, Violation::ReservedBits);
        }
        // Not DEFLATE data: 1007.
        let mut bad = peer(Role::Server, OpCode::Binary, true, &[0xff, 0xff, 0xff]);
        bad[0] |= 0x40;
        expect(bad, Violation::BadDeflateData);
        // Compressed text that inflates to invalid UTF-8: 1007 as well.
        let mut d = Deflater::new(false, 15);
        let mut w = peer(Role::Server, OpCode::Text, true, &d.compress(b"ok\xff"));
        w[0] |= 0x40;
        expect(w, Violation::InvalidUtf8);
        // Uncompressed messages still pass on a deflate connection.
        let mut s = deflating(Role::Server, lim, params);
        assert_eq!(feed(&mut s, &peer(Role::Server, OpCode::Text, true, b"plain"), 3), [text("plain")]);
    }

    /// A message of `n` MiB of zeros, about 1 KiB per MiB compressed: the first
    /// MiB, then the same sync-flushed MiB again and again (each copy only refers
    /// back to zeros, so the stream stays valid however often it repeats).
    fn zero_bomb(n: usize) -> Vec<u8> {
        let mib = vec![0u8; 1 << 20];
        let mut d = Deflater::new(false, 15);
        let mut out = d.compress(&mib);
        let again = d.compress(&mib);
        for _ in 1..n {
            out.extend_from_slice(&super::super::deflate::TRAILER);
            out.extend_from_slice(&again);
        }
        out
    }

    #[test]
    fn a_compression_bomb_is_1009_after_at_most_max_message_bytes_of_work() {
        // 1 GiB of zeros in about 1 MiB of compressed bytes, sent as 1 KiB frames
        // (RSV1 on the first), against the server's default 1 MiB limit.
        let bomb = zero_bomb(1024);
        assert!(bomb.len() < 1100 * 1024, "{}", bomb.len());
        let lim = SessionLimits::default();
        let mut s = deflating(Role::Server, lim, DeflateParams::default());
        let chunks: Vec<&[u8]> = bomb.chunks(1024).collect();
        let mut sent = 0;
        let mut events = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let op = if i == 0 { OpCode::Binary } else { OpCode::Continuation };
            let mut frame = peer(Role::Server, op, i == chunks.len() - 1, chunk);
            if i == 0 {
                frame[0] |= 0x40;
            }
            s.receive_data(&frame);
            sent += 1;
            events.extend(std::iter::from_fn(|| s.next_event()));
            if s.is_closed() {
                break;
            }
        }
        assert_eq!(events, [error(Violation::MessageTooBig)]);
        assert_eq!(Violation::MessageTooBig.code(), 1009);
        // The work: one byte past the limit, after about 1 KiB of input.
        assert_eq!(s.inflated_bytes(), lim.max_message as u64 + 1);
        assert!(sent <= 2, "stopped after {sent} frames of 1 KiB");
        let frames = sent_frames(&drain(&mut s));
        assert_eq!(parse_close_body(&frames[0].1).unwrap().unwrap().0, 1009);
        // A message just at the limit passes.
        let mut s = deflating(Role::Server, lim, DeflateParams::default());
        let mut frame = peer(Role::Server, OpCode::Binary, true, &zero_bomb(1));
        frame[0] |= 0x40;
        assert_eq!(feed(&mut s, &frame, 4096), [Event::Binary(Bytes::from(vec![0u8; 1 << 20]))]);
    }

    #[test]
    fn client_and_server_sessions_talk_to_each_other() {
        let mut server = Session::server(SessionLimits::default());
        let mut client = Session::client(SessionLimits::default(), || [1, 2, 3, 4]);
        client.send_text("hello server").unwrap();
        client.send_binary(&[0, 159, 146, 150]).unwrap();
        client.send_ping(b"p").unwrap();
        let bytes = drain(&mut client);
        assert_eq!(
            feed(&mut server, &bytes, 5),
            [
                text("hello server"),
                Event::Binary(Bytes::from_static(&[0, 159, 146, 150])),
                Event::Ping(Bytes::from_static(b"p")),
            ]
        );
        server.send_text("hello client").unwrap();
        server.close(1000, "bye").unwrap();
        let bytes = drain(&mut server);
        assert_eq!(
            feed(&mut client, &bytes, 2),
            [
                Event::Pong(Bytes::from_static(b"p")),
                text("hello client"),
                Event::Close { code: Some(1000), reason: "bye".into() },
            ]
        );
        let reply = drain(&mut client);
        assert!(client.is_closed());
        assert_eq!(feed(&mut server, &reply, 1), [Event::Close { code: Some(1000), reason: String::new() }]);
        assert!(server.is_closed());
    }
}
