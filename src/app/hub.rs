//! Channels: ids, bounded history, cursors and fan-out (API.md "Messages and channels").
//!
//! Every transport reads the same channels, which is what lets a message published over
//! one transport reach clients of every other. A message is stored once as an
//! `Arc<Message>`; each wire encoding of it (the JSON object, the SSE event as an HTTP/1.1
//! chunk and unframed, the WebSocket frame) is made the first time a connection needs it
//! and then shared by every subscriber, so a fan-out to N clients encodes once, not N
//! times. SSE and WebSocket connections write those very bytes (a `Bytes` clone is a
//! reference count); a poll response copies each message's shared JSON into its body.
//!
//! Resuming works by cursor: `after = ID` asks for the messages with an id greater than
//! ID. A subscription is taken under the same lock as the history snapshot, so no
//! message can fall between "what was already there" and "what arrives next".
//!
//! The hub is the broker's in-memory form (`--broker memory`, the default and, so far,
//! the only one: see `broker.rs`). A broker that spans processes (Redis, not built yet)
//! would keep the ids and the history itself and feed each instance's hub with what the
//! others publish; the transports only ever see this API.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, broadcast};

use crate::proto::sse;
use crate::proto::ws;

/// One published message. `data` is valid UTF-8 (checked at publish time).
///
/// Each wire encoding sits in a `OnceLock<Bytes>`: the first subscriber that needs it
/// encodes it, every other one gets the same bytes (a `Bytes` clone is a reference
/// count, not a copy). An encoding nobody asks for is never made.
#[derive(Debug)]
pub struct Message {
    pub id: u64,
    pub data: Bytes,
    json: OnceLock<Bytes>,
    sse_chunk: OnceLock<Bytes>,
    sse_event: OnceLock<Bytes>,
    ws_frame: OnceLock<Bytes>,
    ws_frame_deflated: OnceLock<Bytes>,
    /// Set once a later message of the channel has been sent to the subscribers: a
    /// subscriber that just took this one knows, without asking the broadcast ring (a
    /// lock every subscriber contends for), whether more are waiting there.
    followed: AtomicBool,
}

impl Message {
    pub fn new(id: u64, data: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&data).is_ok());
        Message {
            id,
            data,
            json: OnceLock::new(),
            sse_chunk: OnceLock::new(),
            sse_event: OnceLock::new(),
            ws_frame: OnceLock::new(),
            ws_frame_deflated: OnceLock::new(),
            followed: AtomicBool::new(false),
        }
    }

    /// Whether a later message of the channel has been broadcast (see `followed`).
    /// `false` may be stale by the time it is read; the broadcast then wakes the
    /// subscriber as usual.
    pub fn is_followed(&self) -> bool {
        self.followed.load(Ordering::Acquire)
    }

    pub fn text(&self) -> &str {
        // Checked at publish: every message is UTF-8 text.
        std::str::from_utf8(&self.data).unwrap_or("")
    }

    /// `{"id":N,"data":"…"}`, encoded the first time it is asked for, then shared.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| {
            let mut s = String::with_capacity(self.data.len() + 24);
            s.push_str("{\"id\":");
            s.push_str(&self.id.to_string());
            s.push_str(",\"data\":");
            s.push_str(&serde_json::to_string(self.text()).unwrap_or_default());
            s.push('}');
            Bytes::from(s)
        })
    }

    /// The SSE event (`id: N`, one `data:` line per line of text, blank line) as one
    /// complete HTTP/1.1 chunk, size line and CRLF included: what every HTTP/1.1
    /// subscriber writes to its socket, unchanged.
    pub fn sse_chunk(&self) -> &Bytes {
        self.sse_chunk.get_or_init(|| sse::encode_event_chunk(Some(self.id), None, self.text()))
    }

    /// The same event without chunk framing, for HTTP/1.0 streams (delimited by close).
    pub fn sse_event(&self) -> &Bytes {
        self.sse_event.get_or_init(|| sse::encode_event_bytes(Some(self.id), None, self.text()))
    }

    /// The complete WebSocket frame a server sends for this message: an unmasked, final
    /// text frame (RFC 6455 §5.2, §5.6) whose payload is [`json`](Self::json). Encoded
    /// the first time a subscriber needs it; every other subscriber queues the same
    /// `Bytes` (a reference count, not a copy) with `Session::send_encoded`.
    pub fn ws_frame(&self) -> &Bytes {
        self.ws_frame.get_or_init(|| ws::encode_server_text(self.json()))
    }

    /// The same frame compressed with permessage-deflate, alone (no context) and with
    /// the default window, RSV1 set (RFC 7692 §7.2.1): right for every connection whose
    /// server side has no context takeover. Compressed the first time a subscriber needs
    /// it, then shared like [`ws_frame`](Self::ws_frame).
    pub fn ws_frame_deflated(&self) -> &Bytes {
        self.ws_frame_deflated.get_or_init(|| ws::encode_server_text_deflated(self.json()))
    }
}

