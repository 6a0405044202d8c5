//! The Redis broker (`--broker redis://…`): several instances, one system (API.md
//! "Scale past one machine").
//!
//! A stateful connection lives on one instance, so a message published on instance A
//! must reach the subscribers connected to instance B. Every instance talks to one Redis,
//! over the hand-written RESP codec ([`crate::proto::resp`]):
//!
//! - **Ids and history** live in Redis, so that every instance agrees. One Lua script
//!   ([`PUBLISH_SCRIPT`], run with `EVALSHA`) is the atomic step: `INCR` the channel's
//!   last id, `RPUSH` the text onto its history list and `LTRIM` it to `--history`, and
//!   `PUBLISH` it. Redis runs a script without interleaving any other command, so ids
//!   are one gap-free sequence per channel whoever publishes, and the history holds
//!   consecutive ids ending at the last one (which is how a read knows each entry's id
//!   without storing it).
//! - **Fan-out**: every instance subscribes to one pub/sub channel and hands each message
//!   to its own subscribers through a local [`Hub`] (used only for that: ids come from
//!   Redis). Pub/sub delivers in the order the scripts ran, that is, in id order.
//! - **Resuming**: `after=ID` is read from the Redis history ([`SINCE_SCRIPT`]) and turned
//!   into a snapshot by the memory hub's own rule (`hub::snapshot_of`), so `truncated`
//!   means exactly what it means in memory. A client may resume on any instance.
//!
//! Two connections per instance, whatever the number of clients: one for commands,
//! pipelined (every publish and history read of every client goes out on it, and
//! replies come back in order), and one subscribed (a subscribed RESP2 connection can
//! only subscribe).
//!
//! Failures, each said on stderr:
//! - Redis unreachable at start: the server does not start (exit 1, naming the address).
//! - Redis going away while serving: publishes answer `503` with the reason (a message
//!   sent over a WebSocket closes it with `1013`); subscribers stay connected and are
//!   sent nothing. Both connections are made again with backoff
//!   (logged); the subscribed one then reads, for every channel this instance serves,
//!   what was published after the last id it handed out, so subscribers receive
//!   everything since, in order, once. (A subscriber's [`Feed`](super::feed::Feed) also
//!   fills any gap in the ids it is handed from the history, whatever caused it.)
//! - Redis back without its data (a fresh, empty Redis): noticed by [`EPOCH_KEY`], a
//!   random value each Redis is given once. The sequence must not start again at 1
//!   under clients that hold cursors, so for each channel this instance has served, the
//!   counter is raised past the last id handed out here ([`SEED_SCRIPT`]), skipping one
//!   id: the new history starts after a hole, and a client resuming from the old
//!   sequence is told `truncated`. This instance's subscriptions are ended so that each
//!   client resumes with its cursor and is told.
//!
//! Keys (in the database the URL names): `wa:epoch`, and per channel
//! `wa:ch:{name}:seq` (the last id) and `wa:ch:{name}:hist` (the last `--history` texts).
//! Pub/sub is not per database in Redis, so the pub/sub channel names the database:
//! `wa:messages:{db}`, each message `{channel} {id} {text}`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::broker::BrokerError;
use super::hub::{Head, Hub, Message, Snapshot, Subscription, snapshot_of};
use crate::client::backoff::Backoff;
use crate::proto::resp::{self, Limits, Value};
use crate::trace::Tracer;

/// The port Redis listens on unless the URL says otherwise.
pub const DEFAULT_PORT: u16 = 6379;

/// How long one attempt to connect to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Commands waiting for the command connection. Past it, a publish waits for room:
/// back-pressure on clients rather than memory without bound.
pub const REQUEST_QUEUE: usize = 4096;

/// Most commands written to Redis in one write: a burst of publishes leaves together.
pub const PIPELINE_BATCH: usize = 256;

/// The key whose random value names this Redis's data (see the module doc).
pub const EPOCH_KEY: &str = "wa:epoch";

/// The atomic publish. KEYS: the channel's `seq` and `hist`; ARGV: the text, how many
/// messages to keep, the pub/sub channel, the channel's name. Returns the new id.
/// `--history 0` keeps none: the list is deleted, so what is left is still consecutive.
pub const PUBLISH_SCRIPT: &str = "\
local id = redis.call('INCR', KEYS[1])
local keep = tonumber(ARGV[2])
if keep > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], -keep, -1)
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. id .. ' ' .. ARGV[1])
return id
";

