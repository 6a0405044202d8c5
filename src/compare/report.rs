//! What `compare` measured, turned into figures: pure functions of the arrivals and
//! the counters, so every number in the table can be checked without a socket.
//!
//! Each client records, for every message it received, the publisher's sequence number
//! and how long after the publish it arrived. From those and the publisher's count come
//! received / lost / duplicated / out of order and the latency percentiles; from the
//! client's [`Reading`] (bytes counted at its sockets) come requests and bytes per
//! delivered message. Nothing is estimated: a figure the run did not measure is absent.

use std::fmt::Write as _;

use crate::client::meter::Reading;

/// The four transports, in the order every table shows them.
pub const TRANSPORTS: [&str; 4] = ["short-poll", "long-poll", "sse", "websocket"];

/// One message as one client received it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    /// The publisher's sequence number (0, 1, 2, …), carried in the message text.
    pub seq: u64,
    /// Publish-to-arrival, in microseconds.
    pub latency_us: u64,
    /// Bytes of message text (the payload, as opposed to framing and headers).
    pub payload: u64,
}

/// What one client saw.
#[derive(Clone, Debug, Default)]
pub struct ClientLog {
    pub arrivals: Vec<Arrival>,
    /// `truncated` notices (a gap the server could no longer fill).
    pub truncated: u64,
    /// The transports that delivered, in the order they first did (for `auto`, where
    /// the cascade settled).
    pub carried_by: Vec<String>,
}

/// Counts of one client's arrivals against what was published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Distinct messages received.
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

/// Received, lost, duplicated and out-of-order counts for one client, given that
/// `published` messages (sequence numbers `0..published`) were published.
pub fn delivery(log: &ClientLog, published: u64) -> Delivery {
    let mut seen = vec![false; published as usize];
    let mut d = Delivery::default();
    let mut highest: Option<u64> = None;
    for a in &log.arrivals {
        match seen.get_mut(a.seq as usize) {
            Some(true) => d.duplicated += 1,
            Some(s) => {
                *s = true;
                d.received += 1;
            }
            None => continue, // not one of ours (published by someone else)
        }
        if highest.is_some_and(|h| a.seq < h) {
            d.out_of_order += 1;
        }
        highest = highest.max(Some(a.seq));
    }
    d.lost = published - d.received;
    d
}

/// The value below which `p` percent of `sorted` lie (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// One row of the table: one transport, all its clients together.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub transport: &'static str,
    pub clients: u64,
    /// Messages published during the run (each client should receive every one).
    pub published: u64,
    pub delivery: Delivery,
    /// Latencies of first arrivals, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    pub truncated: u64,
    /// The clients' sockets and loops.
    pub wire: Reading,
    /// Bytes of message text received.
    pub payload_bytes: u64,
    /// What the server's `/stats` counted for this transport during the run.
    pub server: Option<ServerSide>,
    /// Why the transport failed, when it delivered nothing.
    pub error: Option<String>,
    /// For `auto`: the transports its clients ended up on.
    pub settled_on: Vec<String>,
}

/// The server's own counters for one transport, over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerSide {
    pub requests: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub delivered: u64,
    /// Connections of this transport the server held open at the end of the run.
    pub open: i64,
}

impl Row {
    pub fn new(transport: &'static str, published: u64, logs: &[ClientLog], wire: Reading) -> Row {
        let mut row = Row { transport, clients: logs.len() as u64, published, wire, ..Row::default() };
        for log in logs {
            let d = delivery(log, published);
            row.delivery.received += d.received;
            row.delivery.lost += d.lost;
            row.delivery.duplicated += d.duplicated;
            row.delivery.out_of_order += d.out_of_order;
            row.truncated += log.truncated;
            for t in &log.carried_by {
                if !row.settled_on.contains(t) {
                    row.settled_on.push(t.clone());
                }
            }
            let mut first = vec![false; published as usize];
            for a in &log.arrivals {
                row.payload_bytes += a.payload;
                if let Some(f) = first.get_mut(a.seq as usize)
                    && !*f
                {
                    *f = true;
                    row.latencies_us.push(a.latency_us);
                }
            }
        }
        row.latencies_us.sort_unstable();
        row
    }

    pub fn latency_ms(&self, p: f64) -> Option<f64> {
        percentile(&self.latencies_us, p).map(|us| us as f64 / 1000.0)
    }

    pub fn max_ms(&self) -> Option<f64> {
        self.latencies_us.last().map(|&us| us as f64 / 1000.0)
    }

    /// Bytes both ways, counted at the clients' sockets.
    pub fn wire_bytes(&self) -> u64 {
        self.wire.bytes_read + self.wire.bytes_written
    }

