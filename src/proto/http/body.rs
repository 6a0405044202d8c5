//! The chunked transfer coding (RFC 9112 §7.1), for requests and responses alike. A
//! Content-Length body needs no decoder: the message stream (`stream.rs`) counts its
//! bytes, with the length read by `content_length` (`mod.rs`).
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF          ; RFC 9112 §7.1
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! [`ChunkedDecoder`] is an enum with one state per position in that grammar, as in
//! hyper's decoder. [`ChunkedDecoder::step`] consumes one syntactic unit (or as much of it
//! as has arrived) and says what it was. The message stream steps it for everyone who
//! reads HTTP: the server and the client keep the data, the proxy passes it on, and the
//! byte tracer names each piece.

use super::HttpError;

/// Longest chunk-size line (hex digits plus extensions) in a chunked body. Chunk
/// extensions are unbounded in RFC 9112 §7.1.1; servers must bound them themselves.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Largest trailer section after the last chunk (RFC 9112 §7.1.2), in bytes.
pub const MAX_TRAILER: usize = 8 * 1024;

/// Where the decoder stands in the chunked grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading `chunk-size` hex digits (`digits` so far).
    Size {
        digits: usize,
    },
    /// In `chunk-ext`, skipped up to the CR (extensions carry nothing we use).
    Extension,
    /// After the size line's CR, expecting LF.
    SizeLf,
    /// Inside `chunk-data`, this many bytes still to come.
    Data(u64),
    /// After the data, expecting CR then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// Inside a trailer field line (ignored, but bounded).
    TrailerLine,
    TrailerLf,
    /// After the final CR, expecting LF.
    EndLf,
    Done,
}

/// What one [`ChunkedDecoder::step`] consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Part of a unit whose end has not arrived yet.
    Partial,
    /// A complete chunk-size line (size, extensions, CRLF). Size 0 is the last chunk.
    SizeLine { size: u64 },
    /// Chunk data: the consumed bytes are body bytes.
    Data,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// One trailer field line.
    Trailer,
    /// The final CRLF: the body is complete.
    End,
}

