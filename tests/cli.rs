//! The command line as a user meets it: `--help`, the environment variables, and
//! `.env.example` listing every one of them (API.md: "`.env.example` lists them all").

use std::process::Command;

fn wire(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire-academy"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

#[test]
fn env_example_lists_every_flag_variable() {
    let root = env!("CARGO_MANIFEST_DIR");
    let main = std::fs::read_to_string(format!("{root}/src/main.rs")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/.env.example")).unwrap();
    let vars: Vec<&str> = main
        .split("env = \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .filter(|v| v.starts_with("WIRE_ACADEMY_"))
        .collect();
    assert!(vars.len() > 30, "found only {} variables: the check would prove little", vars.len());
    let missing: Vec<&&str> = vars.iter().filter(|v| !example.contains(&format!("{v}="))).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
}

#[test]
fn help_names_every_command_and_variables_set_flags() {
    let out = wire(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "client", "proxy", "compare", "decode", "vectors"] {
        assert!(help.contains(command), "--help lists {command}");
    }
    let out = wire(&["serve", "--help"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("WIRE_ACADEMY_ADDR"));
    // A variable sets its flag: a bad value given through it is refused by name.
    let out = wire(&["client", "--count", "1"], &[("WIRE_ACADEMY_PROTOCOL", "pigeon")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown protocol \"pigeon\""));
}

#[test]
fn a_broker_url_it_cannot_read_is_refused_clearly() {
    for (url, says) in [
        ("mysql://127.0.0.1", "expected `memory`, redis://"),
        ("redis://127.0.0.1:6379/x", "\"x\" is not a database number"),
        ("unix://redis.sock", "a Unix socket path must be absolute"),
    ] {
        let out = wire(&["serve", "--addr", "127.0.0.1:0", "--broker", url], &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{url}: {err}");
    }
}

#[test]
fn a_coalesce_longer_than_its_bound_is_refused() {
    let out = wire(&["serve", "--addr", "127.0.0.1:0", "--coalesce", "2"], &[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"2\" is longer than 1 s"), "{err}");
}

#[test]
fn a_max_queue_or_listen_backlog_of_zero_is_refused() {
    // Every transport would read it its own way (SSE as 1, WebSocket as "cut at once"):
    // it is refused instead, as a usage error.
    let out = wire(&["serve", "--addr", "127.0.0.1:0", "--max-queue", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'--max-queue <MAX_QUEUE>'") && err.contains("at least 1"), "{err}");
    let out = wire(&["serve", "--addr", "127.0.0.1:0"], &[("WIRE_ACADEMY_MAX_QUEUE", "many")]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    // listen(2) would read a backlog of 0 as the kernel's least (a queue of one); it is
    // refused with the same answer.
    for command in [&["serve", "--addr", "127.0.0.1:0"][..], &["proxy", "--listen", "127.0.0.1:0"]] {
        let out = wire(&[command, &["--listen-backlog", "0"]].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{command:?}: a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("'--listen-backlog <LISTEN_BACKLOG>'") && err.contains("at least 1"), "{err}");
    }
}

/// docs/reference.md cannot fall behind the program: every flag each command's `--help`
/// lists is in it, every endpoint row it shows is a route the router knows, and every
/// route the router has is shown (the match below is exhaustive: a new route does not
/// compile until it is given its row).
#[test]
fn the_reference_lists_every_flag_and_every_route() {
    use wire_academy::app::routes::{Route, route};
    let reference = std::fs::read_to_string(format!("{}/docs/reference.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for command in ["serve", "client", "proxy", "compare", "decode", "vectors"] {
        let help = String::from_utf8(wire(&[command, "--help"], &[]).stdout).unwrap();
        let flags: Vec<&str> = help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
            .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
            .collect();
        assert!(flags.len() > 1, "{command} --help lists only {flags:?}");
        for flag in flags {
            assert!(reference.contains(&format!("`{flag}")), "docs/reference.md lacks `{command} {flag}`");
        }
    }
    // Every endpoint row: `METHOD /path…` is routed (a sample channel in place of {channel}).
    let mut rows = Vec::new();
    for line in reference.lines().filter(|l| l.starts_with("| `GET /") || l.starts_with("| `POST /")) {
        let request = line.trim_start_matches("| `").split('`').next().unwrap();
        let (method, target) = request.split_once(' ').unwrap();
        let path = target.split('?').next().unwrap().replace("{channel}", "lobby");
        let r = route(method, &path).unwrap_or_else(|e| panic!("docs/reference.md shows {request}, not routed: {e:?}"));
        rows.push(r);
    }
    // Every route has its row.
    let shown = |r: &Route| -> &str {
        match r {
            Route::Publish(_) => "POST /publish/{channel}",
            Route::Poll(_) => "GET /poll/{channel}",
            Route::LongPoll(_) => "GET /long-poll/{channel}",
            Route::Negotiate(_) => "GET /negotiate/{channel}",
            Route::Sse(_) => "GET /sse/{channel}",
            Route::WebSocket(_) => "GET /ws/{channel}",
            Route::Echo => "GET /echo",
            Route::Stats => "GET /stats",
            Route::Dashboard => "GET /",
            Route::Trace => "GET /trace",
        }
    };
    for r in [
        Route::Publish("x".into()),
        Route::Poll("x".into()),
        Route::LongPoll("x".into()),
        Route::Negotiate("x".into()),
        Route::Sse("x".into()),
        Route::WebSocket("x".into()),
        Route::Echo,
        Route::Stats,
        Route::Dashboard,
        Route::Trace,
    ] {
        assert!(reference.contains(&format!("| `{}", shown(&r))), "docs/reference.md has no row for {}", shown(&r));
        assert!(rows.iter().any(|row| std::mem::discriminant(row) == std::mem::discriminant(&r)), "{}", shown(&r));
    }
}