/// What a client resuming at a cursor gets.
pub struct Snapshot {
    /// The retained messages after the cursor, oldest first.
    pub messages: Vec<Arc<Message>>,
    /// Messages the client asked for were already dropped from history (or the cursor is
    /// from a sequence this server does not have): never silent loss, always said.
    pub truncated: bool,
    /// The cursor to send next time: the last id delivered, or the cursor itself.
    pub next: u64,
}

/// A live subscription: messages published after the snapshot it was taken with, and the
/// channel's pressure signal.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Message>>,
    pressure: Arc<Notify>,
}

impl Subscription {
    /// The next message (see `broadcast::Receiver::recv`: `Lagged` when the ring has
    /// overtaken this subscriber).
    pub async fn recv(&mut self) -> Result<Arc<Message>, broadcast::error::RecvError> {
        self.rx.recv().await
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<Message>, broadcast::error::TryRecvError> {
        self.rx.try_recv()
    }

    /// Messages sent and not yet taken (counted from the ring's positions).
    pub fn pending(&self) -> usize {
        self.rx.len()
    }

    /// Completes the next time the channel signals pressure: every [`Channel`]'s
    /// `pressure_every` messages (at most [`PRESSURE_EVERY`], at most half its ring). A
    /// subscriber that holds messages without taking them from the ring (`--coalesce`)
    /// waits on this instead of on every message, so that it is woken once per many
    /// messages and still takes them before the ring overtakes it.
    pub fn pressure(&self) -> Notified<'_> {
        self.pressure.notified()
    }
}

/// How many messages a channel sends between two pressure signals, at most: half of
/// `COALESCE_MOST`, so that a coalescing subscriber learns that its hold is full soon
/// after it is.
pub const PRESSURE_EVERY: u64 = crate::config::COALESCE_MOST as u64 / 2;

struct Log {
    last_id: u64,
    history: VecDeque<Arc<Message>>,
    /// The last message broadcast, to be marked `followed` by the next one.
    newest: Option<Arc<Message>>,
    /// With ids from elsewhere ([`Hub::deliver`]), before any was handed out here: the
    /// lowest cursor a subscriber here goes on from ([`Hub::note_cursor`]).
    start: Option<u64>,
}

impl Log {
    /// Sends `msg` to the subscribers, after marking the one before it `followed`, and
    /// signals pressure every `pressure_every` messages.
    fn broadcast(&mut self, c: &Channel, msg: Arc<Message>) {
        if let Some(before) = self.newest.replace(msg.clone()) {
            before.followed.store(true, Ordering::Release);
        }
        let id = msg.id;
        let _ = c.tx.send(msg);
        if id.is_multiple_of(c.pressure_every) {
            c.pressure.notify_waiters();
        }
    }

    fn head(&self) -> Option<u64> {
        if self.last_id > 0 { Some(self.last_id) } else { self.start }
    }
}

pub struct Channel {
    log: Mutex<Log>,
    tx: broadcast::Sender<Arc<Message>>,
    /// Signalled every `pressure_every` messages (`Subscription::pressure`).
    pressure: Arc<Notify>,
    pressure_every: u64,
    history: usize,
    /// When the channel was last used (the hub's clock), to evict the idlest first.
    last_used: AtomicU64,
}

