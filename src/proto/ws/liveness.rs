//! WebSocket liveness as data: when the server pings, how long a pinged peer has to
//! show that it is alive, and how long the closing handshake may take (RFC 6455 §5.5.2,
//! §5.5.3, §7.1.1).
//!
//! A pure timer table in the style of quinn-proto's `poll_timeout` / `handle_timeout`:
//! no clock, no task, no socket. Instants are passed in. The driver sleeps until
//! [`Liveness::poll_timeout`], calls [`Liveness::handle_timeout`] with the time it woke
//! and does what it is told; it reports what happened on the connection with
//! [`Liveness::on_bytes_received`] and [`Liveness::on_closing`]. Every rule about time
//! on a server's WebSocket connection is in this file, so each one is tested by stepping
//! an `Instant` through its deadline.
//!
//! ```text
//! open ── every ping_interval ──► Ping(n) ── any bytes from the peer ──► answered
//!                                    └── none within ping_timeout ──► Zombie (close 1008)
//! socket refuses bytes ── every backlog_check while it does ──► CheckBacklog
//! channel messages queued within coalesce of the last write ── held until then ──► Flush
//! Close sent or received, or the connection failed
//!      └── close_timeout to finish ──► CloseTimedOut (drop the TCP connection)
//! ```
//!
//! - §5.5.2: "An endpoint MAY send a Ping frame any time after the connection is
//!   established and before the connection is closed" and "a Ping frame may serve either
//!   as a keepalive or as a means to verify that the remote endpoint is still
//!   responsive". So pings stop once the closing handshake has started.
//! - §5.5.3: a peer that has not yet answered earlier pings "MAY elect to send a Pong
//!   frame for only the most recently processed Ping frame", so a payload is not matched
//!   against its answer. Nor is a Pong required at all: a peer in the middle of a large
//!   frame cannot put a Pong before that frame's end (§5.4 lets control frames in
//!   between fragments, not inside a frame), and its bytes prove it alive just as well.
//!   **Any bytes read count.** While a ping is unanswered no further ping is sent: a
//!   second one would only move the question, not ask it again.
//! - §7.1.1: the server closes the TCP connection first. The RFC sets no time for
//!   waiting on the peer's Close (it lets a client give up on the server "after a
//!   reasonable amount of time"), so the wait is bounded here: once the closing
//!   handshake has started (§7.1.3: "upon either sending or receiving a Close control
//!   frame"), or the connection failed with its Close still to be written, the driver
//!   has `close_timeout` to finish. A peer that never answers (a zombie, a client that
//!   stopped reading) must not hold the connection.
//! - Not the RFC's, the server's own: while the socket refuses bytes (the client reads
//!   slower than its channel sends, or not at all), the driver stops taking messages from
//!   the channel, so that a client that stopped reading costs no work per message; they
//!   wait in the channel's shared ring. Every `backlog_check` while that lasts, the
//!   driver counts what came meanwhile (without taking it) and judges the client's
//!   backlog against `--max-queue` (`net::ws`), so a client that never reads again is
//!   still cut.
//! - Not the RFC's either: with `--coalesce` on, channel messages are written at most once
//!   per `coalesce` ([`crate::proto::coalesce`]); those queued sooner are held until then
//!   ([`Timeout::Flush`]). Nothing is held once the closing handshake has started.

use std::time::{Duration, Instant};

use crate::proto::backlog::BacklogCheck;
use crate::proto::coalesce::Coalesce;

/// The durations the table works with; the program's defaults are in `config.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// Time between pings. Zero turns pings (and so zombie culling) off.
    pub ping_interval: Duration,
    /// How long a pinged peer has to send any bytes at all.
    pub ping_timeout: Duration,
    /// How long the closing handshake, and writing its Close, may take.
    pub close_timeout: Duration,
    /// While the socket refuses bytes, how often to look at the backlog. Zero: never.
    pub backlog_check: Duration,
    /// The least time between two writes of channel messages. Zero: each at once.
    pub coalesce: Duration,
    /// A coalescing hold ends once it holds this many messages.
    pub coalesce_most: usize,
}

