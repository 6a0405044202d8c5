//! The short-poll and long-poll clients.
//!
//! Both keep a cursor and ask for "everything after it". Short polling asks every
//! `--interval` and gets an answer at once; long polling asks to be held (`timeout=`)
//! and asks again the moment an answer (or a `204`) arrives. Either way a dropped
//! connection loses nothing: the next request carries the cursor.

use std::io;
use std::time::Duration;

use super::backoff::Backoff;
use super::http::HttpClient;
use super::sink::{Delivery, Sink, status};
use super::{ClientConfig, Ended};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollKind {
    Short,
    Long,
}

impl PollKind {
    pub fn name(self) -> &'static str {
        match self {
            PollKind::Short => "short-poll",
            PollKind::Long => "long-poll",
        }
    }
}

/// Slack added to a long-poll's hold before the client gives up on an answer.
const HOLD_SLACK: Duration = Duration::from_secs(10);
/// How long a short poll or a publish may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// A poll answer: `{"truncated":true?, "messages":[{"id":N,"data":"…"}…], "next":N}`.
pub struct PollAnswer {
    pub truncated: bool,
    pub messages: Vec<(u64, String)>,
    pub next: u64,
}

pub fn parse_answer(body: &[u8]) -> io::Result<PollAnswer> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("poll answer: {why}"));
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    let messages = v["messages"]
        .as_array()
        .ok_or_else(|| bad("no messages array"))?
        .iter()
        .map(|m| Some((m["id"].as_u64()?, m["data"].as_str()?.to_string())))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("a message without id or data"))?;
    Ok(PollAnswer {
        truncated: v["truncated"] == true,
        messages,
        next: v["next"].as_u64().ok_or_else(|| bad("no next"))?,
    })
}

