//! `--trace-pcap`: each connection's bytes as packets of a capture file (pure).
//!
//! The file is a classic libpcap file (draft-ietf-opsawg-pcap, "PCAP Capture File
//! Format": its "File Header" and "Packet Record"), little-endian, microsecond
//! timestamps, with link type `LINKTYPE_RAW` (101, <https://www.tcpdump.org/linktypes.html>):
//! each packet begins at its IP header. Raw IP rather than Ethernet because a program
//! that sees sockets has no link layer to show: an Ethernet header would be two invented
//! MAC addresses and nothing else, while raw IP carries IPv4 and IPv6 alike (the first
//! nibble says which), so a connection is shown with exactly the addresses it has.
//!
//! A process sees the bytes each read and write moved, not the kernel's packets, so each
//! connection's TCP conversation is synthesized, consistently (RFC 9293):
//!
//! - the three-way handshake (§3.5): SYN, SYN-ACK, ACK, between the real addresses and
//!   ports, the connecting end as the client;
//! - each read or write as data segments of at most [`SEGMENT_PAYLOAD`] bytes, numbered
//!   by sequence number (§3.4) and acknowledging everything the other end sent so far;
//!   the receiving end acknowledges each burst (and every [`ACK_EVERY`] segments of a long
//!   one, so that no more than a window is ever unacknowledged);
//! - a FIN from each end as it closes its side (§3.6), each acknowledged.
//!
//! Headers are RFC 791 §3.1 (IPv4), RFC 8200 §3 (IPv6), RFC 9293 §3.1 (TCP); checksums
//! are RFC 1071's one's-complement sum, the TCP one over the pseudo-header (RFC 9293
//! §3.1, RFC 8200 §8.1), so tools that verify checksums find them right.
//!
//! The file is bounded ([`Capture::new`]'s limit): a packet that would pass it is not
//! written, and neither is anything after it, so the file always ends on a whole packet.
//!
//! Pure: events in (connection id, addresses, side, bytes, timestamp), bytes out. The
//! sockets, the clock and the file are the caller's (`trace::pcap_tap`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// `LINKTYPE_RAW`: packets begin with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;

/// Most payload bytes in one synthetic segment: the MSS of a 1500-byte Ethernet MTU less
/// 20-byte IPv4 and TCP headers (RFC 9293 §3.7.1), what tools expect to see.
pub const SEGMENT_PAYLOAD: usize = 1460;

/// The receive window every segment advertises (no window scaling is negotiated).
pub const WINDOW: u16 = 65535;

/// Data segments after which the receiving end acknowledges, within one long burst:
/// 16 × 1460 = 23 360 bytes, well inside [`WINDOW`].
pub const ACK_EVERY: usize = 16;

/// The largest packet the file says it holds (the header's snaplen): every packet is
/// whole, and none is larger than headers plus [`SEGMENT_PAYLOAD`].
pub const SNAPLEN: u32 = 65535;

/// The file header's size, and each packet record header's (draft-ietf-opsawg-pcap).
pub const FILE_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_HEADER: usize = 20;
/// IANA protocol number of TCP (the IPv4 protocol / IPv6 next header field).
const PROTO_TCP: u8 = 6;
/// Hop limit / TTL the synthetic packets carry.
const TTL: u8 = 64;

// TCP flags (RFC 9293 §3.1).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// The end of a connection that sent a segment. The client is the end that connected
/// (sent the SYN); the server the end that accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    fn index(self) -> usize {
        self as usize
    }
    /// The end at the other side of the connection.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// One connection's TCP state, per side (indexed by [`Side::index`]).
struct Flow {
    addr: [SocketAddr; 2],
    /// The next sequence number each side sends.
    next_seq: [u32; 2],
    /// Each side has sent its FIN.
    fin: [bool; 2],
    /// IPv4 identification of each side's next packet.
    ip_id: [u16; 2],
}

/// How many bytes the file may hold, and whether that is reached.
struct Budget {
    limit: u64,
    written: u64,
    full: bool,
}

