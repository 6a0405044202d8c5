//! What a client does with what it receives: one line per message on stdout (or one JSON
//! object with `--json`), a count to stop at, and the cursor to resume from.

use std::io::Write;

/// What a transport hands the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Message {
        id: u64,
        data: String,
    },
    /// The server said messages after the cursor were already dropped from history.
    Truncated,
}

/// Prints deliveries, keeps the cursor, and says when `--count` is reached.
pub struct Sink {
    json: bool,
    count: Option<u64>,
    received: u64,
    /// The id of the last message delivered: the cursor to resume from.
    pub cursor: Option<u64>,
    out: Box<dyn Write + Send>,
    /// With `--protocol auto`: why each transport tried so far was given up.
    fallbacks: Vec<String>,
    /// The transport that proved it works, once one has.
    settled: Option<&'static str>,
    announce: bool,
    /// Instead of printing, each delivery is handed here (`compare` measures them).
    observer: Option<Observer>,
}

/// What receives each delivery (and the transport that carried it) in place of stdout.
pub type Observer = Box<dyn FnMut(&str, &Delivery) + Send>;

impl Sink {
    pub fn new(json: bool, count: Option<u64>, out: Box<dyn Write + Send>) -> Sink {
        Sink {
            json,
            count,
            received: 0,
            cursor: None,
            out,
            fallbacks: Vec::new(),
            settled: None,
            announce: false,
            observer: None,
        }
    }

    /// A sink that prints nothing and hands each delivery to `observer`.
    pub fn observed(observer: Observer) -> Sink {
        Sink { observer: Some(observer), ..Sink::new(false, None, Box::new(std::io::sink())) }
    }

    pub fn stdout(json: bool, count: Option<u64>) -> Sink {
        Sink::new(json, count, Box::new(std::io::stdout()))
    }

    /// Records one delivery; returns `true` once `--count` messages have arrived.
    pub fn deliver(&mut self, transport: &str, d: Delivery) -> bool {
        if let Some(observe) = self.observer.as_mut() {
            observe(transport, &d);
        } else {
            self.print(transport, &d);
        }
        if let Delivery::Message { id, .. } = d {
            self.cursor = Some(id);
            self.received += 1;
        }
        self.done()
    }

    fn print(&mut self, transport: &str, d: &Delivery) {
        let line = match (d, self.json) {
            (Delivery::Message { id, data }, true) => {
                format!(
                    "{{\"transport\":\"{transport}\",\"id\":{id},\"data\":{}}}",
                    serde_json::to_string(data).unwrap_or_default()
                )
            }
            // One line per message: line breaks inside the text are shown escaped.
            (Delivery::Message { id, data }, false) => {
                format!("[{transport}] {id}: {}", data.replace('\r', "\\r").replace('\n', "\\n"))
            }
            (Delivery::Truncated, true) => format!("{{\"transport\":\"{transport}\",\"truncated\":true}}"),
            (Delivery::Truncated, false) => {
                format!("[{transport}] truncated: some messages after the cursor are no longer in the server's history")
            }
        };
        let _ = writeln!(self.out, "{line}").and_then(|_| self.out.flush());
    }

    /// Says, once per switch, which transport the cascade settled on and why.
    pub fn announce_settling(&mut self) {
        self.announce = true;
    }

    /// Records why `transport` was given up.
    pub fn fell_back(&mut self, transport: &str, why: &str) {
        status(&format!("auto: {transport} does not work here: {why}"));
        self.fallbacks.push(format!("{transport}: {why}"));
        self.settled = None;
    }

    /// A transport proved it carries data (a round trip, a first byte, an answer).
    pub fn established(&mut self, transport: &'static str) {
        if self.announce && self.settled != Some(transport) {
            self.settled = Some(transport);
            let why = if self.fallbacks.is_empty() {
                "the first choice worked".to_string()
            } else {
                format!("after {}", self.fallbacks.join("; "))
            };
            status(&format!("auto: settled on {transport} ({why})"));
        }
    }

    /// The transport the cascade settled on, if any yet.
    pub fn settled(&self) -> Option<&'static str> {
        self.settled
    }

    pub fn done(&self) -> bool {
        self.count.is_some_and(|c| self.received >= c)
    }

    pub fn received(&self) -> u64 {
        self.received
    }
}

/// A status line for people (connecting, falling back, reconnecting): stderr, so that
/// stdout carries only messages.
pub fn status(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
