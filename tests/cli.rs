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
    for command in ["serve", "client", "proxy", "compare"] {
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
fn a_broker_that_is_not_built_is_refused_clearly() {
    let out = wire(&["serve", "--addr", "127.0.0.1:0", "--broker", "redis://127.0.0.1:6379"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not built yet"), "{err}");
}
