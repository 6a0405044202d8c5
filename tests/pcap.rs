//! `--trace-pcap`: captures of real sessions, opened with tshark (a dissector we did not
//! write). tshark must find nothing malformed and no expert error or warning (with IP and
//! TCP checksum checking on), list every HTTP request, dissect every WebSocket frame with
//! its opcode and unmasked text, and reassemble each TCP stream to exactly the bytes the
//! `--trace-bytes` trace shows for that connection.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Client, config, get, publish, start, wait_held, wait_until};
use wire_academy::app::stats::Transport;
use wire_academy::config::{Config, PcapTarget, TraceTarget};
use wire_academy::trace::hexread;

const TSHARK_INSTALL: &str = "apt-get install -y tshark (bash scripts/test.sh installs it)";

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wire-academy-pcap-{}-{name}", std::process::id()))
}

/// `tshark -r FILE ARGS…` with checksum checking on, and every TCP port decoded as HTTP:
/// its stdout; a failure names stderr.
///
/// The servers here listen on ephemeral ports. tshark spots HTTP on an unknown port by a
/// heuristic, but a port registered to another protocol wins over it (docs/pcap.md's test
/// once met one), and the TCP dissector tries the lower of the two ports first, which may
/// be the client's. Every connection in these captures is HTTP (or a WebSocket upgraded
/// from it), so all ports are named (`-d`, Wireshark's Decode As, takes a range).
fn tshark(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["-d", "tcp.port==1-65535,http"];
    all.extend(args);
    run_tshark(file, &all)
}

/// `tshark -r FILE ARGS…` with checksum checking on, as told.
fn run_tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"])
        .args(args)
        .output()
        .expect("tshark runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark {args:?} failed: {stderr}");
    // tshark says so on stderr, yet exits 0, when a file ends in the middle of a packet.
    assert!(!stderr.contains("cut short") && !stderr.contains("appears to be damaged"), "{stderr}");
    String::from_utf8(out.stdout).expect("tshark prints UTF-8")
}

/// tshark finds nothing malformed, and no expert information of warning or error
/// severity (bad checksums, unseen or lost segments, out-of-window data…).
fn assert_clean(file: &Path) {
    let malformed = tshark(file, &["-Y", "_ws.malformed || _ws.expert.severity >= \"Warning\""]);
    assert!(malformed.trim().is_empty(), "malformed or flagged packets:\n{malformed}");
    let expert = tshark(file, &["-q", "-z", "expert"]);
    for section in ["Errors (", "Warnings ("] {
        assert!(!expert.contains(section), "tshark's expert information has {section}…:\n{expert}");
    }
    assert!(expert.contains("Connection establish request (SYN)"), "the expert summary is read: {expert}");
}

/// `tshark -T fields` rows, each a list of fields (`|` between a field's occurrences).
fn fields(file: &Path, filter: &str, names: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-Y", filter, "-T", "fields", "-E", "separator=\t", "-E", "aggregator=|"];
    for n in names {
        args.extend(["-e", n]);
    }
    tshark(file, &args).lines().map(|l| l.split('\t').map(String::from).collect()).collect()
}

/// Each HTTP request tshark sees: `METHOD URI`.
fn http_requests(file: &Path) -> Vec<String> {
    fields(file, "http.request", &["http.request.method", "http.request.uri"]).iter().map(|r| r.join(" ")).collect()
}

/// A WebSocket frame as tshark dissected it.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Frame {
    /// Sent by the end that connected (the client).
    from_client: bool,
    opcode: u8,
    masked: bool,
    /// The unmasked payload, as text (text frames).
    text: String,
}

/// Every WebSocket frame in the capture, in order. `server_port` tells the directions apart.
fn ws_frames(file: &Path, server_port: u16) -> Vec<Frame> {
    let mut frames = Vec::new();
    for row in
        fields(file, "websocket", &["tcp.dstport", "websocket.opcode", "websocket.mask", "websocket.payload.text"])
    {
        let from_client = row[0] == server_port.to_string();
        let opcodes: Vec<&str> = row[1].split('|').collect();
        let masks: Vec<&str> = row[2].split('|').collect();
        let mut texts = row.get(3).map(|t| t.split('|').collect::<Vec<_>>()).unwrap_or_default().into_iter();
        for (op, mask) in opcodes.iter().zip(&masks) {
            let opcode: u8 = op.parse().unwrap_or_else(|_| panic!("opcode {op:?} in {row:?}"));
            let text = if opcode == 1 { texts.next().unwrap_or_default().to_string() } else { String::new() };
            frames.push(Frame { from_client, opcode, masked: *mask == "1" || *mask == "True", text });
        }
    }
    frames
}

