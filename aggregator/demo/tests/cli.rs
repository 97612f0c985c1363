//! The `throughline-demo` binary's command line: the aggregator's flags,
//! and a port clash explained.

use std::process::Command;

fn demo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_throughline-demo"))
}

#[test]
fn taken_mqtt_port_is_explained() {
    // Occupy a port, then ask the demo to embed its broker there.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = demo()
        .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port} is already in use")), "{err}");
    assert!(err.contains("--mqtt-listen") && err.contains("--broker"), "{err}");
}

/// GET `path` from `addr` with a bare HTTP/1.0 request; the body.
fn get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// The README's first command: the demo starts, its simulated gateways
/// report every asset through the embedded broker, and SIGTERM stops it.
#[test]
fn the_demo_runs_a_plant_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mqtt = free.local_addr().unwrap();
    drop(free);
    let mut child = demo()
        .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", &mqtt.to_string(), "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("demo.log")).unwrap())
        .spawn()
        .unwrap();
    // Read all of stdout on a thread of its own: the demo must never find
    // its stdout closed while it prints.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.trim().strip_prefix("Dashboard:") {
                let addr = rest.trim().strip_prefix("http://").and_then(|r| r.split('/').next());
                let _ = tx.send(addr.map(str::to_string));
            }
        }
    });
    let http = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .ok()
        .flatten()
        .expect("the demo prints its dashboard address");
    // Generous: the gateways report every second, but CI machines are shared.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let reporting = loop {
        let body = get(&http, "/api/v1/assets").unwrap_or_default();
        // Seven assets, each with a last sample time once its agent reported.
        let n = body.matches("\"last_sample_ts\":\"").count();
        if n >= 7 || std::time::Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    if reporting != 7 {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
        panic!("{reporting} of 7 demo assets reported at {http}; the demo's log:\n{log}");
    }
    let forecasts = get(&http, "/api/v1/forecasts").unwrap_or_default();
    assert!(forecasts.matches("\"group\":").count() >= 24, "an hour of forecasts: {forecasts}");
    let stopped =
        std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the demo did not stop within 15 s of SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

/// With no address asked for and both default ports taken (a Mosquitto on
/// 1883 is the usual neighbour), the demo takes other free ports, says which,
/// and its dashboard answers there.
#[test]
fn taken_default_ports_make_the_demo_choose_others() {
    use std::io::{BufRead, BufReader};
    // Hold 1883 and 8080 unless something else already does.
    let _mqtt = std::net::TcpListener::bind("127.0.0.1:1883");
    let _http = std::net::TcpListener::bind("127.0.0.1:8080");
    for port in [1883, 8080] {
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err(), "port {port} is not taken");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo()
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx_out.send(line);
        }
    });
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut said, mut http, mut broker) = (Vec::new(), None, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http.is_none() || broker.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("the demo printed no dashboard and broker address within 60 s:\n{}", said.join("\n"));
        };
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Dashboard:") {
            http = rest.trim().strip_prefix("http://").and_then(|r| r.split('/').next()).map(str::to_string);
        }
        if let Some(rest) = trimmed.strip_prefix("MQTT broker:") {
            broker = rest.split_whitespace().next().map(str::to_string);
        }
        said.push(line);
    }
    let (http, broker) = (http.unwrap(), broker.unwrap());
    let text = said.join("\n");
    assert!(text.contains("127.0.0.1:1883 is taken") && text.contains("--mqtt-listen"), "{text}");
    assert!(text.contains("127.0.0.1:8080 is taken") && text.contains("--http-listen"), "{text}");
    assert!(!http.contains(":8080") && !broker.contains(":1883"), "{http} {broker}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !get(&http, "/api/v1/assets").unwrap_or_default().contains("\"last_sample_ts\":\"") {
        assert!(std::time::Instant::now() < deadline, "no asset reported at {http} within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(get(&http, "/").unwrap_or_default().contains("/assets/app.js"), "the dashboard page at {http}");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}
