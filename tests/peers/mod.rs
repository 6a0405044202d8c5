//! Servers this project did not write, serving API.md's endpoints, so the clients can be
//! checked against independent implementations: axum for HTTP (publish, poll, long-poll,
//! SSE) and tokio-tungstenite for `/ws/{channel}`. Their channel model is written here
//! from API.md alone, sharing no code with the server under `src/`.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast;

#[derive(Clone, Default)]
struct Channels(Arc<Mutex<HashMap<String, Channel>>>);

struct Channel {
    last: u64,
    history: VecDeque<(u64, String)>,
    tx: broadcast::Sender<(u64, String)>,
}

const HISTORY: usize = 100;

/// What a cursor finds: truncated?, the messages after it, the next cursor, and a
/// receiver for what follows.
type Since = (bool, Vec<(u64, String)>, u64, broadcast::Receiver<(u64, String)>);

impl Channels {
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Channel) -> T) -> T {
        let mut map = self.0.lock().unwrap();
        let ch = map.entry(name.to_string()).or_insert_with(|| Channel {
            last: 0,
            history: VecDeque::new(),
            tx: broadcast::channel(1024).0,
        });
        f(ch)
    }

    fn since(&self, name: &str, after: Option<u64>) -> Since {
        self.with(name, |c| {
            let rx = c.tx.subscribe();
            let Some(after) = after else { return (false, vec![], c.last, rx) };
            let msgs: Vec<_> = c.history.iter().filter(|(id, _)| *id > after).cloned().collect();
            let oldest = c.history.front().map_or(c.last + 1, |m| m.0);
            let next = msgs.last().map_or(after, |m| m.0);
            (oldest > after + 1, msgs, next, rx)
        })
    }
}

fn answer(truncated: bool, msgs: &[(u64, String)], next: u64) -> Response {
    let messages: Vec<_> = msgs.iter().map(|(id, data)| serde_json::json!({"id": id, "data": data})).collect();
    let mut body = serde_json::json!({"messages": messages, "next": next});
    if truncated {
        body["truncated"] = true.into();
    }
    ([("content-type", "application/json")], body.to_string()).into_response()
}

fn cursor(q: &HashMap<String, String>) -> Option<u64> {
    q.get("after").and_then(|a| a.parse().ok())
}

fn publish_to(ch: &Channels, name: &str, body: String) -> u64 {
    ch.with(name, |c| {
        c.last += 1;
        let m = (c.last, body);
        c.history.push_back(m.clone());
        if c.history.len() > HISTORY {
            c.history.pop_front();
        }
        let _ = c.tx.send(m);
        c.last
    })
}

async fn publish(State(ch): State<Channels>, Path(name): Path<String>, body: String) -> Response {
    let id = publish_to(&ch, &name, body);
    ([("content-type", "application/json")], serde_json::json!({"id": id}).to_string()).into_response()
}

async fn poll(
    State(ch): State<Channels>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (t, msgs, next, _) = ch.since(&name, cursor(&q));
    answer(t, &msgs, next)
}

async fn long_poll(
    State(ch): State<Channels>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (t, msgs, next, mut rx) = ch.since(&name, cursor(&q));
    if t || !msgs.is_empty() {
        return answer(t, &msgs, next);
    }
    let hold = q.get("timeout").and_then(|s| s.parse::<f64>().ok()).unwrap_or(30.0).min(120.0);
    match tokio::time::timeout(Duration::from_secs_f64(hold), rx.recv()).await {
        Ok(_) => {
            let (t, msgs, next, _) = ch.since(&name, Some(next));
            answer(t, &msgs, next)
        }
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn sse(
    State(ch): State<Channels>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let after = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.parse().ok()).or(cursor(&q));
    let (t, msgs, _, rx) = ch.since(&name, after);
    let mut first: Vec<Event> = vec![Event::default().retry(Duration::from_millis(1000)).comment("hello")];
    if t {
        first.push(Event::default().event("truncated").data("{\"truncated\":true}"));
    }
    first.extend(msgs.into_iter().map(|(id, data)| Event::default().id(id.to_string()).data(data)));
    let replay = stream::iter(first.into_iter().map(Ok));
    let live = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((id, data)) => return Some((Ok(Event::default().id(id.to_string()).data(data)), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    Sse::new(replay.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(1)))
}

/// Starts the axum peer on an ephemeral loopback port.
pub async fn axum_peer() -> SocketAddr {
    axum_peer_on(Channels::default()).await
}

/// Both peers over one channel model: (axum's address, tokio-tungstenite's address).
/// A message published over either reaches subscribers of both.
pub async fn peers() -> (SocketAddr, SocketAddr) {
    let channels = Channels::default();
    (axum_peer_on(channels.clone()).await, tungstenite_peer_on(channels).await)
}

/// tokio-tungstenite serving `GET /ws/{channel}?after=ID`: each message as a text frame
/// `{"id":N,"data":"…"}` (a `{"truncated":true}` first when history does not cover the
/// cursor), and each text frame the client sends published to the channel.
async fn tungstenite_peer_on(channels: Channels) -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let channels = channels.clone();
            tokio::spawn(async move {
                let mut target = String::new();
                // The callback's signature (and its large error type) is tokio-tungstenite's.
                #[allow(clippy::result_large_err)]
                let callback = |req: &Request, resp: WsResponse| {
                    target = req.uri().to_string();
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let Some(name) = path.strip_prefix("/ws/").map(String::from) else { return };
                let after = query.split('&').find_map(|kv| kv.strip_prefix("after=")?.parse().ok());
                let (truncated, msgs, _, mut rx) = channels.since(&name, after);
                if truncated && ws.send(WsMessage::text("{\"truncated\":true}")).await.is_err() {
                    return;
                }
                for (id, data) in msgs {
                    let frame = serde_json::json!({"id": id, "data": data}).to_string();
                    if ws.send(WsMessage::text(frame)).await.is_err() {
                        return;
                    }
                }
                loop {
                    tokio::select! {
                        got = rx.recv() => {
                            let Ok((id, data)) = got else { return };
                            let frame = serde_json::json!({"id": id, "data": data}).to_string();
                            if ws.send(WsMessage::text(frame)).await.is_err() {
                                return;
                            }
                        }
                        incoming = ws.next() => match incoming {
                            Some(Ok(WsMessage::Text(text))) => {
                                publish_to(&channels, &name, text.to_string());
                            }
                            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                            Some(Ok(_)) => {} // pings are answered by tungstenite itself
                        },
                    }
                }
            });
        }
    });
    addr
}

async fn axum_peer_on(channels: Channels) -> SocketAddr {
    let app = Router::new()
        .route("/publish/{ch}", post(publish))
        .route("/poll/{ch}", get(poll))
        .route("/long-poll/{ch}", get(long_poll))
        .route("/sse/{ch}", get(sse))
        .with_state(channels);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