    fn per_message(&self, n: u64) -> Option<f64> {
        (self.delivery.received > 0).then(|| n as f64 / self.delivery.received as f64)
    }

    pub fn bytes_per_message(&self) -> Option<f64> {
        self.per_message(self.wire_bytes())
    }

    /// Headers, chunk lines, event fields, frame headers, masks, requests: everything
    /// on the wire that is not message text.
    pub fn framing_per_message(&self) -> Option<f64> {
        self.per_message(self.wire_bytes().saturating_sub(self.payload_bytes))
    }

    pub fn payload_per_message(&self) -> Option<f64> {
        self.per_message(self.payload_bytes)
    }

    pub fn requests_per_message(&self) -> Option<f64> {
        self.per_message(self.wire.requests)
    }
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub url: String,
    pub channel: String,
    pub rate: f64,
    pub duration_s: f64,
    pub interval_s: f64,
    /// One-way delay added by the proxy, if any.
    pub latency_ms: Option<f64>,
    /// The proxy's hostile modes, if any (`block-websocket`, `buffer-responses`).
    pub proxy_modes: Vec<String>,
    pub published: u64,
    pub publish_errors: u64,
    pub rows: Vec<Row>,
    /// CPU time of the server's threads over the run (only for the in-process server).
    pub server_cpu_ms: Option<f64>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn json_num(v: Option<f64>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, |v| serde_json::json!((v * 1000.0).round() / 1000.0))
}