impl Budget {
    /// Appends one packet record (header and packet) to `out`, unless it would pass the
    /// limit: then nothing more is ever appended.
    fn record(&mut self, at: Duration, packet: &[u8], out: &mut Vec<u8>) {
        let len = (RECORD_HEADER_LEN + packet.len()) as u64;
        if self.full || self.written + len > self.limit {
            self.full = true;
            return;
        }
        self.written += len;
        out.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&at.subsec_micros().to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes()); // captured length
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes()); // original length
        out.extend_from_slice(packet);
    }
}

/// A capture in progress: every open connection's TCP state, and the size budget.
pub struct Capture {
    flows: HashMap<u64, Flow>,
    budget: Budget,
}

impl Capture {
    /// A capture whose file may hold at most `limit` bytes, the file header included.
    pub fn new(limit: u64) -> Capture {
        Capture { flows: HashMap::new(), budget: Budget { limit, written: 0, full: false } }
    }

    /// The file header (draft-ietf-opsawg-pcap, "File Header"): magic (microsecond timestamps),
    /// version 2.4, no time zone offset, snaplen, link type. Counts against the limit.
    pub fn file_header(&mut self, out: &mut Vec<u8>) {
        if self.budget.full || self.budget.limit < FILE_HEADER_LEN as u64 {
            self.budget.full = true;
            return;
        }
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes()); // thiszone: timestamps are UTC
        out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        out.extend_from_slice(&SNAPLEN.to_le_bytes());
        out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        self.budget.written += FILE_HEADER_LEN as u64;
    }

    /// Whether the limit has been reached: nothing more is written from then on.
    pub fn is_full(&self) -> bool {
        self.budget.full
    }

    /// Bytes of the file so far.
    pub fn written(&self) -> u64 {
        self.budget.written
    }

    /// Connection `id` opened between `client` (which connected) and `server`: the
    /// three-way handshake. The initial sequence numbers derive from `id`, so a capture
    /// of the same session numbers the same way (tools show relative numbers anyway).
    pub fn open(&mut self, id: u64, client: SocketAddr, server: SocketAddr, at: Duration, out: &mut Vec<u8>) {
        let isn = |salt: u32| (id as u32).wrapping_mul(0x9e37_79b9) ^ salt;
        self.open_with(id, [client, server], [isn(0x1000_0000), isn(0x6000_0000)], at, out);
    }

    fn open_with(&mut self, id: u64, addr: [SocketAddr; 2], isn: [u32; 2], at: Duration, out: &mut Vec<u8>) {
        let (c, s) = (Side::Client, Side::Server);
        let flow = self.flows.entry(id).or_insert(Flow { addr, next_seq: isn, fin: [false; 2], ip_id: [1, 1] });
        segment(&mut self.budget, flow, c, SYN, isn[0], 0, &[], at, out);
        segment(&mut self.budget, flow, s, SYN | ACK, isn[1], isn[0].wrapping_add(1), &[], at, out);
        flow.next_seq = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
        let (sc, ss) = (flow.next_seq[c.index()], flow.next_seq[s.index()]);
        segment(&mut self.budget, flow, c, ACK, sc, ss, &[], at, out);
    }

    /// `from` sent `bytes` on connection `id`: data segments, then the other end's ACK.
    /// Ignored for a connection not open, or after `from`'s FIN (nothing follows a FIN).
    pub fn data(&mut self, id: u64, from: Side, bytes: &[u8], at: Duration, out: &mut Vec<u8>) {
        let Some(flow) = self.flows.get_mut(&id) else { return };
        if flow.fin[from.index()] || bytes.is_empty() {
            return;
        }
        let to = from.other();
        let chunks = bytes.len().div_ceil(SEGMENT_PAYLOAD);
        for (k, chunk) in bytes.chunks(SEGMENT_PAYLOAD).enumerate() {
            let last = k + 1 == chunks;
            let (seq, ack) = (flow.next_seq[from.index()], flow.next_seq[to.index()]);
            // PSH on the last segment of a write: the sender had no more to give (§3.9.1.2).
            let flags = if last { ACK | PSH } else { ACK };
            segment(&mut self.budget, flow, from, flags, seq, ack, chunk, at, out);
            flow.next_seq[from.index()] = seq.wrapping_add(chunk.len() as u32);
            if last || (k + 1) % ACK_EVERY == 0 {
                let (seq, ack) = (flow.next_seq[to.index()], flow.next_seq[from.index()]);
                segment(&mut self.budget, flow, to, ACK, seq, ack, &[], at, out);
            }
        }
    }

    /// `from` closed its side of connection `id`: its FIN, and the other end's ACK. Once
    /// per side.
    pub fn fin(&mut self, id: u64, from: Side, at: Duration, out: &mut Vec<u8>) {
        let Some(flow) = self.flows.get_mut(&id) else { return };
        send_fin(&mut self.budget, flow, from, at, out);
    }

    /// Connection `id` is gone, closed by `closer`: the FINs not yet sent, `closer`'s
    /// first. The connection is forgotten.
    pub fn close(&mut self, id: u64, closer: Side, at: Duration, out: &mut Vec<u8>) {
        let Some(mut flow) = self.flows.remove(&id) else { return };
        send_fin(&mut self.budget, &mut flow, closer, at, out);
        send_fin(&mut self.budget, &mut flow, closer.other(), at, out);
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.flows.len()
    }
}

