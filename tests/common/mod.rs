//! Helpers for tests that speak raw bytes to a real server on an ephemeral port.
//!
//! The response reader here is deliberately separate from the server's own codecs: a
//! test that parsed answers with the code under test could agree with a bug.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire_academy::config::Config;
use wire_academy::net::Running;

/// A config for tests: an ephemeral port on loopback, everything else default.
pub fn config() -> Config {
    Config { addr: "127.0.0.1:0".parse().unwrap(), ..Config::default() }
}

pub async fn start(config: Config) -> Running {
    Running::start(config).await.expect("server starts")
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One raw TCP connection with its own read buffer (so pipelined answers are kept).
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub const LIMIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client::on(TcpStream::connect(addr).await.expect("connect"))
    }

    /// A client on a stream connected by the caller (with its own socket options).
    pub fn on(stream: TcpStream) -> Client {
        Client { stream, buf: Vec::new() }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.expect("write");
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answered in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response (for a request that was not HEAD).
    pub async fn response(&mut self) -> Resp {
        self.response_to(false).await
    }

    pub async fn response_to(&mut self, head_request: bool) -> Resp {
        let (status, headers) = self.read_head().await;
        let mut resp = Resp { status, headers, body: Vec::new() };
        if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            return resp;
        }
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                assert!(self.fill().await > 0, "closed mid-body");
            }
            resp.body = self.buf.drain(..len).collect();
        } else if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await > 0, "closed mid-chunk");
                };
                let size = usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).unwrap(), 16).unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    assert!(self.fill().await > 0, "closed mid-chunk");
                }
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill().await > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }

    /// Reads a response head, leaving whatever follows (a streamed body) in the buffer.
    pub async fn head(&mut self) -> Resp {
        let (status, headers) = self.read_head().await;
        Resp { status, headers, body: Vec::new() }
    }

    async fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            assert!(
                self.fill().await > 0,
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII head");
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line has a colon");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        (status, headers)
    }

    /// Reads up to and including the first `needle`, exactly as it came off the wire.
    pub async fn raw_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let end = loop {
            if let Some(i) = find(&self.buf, needle) {
                break i + needle.len();
            }
            assert!(self.fill().await > 0, "closed before {:?}: {:?}", String::from_utf8_lossy(needle), self.text());
        };
        self.buf.drain(..end).collect()
    }

    /// Reads exactly `n` bytes, as they came off the wire.
    pub async fn raw(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "closed after {} of {n} bytes: {:?}", self.buf.len(), self.text());
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one chunk of a chunked body and returns its data; empty for the last chunk
    /// (whose empty trailer section is consumed too).
    pub async fn chunk(&mut self) -> Vec<u8> {
        let line = self.raw_until(b"\r\n").await;
        let size_hex = std::str::from_utf8(&line[..line.len() - 2]).expect("ASCII chunk-size line");
        let size = usize::from_str_radix(size_hex, 16).unwrap_or_else(|_| panic!("chunk-size line {size_hex:?}"));
        let data = self.raw(size + 2).await;
        assert!(data.ends_with(b"\r\n"), "chunk data ends with CRLF: {:?}", String::from_utf8_lossy(&data));
        data[..size].to_vec()
    }

    /// Reads until the server closes the connection; returns everything not yet consumed.
    pub async fn until_close(&mut self) -> Vec<u8> {
        while self.fill().await > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// What has been read and not yet consumed, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Asserts the server closes the connection (EOF) without sending anything more.
    pub async fn expect_closed(&mut self) {
        while self.fill().await > 0 {}
        assert!(self.buf.is_empty(), "unexpected bytes before close: {:?}", String::from_utf8_lossy(&self.buf));
    }

    /// Sends one request and reads its response.
    pub async fn request(&mut self, raw: impl AsRef<[u8]>) -> Resp {
        self.send(raw).await;
        self.response().await
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
}

pub fn post(path: &str, body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// One request on a fresh connection.
pub async fn once(addr: std::net::SocketAddr, raw: impl AsRef<[u8]>) -> Resp {
    Client::connect(addr).await.request(raw).await
}

pub async fn publish(addr: std::net::SocketAddr, channel: &str, body: &str) -> u64 {
    let r = once(addr, post(&format!("/publish/{channel}"), body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"].as_u64().unwrap()
}

/// Fails loudly when a tool the test needs is missing; outside CI it may skip, saying
/// exactly what to install. Under CI (`CI=true`) a missing tool is always a failure.
pub fn require_tool(tool: &str, install: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    let msg = format!("MISSING TOOL: `{tool}` is not installed; install it with: {install}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: a missing tool is a failure)");
    }
    eprintln!("\n!!! {msg}\n!!! skipping this test outside CI\n");
    false
}

/// Fails loudly when an npm package under `dir` (tests/interop/node) is not installed;
/// outside CI it may skip, naming the command that installs it. Under CI (`CI=true`) a
/// missing package is always a failure.
pub fn require_node_package(dir: &std::path::Path, package: &str) -> bool {
    if dir.join("node_modules").join(package).join("package.json").exists() {
        return true;
    }
    let msg = format!(
        "MISSING: the npm package `{package}` is not installed in {}; install it with: npm ci --prefix {}",
        dir.display(),
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: a missing tool is a failure)");
    }
    eprintln!("\n!!! {msg}\n!!! skipping this test outside CI\n");
    false
}

/// The real `wire-academy serve` binary in its own process, on an ephemeral port: for
/// tests that need more descriptors than one process may hold, or the server's own
/// memory use. Killed when dropped, so a failing test leaves no server behind.
pub struct ServerProcess {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    // Kept open: the server prints "stopped" on its way out, into this pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl ServerProcess {
    /// Runs `wire-academy serve --addr 127.0.0.1:0 ARGS…` and waits for its
    /// `wire-academy listening on http://ADDR` line.
    pub fn spawn(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn_on("127.0.0.1:0", args)
    }

    /// Like [`spawn`](Self::spawn), on a given address: to restart a server where its
    /// clients expect it (the previous one's address, after [`terminate`](Self::terminate)).
    pub fn spawn_on(addr: &str, args: &[&str]) -> ServerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["serve", "--addr", addr])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the wire-academy binary starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the server prints its address");
        let addr = line
            .trim()
            .strip_prefix("wire-academy listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .expect("an address");
        ServerProcess { child, addr, _stdout: stdout }
    }

    /// The server's resident memory now, in KiB (Linux `/proc/PID/status`, VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
    }

    /// The names of the server's threads (Linux `/proc/PID/task/*/comm`).
    pub fn threads(&self) -> Vec<String> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).expect("/proc task");
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect()
    }

    /// SIGTERM (a graceful shutdown), then waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill() only sends a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's soft open-file limit to its hard limit; fails, saying what to
