//! The `edge-agent` binary's command line: config checking and errors.
//! (Also makes `cargo test --workspace` build the binary that the
//! end-to-end tests in `tests/` start.)

use std::process::Command;

const CONFIG: &str = r#"
agent = "gw-check"
site = "plant"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[assets]]
id = "l1"
[assets.source]
type = "simulator"
profile = "line"
rate_per_hour = 60
"#;

fn edge_agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
}

#[test]
fn check_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let out = edge_agent().args(["--check", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK") && stdout.contains("gw-check"), "{stdout}");
}

#[test]
fn bad_config_names_file_and_key_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, CONFIG.replace("rate_per_hour = 60", "rate_per_hour = -1")).unwrap();
    let out =
        edge_agent().args(["--check", "--config"]).arg(&path).env("RUST_BACKTRACE", "1").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("assets[0].source.rate_per_hour"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out = edge_agent().args(["--config", "/nonexistent/agent.toml"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/agent.toml") && err.contains("cannot read"), "{err}");
}

#[test]
fn shipped_example_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/edge-agent.example.toml");
    let out = edge_agent().args(["--check", "--config", example]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