/// A history read. KEYS: `seq`, `hist`; ARGV: the cursor, or empty for none. Returns
/// `{last id}` without a cursor, else `{last id, id of the first text, {texts…}}`: the
/// texts after the cursor (all of them when the cursor is older than the history, or
/// from the future).
pub const SINCE_SCRIPT: &str = "\
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] == '' then return {last} end
local after = tonumber(ARGV[1])
local first = last - redis.call('LLEN', KEYS[2]) + 1
local start = after + 1 - first
if after > last or start < 0 then start = 0 end
return {last, first + start, redis.call('LRANGE', KEYS[2], start, -1)}
";

/// After a fresh Redis: raises a channel's counter past `known` (the last id handed out
/// by this instance) if it is lower, skipping one id, and drops the history so that it
/// stays consecutive. KEYS: `seq`, `hist`; ARGV: `known`. Returns 1 if it raised it.
pub const SEED_SCRIPT: &str = "\
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local known = tonumber(ARGV[1])
if last < known then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], known + 1)
  return 1
end
return 0
";

/// Where Redis is, from `--broker`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisUrl {
    pub addr: RedisAddr,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisAddr {
    /// `host:port`
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for RedisAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisAddr::Tcp(hp) => write!(f, "{hp}"),
            RedisAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Reads the forms `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` and
/// `unix://[[USER]:PASSWORD@]/PATH[?db=DB]` (the forms redis-cli and most clients
/// read). The password is taken as written (no percent-decoding).
pub fn parse_url(url: &str) -> Result<RedisUrl, String> {
    let bad = |why: &str| {
        Err(format!(
            "--broker {url}: {why} (expected redis://[:PASSWORD@]HOST[:PORT][/DB] or unix://[:PASSWORD@]/PATH[?db=DB])"
        ))
    };
    let (unix, rest) = if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("unix://") {
        (true, rest)
    } else {
        return bad("not a Redis URL");
    };
    // The user part ends at the last '@' before the host (a password may contain '@').
    let host_start = if unix { rest.find("@/").map(|i| i + 1) } else { rest.rfind('@').map(|i| i + 1) };
    let (userinfo, rest) = match host_start {
        Some(i) => (Some(&rest[..i - 1]), &rest[i..]),
        None => (None, rest),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => ((!user.is_empty()).then(|| user.to_string()), Some(pw.to_string())),
            None => return bad("a user without a password (write :PASSWORD@, or USER:PASSWORD@)"),
        },
    };
    if unix {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !path.starts_with('/') {
            return bad("a Unix socket path must be absolute");
        }
        let db = match query {
            "" => 0,
            q => match q.strip_prefix("db=").and_then(|d| d.parse::<u32>().ok()) {
                Some(db) => db,
                None => return bad("the only query a unix:// URL takes is db=NUMBER"),
            },
        };
        return Ok(RedisUrl { addr: RedisAddr::Unix(PathBuf::from(path)), username, password, db });
    }
    let (hostport, db) = match rest.split_once('/') {
        None | Some((_, "")) => (rest.trim_end_matches('/'), 0),
        Some((hp, db)) => match db.parse::<u32>() {
            Ok(db) => (hp, db),
            Err(_) => return bad(&format!("{db:?} is not a database number")),
        },
    };
    // A bracketed IPv6 literal keeps its colons: [::1]:6379.
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.starts_with('[')) => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, port),
            _ => return bad(&format!("{p:?} is not a port")),
        },
        _ => (hostport, DEFAULT_PORT),
    };
    if host.is_empty() || host.contains(['/', '?', '#', '@']) || (host.contains(':') && !host.starts_with('[')) {
        return bad("no host, or not a host name");
    }
    Ok(RedisUrl { addr: RedisAddr::Tcp(format!("{host}:{port}")), username, password, db })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to Redis: the socket (traced with `--trace-bytes`) and what has been
/// read of it and not yet parsed.
struct Link {
    io: Box<dyn Io>,
    buf: BytesMut,
}