/// What [`Liveness::handle_timeout`] tells the driver to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Send a Ping; the number counts the pings sent (1 for the first), as a payload.
    Ping(u64),
    /// The peer sent nothing within `ping_timeout` of a ping: close it (1008). The close
    /// deadline runs from now.
    Zombie,
    /// The closing handshake did not finish within `close_timeout`: drop the connection.
    CloseTimedOut,
    /// The socket has refused bytes for `backlog_check`: judge the backlog, counting what
    /// the channel sent meanwhile. The next check is one interval later.
    CheckBacklog,
    /// The channel messages held by coalescing are due: write them.
    Flush,
}

/// The timers of one WebSocket connection.
#[derive(Clone, Debug)]
pub struct Liveness {
    config: LivenessConfig,
    /// When the next ping is due; `None` with pings off or once closing.
    next_ping: Option<Instant>,
    /// Set while a ping is out and nothing has been heard since: when the peer is a
    /// zombie.
    answer_by: Option<Instant>,
    /// Set once closing: when to stop waiting for the end.
    give_up_at: Option<Instant>,
    /// While the socket refuses bytes: when to look at the backlog next.
    backlog: BacklogCheck,
    /// Channel messages held to leave in one write.
    coalesce: Coalesce,
    pings_sent: u64,
}

impl Liveness {
    /// The timers of a connection that opened at `now`: the first ping is due one
    /// interval later.
    pub fn new(config: LivenessConfig, now: Instant) -> Liveness {
        let next_ping = (!config.ping_interval.is_zero()).then(|| now + config.ping_interval);
        Liveness {
            config,
            next_ping,
            answer_by: None,
            give_up_at: None,
            backlog: BacklogCheck::new(config.backlog_check),
            coalesce: Coalesce::new(config.coalesce, config.coalesce_most),
            pings_sent: 0,
        }
    }