/// `POST /publish/{channel}`; returns the new id.
pub async fn publish(http: &mut HttpClient, cfg: &ClientConfig, text: &str) -> io::Result<u64> {
    let r = http
        .request("POST", &cfg.url.target(&format!("/publish/{}", cfg.channel)), text.as_bytes(), REQUEST_LIMIT)
        .await?;
    if r.status() != 200 {
        return Err(io::Error::other(format!("publish answered {}", r.status())));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(io::Error::other)?;
    v["id"].as_u64().ok_or_else(|| io::Error::other("publish answer without an id"))
}

/// The live head: the cursor a client without `--after` starts from. Learned with one
/// short poll, so that messages published from now on (our own `--send`s included)
/// are all after it.
pub async fn live_head(http: &mut HttpClient, cfg: &ClientConfig) -> io::Result<u64> {
    let r = http.request("GET", &cfg.url.target(&format!("/poll/{}", cfg.channel)), b"", REQUEST_LIMIT).await?;
    if r.status() != 200 {
        return Err(io::Error::other(format!("poll answered {}", r.status())));
    }
    Ok(parse_answer(&r.body)?.next)
}

/// What the top of every client's loop decides.
pub enum Round {
    /// `--count` messages have arrived.
    Done,
    /// The cursor could not be learned; a backoff delay has passed: try again.
    Again,
    /// Connect and resume after this id.
    From(u64),
}

/// The top of every client's (re)connection loop: stop at `--count`, else the cursor to
/// resume from: the last id delivered, else `--after`, else the live head, learned once
/// (and kept in the sink, so that a reconnection before the first message still resumes
/// from where the client began).
pub async fn next_round(
    http: &mut HttpClient,
    cfg: &ClientConfig,
    sink: &mut Sink,
    backoff: &mut Backoff,
    transport: &str,
) -> Round {
    if sink.done() {
        return Round::Done;
    }
    if let Some(c) = sink.cursor.or(cfg.after) {
        return Round::From(c);
    }
    match live_head(http, cfg).await {
        Ok(head) => {
            sink.cursor = Some(head);
            Round::From(head)
        }
        Err(e) => {
            retry(cfg, backoff, transport, &e).await;
            Round::Again
        }
    }
}

/// Delivers a poll answer; returns the new cursor and whether `--count` is reached.
pub fn deliver_answer(sink: &mut Sink, transport: &str, answer: PollAnswer) -> bool {
    let mut done = false;
    if answer.truncated {
        done |= sink.deliver(transport, Delivery::Truncated);
    }
    for (id, data) in answer.messages {
        if done {
            break;
        }
        done |= sink.deliver(transport, Delivery::Message { id, data });
    }
    done
}

/// Runs a poll client until `--count` is reached (or forever). With `probe` (the
/// cascade), a held request cut before its answer ends the loop with
/// [`Ended::Fallback`] instead of being retried.
pub async fn run(
    cfg: &ClientConfig,
    kind: PollKind,
    sink: &mut Sink,
    sends: &mut Vec<String>,
    probe: bool,
) -> io::Result<Ended> {
    let transport = kind.name();
    let mut http = HttpClient::new(&cfg.url.authority, cfg.taps());
    let mut backoff = Backoff::default();
    loop {
        let cursor = match next_round(&mut http, cfg, sink, &mut backoff, transport).await {
            Round::Done => return Ok(Ended::Done),
            Round::Again => continue,
            Round::From(c) => c,
        };
        // Publish what was asked, once we know where we start reading.
        while let Some(text) = sends.first() {
            match publish(&mut http, cfg, text).await {
                Ok(_) => {
                    sends.remove(0);
                }
                Err(e) => {
                    retry(cfg, &mut backoff, transport, &e).await;
                    continue;
                }
            }
        }
        let (target, limit) = match kind {
            PollKind::Short => (format!("/poll/{}?after={cursor}", cfg.channel), REQUEST_LIMIT),
            PollKind::Long => (
                format!("/long-poll/{}?after={cursor}&timeout={}", cfg.channel, cfg.hold.as_secs_f64()),
                cfg.hold + HOLD_SLACK,
            ),
        };
        match http.request("GET", &cfg.url.target(&target), b"", limit).await {
            Ok(r) if r.status() == 200 => {
                backoff.reset();
                sink.established(transport);
                let answer = parse_answer(&r.body)?;
                if kind == PollKind::Short && answer.messages.is_empty() {
                    super::meter::count(&cfg.meter, |m| &m.empty_polls);
                }
                let (next, truncated) = (answer.next, answer.truncated);
                if deliver_answer(sink, transport, answer) {
                    return Ok(Ended::Done);
                }
                sink.cursor = Some(if truncated {
                    // The server's sequence is not the one the cursor came from (it
                    // restarted, or the channel was dropped): its `next` is the truth,
                    // even when it is lower. Keeping the old cursor would ask again and
                    // be told `truncated` again, at once, forever.
                    next
                } else {
                    // An empty answer still moves the cursor (to the live head).
                    sink.cursor.map_or(next, |c| c.max(next))
                });
            }
            Ok(r) if r.status() == 204 => {
                // Held until the timeout: the transport works; ask again.
                backoff.reset();
                sink.established(transport);
            }
            Ok(r) => {
                let e = io::Error::other(format!(
                    "{} answered {}: {}",
                    target,
                    r.status(),
                    String::from_utf8_lossy(&r.body).trim()
                ));
                retry(cfg, &mut backoff, transport, &e).await;
            }
            Err(e) if probe && kind == PollKind::Long => {
                return Ok(Ended::Fallback(format!("a held long-poll was cut before its answer ({e})")));
            }
            Err(e) => retry(cfg, &mut backoff, transport, &e).await,
        }
        if kind == PollKind::Short && !sink.done() {
            tokio::time::sleep(cfg.interval).await;
        }
    }
}

/// Says what failed and waits the backoff's next delay.
pub async fn retry(cfg: &ClientConfig, backoff: &mut Backoff, transport: &str, e: &io::Error) {
    super::meter::failed(&cfg.meter, &e.to_string());
    let delay = backoff.delay();
    status(&format!("[{transport}] {e}; reconnecting in {} ms", delay.as_millis()));
    tokio::time::sleep(delay).await;
}