impl Link {
    /// Connects, and authenticates and selects the database if the URL says so.
    async fn open(url: &RedisUrl, tracer: &Option<Arc<Tracer>>) -> Result<Link, String> {
        let fail = |e: std::io::Error| format!("cannot reach Redis at {}: {e}", url.addr);
        let connect = async {
            let io: Box<dyn Io> = match (&url.addr, tracer) {
                (RedisAddr::Tcp(hp), t) => {
                    let s = tokio::net::TcpStream::connect(hp).await.map_err(fail)?;
                    let _ = s.set_nodelay(true);
                    match t {
                        Some(t) => Box::new(crate::trace::Tap::resp(s, format!("Redis at {}", url.addr), t.clone())),
                        None => Box::new(s),
                    }
                }
                (RedisAddr::Unix(p), t) => {
                    let s = tokio::net::UnixStream::connect(p).await.map_err(fail)?;
                    match t {
                        Some(t) => Box::new(crate::trace::Tap::resp(s, format!("Redis at {}", url.addr), t.clone())),
                        None => Box::new(s),
                    }
                }
            };
            Ok::<_, String>(io)
        };
        let io = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("cannot reach Redis at {}: no connection within {CONNECT_TIMEOUT:?}", url.addr))??;
        let mut link = Link { io, buf: BytesMut::with_capacity(16 * 1024) };
        if let Some(pw) = &url.password {
            let mut args = vec![Bytes::from_static(b"AUTH")];
            args.extend(url.username.iter().map(|u| Bytes::from(u.clone())));
            args.push(Bytes::from(pw.clone()));
            link.expect_ok(&args, &url.addr).await?;
        }
        if url.db != 0 {
            link.expect_ok(&[Bytes::from_static(b"SELECT"), Bytes::from(url.db.to_string())], &url.addr).await?;
        }
        Ok(link)
    }

    async fn send(&mut self, args: &[Bytes]) -> Result<(), String> {
        let mut out = BytesMut::new();
        resp::encode_command(args, &mut out);
        self.io.write_all(&out).await.map_err(|e| format!("lost the connection to Redis: {e}"))
    }

    /// The next value Redis sends.
    async fn read(&mut self) -> Result<Value, String> {
        loop {
            if let Some((v, n)) = resp::parse(&self.buf, &Limits::default()).map_err(|e| e.to_string())? {
                let _ = self.buf.split_to(n);
                return Ok(v);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => return Err("Redis closed the connection".to_string()),
                Ok(_) => {}
                Err(e) => return Err(format!("lost the connection to Redis: {e}")),
            }
        }
    }

    async fn call(&mut self, args: &[Bytes]) -> Result<Value, String> {
        self.send(args).await?;
        self.read().await
    }

    async fn expect_ok(&mut self, args: &[Bytes], addr: &RedisAddr) -> Result<(), String> {
        match self.call(args).await? {
            Value::Simple(s) if s == "OK" => Ok(()),
            Value::Error(e) => {
                let cmd = String::from_utf8_lossy(&args[0]);
                Err(format!("Redis at {addr} refused {cmd}: {e}"))
            }
            other => Err(format!("Redis at {addr}: unexpected answer {}", resp::describe(&other))),
        }
    }
}

/// A command for the command connection, and where its reply goes.
struct Request {
    args: Vec<Bytes>,
    reply: oneshot::Sender<Result<Value, BrokerError>>,
}

/// What both connection tasks share.
struct Core {
    url: RedisUrl,
    /// This instance's subscribers, by channel; ids come from Redis.
    local: Hub,
    history: usize,
    pubsub_channel: String,
    /// The `wa:epoch` of the Redis last connected to.
    epoch: Mutex<Option<String>>,
    /// The last id this instance got for each channel it published to (at most
    /// `--max-channels` of them): with the local hub's heads, what it knows of the
    /// sequences, to continue them on a fresh Redis.
    published: Mutex<HashMap<String, u64>>,
    max_channels: usize,
    tracer: Option<Arc<Tracer>>,
    scripts: Scripts,
}

