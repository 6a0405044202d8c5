//! The backlog of a push stream as data (not an RFC's rule, the server's own): the
//! judgement of a client too far behind ([`Stall`]), and its check ([`BacklogCheck`]):
//! while the socket refuses bytes, a deadline every `every`, so that the driver judges
//! the client's backlog even though nothing else wakes it.
//!
//! A driver whose socket refuses bytes (its client reads slower than its channel sends,
//! or not at all) stops taking messages from the channel: they wait in the channel's
//! shared ring, and a client that stopped reading costs no work per message. Nothing
//! then wakes the driver if its client never reads again, so this deadline does: every
//! `every` while the socket refuses bytes, the driver counts what the channel sent
//! meanwhile and cuts the client once it is more than `--max-queue` behind. Both timer
//! tables of a push stream ([`super::ws::liveness`], [`super::sse_timers`]) carry one.
//!
//! ```text
//! socket refuses bytes at t ──► due at t + every, t + 2·every, ... ── socket takes them ──► none
//! ```

use std::time::{Duration, Instant};

/// One stream's backlog check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BacklogCheck {
    /// How often to check while blocked; zero: never.
    every: Duration,
    /// Set while the socket refuses bytes: when the next check is due.
    due: Option<Instant>,
}

impl BacklogCheck {
    /// Checks every `every` while blocked (never, if zero).
    pub fn new(every: Duration) -> BacklogCheck {
        BacklogCheck { every, due: None }
    }

    /// Whether the socket refuses bytes now (what was queued did not all leave). When it
    /// starts to, the first check is due `every` after `now()` (the clock is read only
    /// then); while it goes on, the deadline stands; when it stops, no more checks.
    pub fn set_blocked(&mut self, refused: bool, now: impl FnOnce() -> Instant) {
        match (refused, self.due) {
            (true, None) if !self.every.is_zero() => self.due = Some(now() + self.every),
            (false, Some(_)) => self.due = None,
            _ => {}
        }
    }

    /// No more checks (the stream is ending).
    pub fn clear(&mut self) {
        self.due = None;
    }

    /// When the next check is due, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.due
    }

    /// Whether a check is due at `now`; if so, the next one is `every` from now.
    pub fn fire(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|at| now >= at) {
            self.due = Some(now + self.every);
            return true;
        }
        false
    }
}

/// Whether a push stream's client is too far behind to keep (`--max-queue`): the one
/// rule both drivers ([`crate::net::ws`], [`crate::net::sse`]) judge it by. Many
/// messages queued at once (a late wake-up, a catch-up from history) are not a slow
/// client: the socket is offered all of them first, and only a socket that refuses bytes
/// makes its client a suspect. From then until the channel is read again, what the
/// client has left unread is what is queued and not written, plus what the channel sent
/// meanwhile (it waits in the channel's ring, not taken); past `max_queue`, the client is
/// cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    /// The socket refused bytes since the channel was last read.
    stalled: bool,
}

impl Stall {
    /// The socket was just offered everything queued; `refused`: it did not take it all.
    pub fn on_offered(&mut self, refused: bool) {
        self.stalled |= refused;
    }

    /// The channel was read: what it had sent is queued now.
    pub fn on_channel_read(&mut self) {
        self.stalled = false;
    }

    /// Whether to cut the client: `unsent` messages are queued and not written, and
    /// `pending()` is what the channel sent since it was last read (asked only while the
    /// socket refuses bytes: a client that takes what it is offered is never judged).
    /// A `max_queue` of 0 counts as 1, as the channel's ring has it (`serve` refuses 0).
    pub fn too_far_behind(&self, unsent: usize, pending: impl FnOnce() -> usize, max_queue: usize) -> bool {
        self.stalled && unsent.saturating_add(pending()) > max_queue.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_the_socket_takes_is_never_judged() {
        let mut s = Stall::default();
        s.on_offered(false);
        let mut asked = false;
        assert!(!s.too_far_behind(
            5_000,
            || {
                asked = true;
                5_000
            },
            10
        ));
        assert!(!asked, "the channel's backlog is not even counted");
    }

    #[test]
    fn a_refusing_socket_counts_what_is_queued_and_what_the_channel_sent_meanwhile() {
        let mut s = Stall::default();
        s.on_offered(true);
        assert!(!s.too_far_behind(4, || 6, 10), "10 behind: at the limit, kept");
        assert!(s.too_far_behind(4, || 7, 10), "11 behind: past it, cut");
        // The socket takes bytes again, but the channel has not been read: still judged.
        s.on_offered(false);
        assert!(s.too_far_behind(0, || 11, 10));
        // Reading the channel queues what it sent: no longer a suspect.
        s.on_channel_read();
        assert!(!s.too_far_behind(11, || 0, 10));
    }

    #[test]
    fn a_max_queue_of_zero_is_judged_as_one() {
        let mut s = Stall::default();
        s.on_offered(true);
        assert!(!s.too_far_behind(1, || 0, 0), "one message behind: kept");
        assert!(s.too_far_behind(1, || 1, 0), "two behind: cut");
    }

    const EVERY: Duration = Duration::from_secs(1);
    const TICK: Duration = Duration::from_nanos(1);

    #[test]
    fn due_every_interval_from_the_first_refusal_until_unblocked() {
        let base = Instant::now();
        let mut c = BacklogCheck::new(EVERY);
        assert_eq!(c.deadline(), None, "nothing refused: nothing due");
        c.set_blocked(true, || base);
        c.set_blocked(true, || base + EVERY / 2);
        assert_eq!(c.deadline(), Some(base + EVERY), "the first refusal sets it");
        assert!(!c.fire(base + EVERY - TICK));
        assert!(c.fire(base + EVERY));
        assert!(!c.fire(base + EVERY), "once");
        assert_eq!(c.deadline(), Some(base + 2 * EVERY));
        c.set_blocked(false, || base);
        assert_eq!(c.deadline(), None);
        assert!(!c.fire(base + 10 * EVERY));
    }

    #[test]
    fn zero_is_never() {
        let mut c = BacklogCheck::new(Duration::ZERO);
        c.set_blocked(true, Instant::now);
        assert_eq!(c.deadline(), None);
    }
}
