//! The `aggregator` binary's command line: config checking, port clashes.
//! (Also makes `cargo test --workspace` build the binary that the
//! end-to-end tests in `tests/` start.)

use std::process::Command;

fn aggregator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aggregator"))
}

#[test]
fn shipped_example_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/aggregator.example.toml");
    let out = aggregator().args(["check", "--config", example]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 registered asset(s)"));
}

#[test]
fn check_reports_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.toml");
    std::fs::write(
        &path,
        "[mqtt]\nbroker = \"http://x\"\n[[assets]]\nsite = \"s\"\nid = \"a\"\nkind = \"line\"\ngroup = \"g\"\nrated_capacity = 0\n",
    )
    .unwrap();
    let out = aggregator().args(["check", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agg.toml") && err.contains("mqtt.broker") && err.contains("assets[0].rated_capacity"),
        "{err}"
    );
}

#[test]
fn taken_mqtt_port_is_explained() {
    // Occupy a port, then ask the demo to embed its broker there.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = aggregator()
        .args([
            "demo",
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port} is already in use")), "{err}");
    assert!(err.contains("--mqtt-listen") && err.contains("--broker"), "{err}");
}

#[test]
fn taken_http_port_is_explained() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = aggregator()
        .args(["--http-listen", &format!("127.0.0.1:{port}"), "--broker", "mqtt://127.0.0.1:1", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP address") && err.contains("--http-listen"), "{err}");
}
