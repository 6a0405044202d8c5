//! Write coalescing of a push stream as data: at most one write of channel messages per
//! `every`, so that messages that come close together leave in one write (not an RFC's
//! rule, the server's own: `--coalesce`, off by default).
//!
//! At 100 messages a second each message of a channel comes alone, and a server that
//! writes it at once makes one `write` per message per subscriber; on loopback that call
//! is most of what a delivery costs (docs/performance.md). A subscriber that was written
//! to less than `every` ago holds what the channel hands it until `every` after that
//! write, so what came in that time leaves together: a delay of at most `every` traded
//! for fewer system calls, as Centrifugo PRO's `client.write_delay` trades it. A message
//! after a quiet spell (nothing written for `every`) leaves at once, with no delay.
//!
//! A hold also ends once it holds `most` messages (as soon as the driver learns of them:
//! at the channel's pressure signal, every `hub::PRESSURE_EVERY` messages). A burst
//! leaves in few writes without being held, and a channel that sends faster than the
//! subscriber's share of its ring can keep for one interval would otherwise overtake a
//! subscriber that is reading (and get it cut as too far behind, though its client reads
//! at once).
//!
//! ```text
//! queued, last write ≥ every ago ──► write now (the write is at now)
//! queued, last write at t < every ago ──► hold ── t + every ──► Flush: write (at then)
//! holding `most` messages ──► write now
//! ```
//!
//! Both timer tables of a push stream ([`super::ws::liveness`], [`super::sse_timers`])
//! carry one; the driver writes nothing while it holds and stops holding when the stream
//! starts to close. Nor does it take each message from its channel as it comes: it sleeps
//! until the flush, or until the channel signals that many have come (every
//! `hub::PRESSURE_EVERY` messages), and then takes what the channel's ring holds
//! (`Feed::next`). So a coalescing subscriber is woken about once per interval, not once
//! per message, and what it holds waits in the channel's shared ring, not in its queue.
//! A keep-alive HTTP connection carries one for its long polls (`net::http`): there a
//! "write" is an answer with messages, and what a hold gathers is the next answer, so a
//! client polling a busy channel makes one request per interval, not one per message.

use std::time::{Duration, Instant};

/// One stream's write coalescing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coalesce {
    /// The least time between two writes of channel messages; zero: no coalescing.
    every: Duration,
    /// A hold ends once it holds this many messages.
    most: usize,
    /// When channel messages were last written (or began to be).
    last: Option<Instant>,
    /// Set while holding: when the held messages are to be written.
    due: Option<Instant>,
}

impl Coalesce {
    /// At most one write of channel messages per `every` (zero: each at once), unless
    /// `most` messages are waiting.
    pub fn new(every: Duration, most: usize) -> Coalesce {
        Coalesce { every, most, last: None, due: None }
    }

    /// Channel messages were just queued, and `held` are now queued and not written.
    /// Returns whether to write them now; if not, they are held until
    /// [`deadline`](Self::deadline). The clock, `now`, is read only when coalescing is on
    /// and a write or a new hold starts.
    pub fn on_queued(&mut self, held: usize, now: impl FnOnce() -> Instant) -> bool {
        if self.every.is_zero() {
            return true;
        }
        if held >= self.most {
            // Enough to fill a write: it goes now, and the next interval runs from it.
            self.due = None;
            self.last = Some(now());
            return true;
        }
        if self.due.is_some() {
            return false; // already held: they go with the rest
        }
        let now = now();
        match self.last {
            Some(last) if now < last + self.every => {
                self.due = Some(last + self.every);
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// Whether messages are being held (the driver writes nothing meanwhile).
    pub fn is_holding(&self) -> bool {
        self.due.is_some()
    }

    /// When the held messages are due, if any are held.
    pub fn deadline(&self) -> Option<Instant> {
        self.due
    }

    /// Whether the held messages are due at `now`; if so, they are written now and the
    /// next write of channel messages may come `every` later.
    pub fn fire(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|at| now >= at) {
            self.due = None;
            self.last = Some(now);
            return true;
        }
        false
    }

    /// Holds nothing any more (the stream is ending: what is queued goes now).
    pub fn clear(&mut self) {
        self.due = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(20);
    const TICK: Duration = Duration::from_nanos(1);
    const MOST: usize = 64;

    #[test]
    fn off_writes_everything_at_once_and_never_reads_the_clock() {
        let mut c = Coalesce::new(Duration::ZERO, MOST);
        for held in [1, 2, 100] {
            assert!(c.on_queued(held, || unreachable!("no clock when off")));
        }
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn the_first_message_and_one_after_a_quiet_spell_leave_at_once() {
        let base = Instant::now();
        let mut c = Coalesce::new(EVERY, MOST);
        assert!(c.on_queued(1, || base), "nothing written yet: at once");
        assert!(!c.is_holding());
        assert!(c.on_queued(1, || base + EVERY), "a whole interval after the last write: at once");
        assert!(c.on_queued(1, || base + 3 * EVERY), "and after a longer spell");
    }

    #[test]
    fn messages_within_the_interval_are_held_until_it_ends_then_the_next_interval_runs_from_that_write() {
        let base = Instant::now();
        let mut c = Coalesce::new(EVERY, MOST);
        assert!(c.on_queued(1, || base));
        assert!(!c.on_queued(1, || base + EVERY / 2), "half an interval after a write: held");
        assert_eq!(c.deadline(), Some(base + EVERY), "until an interval after that write");
        assert!(!c.on_queued(1, || unreachable!("already held: no clock")), "more goes with it");
        assert!(!c.fire(base + EVERY - TICK), "not before");
        assert!(c.is_holding());
        assert!(c.fire(base + EVERY + TICK), "then: write");
        assert!(!c.is_holding());
        assert!(!c.fire(base + 2 * EVERY), "once");
        // The held write was at base + EVERY + TICK: the next interval runs from it.
        assert!(!c.on_queued(1, || base + 2 * EVERY));
        assert_eq!(c.deadline(), Some(base + 2 * EVERY + TICK));
    }

    #[test]
    fn a_hold_ends_as_soon_as_it_holds_most_messages() {
        let base = Instant::now();
        let mut c = Coalesce::new(EVERY, MOST);
        assert!(c.on_queued(1, || base));
        assert!(!c.on_queued(10, || base + TICK), "held");
        assert!(!c.on_queued(MOST - 1, || unreachable!("held: no clock")));
        assert!(c.on_queued(MOST, || base + 2 * TICK), "full: now");
        assert!(!c.is_holding());
        assert!(!c.on_queued(1, || base + 3 * TICK), "the next interval runs from that write");
        assert_eq!(c.deadline(), Some(base + 2 * TICK + EVERY));
        assert!(c.on_queued(MOST, || base + 4 * TICK), "a burst is never held");
    }

    #[test]
    fn clearing_lets_what_is_held_go_now() {
        let base = Instant::now();
        let mut c = Coalesce::new(EVERY, MOST);
        assert!(c.on_queued(1, || base));
        assert!(!c.on_queued(1, || base + TICK));
        c.clear();
        assert!(!c.is_holding());
        assert_eq!(c.deadline(), None);
    }
}