impl Channel {
    /// A channel whose sequence continues after `last_id` (0 for a new name).
    fn new(history: usize, queue: usize, last_id: u64) -> Self {
        Channel {
            log: Mutex::new(Log {
                last_id,
                history: VecDeque::with_capacity(history.min(1024)),
                newest: None,
                start: None,
            }),
            tx: broadcast::channel(queue.max(1)).0,
            pressure: Arc::new(Notify::new()),
            pressure_every: (queue as u64 / 2).clamp(1, PRESSURE_EVERY),
            history,
            last_used: AtomicU64::new(0),
        }
    }

    fn publish(&self, data: Bytes) -> Arc<Message> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.last_id += 1;
        let msg = Arc::new(Message::new(log.last_id, data));
        if self.history > 0 {
            if log.history.len() == self.history {
                log.history.pop_front();
            }
            log.history.push_back(msg.clone());
        }
        // Sent under the lock so that subscribers see ids in order, and so that a
        // snapshot-plus-subscribe (below) can never miss or double a message.
        log.broadcast(self, msg.clone());
        msg
    }

    fn snapshot(log: &Log, after: Option<u64>) -> Snapshot {
        snapshot_of(log.last_id, &log.history, after)
    }

    /// Hands out a message whose id was assigned elsewhere (by Redis), unless one with
    /// that id or a later one was handed out already: what arrives twice (a pub/sub
    /// message and the history read after a reconnection) goes out once.
    fn deliver(&self, id: u64, data: Bytes) -> bool {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if id <= log.last_id {
            return false;
        }
        log.last_id = id;
        let msg = Arc::new(Message::new(id, data));
        if self.history > 0 {
            if log.history.len() == self.history {
                log.history.pop_front();
            }
            log.history.push_back(msg.clone());
        }
        log.broadcast(self, msg);
        true
    }
}

/// What a client resuming after `after` gets from a channel whose last id is `last_id`
/// and whose retained messages (oldest first, ids consecutive up to `last_id`) are
/// `history`: the one rule for `truncated` and `next`, for the memory broker and for the
/// history the Redis broker reads back (which may hold only the part after the cursor).
pub(crate) fn snapshot_of(last_id: u64, history: &VecDeque<Arc<Message>>, after: Option<u64>) -> Snapshot {
    let Some(after) = after else {
        // No cursor: start at the live head, new messages only.
        return Snapshot { messages: Vec::new(), truncated: false, next: last_id };
    };
    if after > last_id {
        // A cursor from the future: this server's sequence restarted (an in-memory
        // broker after a restart). Say so, and give everything there is.
        return Snapshot { messages: history.iter().cloned().collect(), truncated: true, next: last_id };
    }
    let start = history.partition_point(|m| m.id <= after);
    let oldest_kept = history.front().map_or(last_id + 1, |m| m.id);
    let messages: Vec<_> = history.range(start..).cloned().collect();
    Snapshot {
        // The client needs after+1 onwards; if the oldest kept is later, some are gone.
        truncated: oldest_kept > after + 1,
        next: messages.last().map_or(after.max(oldest_kept.saturating_sub(1)).min(last_id), |m| m.id),
        messages,
    }
}

/// All channels of this process.
///
/// Channels are created by publishing or subscribing, never by reading, and there are
/// at most `max_channels` of them: each holds its history and a broadcast ring, so names
/// invented by clients must not grow memory without end. When the limit is reached, the
/// channel idle longest (no subscriber, no task using it) is dropped to make room; a
/// client that later resumes on it is told `truncated`, as after a restart. If every
/// channel is in use, a new one is refused ([`TooManyChannels`], answered `503`).
pub struct Hub {
    channels: Mutex<Channels>,
    history: usize,
    queue: usize,
    max_channels: usize,
    /// A logical clock for `Channel::last_used`.
    clock: AtomicU64,
    /// Ids come from elsewhere (see [`Hub::fanout_only`]).
    fanout_only: bool,
}

