//! `compare --svg FILE`: the run as one chart a learner can put on a slide, drawn here
//! as plain SVG text (no plotting library: it is lines, rectangles and labels).
//!
//! Left: each transport's latency distribution as a cumulative curve (what fraction of
//! messages had arrived by a given delay), labelled at its own end, so no legend is
//! needed. Right: bytes on the wire per delivered message, one bar per transport, split
//! into framing (headers, chunk lines, frame headers) and payload, with the figures.

use std::fmt::Write as _;

use super::report::Report;

/// One colour per row (the four transports in `TRANSPORTS` order, then `auto`);
/// readable on white and in grey.
const COLOURS: [&str; 5] = ["#d1495b", "#edae49", "#00798c", "#30638e", "#6a4c93"];
const W: f64 = 1000.0;
const H: f64 = 460.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|&m| m >= v).unwrap_or(10.0 * p)
}

pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="28" font-size="17" font-weight="bold">{}</text>
<text x="20" y="48" fill="#555">{}</text>
"##,
        esc("Four ways to push: the same messages, side by side"),
        esc(&format!(
            "{} messages at {}/s for {} s, short polls every {} s{}; measured by wire-academy compare",
            report.published,
            report.rate,
            report.duration_s,
            report.interval_s,
            report.latency_ms.map_or(String::new(), |ms| format!(", {ms} ms added each way"))
        ))
    );
    latency_panel(&mut s, report, 60.0, 80.0, 500.0, 320.0);
    bytes_panel(&mut s, report, 700.0, 80.0, 260.0, 320.0);
    s.push_str("</svg>\n");
    s
}

/// Cumulative latency curves, x = milliseconds (linear), y = share of messages.
fn latency_panel(s: &mut String, report: &Report, x0: f64, y0: f64, w: f64, h: f64) {
    let max_ms = report.rows.iter().filter_map(|r| r.max_ms()).fold(0.0, f64::max);
    let xmax = nice_max(max_ms);
    let px = |ms: f64| x0 + w * (ms / xmax).min(1.0);
    let py = |share: f64| y0 + h * (1.0 - share);
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="{}" font-weight="bold">Latency: share of messages arrived within…</text>"#,
        y0 - 12.0
    );
    for i in 0..=4 {
        let share = i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end" fill="#555">{}%</text>"##,
            x0 + w,
            x0 - 6.0,
            py(share) + 4.0,
            (share * 100.0) as u32,
            y = py(share)
        );
    }
    for i in 0..=5 {
        let ms = xmax * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            y0,
            y0 + h,
            y0 + h + 18.0,
            if xmax >= 10.0 { format!("{ms:.0}") } else { format!("{ms:.1}") },
            x = px(ms)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">milliseconds from publish to arrival</text>"##,
        x0 + w / 2.0,
        y0 + h + 38.0
    );
    let mut label_ys: Vec<f64> = Vec::new();
    for (i, r) in report.rows.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        if r.latencies_us.is_empty() {
            continue;
        }
        // A step curve through every arrival: exact, and a few hundred points at most
        // for the runs compare makes.
        let n = r.latencies_us.len() as f64;
        let expected = (r.published * r.clients).max(1) as f64;
        let mut d = format!("M{:.1},{:.1}", px(0.0), py(0.0));
        for (k, &us) in r.latencies_us.iter().enumerate() {
            let ms = us as f64 / 1000.0;
            let _ = write!(
                d,
                " L{:.1},{:.1} L{:.1},{:.1}",
                px(ms),
                py(k as f64 / expected),
                px(ms),
                py((k + 1) as f64 / expected)
            );
        }
        let _ = writeln!(s, r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2.5"/>"#);
        // The label sits where the curve ends, nudged apart from the others.
        let end_ms = r.max_ms().unwrap_or(0.0);
        let mut ly = py(n / expected) + 4.0;
        while label_ys.iter().any(|&y| (y - ly).abs() < 15.0) {
            ly += 15.0;
        }
        label_ys.push(ly);
        let p50 = r.latency_ms(50.0).unwrap_or(0.0);
        let (x, anchor) =
            if px(end_ms) > x0 + w - 150.0 { (px(end_ms) - 6.0, "end") } else { (px(end_ms) + 6.0, "start") };
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{ly:.1}" fill="{colour}" font-weight="bold" text-anchor="{anchor}">{} (p50 {p50:.1} ms)</text>"#,
            r.transport
        );
    }
}

/// Bytes per delivered message: framing (dark) then payload (light), per transport.
fn bytes_panel(s: &mut String, report: &Report, x0: f64, y0: f64, w: f64, h: f64) {
    let max = report.rows.iter().filter_map(|r| r.bytes_per_message()).fold(0.0, f64::max);
    let xmax = nice_max(max);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-weight="bold">Bytes on the wire per message</text>"#,
        x0 - 80.0,
        y0 - 12.0
    );
    let band = h / report.rows.len().max(1) as f64;
    for (i, r) in report.rows.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let y = y0 + band * i as f64 + band * 0.25;
        let bh = band * 0.4;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end" fill="{colour}" font-weight="bold">{}</text>"#,
            x0 - 6.0,
            y + bh * 0.7,
            r.transport
        );
        let (Some(framing), Some(payload)) = (r.framing_per_message(), r.payload_per_message()) else {
            let _ = writeln!(s, r##"<text x="{x0}" y="{:.1}" fill="#555">nothing delivered</text>"##, y + bh * 0.7);
            continue;
        };
        let fw = w * framing / xmax;
        let pw = w * payload / xmax;
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y:.1}" width="{fw:.1}" height="{bh:.1}" fill="{colour}"/><rect x="{:.1}" y="{y:.1}" width="{pw:.1}" height="{bh:.1}" fill="{colour}" fill-opacity="0.35"/>"##,
            x0 + fw
        );
        let _ = writeln!(
            s,
            r##"<text x="{x0}" y="{:.1}" fill="#333" font-size="12">{:.0} B = {:.0} framing + {:.0} payload; {:.2} requests</text>"##,
            y + bh + 14.0,
            framing + payload,
            framing,
            payload,
            r.requests_per_message().unwrap_or(0.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::meter::Reading;
    use crate::compare::report::{Arrival, ClientLog, Row};

    #[test]
    fn draws_each_transport_labelled_without_a_legend() {
        let log = |lat: u64| ClientLog {
            arrivals: (0..10).map(|seq| Arrival { seq, latency_us: lat * (seq + 1), payload: 20 }).collect(),
            truncated: 0,
            carried_by: Vec::new(),
        };
        let wire = Reading { bytes_read: 2000, bytes_written: 500, requests: 10, ..Reading::default() };
        let rows = vec![
            Row::new("short-poll", 10, &[log(400_000)], wire),
            Row::new("long-poll", 10, &[log(2_000)], wire),
            Row::new("sse", 10, &[log(1_000)], wire),
            Row::new("websocket", 10, &[ClientLog::default()], Reading::default()),
        ];
        let svg = render(&Report { published: 10, rate: 10.0, rows, ..Report::default() });
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for t in ["short-poll (p50", "long-poll (p50", "sse (p50"] {
            assert!(svg.contains(t), "{t} labelled at its curve");
        }
        assert!(svg.contains("nothing delivered"), "a transport that failed is shown, not hidden");
        assert_eq!(svg.matches("<path").count(), 3);
    }

    #[test]
    fn nice_axis_bounds() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(870.0), 1000.0);
        assert_eq!(nice_max(1000.0), 1000.0);
    }
}