impl Report {
    /// The table people read. Every figure is measured; `-` means there was nothing
    /// to measure (no message arrived).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let via = match (self.latency_ms, self.proxy_modes.is_empty()) {
            (None, true) => String::new(),
            (lat, _) => {
                let mut parts: Vec<String> = self.proxy_modes.clone();
                if let Some(ms) = lat {
                    parts.insert(0, format!("{ms} ms each way"));
                }
                format!(", through the proxy ({})", parts.join(", "))
            }
        };
        let _ = writeln!(
            s,
            "{} messages published to {} on {} over {} s ({}/s, short polls every {} s){via}",
            self.published, self.channel, self.url, self.duration_s, self.rate, self.interval_s
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<11} {:>8} {:>5} {:>5} {:>5} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>8} | {:>5} {:>6}",
            "transport",
            "received",
            "lost",
            "dup",
            "order",
            "p50 ms",
            "p99 ms",
            "max ms",
            "requests",
            "req/msg",
            "empty",
            "B/msg",
            "framing",
            "payload",
            "conns",
            "reconn"
        );
        let _ = writeln!(s, "{}", "-".repeat(136));
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<11} {:>8} {:>5} {:>5} {:>5} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>8} | {:>5} {:>6}",
                r.transport,
                r.delivery.received,
                r.delivery.lost,
                r.delivery.duplicated,
                r.delivery.out_of_order,
                opt(r.latency_ms(50.0), 1),
                opt(r.latency_ms(99.0), 1),
                opt(r.max_ms(), 1),
                r.wire.requests,
                opt(r.requests_per_message(), 2),
                r.wire.empty_polls,
                opt(r.bytes_per_message(), 0),
                opt(r.framing_per_message(), 0),
                opt(r.payload_per_message(), 0),
                r.wire.connections,
                r.wire.reconnections,
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "received/lost/dup/order: messages each client got once, never, more than once, after a later one"
        );
        let _ = writeln!(
            s,
            "p50/p99/max: publish-to-arrival; req/msg: HTTP requests per message delivered; empty: short polls that found nothing"
        );
        let _ = writeln!(
            s,
            "B/msg: bytes both ways at the clients' sockets per message delivered = framing (headers, chunk lines, frame headers, masks) + payload"
        );
        for r in &self.rows {
            if let Some(e) = &r.error {
                let _ = writeln!(s, "{} failed: {e}", r.transport);
            }
            if r.transport == "auto" && !r.settled_on.is_empty() {
                let _ = writeln!(s, "auto: the cascade delivered over {}", r.settled_on.join(", then "));
            }
            if r.truncated > 0 {
                let _ = writeln!(s, "{}: told `truncated` {} time(s)", r.transport, r.truncated);
            }
        }
        if self.publish_errors > 0 {
            let _ = writeln!(s, "{} publish(es) failed", self.publish_errors);
        }
        if let Some(cpu) = self.server_cpu_ms {
            let delivered: u64 = self.rows.iter().map(|r| r.delivery.received).sum();
            let per = if delivered > 0 {
                format!(", {:.1} µs per message delivered", cpu * 1000.0 / delivered as f64)
            } else {
                String::new()
            };
            let held: Vec<String> =
                self.rows.iter().filter_map(|r| r.server.map(|sv| format!("{} {}", r.transport, sv.open))).collect();
            let _ = writeln!(
                s,
                "server: {cpu:.0} ms of CPU for all the clients together{per}; connections held at the end: {}",
                held.join(", ")
            );
        }
        s
    }

    /// The same figures as one JSON document (API.md: `compare --json`).
    pub fn json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "transport": r.transport,
                    "clients": r.clients,
                    "published": r.published,
                    "received": r.delivery.received,
                    "lost": r.delivery.lost,
                    "duplicated": r.delivery.duplicated,
                    "out_of_order": r.delivery.out_of_order,
                    "truncated": r.truncated,
                    "latency_ms": {
                        "p50": json_num(r.latency_ms(50.0)),
                        "p99": json_num(r.latency_ms(99.0)),
                        "max": json_num(r.max_ms()),
                    },
                    "requests": r.wire.requests,
                    "requests_per_message": json_num(r.requests_per_message()),
                    "empty_polls": r.wire.empty_polls,
                    "bytes_read": r.wire.bytes_read,
                    "bytes_written": r.wire.bytes_written,
                    "payload_bytes": r.payload_bytes,
                    "bytes_per_message": json_num(r.bytes_per_message()),
                    "framing_bytes_per_message": json_num(r.framing_per_message()),
                    "payload_bytes_per_message": json_num(r.payload_per_message()),
                    "connections": r.wire.connections,
                    "reconnections": r.wire.reconnections,
                    "server": r.server.map(|sv| serde_json::json!({
                        "requests": sv.requests,
                        "bytes_read": sv.bytes_read,
                        "bytes_written": sv.bytes_written,
                        "delivered": sv.delivered,
                        "open": sv.open,
                    })),
                    "error": r.error,
                    "settled_on": r.settled_on,
                })
            })
            .collect();
        serde_json::json!({
            "url": self.url,
            "channel": self.channel,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "interval_s": self.interval_s,
            "latency_ms": self.latency_ms,
            "proxy": self.proxy_modes,
            "published": self.published,
            "publish_errors": self.publish_errors,
            "server_cpu_ms": json_num(self.server_cpu_ms),
            "transports": rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(seqs: &[u64]) -> ClientLog {
        ClientLog {
            arrivals: seqs.iter().map(|&seq| Arrival { seq, latency_us: 1000 * (seq + 1), payload: 10 }).collect(),
            truncated: 0,
            carried_by: Vec::new(),
        }
    }

    #[test]
    fn delivery_counts_every_kind_of_fault() {
        assert_eq!(delivery(&log(&[0, 1, 2, 3]), 4), Delivery { received: 4, lost: 0, duplicated: 0, out_of_order: 0 });
        assert_eq!(delivery(&log(&[0, 2, 1, 2]), 4), Delivery { received: 3, lost: 1, duplicated: 1, out_of_order: 1 });
        assert_eq!(delivery(&log(&[]), 3).lost, 3);
        assert_eq!(delivery(&log(&[0, 99]), 2).received, 1, "a message not ours is not counted");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_row_splits_framing_from_payload_per_message() {
        let wire = Reading { bytes_read: 300, bytes_written: 100, requests: 4, connections: 1, ..Reading::default() };
        let row = Row::new("long-poll", 4, &[log(&[0, 1, 2, 3, 3])], wire);
        assert_eq!(row.delivery.received, 4);
        assert_eq!(row.latencies_us, vec![1000, 2000, 3000, 4000], "first arrivals only");
        assert_eq!(row.bytes_per_message(), Some(100.0));
        assert_eq!(row.payload_per_message(), Some(12.5), "the duplicate's text crossed the wire too");
        assert_eq!(row.framing_per_message(), Some(87.5));
        assert_eq!(row.requests_per_message(), Some(1.0));
        let empty = Row::new("sse", 4, &[log(&[])], Reading::default());
        assert_eq!((empty.bytes_per_message(), empty.latency_ms(50.0)), (None, None));
    }

    #[test]
    fn json_has_what_api_md_names() {
        let row = Row::new("websocket", 2, &[log(&[0, 1])], Reading { bytes_read: 50, ..Reading::default() });
        let r = Report { published: 2, rows: vec![row], ..Report::default() };
        let v = r.json();
        let t = &v["transports"][0];
        for key in
            ["transport", "published", "received", "lost", "duplicated", "latency_ms", "requests", "bytes_per_message"]
        {
            assert!(!t[key].is_null(), "{key}");
        }
        assert_eq!(t["latency_ms"]["p50"], 1.0);
        assert!(r.table().contains("websocket"));
    }
}
