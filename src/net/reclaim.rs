//! Room for one more at `--max-connections`, with `--reclaim-waiting`: the connections
//! that have waited longest for a request head are let go of, so that a flood of
//! connections that never finish a request cannot lock out the clients that do.
//!
//! It is off by default because it closes connections that are already open (API.md:
//! past the limit, `503`, and "already open connections are unaffected"), if only
//! those that are not in a request.
//!
//! Without this, a flood larger than `--max-connections` within one `--header-timeout`
//! (or a crowd of idle keep-alive connections) takes every slot, and every new client,
//! normal or not, is answered `503` until the held ones time out. nginx does the same
//! when it runs out of connections: it closes the keep-alive connections that are
//! waiting for a request, oldest first (`ngx_drain_connections`).
//!
//! Only a connection waiting for a request head can be let go of: a fresh connection
//! that has not sent its whole head yet, or a keep-alive connection between requests.
//! One that is being answered, holds a long poll, streams events or runs a WebSocket is
//! never touched. A connection let go of with part of a head read is answered `408`
//! (its head did not arrive in the time the server could give it), one with nothing
//! begun is closed as an idle keep-alive connection is.
//!
//! Cost: each HTTP connection has one entry (an `Arc` with a timestamp and a `Notify`)
//! while it may wait for a head, made once per connection, not per request; a request
//! head's wait stores two timestamps. The registry is only searched at the limit, for
//! [`RECLAIM_BATCH`](crate::config::RECLAIM_BATCH) connections at a time. A connection leaves it when it becomes an
//! event stream or a WebSocket, so those hold nothing more for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// The value of [`Waiter::since`] for a connection that is not waiting for a head.
const NOT_WAITING: u64 = 0;
/// The value of [`Waiter::since`] for a connection that has been told to go.
const RECLAIMED: u64 = u64::MAX;

/// One connection's entry.
#[derive(Default)]
struct Waiter {
    /// Since when it has waited for a request head: microseconds since the registry
    /// began, plus one (so that 0 is [`NOT_WAITING`]); or [`RECLAIMED`].
    since: AtomicU64,
    /// Told when it is let go of.
    notify: Notify,
}

/// The connections that may wait for a request head, so that the oldest waiting ones
/// can be found when a new one needs room.
pub struct Registry {
    /// Slots, reused: a connection's entry stays in its slot while it lives.
    slots: Mutex<Slots>,
    epoch: Instant,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Arc<Waiter>>>,
    free: Vec<usize>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry { slots: Mutex::default(), epoch: Instant::now() }
    }
}

impl Registry {
    /// Enters a new connection; it leaves when the returned [`Entry`] is dropped.
    pub fn enter(self: &Arc<Self>) -> Entry {
        let waiter = Arc::new(Waiter::default());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.entries[slot] = Some(waiter.clone());
                slot
            }
            None => {
                slots.entries.push(Some(waiter.clone()));
                slots.entries.len() - 1
            }
        };
        Entry { waiter, slot, registry: self.clone() }
    }

    /// Tells up to `n` connections to go: those that have waited longest for a request
    /// head. Returns how many were told.
    pub fn reclaim(&self, n: usize) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut waiting: Vec<(u64, &Arc<Waiter>)> = slots
            .entries
            .iter()
            .flatten()
            .filter_map(|w| {
                let since = w.since.load(Ordering::Acquire);
                (since != NOT_WAITING && since != RECLAIMED).then_some((since, w))
            })
            .collect();
        if waiting.len() > n {
            waiting.select_nth_unstable_by_key(n, |&(since, _)| since);
            waiting.truncate(n);
        }
        let mut told = 0;
        for (since, w) in waiting {
            // Only if it is still waiting since then: one that has just read its head
            // (or begun another wait) is left alone.
            if w.since.compare_exchange(since, RECLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                w.notify.notify_one();
                told += 1;
            }
        }
        told
    }

    /// How many connections are in the registry.
    #[cfg(test)]
    fn len(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries.len() - slots.free.len()
    }

    /// Whether no connection is in the registry.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, slot: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries[slot] = None;
        slots.free.push(slot);
    }
}

/// A connection's place in the [`Registry`].
pub struct Entry {
    waiter: Arc<Waiter>,
    slot: usize,
    registry: Arc<Registry>,
}

impl Entry {
    /// The connection starts waiting for a request head (now).
    pub fn waiting(&self) {
        self.waiting_since(u64::try_from(self.registry.epoch.elapsed().as_micros()).unwrap_or(u64::MAX));
    }

    /// The connection has waited since `micros` after the registry began.
    fn waiting_since(&self, micros: u64) {
        let since = micros.saturating_add(1).min(RECLAIMED - 1);
        // A connection already told to go stays told: it goes at its next wait.
        let _ = self
            .waiter
            .since
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| (now != RECLAIMED).then_some(since));
    }

    /// The connection has its head (or stopped waiting for one): it cannot be let go
    /// of until it waits again.
    pub fn not_waiting(&self) {
        let _ = self
            .waiter
            .since
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |since| (since != RECLAIMED).then_some(NOT_WAITING));
    }

    /// Completes once the connection has been told to go (at once if it already was).
    pub async fn reclaimed(&self) {
        if self.waiter.since.load(Ordering::Acquire) == RECLAIMED {
            return;
        }
        self.waiter.notify.notified().await;
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.leave(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_waiting_are_told_first_and_only_those_waiting() {
        let registry = Arc::new(Registry::default());
        let entries: Vec<Entry> = (0..5).map(|_| registry.enter()).collect();
        // 0, 2, 3 and 4 wait, in the order 3, 0, 4, 2; 1 is being answered.
        for (k, micros) in [(3, 10), (0, 20), (4, 30), (2, 40)] {
            entries[k].waiting_since(micros);
        }
        assert_eq!(registry.reclaim(2), 2);
        let told = |k: usize| entries[k].waiter.since.load(Ordering::Acquire) == RECLAIMED;
        assert_eq!((0..5).map(told).collect::<Vec<_>>(), [true, false, false, true, false]);
        // The rest of those waiting, not the one being answered.
        assert_eq!(registry.reclaim(10), 2);
        assert_eq!((0..5).map(told).collect::<Vec<_>>(), [true, false, true, true, true]);
        assert_eq!(registry.reclaim(10), 0);
        // Told stays told, even if it starts another wait or reads a head meanwhile.
        entries[0].not_waiting();
        entries[0].waiting();
        assert!(told(0));
    }

    #[tokio::test]
    async fn a_connection_told_to_go_hears_it_whether_or_not_it_was_listening() {
        let registry = Arc::new(Registry::default());
        let (a, b) = (registry.enter(), registry.enter());
        a.waiting();
        b.waiting();
        assert_eq!(registry.reclaim(2), 2);
        // Both complete: one would have been listening, the other looks afterwards.
        a.reclaimed().await;
        b.reclaimed().await;
    }

    #[test]
    fn an_entry_leaves_when_dropped_and_its_slot_is_reused() {
        let registry = Arc::new(Registry::default());
        let a = registry.enter();
        let b = registry.enter();
        assert_eq!(registry.len(), 2);
        drop(a);
        assert_eq!(registry.len(), 1);
        let c = registry.enter();
        assert_eq!(c.slot, 0);
        assert_eq!(registry.len(), 2);
        drop((b, c));
        assert!(registry.is_empty());
    }
}
