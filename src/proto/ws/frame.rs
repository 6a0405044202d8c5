//! The frame header, RFC 6455 §5.2, and close codes, §7.4.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! This file only reads and writes that layout. Whether a header is
//! *acceptable* (RSV bits, reserved opcodes, masking direction, control frame
//! rules, size limits) depends on the connection's role and state, so those
//! checks live in `session.rs`, each next to the RFC sentence it enforces.
//! The one exception is the 64-bit length's top bit, which no state can make
//! valid, so [`FrameHeader::parse`] rejects it itself.
//!
//! Parsing is "httparse-style": `Ok(None)` means "not enough bytes yet" and is
//! a normal outcome; the caller reads more and asks again.
//!
//! [`FrameParts::read`] reads a whole frame part by part (which bytes are the
//! fixed header, the extended length, the key and the payload; the payload
//! unmasked; a Close body's code and reason, or why they are invalid): the
//! byte trace and `decode ws` only put that into words (`annotate.rs`).

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::mask::apply_mask;

/// The longest possible header: 2 fixed bytes + 8 length bytes + 4 key bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The 4-bit opcode, §5.2 and §11.8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: the next piece of a fragmented message.
    Continuation,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: start or answer the closing handshake.
    Close,
    /// 0x9: "are you there?"; must be answered with a Pong.
    Ping,
    /// 0xA: the answer to a Ping, or an unsolicited heartbeat.
    Pong,
    /// 0x3-0x7 (data) and 0xB-0xF (control): reserved for future use.
    Reserved(u8),
}

impl OpCode {
    /// Decode the low 4 bits of the first header byte.
    pub fn from_u8(n: u8) -> OpCode {
        match n & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
            OpCode::Reserved(n) => n & 0x0F,
        }
    }

    /// §5.5: "Control frames are identified by opcodes where the most
    /// significant bit of the opcode is 1." (This includes reserved 0xB-0xF.)
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }

    pub fn is_reserved(self) -> bool {
        matches!(self, OpCode::Reserved(_))
    }

    /// The name used in traces.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Continuation => "continuation",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
            OpCode::Reserved(n) if n & 0x8 != 0 => "reserved-control",
            OpCode::Reserved(_) => "reserved-data",
        }
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the three payload length encodings a header used (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LenForm {
    /// 0..=125 in the 7-bit field itself.
    Bits7,
    /// 7-bit field = 126, then a 16-bit length.
    Bits16,
    /// 7-bit field = 127, then a 64-bit length (top bit 0).
    Bits64,
}

impl LenForm {
    /// The form the second header byte's 7-bit length field announces (§5.2: 126 and
    /// 127 say a 16- or 64-bit length follows).
    pub fn announced(b1: u8) -> LenForm {
        match b1 & 0x7F {
            126 => LenForm::Bits16,
            127 => LenForm::Bits64,
            _ => LenForm::Bits7,
        }
    }

    /// The form a sender must use: §5.2 "the minimal number of bytes MUST be
    /// used to encode the length".
    pub fn minimal_for(len: u64) -> LenForm {
        match len {
            0..=125 => LenForm::Bits7,
            126..=0xFFFF => LenForm::Bits16,
            _ => LenForm::Bits64,
        }
    }

    /// Bytes after the second header byte that hold the length.
    pub fn extra_bytes(self) -> usize {
        match self {
            LenForm::Bits7 => 0,
            LenForm::Bits16 => 2,
            LenForm::Bits64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LenForm::Bits7 => "7-bit",
            LenForm::Bits16 => "16-bit",
            LenForm::Bits64 => "64-bit",
        }
    }
}

/// Why a header could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// §5.2: with the 64-bit form, "the most significant bit MUST be 0".
    LengthMsbSet,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::LengthMsbSet => f.write_str("64-bit payload length has its top bit set"),
        }
    }
}

impl std::error::Error for FrameError {}

/// One frame header, as read from or written to the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// This is the final fragment of a message.
    pub fin: bool,
    /// Extension bits; 0 unless an extension gives them a meaning.
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    pub opcode: OpCode,
    /// The masking key, present exactly when the MASK bit is 1.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// How the length was (or will be) encoded. [`encode`](Self::encode)
    /// always writes the minimal form and ignores this field.
    pub len_form: LenForm,
}