/// The channels, and what is remembered of the dropped ones.
///
/// A channel's ids must never start again at 1 (API.md: "strictly increasing"): a client
/// holding cursor 3 would take a new message 3 for one it already has. So when a channel
/// is dropped its last id is kept (`dropped`, as many as there may be channels), and a
/// channel made again under that name continues from it. Past that bound the oldest
/// record goes, and `floor` keeps the highest last id ever forgotten: a name with no
/// record starts there, which is above any id it can have had.
#[derive(Default)]
struct Channels {
    live: HashMap<String, Arc<Channel>>,
    dropped: HashMap<String, u64>,
    dropped_order: VecDeque<String>,
    floor: u64,
}

impl Channels {
    /// Where a channel of this name (made now) continues its sequence from.
    fn last_id_of_dropped(&self, name: &str) -> u64 {
        self.dropped.get(name).copied().unwrap_or(self.floor)
    }

    fn remember_dropped(&mut self, name: String, last_id: u64, bound: usize) {
        if self.dropped.insert(name.clone(), last_id).is_none() {
            self.dropped_order.push_back(name);
        }
        while self.dropped.len() > bound {
            let Some(oldest) = self.dropped_order.pop_front() else { break };
            if let Some(id) = self.dropped.remove(&oldest) {
                self.floor = self.floor.max(id);
            }
        }
    }
}

/// A live channel's name and last id, at the time it was read ([`Hub::heads`]).
pub struct Head {
    pub name: String,
    /// The last id handed out; before any, the lowest cursor noted; or neither.
    pub last: Option<u64>,
    /// Which channel of that name (a weak reference: a head does not keep a channel,
    /// and its subscriptions, alive; and its address cannot be reused while it exists).
    channel: Weak<Channel>,
}

/// Every channel slot is in use by live subscribers; no new channel can be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyChannels;

impl Hub {
    /// `history`: messages kept per channel; `queue`: how far a subscriber may fall
    /// behind before it is told it lagged (API.md `--max-queue`). At most
    /// [`DEFAULT_MAX_CHANNELS`](crate::config::DEFAULT_MAX_CHANNELS) channels.
    pub fn new(history: usize, queue: usize) -> Self {
        Self::with_max_channels(history, queue, crate::config::DEFAULT_MAX_CHANNELS)
    }

    pub fn with_max_channels(history: usize, queue: usize, max_channels: usize) -> Self {
        Hub {
            channels: Mutex::new(Channels::default()),
            history,
            queue,
            max_channels: max_channels.max(1),
            clock: AtomicU64::new(0),
            fanout_only: false,
        }
    }

