//! Every trace and command output in docs/ and README.md comes from the program, and
//! each one shows the commands that produced it, which are what this test runs.
//!
//! Right before each captured block, a doc shows the commands a learner types to produce
//! it, and names both blocks after the scenario:
//!
//! ````text
//! <!-- command: http-get-poll -->
//! ```sh
//! wire-academy serve --trace-bytes
//! /usr/bin/printf 'GET /poll/lobby HTTP/1.1\r\nHost: localhost:8080\r\n\r\n' | nc -q1 localhost 8080
//! ```
//!
//! <!-- capture: http-get-poll -->
//! ```text
//! …what the program printed…
//! ```
//! ````
//!
//! Only blank lines may stand between the two. A capture without its command block fails
//! the test, and so does a command block without its capture.
//!
//! The command block:
//!
//! - Its first lines are the programs that keep running, each in a terminal of its own:
//!   `redis-server FLAGS` (on port 6379, with `--port 6379` among its flags), then
//!   `wire-academy serve FLAGS` (on port 8080), then `wire-academy proxy FLAGS` or a
//!   second instance, `wire-academy serve --addr 127.0.0.1:8081 FLAGS` (on port 8081).
//! - The rest is a shell script, run by `bash` as written: in order, a command ending in
//!   `&` in the background (another terminal, for a person).
//! - A pause is written `sleep N  # until KIND: WHAT`. `sleep N` is long enough for a
//!   person; the test waits instead until exactly that holds, never for a fixed time:
//!   - `until traced: TEXT`: the server's trace shows TEXT (the `serve` line has
//!     `--trace-bytes`, so the person sees it too);
//!   - `until printed: TEXT`: a command of the script has printed TEXT;
//!   - `until stats: sse.open >= 1` (`>=`, `==` or `<=`; alternatives joined by `||`): the
//!     server's `GET /stats` says so of `transports.sse.open`. Not where the server's trace
//!     is the capture: the question would be a connection in it.
//!
//!   A `sleep` that does not say what it waits for is refused.
//! - Bytes are written with `/usr/bin/printf`, which writes all its output at once: bash's
//!   own `printf` writes line by line, and the server could read one request in pieces.
//!   A bare `printf` is refused.
//!
//! What the capture is compared with:
//!
//! - the client's trace, when a `wire-academy client` command has `--trace-bytes`;
//! - else the server's trace, when the `serve` line has `--trace-bytes` (once every
//!   connection in it has closed; some scenarios show an excerpt: see [`excerpt`]);
//! - else each command of the script as `$ COMMAND` (its trailing comment left out),
//!   followed by what it wrote to stdout (`2>&1` in the command adds its stderr), as if each
//!   command had a terminal of its own; a last line without its newline gets one.
//!
//! The commands run as a learner types them. `wire-academy` is the binary this test
//! was built with. Ports 8080, 8081 and 6379 are free 4-digit ports of the test's, so
//! that two runs at once do not collide and every byte count stays what it is on 8080;
//! bash functions around `curl` (`--connect-to`, so that its `Host` still says what the
//! learner's does), `nc`, `redis-cli` and `wire-academy` point them there, and the test's
//! ports in the output are written back as 8080, 8081 and 6379. The bytes a `printf`
//! writes are never touched. A server's connections to Redis last as long as the server:
//! the trace is taken without waiting for them to close.
//!
//! Only what differs from run to run is masked before comparing: the `Date` value (in the
//! text and in the hex rows), peer ports, timings, random keys (a handshake's, and the
//! masking key of each frame a traced client writes, with the bytes it masks: the unmasked
//! payload under them is compared). Connections are compared one by one, since two connections' blocks may interleave either way.
//!
//! To refresh the docs after changing the program: `UPDATE_DOCS=1 cargo test --test docs`
//! (it rewrites only the capture blocks that no longer match, and the chart `compare`
//! draws; `UPDATE_DOCS=all` rewrites every capture block).
//! `DOCS_ONLY=name,name` runs only those scenarios. `DOCS_AS_TYPED=1` pauses as the
//! `sleep`s say instead of waiting for their conditions: what a learner pasting the block
//! gets, to check that each pause is long enough (timing-dependent, so not the default).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wire_academy::trace::{hexdump, hexread};

/// The ports a learner's commands name: the server's and the proxy's.
const SERVER_PORT: u16 = 8080;
const PROXY_PORT: u16 = 8081;
/// And Redis's, when a block starts `redis-server`.
const REDIS_PORT: u16 = 6379;

/// Longest one `# until` condition may take to hold.
const WAIT_LIMIT_SECS: u64 = 20;

/// Longest a whole script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// The docs' blocks

/// A scenario of a doc: its command block, and where its capture is.
#[derive(Debug)]
struct Scenario {
    name: String,
    /// The lines of the command block.
    commands: Vec<String>,
    /// The capture's body: lines `start..end` of the doc.
    start: usize,
    end: usize,
}

/// `<!-- KIND: NAME -->` -> NAME.
fn marker(line: &str, kind: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("<!-- ")?.strip_prefix(kind)?.strip_prefix(": ")?;
    Some(rest.strip_suffix(" -->")?.to_string())
}

/// The body of the fenced block whose opening fence is line `at`: `(start, end)`, `end`
/// being the closing fence.
fn fenced(lines: &[&str], at: usize, what: &str) -> (usize, usize) {
    assert!(lines.get(at).is_some_and(|l| l.starts_with("```")), "{what}: a fenced block must follow");
    let start = at + 1;
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.starts_with("```"))
            .unwrap_or_else(|| panic!("{what}: block never closed"));
    (start, end)
}

/// The scenarios of one doc, each a command block followed by its capture. Panics, naming
/// `file`, at a capture without its command block or a command block without its capture.
fn scenarios(doc: &str, file: &str) -> Vec<Scenario> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(name) = marker(lines[i], "command") {
            let what = format!("{file}: <!-- command: {name} -->");
            assert!(lines.get(i + 1).is_some_and(|l| l.trim_end() == "```sh"), "{what}: a ```sh block must follow");
            let (start, end) = fenced(&lines, i + 1, &what);
            let commands: Vec<String> = lines[start..end].iter().map(|l| l.to_string()).collect();
            let mut j = end + 1;
            while lines.get(j).is_some_and(|l| l.trim().is_empty()) {
                j += 1;
            }
            let capture = lines.get(j).and_then(|l| marker(l, "capture"));
            assert_eq!(
                capture.as_deref(),
                Some(name.as_str()),
                "{what}: its block must be followed (blank lines apart) by <!-- capture: {name} -->"
            );
            let (start, end) = fenced(&lines, j + 1, &format!("{file}: <!-- capture: {name} -->"));
            found.push(Scenario { name, commands, start, end });
            i = end + 1;
        } else if let Some(name) = marker(lines[i], "capture") {
            panic!(
                "{file}: <!-- capture: {name} --> has no command block: put <!-- command: {name} --> and a ```sh \
                 block with the commands that produce it right before it"
            );
        } else {
            i += 1;
        }
    }
    found
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    files.sort();
    files
}