/// The chunked transfer coding's decoder.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder { state: State::Size { digits: 0 }, size: 0, line_len: 0, trailer_len: 0 }
    }

    /// Consumes the next unit of `input`, or all of it if the unit is not complete.
    /// Returns how many bytes were consumed and what they were. Never consumes past the
    /// end of the body: bytes of a pipelined request stay unconsumed.
    pub fn step(&mut self, input: &[u8]) -> Result<(usize, Piece), HttpError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // 16 hex digits fill a u64; more could only overflow.
                        if digits == 16 {
                            return Err(HttpError::BadRequest("chunk size too large"));
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size << 4 | v;
                        self.state = State::Size { digits: digits + 1 };
                    }
                    _ if digits == 0 => {
                        return Err(HttpError::BadRequest("malformed chunk size (RFC 9112 §7.1)"));
                    }
                    b';' | b' ' | b'\t' => self.state = State::Extension,
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(HttpError::BadRequest("malformed chunk size (RFC 9112 §7.1)")),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' | 0 => return Err(HttpError::BadRequest("malformed chunk extension")),
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadRequest("chunk size line not ended by CRLF"));
                    }
                    let size = self.size;
                    self.state = if size == 0 { State::TrailerStart } else { State::Data(size) };
                    self.size = 0;
                    self.line_len = 0;
                    return Ok((i, Piece::SizeLine { size }));
                }
                State::Data(left) => {
                    // Take the whole run of data available at once, not a byte at a time.
                    let n = (left as usize).min(input.len() - (i - 1));
                    let left = left - n as u64;
                    self.state = if left == 0 { State::DataCr } else { State::Data(left) };
                    return Ok((i - 1 + n, Piece::Data));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(HttpError::BadRequest("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadRequest("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size { digits: 0 };
                    return Ok((i, Piece::DataEnd));
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::EndLf,
                    b'\n' => return Err(HttpError::BadRequest("bare LF after the last chunk")),
                    _ => self.state = State::TrailerLine,
                },
                State::TrailerLine => match b {
                    b'\r' => self.state = State::TrailerLf,
                    b'\n' | 0 => return Err(HttpError::BadRequest("malformed trailer field")),
                    _ => {}
                },
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadRequest("trailer field not ended by CRLF"));
                    }
                    self.state = State::TrailerStart;
                    return Ok((i, Piece::Trailer));
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadRequest("chunked body not ended by CRLF"));
                    }
                    self.state = State::Done;
                    return Ok((i, Piece::End));
                }
                State::Done => return Ok((i - 1, Piece::End)),
            }
            // Bound the lines whose content we skip, so a peer cannot feed one forever.
            match self.state {
                State::Size { .. } | State::Extension | State::SizeLf => {
                    self.line_len += 1;
                    if self.line_len > MAX_CHUNK_LINE {
                        return Err(HttpError::BadRequest("chunk size line too long"));
                    }
                }
                State::TrailerLine | State::TrailerLf | State::EndLf => {
                    self.trailer_len += 1;
                    if self.trailer_len > MAX_TRAILER {
                        return Err(HttpError::HeaderTooLarge);
                    }
                }
                _ => {}
            }
        }
        Ok((i, Piece::Partial))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `split` bytes (0 = all at once). Returns the body
    /// and the bytes after it (those left in the buffer plus those not yet fed).
    pub(crate) fn decode(input: &[u8], split: usize) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
        let step = if split == 0 { input.len().max(1) } else { split };
        decode_pieces(input, (step..input.len()).step_by(step))
    }

    /// Decodes `input` fed in pieces that end at each of `cuts` (increasing offsets) and
    /// at its end.
    fn decode_pieces(input: &[u8], cuts: impl Iterator<Item = usize>) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
        let mut dec = ChunkedDecoder::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut fed = 0;
        for end in cuts.chain(std::iter::once(input.len())) {
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            while !buf.is_empty() {
                let (n, piece) = dec.step(&buf)?;
                if piece == Piece::Data {
                    out.extend_from_slice(&buf[..n]);
                }
                buf.drain(..n);
                if piece == Piece::End {
                    buf.extend_from_slice(&input[fed..]);
                    return Ok((out, buf));
                }
            }
        }
        Err(HttpError::BadRequest("incomplete"))
    }

    /// Every test input whole, in pieces of 1, 2, 3 and 7 bytes, and split in two at
    /// every offset.
    fn check(input: &[u8], body: &[u8], rest: &[u8]) {
        let ways = [0, 1, 2, 3, 7].map(|split| (format!("pieces of {split}"), decode(input, split)));
        let cuts = (1..input.len()).map(|at| (format!("split at {at}"), decode_pieces(input, std::iter::once(at))));
        for (how, got) in ways.into_iter().chain(cuts) {
            let (got, got_rest) = got.unwrap_or_else(|e| panic!("{how}: {e:?}"));
            assert_eq!(got, body, "{how}");
            assert_eq!(got_rest, rest, "{how}");
        }
    }

    #[test]
    fn rfc9112_style_examples() {
        // The example body used across RFC 9112 §7.1 discussions and MDN: two chunks.
        check(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", b"Wikipedia", b"");
        // Chunk extensions (§7.1.1) are ignored, with or without values and BWS.
        check(b"5;name=value\r\nhello\r\n6 ; ext\r\n world\r\n0;last\r\n\r\n", b"hello world", b"");
        // A trailer section (§7.1.2) is read and discarded.
        check(b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", b"abc", b"");
        // Upper-case hex and leading zeros.
        check(b"000A\r\n0123456789\r\n00\r\n\r\n", b"0123456789", b"");
        // An empty body, and bytes of a pipelined request after it.
        check(b"0\r\n\r\nGET / HTTP/1.1\r\n", b"", b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn malformed_chunks_are_400() {
        for bad in [
            &b"x\r\nabc\r\n0\r\n\r\n"[..],
            b";ext\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\n",
            b"-1\r\n",
            b"3 x\n",
        ] {
            let got = decode(bad, 0);
            assert!(matches!(got, Err(HttpError::BadRequest(_))), "{:?} -> {got:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn endless_extension_is_refused() {
        let mut dec = ChunkedDecoder::new();
        let line = vec![b'a'; MAX_CHUNK_LINE + 10];
        let mut input = b"1;".to_vec();
        input.extend_from_slice(&line);
        assert!(dec.step(&input).is_err());
    }

    #[test]
    fn pieces_name_each_unit() {
        let mut dec = ChunkedDecoder::new();
        let input = b"4\r\nWiki\r\n0\r\nX: y\r\n\r\n";
        let mut pos = 0;
        let mut pieces = Vec::new();
        while pos < input.len() {
            let (n, p) = dec.step(&input[pos..]).unwrap();
            pieces.push((String::from_utf8_lossy(&input[pos..pos + n]).into_owned(), p));
            pos += n;
        }
        assert_eq!(
            pieces,
            vec![
                ("4\r\n".into(), Piece::SizeLine { size: 4 }),
                ("Wiki".into(), Piece::Data),
                ("\r\n".into(), Piece::DataEnd),
                ("0\r\n".into(), Piece::SizeLine { size: 0 }),
                ("X: y\r\n".into(), Piece::Trailer),
                ("\r\n".into(), Piece::End),
            ]
        );
    }
}
