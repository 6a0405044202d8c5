//! Reads bytes back from hex as people paste it, for `decode` (and the docs check).
//!
//! Accepted, in any mix of lines:
//!
//! - plain hex, with or without spaces: `81 05 48 65`, `8105 4865`, and Wireshark's
//!   "Copy as Hex Stream" (`810548656c6c6f`), optionally with `0x` before each byte;
//! - `xxd` rows, as `--trace-bytes` prints them (`00000010: 4854 5450  HTTP`): the
//!   offset and the ASCII column are skipped, and every other line of a pasted trace
//!   (the block headers, the notes under the rows) is ignored once rows are found;
//! - Wireshark's "Copy as Hex Dump" rows (`0000   48 54 54 50   HTTP`), the first at
//!   offset 0;
//! - text with escapes, as in C, Python or Rust literals: `\x81\x05Hello`,
//!   `GET / HTTP/1.1\r\nHost: x\r\n\r\n` (`\x`, `\r`, `\n`, `\t`, `\\` and `\0`;
//!   any other character stands for itself; a text with none of `\x`, `\r`, `\n` is
//!   read as hex).
//!
//! A character that is none of these is named with its line and column, never guessed
//! at.

use std::fmt;

/// What was read: the bytes, and the stream offset of the first one when rows with
/// offsets gave it (so a pasted trace block keeps its offsets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hex {
    pub bytes: Vec<u8>,
    pub offset: u64,
}

/// Why the text is not hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HexError {
    /// A character that is not a hex digit where one was expected.
    BadChar {
        line: usize,
        column: usize,
        ch: char,
    },
    /// A byte is two hex digits; this line (or the whole text) has an odd number.
    OddDigits {
        line: usize,
    },
    /// A `\x` escape not followed by two hex digits.
    BadEscape {
        line: usize,
        column: usize,
    },
    Empty,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::BadChar { line, column, ch } => {
                write!(f, "line {line}, column {column}: {ch:?} is not a hex digit")
            }
            HexError::OddDigits { line } => {
                write!(f, "line {line}: an odd number of hex digits (each byte is two)")
            }
            HexError::BadEscape { line, column } => {
                write!(f, "line {line}, column {column}: \\x must be followed by two hex digits")
            }
            HexError::Empty => write!(f, "no bytes in the input"),
        }
    }
}

impl std::error::Error for HexError {}

/// Reads `text` as hex in any of the forms above.
pub fn read(text: &str) -> Result<Hex, HexError> {
    let rows: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    // Rows with offsets: every other line of a pasted trace is skipped.
    let xxd: Vec<_> = rows.iter().filter_map(|&(n, l)| xxd_row(l).map(|r| (n, r))).collect();
    if !xxd.is_empty() {
        let offset = u64::from_str_radix(xxd[0].1.0, 16).unwrap_or(0);
        let mut bytes = Vec::new();
        for (n, (_, hex, col)) in xxd {
            digits(hex, n, col, &mut bytes)?;
        }
        // Rows with nothing in their hex column (found by the fuzzer) hold no bytes.
        if bytes.is_empty() {
            return Err(HexError::Empty);
        }
        return Ok(Hex { bytes, offset });
    }
    let dump = rows.iter().find(|(_, l)| !l.trim().is_empty()).is_some_and(|(_, l)| wireshark_row(l).is_some());
    // Escapes only where there are no rows: a row's ASCII column shows the bytes `\x`,
    // `\r` or `\n` as those very characters (found by the fuzzer, docs/fuzzing.md).
    if !dump && ["\\x", "\\r", "\\n"].iter().any(|e| text.contains(e)) {
        return escapes(text);
    }
    let mut bytes = Vec::new();
    for (n, line) in rows {
        match wireshark_row(line) {
            Some((hex, col)) if dump => digits(hex, n, col, &mut bytes)?,
            _ if line.trim().is_empty() => {}
            _ => digits(line, n, 1, &mut bytes)?,
        }
    }
    if bytes.is_empty() {
        return Err(HexError::Empty);
    }
    Ok(Hex { bytes, offset: 0 })
}

/// `00000010: 4854 5450 ...  ASCII` -> (offset, hex part, its column).
fn xxd_row(line: &str) -> Option<(&str, &str, usize)> {
    let (off, rest) = line.split_once(": ")?;
    if off.len() < 4 || !off.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // The ASCII column starts after the first run of two spaces.
    Some((off, rest.split("  ").next().unwrap_or(""), off.len() + 3))
}

/// `0000   48 54 54 50 ...   HTTP` -> (hex part, its column).
fn wireshark_row(line: &str) -> Option<(&str, usize)> {
    let (off, rest) = line.split_once("  ")?;
    if off.len() != 4 || !off.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Counted in characters, as columns are: the spaces may be wider than a byte
    // (U+2002, found by the fuzzer).
    let start = rest[..rest.len() - rest.trim_start().len()].chars().count();
    let hex = rest.trim_start().split("  ").next().unwrap_or("");
    Some((hex, off.len() + 2 + start + 1))
}