/// Replaces the bodies of the named captures in `file` with `fresh`. The file is read
/// again here, and each block found by its marker: the docs may have been edited while
/// the scenarios ran.
fn rewrite_captures(file: &Path, fresh: &BTreeMap<String, String>) {
    let doc = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        if let Some(text) = marker(lines[i], "capture").and_then(|n| fresh.get(&n)) {
            let (start, end) = fenced(&lines, i + 1, &format!("{}: {}", file.display(), lines[i]));
            out.push(lines[start - 1].to_string());
            out.extend(text.trim_end().lines().map(String::from));
            out.push(lines[end].to_string());
            i = end + 1;
            continue;
        }
        i += 1;
    }
    std::fs::write(file, out.join("\n") + "\n").unwrap();
}

// ---------------------------------------------------------------------------------------
// A command block, read

/// What a scenario's capture is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Capture {
    /// The server's `--trace-bytes`.
    ServerTrace,
    /// A `wire-academy client --trace-bytes`.
    ClientTrace,
    /// Each command, and what it printed.
    Output,
}

/// One command of the script: a line, or the lines that only parse together.
#[derive(Debug)]
struct Step {
    /// The lines as the doc shows them.
    shown: Vec<String>,
    /// What bash runs: the lines, with each `sleep N  # until …` replaced by its wait and
    /// a trailing `&` taken off (see `background`).
    script: String,
    /// A `sleep N  # until …` line of its own.
    wait: bool,
    /// Ended in `&`.
    background: bool,
}

/// A command block, read.
#[derive(Debug)]
struct Plan {
    /// The flags of `wire-academy serve`, if the block starts one.
    serve: Option<Vec<String>>,
    /// The flags of `wire-academy proxy`, if the block starts one.
    proxy: Option<Vec<String>>,
    /// The flags of a second `wire-academy serve`, on 8081, if the block starts one.
    serve2: Option<Vec<String>>,
    /// The rest of a `redis-server …` line, as bash reads it, if the block starts one.
    redis: Option<String>,
    steps: Vec<Step>,
    capture: Capture,
}

/// `line` without its trailing shell comment: a `#` outside quotes, at the start or
/// after a blank.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if single {
            single = c != '\'';
        } else if c == '\\' {
            escaped = true;
        } else if double {
            double = c != '"';
        } else if c == '\'' {
            single = true;
        } else if c == '"' {
            double = true;
        } else if c == '#' && prev.is_whitespace() {
            return line[..i].trim_end();
        }
        prev = c;
    }
    line.trim_end()
}

/// A shell word in single quotes.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether bash can parse `script` as it stands (a command not cut in the middle).
fn parses(script: &str) -> bool {
    Command::new("bash").args(["-n", "-c", script]).stderr(Stdio::null()).status().expect("bash runs").success()
}

/// `sleep N  # until KIND: WHAT` -> the bash that waits for it (same indentation). None
/// for a line that does not pause; a panic for a `sleep` that does not say what it waits
/// for, or for a condition the block cannot observe.
fn wait_script(name: &str, line: &str, serve: Option<&[String]>, capture: Capture) -> Option<String> {
    let mentions_sleep = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == "sleep");
    if !mentions_sleep {
        return None;
    }
    let refuse = |why: &str| -> ! {
        panic!(
            "{name}: {line:?}: {why}; a pause is written `sleep N  # until traced|printed|stats: WHAT` on a line of its own"
        )
    };
    let indent = &line[..line.len() - line.trim_start().len()];
    let Some(rest) = line.trim().strip_prefix("sleep ") else { refuse("a sleep inside a line") };
    let (secs, comment) = rest.split_once('#').unwrap_or_else(|| refuse("a sleep must say what it waits for"));
    if secs.trim().parse::<f64>().is_err() {
        refuse("not `sleep N`");
    }
    let comment = comment.trim();
    let (kind, what) = comment
        .strip_prefix("until ")
        .and_then(|c| c.split_once(": "))
        .unwrap_or_else(|| refuse("the comment must be `# until KIND: WHAT`"));
    let what = what.trim();
    let call = match kind {
        "traced" => {
            if !serve.is_some_and(|f| f.iter().any(|a| a == "--trace-bytes")) {
                refuse(
                    "`until traced` needs a `wire-academy serve --trace-bytes` line (the learner waits for what it shows)",
                );
            }
            format!("__traced {}", sq(what))
        }
        "printed" => format!("__printed {}", sq(what)),
        "stats" => {
            if serve.is_none() {
                refuse("`until stats` needs a `wire-academy serve` line");
            }
            if capture == Capture::ServerTrace {
                refuse(
                    "`until stats` where the server's trace is the capture: the question would be a connection in it",
                );
            }
            let mut args = Vec::new();
            for alternative in what.split("||") {
                let words: Vec<&str> = alternative.split_whitespace().collect();
                let [counter, op, n] = words[..] else { refuse("a stats condition is `TRANSPORT.COUNTER OP N`") };
                let (transport, counter) = counter
                    .split_once('.')
                    .filter(|(t, c)| {
                        [t, c].iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                    })
                    .unwrap_or_else(|| refuse("a stats counter is `TRANSPORT.COUNTER`, such as sse.open"));
                let op = match op {
                    ">=" => "-ge",
                    "==" => "-eq",
                    "<=" => "-le",
                    _ => refuse("a stats comparison is >=, == or <="),
                };
                if n.parse::<i64>().is_err() {
                    refuse("a stats condition compares with a whole number");
                }
                if !args.is_empty() {
                    args.push("'||'".to_string());
                }
                args.extend([transport.to_string(), counter.to_string(), op.to_string(), n.to_string()]);
            }
            format!("__stats {}", args.join(" "))
        }
        _ => refuse("KIND is traced, printed or stats"),
    };
    Some(format!("{indent}__until {} {} {call}", sq(&format!("{kind}: {what}")), secs.trim()))
}

/// The logical lines of `lines` (a line ending in `\` continues on the next one), each with
/// how many lines it takes; comments taken off.
fn logical_lines(lines: &[String]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let (mut joined, mut n) = (String::new(), 0);
    for line in lines {
        let bare = strip_comment(line);
        n += 1;
        match bare.strip_suffix('\\') {
            Some(head) => joined.push_str(head),
            None => {
                joined.push_str(bare);
                out.push((std::mem::take(&mut joined), n));
                n = 0;
            }
        }
    }
    if n > 0 {
        out.push((joined, n));
    }
    out
}

