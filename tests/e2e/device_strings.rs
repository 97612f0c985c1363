//! A device-supplied `reason` with a newline and an escape code cannot forge
//! a log line: the real aggregator refuses it as `invalid_field`, and
//! nothing it logs starts with the forged text.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;
use throughline_tests::*;

#[tokio::test]
async fn a_reason_with_a_newline_is_refused_and_forges_no_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = free_port();
    let mut child = Command::new(bin("aggregator"))
        .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", &format!("127.0.0.1:{mqtt}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("listening http=") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let stderr = child.stderr.take().unwrap();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            l.lock().unwrap().push(line);
        }
    });
    let proc = Proc { child, name: "aggregator".into() };
    let agg = Aggregator { proc, http: rx.recv_timeout(DEADLINE).expect("no listening line") };
    agg.wait_mqtt_connected().await;
    let client = raw_client(mqtt, &unique("strings"));
    let forged = "FORGED ERROR admin token hunter2";
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let samples = json!([{"ts": ts, "state": "down", "reason": format!("jam\n{forged}\u{1b}[2K")}]);
    publish_telemetry(&client, "plant-s", "gw-s", "line-1", 1, samples).await;
    // A good message after it: once it is in, the bad one was handled.
    let good = json!([{"ts": ts, "state": "down", "reason": "jam"}]);
    publish_telemetry(&client, "plant-s", "gw-s", "line-1", 2, good).await;
    let http = agg.http.clone();
    wait_for("the good reason taken, the bad one refused", || async {
        let a = get_json(&format!("{http}/api/v1/assets/plant-s/line-1")).await;
        let m = get_text(&format!("{http}/metrics")).await;
        let refused = metric(&m, "throughline_rejected_messages_total{reason=\"invalid_field\"}");
        if a["reason"] == "jam" && refused == Some(1.0) {
            Ok(())
        } else {
            Err(format!("{a} invalid_field={refused:?}"))
        }
    })
    .await;
    wait_for("the refusal logged", || async {
        let l = lines.lock().unwrap();
        match l.iter().any(|l| l.contains("message rejected") && l.contains("unprintable character")) {
            true => Ok(()),
            false => Err(format!("{} lines", l.len())),
        }
    })
    .await;
    let l = lines.lock().unwrap();
    let forged_lines: Vec<&String> =
        l.iter().filter(|l| l.starts_with("FORGED") || l.contains('\u{1b}')).collect();
    assert!(forged_lines.is_empty(), "a forged log line: {forged_lines:?}");
    assert!(!l.iter().any(|l| l.contains("hunter2")), "the refused text was echoed in the log");
}
