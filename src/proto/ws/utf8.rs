//! Incremental, fail-fast UTF-8 validation (RFC 6455 §5.6, §8.1; RFC 3629).
//!
//! A text message must be UTF-8 as a whole, but it reaches us in pieces:
//!
//! > Note that a particular text frame might include a partial UTF-8
//! > sequence; however, the whole message MUST contain valid UTF-8. (§5.6)
//!
//! > When an endpoint is to interpret a byte stream as UTF-8 but finds that
//! > the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST
//! > _Fail the WebSocket Connection_. (§8.1)
//!
//! So the validator must carry a half-finished character from one piece to
//! the next, and it should reject as soon as a byte *cannot* begin or continue
//! a valid sequence, rather than waiting for the end of the message ("fail
//! fast": the Autobahn TestSuite checks this in cases 6.4.x).
//!
//! The state machine is Table 3-7 of the Unicode Standard ("Well-Formed UTF-8
//! Byte Sequences"), written out by hand:
//!
//! ```text
//! code points          1st byte   2nd byte   3rd byte   4th byte
//! U+0000..U+007F       00..7F
//! U+0080..U+07FF       C2..DF     80..BF
//! U+0800..U+0FFF       E0         A0..BF     80..BF              (E0 80..9F would be overlong)
//! U+1000..U+CFFF       E1..EC     80..BF     80..BF
//! U+D000..U+D7FF       ED         80..9F     80..BF              (ED A0..BF would be a surrogate)
//! U+E000..U+FFFF       EE..EF     80..BF     80..BF
//! U+10000..U+3FFFF     F0         90..BF     80..BF     80..BF   (F0 80..8F would be overlong)
//! U+40000..U+FFFFF     F1..F3     80..BF     80..BF     80..BF
//! U+100000..U+10FFFF   F4         80..8F     80..BF     80..BF   (F4 90.. would be > U+10FFFF)
//! ```
//!
//! Bytes C0, C1 (overlong 2-byte forms) and F5..FF never appear. Only the
//! second byte of a sequence ever has a range narrower than 80..BF, so the
//! state is just "how many continuation bytes are still owed, and which range
//! the next one must fall in". Björn Höhrmann's well-known DFA encodes this
//! same table as two lookup tables; the explicit form is easier to check
//! against the standard line by line.
//!
//! [`Utf8Bytes`] is the result type for text messages: `Bytes` that have
//! passed this validator, readable as `&str` without copying.

use std::fmt;

use bytes::Bytes;

/// Why a byte stream is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Error {
    /// The byte at `position` (counted from the first byte ever fed) cannot
    /// start or continue a well-formed sequence.
    Invalid { position: u64 },
    /// The stream ended inside a multi-byte sequence that began at `position`
    /// (reported by [`Utf8Validator::finish`]).
    Incomplete { position: u64 },
}

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Utf8Error::Invalid { position } => write!(f, "invalid UTF-8 at byte {position}"),
            Utf8Error::Incomplete { position } => {
                write!(f, "truncated UTF-8 sequence starting at byte {position}")
            }
        }
    }
}

impl std::error::Error for Utf8Error {}

/// Where the validator is within the grammar of Table 3-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between characters: the next byte must start one.
    Ground,
    /// Inside a character: `need` continuation bytes are still owed, and the
    /// next one must lie in `lo..=hi`.
    Continue { need: u8, lo: u8, hi: u8 },
    /// A bad byte was seen; every later call reports the same error.
    Failed(Utf8Error),
}

/// An incremental UTF-8 validator: feed it pieces of one stream (one text
/// message) in order, then call [`finish`](Self::finish) at the end.
#[derive(Debug, Clone)]
pub struct Utf8Validator {
    state: State,
    /// Bytes fed so far; turns a position within a piece into a position
    /// within the whole stream for error reports.
    consumed: u64,
    /// Where the current multi-byte sequence began (for `Incomplete`).
    seq_start: u64,
}

impl Default for Utf8Validator {
    fn default() -> Self {
        Self::new()
    }
}

/// Every byte of the word has its top bit clear, i.e. all eight are ASCII.
const ASCII_MASK: u64 = 0x8080_8080_8080_8080;

impl Utf8Validator {
    pub fn new() -> Self {
        Utf8Validator { state: State::Ground, consumed: 0, seq_start: 0 }
    }

