//! A subscriber's feed: every message of a channel after its cursor, once each, in
//! order, however late its task is scheduled.
//!
//! The hub fans each message out through a bounded broadcast ring (`--max-queue` long).
//! A subscriber whose task is not woken in time (a busy machine, a burst published
//! faster than the runtime schedules readers) is overtaken by the ring, which tokio
//! reports as `Lagged`. That says nothing about the *client*: its socket may be empty
//! and waiting. So a lag is not a cut. The feed remembers the last id it handed out and
//! fetches what the ring dropped from the channel's history, exactly like a client
//! resuming with its cursor; messages the ring still holds that the history already gave
//! are skipped by id. Only when the history no longer covers the gap (more than
//! `--history` messages were missed) does the feed give up ([`FeedEnd::Gap`]); the
//! driver then closes the connection and the client, resuming with its own cursor, is
//! told `truncated`.
//!
//! Whether a client is too slow is decided by the drivers from what they could not
//! write to its socket (its own backlog), never from here.

use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::broker::Broker;
use super::hub::{Message, Snapshot, Subscription};

/// Most messages a driver takes from the ring per wake-up: a burst leaves in one
/// vectored write, and the driver's loop still gets back to its socket and timers.
pub const BATCH: usize = 64;

/// Why a feed has nothing more to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedEnd {
    /// The subscriber missed more than the history holds: it must resume by cursor.
    Gap,
    /// The channel is gone.
    Closed,
}

/// One subscription, with its cursor.
pub struct Feed {
    channel: String,
    rx: Subscription,
    /// The id of the last message handed out (or the snapshot's cursor).
    last: u64,
    /// Set while the history is being read after a lag: if that read is cancelled (the
    /// feed is polled in a `select!`), the next call reads it again.
    lagging: bool,
}

impl Feed {
    /// A feed that continues after `snapshot` (whose messages the caller sends itself).
    pub fn new(channel: &str, snapshot: &Snapshot, rx: Subscription) -> Feed {
        Feed { channel: channel.to_string(), rx, last: snapshot.next, lagging: false }
    }

    /// Waits for the next messages and appends them to `out`, oldest first: at least
    /// one, at most `max` from the ring (after a lag, everything the history gives).
    /// Cancel-safe: nothing is lost if the future is dropped before it completes.
    pub async fn recv(&mut self, broker: &Broker, max: usize, out: &mut Vec<Arc<Message>>) -> Result<(), FeedEnd> {
        loop {
            if self.lagging {
                let before = out.len();
                self.catch_up(broker, out).await?;
                if out.len() > before {
                    return Ok(());
                }
                // Nothing new after all (the ring lagged only over messages the history
                // had given already): wait for the next one.
                continue;
            }
            match self.rx.recv().await {
                Ok(m) => {
                    if self.take(m, out) {
                        self.drain(1, max, out);
                        return Ok(());
                    }
                }
                Err(RecvError::Lagged(_)) => self.lagging = true,
                Err(RecvError::Closed) => return Err(FeedEnd::Closed),
            }
        }
    }

    /// What a driver waits on: [`recv`](Self::recv), or, while it holds messages for
    /// `--coalesce`, the channel's pressure signal (`Subscription::pressure`) and then
    /// what the ring holds ([`take_ready`](Self::take_ready)). A holding subscriber is
    /// then woken once per many messages instead of once per message, and the messages
    /// wait in the channel's shared ring meanwhile, not in its own queue; it takes them
    /// when its hold ends, or when the signal says that many have come (a hold that is
    /// full ends at once, and the ring does not overtake it). Cancel-safe, as `recv`.
    pub async fn next(&mut self, broker: &Broker, holding: bool, out: &mut Vec<Arc<Message>>) -> Result<(), FeedEnd> {
        if !holding {
            return self.recv(broker, BATCH, out).await;
        }
        self.rx.pressure().await;
        self.take_ready(out);
        Ok(())
    }

    /// Messages published to the channel since the feed last handed one out, not yet
    /// taken: how far behind the subscriber is if it takes nothing now. Counted from the
    /// ring's positions, so it goes on counting past what the ring still holds.
    pub fn pending(&self) -> usize {
        self.rx.pending()
    }

    /// Takes all the ring holds now, without waiting: what a coalescing driver that let
    /// its hold sleep collects when the hold ends. After a lag it takes nothing; the next
    /// [`recv`](Self::recv) reads the hole from the history.
    pub fn take_ready(&mut self, out: &mut Vec<Arc<Message>>) {
        if !self.lagging {
            self.drain(0, usize::MAX, out);
        }
    }

