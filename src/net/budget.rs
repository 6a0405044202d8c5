//! One bound on the message bytes all connections hold at once while they arrive: request
//! bodies, and WebSocket messages that span reads.
//!
//! A request body is read to its end before it is acted on (a published message is one
//! piece), so each body in progress holds what has arrived, up to `--max-message`; so does
//! a WebSocket message arriving over several reads (a large frame, or fragments being
//! reassembled). Both count here as "bodies".
//! Per connection that is bounded; across connections it is `--max-connections` ×
//! `--max-message` (16 GiB at the defaults), a bound on paper only: a thousand clients
//! that each send a body that never ends (docs/abuse.md, `endless-chunked`) would hold a
//! gigabyte of half-read bodies. This budget makes it one number, `--max-body-memory`.
//!
//! When the bodies in progress together hold more than the budget, a body may still grow
//! as long as it holds no more than its fair share (the budget divided by the bodies in
//! progress); one past its share is refused with `503` and its connection closed, which
//! frees what it held. So the large, slow bodies that fill the budget are the ones
//! refused, and the small messages of well-behaved clients still pass while it is full.
//! The bytes held stay under about twice the budget: up to the budget before it is
//! full, and at most a fair share per body after.
//!
//! Plain counters, no I/O: the HTTP driver reserves what it is about to keep and the
//! [`Hold`] gives it back when the body is done with, whatever way that happens.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// The body bytes held by every connection, against one budget.
pub struct BodyBudget {
    limit: usize,
    held: AtomicUsize,
    bodies: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `limit` bytes; 0: no limit.
    pub fn new(limit: usize) -> BodyBudget {
        BodyBudget { limit, held: AtomicUsize::new(0), bodies: AtomicUsize::new(0) }
    }

    /// A body starts: it holds nothing yet.
    pub fn start(&self) -> Hold<'_> {
        self.bodies.fetch_add(1, Relaxed);
        Hold { budget: self, held: 0 }
    }

    /// Bytes held by all bodies in progress now.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }
}

/// One body's share of the budget, given back when dropped.
pub struct Hold<'a> {
    budget: &'a BodyBudget,
    held: usize,
}

impl Hold<'_> {
    /// Counts `n` more bytes for this body. `false` (nothing counted): the budget is
    /// spent and this body would hold more than its fair share; refuse it.
    pub fn grow(&mut self, n: usize) -> bool {
        let b = self.budget;
        let total = b.held.fetch_add(n, Relaxed) + n;
        if b.limit != 0 && total > b.limit {
            let share = b.limit / b.bodies.load(Relaxed).max(1);
            if self.held + n > share {
                b.held.fetch_sub(n, Relaxed);
                return false;
            }
        }
        self.held += n;
        true
    }

    /// Counts exactly `n` bytes for this body from now on: more (as [`grow`](Self::grow),
    /// refused the same way, keeping what was counted) or fewer (always). For what holds
    /// a varying amount, such as a WebSocket message arriving over several reads.
    pub fn set(&mut self, n: usize) -> bool {
        if n >= self.held {
            return self.grow(n - self.held);
        }
        self.budget.held.fetch_sub(self.held - n, Relaxed);
        self.held = n;
        true
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.held, Relaxed);
        self.budget.bodies.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_budget_any_body_grows() {
        let b = BodyBudget::new(1000);
        let mut a = b.start();
        assert!(a.grow(600));
        let mut c = b.start();
        assert!(c.grow(400), "exactly the budget");
        assert_eq!(b.held(), 1000);
    }

    #[test]
    fn past_the_budget_only_bodies_within_their_fair_share_grow() {
        let b = BodyBudget::new(1000);
        let mut hog = b.start();
        assert!(hog.grow(900));
        let mut small = b.start();
        // Full after this: 900 + 100. Then two bodies, a share of 500 each.
        assert!(small.grow(100));
        assert!(!hog.grow(10), "the hog is past its share: refused");
        assert_eq!(b.held(), 1000, "a refused growth counts nothing");
        assert!(small.grow(50), "the small one is within its share: it goes on");
        assert!(small.grow(350), "up to its share");
        assert!(!small.grow(1), "and not past it");
        assert_eq!(b.held(), 1400, "under twice the budget");
    }

    #[test]
    fn a_body_done_with_gives_its_bytes_back() {
        let b = BodyBudget::new(100);
        {
            let mut a = b.start();
            assert!(a.grow(100));
            let mut c = b.start();
            assert!(!c.grow(60), "full, and past the share of 50");
        }
        assert_eq!(b.held(), 0);
        let mut d = b.start();
        assert!(d.grow(100), "all of it again, once the others are gone");
    }

    #[test]
    fn set_counts_what_is_held_now_up_or_down() {
        let b = BodyBudget::new(1000);
        let mut a = b.start();
        assert!(a.set(700));
        assert!(a.set(200), "fewer: always");
        assert_eq!(b.held(), 200);
        let mut c = b.start();
        assert!(c.set(800), "the budget exactly");
        assert!(!c.set(900), "past the budget and its share of 500: refused");
        assert_eq!(b.held(), 1000, "and what it held stays counted");
        assert!(a.set(450), "within its share: grows");
        drop(c);
        assert_eq!(b.held(), 450);
    }

    #[test]
    fn zero_is_no_limit() {
        let b = BodyBudget::new(0);
        let mut a = b.start();
        assert!(a.grow(usize::MAX / 2));
    }
}
