//! The control-room dashboard in a real headless Chromium: the aggregator
//! (embedded broker) serves the page, `tests/browser/dashboard.test.mjs`
//! drives the browser with playwright-core and publishes telemetry with an
//! MQTT client. Needs `node`, Debian's `chromium` and `npm ci` in
//! tests/browser (`.ci/run` does all three).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use throughline_tests::*;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// node, chromium and the npm packages, or a printed skip (a failure under CI).
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let tools = require_tools(&["node", "chromium"], "nodejs chromium")?;
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        let why = "tests/browser has no node_modules: run `npm ci --prefix tests/browser`";
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but {why}");
        }
        eprintln!("SKIPPED: {why} (under CI=true this fails instead)");
        return None;
    }
    Some((tools[0].clone(), tools[1].clone()))
}

#[tokio::test]
async fn dashboard_in_headless_chromium_shows_live_state_alerts_and_forecasts() {
    let Some((node, chromium)) = browser_tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-dash";
    let config = write_plant_config(dir.path(), site, "");
    let (mqtt, http) = (free_port(), free_port());
    let args = [
        "--config".to_string(),
        config.to_str().unwrap().to_string(),
        "--http-listen".into(),
        format!("127.0.0.1:{http}"),
        "--mqtt-listen".into(),
        format!("127.0.0.1:{mqtt}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agg = start_aggregator(&args);
    agg.wait_mqtt_connected().await;

    // The page and its files are served from the binary.
    let page = get_text(&format!("{}/", agg.http)).await;
    assert!(page.contains("/assets/app.js"), "the page: {page}");
    let js = reqwest::get(format!("{}/assets/app.js", agg.http)).await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    let missing = reqwest::get(format!("{}/assets/nope.js", agg.http)).await.unwrap();
    assert_eq!(missing.status(), 404);

    let mut child = Command::new(node)
        .arg(browser_dir().join("dashboard.test.mjs"))
        .current_dir(browser_dir())
        .env("DASH_URL", &agg.http)
        .env("MQTT_URL", format!("mqtt://127.0.0.1:{mqtt}"))
        .env("SITE", site)
        .env("TOKEN", TOKEN)
        .env("CHROMIUM", chromium)
        .envs(std::env::var_os("DASHBOARD_SCREENSHOT").map(|p| ("SCREENSHOT", p)))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    // The script asks for the aggregator to be stopped and started again
    // (same ports and data) on its stdout; everything else is passed on.
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the browser test did not finish within 120 s");
        match rx.recv_timeout(Duration::from_millis(50)).as_deref() {
            Ok("STOP-AGGREGATOR") => agg.proc.stop(),
            Ok("START-AGGREGATOR") => agg = start_aggregator(&args),
            _ => {}
        }
    };
    assert!(status.success(), "the browser test failed ({status}); its PROBLEM lines are above");

    // The page's stream was counted and is gone with the browser.
    let http = agg.http.clone();
    wait_for("the closed page's event stream to be dropped", || async {
        let metrics = get_text(&format!("{http}/metrics")).await;
        match metric(&metrics, "throughline_sse_clients") {
            Some(0.0) => Ok(()),
            other => Err(format!("throughline_sse_clients = {other:?}")),
        }
    })
    .await;
    agg.proc.stop();
}

/// Server-sent events read from a streaming response.
struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The next `(event, data)`, failing after [`DEADLINE`].
    async fn next(&mut self) -> (String, serde_json::Value) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::from("message"), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // a comment or retry line alone
                }
                return (event, serde_json::from_str(&data).expect("event data is JSON"));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("no event within the deadline")
                .expect("event stream read")
                .expect("event stream ended");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Skip events until `pred` holds for one; returns its data.
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no event with {what}");
            let (event, data) = self.next().await;
            if pred(&event, &data) {
                return data;
            }
        }
    }
}

/// The event stream without a browser: the snapshot first, then pushed
/// changes; a viewer token passed as `?token=` when reads need one.
#[tokio::test]
async fn event_stream_sends_a_snapshot_then_changes() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-sse";
    let extra = "[auth]\nread_requires_token = true\n";
    let config = write_plant_config(dir.path(), site, extra);
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;

    let url = format!("{}/api/v1/events", agg.http);
    let refused = reqwest::get(&url).await.unwrap();
    assert_eq!(refused.status(), 401, "reads need a token here");
    let resp = reqwest::get(format!("{url}?token=viewer-token")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = EventStream { resp, buf: String::new() };

    let (event, snap) = events.next().await;
    assert_eq!(event, "snapshot");
    let line1 = snap["assets"].as_array().unwrap().iter().find(|a| a["asset"] == "line-1").cloned();
    assert_eq!(line1.expect("registered assets are in the snapshot")["state"], serde_json::Value::Null);
    let groups: Vec<_> =
        snap["overview"]["groups"].as_array().unwrap().iter().map(|g| g["id"].clone()).collect();
    assert_eq!(groups, ["family-a", "region-north"]);

    let client = raw_client(mqtt, &unique("sse-pub"));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let samples = serde_json::json!([{"ts": now, "output": 5, "state": "down", "reason": "jam"}]);
    publish_telemetry(&client, site, "gw-sse", "line-1", 1, samples).await;
    let changed = events
        .until("line-1 down", |e, d| {
            e == "assets"
                && d["assets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["asset"] == "line-1" && a["state"] == "down")
        })
        .await;
    let a = &changed["assets"].as_array().unwrap()[0];
    assert_eq!((a["reason"].as_str(), a["agent"].as_str()), (Some("jam"), Some("gw-sse")));
    assert_eq!(changed["assets"].as_array().unwrap().len(), 1, "only the asset that changed: {changed}");

    // A forecast import is pushed as a new overview.
    let start = (chrono::Utc::now() - chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end = (chrono::Utc::now() + chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = post(
        &format!("{}/api/v1/forecasts", agg.http),
        "text/csv",
        Some(TOKEN),
        format!("group,start,end,demand,unit,uplift_pct\nfamily-a,{start},{end},5000,pieces,0\n"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let overview = events
        .until("the imported demand in the overview", |e, d| {
            e == "overview"
                && d["groups"][0]["buckets"]
                    .as_array()
                    .is_some_and(|b| b.first().is_some_and(|b| b["demand"] == 5000.0))
        })
        .await;
    let bucket = &overview["groups"][0]["buckets"][0];
    assert_eq!(bucket["phase"], "open");
    assert_eq!(bucket["status"], "short", "line-1 is down, line-2 silent: {bucket}");
    assert!(bucket.get("assets").is_none(), "the overview leaves out per-asset detail");
    // The same overview over plain HTTP.
    let plain = reqwest::Client::new()
        .get(format!("{}/api/v1/overview", agg.http))
        .bearer_auth("viewer-token")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);

    // A stop ends the open stream at once instead of waiting for the client.
    let stopping = std::time::Instant::now();
    agg.proc.signal("TERM");
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(chunk) = events.resp.chunk().await.expect("stream read") {
            let _ = chunk;
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end after SIGTERM");
    let status = agg.proc.wait_exit();
    assert!(status.success(), "aggregator exited with {status}");
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "stop with a page connected took {took:?}");
}