    /// Takes what the ring already holds, without waiting, up to `max` in all (`taken`
    /// of them already).
    fn drain(&mut self, mut taken: usize, max: usize, out: &mut Vec<Arc<Message>>) {
        // Asking the ring takes its lock, which every subscriber of the channel contends
        // for; the message just taken says whether anything was sent after it.
        while taken < max && out.last().is_none_or(|m| m.is_followed()) {
            match self.rx.try_recv() {
                Ok(m) => {
                    taken += usize::from(self.take(m, out));
                    if self.lagging {
                        break; // a hole: the next call reads it from the history
                    }
                }
                Err(TryRecvError::Empty) => break,
                // Overtaken while draining: what was taken stays taken; the next call
                // reads the rest from the history.
                Err(TryRecvError::Lagged(_)) => {
                    self.lagging = true;
                    break;
                }
                Err(TryRecvError::Closed) => break, // the next recv says so
            }
        }
    }

    /// Hands `m` out unless the history already did (after a lag, the ring may still
    /// hold messages that the history read included). A message past a hole in the ids
    /// is not handed out: the feed reads the hole (and it) from the history first, as
    /// after a lag. In one process the ring has no holes; with a shared broker one can
    /// open while this instance's link to Redis was down.
    fn take(&mut self, m: Arc<Message>, out: &mut Vec<Arc<Message>>) -> bool {
        if m.id <= self.last {
            return false;
        }
        if m.id > self.last + 1 {
            self.lagging = true;
            return false;
        }
        self.last = m.id;
        out.push(m);
        true
    }