fn send_fin(budget: &mut Budget, flow: &mut Flow, from: Side, at: Duration, out: &mut Vec<u8>) {
    if flow.fin[from.index()] {
        return;
    }
    let to = from.other();
    let (seq, ack) = (flow.next_seq[from.index()], flow.next_seq[to.index()]);
    segment(budget, flow, from, FIN | ACK, seq, ack, &[], at, out);
    // A FIN takes one sequence number (RFC 9293 §3.4).
    flow.next_seq[from.index()] = seq.wrapping_add(1);
    flow.fin[from.index()] = true;
    let (seq, ack) = (flow.next_seq[to.index()], flow.next_seq[from.index()]);
    segment(budget, flow, to, ACK, seq, ack, &[], at, out);
}

/// One packet from `from` to the other end: IP header, TCP header, payload.
#[allow(clippy::too_many_arguments)]
fn segment(
    budget: &mut Budget,
    flow: &mut Flow,
    from: Side,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
    at: Duration,
    out: &mut Vec<u8>,
) {
    let (src, dst) = (flow.addr[from.index()], flow.addr[from.other().index()]);
    let id = &mut flow.ip_id[from.index()];
    let packet = tcp_packet(src, dst, *id, flags, seq, ack, payload);
    *id = id.wrapping_add(1);
    budget.record(at, &packet, out);
}

/// Both addresses in one family: IPv4 when both are (IPv4-mapped IPv6 counts as IPv4,
/// RFC 4291 §2.5.5.2), else both IPv6.
fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    match (a.to_canonical(), b.to_canonical()) {
        (a @ IpAddr::V4(_), b @ IpAddr::V4(_)) => (a, b),
        (a, b) => (IpAddr::V6(v6(a)), IpAddr::V6(v6(b))),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A whole IP packet carrying one TCP segment from `src` to `dst`.
pub fn tcp_packet(
    src: SocketAddr,
    dst: SocketAddr,
    ip_id: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let tcp_len = TCP_HEADER + payload.len();
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    // The acknowledgment number is meaningful only with ACK set; zero otherwise (§3.1).
    tcp.extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
    tcp.push(((TCP_HEADER / 4) as u8) << 4); // data offset, in 32-bit words; no options
    tcp.push(flags);
    tcp.extend_from_slice(&WINDOW.to_be_bytes());
    tcp.extend_from_slice(&[0, 0]); // checksum, filled below
    tcp.extend_from_slice(&[0, 0]); // urgent pointer
    tcp.extend_from_slice(payload);

    let (s, d) = same_family(src.ip(), dst.ip());
    let mut packet = Vec::with_capacity(IPV6_HEADER + tcp_len);
    // The pseudo-header: what the TCP checksum covers besides the segment (RFC 9293
    // §3.1 for IPv4, RFC 8200 §8.1 for IPv6).
    let mut pseudo = Vec::with_capacity(40);
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            packet.push(0x45); // version 4, header length 5 words
            packet.push(0); // DSCP/ECN
            packet.extend_from_slice(&((IPV4_HEADER + tcp_len) as u16).to_be_bytes());
            packet.extend_from_slice(&ip_id.to_be_bytes());
            packet.extend_from_slice(&0x4000u16.to_be_bytes()); // Don't Fragment, offset 0
            packet.push(TTL);
            packet.push(PROTO_TCP);
            packet.extend_from_slice(&[0, 0]); // header checksum, filled below
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            let sum = checksum(&[&packet]);
            packet[10..12].copy_from_slice(&sum.to_be_bytes());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, PROTO_TCP]);
            pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        (s, d) => {
            let (s, d) = (v6(s), v6(d));
            packet.extend_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6, no class or flow label
            packet.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            packet.push(PROTO_TCP);
            packet.push(TTL);
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, PROTO_TCP]);
        }
    }
    let sum = checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(&tcp);
    packet
}

