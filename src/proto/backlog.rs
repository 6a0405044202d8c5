//! The backlog check of a push stream as data: while the socket refuses bytes, a
//! deadline every `every`, so that the driver judges the client's backlog even though
//! nothing else wakes it (not an RFC's rule, the server's own).
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

#[cfg(test)]
mod tests {
    use super::*;

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