impl Core {
    fn remember_published(&self, channel: &str, id: u64) {
        let mut known = self.published.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains_key(channel) && known.len() >= self.max_channels {
            // Full: forget one. Only a fresh Redis needs this record, and then only to
            // continue that channel's ids; a channel forgotten here whose subscribers
            // are elsewhere is continued by their instance.
            if let Some(k) = known.keys().next().cloned() {
                known.remove(&k);
            }
        }
        let e = known.entry(channel.to_string()).or_insert(0);
        *e = (*e).max(id);
    }

    /// Every channel this instance knows a last id of: its subscribers' and its publishes'.
    fn known_heads(&self) -> HashMap<String, u64> {
        let mut known = self.published.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for head in self.local.heads() {
            let e = known.entry(head.name).or_insert(0);
            *e = (*e).max(head.last.unwrap_or(0));
        }
        known
    }
}

/// Each script's SHA-1, as `EVALSHA` names it.
struct Scripts {
    publish: String,
    since: String,
    seed: String,
}

fn sha1_hex(text: &str) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `EVALSHA sha 2 {channel}:seq {channel}:hist ARGV…`: every script works on one
/// channel's two keys.
fn evalsha(sha: &str, channel: &str, argv: impl IntoIterator<Item = Bytes>) -> Vec<Bytes> {
    let mut args = vec![
        Bytes::from_static(b"EVALSHA"),
        Bytes::from(sha.to_string()),
        Bytes::from_static(b"2"),
        seq_key(channel),
        hist_key(channel),
    ];
    args.extend(argv);
    args
}

fn seq_key(channel: &str) -> Bytes {
    Bytes::from(format!("wa:ch:{channel}:seq"))
}

fn hist_key(channel: &str) -> Bytes {
    Bytes::from(format!("wa:ch:{channel}:hist"))
}

fn unavailable(why: impl Into<String>) -> BrokerError {
    BrokerError::Unavailable(why.into())
}

/// The Redis broker of one instance.
pub struct RedisBroker {
    core: Arc<Core>,
    tx: mpsc::Sender<Request>,
    /// Dropped with the broker: tells the subscribed connection's task to end.
    _stop: watch::Sender<()>,
}

impl RedisBroker {
    /// Connects both connections; fails (naming the address) if Redis cannot be reached.
    pub async fn connect(
        url: RedisUrl,
        history: usize,
        queue: usize,
        max_channels: usize,
        tracer: Option<Arc<Tracer>>,
    ) -> Result<RedisBroker, String> {
        let core = Arc::new(Core {
            pubsub_channel: format!("wa:messages:{}", url.db),
            url,
            // No history here: the history is Redis's.
            local: Hub::fanout_only(queue, max_channels),
            history,
            epoch: Mutex::new(None),
            published: Mutex::new(HashMap::new()),
            max_channels,
            tracer,
            scripts: Scripts {
                publish: sha1_hex(PUBLISH_SCRIPT),
                since: sha1_hex(SINCE_SCRIPT),
                seed: sha1_hex(SEED_SCRIPT),
            },
        });
        let commands = open_commands(&core).await?;
        let subscribed = open_subscribed(&core).await?;
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let (stop, stopped) = watch::channel(());
        tokio::spawn(commander(core.clone(), commands, rx));
        tokio::spawn(listener(core.clone(), subscribed, tx.downgrade(), stopped));
        Ok(RedisBroker { core, tx, _stop: stop })
    }

    async fn call(&self, args: Vec<Bytes>) -> Result<Value, BrokerError> {
        call(&self.tx, args).await
    }

    pub async fn publish(&self, channel: &str, data: Bytes) -> Result<Arc<Message>, BrokerError> {
        let s = &self.core;
        let argv = [
            data.clone(),
            Bytes::from(s.history.to_string()),
            Bytes::from(s.pubsub_channel.clone()),
            Bytes::from(channel.to_string()),
        ];
        let args = evalsha(&s.scripts.publish, channel, argv);
        match self.call(args).await? {
            Value::Integer(id) if id > 0 => {
                s.remember_published(channel, id as u64);
                Ok(Arc::new(Message::new(id as u64, data)))
            }
            other => Err(unavailable(format!("Redis answered a publish with {}", resp::describe(&other)))),
        }
    }

