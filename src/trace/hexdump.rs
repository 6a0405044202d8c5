//! The `xxd`-style hexdump (pure formatting, no I/O).
//!
//! ```text
//! 00000000: 4745 5420 2f70 6f6c 6c2f 6c6f 6262 7920  GET /poll/lobby
//! ```
//! Each row: the offset of its first byte within the connection's stream in that
//! direction, up to 16 bytes as eight groups of two, and the printable ASCII (other bytes
//! as `.`). Offsets continue from one read to the next, so an annotation's offset points
//! at the same bytes whichever dump shows them.

use std::fmt::Write;

pub const ROW: usize = 16;

/// Appends the rows for `bytes`, the first of which sits at stream offset `offset`.
pub fn rows(offset: u64, bytes: &[u8], out: &mut String) {
    for (i, row) in bytes.chunks(ROW).enumerate() {
        let _ = write!(out, "{:08x}:", offset + (i * ROW) as u64);
        for (j, b) in row.iter().enumerate() {
            if j % 2 == 0 {
                out.push(' ');
            }
            let _ = write!(out, "{b:02x}");
        }
        // Pad a short last row so the ASCII column lines up (xxd does the same).
        let missing = ROW - row.len();
        for j in 0..missing {
            if (row.len() + j) % 2 == 0 {
                out.push(' ');
            }
            out.push_str("  ");
        }
        out.push_str("  ");
        out.extend(row.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }));
        out.push('\n');
    }
}

/// Reads hex back from text: `xxd` rows (offsets and the ASCII column are skipped) or
/// plain hex with any spacing. Used by `decode` and by the docs check.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut body = line.trim();
        // An xxd row: "00000010: 4854 ...  ASCII". Drop the offset and the ASCII column,
        // which starts after the first run of two spaces following the hex.
        if let Some((off, rest)) = body.split_once(": ")
            && off.len() == 8
            && off.bytes().all(|b| b.is_ascii_hexdigit())
        {
            body = rest.split("  ").next().unwrap_or("");
        }
        let digits: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(format!("odd number of hex digits in line: {line}"));
        }
        for pair in digits.chunks(2) {
            let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            out.push(u8::from_str_radix(s, 16).map_err(|_| format!("not hex: {s:?} in line: {line}"))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_xxd_layout() {
        let mut s = String::new();
        rows(0, b"GET /poll/lobby HTTP/1.1\r\nHost: x\r\n", &mut s);
        assert_eq!(
            s,
            "00000000: 4745 5420 2f70 6f6c 6c2f 6c6f 6262 7920  GET /poll/lobby \n\
             00000010: 4854 5450 2f31 2e31 0d0a 486f 7374 3a20  HTTP/1.1..Host: \n\
             00000020: 780d 0a                                  x..\n"
        );
    }

    #[test]
    fn offsets_continue_and_parse_back() {
        let data: Vec<u8> = (0..=255).collect();
        let mut s = String::new();
        rows(0x40, &data, &mut s);
        assert!(s.starts_with("00000040: 0001 0203"));
        assert_eq!(parse_hex(&s).unwrap(), data);
        assert_eq!(parse_hex("81 05 48 65\n6c6c6f").unwrap(), b"\x81\x05Hello");
        assert!(parse_hex("abc").is_err());
    }
}