    /// A hub that only hands out messages whose ids come from elsewhere ([`deliver`]):
    /// no history, and a channel made again knows nothing of its past here (its ids are
    /// the shared sequence's, not this hub's to continue).
    ///
    /// [`deliver`]: Hub::deliver
    pub fn fanout_only(queue: usize, max_channels: usize) -> Self {
        Hub { fanout_only: true, ..Hub::with_max_channels(0, queue, max_channels) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The channel, made if it does not exist yet (and there is room).
    fn channel(&self, name: &str) -> Result<Arc<Channel>, TooManyChannels> {
        let now = self.clock.fetch_add(1, Relaxed);
        let mut channels = self.lock();
        if let Some(c) = channels.live.get(name) {
            c.last_used.store(now, Relaxed);
            return Ok(c.clone());
        }
        if channels.live.len() >= self.max_channels {
            // Idle: no subscriber, and no task holding it (only the map's reference).
            let idlest = channels
                .live
                .iter()
                .filter(|(_, c)| Arc::strong_count(c) == 1 && c.tx.receiver_count() == 0)
                .min_by_key(|(_, c)| c.last_used.load(Relaxed))
                .map(|(name, _)| name.clone())
                .ok_or(TooManyChannels)?;
            if let Some(dropped) = channels.live.remove(&idlest) {
                let last_id = dropped.log.lock().unwrap_or_else(|e| e.into_inner()).last_id;
                channels.remember_dropped(idlest, last_id, self.max_channels);
            }
        }
        let last_id = if self.fanout_only { 0 } else { channels.last_id_of_dropped(name) };
        let c = Arc::new(Channel::new(self.history, self.queue, last_id));
        c.last_used.store(now, Relaxed);
        channels.live.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Publishes `data` (UTF-8 text) and returns the message with its new id.
    pub fn publish(&self, channel: &str, data: Bytes) -> Result<Arc<Message>, TooManyChannels> {
        Ok(self.channel(channel)?.publish(data))
    }

    /// The messages after `after` (see [`Snapshot`]). Reading never makes a channel: one
    /// that does not exist reads as empty.
    pub fn since(&self, channel: &str, after: Option<u64>) -> Snapshot {
        let found = {
            let channels = self.lock();
            channels.live.get(channel).cloned().ok_or_else(|| channels.last_id_of_dropped(channel))
        };
        let c = match found {
            Ok(c) => c,
            // No such channel (never made, or dropped): an empty log whose sequence is
            // where a channel made now would continue it.
            Err(last_id) => return snapshot_of(last_id, &VecDeque::new(), after),
        };
        let log = c.log.lock().unwrap_or_else(|e| e.into_inner());
        Channel::snapshot(&log, after)
    }

    /// A snapshot and a subscription to everything after it, taken atomically.
    pub fn subscribe(&self, channel: &str, after: Option<u64>) -> Result<(Snapshot, Subscription), TooManyChannels> {
        let c = self.channel(channel)?;
        let log = c.log.lock().unwrap_or_else(|e| e.into_inner());
        let rx = Subscription { rx: c.tx.subscribe(), pressure: c.pressure.clone() };
        Ok((Channel::snapshot(&log, after), rx))
    }

    /// How many channels exist now.
    pub fn channel_count(&self) -> usize {
        self.lock().live.len()
    }

    // For a broker that assigns ids elsewhere (Redis) and uses this hub for the fan-out
    // to this instance's subscribers only.

    /// Hands message `id` to the subscribers of `channel` here, if the channel exists
    /// here and has not had that id (or a later one) yet. Never makes a channel: nobody
    /// here is waiting on one that does not exist.
    pub fn deliver(&self, channel: &str, id: u64, data: Bytes) -> bool {
        let found = self.lock().live.get(channel).cloned();
        found.is_some_and(|c| c.deliver(id, data))
    }

    /// `channel`'s head, if it exists here.
    pub fn head(&self, channel: &str) -> Option<Head> {
        let c = self.lock().live.get(channel).cloned()?;
        let last = c.log.lock().unwrap_or_else(|e| e.into_inner()).head();
        Some(Head { name: channel.to_string(), last, channel: Arc::downgrade(&c) })
    }

    /// Every live channel and the last id handed out on it.
    pub fn heads(&self) -> Vec<Head> {
        let live: Vec<_> = self.lock().live.iter().map(|(n, c)| (n.clone(), c.clone())).collect();
        live.into_iter()
            .map(|(name, c)| {
                let last = c.log.lock().unwrap_or_else(|e| e.into_inner()).head();
                Head { last, name, channel: Arc::downgrade(&c) }
            })
            .collect()
    }

    /// Forgets the channel `head` was taken from, if it is still the live one of that
    /// name: one made again since (a new subscriber after a reset) is left alone.
    pub fn reset_if_same(&self, head: &Head) {
        let mut channels = self.lock();
        if channels.live.get(&head.name).is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), head.channel.as_ptr())) {
            channels.live.remove(&head.name);
        }
    }

    /// A subscriber of `channel` here goes on after `cursor`: until a message has been
    /// handed out here, the lowest such cursor is the channel's head ([`Head::last`]),
    /// from which a broker whose link was down reads what it missed.
    pub fn note_cursor(&self, channel: &str, cursor: u64) {
        if let Some(c) = self.lock().live.get(channel).cloned() {
            let mut log = c.log.lock().unwrap_or_else(|e| e.into_inner());
            log.start = Some(log.start.map_or(cursor, |s| s.min(cursor)));
        }
    }

