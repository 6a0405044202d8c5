//! The `xxd`-style hexdump (pure formatting, no I/O).
//!
//! ```text
//! 00000000: 4745 5420 2f70 6f6c 6c2f 6c6f 6262 7920  GET /poll/lobby
//! ```
//! Each row: the offset of its first byte within the connection's stream in that
//! direction, up to 16 bytes as eight groups of two, and the printable ASCII (other bytes
//! as `.`). Offsets continue from one read to the next, so an annotation's offset points
//! at the same bytes whichever dump shows them. [`super::hexread`] reads rows back.

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
        let back = crate::trace::hexread::read(&s).unwrap();
        assert_eq!((back.bytes, back.offset), (data, 0x40));
    }
}
