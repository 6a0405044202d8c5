//! The broker: where channels live (API.md "Scale past one machine").
//!
//! Every transport reaches channels through this interface and nothing else: publish a
//! message (and learn its id), read what follows a cursor, subscribe to what comes next.
//! The methods are `async` because a broker that spans processes answers over the
//! network: with Redis, `publish` must get the channel's next id from the one place
//! every instance shares, and the history lives there too.
//!
//! `--broker memory` (the default, nothing to install) is [`Hub`]: one process, channels
//! in memory. `--broker redis://…` is [`RedisBroker`]: ids, history and fan-out shared
//! by every instance through one Redis. The drivers in `net/` see only these methods. (The enum rather than a trait object: the set of
//! brokers is closed and small, and `async fn` in a trait object is not yet plain Rust.)

use std::sync::Arc;

use bytes::Bytes;

use super::hub::{Hub, Message, Snapshot, Subscription, TooManyChannels};
use super::redis::{self, RedisBroker, RedisUrl};

/// Where channels live.
pub enum Broker {
    /// One process, in memory (`--broker memory`).
    Memory(Hub),
    /// Every instance that names the same Redis (`--broker redis://…`).
    Redis(RedisBroker),
}

/// Why a broker could not do what was asked. Each is answered `503`: the request was
/// fine, the server cannot serve it right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerError {
    /// Every channel slot is in use (`--max-channels`).
    TooManyChannels,
    /// The shared broker cannot be reached or did not answer; says why.
    Unavailable(String),
}

impl From<TooManyChannels> for BrokerError {
    fn from(_: TooManyChannels) -> Self {
        BrokerError::TooManyChannels
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerError::TooManyChannels => {
                write!(f, "the server has as many channels in use as --max-channels allows; try again shortly")
            }
            BrokerError::Unavailable(why) => write!(f, "the message broker is unavailable: {why}; try again shortly"),
        }
    }
}

/// What `--broker` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    Memory,
    Redis(RedisUrl),
}

/// Reads `--broker`: `memory`, or a Redis URL ([`redis::parse_url`]).
pub fn parse_broker_url(url: &str) -> Result<BrokerKind, String> {
    match url {
        "memory" => Ok(BrokerKind::Memory),
        other if other.starts_with("redis://") || other.starts_with("unix://") => {
            redis::parse_url(other).map(BrokerKind::Redis)
        }
        other => Err(format!(
            "--broker {other:?}: expected `memory`, redis://[:PASSWORD@]HOST[:PORT][/DB] or unix://[:PASSWORD@]/PATH[?db=DB]"
        )),
    }
}

impl Broker {
    /// The in-memory broker: `history` messages per channel, subscribers may fall
    /// `queue` behind, at most `max_channels` channels.
    pub fn memory(history: usize, queue: usize, max_channels: usize) -> Broker {
        Broker::Memory(Hub::with_max_channels(history, queue, max_channels))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Broker::Memory(_) => "memory",
            Broker::Redis(_) => "redis",
        }
    }

    /// Publishes `data` (UTF-8 text) to `channel`; returns the message with its id.
    pub async fn publish(&self, channel: &str, data: Bytes) -> Result<Arc<Message>, BrokerError> {
        match self {
            Broker::Memory(hub) => Ok(hub.publish(channel, data)?),
            // Boxed: a round trip to Redis has a large future, and every connection's
            // task would otherwise be sized for it, memory broker or not.
            Broker::Redis(r) => Box::pin(r.publish(channel, data)).await,
        }
    }

    /// The messages after `after` (without a cursor: none, and the live head).
    pub async fn since(&self, channel: &str, after: Option<u64>) -> Result<Snapshot, BrokerError> {
        match self {
            Broker::Memory(hub) => Ok(hub.since(channel, after)),
            Broker::Redis(r) => Box::pin(r.since(channel, after)).await,
        }
    }

    /// A snapshot after `after` and a subscription to everything after the snapshot,
    /// taken together so that nothing falls between them.
    pub async fn subscribe(&self, channel: &str, after: Option<u64>) -> Result<(Snapshot, Subscription), BrokerError> {
        match self {
            Broker::Memory(hub) => Ok(hub.subscribe(channel, after)?),
            Broker::Redis(r) => Box::pin(r.subscribe(channel, after)).await,
        }
    }

    /// Channels held now (for `/stats` and tests).
    pub fn channel_count(&self) -> usize {
        match self {
            Broker::Memory(hub) => hub.channel_count(),
            Broker::Redis(r) => r.channel_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_broker_fills_the_interface() {
        let b = Broker::memory(10, 8, 2);
        assert_eq!(b.name(), "memory");
        let (snap, mut rx) = b.subscribe("a", None).await.unwrap();
        assert_eq!(snap.next, 0);
        assert_eq!(b.publish("a", Bytes::from("x")).await.unwrap().id, 1);
        assert_eq!(rx.recv().await.unwrap().id, 1);
        assert_eq!(b.since("a", Some(0)).await.unwrap().messages.len(), 1);
        b.publish("b", Bytes::from("y")).await.unwrap();
        let (_s, _rx2) = b.subscribe("b", None).await.unwrap();
        assert_eq!(b.publish("c", Bytes::from("z")).await.unwrap_err(), BrokerError::TooManyChannels);
        assert_eq!(b.channel_count(), 2);
    }

    #[test]
    fn broker_urls() {
        assert_eq!(parse_broker_url("memory").unwrap(), BrokerKind::Memory);
        assert!(matches!(parse_broker_url("redis://127.0.0.1:6379").unwrap(), BrokerKind::Redis(_)));
        assert!(matches!(parse_broker_url("unix:///tmp/redis.sock").unwrap(), BrokerKind::Redis(_)));
        assert!(parse_broker_url("redis://h:x").unwrap_err().contains("not a port"));
        assert!(parse_broker_url("mysql://x").unwrap_err().contains("expected `memory`"));
    }
}