impl FrameHeader {
    /// A header with RSV bits clear and the minimal length form.
    pub fn new(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload_len: u64) -> Self {
        FrameHeader {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len,
            len_form: LenForm::minimal_for(payload_len),
        }
    }

    /// How long a header is, known from its second byte alone: the two fixed bytes,
    /// the extended length its 7-bit field announces, and a masking key if MASK is 1
    /// (§5.2). `decode` uses it to say how much a cut header still needs.
    pub fn header_len(b1: u8) -> usize {
        Self::header_len_with(LenForm::announced(b1), b1)
    }

    /// [`header_len`](Self::header_len) with the length form already read from `b1`.
    fn header_len_with(len_form: LenForm, b1: u8) -> usize {
        2 + len_form.extra_bytes() + if b1 & 0x80 != 0 { 4 } else { 0 }
    }

    /// Read a header from the start of `buf`.
    ///
    /// * `Ok(None)`: `buf` holds only part of a header; read more.
    /// * `Ok(Some((header, n)))`: the header is `buf[..n]`; the payload starts
    ///   at `buf[n]` (and may not have arrived yet).
    /// * `Err(_)`: the bytes can never form a valid header.
    ///
    /// Non-minimal length encodings (say, 5 written in the 16-bit form) are
    /// accepted: §5.2 puts the "minimal number of bytes MUST" on the sender,
    /// and refusing them buys nothing. [`is_minimal`](Self::is_minimal) and
    /// [`describe`](Self::describe) point them out.
    #[inline(always)]
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        // The second byte says everything about the header's length, read once.
        let len_form = LenForm::announced(b1);
        let len_end = 2 + len_form.extra_bytes();
        let Some(len_bytes) = buf.get(2..len_end) else {
            return Ok(None);
        };
        let payload_len = match *len_bytes {
            [] => u64::from(b1 & 0x7F),
            // Network byte order (big-endian), §5.2.
            [a, b] => u64::from(u16::from_be_bytes([a, b])),
            _ => {
                let mut be = [0u8; 8];
                be.copy_from_slice(len_bytes);
                u64::from_be_bytes(be)
            }
        };
        // §5.2: "If 127, the following 8 bytes interpreted as a 64-bit
        // unsigned integer (the most significant bit MUST be 0) are the
        // payload length." Checked before waiting for the masking key.
        if payload_len >> 63 != 0 {
            return Err(FrameError::LengthMsbSet);
        }
        let header_len = Self::header_len_with(len_form, b1);
        let Some(key) = buf.get(len_end..header_len) else {
            return Ok(None);
        };
        // Four bytes when MASK is 1, none when it is 0.
        let mask = <[u8; 4]>::try_from(key).ok();
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: OpCode::from_u8(b0),
            mask,
            payload_len,
            len_form,
        };
        Ok(Some((header, header_len)))
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        2 + LenForm::minimal_for(self.payload_len).extra_bytes() + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Write this header, always in the minimal length form (§5.2: "the
    /// minimal number of bytes MUST be used to encode the length"). The
    /// payload is not written; if `mask` is set, the caller masks it.
    #[inline(always)]
    pub fn encode(&self, out: &mut impl BufMut) {
        let b0 = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        // Each part is written with a slice of a fixed length: a store or two each, not
        // a call to copy a length known only at run time.
        match LenForm::minimal_for(self.payload_len) {
            LenForm::Bits7 => out.put_slice(&[b0, mask_bit | self.payload_len as u8]),
            LenForm::Bits16 => {
                out.put_slice(&[b0, mask_bit | 126]);
                out.put_slice(&(self.payload_len as u16).to_be_bytes());
            }
            LenForm::Bits64 => {
                out.put_slice(&[b0, mask_bit | 127]);
                out.put_slice(&self.payload_len.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.put_slice(&key);
        }
    }

    /// Did the sender use the shortest length encoding?
    pub fn is_minimal(&self) -> bool {
        self.len_form == LenForm::minimal_for(self.payload_len)
    }

    /// One line for a byte-trace annotator, e.g.
    /// `FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "FIN={} RSV={}{}{} opcode={:#x} {} MASK={} len={} ({}{})",
            u8::from(self.fin),
            u8::from(self.rsv1),
            u8::from(self.rsv2),
            u8::from(self.rsv3),
            self.opcode.as_u8(),
            self.opcode.name(),
            u8::from(self.mask.is_some()),
            self.payload_len,
            self.len_form.name(),
            if self.is_minimal() { "" } else { ", non-minimal" },
        );
        if let Some(k) = self.mask {
            s.push_str(&format!(" key={:02x}{:02x}{:02x}{:02x}", k[0], k[1], k[2], k[3]));
        }
        s
    }
}