    pub async fn since(&self, channel: &str, after: Option<u64>) -> Result<Snapshot, BrokerError> {
        since(&self.tx, &self.core, channel, after).await
    }

    /// Subscribes here first, then reads Redis: a message published in between is in
    /// both, and the subscriber's feed takes it once (by id).
    pub async fn subscribe(&self, channel: &str, after: Option<u64>) -> Result<(Snapshot, Subscription), BrokerError> {
        let (_, rx) = self.core.local.subscribe(channel, None)?;
        let snap = self.since(channel, after).await?;
        // Where this subscriber's feed goes on from: if the subscribed connection is down
        // now, it reads from there when it is back.
        self.core.local.note_cursor(channel, snap.next);
        Ok((snap, rx))
    }

    pub fn channel_count(&self) -> usize {
        self.core.local.channel_count()
    }
}

async fn call(tx: &mpsc::Sender<Request>, args: Vec<Bytes>) -> Result<Value, BrokerError> {
    let (reply, answer) = oneshot::channel();
    let gone = || unavailable("the connection to Redis has stopped");
    tx.send(Request { args, reply }).await.map_err(|_| gone())?;
    match answer.await.map_err(|_| gone())? {
        Ok(Value::Error(e)) => Err(unavailable(format!("Redis answered: {e}"))),
        other => other,
    }
}

async fn since(
    tx: &mpsc::Sender<Request>,
    core: &Core,
    channel: &str,
    after: Option<u64>,
) -> Result<Snapshot, BrokerError> {
    let args = evalsha(&core.scripts.since, channel, [Bytes::from(after.map_or(String::new(), |a| a.to_string()))]);
    let reply = call(tx, args).await?;
    let odd = || unavailable(format!("Redis answered a history read with {}", resp::describe(&reply)));
    let parts = reply.as_array().ok_or_else(odd)?;
    let last = parts.first().and_then(Value::as_int).ok_or_else(odd)?.max(0) as u64;
    let mut history = VecDeque::new();
    if let (Some(first), Some(texts)) = (parts.get(1).and_then(Value::as_int), parts.get(2).and_then(Value::as_array)) {
        if first < 1 && !texts.is_empty() {
            // A history longer than the counter: the keys were changed by hand.
            return Err(odd());
        }
        for (i, t) in texts.iter().enumerate() {
            let Value::Bulk(data) = t else { return Err(odd()) };
            history.push_back(Arc::new(Message::new(first as u64 + i as u64, data.clone())));
        }
    }
    Ok(snapshot_of(last, &history, after))
}

/// The command connection, ready: scripts loaded, and this Redis's epoch checked.
async fn open_commands(core: &Core) -> Result<Link, String> {
    let mut link = Link::open(&core.url, &core.tracer).await?;
    let addr = &core.url.addr;
    for (script, sha) in [
        (PUBLISH_SCRIPT, &core.scripts.publish),
        (SINCE_SCRIPT, &core.scripts.since),
        (SEED_SCRIPT, &core.scripts.seed),
    ] {
        let args = [Bytes::from_static(b"SCRIPT"), Bytes::from_static(b"LOAD"), Bytes::from_static(script.as_bytes())];
        match link.call(&args).await? {
            Value::Bulk(got) if got[..] == *sha.as_bytes() => {}
            other => return Err(format!("Redis at {addr} did not load a script: {}", resp::describe(&other))),
        }
    }
    // Whoever comes first names this Redis's data; everyone after reads that name.
    let mine = crate::random::hex(8);
    let set = [
        Bytes::from_static(b"SET"),
        Bytes::from_static(EPOCH_KEY.as_bytes()),
        Bytes::from(mine),
        Bytes::from_static(b"NX"),
    ];
    link.send(&set).await?;
    link.send(&[Bytes::from_static(b"GET"), Bytes::from_static(EPOCH_KEY.as_bytes())]).await?;
    let _ = link.read().await?;
    let epoch = match link.read().await? {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => return Err(format!("Redis at {addr}: unexpected epoch {}", resp::describe(&other))),
    };
    let before = core.epoch.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(before) = before.filter(|b| *b != epoch) {
        eprintln!(
            "wire-academy: Redis at {addr} came back without its data (epoch {before} is now {epoch}): \
             ids go on past the last ones handed out here, and subscribers resume by cursor, told `truncated`"
        );
        for (channel, last) in core.known_heads() {
            if last > 0 {
                let args = evalsha(&core.scripts.seed, &channel, [Bytes::from(last.to_string())]);
                if let Value::Error(e) = link.call(&args).await? {
                    return Err(format!("Redis at {addr} refused to continue channel {channel}'s ids: {e}"));
                }
            }
            core.local.reset(&channel);
        }
    }
    // Taken as this Redis's only once every sequence is continued: a connection lost
    // halfway through sees the new epoch as new again, and finishes the job.
    *core.epoch.lock().unwrap_or_else(|e| e.into_inner()) = Some(epoch);
    Ok(link)
}