    /// After a lag: everything after the cursor, from the channel's history.
    async fn catch_up(&mut self, broker: &Broker, out: &mut Vec<Arc<Message>>) -> Result<(), FeedEnd> {
        let snap = broker.since(&self.channel, Some(self.last)).await.map_err(|_| FeedEnd::Gap)?;
        if snap.truncated {
            return Err(FeedEnd::Gap);
        }
        self.lagging = false;
        for m in snap.messages {
            self.take(m, out);
        }
        // The ring still holds messages the history just gave: skip them now (`take`
        // refuses them), up to the first one it did not give, so that `pending` counts
        // only what is new.
        loop {
            match self.rx.try_recv() {
                Ok(m) => {
                    if self.take(m, out) || self.lagging {
                        break; // the next message, or a hole to read from the history
                    }
                }
                Err(TryRecvError::Lagged(_)) => {
                    self.lagging = true;
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ids(v: &[Arc<Message>]) -> Vec<u64> {
        v.iter().map(|m| m.id).collect()
    }

    async fn feed(broker: &Broker, channel: &str) -> Feed {
        let (snap, rx) = broker.subscribe(channel, None).await.unwrap();
        Feed::new(channel, &snap, rx)
    }

    /// While its driver holds (`--coalesce`), a feed is not ready on each message: only on
    /// the channel's pressure signal, every `PRESSURE_EVERY` messages; it then takes what
    /// the ring holds, in order. Not holding, each message makes it ready, as always.
    #[tokio::test]
    async fn a_holding_feed_waits_for_the_pressure_signal_then_takes_what_the_ring_holds() {
        use std::future::{Future, poll_fn};
        use std::task::Poll;
        let every = crate::app::hub::PRESSURE_EVERY;
        let broker = Broker::memory(1000, 1024, 10);
        let mut f = feed(&broker, "p").await;
        let mut got = Vec::new();
        {
            let next = f.next(&broker, true, &mut got);
            tokio::pin!(next);
            let mut poll_once = async || poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx).is_ready())).await;
            assert!(!poll_once().await);
            for i in 1..every {
                broker.publish("p", Bytes::from(format!("m{i}"))).await.unwrap();
                assert!(!poll_once().await, "not ready after {i} messages");
            }
            broker.publish("p", Bytes::from("last")).await.unwrap();
            assert!(poll_once().await, "ready at the signal");
        }
        assert_eq!(ids(&got), (1..=every).collect::<Vec<_>>(), "all of them, in order");
        broker.publish("p", Bytes::from("live")).await.unwrap();
        let mut more = Vec::new();
        f.next(&broker, false, &mut more).await.unwrap();
        assert_eq!(ids(&more), vec![every + 1], "not holding: each message, as it comes");
    }

    #[test]
    fn the_pressure_signal_comes_at_least_twice_per_ring() {
        use crate::app::hub::Hub;
        let hub = Hub::new(100, 8);
        let (_, sub) = hub.subscribe("r", None).unwrap();
        let signalled = |n: usize| {
            let mut wait = Box::pin(sub.pressure());
            wait.as_mut().enable();
            for i in 0..n {
                hub.publish("r", Bytes::from(format!("m{i}"))).unwrap();
            }
            let waker = std::task::Waker::noop();
            wait.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready()
        };
        assert!(!signalled(3), "a ring of 8: not after 3");
        assert!(signalled(1), "after the 4th: half the ring");
    }

    #[tokio::test]
    async fn a_subscriber_overtaken_by_the_ring_gets_everything_from_history() {
        // A ring of 4 and a burst of 50 published while the subscriber's task never runs
        // (as on a saturated machine): the ring lags, the feed does not.
        let broker = Broker::memory(100, 4, 10);
        let mut f = feed(&broker, "a").await;
        for i in 1..=50 {
            broker.publish("a", Bytes::from(format!("m{i}"))).await.unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 50 {
            f.recv(&broker, 8, &mut got).await.unwrap();
        }
        assert_eq!(ids(&got), (1..=50).collect::<Vec<_>>(), "once each, in order");
        assert_eq!(f.last, 50);
        broker.publish("a", Bytes::from("live")).await.unwrap();
        let mut more = Vec::new();
        f.recv(&broker, 8, &mut more).await.unwrap();
        assert_eq!(ids(&more), vec![51], "and then live again, with nothing repeated");
    }

    #[tokio::test]
    async fn pending_counts_what_was_published_and_not_taken_past_the_ring_too() {
        let broker = Broker::memory(100, 4, 10);
        let mut f = feed(&broker, "a").await;
        assert_eq!(f.pending(), 0);
        for i in 1..=10 {
            broker.publish("a", Bytes::from(format!("m{i}"))).await.unwrap();
        }
        assert_eq!(f.pending(), 10, "past the ring of 4");
        let mut got = Vec::new();
        f.recv(&broker, 8, &mut got).await.unwrap();
        assert_eq!(ids(&got), (1..=10).collect::<Vec<_>>(), "from the history");
        assert_eq!(f.pending(), 0, "what the ring still held was given by the history: not pending");
        broker.publish("a", Bytes::from("m11")).await.unwrap();
        assert_eq!(f.pending(), 1);
    }

    #[tokio::test]
    async fn a_lag_past_the_history_is_a_gap() {
        let broker = Broker::memory(10, 4, 10);
        let mut f = feed(&broker, "a").await;
        for i in 1..=30 {
            broker.publish("a", Bytes::from(format!("m{i}"))).await.unwrap();
        }
        assert_eq!(f.recv(&broker, 8, &mut Vec::new()).await, Err(FeedEnd::Gap));
    }

    #[tokio::test]
    async fn a_hole_in_the_ids_is_read_from_the_history() {
        // As after a Redis outage: the ring hands this instance 3 after 1 (2 went by
        // while its link was down); the feed reads 2 and 3 from the history instead.
        let broker = Broker::memory(100, 16, 10);
        let (snap, rx) = broker.subscribe("a", None).await.unwrap();
        let mut f = Feed::new("a", &snap, rx);
        for i in 1..=3 {
            broker.publish("a", Bytes::from(format!("m{i}"))).await.unwrap();
        }
        let mut got = Vec::new();
        f.recv(&broker, 8, &mut got).await.unwrap();
        assert_eq!(ids(&got), vec![1, 2, 3]);
        // A feed whose cursor is 1 but whose ring starts at 3 (its 2 was never delivered).
        let (_, rx) = broker.subscribe("a", None).await.unwrap();
        let snap = broker.since("a", Some(0)).await.unwrap();
        let mut f = Feed { last: 1, ..Feed::new("a", &snap, rx) };
        broker.publish("a", Bytes::from("m4")).await.unwrap();
        let mut got = Vec::new();
        f.recv(&broker, 8, &mut got).await.unwrap();
        assert_eq!(ids(&got), vec![2, 3, 4], "the hole from the history, then what followed, once each");
    }

    #[tokio::test]
    async fn a_batch_is_at_most_max_from_the_ring() {
        let broker = Broker::memory(100, 16, 10);
        let mut f = feed(&broker, "a").await;
        for i in 1..=10 {
            broker.publish("a", Bytes::from(format!("m{i}"))).await.unwrap();
        }
        let mut got = Vec::new();
        f.recv(&broker, 4, &mut got).await.unwrap();
        assert_eq!(ids(&got), vec![1, 2, 3, 4]);
        f.recv(&broker, 100, &mut got).await.unwrap();
        assert_eq!(ids(&got), (1..=10).collect::<Vec<_>>());
    }
}