/// Encode a whole frame (header plus payload, masked if `mask` is given) into
/// one buffer. For one-off frames and tests; the session queues frames itself.
pub fn encode_frame(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let header = FrameHeader::new(fin, opcode, mask, payload.len() as u64);
    let mut out = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out.freeze()
}

/// May `code` appear in a Close frame? (§7.4.1, §7.4.2, and the IANA
/// "WebSocket Close Code Number Registry".)
///
/// * 0-999: "Status codes in the range 0-999 are not used."
/// * 1000-1003 and 1007-1011: defined by §7.4.1.
/// * 1004: "Reserved. The specific meaning might be defined in the future."
/// * 1005, 1006, 1015: each "is a reserved value and MUST NOT be set as a
///   status code in a Close control frame by an endpoint" (they stand for "no
///   code", "closed abnormally" and "TLS failure" inside an application).
/// * 1012 (service restart), 1013 (try again later), 1014 (bad gateway): not
///   in the RFC but registered with IANA since, and accepted by Autobahn.
/// * 1016-2999: reserved for future specifications; none registered.
/// * 3000-3999: "reserved for use by libraries, frameworks, and
///   applications", registered with IANA; 4000-4999: "reserved for private
///   use". Both may be sent, so both are accepted.
/// * 5000 and up: not defined at all.
pub fn close_code_is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A short name for a close code, for traces and logs.
pub fn close_code_name(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1004 => "reserved",
        1005 => "no status received (must not be sent)",
        1006 => "abnormal closure (must not be sent)",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake failure (must not be sent)",
        3000..=3999 => "registered (library/framework/application)",
        4000..=4999 => "private use",
        _ => "invalid",
    }
}

/// Why a Close frame's body is unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseBodyError {
    /// A body of exactly one byte cannot hold the 2-byte code.
    OneByte,
    /// A code outside [`close_code_is_valid`].
    InvalidCode(u16),
    /// The reason after this (valid) code is not UTF-8.
    InvalidUtf8(u16),
}

/// Read a Close frame's (unmasked) body, §5.5.1:
///
/// > If there is a body, the first two bytes of the body MUST be a 2-byte
/// > unsigned integer (in network byte order) representing a status code with
/// > value /code/ defined in Section 7.4. Following the 2-byte integer, the
/// > body MAY contain UTF-8-encoded data with value /reason/.
///
/// An empty body is allowed and means "no code" (`Ok(None)`).
pub fn parse_close_body(body: &[u8]) -> Result<Option<(u16, &str)>, CloseBodyError> {
    match body {
        [] => Ok(None),
        [_] => Err(CloseBodyError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code_is_valid(code) {
                return Err(CloseBodyError::InvalidCode(code));
            }
            // A 123-byte reason at most, so std's validator is fine here.
            let reason = std::str::from_utf8(reason).map_err(|_| CloseBodyError::InvalidUtf8(code))?;
            Ok(Some((code, reason)))
        }
    }
}

/// One frame as the codec reads it, part by part: what each run of bytes is and what it
/// says. The byte trace and `decode ws` put this into words; they restate no rule of
/// the layout.
///
/// Every range counts from the frame's first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameParts {
    /// FIN, RSV1-3, the opcode, MASK, and which length form carried the length.
    pub header: FrameHeader,
    /// The two fixed bytes: FIN, RSV1-3, opcode, MASK and the 7-bit length field.
    pub base: Range<usize>,
    /// The 16- or 64-bit extended length; empty in the 7-bit form.
    pub ext_len: Range<usize>,
    /// The masking key; empty (at `ext_len.end`) when MASK is 0.
    pub key: Range<usize>,
    /// The payload the header announces, whether or not it has all arrived.
    pub payload: Range<u64>,
    /// The payload bytes present so far, unmasked (§5.3).
    pub data: Vec<u8>,
    /// For a Close frame whose payload has all arrived: what its body says (§5.5.1).
    pub close: Option<CloseBody>,
}