/// do, when that is still below `need`.
pub fn raise_nofile_to_hard_limit(need: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0, "getrlimit");
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            lim = raised;
        }
    }
    assert!(
        lim.rlim_cur >= need,
        "this test needs {need} open files but the limit is {} (hard limit {}); raise the hard limit \
         (as root: `ulimit -Hn {need}` in the shell that runs the tests, or LimitNOFILE= / limits.conf)",
        lim.rlim_cur,
        lim.rlim_max
    );
    lim.rlim_cur
}

/// `GET /stats` as JSON.
pub async fn stats(addr: std::net::SocketAddr) -> serde_json::Value {
    once(addr, get("/stats")).await.json()
}

/// At most how many bytes the kernel holds between a server that writes and a loopback
/// client that does not read, when the client set its receive buffer to `recv_buffer`:
/// the server's send buffer grows at most to `tcp_wmem`'s maximum (Linux autotuning),
/// and the kernel doubles a receive buffer set by `SO_RCVBUF` for its own bookkeeping.
/// Tests that need a client to be cut for not reading publish more than this.
pub fn loopback_buffer_bound(recv_buffer: usize) -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse::<usize>().ok()))
        .unwrap_or(4 << 20);
    wmem_max + 2 * recv_buffer
}

/// Waits until `cond` holds, checking every 10 ms, and fails after [`LIMIT`] naming
/// `what`: a test waits on a condition it can observe (a counter, a line in a trace),
/// never on a fixed delay that a busy machine may outlast.
pub async fn wait_until<F: Future<Output = bool>>(what: &str, cond: impl FnMut() -> F) {
    wait_until_within(what, LIMIT, cond).await
}

