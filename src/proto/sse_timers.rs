//! The timers of an open event stream as data: when a heartbeat comment is due, and how
//! long a graceful shutdown's last bytes may take to leave (WHATWG HTML §9.2.6, §9.2.7).
//!
//! A pure timer table in the style of quinn-proto's `poll_timeout` / `handle_timeout`:
//! no clock, no task, no socket. Instants are passed in. The driver sleeps until
//! [`StreamTimers::poll_timeout`], calls [`StreamTimers::handle_timeout`] with the time
//! it woke and does what it is told; it reports bytes written with
//! [`StreamTimers::on_sent`] and the start of a shutdown with
//! [`StreamTimers::on_shutdown`].
//!
//! ```text
//! open ── heartbeat of silence ──► Heartbeat (write `: `)     anything written: silence restarts
//! socket refuses bytes ── every backlog check while it does ──► CheckBacklog
//! channel messages queued within coalesce of the last write ── held until then ──► Flush
//! shutting down ── goodbye time ──► GiveUp (the client did not take the last bytes)
//! ```
//!
//! - Heartbeats. §9.2.7, authoring notes: "Legacy proxy servers are known to, in certain
//!   cases, drop HTTP connections after a short timeout. To protect against such proxy
//!   servers, authors can include a comment line (one starting with a ':' character)
//!   every 15 seconds or so." A comment costs the client nothing (§9.2.6: a line that
//!   starts with a colon is ignored). It is needed only when the line is quiet, so one is
//!   due after `heartbeat` with **nothing sent**: any bytes written (an event, a heartbeat)
//!   start the silence again. A driver woken late sends one heartbeat, not a burst.
//! - Shutting down. The stream's last bytes (a `retry:`, the last chunk) have a bounded
//!   time to leave, so that a client that stopped reading cannot hold the shutdown. No
//!   heartbeats then: the stream is ending.
//! - The backlog check ([`crate::proto::backlog`]): while the socket refuses bytes, the
//!   driver takes nothing from the channel, and this deadline wakes it to judge how far
//!   behind the client is.
//! - Write coalescing ([`crate::proto::coalesce`], `--coalesce`, off by default): channel
//!   messages are written at most once per interval; those queued sooner are held until
//!   then. Nothing is held once shutting down.

use std::time::{Duration, Instant};

use super::backlog::BacklogCheck;
use super::coalesce::Coalesce;

/// What [`StreamTimers::handle_timeout`] tells the driver to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// The line has been quiet for a heartbeat period: send a comment.
    Heartbeat,
    /// Shutting down, and the last bytes did not leave in time: drop the connection.
    GiveUp,
    /// The socket has refused bytes for a backlog check's interval: judge the backlog.
    CheckBacklog,
    /// The channel messages held by coalescing are due: write them.
    Flush,
}

/// The timers of one event stream.
#[derive(Clone, Debug)]
pub struct StreamTimers {
    /// Silence before a heartbeat; zero turns heartbeats off.
    heartbeat: Duration,
    /// When the next heartbeat is due; `None` when heartbeats are off or shutting down.
    heartbeat_due: Option<Instant>,
    /// Set once shutting down: when to stop waiting for the last bytes to leave.
    give_up_at: Option<Instant>,
    /// While the socket refuses bytes: when to judge the backlog next.
    backlog: BacklogCheck,
    /// Channel messages held to leave in one write.
    coalesce: Coalesce,
}

impl StreamTimers {
    /// The timers of a stream that opened at `now`, with a heartbeat after `heartbeat` of
    /// silence (never, if zero).
    pub fn new(heartbeat: Duration, now: Instant) -> StreamTimers {
        let heartbeat_due = (!heartbeat.is_zero()).then(|| now + heartbeat);
        StreamTimers {
            heartbeat,
            heartbeat_due,
            give_up_at: None,
            backlog: BacklogCheck::new(Duration::ZERO),
            coalesce: Coalesce::new(Duration::ZERO, 1),
        }
    }

    /// The same, with a backlog check every `every` while the socket refuses bytes.
    pub fn with_backlog_check(self, every: Duration) -> StreamTimers {
        StreamTimers { backlog: BacklogCheck::new(every), ..self }
    }

    /// The same, writing channel messages at most once per `every` (zero: each at once)
    /// unless `most` are waiting.
    pub fn with_coalesce(self, every: Duration, most: usize) -> StreamTimers {
        StreamTimers { coalesce: Coalesce::new(every, most), ..self }
    }