/// What a Close frame's body says, §5.5.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseBody {
    /// An empty body: no status code, which is allowed.
    NoCode,
    /// A valid code and a UTF-8 reason.
    Code(u16, String),
    /// A body the session refuses, and why.
    Invalid(CloseBodyError),
}

impl FrameParts {
    /// Read the frame at the start of `buf`, whose payload may have arrived in part
    /// (or not at all). `Ok(None)`: the header itself is incomplete; `Err`: the bytes
    /// can never form a header ([`FrameHeader::parse`]).
    pub fn read(buf: &[u8]) -> Result<Option<FrameParts>, FrameError> {
        let Some((header, header_len)) = FrameHeader::parse(buf)? else {
            return Ok(None);
        };
        let ext_end = 2 + header.len_form.extra_bytes();
        let payload = header_len as u64..header_len as u64 + header.payload_len;
        let present = (buf.len() as u64).min(payload.end) as usize;
        let mut data = buf[header_len..present].to_vec();
        header.unmask(&mut data, 0);
        let whole = data.len() as u64 == header.payload_len;
        let close = (header.opcode == OpCode::Close && whole).then(|| match parse_close_body(&data) {
            Ok(None) => CloseBody::NoCode,
            Ok(Some((code, reason))) => CloseBody::Code(code, reason.to_owned()),
            Err(e) => CloseBody::Invalid(e),
        });
        Ok(Some(FrameParts { header, base: 0..2, ext_len: 2..ext_end, key: ext_end..header_len, payload, data, close }))
    }

    /// Has the whole payload arrived?
    pub fn is_complete(&self) -> bool {
        self.data.len() as u64 == self.header.payload_len
    }
}

