//! What one HTTP client can cost, against the real binary (issues 23 and
//! 18): a big forecast import runs while `/healthz` and ingest go on; a CLI
//! import beside a running aggregator fails none of its writes; slow and
//! idle clients are closed and counted, and the connection cap holds;
//! bad input (oversized, binary, a million bad rows, duplicate keys, path
//! traversal, huge headers, wrong tokens) is refused with a JSON error and
//! stores nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use throughline_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `rows` consecutive 10-minute buckets of `family-a` from 2027-01-01.
fn year_csv(rows: usize) -> String {
    let t0 = chrono::DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z").unwrap().to_utc();
    let mut s = String::from("group,start,end,demand,unit,uplift_pct\n");
    for i in 0..rows {
        let a = t0 + chrono::Duration::minutes(10 * i as i64);
        let b = a + chrono::Duration::minutes(10);
        s.push_str(&format!(
            "family-a,{},{},{},pieces,0\n",
            a.format("%Y-%m-%dT%H:%M:%SZ"),
            b.format("%Y-%m-%dT%H:%M:%SZ"),
            100 + i % 7
        ));
    }
    s
}

async fn forecast_count(http: &str) -> usize {
    let v = get_json(&format!("{http}/api/v1/forecasts?group=family-a")).await;
    v["forecasts"].as_array().map_or(0, Vec::len)
}

