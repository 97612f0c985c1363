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
    let out = aggregator()
        .args(["check", "--config", example])
        .env("THROUGHLINE_PLANNER_TOKEN", "example-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 registered asset(s)"));
    // Without the variable the token is missing, and the error says which.
    let out = aggregator()
        .args(["check", "--config", example])
        .env_remove("THROUGHLINE_PLANNER_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.tokens[0].token_env") && err.contains("THROUGHLINE_PLANNER_TOKEN"), "{err}");
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
fn the_old_demo_command_says_where_the_demo_went() {
    let out = aggregator().arg("demo").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("throughline-demo"), "{err}");
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

#[test]
fn import_forecast_refuses_a_bad_file_and_imports_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agg.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[[assets]]\nsite = \"s\"\nid = \"l1\"\nkind = \"line\"\ngroup = \"family-a\"\nrated_capacity = 100\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,-1,pieces\nfamily-b,2026-11-23,2026-11-24,5,kWh\n").unwrap();
    let out = aggregator().args(["import-forecast"]).arg(&bad).arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2, column demand") && err.contains("line 3, column group"), "{err}");
    assert!(err.contains("nothing imported"), "{err}");

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,2400,pieces\n")
        .unwrap();
    let out = aggregator().args(["import-forecast"]).arg(&good).arg("--config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1 bucket(s) (0 replacing"));
    let again = aggregator().args(["import-forecast"]).arg(&good).arg("--config").arg(&cfg).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("(1 replacing an earlier version)"));
}