impl FrameHeader {
    /// Unmask (§5.3) `bytes`, the payload from its byte `offset` on, if this header
    /// carries a key; leave them as they are if not.
    pub fn unmask(&self, bytes: &mut [u8], offset: u64) {
        if let Some(key) = self.mask {
            apply_mask(bytes, key, (offset % 4) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> (FrameHeader, usize) {
        // Every strict prefix is "need more"; the whole is complete.
        for cut in 0..bytes.len() {
            match FrameHeader::parse(&bytes[..cut]) {
                Ok(None) => {}
                Ok(Some((_, n))) if n <= cut => {
                    // Complete early: fine only if the prefix holds the header.
                    let whole = FrameHeader::parse(bytes).unwrap().unwrap();
                    assert_eq!(whole.1, n);
                    return whole;
                }
                other => panic!("prefix {cut}: {other:?}"),
            }
        }
        FrameHeader::parse(bytes).unwrap().unwrap()
    }

    #[test]
    fn rfc_5_7_single_frame_unmasked_text() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = parse_all(&wire);
        assert_eq!(n, 2);
        assert_eq!(h, FrameHeader::new(true, OpCode::Text, None, 5));
        assert_eq!(&wire[n..], b"Hello");
        assert_eq!(encode_frame(OpCode::Text, true, b"Hello", None), &wire[..]);
        assert_eq!(h.describe(), "FIN=1 RSV=000 opcode=0x1 text MASK=0 len=5 (7-bit)");
    }

    #[test]
    fn rfc_5_7_single_frame_masked_text() {
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let (h, n) = parse_all(&wire);
        assert_eq!(n, 6);
        assert_eq!(h, FrameHeader::new(true, OpCode::Text, Some(key), 5));
        let mut payload = wire[n..].to_vec();
        apply_mask(&mut payload, key, 0);
        assert_eq!(payload, b"Hello");
        assert_eq!(encode_frame(OpCode::Text, true, b"Hello", Some(key)), &wire[..]);
        assert_eq!(h.describe(), "FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d");
    }

    #[test]
    fn rfc_5_7_fragmented_unmasked_text() {
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (h1, n1) = parse_all(&first);
        assert_eq!(h1, FrameHeader::new(false, OpCode::Text, None, 3));
        assert_eq!(&first[n1..], b"Hel");
        let (h2, n2) = parse_all(&second);
        assert_eq!(h2, FrameHeader::new(true, OpCode::Continuation, None, 2));
        assert_eq!(&second[n2..], b"lo");
        assert_eq!(encode_frame(OpCode::Text, false, b"Hel", None), &first[..]);
        assert_eq!(encode_frame(OpCode::Continuation, true, b"lo", None), &second[..]);
    }

    #[test]
    fn rfc_5_7_ping_and_masked_pong() {
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let key = [0x37, 0xfa, 0x21, 0x3d];
        assert_eq!(parse_all(&ping).0, FrameHeader::new(true, OpCode::Ping, None, 5));
        assert_eq!(parse_all(&pong).0, FrameHeader::new(true, OpCode::Pong, Some(key), 5));
        assert_eq!(encode_frame(OpCode::Ping, true, b"Hello", None), &ping[..]);
        assert_eq!(encode_frame(OpCode::Pong, true, b"Hello", Some(key)), &pong[..]);
    }

    #[test]
    fn rfc_5_7_256_byte_binary_uses_16_bit_length() {
        let payload = vec![0xAB; 256];
        let frame = encode_frame(OpCode::Binary, true, &payload, None);
        assert_eq!(&frame[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(frame.len(), 4 + 256);
        let (h, n) = parse_all(&frame);
        assert_eq!(n, 4);
        assert_eq!(h.len_form, LenForm::Bits16);
        assert_eq!(h.payload_len, 256);
        assert!(h.describe().contains("len=256 (16-bit)"));
    }

    #[test]
    fn rfc_5_7_64k_binary_uses_64_bit_length() {
        let payload = vec![0xCD; 65536];
        let frame = encode_frame(OpCode::Binary, true, &payload, None);
        assert_eq!(&frame[..10], &[0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]);
        let (h, n) = parse_all(&frame);
        assert_eq!(n, 10);
        assert_eq!(h.len_form, LenForm::Bits64);
        assert_eq!(h.payload_len, 65536);
    }

    #[test]
    fn length_form_boundaries() {
        for (len, form, hlen) in [
            (0u64, LenForm::Bits7, 2),
            (125, LenForm::Bits7, 2),
            (126, LenForm::Bits16, 4),
            (0xFFFF, LenForm::Bits16, 4),
            (0x1_0000, LenForm::Bits64, 10),
            (i64::MAX as u64, LenForm::Bits64, 10),
        ] {
            let h = FrameHeader::new(true, OpCode::Binary, None, len);
            let mut out = BytesMut::new();
            h.encode(&mut out);
            assert_eq!(out.len(), hlen);
            assert_eq!(h.encoded_len(), hlen);
            let (back, n) = FrameHeader::parse(&out).unwrap().unwrap();
            assert_eq!((back, n), (h, hlen));
            assert_eq!(back.len_form, form);
        }
    }

    #[test]
    fn rejects_64_bit_length_with_msb_set_before_the_key_arrives() {
        let wire = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(FrameHeader::parse(&wire), Err(FrameError::LengthMsbSet));
        // 9 bytes: the length is not complete yet.
        assert_eq!(FrameHeader::parse(&wire[..9]), Ok(None));
    }

    #[test]
    fn accepts_non_minimal_lengths_and_says_so() {
        let wire = [0x81, 0x7E, 0x00, 0x05, b'H', b'e', b'l', b'l', b'o'];
        let (h, n) = parse_all(&wire);
        assert_eq!(n, 4);
        assert_eq!(h.payload_len, 5);
        assert!(!h.is_minimal());
        assert!(h.describe().contains("len=5 (16-bit, non-minimal)"));
        // Re-encoding makes it minimal.
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(&out[..], &[0x81, 0x05]);
    }

    #[test]
    fn rsv_bits_and_reserved_opcodes_round_trip() {
        let wire = [0xF3, 0x00]; // FIN, RSV1-3, opcode 3
        let (h, _) = parse_all(&wire);
        assert!(h.rsv1 && h.rsv2 && h.rsv3);
        assert_eq!(h.opcode, OpCode::Reserved(3));
        assert!(!h.opcode.is_control());
        assert!(OpCode::Reserved(0xB).is_control());
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(&out[..], &wire);
        assert!(h.describe().starts_with("FIN=1 RSV=111 opcode=0x3 reserved-data"));
    }

    #[test]
    fn opcodes_round_trip() {
        for n in 0..16u8 {
            assert_eq!(OpCode::from_u8(n).as_u8(), n);
        }
        assert!(OpCode::Close.is_control() && OpCode::Ping.is_control());
        assert!(!OpCode::Text.is_control() && !OpCode::Continuation.is_control());
    }

    #[test]
    fn close_codes() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| close_code_is_valid(c)).collect();
        for c in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            assert!(valid.contains(&c), "{c}");
        }
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!close_code_is_valid(c), "{c}");
        }
        assert_eq!(valid.len(), 4 + 8 + 2000);
    }

    #[test]
    fn close_bodies() {
        assert_eq!(parse_close_body(b""), Ok(None));
        assert_eq!(parse_close_body(b"\x03"), Err(CloseBodyError::OneByte));
        assert_eq!(parse_close_body(b"\x03\xe8"), Ok(Some((1000, ""))));
        assert_eq!(parse_close_body(b"\x03\xe8bye"), Ok(Some((1000, "bye"))));
        assert_eq!(parse_close_body(b"\x03\xed"), Err(CloseBodyError::InvalidCode(1005)));
        assert_eq!(parse_close_body(b"\x03\xe8\xff"), Err(CloseBodyError::InvalidUtf8(1000)));
    }

    #[test]
    fn parts_and_their_byte_ranges() {
        // RFC 6455 §5.7: the masked "Hello", whole and with its payload in part.
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let f = FrameParts::read(&wire).unwrap().unwrap();
        assert_eq!((f.base.clone(), f.ext_len.clone(), f.key.clone(), f.payload.clone()), (0..2, 2..2, 2..6, 6..11));
        assert_eq!((f.data.as_slice(), &f.close, f.is_complete()), (&b"Hello"[..], &None, true));
        let f = FrameParts::read(&wire[..8]).unwrap().unwrap();
        assert_eq!((f.data.as_slice(), f.is_complete()), (&b"He"[..], false));
        assert_eq!(FrameParts::read(&wire[..5]), Ok(None));
        // The 16- and 64-bit forms, unmasked.
        let f = FrameParts::read(&encode_frame(OpCode::Binary, true, &[1; 256], None)).unwrap().unwrap();
        assert_eq!((f.ext_len, f.key, f.payload, f.header.len_form), (2..4, 4..4, 4..260, LenForm::Bits16));
        let big = encode_frame(OpCode::Binary, true, &vec![2; 65536], Some([9, 8, 7, 6]));
        let f = FrameParts::read(&big[..20]).unwrap().unwrap();
        assert_eq!((f.ext_len, f.key, f.payload), (2..10, 10..14, 14..65550));
        assert_eq!(f.data, [2; 6]);
        // Close bodies: read only once whole.
        let close =
            |body: &[u8]| FrameParts::read(&encode_frame(OpCode::Close, true, body, Some([1, 2, 3, 4]))).unwrap();
        assert_eq!(close(b"\x03\xe8bye").unwrap().close, Some(CloseBody::Code(1000, "bye".into())));
        assert_eq!(close(b"").unwrap().close, Some(CloseBody::NoCode));
        assert_eq!(close(b"\x03").unwrap().close, Some(CloseBody::Invalid(CloseBodyError::OneByte)));
        assert_eq!(close(b"\x03\xe8\xff").unwrap().close, Some(CloseBody::Invalid(CloseBodyError::InvalidUtf8(1000))));
        let wire = encode_frame(OpCode::Close, true, b"\x03\xe8bye", None);
        assert_eq!(FrameParts::read(&wire[..4]).unwrap().unwrap().close, None);
    }
}