/// Appends the bytes of hex digits in `text` (whitespace and `0x` prefixes skipped).
fn digits(text: &str, line: usize, column: usize, out: &mut Vec<u8>) -> Result<(), HexError> {
    let mut high: Option<u8> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() || c == ',' {
            continue;
        }
        if c == '0' && high.is_none() && matches!(chars.peek(), Some((_, 'x' | 'X'))) {
            chars.next();
            continue;
        }
        let Some(v) = c.to_digit(16) else {
            return Err(HexError::BadChar { line, column: column + text[..i].chars().count(), ch: c });
        };
        match high.take() {
            Some(h) => out.push(h << 4 | v as u8),
            None => high = Some(v as u8),
        }
    }
    if high.is_some() {
        return Err(HexError::OddDigits { line });
    }
    Ok(())
}

/// `\x81\x05Hello\r\n`.
fn escapes(text: &str) -> Result<Hex, HexError> {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push(b'\n');
        }
        let mut chars = line.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next().map(|(_, c)| c) {
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                    let byte = (hex.len() == 2).then(|| u8::from_str_radix(&hex, 16).ok()).flatten();
                    let column = line[..i].chars().count() + 1;
                    out.push(byte.ok_or(HexError::BadEscape { line: n + 1, column })?);
                }
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('0') => out.push(0),
                Some(other) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
                None => out.push(b'\\'),
            }
        }
    }
    if out.is_empty() {
        return Err(HexError::Empty);
    }
    Ok(Hex { bytes: out, offset: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Vec<u8> {
        read(text).unwrap_or_else(|e| panic!("{text:?}: {e}")).bytes
    }

    #[test]
    fn every_form_people_paste() {
        let hello = b"\x81\x05Hello".to_vec();
        assert_eq!(bytes("81 05 48 65 6c 6c 6f"), hello);
        assert_eq!(bytes("8105 4865 6c6c 6f"), hello);
        assert_eq!(bytes("810548656c6c6f\n"), hello, "Wireshark's hex stream");
        assert_eq!(bytes("0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f"), hello);
        assert_eq!(bytes("\\x81\\x05Hello"), hello);
        assert_eq!(bytes("00000000: 8105 4865 6c6c 6f                        ..Hello"), hello);
        assert_eq!(bytes("0000   81 05 48 65 6c 6c 6f                              ..Hello"), hello);
        assert_eq!(bytes("GET / HTTP/1.1\\r\\n\\r\\n"), b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_pasted_trace_keeps_its_offsets_and_skips_its_notes() {
        let mut trace = String::from("#3 read 4 bytes from localhost:8081 +0.103696s\n");
        crate::trace::hexdump::rows(0xb7, b"13\r\n", &mut trace);
        trace.push_str("  000000b7+4     chunked chunk-size line: 13 (hex) = 19 bytes of data follow\n");
        let hex = read(&trace).unwrap();
        assert_eq!((hex.bytes, hex.offset), (b"13\r\n".to_vec(), 0xb7));
    }

    #[test]
    fn rows_whose_ascii_column_shows_escapes_are_rows() {
        // Bytes that spell `\r\n` and `\x81` are shown as themselves in the ASCII column.
        let data = b"GET / HTTP/1.1\\r\\n\\x81\\x05Hello";
        for dump in [dump_xxd(data), format!("0000   {}  ..", hex_pairs(data))] {
            assert_eq!(read(&dump).unwrap().bytes, data, "{dump}");
        }
    }

    fn dump_xxd(data: &[u8]) -> String {
        let mut s = String::new();
        crate::trace::hexdump::rows(0, data, &mut s);
        s
    }

    fn hex_pairs(data: &[u8]) -> String {
        data.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn bad_input_is_named_where_it_is() {
        assert_eq!(read("81 05 4g"), Err(HexError::BadChar { line: 1, column: 8, ch: 'g' }));
        assert_eq!(read("81\n0"), Err(HexError::OddDigits { line: 2 }));
        assert_eq!(read("\\x8"), Err(HexError::BadEscape { line: 1, column: 1 }));
        assert_eq!(read("  \n"), Err(HexError::Empty));
        assert_eq!(read("00005:            G"), Err(HexError::Empty), "a row with an empty hex column");
        let wide = "0000  \u{2002}\u{2002}\u{2001}1\u{2001}\0  0lo";
        assert_eq!(read(wide), Err(HexError::BadChar { line: 1, column: 12, ch: '\0' }), "columns count characters");
        assert_eq!(read("00000000: 81zz  ..").unwrap_err(), HexError::BadChar { line: 1, column: 13, ch: 'z' });
    }
}