/// The subscribed connection, subscribed.
async fn open_subscribed(core: &Core) -> Result<Link, String> {
    let mut link = Link::open(&core.url, &core.tracer).await?;
    let ch = Bytes::from(core.pubsub_channel.clone());
    match link.call(&[Bytes::from_static(b"SUBSCRIBE"), ch]).await? {
        Value::Array(v) if v.first().and_then(Value::as_bytes) == Some(b"subscribe") => Ok(link),
        other => Err(format!("Redis at {} refused SUBSCRIBE: {}", core.url.addr, resp::describe(&other))),
    }
}

/// Waits out a backoff delay, answering every command that arrives meanwhile with
/// `503` and `why`. `false` when the broker is gone.
async fn wait_answering(rx: &mut mpsc::Receiver<Request>, delay: Duration, why: &str) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            req = rx.recv() => match req {
                Some(req) => { let _ = req.reply.send(Err(unavailable(why))); }
                None => return false,
            },
        }
    }
}

/// The command connection's task: pipelines every command, and reconnects.
async fn commander(core: Arc<Core>, first: Link, mut rx: mpsc::Receiver<Request>) {
    let mut link = Some(first);
    let mut backoff = Backoff::default();
    loop {
        let mut l = match link.take() {
            Some(l) => l,
            None => loop {
                match open_commands(&core).await {
                    Ok(l) => {
                        eprintln!("wire-academy: reconnected to Redis at {} (commands)", core.url.addr);
                        backoff.reset();
                        break l;
                    }
                    Err(e) => {
                        let delay = backoff.delay();
                        eprintln!("wire-academy: {e}; retrying in {delay:?}");
                        if !wait_answering(&mut rx, delay, &format!("Redis is unreachable: {e}")).await {
                            return;
                        }
                    }
                }
            },
        };
        match pipeline(&mut l, &mut rx).await {
            Ok(()) => return,
            Err(e) => eprintln!("wire-academy: {e} (Redis at {}, commands); reconnecting", core.url.addr),
        }
    }
}

/// Writes commands as they come (a burst in one write) and hands each reply to its
/// command, in order. `Ok` when the broker is gone; `Err` when the connection is.
async fn pipeline(link: &mut Link, rx: &mut mpsc::Receiver<Request>) -> Result<(), String> {
    let mut waiting: VecDeque<oneshot::Sender<Result<Value, BrokerError>>> = VecDeque::new();
    let mut out = BytesMut::new();
    let result = loop {
        tokio::select! {
            req = rx.recv() => {
                let Some(req) = req else { return Ok(()) };
                resp::encode_command(&req.args, &mut out);
                waiting.push_back(req.reply);
                for _ in 1..PIPELINE_BATCH {
                    let Ok(req) = rx.try_recv() else { break };
                    resp::encode_command(&req.args, &mut out);
                    waiting.push_back(req.reply);
                }
                if let Err(e) = link.io.write_all(&out).await {
                    break format!("lost the connection: {e}");
                }
                out.clear();
            }
            r = link.io.read_buf(&mut link.buf) => {
                match r {
                    Ok(0) => break "Redis closed the connection".to_string(),
                    Err(e) => break format!("lost the connection: {e}"),
                    Ok(_) => {}
                }
                if let Err(e) = hand_out_replies(&mut link.buf, &mut waiting) {
                    break e;
                }
            }
        }
    };
    // Commands whose replies will never come: their outcome is unknown, so the client
    // is told the truth (503), and may publish again.
    for reply in waiting {
        let _ = reply.send(Err(unavailable(format!("{result} before Redis answered"))));
    }
    Err(result)
}