/// Reads a command block (see the module's documentation).
fn plan(name: &str, lines: &[String]) -> Plan {
    let (mut serve, mut proxy, mut serve2, mut redis) = (None, None, None, None);
    let logical = logical_lines(lines);
    let mut skip = 0;
    let second = ["--addr".to_string(), format!("127.0.0.1:{PROXY_PORT}")];
    for (line, n) in &logical {
        let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
        if words.first().is_some_and(|w| w == "redis-server") {
            assert!(skip == 0, "{name}: redis-server comes first");
            assert!(
                words.windows(2).any(|w| w[0] == "--port" && w[1] == REDIS_PORT.to_string()),
                "{name}: redis-server --port {REDIS_PORT}: {line:?}"
            );
            redis = Some(line.trim()["redis-server".len()..].to_string());
            skip += n;
            continue;
        }
        let slot = match words.get(..2) {
            Some([a, b]) if a == "wire-academy" && b == "serve" && words[2..].starts_with(&second) => {
                words.drain(2..4);
                &mut serve2
            }
            Some([a, b]) if a == "wire-academy" && b == "serve" => &mut serve,
            Some([a, b]) if a == "wire-academy" && b == "proxy" => &mut proxy,
            _ => break,
        };
        assert!(slot.is_none(), "{name}: two `{} {}` lines", words[0], words[1]);
        for flag in ["--addr", "--trace-out"] {
            assert!(!words.iter().any(|w| w == flag), "{name}: the test sets {flag} itself: {line:?}");
        }
        *slot = Some(words[2..].to_vec());
        skip += n;
    }
    assert!(proxy.is_none() || serve2.is_none(), "{name}: the proxy and a second server both want 8081");
    assert!(serve.is_some() || serve2.is_none(), "{name}: the second server needs a first");
    let rest = &lines[skip..];
    let rest_logical = logical_lines(rest);
    for (line, _) in &rest_logical {
        assert!(
            !(line.contains("wire-academy serve")
                || line.contains("wire-academy proxy")
                || line.contains("redis-server")),
            "{name}: servers and proxies come first in a command block: {line:?}"
        );
    }
    for (line, _) in &rest_logical {
        let words = line.split(|c: char| c.is_whitespace() || ";|&{}()".contains(c));
        assert!(
            !words.into_iter().any(|w| w == "printf"),
            "{name}: {line:?}: bash's own printf writes line by line, so the server may read one printf in \
             pieces; write /usr/bin/printf, which writes once"
        );
    }
    let traces = |l: &&(String, usize)| l.0.contains("wire-academy client") && l.0.contains("--trace-bytes");
    assert!(rest_logical.iter().filter(traces).count() <= 1, "{name}: more than one client with --trace-bytes");
    let capture = if rest_logical.iter().any(|l| traces(&l)) {
        Capture::ClientTrace
    } else if serve.as_ref().is_some_and(|f: &Vec<String>| f.iter().any(|a| a == "--trace-bytes")) {
        Capture::ServerTrace
    } else {
        Capture::Output
    };

    let mut steps = Vec::new();
    let (mut shown, mut script): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for line in rest {
        let wait = wait_script(name, line, serve.as_deref(), capture);
        script.push(wait.clone().unwrap_or_else(|| line.clone()));
        shown.push(line.clone());
        if line.trim_end().ends_with('\\') || !parses(&script.join("\n")) {
            continue;
        }
        let is_wait = wait.is_some() && shown.len() == 1;
        if shown.iter().any(|l| !strip_comment(l).trim().is_empty()) {
            let last = script.last_mut().unwrap();
            let bare = strip_comment(last);
            let background = bare.ends_with('&') && !bare.ends_with("&&");
            if background {
                *last = bare[..bare.len() - 1].to_string();
            }
            steps.push(Step { shown: shown.clone(), script: script.join("\n"), wait: is_wait, background });
        }
        shown.clear();
        script.clear();
    }
    assert!(shown.is_empty(), "{name}: the command block ends in the middle of a command: {shown:?}");
    assert!(steps.iter().any(|s| !s.wait), "{name}: the command block runs nothing");
    Plan { serve, proxy, serve2, redis, steps, capture }
}

// ---------------------------------------------------------------------------------------
// Running a command block