    /// Validate the next piece of the stream. Returns an error as soon as a
    /// byte makes the stream invalid, even if the sequence it belongs to is
    /// not finished yet (e.g. `F4 90`: no character above U+10FFFF exists, so
    /// there is no point waiting for the remaining two bytes).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        let mut state = self.state;
        if let State::Failed(e) = state {
            return Err(e);
        }
        let mut i = 0;
        while i < bytes.len() {
            if state == State::Ground {
                // Fast path: most text is ASCII, and an ASCII byte in the
                // ground state leaves it unchanged, so skip a word at a time.
                while let Some(word) = bytes.get(i..i + 8) {
                    let word = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
                    if word & ASCII_MASK != 0 {
                        break;
                    }
                    i += 8;
                }
                let Some(&b) = bytes.get(i) else { break };
                if b < 0x80 {
                    i += 1;
                    continue;
                }
                self.seq_start = self.consumed + i as u64;
            }
            state = match step(state, bytes[i]) {
                Some(next) => next,
                None => {
                    let e = Utf8Error::Invalid { position: self.consumed + i as u64 };
                    self.state = State::Failed(e);
                    return Err(e);
                }
            };
            i += 1;
        }
        self.state = state;
        self.consumed += bytes.len() as u64;
        Ok(())
    }

    /// The stream has ended: it is valid only if no sequence is half done.
    /// Resets the validator, so it is ready for the next message.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let result = match self.state {
            State::Ground => Ok(()),
            State::Continue { .. } => Err(Utf8Error::Incomplete { position: self.seq_start }),
            State::Failed(e) => Err(e),
        };
        *self = Self::new();
        result
    }

    /// True between characters (nothing owed). `finish` would succeed.
    pub fn is_complete(&self) -> bool {
        self.state == State::Ground
    }

    /// Forget everything: start a new stream.
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

/// One transition of Table 3-7. `None` means "this byte is not allowed here".
fn step(state: State, b: u8) -> Option<State> {
    // Shorthand for "owe `need` more, the next in lo..=hi".
    let cont = |need, lo, hi| Some(State::Continue { need, lo, hi });
    match state {
        State::Ground => match b {
            0x00..=0x7F => Some(State::Ground),
            0xC2..=0xDF => cont(1, 0x80, 0xBF),
            0xE0 => cont(2, 0xA0, 0xBF), // E0 80..9F: overlong (< U+0800)
            0xE1..=0xEC | 0xEE..=0xEF => cont(2, 0x80, 0xBF),
            0xED => cont(2, 0x80, 0x9F), // ED A0..BF: surrogates U+D800..DFFF
            0xF0 => cont(3, 0x90, 0xBF), // F0 80..8F: overlong (< U+10000)
            0xF1..=0xF3 => cont(3, 0x80, 0xBF),
            0xF4 => cont(3, 0x80, 0x8F), // F4 90..: above U+10FFFF
            // 80..BF: a continuation byte with nothing to continue;
            // C0, C1: could only encode U+0000..U+007F (overlong);
            // F5..FF: would encode above U+10FFFF, or are not UTF-8 at all.
            _ => None,
        },
        State::Continue { need, lo, hi } => {
            if !(lo..=hi).contains(&b) {
                None
            } else if need == 1 {
                Some(State::Ground)
            } else {
                // Only the first continuation byte has a narrowed range.
                cont(need - 1, 0x80, 0xBF)
            }
        }
        State::Failed(_) => None,
    }
}

/// Validate a complete byte string in one go.
pub fn validate(bytes: &[u8]) -> Result<(), Utf8Error> {
    let mut v = Utf8Validator::new();
    v.feed(bytes)?;
    v.finish()
}