/// Hands each complete reply in `buf` to the command waiting longest (Redis answers in
/// order); `Err` when the bytes are not RESP or answer nothing that was asked.
fn hand_out_replies(
    buf: &mut BytesMut,
    waiting: &mut VecDeque<oneshot::Sender<Result<Value, BrokerError>>>,
) -> Result<(), String> {
    while let Some((v, n)) = resp::parse(buf, &Limits::default()).map_err(|e| e.to_string())? {
        let _ = buf.split_to(n);
        let reply = waiting.pop_front().ok_or_else(|| format!("a reply nobody asked for: {}", resp::describe(&v)))?;
        let _ = reply.send(Ok(v));
    }
    Ok(())
}

/// The subscribed connection's task: hands each message to this instance's
/// subscribers; after a reconnection, first what they missed meanwhile.
async fn listener(core: Arc<Core>, first: Link, tx: mpsc::WeakSender<Request>, mut stop: watch::Receiver<()>) {
    let mut link = Some(first);
    let mut backoff = Backoff::default();
    let mut again = false;
    loop {
        let mut l = match link.take() {
            Some(l) => l,
            None => {
                let delay = backoff.delay();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                match open_subscribed(&core).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("wire-academy: {e} (subscriber); retrying with backoff");
                        continue;
                    }
                }
            }
        };
        let Some(tx) = tx.upgrade() else { return };
        // Everything published since the last id handed out here, before anything new.
        if let Err(e) = catch_up_all(&core, &tx).await {
            eprintln!("wire-academy: cannot read the history from Redis at {}: {e}; retrying", core.url.addr);
            continue;
        }
        if again {
            eprintln!("wire-academy: subscribed again to {} on Redis at {}", core.pubsub_channel, core.url.addr);
        }
        again = true;
        backoff.reset();
        let lost = loop {
            tokio::select! {
                v = l.read() => match v {
                    Ok(v) => {
                        if let Err(e) = on_message(&core, &tx, v).await {
                            break e;
                        }
                    }
                    Err(e) => break e,
                },
                _ = stop.changed() => return,
            }
        };
        drop(tx);
        eprintln!("wire-academy: {lost} (Redis at {}, subscriber); reconnecting", core.url.addr);
    }
}

async fn catch_up_all(core: &Core, tx: &mpsc::Sender<Request>) -> Result<(), BrokerError> {
    for head in core.local.heads() {
        catch_up(core, tx, &head).await?;
    }
    Ok(())
}

/// Hands out what followed `head` on its channel; if the history no longer has it, ends
/// the channel's subscriptions here, so that each client resumes by cursor and is told.
/// (Only that channel's: one made again meanwhile by a client resuming is not touched.)
async fn catch_up(core: &Core, tx: &mpsc::Sender<Request>, head: &Head) -> Result<(), BrokerError> {
    let Some(last) = head.last else { return Ok(()) };
    let snap = since(tx, core, &head.name, Some(last)).await?;
    if snap.truncated {
        core.local.reset_if_same(head);
    } else {
        for m in snap.messages {
            core.local.deliver(&head.name, m.id, m.data.clone());
        }
    }
    Ok(())
}

/// One pub/sub message: `["message", channel, "{name} {id} {text}"]`.
async fn on_message(core: &Core, tx: &mpsc::Sender<Request>, v: Value) -> Result<(), String> {
    let Some([kind, _, Value::Bulk(payload)]) = v.as_array() else { return Ok(()) };
    if kind.as_bytes() != Some(b"message") {
        return Ok(());
    }
    let odd = || format!("a message on {} that is not `channel id text`", core.pubsub_channel);
    let mut parts = payload.splitn(3, |&b| b == b' ');
    let (Some(name), Some(id_raw), Some(_)) = (parts.next(), parts.next(), parts.next()) else { return Err(odd()) };
    let id: Option<u64> = std::str::from_utf8(id_raw).ok().and_then(|i| i.parse().ok());
    let (Ok(name), Some(id)) = (std::str::from_utf8(name), id) else { return Err(odd()) };
    let text = payload.slice(name.len() + id_raw.len() + 2..);
    // A message past a hole (one this instance never received): the hole first.
    if let Some(head) = core.local.head(name)
        && head.last.is_some_and(|last| id > last + 1)
    {
        catch_up(core, tx, &head).await.map_err(|e| e.to_string())?;
    }
    core.local.deliver(name, id, text);
    Ok(())
}