    /// Forgets `channel` here: its subscriptions end (`Closed`), and each client resumes
    /// with its cursor, to be told what the shared history can still say about it.
    pub fn reset(&self, channel: &str) {
        self.lock().live.remove(channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Snapshot) -> Vec<u64> {
        s.messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn ids_start_at_one_and_cursors_select_after() {
        let hub = Hub::new(10, 8);
        for i in 1..=3 {
            assert_eq!(hub.publish("a", Bytes::from(format!("m{i}"))).unwrap().id, i);
        }
        assert_eq!(hub.publish("b", Bytes::from("x")).unwrap().id, 1, "each channel has its own sequence");
        let s = hub.since("a", Some(1));
        assert_eq!((ids(&s), s.truncated, s.next), (vec![2, 3], false, 3));
        let s = hub.since("a", None);
        assert_eq!((ids(&s), s.truncated, s.next), (vec![], false, 3), "no cursor: live head");
        let s = hub.since("a", Some(3));
        assert_eq!((ids(&s), s.truncated, s.next), (vec![], false, 3));
        let s = hub.since("empty", Some(0));
        assert_eq!((ids(&s), s.truncated, s.next), (vec![], false, 0));
    }

    #[test]
    fn history_is_bounded_and_truncation_is_said() {
        let hub = Hub::new(3, 8);
        for i in 1..=5 {
            hub.publish("a", Bytes::from(format!("m{i}"))).unwrap();
        }
        let s = hub.since("a", Some(0));
        assert_eq!((ids(&s), s.truncated, s.next), (vec![3, 4, 5], true, 5));
        let s = hub.since("a", Some(1));
        assert!(s.truncated, "2 is gone");
        let s = hub.since("a", Some(2));
        assert_eq!((ids(&s), s.truncated), (vec![3, 4, 5], false));
        let s = hub.since("a", Some(99));
        assert_eq!((ids(&s), s.truncated, s.next), (vec![3, 4, 5], true, 5), "cursor from the future");
    }

    #[test]
    fn subscribe_misses_nothing_between_snapshot_and_live() {
        let hub = Hub::new(10, 8);
        hub.publish("a", Bytes::from("1")).unwrap();
        let (snap, mut rx) = hub.subscribe("a", Some(0)).unwrap();
        hub.publish("a", Bytes::from("2")).unwrap();
        assert_eq!(ids(&snap), vec![1]);
        assert_eq!(rx.try_recv().unwrap().id, 2);
    }

    #[test]
    fn channels_are_bounded_and_the_idlest_idle_one_makes_room() {
        let hub = Hub::with_max_channels(10, 8, 2);
        assert_eq!(hub.since("nobody", Some(0)).messages.len(), 0);
        assert_eq!(hub.channel_count(), 0, "reading makes no channel");
        hub.publish("old", Bytes::from("1")).unwrap();
        let (_, _rx) = hub.subscribe("busy", None).unwrap();
        // Full: "old" is idle, so it makes room; "busy" has a subscriber and stays.
        hub.publish("new", Bytes::from("1")).unwrap();
        assert_eq!(hub.channel_count(), 2);
        let s = hub.since("old", Some(0));
        assert!(s.truncated, "a client that missed message 1 of a dropped channel is told");
        let s = hub.since("old", Some(1));
        assert!(!s.truncated && s.messages.is_empty() && s.next == 1, "one that had it missed nothing");
        // Now "new" is the only idle one; with it in use too, a third is refused.
        let (_, _rx2) = hub.subscribe("new", None).unwrap();
        assert_eq!(hub.publish("third", Bytes::from("x")).unwrap_err(), TooManyChannels);
        assert_eq!(hub.since("busy", None).next, 0);
    }

    #[test]
    fn a_channel_made_again_continues_its_ids() {
        let hub = Hub::with_max_channels(10, 8, 1);
        for i in 1..=3 {
            assert_eq!(hub.publish("a", Bytes::from(format!("old{i}"))).unwrap().id, i);
        }
        hub.publish("b", Bytes::from("x")).unwrap(); // drops "a"
        // Made again, "a" goes on from 3: ids never repeat, cursors keep their meaning.
        assert_eq!(hub.publish("a", Bytes::from("new")).unwrap().id, 4); // drops "b"
        let s = hub.since("a", Some(3));
        assert_eq!((ids(&s), s.truncated), (vec![4], false));
        let s = hub.since("a", Some(1));
        assert!(s.truncated, "2 and 3 went with the drop: said, not hidden");
        // Records of dropped channels are bounded; past the bound a floor keeps ids rising.
        for i in 0..10 {
            hub.publish(&format!("n{i}"), Bytes::from("x")).unwrap();
        }
        assert!(hub.publish("a", Bytes::from("again")).unwrap().id > 4, "never back to an old id");
    }

    #[test]
    fn a_fanout_hub_hands_out_ids_from_elsewhere_once_each() {
        let hub = Hub::fanout_only(8, 1);
        assert!(!hub.deliver("a", 1, Bytes::from("x")), "no channel here: nobody to hand it to");
        let (_, mut rx) = hub.subscribe("a", None).unwrap();
        assert_eq!(hub.head("a").unwrap().last, None, "nothing handed out, no cursor noted");
        hub.note_cursor("a", 7);
        hub.note_cursor("a", 5);
        assert_eq!(hub.head("a").unwrap().last, Some(5), "the lowest cursor, until a message");
        assert!(hub.deliver("a", 6, Bytes::from("six")));
        assert!(!hub.deliver("a", 6, Bytes::from("six")), "the same id twice goes out once");
        assert!(!hub.deliver("a", 4, Bytes::from("old")), "nor an older one");
        assert_eq!(rx.try_recv().unwrap().id, 6);
        assert!(rx.try_recv().is_err());
        let heads = hub.heads();
        assert_eq!((heads.len(), heads[0].name.as_str(), heads[0].last), (1, "a", Some(6)));
        // Made again after a reset, the channel is a new one: a reset through the old
        // head leaves it alone, and it does not carry the old one's ids.
        hub.reset("a");
        assert!(rx.try_recv().is_err_and(|e| e == tokio::sync::broadcast::error::TryRecvError::Closed));
        let (_, _rx2) = hub.subscribe("a", None).unwrap();
        hub.reset_if_same(&heads[0]);
        assert_eq!(hub.channel_count(), 1, "not the channel that head was taken from");
        assert_eq!(hub.head("a").unwrap().last, None);
        hub.reset_if_same(&hub.head("a").unwrap());
        assert_eq!(hub.channel_count(), 0);
    }

    #[test]
    fn json_is_encoded_once_and_escaped() {
        let hub = Hub::new(10, 8);
        let m = hub.publish("a", Bytes::from("say \"hi\"\n")).unwrap();
        assert_eq!(&m.json()[..], br#"{"id":1,"data":"say \"hi\"\n"}"#);
        assert!(std::ptr::eq(m.json().as_ptr(), m.json().as_ptr()), "same bytes every time");
    }

    #[test]
    fn sse_encodings_are_made_once_and_shared_by_every_subscriber() {
        let hub = Hub::new(10, 8);
        let mut subscribers: Vec<_> = (0..3).map(|_| hub.subscribe("a", None).unwrap().1).collect();
        hub.publish("a", Bytes::from("one\r\ntwo")).unwrap();
        let got: Vec<Arc<Message>> = subscribers.iter_mut().map(|rx| rx.try_recv().unwrap()).collect();
        assert_eq!(&got[0].sse_chunk()[..], b"1b\r\nid: 1\ndata: one\ndata: two\n\n\r\n");
        assert_eq!(&got[0].sse_event()[..], b"id: 1\ndata: one\ndata: two\n\n");
        // What each subscriber's connection would queue: clones of the shared Bytes.
        let queued: Vec<Bytes> = got.iter().map(|m| m.sse_chunk().clone()).collect();
        let unframed: Vec<Bytes> = got.iter().map(|m| m.sse_event().clone()).collect();
        for (chunk, event) in queued.iter().zip(&unframed) {
            assert!(std::ptr::eq(chunk.as_ptr(), queued[0].as_ptr()), "one chunk encoding for everyone");
            assert!(std::ptr::eq(event.as_ptr(), unframed[0].as_ptr()), "one unframed encoding for everyone");
        }
        // And the history hands a resuming client the very same bytes too.
        let snap = hub.since("a", Some(0));
        assert!(std::ptr::eq(snap.messages[0].sse_chunk().as_ptr(), queued[0].as_ptr()));
    }

    #[test]
    fn the_deflated_frame_is_compressed_once_and_every_deflate_subscriber_reads_it() {
        use crate::proto::ws::{DeflateParams, Event, Session, SessionLimits};
        let m = Message::new(7, Bytes::from_static(b"hello, hello, hello, hello"));
        let frame = m.ws_frame_deflated().clone();
        assert!(std::ptr::eq(m.ws_frame_deflated().as_ptr(), frame.as_ptr()), "one compression for everyone");
        assert_eq!(frame[0], 0xc1, "FIN, RSV1 (compressed), text");
        // Each subscriber that agreed on server_no_context_takeover reads the same bytes,
        // as often as they come: no message refers back to another.
        let params = DeflateParams { server_no_context_takeover: true, ..DeflateParams::default() };
        for _ in 0..2 {
            let mut client = Session::client(SessionLimits::default(), || [0; 4]).with_deflate(params);
            client.receive_data(&frame);
            client.receive_data(&frame);
            for _ in 0..2 {
                assert!(matches!(client.next_event(), Some(Event::Text(t)) if t.as_bytes() == &m.json()[..]));
            }
        }
    }

    #[test]
    fn ws_frame_is_encoded_once_and_shared_by_every_subscriber() {
        use crate::proto::ws::{FrameHeader, OpCode, Session, SessionLimits};
        let hub = Hub::new(10, 8);
        let mut subscribers: Vec<_> = (0..3).map(|_| hub.subscribe("a", None).unwrap().1).collect();
        let big = "x".repeat(2000);
        let mut encoded = Vec::new();
        for text in ["Hello", big.as_str()] {
            hub.publish("a", Bytes::from(text.to_string())).unwrap();
            let got: Vec<Arc<Message>> = subscribers.iter_mut().map(|rx| rx.try_recv().unwrap()).collect();
            let frame = got[0].ws_frame().clone();
            let (h, n) = FrameHeader::parse(&frame).unwrap().unwrap();
            assert_eq!((h.fin, h.opcode, h.mask), (true, OpCode::Text, None), "one final unmasked text frame");
            assert_eq!(&frame[n..], &got[0].json()[..], "its payload is the message's JSON");
            for m in &got {
                assert!(std::ptr::eq(m.ws_frame().as_ptr(), frame.as_ptr()), "one encoding for everyone");
            }
            // What each connection then writes: a small frame is copied next to the
            // frames queued with it, so that they leave in one write (session.rs,
            // COALESCE_MAX); a large one is queued as the shared Bytes itself.
            for m in &got {
                let mut s = Session::server(SessionLimits::default());
                s.send_encoded(m.ws_frame()).unwrap();
                let out: Vec<Bytes> = s.drain_outgoing().collect();
                assert_eq!(out.concat(), &frame[..]);
                if frame.len() > 1024 {
                    assert!(std::ptr::eq(out[0].as_ptr(), frame.as_ptr()), "no copy per subscriber");
                }
            }
            encoded.push(frame);
        }
        // A client resuming from history gets the very same bytes as the live ones.
        let snap = hub.since("a", Some(0));
        for (m, frame) in snap.messages.iter().zip(&encoded) {
            assert!(std::ptr::eq(m.ws_frame().as_ptr(), frame.as_ptr()));
        }
    }
}