/// A raw request; returns the status and body the server sent before it
/// closed or answered (reads until the body's Content-Length or EOF).
async fn raw(http: &str, request: &[u8]) -> (u16, String) {
    let addr = http.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if len.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

async fn healthz_ok(http: &str) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    matches!(client.get(format!("{http}/healthz")).send().await, Ok(r) if r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_ingest_keep_answering_while_a_big_import_runs() {
    let dir = tempfile::tempdir().unwrap();
    let site = unique("imp");
    let config = write_plant_config(dir.path(), &site, "[history]\nflush_secs = 1\n");
    let (agg, mqtt) = start_plant_on_free_port(dir.path(), &config);
    agg.wait_mqtt_connected().await;
    let rows = 150_000;
    let body = year_csv(rows);
    let url = format!("{}/api/v1/forecasts", agg.http);
    let import = tokio::spawn(async move { post(&url, "text/csv", Some(TOKEN), body).await });

    // While it runs: /healthz answers each time, and a sample published now
    // is applied before the import is done.
    let client = raw_client(mqtt, &unique("pub"));
    let agent = unique("gw");
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    let mut seq = 1;
    let mut seen_while_importing = false;
    let start = Instant::now();
    while !import.is_finished() {
        assert!(start.elapsed() < Duration::from_secs(240), "the import did not finish in 240 s");
        let t = Instant::now();
        assert!(healthz_ok(&agg.http).await, "/healthz did not answer during the import");
        slowest = slowest.max(t.elapsed());
        answered += 1;
        if !seen_while_importing {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            publish_telemetry(
                &client,
                &site,
                &agent,
                "line-1",
                seq,
                json!([{"ts": ts, "output": seq * 10, "state": "running"}]),
            )
            .await;
            seq += 1;
            let a = get_json(&format!("{}/api/v1/assets/{site}/line-1", agg.http)).await;
            if a["samples"].as_u64().unwrap_or(0) >= 1 {
                seen_while_importing = !import.is_finished();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, answer) = import.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"], rows, "{answer}");
    assert!(
        answered >= 3,
        "the import ended before /healthz was asked three times ({answered}); make it bigger"
    );
    assert!(seen_while_importing, "no sample was applied while the import ran");
    assert!(slowest < Duration::from_secs(2), "/healthz took {slowest:?} during the import");
    assert_eq!(forecast_count(&agg.http).await, rows);
    let m = get_text(&format!("{}/metrics", agg.http)).await;
    assert_eq!(metric(&m, "throughline_history_flush_failures_total"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_import_beside_a_running_aggregator_fails_none_of_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let site = unique("cli");
    let config = write_plant_config(dir.path(), &site, "[history]\nflush_secs = 1\n");
    let (agg, mqtt) = start_plant_on_free_port(dir.path(), &config);
    agg.wait_mqtt_connected().await;
    let file = dir.path().join("year.csv");
    std::fs::write(&file, year_csv(100_000)).unwrap();
    // Keep the aggregator writing history while the CLI writes the store.
    let client = raw_client(mqtt, &unique("pub"));
    let agent = unique("gw");
    let mut cli = tokio::process::Command::new(bin("aggregator"))
        .args(["--config", config.to_str().unwrap(), "--data-dir", dir.path().join("data").to_str().unwrap()])
        .arg("import-forecast")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // And an HTTP import at the same time, into the other group.
    let http_body = "group,start,end,demand,unit\nregion-north,2028-01-01,2028-01-02,5,kWh\n".to_string();
    let url = format!("{}/api/v1/forecasts", agg.http);
    let http_import = tokio::spawn(async move { post(&url, "text/csv", Some(TOKEN), http_body).await });
    let mut seq = 1u64;
    let done = loop {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        publish_telemetry(&client, &site, &agent, "line-1", seq, json!([{"ts": ts, "output": seq * 10}]))
            .await;
        seq += 1;
        if let Some(status) = cli.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(done.success(), "CLI import: {done}");
    let (status, answer) = http_import.await.unwrap();
    assert_eq!(status, 200, "HTTP import beside the CLI one: {answer}");
    // Two more flushes after the CLI's write: none failed, the store is fine.
    // A flush with nothing new is not one, so telemetry keeps coming.
    let m0 = get_text(&format!("{}/metrics", agg.http)).await;
    let flushes = metric(&m0, "throughline_history_flushes_total").unwrap_or(0.0);
    let seq = std::sync::atomic::AtomicU64::new(seq);
    wait_for("two more history flushes", || async {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        publish_telemetry(&client, &site, &agent, "line-1", n, json!([{"ts": ts, "output": n * 10}])).await;
        let m = get_text(&format!("{}/metrics", agg.http)).await;
        let n = metric(&m, "throughline_history_flushes_total").unwrap_or(0.0);
        if n >= flushes + 2.0 {
            Ok(m)
        } else {
            Err(format!("{n} flushes"))
        }
    })
    .await;
    let m = get_text(&format!("{}/metrics", agg.http)).await;
    assert_eq!(metric(&m, "throughline_history_flush_failures_total"), Some(0.0), "a flush failed");
    let h = get_json(&format!("{}/healthz", agg.http)).await;
    assert_eq!(h["status"], "ok", "{h}");
    // The running aggregator picks the CLI's import up.
    wait_for("the CLI's buckets in force", || async {
        let n = forecast_count(&agg.http).await;
        if n == 100_000 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
}

fn limits_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let site = unique("lim");
    write_plant_config(dir, &site, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_closed_and_counted_and_healthz_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let config = limits_config(
        dir.path(),
        "[http]\nheader_timeout_secs = 2\nidle_timeout_secs = 3\nmax_connections = 30\n",
    );
    let (agg, _) = start_plant_on_free_port(dir.path(), &config);
    let addr = agg.http.trim_start_matches("http://").to_string();
    // 20 slowloris clients: a request line, then one header byte every 300 ms.
    let mut slow = Vec::new();
    for i in 0..20 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            let opened = Instant::now();
            s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").as_bytes())
                .await
                .unwrap();
            let mut byte = [0u8; 1];
            loop {
                tokio::select! {
                    r = s.read(&mut byte) => {
                        // Closed by the server (EOF, or a 408 then EOF).
                        if matches!(r, Ok(0) | Err(_)) { return opened.elapsed(); }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {
                        if s.write_all(b"a").await.is_err() { return opened.elapsed(); }
                    }
                }
                assert!(opened.elapsed() < Duration::from_secs(30), "a slow client was held for 30 s");
            }
        }));
    }
    // Meanwhile /healthz answers.
    for _ in 0..5 {
        assert!(healthz_ok(&agg.http).await, "/healthz did not answer beside the slow clients");
    }
    for s in slow {
        let held = s.await.unwrap();
        assert!(held < Duration::from_secs(10), "a slow client was held for {held:?}");
    }
    // An idle keep-alive connection: one request, then silence; closed.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let opened = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(15), idle.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("an idle connection was still open after 15 s"),
        }
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert!(opened.elapsed() >= Duration::from_secs(1), "closed before any limit: {:?}", opened.elapsed());
    let m = get_text(&format!("{}/metrics", agg.http)).await;
    let header = metric(&m, "throughline_http_connections_closed_total{reason=\"header_timeout\"}").unwrap();
    let idle_closed =
        metric(&m, "throughline_http_connections_closed_total{reason=\"idle_timeout\"}").unwrap();
    assert!(header + idle_closed >= 21.0, "header {header}, idle {idle_closed}");
    assert!(header >= 20.0, "the slow clients count as header timeouts: {header}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = limits_config(dir.path(), "[http]\nheader_timeout_secs = 3\nmax_connections = 10\n");
    let (agg, _) = start_plant_on_free_port(dir.path(), &config);
    let addr = agg.http.trim_start_matches("http://").to_string();
    // Ten silent connections take every slot ...
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    wait_for("ten connections served", || async {
        // /metrics cannot be asked now (no slot): a new connection is
        // closed at once instead, which is what is tested.
        let mut s = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut b = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
            other => Err(format!("the 11th connection was answered: {other:?}")),
        }
    })
    .await;
    // ... until the header timeout frees them; then /healthz answers again.
    wait_for("a slot after the header timeout", || async {
        if healthz_ok(&agg.http).await {
            Ok(())
        } else {
            Err("no answer".into())
        }
    })
    .await;
    let m = get_text(&format!("{}/metrics", agg.http)).await;
    assert!(metric(&m, "throughline_http_connections_refused_total").unwrap() >= 1.0);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_input_is_refused_with_a_json_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = limits_config(dir.path(), "[http]\nmax_import_bytes = 8388608\nbody_timeout_secs = 3\n");
    let (agg, _) = start_plant_on_free_port(dir.path(), &config);
    let http = agg.http.clone();
    let url = format!("{http}/api/v1/forecasts");
    let good = "group,start,end,demand,unit\nfamily-a,2027-01-01,2027-01-02,5,pieces\n".to_string();

    // Writes with no, a viewer's and a wrong token.
    let (s, v) = post(&url, "text/csv", None, good.clone()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (401, "this needs `Authorization: Bearer <token>`"));
    let (s, v) = post(&url, "text/csv", Some("viewer-token"), good.clone()).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("has role Viewer"), "{v}");
    let (s, v) = post(&url, "text/csv", Some("nope"), good.clone()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (401, "unknown token"));
    // An empty ?token= matches nothing.
    let (s, body) =
        raw(&http, b"GET /api/v1/events?token= HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("empty token"), "{body}");

    // A body that never comes, without a token: refused before it is read.
    let t = Instant::now();
    let (s, body) = raw(
        &http,
        b"POST /api/v1/forecasts HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await;
    assert_eq!(s, 401, "{body}");
    assert!(t.elapsed() < Duration::from_secs(3), "answered after {:?}", t.elapsed());
    // With a token, the same stalled body ends in 408 after body_timeout_secs.
    let (s, body) = raw(
        &http,
        format!("POST /api/v1/forecasts HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\ngroup,start").as_bytes(),
    )
    .await;
    assert_eq!(s, 408, "{body}");
    assert!(body.contains("http.body_timeout_secs"), "{body}");

    // A 50 MB file: 413, named limit.
    let big = year_csv(800_000);
    assert!(big.len() > 50_000_000, "{}", big.len());
    let (s, v) = post(&url, "text/csv", Some(TOKEN), big).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("http.max_import_bytes (8388608 bytes)"), "{v}");
    // The same, announced and waiting for 100-continue: answered at once.
    let (s, body) = raw(&http, format!("POST /api/v1/forecasts HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: 50000000\r\n\r\n").as_bytes()).await;
    assert_eq!(s, 413, "{body}");

    // A million bad rows: the first 100 listed, all counted, a short answer.
    let mut bad = String::from("group,start,end,demand,unit\n");
    bad.push_str(&"x,,,,\n".repeat(1_000_000));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/csv")
        .bearer_auth(TOKEN)
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let text = resp.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "a {} byte answer", text.len());
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["errors"].as_array().unwrap().len(), 100);
    assert_eq!(v["errors_total"], 5_000_000);
    assert!(v["error"].as_str().unwrap().contains("5000000 error(s); the first 100 are listed"), "{v}");

    // Binary, a key twice, demand x uplift overflowing.
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/csv")
        .bearer_auth(TOKEN)
        .body(binary)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().starts_with("the body is not UTF-8 text"), "{v}");
    let twice = r#"[{"group":"family-a","start":"2027-01-01","end":"2027-01-02","demand":-1,"demand":5,"unit":"pieces"}]"#;
    let (s, v) = post(&url, "application/json", Some(TOKEN), twice.into()).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("duplicate key `demand`"), "{v}");
    let inf = "group,start,end,demand,unit,uplift_pct\nfamily-a,2027-01-01,2027-01-02,1e308,pieces,1e300\n";
    let (s, v) = post(&url, "text/csv", Some(TOKEN), inf.into()).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("not a finite number"), "{v}");
    assert_eq!(forecast_count(&http).await, 0, "something of a refused file was stored");

    // The dashboard's files: no way out of the embedded list.
    for path in [
        "/assets/../Cargo.toml",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/assets/app.js%00.css",
    ] {
        let (s, body) =
            raw(&http, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
                .await;
        assert_eq!(s, 404, "{path}: {body}");
        assert!(body.starts_with("{\"error\":"), "{path}: {body}");
        assert!(!body.contains("[workspace]") && !body.contains("root:"), "{path}: {body}");
    }
    // Oversized headers: refused by the server (431), and it goes on.
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000));
    let (s, _) = raw(&http, huge.as_bytes()).await;
    assert_eq!(s, 431);
    // Errors the router makes itself are JSON too.
    let resp = reqwest::Client::new().delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("GET") && v["error"].as_str().unwrap().contains("POST"),
        "{v}"
    );
    let (s, v) = post(
        &format!("{http}/api/v1/alerts/not-a-number/ack"),
        "application/json",
        Some(TOKEN),
        String::new(),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not-a-number"), "{v}");
    let resp = reqwest::get(format!("{http}/api/v1/forecasts?versions=x&from=nope")).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    // The bearer scheme in any case; the server still serves.
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/csv")
        .header("authorization", format!("BEARER {TOKEN}"))
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(forecast_count(&http).await, 1);
    assert!(healthz_ok(&http).await);
    let m = get_text(&format!("{http}/metrics")).await;
    assert!(metric(&m, "throughline_forecast_imports_cut_total{reason=\"too_large\"}").unwrap() >= 2.0);
    assert_eq!(metric(&m, "throughline_forecast_imports_cut_total{reason=\"body_timeout\"}"), Some(1.0));
}

#[test]
fn blank_and_repeated_tokens_are_refused_at_config_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        "[[auth.tokens]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"  \"\n\
         [[auth.tokens]]\nname = \"b\"\nrole = \"viewer\"\ntoken = \"s3cret-token\"\n\
         [[auth.tokens]]\nname = \"c\"\nrole = \"admin\"\ntoken = \"s3cret-token\"\n",
    )
    .unwrap();
    let err = aggregator_check_fails(&config);
    assert!(err.contains("auth.tokens[0].token: is empty or blank"), "{err}");
    assert!(
        err.contains(
            "auth.tokens[2].token: the same token as auth.tokens[1] (`b`, Viewer there, Admin here)"
        ),
        "{err}"
    );
    assert!(!err.contains("s3cret-token"), "a secret in the message: {err}");
}