/// `Bytes` known to hold valid UTF-8: a text message's payload, handed out
/// without copying it into a `String`. Read it with [`as_str`](Self::as_str)
/// (or through `Deref<Target = str>`), or take the `Bytes` back with
/// [`into_bytes`](Self::into_bytes) to forward it unchanged.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Checks `bytes`, and wraps them if they are UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, Utf8Error> {
        validate(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// For callers in this module tree that have just validated `bytes`
    /// themselves (the session validates incrementally as bytes arrive, so
    /// checking again here would double the work on every text message).
    pub(super) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either validated the bytes (try_from_bytes,
        // from_validated after the session's validator) or took them from a
        // `str`/`String`, and `Bytes` is immutable, so they are still UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(s: Utf8Bytes) -> Bytes {
        s.0
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position at which a fail-fast validator must reject `bytes`,
    /// derived from std's verdict: std reports the start of the bad sequence
    /// (`valid_up_to`) and how many bytes of it were a valid prefix
    /// (`error_len`); the byte right after that prefix is the first one that
    /// cannot fit. `None` = valid, `Some(None)` = only truncated at the end.
    fn std_verdict(bytes: &[u8]) -> Option<Option<u64>> {
        match std::str::from_utf8(bytes) {
            Ok(_) => None,
            Err(e) => match e.error_len() {
                None => Some(None),
                Some(len) => {
                    let start = e.valid_up_to();
                    // A byte that cannot start a sequence is itself the
                    // offender; otherwise the offender follows the prefix.
                    let lead_ok = step(State::Ground, bytes[start]).is_some();
                    let at = if lead_ok { start + len } else { start };
                    Some(Some(at as u64))
                }
            },
        }
    }

    fn ours_whole(bytes: &[u8]) -> Option<Option<u64>> {
        let mut v = Utf8Validator::new();
        match v.feed(bytes) {
            Err(Utf8Error::Invalid { position }) => Some(Some(position)),
            Err(e) => panic!("feed returned {e:?}"),
            Ok(()) => match v.finish() {
                Ok(()) => None,
                Err(Utf8Error::Incomplete { .. }) => Some(None),
                Err(e) => panic!("finish returned {e:?}"),
            },
        }
    }

    fn check(bytes: &[u8]) {
        assert_eq!(ours_whole(bytes), std_verdict(bytes), "input {bytes:02x?}");
    }

    #[test]
    fn all_one_and_two_byte_inputs() {
        for a in 0..=255u8 {
            check(&[a]);
            for b in 0..=255u8 {
                check(&[a, b]);
            }
        }
    }

    /// Bytes around every boundary of Table 3-7.
    const EDGES: [u8; 16] =
        [0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xF4, 0xFF];

    #[test]
    fn three_and_four_byte_inputs_around_every_boundary() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for &c in &EDGES {
                    check(&[a, b, c]);
                    // Four bytes only matter after a 3- or 4-byte lead (E0..FF);
                    // 0x41 stands in for every other lead.
                    if a >= 0xE0 || a == 0x41 {
                        for &d in &EDGES {
                            check(&[a, b, c, d]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_scalar_value_is_accepted() {
        // Every code point std can encode, i.e. all but the surrogates.
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = c.encode_utf8(&mut buf);
            assert_eq!(validate(s.as_bytes()), Ok(()), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn named_rejections_and_their_positions() {
        let cases: &[(&[u8], u64)] = &[
            (b"\xC0\x80", 0),         // overlong NUL
            (b"\xC1\xBF", 0),         // overlong
            (b"a\xE0\x80\x80", 2),    // overlong 3-byte: rejected at 80
            (b"\xED\xA0\x80", 1),     // surrogate U+D800: rejected at A0
            (b"\xED\xBF\xBF", 1),     // surrogate U+DFFF
            (b"\xF0\x80\x80\x80", 1), // overlong 4-byte
            (b"\xF4\x90\x80\x80", 1), // U+110000: rejected at 90
            (b"\xF5", 0),
            (b"\xFF", 0),
            (b"\x80", 0),     // stray continuation
            (b"\xE1\x41", 1), // sequence cut short by ASCII
            (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited", 12), // Autobahn 6.4.1
        ];
        for &(bytes, pos) in cases {
            assert_eq!(ours_whole(bytes), Some(Some(pos)), "input {bytes:02x?}");
        }
    }

    fn test_strings() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!".to_vec(),
            "κόσμε".as_bytes().to_vec(),
            "\u{10FFFF}\u{FFFF}\u{800}\u{7FF}\u{80}\u{7F}\u{10000}\u{D7FF}\u{E000}".as_bytes().to_vec(),
            "a mostly ASCII line that is long enough to use the word-at-a-time path ∑ ok".as_bytes().to_vec(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64".to_vec(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64".to_vec(),
            b"0123456789abcdef\xF0\x9F\x98\x80".to_vec(),
            b"0123456789abcdef\xF0\x9F\x98".to_vec(), // truncated at the end
            b"0123456789abcdef\xC0\xAF0123456789".to_vec(),
        ];
        // Every 1..4-byte boundary character, alone and between ASCII.
        for c in [0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF] {
            let c = char::from_u32(c).unwrap();
            v.push(format!("{c}").into_bytes());
            v.push(format!("abcdefgh{c}ijklmnop{c}").into_bytes());
        }
        v
    }

    #[test]
    fn split_at_every_offset_matches_whole() {
        for s in test_strings() {
            let whole = ours_whole(&s);
            assert_eq!(whole, std_verdict(&s), "whole {s:02x?}");
            for cut in 0..=s.len() {
                let mut v = Utf8Validator::new();
                let r = v.feed(&s[..cut]).and_then(|()| v.feed(&s[cut..]));
                let got = match r {
                    Err(Utf8Error::Invalid { position }) => Some(Some(position)),
                    Err(e) => panic!("{e:?}"),
                    Ok(()) => v.finish().err().map(|_| None),
                };
                assert_eq!(got, whole, "{s:02x?} cut at {cut}");
            }
            // And one byte at a time: the error must come on the offending byte.
            let mut v = Utf8Validator::new();
            let mut got = None;
            for (i, b) in s.iter().enumerate() {
                if let Err(Utf8Error::Invalid { position }) = v.feed(&[*b]) {
                    assert_eq!(position, i as u64, "fails on the byte that arrives");
                    got = Some(Some(position));
                    break;
                }
            }
            if got.is_none() && v.finish().is_err() {
                got = Some(None);
            }
            assert_eq!(got, whole, "bytewise {s:02x?}");
        }
    }

    #[test]
    fn finish_reports_incomplete_and_resets() {
        let mut v = Utf8Validator::new();
        v.feed(b"ab\xE2\x82").unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Utf8Error::Incomplete { position: 2 }));
        // Reset: a fresh stream is fine.
        v.feed(b"\xE2\x82\xAC").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn failure_is_sticky() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xFF").is_err());
        assert!(v.feed(b"a").is_err());
    }

    #[test]
    fn utf8_bytes_round_trip() {
        let t = Utf8Bytes::try_from_bytes(Bytes::from_static("héllo".as_bytes())).unwrap();
        assert_eq!(t, "héllo");
        assert_eq!(t.len(), 6);
        assert!(Utf8Bytes::try_from_bytes(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(format!("{t:?}"), "\"héllo\"");
    }
}