/// The Internet checksum (RFC 1071): the one's complement of the one's-complement sum
/// of the 16-bit words of `parts` taken as one sequence (an odd last byte is padded with
/// zero, §1 (1)).
pub fn checksum(parts: &[&[u8]]) -> u16 {
    !ones_sum(parts)
}

/// The one's-complement sum itself (RFC 1071 §3's worked example checks it).
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in part.iter() {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    // Fold the carries back in (end-around carry, RFC 1071 §2 (B)).
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_micros(1_764_000_000_123_456);

    fn addrs() -> (SocketAddr, SocketAddr) {
        ("127.0.0.1:50000".parse().unwrap(), "127.0.0.1:8080".parse().unwrap())
    }

    /// The packets of a stretch of file (records only): (timestamp, packet) each.
    fn records(mut bytes: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
            let (secs, micros, incl, orig) = (word(0), word(4), word(8) as usize, word(12) as usize);
            assert_eq!(incl, orig, "every packet is whole");
            out.push((
                Duration::from_secs(secs.into()) + Duration::from_micros(micros.into()),
                bytes[16..16 + incl].to_vec(),
            ));
            bytes = &bytes[16 + incl..];
        }
        out
    }

    /// What a test reads of a TCP/IPv4 packet.
    #[derive(Debug, PartialEq)]
    struct Seg {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: Vec<u8>,
    }

    fn seg(p: &[u8]) -> Seg {
        assert_eq!(p[0], 0x45);
        let t = &p[20..];
        let be16 = |i: usize| u16::from_be_bytes([t[i], t[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes(t[i..i + 4].try_into().unwrap());
        Seg {
            src_port: be16(0),
            dst_port: be16(2),
            seq: be32(4),
            ack: be32(8),
            flags: t[13],
            payload: t[20..].to_vec(),
        }
    }

    #[test]
    fn rfc_1071_worked_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (one's complement),
        // so the checksum is its complement, 220d; however the bytes are split.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_sum(&[&bytes]), 0xddf2);
        assert_eq!(checksum(&[&bytes]), 0x220d);
        assert_eq!(checksum(&[&bytes[..3], &bytes[3..]]), 0x220d, "an odd split is one sequence");
    }

    #[test]
    fn ipv4_header_checksum_of_a_known_header() {
        // The textbook header (Wikipedia, "Internet checksum"): 4500 0073 0000 4000 4011
        // [b861] c0a8 0001 c0a8 00c7.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&[&h]), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&[&h]), 0, "a header with its checksum verifies to zero");
    }

    #[test]
    fn a_known_tcp_segment_is_built_byte_for_byte() {
        // A SYN from 10.0.0.1:1234 to 10.0.0.2:80, seq 1, worked by hand: the IPv4
        // words 4500 0028 0007 4000 4006 0000 0a00 0001 0a00 0002 sum to d938, so the
        // checksum is 26c7; the pseudo-header (0a00 0001 0a00 0002 0006 0014) and the
        // segment (04d2 0050 0000 0001 0000 0000 5002 ffff 0000 0000) sum to 6942, so
        // the TCP checksum is 96bd.
        let p = tcp_packet("10.0.0.1:1234".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), 7, SYN, 1, 99, b"");
        let expected = [
            0x45, 0x00, 0x00, 0x28, 0x00, 0x07, 0x40, 0x00, 0x40, 0x06, 0x26, 0xc7, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00,
            0x00, 0x02, // IPv4
            0x04, 0xd2, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xff, 0xff, 0x96, 0xbd,
            0x00, 0x00, // TCP: no ACK flag, so the acknowledgment number is 0
        ];
        assert_eq!(p, expected);
    }

    #[test]
    fn checksums_verify_over_every_packet_v4_and_v6() {
        for (src, dst) in [("127.0.0.1:50000", "127.0.0.1:8080"), ("[::1]:50000", "[::1]:8080")] {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            // Odd and even payload lengths: the odd byte is padded for the sum only.
            for payload in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"odd", b""] {
                let p = tcp_packet(src, dst, 1, ACK | PSH, 1000, 2000, payload);
                let (ip_len, tcp) = if src.is_ipv4() {
                    assert_eq!(checksum(&[&p[..20]]), 0, "IPv4 header checksum");
                    assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
                    (20, &p[20..])
                } else {
                    assert_eq!(p[0] >> 4, 6);
                    assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, p.len() - 40, "payload length");
                    (40, &p[40..])
                };
                let mut pseudo = Vec::new();
                if src.is_ipv4() {
                    pseudo.extend_from_slice(&p[12..20]);
                    pseudo.extend_from_slice(&[0, 6]);
                    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                } else {
                    pseudo.extend_from_slice(&p[8..40]);
                    pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
                    pseudo.extend_from_slice(&[0, 0, 0, 6]);
                }
                assert_eq!(checksum(&[&pseudo, tcp]), 0, "TCP checksum over the pseudo-header, {src}");
                assert_eq!(&tcp[20..], payload);
                assert_eq!(p.len(), ip_len + 20 + payload.len());
            }
        }
    }

    #[test]
    fn an_ipv4_mapped_address_is_shown_as_ipv4() {
        let p =
            tcp_packet("[::ffff:127.0.0.1]:5000".parse().unwrap(), "127.0.0.1:80".parse().unwrap(), 1, ACK, 0, 0, b"");
        assert_eq!((p[0], &p[12..20]), (0x45, &[127, 0, 0, 1, 127, 0, 0, 1][..]));
    }

    #[test]
    fn the_file_header_is_libpcap_with_raw_ip() {
        let mut out = Vec::new();
        Capture::new(1 << 20).file_header(&mut out);
        assert_eq!(
            out,
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0 //
            ]
        );
    }

    #[test]
    fn a_conversation_is_numbered_consistently_across_segments() {
        let (c, s) = addrs();
        let mut cap = Capture::new(u64::MAX);
        let mut out = Vec::new();
        // Initial sequence numbers just below 2^32: numbering wraps as TCP's does.
        cap.open_with(1, [c, s], [0xffff_fff0, 7000], T, &mut out);
        let request = vec![b'q'; 20];
        cap.data(1, Side::Client, &request, T, &mut out);
        let answer: Vec<u8> = (0..2 * SEGMENT_PAYLOAD + 10).map(|i| i as u8).collect();
        cap.data(1, Side::Server, &answer, T + Duration::from_millis(1), &mut out);
        cap.fin(1, Side::Client, T, &mut out);
        cap.close(1, Side::Server, T, &mut out);
        assert_eq!(cap.open_connections(), 0);
        let segs: Vec<Seg> = records(&out).iter().map(|(_, p)| seg(p)).collect();
        let (cp, sp) = (50000, 8080);
        let s = |src_port, seq, ack, flags, payload: &[u8]| Seg {
            src_port,
            dst_port: if src_port == cp { sp } else { cp },
            seq,
            ack,
            flags,
            payload: payload.to_vec(),
        };
        let c1 = 0xffff_fff1u32; // the client's first data byte
        let c2 = c1.wrapping_add(20); // = 5, past the wrap
        let s1 = 7001u32;
        let l = SEGMENT_PAYLOAD as u32;
        let expected = vec![
            s(cp, 0xffff_fff0, 0, SYN, b""),
            s(sp, 7000, c1, SYN | ACK, b""),
            s(cp, c1, s1, ACK, b""),
            s(cp, c1, s1, ACK | PSH, &request),
            s(sp, s1, c2, ACK, b""),
            s(sp, s1, c2, ACK, &answer[..SEGMENT_PAYLOAD]),
            s(sp, s1 + l, c2, ACK, &answer[SEGMENT_PAYLOAD..2 * SEGMENT_PAYLOAD]),
            s(sp, s1 + 2 * l, c2, ACK | PSH, &answer[2 * SEGMENT_PAYLOAD..]),
            s(cp, c2, s1 + 2 * l + 10, ACK, b""),
            s(cp, c2, s1 + 2 * l + 10, FIN | ACK, b""),
            s(sp, s1 + 2 * l + 10, c2 + 1, ACK, b""),
            // The server closes: its FIN (the client's is already out), acknowledged.
            s(sp, s1 + 2 * l + 10, c2 + 1, FIN | ACK, b""),
            s(cp, c2 + 1, s1 + 2 * l + 11, ACK, b""),
        ];
        assert_eq!(c2, 5, "the numbering wrapped");
        assert_eq!(segs, expected);
        let times: Vec<Duration> = records(&out).iter().map(|(t, _)| *t).collect();
        assert_eq!(times[5], T + Duration::from_millis(1), "each packet carries its event's time");
        assert_eq!(times[0], T);
    }

    #[test]
    fn a_long_burst_is_acknowledged_every_few_segments() {
        let (c, s) = addrs();
        let mut cap = Capture::new(u64::MAX);
        let mut out = Vec::new();
        cap.open(3, c, s, T, &mut out);
        out.clear();
        cap.data(3, Side::Server, &vec![0; 40 * SEGMENT_PAYLOAD], T, &mut out);
        let segs: Vec<Seg> = records(&out).iter().map(|(_, p)| seg(p)).collect();
        let acks = segs.iter().filter(|s| s.src_port == 50000).count();
        assert_eq!(acks, 3, "after 16, after 32, and at the end of 40");
        assert_eq!(segs.len(), 43);
        // Never more than a window unacknowledged.
        let mut unacked = 0;
        for s in &segs {
            if s.src_port == 8080 {
                unacked += s.payload.len();
                assert!(unacked <= WINDOW as usize);
            } else {
                unacked = 0;
            }
        }
    }

    #[test]
    fn nothing_follows_a_fin_and_unknown_connections_are_ignored() {
        let (c, s) = addrs();
        let mut cap = Capture::new(u64::MAX);
        let mut out = Vec::new();
        cap.data(9, Side::Client, b"x", T, &mut out);
        cap.fin(9, Side::Client, T, &mut out);
        cap.close(9, Side::Client, T, &mut out);
        assert!(out.is_empty());
        cap.open(9, c, s, T, &mut out);
        cap.fin(9, Side::Server, T, &mut out);
        let n = out.len();
        cap.fin(9, Side::Server, T, &mut out);
        cap.data(9, Side::Server, b"late", T, &mut out);
        assert_eq!(out.len(), n, "a second FIN, or data after a FIN, adds nothing");
    }

    #[test]
    fn the_limit_stops_the_file_on_a_whole_packet() {
        let (c, s) = addrs();
        // Room for the header and the handshake (3 × (16 + 40)) and one more empty segment.
        let limit = (FILE_HEADER_LEN + 4 * (RECORD_HEADER_LEN + 40)) as u64 + 10;
        let mut cap = Capture::new(limit);
        let mut out = Vec::new();
        cap.file_header(&mut out);
        cap.open(1, c, s, T, &mut out);
        assert!(!cap.is_full());
        cap.data(1, Side::Client, b"this does not fit", T, &mut out);
        assert!(cap.is_full());
        let after = out.len();
        cap.fin(1, Side::Client, T, &mut out);
        assert_eq!(out.len(), after, "once full, nothing more, not even a small packet that would fit");
        assert_eq!(cap.written(), out.len() as u64);
        assert!(cap.written() <= limit);
        assert_eq!(records(&out[FILE_HEADER_LEN..]).len(), 3, "the file ends on a whole packet");
    }
}