    /// The earliest deadline, if any: when to call [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.give_up_at.or_else(|| {
            [self.heartbeat_due, self.backlog.deadline(), self.coalesce.deadline()].into_iter().flatten().min()
        })
    }

    /// What is due at `now`, if anything. An early call returns `None`; a call after
    /// the shutdown deadline keeps returning [`Timeout::GiveUp`].
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        if let Some(at) = self.give_up_at {
            return (now >= at).then_some(Timeout::GiveUp);
        }
        // Before the heartbeat: with both due, this call says one and the next the other.
        if self.coalesce.fire(now) {
            return Some(Timeout::Flush);
        }
        if self.backlog.fire(now) {
            return Some(Timeout::CheckBacklog);
        }
        if self.heartbeat_due.is_none_or(|at| now < at) {
            return None;
        }
        // Due again a period from now, whether or not the driver manages to write this
        // one (it does not queue one behind bytes still waiting: they keep the line
        // busy anyway); writing it restarts the silence in `on_sent`.
        self.heartbeat_due = Some(now + self.heartbeat);
        Some(Timeout::Heartbeat)
    }

    /// Bytes were written to the client at `now`: the line is not silent.
    pub fn on_sent(&mut self, now: Instant) {
        if self.heartbeat_due.is_some() {
            self.heartbeat_due = Some(now + self.heartbeat);
        }
    }

    /// The server started shutting down at `now`: the last bytes have `within` to
    /// leave, and heartbeats stop. Later calls keep the first deadline.
    pub fn on_shutdown(&mut self, now: Instant, within: Duration) {
        self.heartbeat_due = None;
        self.backlog.clear();
        self.coalesce.clear();
        self.give_up_at.get_or_insert(now + within);
    }

    /// Whether the socket refuses bytes now (what was queued did not all leave): while
    /// it does, a backlog check is due every interval from when it started (the clock,
    /// `now`, is read only then); none while closing.
    pub fn set_blocked(&mut self, refused: bool, now: impl FnOnce() -> Instant) {
        self.backlog.set_blocked(refused && !self.is_closing(), now);
    }

    /// Channel messages were just queued, and `held` are queued and not written: whether
    /// to write them now, or hold them until a [`Timeout::Flush`] (the clock, `now`, is
    /// read only when coalescing is on).
    pub fn on_queued(&mut self, held: usize, now: impl FnOnce() -> Instant) -> bool {
        self.is_closing() || self.coalesce.on_queued(held, now)
    }

    /// Whether channel messages are held (nothing is written meanwhile).
    pub fn is_holding(&self) -> bool {
        self.coalesce.is_holding()
    }

    /// Whether the stream is shutting down.
    pub fn is_closing(&self) -> bool {
        self.give_up_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEAT: Duration = Duration::from_secs(15);
    const GOODBYE: Duration = Duration::from_secs(5);
    const TICK: Duration = Duration::from_nanos(1);

    #[test]
    fn a_heartbeat_is_due_after_a_period_of_silence_and_then_every_period() {
        let base = Instant::now();
        let mut t = StreamTimers::new(BEAT, base);
        assert_eq!(t.poll_timeout(), Some(base + BEAT));
        assert_eq!(t.handle_timeout(base + BEAT - TICK), None, "just before");
        assert_eq!(t.poll_timeout(), Some(base + BEAT), "an early call changes nothing");
        assert_eq!(t.handle_timeout(base + BEAT), Some(Timeout::Heartbeat), "exactly at the deadline");
        assert_eq!(t.handle_timeout(base + BEAT), None, "one, not two");
        // Written at once: the next one a period later.
        t.on_sent(base + BEAT);
        assert_eq!(t.poll_timeout(), Some(base + 2 * BEAT));
        assert_eq!(t.handle_timeout(base + 2 * BEAT - TICK), None);
        assert_eq!(t.handle_timeout(base + 2 * BEAT), Some(Timeout::Heartbeat));
    }

    #[test]
    fn anything_written_restarts_the_silence() {
        let base = Instant::now();
        let mut t = StreamTimers::new(BEAT, base);
        // An event leaves a moment before the heartbeat was due.
        let event = base + BEAT - Duration::from_millis(1);
        t.on_sent(event);
        assert_eq!(t.handle_timeout(base + BEAT), None, "the event kept the line busy");
        assert_eq!(t.poll_timeout(), Some(event + BEAT));
        assert_eq!(t.handle_timeout(event + BEAT - TICK), None);
        assert_eq!(t.handle_timeout(event + BEAT), Some(Timeout::Heartbeat));
    }

    #[test]
    fn a_heartbeat_not_written_is_due_again_a_period_later() {
        // The driver found bytes still queued and wrote no heartbeat; nothing was sent.
        let base = Instant::now();
        let mut t = StreamTimers::new(BEAT, base);
        assert_eq!(t.handle_timeout(base + BEAT), Some(Timeout::Heartbeat));
        assert_eq!(t.poll_timeout(), Some(base + 2 * BEAT));
        assert_eq!(t.handle_timeout(base + 2 * BEAT), Some(Timeout::Heartbeat));
    }

    #[test]
    fn a_late_wake_up_sends_one_heartbeat_and_counts_from_then() {
        let base = Instant::now();
        let mut t = StreamTimers::new(BEAT, base);
        let late = base + 4 * BEAT + Duration::from_millis(3);
        assert_eq!(t.handle_timeout(late), Some(Timeout::Heartbeat));
        assert_eq!(t.handle_timeout(late), None, "one, not four");
        assert_eq!(t.poll_timeout(), Some(late + BEAT));
    }

    #[test]
    fn shutting_down_stops_heartbeats_and_bounds_the_goodbye() {
        let base = Instant::now();
        let mut t = StreamTimers::new(BEAT, base);
        let stop = base + BEAT - TICK;
        t.on_shutdown(stop, GOODBYE);
        assert!(t.is_closing());
        assert_eq!(t.poll_timeout(), Some(stop + GOODBYE), "no heartbeat any more");
        assert_eq!(t.handle_timeout(base + BEAT), None, "no heartbeat at its old deadline");
        t.on_sent(stop + TICK);
        t.on_shutdown(stop + TICK, GOODBYE);
        assert_eq!(t.poll_timeout(), Some(stop + GOODBYE), "writing and a second call keep the deadline");
        assert_eq!(t.handle_timeout(stop + GOODBYE - TICK), None);
        assert_eq!(t.handle_timeout(stop + GOODBYE), Some(Timeout::GiveUp), "exactly at the deadline");
        assert_eq!(t.handle_timeout(stop + GOODBYE + TICK), Some(Timeout::GiveUp), "and stays so");
    }

    #[test]
    fn with_heartbeats_off_nothing_is_due_until_shutdown() {
        let base = Instant::now();
        let mut t = StreamTimers::new(Duration::ZERO, base);
        assert_eq!(t.poll_timeout(), None);
        t.on_sent(base + BEAT);
        assert_eq!(t.poll_timeout(), None, "writing does not turn them on");
        assert_eq!(t.handle_timeout(base + 100 * BEAT), None);
        t.on_shutdown(base + BEAT, GOODBYE);
        assert_eq!(t.poll_timeout(), Some(base + BEAT + GOODBYE));
        assert_eq!(t.handle_timeout(base + BEAT + GOODBYE), Some(Timeout::GiveUp));
    }

    #[test]
    fn a_blocked_stream_gets_backlog_checks_beside_its_heartbeats_until_shutdown() {
        const CHECK: Duration = Duration::from_secs(1);
        let base = Instant::now();
        let mut t = StreamTimers::new(BEAT, base).with_backlog_check(CHECK);
        assert_eq!(t.poll_timeout(), Some(base + BEAT), "not blocked: only the heartbeat");
        t.set_blocked(true, || base + BEAT - CHECK);
        assert_eq!(t.poll_timeout(), Some(base + BEAT));
        assert_eq!(t.handle_timeout(base + BEAT), Some(Timeout::CheckBacklog), "both due: the check first");
        assert_eq!(t.handle_timeout(base + BEAT), Some(Timeout::Heartbeat), "then the heartbeat");
        assert_eq!(t.poll_timeout(), Some(base + BEAT + CHECK), "the next check");
        t.set_blocked(false, || base);
        assert_eq!(t.poll_timeout(), Some(base + 2 * BEAT));
        t.set_blocked(true, || base + BEAT + TICK);
        t.on_shutdown(base + BEAT + 2 * TICK, GOODBYE);
        assert_eq!(t.poll_timeout(), Some(base + BEAT + 2 * TICK + GOODBYE), "shutting down: no more checks");
        t.set_blocked(true, || base + BEAT + 3 * TICK);
        assert_eq!(t.poll_timeout(), Some(base + BEAT + 2 * TICK + GOODBYE));
    }

    #[test]
    fn coalesced_messages_are_flushed_at_their_deadline_and_released_at_shutdown() {
        let base = Instant::now();
        let every = Duration::from_millis(20);
        let mut t = StreamTimers::new(BEAT, base).with_coalesce(every, 64);
        assert!(t.on_queued(1, || base), "the first write: at once");
        assert!(!t.on_queued(1, || base + every / 2), "within the interval: held");
        assert_eq!(t.poll_timeout(), Some(base + every));
        assert_eq!(t.handle_timeout(base + every), Some(Timeout::Flush));
        assert!(!t.is_holding());
        assert!(!t.on_queued(1, || base + every + every / 2), "held again");
        t.on_shutdown(base + every + every / 2, BEAT);
        assert!(!t.is_holding(), "shutting down: the rest goes now");
        assert!(t.on_queued(1, || unreachable!("no clock while closing")));
    }
}