/// Which of the broker's scripts `sha` names, for the trace.
pub fn script_name(sha: &[u8]) -> Option<&'static str> {
    [(PUBLISH_SCRIPT, "the publish script"), (SINCE_SCRIPT, "the history read"), (SEED_SCRIPT, "the seed script")]
        .into_iter()
        .find(|(script, _)| sha1_hex(script).as_bytes() == sha)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(hp: &str, pw: Option<&str>, db: u32) -> RedisUrl {
        RedisUrl { addr: RedisAddr::Tcp(hp.into()), username: None, password: pw.map(String::from), db }
    }

    #[test]
    fn url_forms() {
        assert_eq!(parse_url("redis://127.0.0.1:6379").unwrap(), tcp("127.0.0.1:6379", None, 0));
        assert_eq!(parse_url("redis://localhost").unwrap(), tcp("localhost:6379", None, 0));
        assert_eq!(parse_url("redis://127.0.0.1:7000/3").unwrap(), tcp("127.0.0.1:7000", None, 3));
        assert_eq!(parse_url("redis://h:1/").unwrap(), tcp("h:1", None, 0));
        assert_eq!(parse_url("redis://:s3cr@t@127.0.0.1:6380").unwrap(), tcp("127.0.0.1:6380", Some("s3cr@t"), 0));
        assert_eq!(parse_url("redis://[::1]:6379/2").unwrap(), tcp("[::1]:6379", None, 2));
        let u = parse_url("redis://app:pw@h").unwrap();
        assert_eq!((u.username.as_deref(), u.password.as_deref()), (Some("app"), Some("pw")));
        let u = parse_url("unix:///run/redis/redis.sock?db=2").unwrap();
        assert_eq!((u.addr, u.db), (RedisAddr::Unix("/run/redis/redis.sock".into()), 2));
        let u = parse_url("unix://:pw@/tmp/r.sock").unwrap();
        assert_eq!((u.addr, u.password.as_deref()), (RedisAddr::Unix("/tmp/r.sock".into()), Some("pw")));
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("redis://", "no host"),
            ("redis://h:0", "not a port"),
            ("redis://h:99999", "not a port"),
            ("redis://h:6379/x", "not a database number"),
            ("redis://user@h", "a user without a password"),
            ("redis://::1", "not a host name"),
            ("unix://relative.sock", "must be absolute"),
            ("unix:///s.sock?db=x", "db=NUMBER"),
            ("http://h", "not a Redis URL"),
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(e.contains(why) && e.contains(url) && e.contains("expected redis://"), "{url}: {e}");
        }
    }

    #[test]
    fn pipelined_replies_go_to_their_commands_in_order() {
        let (a, mut ra) = oneshot::channel();
        let (b, mut rb) = oneshot::channel();
        let mut waiting = VecDeque::from([a, b]);
        let mut buf = BytesMut::from(&b":7\r\n$2\r\nh"[..]);
        hand_out_replies(&mut buf, &mut waiting).unwrap();
        assert_eq!(ra.try_recv().unwrap().unwrap(), Value::Integer(7));
        assert!(rb.try_recv().is_err(), "its reply is not whole yet");
        buf.extend_from_slice(b"i\r\n+OK\r\n");
        let e = hand_out_replies(&mut buf, &mut waiting).unwrap_err();
        assert_eq!(rb.try_recv().unwrap().unwrap(), Value::Bulk(Bytes::from("hi")));
        assert!(e.contains("nobody asked for"), "{e}");
        let mut buf = BytesMut::from(&b"!x\r\n"[..]);
        assert!(hand_out_replies(&mut buf, &mut VecDeque::new()).unwrap_err().contains("unknown type"));
    }

    #[test]
    fn script_names_are_their_sha1() {
        // What Redis answers SCRIPT LOAD with, and what EVALSHA then names.
        assert_eq!(sha1_hex("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