    /// The earliest deadline, if any: when to call [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.give_up_at {
            Some(at) => Some(at),
            // Asked once per turn of a driver's loop: pairwise, not through an iterator.
            None => {
                let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                earliest(
                    earliest(self.next_ping, self.answer_by),
                    earliest(self.backlog.deadline(), self.coalesce.deadline()),
                )
            }
        }
    }

    /// What is due at `now`, if anything. Call it when the deadline of
    /// [`poll_timeout`](Self::poll_timeout) has come; an early call returns `None`, and a
    /// call after the close deadline keeps returning [`Timeout::CloseTimedOut`].
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        if let Some(at) = self.give_up_at {
            return (now >= at).then_some(Timeout::CloseTimedOut);
        }
        // Checked before the ping: with both due, the answer is overdue whatever the
        // ping timer says.
        if self.answer_by.is_some_and(|by| now >= by) {
            self.on_closing(now);
            return Some(Timeout::Zombie);
        }
        // Before the ping: with both due, this call says one and the next call the other.
        if self.coalesce.fire(now) {
            return Some(Timeout::Flush);
        }
        if self.backlog.fire(now) {
            return Some(Timeout::CheckBacklog);
        }
        if self.next_ping.is_none_or(|at| now < at) {
            return None;
        }
        // The next one an interval after this one was handled, not after it was due: a
        // driver woken late sends one ping, not a burst.
        self.next_ping = Some(now + self.config.ping_interval);
        if self.answer_by.is_some() {
            return None; // the last ping is still unanswered: its deadline stands
        }
        self.pings_sent += 1;
        self.answer_by = Some(now + self.config.ping_timeout);
        Some(Timeout::Ping(self.pings_sent))
    }

    /// Bytes arrived from the peer (a Pong or anything else): it is alive.
    pub fn on_bytes_received(&mut self) {
        self.answer_by = None;
    }

    /// Whether the socket refuses bytes now (what was queued did not all leave): while
    /// it does, a backlog check is due every interval from when it started (the clock,
    /// `now`, is read only then); none while closing.
    pub fn set_blocked(&mut self, refused: bool, now: impl FnOnce() -> Instant) {
        self.backlog.set_blocked(refused && !self.is_closing(), now);
    }

    /// Channel messages were just queued, and `held` are queued and not written: whether
    /// to write them now, or hold them until a [`Timeout::Flush`] (`--coalesce`; the clock,
    /// `now`, is read only when it is on).
    pub fn on_queued(&mut self, held: usize, now: impl FnOnce() -> Instant) -> bool {
        self.is_closing() || self.coalesce.on_queued(held, now)
    }

    /// Whether channel messages are held (nothing is written meanwhile).
    pub fn is_holding(&self) -> bool {
        self.coalesce.is_holding()
    }

    /// The closing handshake started at `now` (a Close sent or received), or the
    /// connection failed and its Close is being written. No more pings; the end must
    /// come within `close_timeout`. Later calls keep the first deadline.
    pub fn on_closing(&mut self, now: Instant) {
        self.next_ping = None;
        self.answer_by = None;
        self.backlog.clear();
        self.coalesce.clear();
        self.give_up_at.get_or_insert(now + self.config.close_timeout);
    }

    /// Whether the closing handshake has started (pings have stopped).
    pub fn is_closing(&self) -> bool {
        self.give_up_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(20);
    const TIMEOUT: Duration = Duration::from_secs(10);
    const CLOSE: Duration = Duration::from_secs(1);
    const TICK: Duration = Duration::from_nanos(1);
    const CHECK: Duration = Duration::from_secs(1);

    fn table(base: Instant) -> Liveness {
        Liveness::new(
            LivenessConfig {
                ping_interval: INTERVAL,
                ping_timeout: TIMEOUT,
                close_timeout: CLOSE,
                backlog_check: CHECK,
                coalesce: Duration::ZERO,
                coalesce_most: 64,
            },
            base,
        )
    }

    #[test]
    fn the_first_ping_is_due_one_interval_after_opening() {
        let base = Instant::now();
        let mut t = table(base);
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL));
        assert_eq!(t.handle_timeout(base), None);
        assert_eq!(t.handle_timeout(base + INTERVAL - TICK), None, "just before");
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL), "an early call changes nothing");
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)), "exactly at the deadline");
        // Now two deadlines: the answer's, and the next ping's.
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL + TIMEOUT));
        assert_eq!(t.handle_timeout(base + INTERVAL), None, "nothing more is due");
    }

    #[test]
    fn any_bytes_answer_a_ping_and_pings_go_on() {
        let base = Instant::now();
        let mut t = table(base);
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)));
        // The answer comes at the last moment before the deadline.
        t.on_bytes_received();
        assert_eq!(t.poll_timeout(), Some(base + 2 * INTERVAL), "only the next ping is left");
        assert_eq!(t.handle_timeout(base + INTERVAL + TIMEOUT), None, "no zombie: it answered");
        assert_eq!(t.handle_timeout(base + 2 * INTERVAL - TICK), None);
        assert_eq!(t.handle_timeout(base + 2 * INTERVAL), Some(Timeout::Ping(2)), "the count goes on");
        t.on_bytes_received();
        assert_eq!(t.handle_timeout(base + 3 * INTERVAL), Some(Timeout::Ping(3)));
        assert!(!t.is_closing());
    }

    #[test]
    fn a_silent_peer_is_a_zombie_exactly_at_the_deadline_then_the_close_deadline_runs() {
        let base = Instant::now();
        let mut t = table(base);
        let pinged = base + INTERVAL;
        assert_eq!(t.handle_timeout(pinged), Some(Timeout::Ping(1)));
        assert_eq!(t.handle_timeout(pinged + TIMEOUT - TICK), None, "just before: still alive");
        assert_eq!(t.handle_timeout(pinged + TIMEOUT), Some(Timeout::Zombie), "exactly at the deadline");
        assert!(t.is_closing());
        let dropped = pinged + TIMEOUT + CLOSE;
        assert_eq!(t.poll_timeout(), Some(dropped), "only the close deadline is left: no more pings");
        // The driver reports the Close it sent; the deadline stays the first one.
        t.on_closing(pinged + TIMEOUT + TICK);
        assert_eq!(t.poll_timeout(), Some(dropped));
        // Bytes now (the peer's Close, say) change nothing about the deadline.
        t.on_bytes_received();
        assert_eq!(t.handle_timeout(dropped - TICK), None);
        assert_eq!(t.handle_timeout(dropped), Some(Timeout::CloseTimedOut));
        assert_eq!(t.handle_timeout(dropped + TICK), Some(Timeout::CloseTimedOut), "and stays so");
    }

    #[test]
    fn a_zombie_is_found_late_too() {
        // A driver woken after both the answer deadline and the next ping: the peer is
        // a zombie, and no ping is sent to it.
        let base = Instant::now();
        let mut t = table(base);
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)));
        assert_eq!(t.handle_timeout(base + 5 * INTERVAL), Some(Timeout::Zombie));
        assert_eq!(t.poll_timeout(), Some(base + 5 * INTERVAL + CLOSE));
    }

    #[test]
    fn no_second_ping_while_one_is_unanswered() {
        // A timeout longer than the interval: the ping due meanwhile is skipped, the
        // first deadline stands.
        let base = Instant::now();
        let long = Duration::from_secs(50);
        let config = LivenessConfig {
            ping_interval: INTERVAL,
            ping_timeout: long,
            close_timeout: CLOSE,
            backlog_check: CHECK,
            coalesce: Duration::ZERO,
            coalesce_most: 64,
        };
        let mut t = Liveness::new(config, base);
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)));
        assert_eq!(t.handle_timeout(base + 2 * INTERVAL), None, "skipped: the first is unanswered");
        assert_eq!(t.poll_timeout(), Some(base + 3 * INTERVAL));
        assert_eq!(t.handle_timeout(base + 3 * INTERVAL), None, "skipped again");
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL + long), "the answer deadline comes first");
        assert_eq!(t.handle_timeout(base + INTERVAL + long - TICK), None);
        assert_eq!(t.handle_timeout(base + INTERVAL + long), Some(Timeout::Zombie));
        // Answered in time instead, the next ping counts on from 1.
        let mut t = Liveness::new(config, base);
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)));
        assert_eq!(t.handle_timeout(base + 2 * INTERVAL), None);
        t.on_bytes_received();
        assert_eq!(t.handle_timeout(base + 3 * INTERVAL), Some(Timeout::Ping(2)));
    }

    #[test]
    fn a_late_wake_up_sends_one_ping_and_counts_the_interval_from_then() {
        let base = Instant::now();
        let mut t = table(base);
        let late = base + 3 * INTERVAL + Duration::from_millis(7);
        assert_eq!(t.handle_timeout(late), Some(Timeout::Ping(1)));
        assert_eq!(t.handle_timeout(late), None, "one ping, not three");
        t.on_bytes_received();
        assert_eq!(t.poll_timeout(), Some(late + INTERVAL));
    }

    #[test]
    fn closing_stops_pings_and_starts_the_close_deadline() {
        let base = Instant::now();
        // A close timeout longer than the ping timeout, to see the zombie deadline pass.
        let close = TIMEOUT + INTERVAL;
        let config = LivenessConfig {
            ping_interval: INTERVAL,
            ping_timeout: TIMEOUT,
            close_timeout: close,
            backlog_check: CHECK,
            coalesce: Duration::ZERO,
            coalesce_most: 64,
        };
        let mut t = Liveness::new(config, base);
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)));
        // A shutdown's Close (or the peer's) while a ping is out: the zombie deadline no
        // longer applies, nor do pings, only the close deadline.
        let closed = base + INTERVAL + TICK;
        t.on_closing(closed);
        assert_eq!(t.poll_timeout(), Some(closed + close));
        assert_eq!(t.handle_timeout(base + INTERVAL + TIMEOUT), None, "no zombie while closing");
        assert_eq!(t.handle_timeout(base + 2 * INTERVAL), None, "no ping while closing");
        assert_eq!(t.handle_timeout(closed + close - TICK), None);
        assert_eq!(t.handle_timeout(closed + close), Some(Timeout::CloseTimedOut));
    }

    #[test]
    fn with_pings_off_only_the_close_deadline_exists() {
        let base = Instant::now();
        let config = LivenessConfig {
            ping_interval: Duration::ZERO,
            ping_timeout: TIMEOUT,
            close_timeout: CLOSE,
            backlog_check: Duration::ZERO,
            coalesce: Duration::ZERO,
            coalesce_most: 64,
        };
        let mut t = Liveness::new(config, base);
        assert_eq!(t.poll_timeout(), None, "nothing to wait for");
        assert_eq!(t.handle_timeout(base + 1000 * INTERVAL), None);
        t.on_closing(base + INTERVAL);
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL + CLOSE));
        assert_eq!(t.handle_timeout(base + INTERVAL + CLOSE), Some(Timeout::CloseTimedOut));
    }

    #[test]
    fn a_blocked_socket_gets_a_backlog_check_every_interval_until_it_drains() {
        let base = Instant::now();
        let mut t = table(base);
        let blocked = base + Duration::from_millis(300);
        t.set_blocked(true, || blocked);
        assert_eq!(t.poll_timeout(), Some(blocked + CHECK));
        t.set_blocked(true, || blocked + CHECK / 2);
        assert_eq!(t.poll_timeout(), Some(blocked + CHECK), "still blocked: the first deadline stands");
        assert_eq!(t.handle_timeout(blocked + CHECK - TICK), None);
        assert_eq!(t.handle_timeout(blocked + CHECK), Some(Timeout::CheckBacklog));
        assert_eq!(t.poll_timeout(), Some(blocked + 2 * CHECK), "and again an interval later");
        t.set_blocked(false, || base);
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL), "drained: only the ping is left");
        assert_eq!(t.handle_timeout(blocked + 2 * CHECK), None);
    }

    #[test]
    fn a_backlog_check_and_a_ping_due_together_are_said_one_after_the_other() {
        let base = Instant::now();
        let mut t = table(base);
        t.set_blocked(true, || base + INTERVAL - CHECK);
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::CheckBacklog));
        assert_eq!(t.handle_timeout(base + INTERVAL), Some(Timeout::Ping(1)));
        assert_eq!(t.handle_timeout(base + INTERVAL), None);
    }

    #[test]
    fn no_backlog_check_while_closing_or_when_turned_off() {
        let base = Instant::now();
        let mut t = table(base);
        t.set_blocked(true, || base);
        t.on_closing(base + TICK);
        assert_eq!(t.poll_timeout(), Some(base + TICK + CLOSE), "closing: only the close deadline");
        t.set_blocked(true, || base + 2 * TICK);
        assert_eq!(t.poll_timeout(), Some(base + TICK + CLOSE));
        let config = LivenessConfig { backlog_check: Duration::ZERO, ..t.config };
        let mut off = Liveness::new(config, base);
        off.set_blocked(true, || base);
        assert_eq!(off.poll_timeout(), Some(base + INTERVAL), "off: only the ping");
    }

    #[test]
    fn coalesced_messages_are_flushed_at_their_deadline_and_released_when_closing() {
        let base = Instant::now();
        let every = Duration::from_millis(20);
        let config = LivenessConfig { coalesce: every, ..table(base).config };
        let mut t = Liveness::new(config, base);
        assert!(t.on_queued(1, || base), "the first write: at once");
        assert!(!t.on_queued(1, || base + every / 4), "a second within the interval: held");
        assert!(t.is_holding());
        assert_eq!(t.poll_timeout(), Some(base + every), "the flush is the next deadline");
        assert_eq!(t.handle_timeout(base + every - TICK), None);
        assert_eq!(t.handle_timeout(base + every), Some(Timeout::Flush));
        assert!(!t.is_holding());
        assert_eq!(t.poll_timeout(), Some(base + INTERVAL), "then only the ping");
        // Held when the closing handshake starts: nothing is held from then on.
        assert!(!t.on_queued(1, || base + every + TICK));
        t.on_closing(base + every + 2 * TICK);
        assert!(!t.is_holding());
        assert!(t.on_queued(1, || unreachable!("closing: no clock")), "closing: everything at once");
        assert_eq!(t.poll_timeout(), Some(base + every + 2 * TICK + CLOSE));
    }
}