/// What each TCP stream carried, as tshark reassembles it: client port -> (bytes from the
/// client, bytes from the server).
fn followed(file: &Path) -> BTreeMap<u16, (Vec<u8>, Vec<u8>)> {
    let streams: std::collections::BTreeSet<String> =
        tshark(file, &["-T", "fields", "-e", "tcp.stream"]).lines().map(String::from).collect();
    let mut args: Vec<String> = vec!["-q".into()];
    for s in &streams {
        args.extend(["-z".into(), format!("follow,tcp,raw,{s}")]);
    }
    let text = tshark(file, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut out = BTreeMap::new();
    for section in text.split("===================================================================\n") {
        let Some(node0) = section.lines().find_map(|l| l.strip_prefix("Node 0: ")) else { continue };
        let port: u16 = node0.rsplit(':').next().unwrap().parse().unwrap();
        let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
        for line in section.lines().skip_while(|l| !l.starts_with("Node 1: ")).skip(1) {
            match line.strip_prefix('\t') {
                Some(hex) => from_server.extend(hex_bytes(hex)),
                None => from_client.extend(hex_bytes(line)),
            }
        }
        assert!(out.insert(port, (from_client, from_server)).is_none(), "one stream per client port");
    }
    assert_eq!(out.len(), streams.len(), "every stream followed:\n{text}");
    out
}

/// What the `--trace-bytes` trace of a server shows each connection carried: client port ->
/// (bytes read, bytes written).
fn traced(trace: &str) -> BTreeMap<u16, (Vec<u8>, Vec<u8>)> {
    let mut port_of = BTreeMap::new();
    let mut out: BTreeMap<u16, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for block in trace.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let head = block.lines().next().unwrap();
        let (id, rest) = head.strip_prefix('#').and_then(|h| h.split_once(' ')).expect("a block names its connection");
        if let Some(peer) = rest.strip_prefix("connection with ").and_then(|r| r.strip_suffix(" opened")) {
            port_of.insert(id.to_string(), peer.rsplit(':').next().unwrap().parse::<u16>().unwrap());
            continue;
        }
        let read = rest.starts_with("read ");
        if !read && !rest.starts_with("wrote ") {
            continue;
        }
        let rows: String =
            block.lines().skip(1).filter(|l| l.as_bytes().get(8) == Some(&b':')).collect::<Vec<_>>().join("\n");
        let bytes = hex_bytes(&rows);
        let entry = out.entry(port_of[id]).or_default();
        if read { entry.0.extend(bytes) } else { entry.1.extend(bytes) }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_served_session_opens_in_tshark_as_it_crossed_the_wire() {
    if !common::require_tool("tshark", TSHARK_INSTALL) {
        return;
    }
    let (pcap, trace) = (temp("session.pcap"), temp("session.trace"));
    let s = start(Config {
        trace: TraceTarget::File(trace.clone()),
        pcap: Some(PcapTarget { path: pcap.clone(), limit: 10 << 20 }),
        ..config()
    })
    .await;

    // HTTP: a short poll, and publishing.
    let r = Client::connect(s.addr).await.request(get("/poll/lobby?after=0")).await;
    assert_eq!(r.status, 200);
    // SSE: a stream open while two messages are published.
    let mut sse = Client::connect(s.addr).await;
    sse.send(get("/sse/news?after=0")).await;
    assert_eq!(sse.head().await.status, 200);
    wait_held(&s, Transport::Sse, 1).await;
    publish(s.addr, "news", "first event").await;
    publish(s.addr, "news", "second event").await;
    sse.raw_until(b"data: second event\n\n").await;
    drop(sse);
    wait_held(&s, Transport::Sse, 0).await;
    // WebSocket: a message published before, two sent by the client, all three received.
    publish(s.addr, "chat", "from http").await;
    let args =
        ["--channel", "chat", "--after", "0", "--count", "3", "--send", "hello from the client", "--send", "second"];
    websocket_client(s.addr, &args, &[]).await;
    let port = s.addr.port();
    s.stop().await; // waits for every connection, then writes the capture out

    assert_clean(&pcap);
    let requests = http_requests(&pcap);
    let expected = [
        "GET /poll/lobby?after=0",
        "GET /sse/news?after=0",
        "POST /publish/news",
        "POST /publish/news",
        "POST /publish/chat",
        "GET /ws/chat?after=0",
    ];
    assert_eq!(requests, expected, "every HTTP request, in order");

    let frames = ws_frames(&pcap, port);
    let text = |from_client, text: &str| Frame { from_client, opcode: 1, masked: from_client, text: text.into() };
    let from = |client: bool| -> Vec<Frame> { frames.iter().filter(|f| f.from_client == client).cloned().collect() };
    let close = |from_client| Frame { from_client, opcode: 8, masked: from_client, text: String::new() };
    assert_eq!(
        from(true),
        [text(true, "hello from the client"), text(true, "second"), close(true)],
        "the client's frames, masked, shown unmasked"
    );
    assert_eq!(
        from(false),
        [
            text(false, r#"{"id":1,"data":"from http"}"#),
            text(false, r#"{"id":2,"data":"hello from the client"}"#),
            text(false, r#"{"id":3,"data":"second"}"#),
            close(false),
        ],
        "the server's frames, unmasked"
    );

    // Each TCP stream, reassembled, is what the trace says crossed that connection.
    let followed = followed(&pcap);
    let traced = traced(&std::fs::read_to_string(&trace).unwrap());
    assert_eq!(followed.len(), 6, "6 connections: the poll, the stream, 3 publishes, the WebSocket");
    assert_eq!(followed.keys().collect::<Vec<_>>(), traced.keys().collect::<Vec<_>>(), "the same connections");
    for (port, bytes) in &followed {
        let t = &traced[port];
        assert!(!bytes.0.is_empty() && !bytes.1.is_empty());
        assert!(
            bytes == t,
            "connection from port {port}: tshark reassembled\n{:?}\n{:?}\nthe trace shows\n{:?}\n{:?}",
            String::from_utf8_lossy(&bytes.0),
            String::from_utf8_lossy(&bytes.1),
            String::from_utf8_lossy(&t.0),
            String::from_utf8_lossy(&t.1)
        );
    }
    // The SSE stream is in it, event by event.
    let sse_bytes = followed.values().find(|(c, _)| c.starts_with(b"GET /sse/")).unwrap();
    let sse_text = String::from_utf8_lossy(&sse_bytes.1);
    assert!(sse_text.contains("text/event-stream") && sse_text.contains("data: first event\n"), "{sse_text}");
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&trace);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_capture_dissects_cleanly() {
    if !common::require_tool("tshark", TSHARK_INSTALL) {
        return;
    }
    let pcap = temp("client.pcap");
    let s = start(config()).await;
    publish(s.addr, "talk", "waiting").await;
    // The variable sets the flag.
    let env = [("WIRE_ACADEMY_TRACE_PCAP".to_string(), pcap.display().to_string())];
    websocket_client(s.addr, &["--channel", "talk", "--after", "0", "--count", "2", "--send", "hi"], &env).await;
    s.stop().await;
    assert_clean(&pcap);
    assert_eq!(http_requests(&pcap), ["GET /ws/talk?after=0"]);
    let frames = ws_frames(&pcap, server_port(&pcap));
    // Each direction in order (the client may send before the first message arrives).
    let texts = |from_client: bool| -> Vec<(bool, &str)> {
        frames
            .iter()
            .filter(|f| f.opcode == 1 && f.from_client == from_client)
            .map(|f| (f.masked, f.text.as_str()))
            .collect()
    };
    assert_eq!(texts(true), [(true, "hi")], "{frames:?}");
    assert_eq!(
        texts(false),
        [(false, r#"{"id":1,"data":"waiting"}"#), (false, r#"{"id":2,"data":"hi"}"#)],
        "{frames:?}"
    );
    // The client's Close ends what it reads: it leaves without reading the server's answer
    // (which the server's own capture shows), so its capture holds one Close.
    let closes: Vec<(bool, bool)> =
        frames.iter().filter(|f| f.opcode == 8).map(|f| (f.from_client, f.masked)).collect();
    assert_eq!(closes, [(true, true)], "{frames:?}");
    let _ = std::fs::remove_file(&pcap);
}

/// A server on a port registered to another protocol (3306, MySQL's) is still read as HTTP
/// and WebSocket: without the Decode As that `tshark()` adds, tshark shows bare TCP, no HTTP
/// request at all (what broke docs/pcap.md's check in CI on a port its test drew).
#[tokio::test(flavor = "multi_thread")]
async fn a_server_on_another_protocols_port_is_still_read_as_http() {
    if !common::require_tool("tshark", TSHARK_INSTALL) {
        return;
    }
    // 3306 on a loopback address of its own, so that a MySQL on this machine is no obstacle.
    let mut s = None;
    for host in 7..=30u8 {
        let addr = format!("127.0.0.{host}:3306").parse().unwrap();
        if let Ok(r) = wire_academy::net::Running::start(Config { addr, ..config() }).await {
            s = Some(r);
            break;
        }
    }
    let s = s.expect("port 3306 free on one of 127.0.0.7 to 127.0.0.30");
    let pcap = temp("port3306.pcap");
    let capture = pcap.display().to_string();
    websocket_client(s.addr, &["--channel", "db", "--count", "1", "--send", "not SQL", "--trace-pcap", &capture], &[])
        .await;
    s.stop().await;
    let guessed = run_tshark(&pcap, &["-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]);
    assert!(
        guessed.trim().is_empty(),
        "tshark guessed HTTP on 3306 after all: the test would prove nothing:\n{guessed}"
    );
    assert_clean(&pcap);
    assert_eq!(http_requests(&pcap).len(), 2, "the live head, then the upgrade");
    let texts: Vec<String> = ws_frames(&pcap, 3306).into_iter().filter(|f| f.opcode == 1).map(|f| f.text).collect();
    assert_eq!(texts, ["not SQL", r#"{"id":1,"data":"not SQL"}"#]);
    let _ = std::fs::remove_file(&pcap);
}

/// Runs `wire-academy client --protocol websocket ARGS` against `addr` (ENV set), off the
/// runtime's threads; it must succeed.
async fn websocket_client(addr: std::net::SocketAddr, args: &[&str], env: &[(String, String)]) {
    let url = format!("http://{addr}");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env = env.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["client", "--protocol", "websocket", "--timeout", "10", "--url", &url])
            .args(&args)
            .envs(env)
            .stderr(Stdio::inherit())
            .output()
            .expect("the client runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the client failed: {}", String::from_utf8_lossy(&out.stdout));
}

/// The server's port in a client's capture: where the first SYN went.
fn server_port(pcap: &Path) -> u16 {
    fields(pcap, "tcp.flags.syn == 1 && tcp.flags.ack == 0", &["tcp.dstport"])[0][0].parse().unwrap()
}

/// A program of ours run by a test, killed when dropped: a failing test leaves none behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxys_capture_shows_both_of_its_connections() {
    if !common::require_tool("tshark", TSHARK_INSTALL) {
        return;
    }
    use std::io::BufRead;
    let pcap = temp("proxy.pcap");
    let s = start(config()).await;
    let mut proxy = Killed(
        Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &s.addr.to_string(), "--trace-pcap"])
            .arg(&pcap)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the proxy starts"),
    );
    let mut line = String::new();
    std::io::BufReader::new(proxy.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the proxy's first line: {line:?}"));
    let mut c = Client::connect(addr).await;
    let r = c.request("GET /poll/lobby?after=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 200);
    c.expect_closed().await;
    // Both connections (client-proxy, proxy-server) closed, each end's FIN written out.
    wait_until("four FINs in the capture", || {
        let pcap = pcap.clone();
        async move {
            let fins = tokio::task::spawn_blocking(move || fields(&pcap, "tcp.flags.fin == 1", &["tcp.stream"]).len());
            fins.await.unwrap() == 4
        }
    })
    .await;
    drop(proxy);
    s.stop().await;
    assert_clean(&pcap);
    assert_eq!(
        http_requests(&pcap),
        ["GET /poll/lobby?after=0", "GET /poll/lobby?after=0"],
        "once to the proxy, once on"
    );
    let streams = followed(&pcap);
    assert_eq!(streams.len(), 2);
    let ((a_req, a_resp), (b_req, b_resp)) = (&streams.values().next().unwrap(), &streams.values().nth(1).unwrap());
    assert_eq!((a_req, a_resp), (b_req, b_resp), "the proxy forwards the same bytes both ways");
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn the_capture_stops_at_its_limit_on_a_whole_packet() {
    if !common::require_tool("tshark", TSHARK_INSTALL) || !common::require_tool("curl", "apt-get install -y curl") {
        return;
    }
    use std::io::BufRead;
    const LIMIT: u64 = 3000;
    let (pcap, stderr) = (temp("limit.pcap"), temp("limit.stderr"));
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["serve", "--addr", "127.0.0.1:0", "--trace-pcap"])
            .arg(&pcap)
            .env("WIRE_ACADEMY_TRACE_PCAP_LIMIT", LIMIT.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the server starts"),
    );
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(server.0.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("wire-academy listening on http://").expect("the address").to_string();
    // Each poll is about 480 bytes of capture: ten are more than the limit allows, and
    // every one is still answered.
    for _ in 0..10 {
        let out = Command::new("curl").args(["-sf", &format!("http://{addr}/poll/lobby")]).output().unwrap();
        assert!(out.status.success() && out.stdout.starts_with(b"{\"messages\""), "served after the limit too");
    }
    let said = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let deadline = std::time::Instant::now() + common::LIMIT;
    while !said().contains("reached --trace-pcap-limit") {
        assert!(std::time::Instant::now() < deadline, "no message on stderr: {:?}", said());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(server);
    let said = said();
    assert!(said.contains(&format!("reached --trace-pcap-limit ({LIMIT} bytes): capture stopped")), "{said}");
    let size = std::fs::metadata(&pcap).unwrap().len();
    assert!(size <= LIMIT && size > LIMIT - 200, "the file holds {size} bytes, the limit is {LIMIT}");
    assert!(said.contains(&format!("holds {size} bytes")), "{said}");
    // Whole packets only: tshark reads it to the end without complaint.
    let packets = tshark(&pcap, &["-T", "fields", "-e", "frame.number"]).lines().count();
    assert!(packets > 10, "{packets} packets");
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_connection_is_captured_as_ipv6() {
    if !common::require_tool("tshark", TSHARK_INSTALL) {
        return;
    }
    let pcap = temp("ipv6.pcap");
    let s = start(Config {
        addr: "[::1]:0".parse().unwrap(),
        pcap: Some(PcapTarget { path: pcap.clone(), limit: 1 << 20 }),
        ..config()
    })
    .await;
    let r = Client::connect(s.addr).await.request(get("/poll/lobby?after=0")).await;
    assert_eq!(r.status, 200);
    s.stop().await;
    assert_clean(&pcap);
    assert_eq!(http_requests(&pcap), ["GET /poll/lobby?after=0"]);
    let hosts = fields(&pcap, "ipv6", &["ipv6.src", "ipv6.dst"]);
    assert!(hosts.len() >= 7, "handshake, request, answer, FINs: {hosts:?}");
    assert!(hosts.iter().all(|h| h == &["::1", "::1"]), "{hosts:?}");
    assert!(fields(&pcap, "ip", &["ip.src"]).is_empty(), "no IPv4 packet");
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn a_capture_that_cannot_be_created_is_refused_clearly() {
    let missing = temp("no-such-directory").join("x.pcap");
    for command in
        [&["serve", "--addr", "127.0.0.1:0"][..], &["client", "--count", "1"], &["proxy", "--listen", "127.0.0.1:0"]]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(command)
            .arg("--trace-pcap")
            .arg(&missing)
            .output()
            .expect("the binary runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {err}");
        assert!(err.contains(&format!("cannot create the capture {}", missing.display())), "{command:?}: {err}");
    }
}

/// Bytes from hex rows or plain hex (`decode`'s reader); none from a blank line.
fn hex_bytes(text: &str) -> Vec<u8> {
    if text.trim().is_empty() { Vec::new() } else { hexread::read(text).expect("hex").bytes }
}