/// [`wait_until`], failing after `limit` rather than [`LIMIT`].
pub async fn wait_until_within<F: Future<Output = bool>>(what: &str, limit: Duration, mut cond: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + limit;
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "waited {limit:?} in vain for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connections of `transport` the in-process server holds open now.
pub fn open_now(s: &Running, transport: wire_academy::app::stats::Transport) -> i64 {
    s.shared.stats.of(transport).open.load(std::sync::atomic::Ordering::Relaxed)
}

/// Requests for `transport` the in-process server has received so far.
pub fn requests_now(shared: &wire_academy::net::Shared, transport: wire_academy::app::stats::Transport) -> u64 {
    shared.stats.of(transport).requests.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until the server holds `n` connections of `transport` (a long-poll is held, a
/// stream is open): what a test waits for before publishing to a request without a
/// cursor, instead of sleeping and hoping the request has arrived.
pub async fn wait_held(s: &Running, transport: wire_academy::app::stats::Transport, n: i64) {
    let deadline = std::time::Instant::now() + LIMIT;
    while open_now(s, transport) != n {
        assert!(std::time::Instant::now() < deadline, "{transport:?}: {} open, waited for {n}", open_now(s, transport));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A real `redis-server` of our own on a free loopback port, stopped when dropped.
///
/// Redis has no `--port 0`, so a free port is found by binding one and letting it go;
/// if another process takes it first, the server fails to start and another is tried.
/// No persistence unless the test asks for it (`persistent`): then an append-only file
/// in the server's own directory, written on every command, so a restart keeps it all.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
    pub dir: std::path::PathBuf,
    persistent: bool,
    /// More `redis-server` flags (`--requirepass`, `--unixsocket`…).
    extra: Vec<String>,
}

impl RedisServer {
    /// `None` (after saying what to install) when redis-server is missing outside CI.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(false)
    }

    pub fn start_with(persistent: bool) -> Option<RedisServer> {
        RedisServer::start_with_flags(persistent, &[])
    }

    /// With more `redis-server` flags; `{dir}` in one stands for the server's directory.
    pub fn start_with_flags(persistent: bool, flags: &[&str]) -> Option<RedisServer> {
        if !require_tool("redis-server", "sudo apt-get install redis-server (or: bash scripts/test.sh)") {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wire-academy-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let extra = flags.iter().map(|f| f.replace("{dir}", dir.to_str().unwrap())).collect();
            let mut r = RedisServer { child: None, port, dir: dir.clone(), persistent, extra };
            if r.launch() {
                return Some(r);
            }
        }
        panic!("redis-server did not start on any of 20 free ports");
    }

    /// Starts the process on `self.port` and waits until it answers PING; `false` if it
    /// exited instead (the port was taken meanwhile).
    fn launch(&mut self) -> bool {
        let mut cmd = std::process::Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--dir", self.dir.to_str().unwrap()])
            .args(&self.extra)
            .stdout(std::process::Stdio::null());
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let mut child = cmd.spawn().expect("redis-server starts");
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            if child.try_wait().expect("wait").is_some() {
                return false;
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            assert!(std::time::Instant::now() < deadline, "redis-server on port {} never answered PING", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An inline PING (the spec's "inline command" form), answered `+PONG`: written and
    /// read by hand, so that waiting for Redis does not depend on the codec under test.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 64];
        // With --requirepass, Redis refuses PING with -NOAUTH: it is up all the same.
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then waits: Redis finishes writing its append-only file and exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill() only sends a signal to our own child process.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory (with its data, when persistent).
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.launch(), "redis-server did not restart on port {}", self.port);
    }

    /// Stops it and starts a fresh one, without data, on the same port.
    pub fn replace_with_fresh(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("a directory for redis");
        assert!(self.launch(), "redis-server did not start again on port {}", self.port);
    }

    /// `redis-cli -p PORT ARGS…`: its standard output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        assert!(require_tool("redis-cli", "sudo apt-get install redis-tools"), "redis-cli is needed");
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