/// A random 4-digit port (as long as 8080, so byte counts do not change) that is free now.
fn free_port() -> u16 {
    loop {
        let mut b = [0u8; 2];
        wire_academy::random::fill(&mut b);
        let port = 2000 + u16::from_le_bytes(b) % 8000;
        let ours = [SERVER_PORT, PROXY_PORT, REDIS_PORT];
        if !ours.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `wire-academy ARGS` with no `WIRE_ACADEMY_*` variable of ours leaking in.
fn program(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire-academy"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("WIRE_ACADEMY_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A program that keeps running (`serve`, `proxy`): killed when dropped, so a failing
/// scenario leaves nothing behind.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    /// Runs `wire-academy ARGS(port)` on a free port and waits for its `listening` line;
    /// tries another port if that one was taken in between.
    fn start(what: &str, dir: &Path, args: impl Fn(u16) -> Vec<String>) -> Daemon {
        for _ in 0..20 {
            let port = free_port();
            let stderr = std::fs::File::create(dir.join(format!("{what}.stderr"))).unwrap();
            // In the scenario's directory, as the learner's terminals are: a relative path
            // such as `--trace-pcap session.pcap` lands where the block's later commands look.
            let mut child = program(&args(port))
                .current_dir(dir)
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("wire-academy starts");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            if line.contains(" listening on ") {
                return Daemon { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{what}: no free port in 20 tries (see {})", dir.display());
    }

    /// `redis-server FLAGS` (read by bash, `--port 6379` made a free port of ours), once
    /// it answers PING; tries another port if that one was taken in between.
    fn start_redis(dir: &Path, flags: &str) -> Daemon {
        assert!(common::require_tool("redis-server", "apt-get install -y redis-server"), "redis-server is needed");
        for _ in 0..20 {
            let port = free_port();
            let line = flags.replace(&format!("--port {REDIS_PORT}"), &format!("--port {port}"));
            let out = std::fs::File::create(dir.join("redis.stdout")).unwrap();
            let mut child = Command::new("bash")
                .args(["-c", &format!("exec redis-server {line} --dir {}", sq(&dir.display().to_string()))])
                .stdout(out)
                .spawn()
                .expect("redis-server starts");
            let deadline = Instant::now() + common::LIMIT;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                let pong = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
                    use std::io::{Read, Write};
                    let mut b = [0u8; 7];
                    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut b).is_ok() && &b == b"+PONG\r\n"
                });
                if pong {
                    return Daemon { child, port };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server: no free port in 20 tries (see {})", dir.display());
    }

    /// SIGTERM (a graceful shutdown, which writes out the whole trace), then waits.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Flags of a command block's `serve` or `proxy` line, with 8080, 8081 and 6379 mapped to
/// the test's ports.
fn mapped(flags: &[String], ports: &Ports) -> Vec<String> {
    let pairs = [(SERVER_PORT, ports.server), (PROXY_PORT, ports.proxy), (REDIS_PORT, ports.redis)];
    flags
        .iter()
        .map(|f| {
            pairs.iter().fold(f.clone(), |f, (theirs, ours)| f.replace(&format!(":{theirs}"), &format!(":{ours}")))
        })
        .collect()
}

/// Port 1, where nothing listens: in place of 8080 or 8081 when the block starts nothing there.
const NO_PORT: u16 = 1;

/// The test's ports in place of 8080 and 8081 ([`NO_PORT`] for one the block does not start).
struct Ports {
    server: u16,
    proxy: u16,
    redis: u16,
}

/// What the script runs before a doc's commands: the waits, and the functions that point
/// the learner's tools at the test's ports.
const PREAMBLE: &str = r#"# Written by tests/docs.rs: the definitions a doc's commands run with.
__failed() { printf '%s\n' "$*" >> "$__DIR/failed"; }
# __until WHAT SECS COMMAND...: polls COMMAND until it succeeds (a condition, never a
# fixed time); with DOCS_AS_TYPED=1, sleeps SECS as a learner's shell does instead.
__until() {
  local what=$1 deadline=$((SECONDS + __LIMIT))
  if [ "${DOCS_AS_TYPED-}" = 1 ]; then command sleep "$2"; return; fi
  shift 2
  until "$@"; do
    if ((SECONDS > deadline)); then
      __failed "waited $__LIMIT s in vain until $what"
      exit 1
    fi
    command sleep 0.01
  done
}
__traced() { grep -qF -- "$1" "$__TRACE" 2>/dev/null; }
__printed() { cat "$__DIR"/out.* 2>/dev/null | grep -qF -- "$1"; }
__stat() {
  command curl -s "http://127.0.0.1:$__P1/stats" | grep -o "\"$1\":{[^}]*}" | grep -o "\"$2\":-\{0,1\}[0-9]*" | cut -d: -f2
}
# __stats TRANSPORT COUNTER -ge N ['||' TRANSPORT COUNTER -eq N]...
__stats() {
  local v
  while [ $# -ge 4 ]; do
    v=$(__stat "$1" "$2")
    if [ -n "$v" ] && [ "$v" "$3" "$4" ]; then return 0; fi
    shift 4
    if [ "${1-}" = "||" ]; then shift; fi
  done
  return 1
}
curl() {
  command curl --connect-to "localhost:8080:127.0.0.1:$__P1" --connect-to "127.0.0.1:8080:127.0.0.1:$__P1" \
    --connect-to "localhost:8081:127.0.0.1:$__P2" --connect-to "127.0.0.1:8081:127.0.0.1:$__P2" "$@"
}
nc() {
  local a args=()
  for a in "$@"; do
    case $a in 8080) a=$__P1 ;; 8081) a=$__P2 ;; localhost) a=127.0.0.1 ;; esac
    args+=("$a")
  done
  command nc "${args[@]}"
}
tshark() {
  local a args=()
  for a in "$@"; do
    a=${a//port==8080,/port==$__P1,}
    a=${a//port==8081,/port==$__P2,}
    args+=("$a")
  done
  command tshark "${args[@]}"
}
redis-cli() {
  local a args=()
  for a in "$@"; do
    case $a in 6379) a=$__P3 ;; esac
    args+=("$a")
  done
  command redis-cli "${args[@]}"
}
wire-academy() {
  local a args=()
  for a in "$@"; do
    if [ "$a" = --trace-bytes ]; then args+=(--trace-out "$__CLIENT_TRACE"); continue; fi
    a=${a//127.0.0.1:6379/127.0.0.1:$__P3}
    a=${a//localhost:8080/localhost:$__P1}
    a=${a//127.0.0.1:8080/127.0.0.1:$__P1}
    a=${a//localhost:8081/localhost:$__P2}
    a=${a//127.0.0.1:8081/127.0.0.1:$__P2}
    args+=("$a")
  done
  if [ "${1-}" = client ]; then
    WIRE_ACADEMY_URL="http://127.0.0.1:$__P1" "$__BIN" "${args[@]}"
  else
    "$__BIN" "${args[@]}"
  fi
}
"#;

/// Where step `k`'s output goes.
fn out_file(k: usize) -> String {
    format!("out.{k:03}")
}

/// The script bash runs for `plan`: variables, [`PREAMBLE`], then each step with its
/// stdout to a file of its own (a failing command is recorded), then `wait` for the
/// commands left in the background.
fn script(plan: &Plan, dir: &Path, server_trace: &Path, client_trace: &Path, ports: &Ports) -> String {
    let path = |p: &Path| sq(&p.display().to_string());
    let mut s = format!(
        "__DIR={}\n__TRACE={}\n__CLIENT_TRACE={}\n__BIN={}\n__P1={}\n__P2={}\n__P3={}\n__LIMIT={WAIT_LIMIT_SECS}\n",
        path(dir),
        path(server_trace),
        path(client_trace),
        sq(env!("CARGO_BIN_EXE_wire-academy")),
        ports.server,
        ports.proxy,
        ports.redis,
    );
    s.push_str(PREAMBLE);
    s.push_str("# The doc's commands.\n");
    for (k, step) in plan.steps.iter().enumerate() {
        if step.wait {
            s.push_str(&step.script);
            s.push('\n');
            continue;
        }
        let run = format!(
            "{{\n{}\n}} > \"$__DIR/{}\" || __failed \"command {k} exited with status $?\"",
            step.script,
            out_file(k)
        );
        if step.background {
            s.push_str(&format!("{{ {run}; }} &\n"));
        } else {
            s.push_str(&run);
            s.push('\n');
        }
    }
    s.push_str("wait\n");
    s
}

/// Waits for `cond`, checking every 10 ms, failing after [`common::LIMIT`] with `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {:?} in vain for {what}", common::LIMIT);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether every connection the trace shows opening has closed (but those to Redis,
/// which last as long as the server).
fn all_closed(trace: &str) -> bool {
    let mut open = BTreeSet::new();
    for line in trace.lines() {
        let Some((id, what)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else { continue };
        if what.starts_with("connection with Redis at ") {
            continue;
        }
        if what.starts_with("connection with ") && what.contains(" opened") {
            open.insert(id.to_string());
        } else if what.starts_with("connection closed") {
            open.remove(id);
        }
    }
    open.is_empty()
}

/// Runs bash on `script_path` in `dir`, in a process group of its own, and waits for it
/// (at most [`SCRIPT_LIMIT`]); then kills whatever of the group is left. Returns whether
/// it finished in time.
fn run_bash(script_path: &Path, dir: &Path) -> bool {
    let mut cmd = Command::new("bash");
    cmd.arg(script_path)
        .current_dir(dir)
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("bash.stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("bash.stderr")).unwrap())
        .process_group(0);
    for (k, _) in std::env::vars() {
        if k.starts_with("WIRE_ACADEMY_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("bash runs");
    let pid = child.id() as i32;
    let deadline = Instant::now() + SCRIPT_LIMIT;
    let in_time = loop {
        // WNOWAIT: bash stays a zombie, so its pid (the group's id) cannot be reused
        // before the group is killed below.
        // SAFETY: waitid(2) writes only into the siginfo_t we own.
        let exited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) == 0
                && info.si_pid() == pid
        };
        if exited {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // SAFETY: kill(2) on the process group of the bash we started (its pid is still ours).
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
    in_time
}

/// What a scenario's commands produced.
struct Fresh {
    /// What its capture should show.
    text: String,
    /// The chart `compare-table`'s run drew (`--svg compare.svg`): the doc's picture, to be
    /// written with the capture.
    chart: Option<String>,
}

/// Runs scenario `name`'s command block.
fn run(name: &str, plan: &Plan) -> Fresh {
    let dir = std::env::temp_dir().join(format!("wire-academy-docs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server_trace = dir.join("server.trace");
    let client_trace = dir.join("client.trace");

    let redis = plan.redis.as_ref().map(|flags| Daemon::start_redis(&dir, flags));
    let redis_port = redis.as_ref().map_or(NO_PORT, |r| r.port);
    let mut server = plan.serve.as_ref().map(|flags| {
        Daemon::start("serve", &dir, |port| {
            let ports = Ports { server: port, proxy: NO_PORT, redis: redis_port };
            let mut args: Vec<String> = ["serve", "--addr"].map(String::from).to_vec();
            args.push(format!("127.0.0.1:{port}"));
            args.push("--trace-out".into());
            args.push(server_trace.display().to_string());
            args.extend(mapped(flags, &ports).into_iter().filter(|f| *f != "--trace-bytes"));
            args
        })
    });
    let server_port = server.as_ref().map_or(NO_PORT, |s| s.port);
    let mut proxy = plan.proxy.as_ref().map(|flags| {
        Daemon::start("proxy", &dir, |port| {
            let ports = Ports { server: server_port, proxy: port, redis: redis_port };
            let mut args = vec!["proxy".to_string()];
            args.extend(mapped(flags, &ports));
            args
        })
    });
    let second = plan.serve2.as_ref().map(|flags| {
        Daemon::start("serve2", &dir, |port| {
            let ports = Ports { server: server_port, proxy: port, redis: redis_port };
            let mut args: Vec<String> = ["serve", "--addr"].map(String::from).to_vec();
            args.push(format!("127.0.0.1:{port}"));
            args.extend(mapped(flags, &ports));
            args
        })
    });
    let second_port = proxy.as_ref().or(second.as_ref()).map_or(NO_PORT, |p| p.port);
    let ports = Ports { server: server_port, proxy: second_port, redis: redis_port };

    let script_path = dir.join("script.sh");
    std::fs::write(&script_path, script(plan, &dir, &server_trace, &client_trace, &ports)).unwrap();
    let in_time = run_bash(&script_path, &dir);
    let failed = std::fs::read_to_string(dir.join("failed")).unwrap_or_default();
    if !in_time || !failed.is_empty() {
        let steps: Vec<String> =
            plan.steps.iter().enumerate().map(|(k, s)| format!("command {k}: {}", s.shown.join("\n"))).collect();
        panic!(
            "{name}: {}{failed}\n{}\n--- bash's stderr:\n{}\n(the script and every output are in {})",
            if in_time { "" } else { "the commands did not finish in time\n" },
            steps.join("\n"),
            std::fs::read_to_string(dir.join("bash.stderr")).unwrap_or_default(),
            dir.display()
        );
    }

    let fresh = match plan.capture {
        Capture::ServerTrace => {
            let s = server.take().expect("a server trace needs a server");
            let read = || std::fs::read_to_string(&server_trace).unwrap_or_default();
            // Every connection has ended by itself (not in the server's shutdown).
            wait_for(&format!("{name}: every connection in the server's trace to close"), || all_closed(&read()));
            drop(proxy.take());
            s.stop();
            excerpt(name, &read())
        }
        Capture::ClientTrace => std::fs::read_to_string(&client_trace).expect("the client wrote its trace"),
        Capture::Output => transcript(plan, &dir),
    };
    drop(proxy);
    drop(second);
    if let Some(s) = server {
        s.stop();
    }
    drop(redis);
    let chart = (name == "compare-table").then(|| {
        let drawn = std::fs::read_to_string(dir.join("compare.svg")).expect("compare drew its chart");
        for t in ["short-poll (p50", "long-poll (p50", "sse (p50", "websocket (p50"] {
            assert!(drawn.contains(t), "the chart labels {t}");
        }
        drawn
    });
    let _ = std::fs::remove_dir_all(&dir);
    Fresh { text: unmap_ports(&fresh, &ports), chart }
}

/// Each command of the script, and what it printed (see the module's documentation).
fn transcript(plan: &Plan, dir: &Path) -> String {
    let mut out = String::new();
    for (k, step) in plan.steps.iter().enumerate().filter(|(_, s)| !s.wait) {
        let lines = step.shown.iter().map(|l| strip_comment(l)).filter(|l| !l.trim().is_empty());
        for (i, line) in lines.enumerate() {
            out.push_str(if i == 0 { "$ " } else { "> " });
            out.push_str(line);
            out.push('\n');
        }
        let printed = std::fs::read(dir.join(out_file(k))).unwrap_or_default();
        let printed = String::from_utf8_lossy(&printed);
        out.push_str(&printed);
        if !printed.is_empty() && !printed.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The part of the server's trace that scenario `name` shows.
fn excerpt(name: &str, trace: &str) -> String {
    match name {
        // The scenario publishes first (#1, #2): the poll is #3.
        "poll-short" => keep_connections(trace, &[3]),
        // The stream, not the publishing around it.
        "sse-stream" => keep_connections(trace, &[1]),
        "sse-resume" => keep_connections(trace, &[4]),
        "ws-handshake" => handshake_blocks(trace),
        "ws-masked-client-frame" => blocks_where(&frame_blocks(trace), |b| b.contains(" read ")),
        "ws-unmasked-server-frame" => blocks_where(&frame_blocks(trace), |b| b.contains(" wrote ")),
        "ws-channel-frame" => frame_blocks(&keep_connections(trace, &[1])),
        "ws-fragmented" | "ws-ping-pong" => frame_blocks(trace),
        "ws-close" | "ws-protocol-error" => after_upgrade(trace),
        // What carries a message between instances: the publish, its reply (an id) and
        // the pub/sub messages, on the server's own connections to Redis (what it says
        // at start holds a random epoch; the connections close in its exit, or not).
        "scaling-resp" => blocks_where(trace, |b| {
            let id_reply = b
                .lines()
                .any(|l| l.split_once("resp reply ").is_some_and(|(_, v)| v.bytes().all(|c| c.is_ascii_digit())));
            b.contains(" Redis at ")
                && (b.contains("(the publish script)") || b.contains("resp pub/sub message") || id_reply)
        }),
        _ => trace.to_string(),
    }
}

/// `text` with the test's ports written back as the ones the learner's commands name, in
/// the text and in the bytes of hex rows (the same length: 4 digits each).
fn unmap_ports(text: &str, ports: &Ports) -> String {
    let pairs = [(ports.server, SERVER_PORT), (ports.proxy, PROXY_PORT), (ports.redis, REDIS_PORT)];
    let swap = |_: Option<u64>, bytes: &mut Vec<u8>| {
        for (ours, theirs) in pairs.into_iter().filter(|(ours, _)| *ours != NO_PORT) {
            let (from, to) = (format!(":{ours}").into_bytes(), format!(":{theirs}").into_bytes());
            assert_eq!(from.len(), to.len(), "the test's ports have 4 digits");
            let mut i = 0;
            while i + from.len() <= bytes.len() {
                let whole = bytes.get(i + from.len()).is_none_or(|b| !b.is_ascii_digit());
                if bytes[i..i + from.len()] == from[..] && whole {
                    bytes[i..i + from.len()].copy_from_slice(&to);
                    i += from.len();
                } else {
                    i += 1;
                }
            }
        }
    };
    let mut out = String::new();
    for block in text.split("\n\n") {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(rewrite_block(block, &swap, &|l| l.to_string()).trim_end_matches('\n'));
    }
    if text.ends_with('\n') && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Whether `line` is a hex row: `00000010: 4854 …  ASCII`.
fn is_hex_row(line: &str) -> bool {
    line.len() > 10 && line.as_bytes()[8] == b':' && line[..8].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A trace block with `bytes` applied to the bytes of its hex rows (then laid out again,
/// from the same offset, which `bytes` is given) and to each other line (given `None`), and
/// `words` to each other line after it. `bytes` must keep lengths.
fn rewrite_block(block: &str, bytes: &dyn Fn(Option<u64>, &mut Vec<u8>), words: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut hex = String::new();
    let mut first_offset = None;
    let flush = |hex: &mut String, first: &mut Option<u64>, out: &mut String| {
        if let Some(off) = first.take() {
            let mut b = hexread::read(hex).expect("hex rows parse").bytes;
            bytes(Some(off), &mut b);
            hexdump::rows(off, &b, out);
            hex.clear();
        }
    };
    for line in block.lines() {
        if is_hex_row(line) {
            first_offset.get_or_insert_with(|| u64::from_str_radix(&line[..8], 16).unwrap());
            hex.push_str(line);
            hex.push('\n');
            continue;
        }
        flush(&mut hex, &mut first_offset, &mut out);
        let mut b = line.as_bytes().to_vec();
        bytes(None, &mut b);
        out.push_str(&words(&String::from_utf8(b).unwrap()));
        out.push('\n');
    }
    flush(&mut hex, &mut first_offset, &mut out);
    out
}

#[test]
fn docs_show_what_the_program_prints() {
    for (tool, install) in [
        ("bash", "apt-get install -y bash"),
        ("curl", "apt-get install -y curl"),
        ("nc", "apt-get install -y netcat-openbsd (bash scripts/test.sh installs it)"),
        ("tshark", "apt-get install -y tshark (bash scripts/test.sh installs it; docs/pcap.md reads captures with it)"),
    ] {
        if !common::require_tool(tool, install) {
            return;
        }
    }
    // UPDATE_DOCS=1 rewrites the captures that no longer match; UPDATE_DOCS=all every one,
    // so that even what is masked (dates, ports, timings) is from this run's commands.
    let update_all = std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "all");
    let update = update_all || std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1");
    let only: Option<Vec<String>> =
        std::env::var("DOCS_ONLY").ok().map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    // Every doc's blocks are read (and each command block planned) before anything runs:
    // a capture without its commands fails at once.
    let mut docs = Vec::new();
    for file in doc_files() {
        let doc = std::fs::read_to_string(&file).unwrap();
        let found = scenarios(&doc, &file.display().to_string());
        let plans: Vec<Plan> = found.iter().map(|s| plan(&s.name, &s.commands)).collect();
        docs.push((file, doc, found, plans));
    }
    assert!(
        docs.iter().map(|d| d.2.len()).sum::<usize>() > 0,
        "no capture blocks found: the check would prove nothing"
    );
    if let Some(only) = &only {
        for name in only {
            assert!(docs.iter().any(|d| d.2.iter().any(|s| &s.name == name)), "DOCS_ONLY: no scenario named {name:?}");
        }
    }
    let mut stale = Vec::new();
    for (file, doc, found, plans) in &docs {
        let lines: Vec<&str> = doc.lines().collect();
        let mut fresh_blocks = BTreeMap::new();
        for (s, plan) in found.iter().zip(plans) {
            if only.as_ref().is_some_and(|o| !o.contains(&s.name)) {
                continue;
            }
            let Fresh { text: fresh, chart } = run(&s.name, plan);
            let shown = lines[s.start..s.end].join("\n");
            let same = if s.name.starts_with("compare") {
                mask_numbers(&shown) == mask_numbers(&fresh)
            } else {
                normalize(&shown) == normalize(&fresh)
            };
            if !same || update_all {
                if update {
                    if let Some(chart) = chart {
                        // The chart beside the table, from the same run.
                        std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/compare.svg"), chart)
                            .unwrap();
                    }
                    fresh_blocks.insert(s.name.clone(), fresh);
                } else {
                    stale.push(format!(
                        "{} [{}]\n--- doc:\n{shown}\n--- program now:\n{fresh}",
                        file.display(),
                        s.name
                    ));
                }
            }
        }
        if update && !fresh_blocks.is_empty() {
            rewrite_captures(file, &fresh_blocks);
        }
    }
    assert!(
        stale.is_empty(),
        "{} doc block(s) no longer match the program (UPDATE_DOCS=1 cargo test --test docs refreshes them):\n{}",
        stale.len(),
        stale.join("\n\n")
    );
}

/// A trace's blocks that pass `keep`.
fn blocks_where(trace: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for block in trace.split("\n\n").filter(|b| !b.trim().is_empty() && keep(b)) {
        out.push_str(block);
        out.push_str("\n\n");
    }
    out
}

/// Where a block's bytes start in its direction's stream, if it shows bytes.
fn first_offset(block: &str) -> Option<u64> {
    let row = block.lines().find(|l| l.len() > 10 && l.as_bytes()[8] == b':')?;
    u64::from_str_radix(&row[..8], 16).ok()
}

/// The opening handshake: the connection's first bytes in each direction.
fn handshake_blocks(trace: &str) -> String {
    blocks_where(trace, |b| b.contains(" opened") || first_offset(b) == Some(0))
}

/// The frames: every block of bytes after the handshake.
fn frame_blocks(trace: &str) -> String {
    blocks_where(trace, |b| first_offset(b).is_some_and(|o| o > 0))
}

/// Everything after the handshake, the closing of the connection included.
fn after_upgrade(trace: &str) -> String {
    blocks_where(trace, |b| !b.contains(" opened") && first_offset(b) != Some(0))
}

/// Keeps only the trace blocks of the given connections (a scenario's setup traffic,
/// such as publishing with curl, is not what the doc is about).
fn keep_connections(trace: &str, ids: &[u64]) -> String {
    let mut out = String::new();
    for block in trace.split("\n\n").filter(|b| !b.trim().is_empty()) {
        if conn_id(block).is_some_and(|id| ids.contains(&id)) {
            out.push_str(block);
            out.push_str("\n\n");
        }
    }
    out
}

fn conn_id(block: &str) -> Option<u64> {
    block.strip_prefix('#')?.split(' ').next()?.parse().ok()
}

/// Masks what changes from run to run, and groups blocks by connection.
fn normalize(text: &str) -> BTreeMap<u64, Vec<String>> {
    let mut by_conn: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let id = conn_id(block).unwrap_or(0);
        by_conn.entry(id).or_default().push(normalize_block(block));
    }
    by_conn
}

fn normalize_block(block: &str) -> String {
    let drawn = drawn_masks(block);
    let bytes = |at: Option<u64>, b: &mut Vec<u8>| {
        mask_bytes(b);
        if let Some(at) = at {
            for &(start, end) in &drawn {
                for (i, byte) in b.iter_mut().enumerate() {
                    if (start..end).contains(&(at + i as u64)) {
                        *byte = 0;
                    }
                }
            }
        }
    };
    let words = |l: &str| {
        let l = mask_delays(&mask_words(l));
        if drawn.is_empty() { l } else { mask_key_words(&l) }
    };
    rewrite_block(block, &bytes, &words)
}

/// The stream ranges of a block that hold a WebSocket masking key the traced program drew
/// itself, with the payload it masks: in a block of bytes it wrote, each frame with
/// `MASK=1` (a client's: RFC 6455 §5.3 wants a fresh, unpredictable key for every frame).
/// Those bytes differ on every run; the unmasked payload the trace prints under them does
/// not, and is still compared. Frames it read keep their keys: the docs write those with
/// the fixed key of RFC 6455 §5.7.
fn drawn_masks(block: &str) -> Vec<(u64, u64)> {
    let wrote = block.lines().next().is_some_and(|l| l.starts_with('#') && l.contains(" wrote "));
    let mut ranges = Vec::new();
    if !wrote {
        return ranges;
    }
    let mut masked_len = None;
    for line in block.lines() {
        // An annotation: `  000000ac+4     ws masking key: ae b5 c5 29`.
        let Some((at, rest)) = line.strip_prefix("  ").and_then(|l| l.split_once('+')) else { continue };
        let Ok(at) = u64::from_str_radix(at, 16) else { continue };
        let what = rest.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        if let Some(frame) = what.strip_prefix("ws frame ") {
            masked_len = frame
                .contains("MASK=1")
                .then(|| frame.split(' ').find_map(|w| w.strip_prefix("len=")?.parse::<u64>().ok()))
                .flatten();
        } else if what.starts_with("ws masking key:")
            && let Some(len) = masked_len.take()
        {
            ranges.push((at, at + 4 + len));
        }
    }
    ranges
}

/// `key=aeb5c529` and `ws masking key: ae b5 c5 29` with the key taken out (see
/// [`drawn_masks`]).
fn mask_key_words(line: &str) -> String {
    if let Some(at) = line.find("ws masking key: ") {
        return format!("{}ws masking key: KEY", &line[..at]);
    }
    line.split(' ')
        .map(|w| match w.strip_prefix("key=") {
            Some(k) if k.len() == 8 && k.bytes().all(|b| b.is_ascii_hexdigit()) => "key=KEY".to_string(),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A measurement's text with every number (and the column padding around it) taken
/// out: the same rows, columns and words, whatever was measured this time.
fn mask_numbers(text: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in text.trim_end().chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else if c == ' ' {
            in_number = false;
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// `reconnecting in 1234 ms` -> `reconnecting in N ms`: backoff delays are random.
fn mask_delays(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let masked: Vec<&str> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let delay = i > 0 && words[i - 1] == "in" && words.get(i + 1) == Some(&"ms");
            if delay && w.bytes().all(|b| b.is_ascii_digit()) { "N" } else { w }
        })
        .collect();
    masked.join(" ")
}

/// `+0.000123s` -> `+T`, `127.0.0.1:53122` -> `127.0.0.1:PORT`.
fn mask_words(line: &str) -> String {
    line.split(' ')
        .map(|w| {
            if w.starts_with('+') && w.ends_with('s') && w[1..w.len() - 1].parse::<f64>().is_ok() {
                "+T".to_string()
            } else if let Some(port) = w.strip_prefix("127.0.0.1:")
                && port.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u16>().is_ok()
            {
                format!("127.0.0.1:PORT{}", port.trim_start_matches(|c: char| c.is_ascii_digit()))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks, in place and keeping lengths (so hex rows keep their layout), the bytes that
/// differ from run to run: dates, ports of 127.0.0.1, session ids, WebSocket keys.
fn mask_bytes(bytes: &mut [u8]) {
    mask_dates(bytes);
    mask_after(bytes, b"127.0.0.1:", |b| b.is_ascii_digit(), b'0');
    mask_after(bytes, b"\"session\":\"", |b| b.is_ascii_hexdigit(), b'0');
    mask_after(bytes, b"Sec-WebSocket-Key: ", |b| b.is_ascii_alphanumeric() || b"+/=".contains(&b), b'A');
    mask_after(bytes, b"Sec-WebSocket-Accept: ", |b| b.is_ascii_alphanumeric() || b"+/=".contains(&b), b'A');
}

/// Replaces the run of bytes matching `keep` that follows each `prefix` with `with`.
fn mask_after(bytes: &mut [u8], prefix: &[u8], keep: impl Fn(u8) -> bool, with: u8) {
    let mut i = 0;
    while i + prefix.len() <= bytes.len() {
        if &bytes[i..i + prefix.len()] == prefix {
            i += prefix.len();
            while i < bytes.len() && keep(bytes[i]) {
                bytes[i] = with;
                i += 1;
            }
        } else {
            i += 1;
        }
    }
}

/// Replaces each IMF-fixdate (`Tue, 24 Nov 2026 04:30:44 GMT`, always 29 bytes) with a
/// fixed one of the same length, so hex rows keep their layout.
fn mask_dates(bytes: &mut [u8]) {
    const LEN: usize = 29;
    let digit = |b: u8| b.is_ascii_digit();
    let mut i = 0;
    while i + LEN <= bytes.len() {
        let w = &bytes[i..i + LEN];
        let looks = w[3] == b','
            && w[4] == b' '
            && digit(w[5])
            && digit(w[6])
            && w[7] == b' '
            && w[11] == b' '
            && digit(w[12])
            && digit(w[15])
            && w[16] == b' '
            && w[19] == b':'
            && w[22] == b':'
            && &w[25..] == b" GMT";
        if looks {
            bytes[i..i + LEN].copy_from_slice(b"Thu, 01 Jan 1970 00:00:00 GMT");
            i += LEN;
        } else {
            i += 1;
        }
    }
}

#[test]
fn masking_keeps_what_matters() {
    let a = "#1 read 3 bytes from 127.0.0.1:5000 +0.000100s\n00000000: 4142 43  ABC\n  00000000+3  x";
    let b = "#1 read 3 bytes from 127.0.0.1:6000 +0.000900s\n00000000: 4142 43  ABC\n  00000000+3  x";
    assert_eq!(normalize(a), normalize(b));
    let c = "#1 read 3 bytes from 127.0.0.1:6000 +0.000900s\n00000000: 4142 44  ABD\n  00000000+3  x";
    assert_ne!(normalize(a), normalize(c), "a changed byte is a difference");
    let mut d1 = b"Date: Tue, 24 Nov 2026 04:30:44 GMT\r\n".to_vec();
    let mut d2 = b"Date: Wed, 25 Nov 2026 14:00:01 GMT\r\n".to_vec();
    mask_bytes(&mut d1);
    mask_bytes(&mut d2);
    assert_eq!(d1, d2);
    let mut h1 = b"Host: 127.0.0.1:41234\r\n{\"session\":\"00ff\"}".to_vec();
    let mut h2 = b"Host: 127.0.0.1:55555\r\n{\"session\":\"abcd\"}".to_vec();
    mask_bytes(&mut h1);
    mask_bytes(&mut h2);
    assert_eq!(h1, h2);
}

/// The message of a panic caught by `catch_unwind`.
fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn a_clients_own_masking_keys_are_masked() {
    let frame = |key: [u8; 4]| {
        let text = b"hi";
        let mut bytes = vec![0x81, 0x82];
        bytes.extend(key);
        bytes.extend(text.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        let mut rows = String::new();
        hexdump::rows(0xaa, &bytes, &mut rows);
        let k = key.map(|b| format!("{b:02x}"));
        format!(
            "#2 wrote 8 bytes to 127.0.0.1:8080 +0.001s\n{rows}  000000aa+2     ws frame FIN=1 RSV=000 opcode=0x1 \
             text MASK=1 len=2 (7-bit) key={}\n  000000ac+4     ws masking key: {}\n  000000b0+2     ws unmasked \
             payload (2 bytes, UTF-8): \"hi\"\n",
            k.concat(),
            k.join(" ")
        )
    };
    let (a, b) = (frame([0x37, 0xfa, 0x21, 0x3d]), frame([0xae, 0xb5, 0xc5, 0x29]));
    assert_ne!(a, b);
    assert_eq!(normalize(&a), normalize(&b), "a key the client drew, and what it masked, are masked");
    let other_text = frame([0x37, 0xfa, 0x21, 0x3d]).replace(r#"UTF-8): "hi""#, r#"UTF-8): "ho""#);
    assert_ne!(normalize(&a), normalize(&other_text), "the unmasked payload is still compared");
    let read = a.replace(" wrote ", " read ");
    assert_ne!(normalize(&read), normalize(&b.replace(" wrote ", " read ")), "a frame read keeps its key");
}

#[test]
fn a_capture_needs_its_command_block() {
    let good = "Intro.\n\n<!-- command: x -->\n```sh\nwire-academy serve --trace-bytes\n\
                printf 'GET / HTTP/1.1\\r\\n\\r\\n' | nc -q1 localhost 8080\n```\n\n\
                <!-- capture: x -->\n```text\n#1 connection\n```\n";
    let found = scenarios(good, "good.md");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].name.as_str(), found[0].commands.len()), ("x", 2));
    assert_eq!(good.lines().nth(found[0].start), Some("#1 connection"));
    let refused = [
        ("<!-- capture: x -->\n```text\nout\n```\n", "has no command block"),
        (
            "<!-- command: x -->\n```sh\ntrue\n```\n\nSome prose.\n\n<!-- capture: x -->\n```text\n```\n",
            "must be followed",
        ),
        ("<!-- command: x -->\n```sh\ntrue\n```\n\n<!-- capture: y -->\n```text\n```\n", "must be followed"),
        ("<!-- command: x -->\n```text\ntrue\n```\n\n<!-- capture: x -->\n```text\n```\n", "```sh block"),
    ];
    for (doc, why) in refused {
        let e = std::panic::catch_unwind(|| scenarios(doc, "bad.md")).expect_err(doc);
        assert!(panic_text(e).contains(why), "{doc:?} is refused: {why}");
    }
}

#[test]
fn command_blocks_are_read_as_bash_reads_them() {
    let block: Vec<String> = [
        "wire-academy serve --trace-bytes --heartbeat 1   # terminal 1",
        "{ /usr/bin/printf 'GET /sse/lobby HTTP/1.1\\r\\nHost: localhost:8080\\r\\n\\r\\n'",
        "  sleep 2  # until traced: sse comment (heartbeat)",
        "} | nc -q1 localhost 8080 &",
        "sleep 1  # until traced: it's open",
        "curl -s --data 'a # b' localhost:8080/publish/lobby   # publishes",
    ]
    .map(String::from)
    .to_vec();
    let p = plan("t", &block);
    assert_eq!(p.serve, Some(["--trace-bytes", "--heartbeat", "1"].map(String::from).to_vec()));
    assert_eq!((p.proxy.is_none(), p.capture), (true, Capture::ServerTrace));
    assert_eq!(p.steps.len(), 3, "{:#?}", p.steps);
    assert_eq!(p.steps[0].shown.len(), 3);
    assert!(p.steps[0].background && !p.steps[0].wait);
    assert!(
        p.steps[0].script.contains("  __until 'traced: sse comment (heartbeat)' 2 __traced 'sse comment (heartbeat)'"),
        "{}",
        p.steps[0].script
    );
    assert!(p.steps[0].script.ends_with("} | nc -q1 localhost 8080 "), "the & is taken off: {}", p.steps[0].script);
    assert!(p.steps[1].wait);
    assert_eq!(p.steps[1].script, r"__until 'traced: it'\''s open' 1 __traced 'it'\''s open'");
    assert_eq!(strip_comment(&p.steps[2].shown[0]), "curl -s --data 'a # b' localhost:8080/publish/lobby");
    // A fixed pause is refused, a wait for what the learner cannot see, and the shell's printf.
    let bad = [
        "sleep 1",
        "true; sleep 1; true",
        "sleep 1  # until stats: sse.open >= 1",
        "{ printf 'a\\r\\n'; } | nc -q1 localhost 8080",
    ];
    for bad in bad {
        let lines = vec![block[0].clone(), bad.to_string()];
        assert!(std::panic::catch_unwind(|| plan("t", &lines)).is_err(), "{bad:?} is refused");
    }
    // A line may go on after a backslash: a proxy's flags, a traced client.
    let continued = [
        "wire-academy serve",
        "wire-academy proxy --listen 127.0.0.1:8081 \\",
        "  --idle-timeout 1   # terminal 2",
        "wire-academy client --protocol sse \\",
        "  --trace-bytes &",
    ];
    let p = plan("t", &continued.map(String::from));
    assert_eq!(p.proxy, Some(["--listen", "127.0.0.1:8081", "--idle-timeout", "1"].map(String::from).to_vec()));
    assert_eq!((p.capture, p.steps.len(), p.steps[0].background), (Capture::ClientTrace, 1, true));
    let untraced = vec!["wire-academy serve".to_string(), "sleep 1  # until traced: x".to_string()];
    assert!(std::panic::catch_unwind(|| plan("t", &untraced)).is_err(), "no --trace-bytes, nothing traced to see");
    let stats = ["wire-academy serve", "sleep 1  # until stats: sse.open == 0 || sse.requests >= 2", "true"];
    let p = plan("t", &stats.map(String::from));
    assert_eq!(p.capture, Capture::Output);
    assert_eq!(
        p.steps[0].script,
        "__until 'stats: sse.open == 0 || sse.requests >= 2' 1 __stats sse open -eq 0 '||' sse requests -ge 2"
    );
}

#[test]
fn the_test_ports_are_written_back() {
    let ports = Ports { server: 5123, proxy: 4242, redis: NO_PORT };
    let dump = |text: &str| {
        let mut rows = String::new();
        hexdump::rows(0x10, text.as_bytes(), &mut rows);
        rows
    };
    let ours = format!(
        "#1 connection with localhost:4242 opened\n\n#1 wrote 40 bytes to localhost:4242 +0.1s\n{}  x Host: localhost:4242\n",
        dump("Host: localhost:4242\r\nPeer: 127.0.0.1:51234\r\n")
    );
    let theirs = format!(
        "#1 connection with localhost:8081 opened\n\n#1 wrote 40 bytes to localhost:8081 +0.1s\n{}  x Host: localhost:8081\n",
        dump("Host: localhost:8081\r\nPeer: 127.0.0.1:51234\r\n")
    );
    assert_eq!(unmap_ports(&ours, &ports), theirs, "a longer port that starts the same is left alone");
}
