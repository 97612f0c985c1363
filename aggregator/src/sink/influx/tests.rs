use super::*;
use chrono::{DateTime, TimeZone};
use throughline_shared::{AgentId, AssetId, Envelope, Sample, SiteId};

use crate::model::AssetConfig;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
}

fn ms(secs: f64) -> i64 {
    t0().timestamp_millis() + (secs * 1000.0) as i64
}

fn at(secs: f64) -> Sample {
    Sample::at(t0() + chrono::Duration::milliseconds((secs * 1000.0) as i64))
}

fn reg(asset: &str, group: &str) -> AssetConfig {
    AssetConfig {
        site: SiteId::parse("plant-1").unwrap(),
        id: AssetId::parse(asset).unwrap(),
        kind: AssetKind::Line,
        group: group.into(),
        rated_capacity: 3600.0,
        name: None,
        agents: Vec::new(),
    }
}

fn tel(asset: &str, seq: u64, samples: Vec<Sample>) -> Telemetry {
    Telemetry {
        site: SiteId::parse("plant-1").unwrap(),
        asset: AssetId::parse(asset).unwrap(),
        envelope: Envelope { v: 1, agent: AgentId::parse("gw-1").unwrap(), seq, samples },
    }
}

/// Apply a message as ingest does and return its lines.
fn apply(live: &mut LiveState, t: &Telemetry) -> String {
    let out = live.apply_telemetry(t, t0());
    assert!(!out.duplicate);
    lines(&points(t, &out, live))
}

fn lines(points: &Points) -> String {
    let mut s = String::new();
    points.write_lines(&mut s);
    s
}

#[test]
fn held_points_stay_small() {
    // docs/timeseries.md states the buffer's memory from these sizes.
    assert!(std::mem::size_of::<Point>() <= 64);
    assert!(std::mem::size_of::<Points>() <= 48);
}

#[test]
fn state_codes_are_fixed() {
    let codes: Vec<_> = AssetState::ALL.iter().map(|s| (s.as_str(), state_code(Some(*s)))).collect();
    assert_eq!(codes, [("running", 1), ("idle", 2), ("down", 5), ("setup", 3), ("maintenance", 4)]);
    assert_eq!(state_code(None), 0);
}

#[test]
fn floats_are_written_short_and_exact() {
    for (v, want) in [
        (120.0, "120"),
        (-3.0, "-3"),
        (40.5, "40.5"),
        (0.1, "0.1"),
        (36000.125, "36000.125"),
        (1e20, "1e20"),
        (123456.789e-12, "1.23456789e-7"),
    ] {
        let mut s = String::new();
        write_float(v, &mut s);
        assert_eq!(s, want, "{v}");
        assert_eq!(s.parse::<f64>().unwrap(), v);
    }
}

#[test]
fn tag_values_are_escaped() {
    let mut s = String::new();
    escape_tag(r"family a,b=c\d", &mut s);
    assert_eq!(s, r"family\ a\,b\=c\\d");
    s.clear();
    escape_tag("two\nlines", &mut s);
    assert_eq!(s, r"two\ lines");
    s.clear();
    escape_tag("", &mut s);
    assert_eq!(s, "_");
}

#[test]
fn a_registered_line_gives_samples_state_changes_and_its_rate() {
    let mut live = LiveState::new(&[reg("press-1", "family a")], chrono::Duration::seconds(300));
    let s1 = Sample { output: Some(100.0), state: Some(AssetState::Running), load_kw: Some(40.5), ..at(0.0) };
    let s2 = Sample { output: Some(110.0), state: Some(AssetState::Running), load_kw: Some(41.0), ..at(1.0) };
    let s3 = Sample {
        output: Some(120.0),
        state: Some(AssetState::Down),
        reason: Some("jam, belt".into()),
        ..at(2.0)
    };
    // Another asset's message first, and seq 2 left out: the late message
    // below fills that gap (a replay, not the agent's clock stepping back).
    apply(&mut live, &tel("press-2", 1, vec![Sample { output: Some(1.0), ..at(0.0) }]));
    let got = apply(&mut live, &tel("press-1", 3, vec![s1, s2, s3]));
    let tags = r"agent=gw-1,asset=press-1,group=family\ a,kind=line,site=plant-1";
    let want = format!(
        "throughline_state_change,{tags},state=running state_code=1i {t0}\n\
         throughline_asset,{tags} output=100,load_kw=40.5,state_code=1i {t0}\n\
         throughline_asset,{tags} output=110,load_kw=41,state_code=1i {t1}\n\
         throughline_state_change,{tags},reason=jam\\,\\ belt,state=down state_code=5i {t2}\n\
         throughline_asset,{tags} output=120,rate_per_hour=36000,state_code=5i {t2}\n",
        t0 = ms(0.0),
        t1 = ms(1.0),
        t2 = ms(2.0)
    );
    assert_eq!(got, want);

    // A late sample is written with its own time, without a rate and
    // without a state change; the state it carries is still its field.
    let late = Sample { output: Some(115.0), state: Some(AssetState::Idle), ..at(1.5) };
    let got = apply(&mut live, &tel("press-1", 2, vec![late]));
    assert_eq!(got, format!("throughline_asset,{tags} output=115,state_code=2i {}\n", ms(1.5)));

    // Still down: no change; a reason-only sample carries no field.
    let got = apply(
        &mut live,
        &tel(
            "press-1",
            4,
            vec![
                Sample { reason: Some("jam".into()), ..at(3.0) },
                Sample { state: Some(AssetState::Down), ..at(4.0) },
            ],
        ),
    );
    assert_eq!(got, format!("throughline_asset,{tags} rate_per_hour=36000,state_code=5i {}\n", ms(4.0)));
}

#[test]
fn an_unregistered_asset_has_no_group_or_kind() {
    let mut live = LiveState::new(&[], chrono::Duration::seconds(300));
    let got = apply(&mut live, &tel("mixer-9", 1, vec![Sample { load_kw: Some(7.25), ..at(0.0) }]));
    assert_eq!(
        got,
        format!("throughline_asset,agent=gw-1,asset=mixer-9,site=plant-1 load_kw=7.25 {}\n", ms(0.0))
    );
}

/// One message's points with timestamps (and outputs) `range`.
fn chunk(range: std::ops::Range<i64>) -> Points {
    let lines = range
        .map(|i| Point {
            ts_ms: i,
            what: What::Sample { output: Some(i as f64), load_kw: None, state: None, rate_per_hour: None },
        })
        .collect();
    Points { series: Arc::from("asset=a"), lines, start: 0 }
}

fn stamps(r: &Ring) -> Vec<i64> {
    r.chunks.iter().flat_map(|c| c.lines[c.start..].iter().map(|p| p.ts_ms)).collect()
}

fn batch_stamps(b: &Batch) -> Vec<i64> {
    b.iter().flat_map(|c| c.lines[c.start..].iter().map(|p| p.ts_ms)).collect()
}

#[test]
fn the_ring_drops_the_oldest_and_keeps_order_on_put_back() {
    let mut r = Ring::new(4);
    assert_eq!(r.push(chunk(0..3)), 0);
    assert_eq!(r.push(chunk(3..6)), 2);
    assert_eq!(stamps(&r), [2, 3, 4, 5]);
    // A batch in flight (splitting a message); two more arrive meanwhile
    // (room while it is out).
    let batch = r.take(3);
    assert_eq!(batch_stamps(&batch), [2, 3, 4]);
    assert_eq!((r.len(), r.held()), (1, 4));
    assert_eq!(r.push(chunk(6..8)), 0);
    // The write failed: the batch goes back in front, the oldest beyond
    // capacity are dropped.
    assert_eq!(r.put_back(batch), 2);
    assert_eq!(stamps(&r), [4, 5, 6, 7]);
    assert_eq!(r.held(), 4);
    // More at once than the capacity: only the newest stay.
    assert_eq!(r.push(chunk(8..14)), 6);
    assert_eq!(stamps(&r), [10, 11, 12, 13]);
    assert_eq!(r.push(chunk(14..14)), 0);
    let batch = r.take(10);
    assert_eq!(batch_stamps(&batch), [10, 11, 12, 13]);
    assert_eq!(batch_len(&batch), 4);
    r.done();
    assert_eq!((r.held(), r.is_empty()), (0, true));
    // Batches cut across messages and keep their order.
    for i in 0..4 {
        r.push(chunk(i * 3..i * 3 + 3));
    }
    let mut all = Vec::new();
    loop {
        let b = r.take(5);
        if b.is_empty() {
            break;
        }
        assert!(batch_len(&b) <= 4, "capacity 4 keeps the newest 4");
        all.extend(batch_stamps(&b));
        r.done();
    }
    assert_eq!(all, [8, 9, 10, 11]);
}

/// A fake write endpoint: fails the first `fail` requests with `status`,
/// records the bodies of the others.
#[derive(Debug, Default)]
struct Fake {
    fail: usize,
    status: u16,
    requests: usize,
    bodies: Vec<String>,
    queries: Vec<String>,
    auth: Vec<String>,
}

async fn fake_server(fake: Arc<Mutex<Fake>>) -> String {
    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};
    async fn write(
        State(fake): State<Arc<Mutex<Fake>>>,
        RawQuery(q): RawQuery,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        let mut f = fake.lock().unwrap();
        f.requests += 1;
        f.queries.push(q.unwrap_or_default());
        f.auth.push(headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string());
        if f.requests <= f.fail {
            return StatusCode::from_u16(f.status).unwrap();
        }
        f.bodies.push(body);
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new().route("/api/v2/write", axum::routing::post(write)).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn settings(url: &str, batch: usize, buffer: usize) -> Settings {
    Settings {
        url: url.into(),
        org: "plant".into(),
        bucket: "tl".into(),
        token: Token::new("s3cret".into()),
        batch_points: batch,
        flush: Duration::from_millis(20),
        buffer_points: buffer,
        timeout: Duration::from_millis(2000),
        backoff: (Duration::from_millis(10), Duration::from_millis(40)),
        shutdown_flush: Duration::from_millis(300),
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_writer_retries_in_order_and_counts() {
    let fake = Arc::new(Mutex::new(Fake { fail: 2, status: 503, ..Fake::default() }));
    let url = fake_server(fake.clone()).await;
    let metrics = InfluxMetrics::default();
    let sink = InfluxSink::new(settings(&url, 2, 100), metrics.clone());
    assert!(!format!("{sink:?}").contains("s3cret"));
    let stop = CancellationToken::new();
    let task = tokio::spawn(sink.clone().run(stop.clone()));
    for i in 0..5 {
        sink.push(chunk(i..i + 1));
    }
    until("all points written", || metrics.points_written.get() == 5).await;
    {
        let f = fake.lock().unwrap();
        let all: String = f.bodies.concat();
        let want: String = (0..5).map(|i| lines(&chunk(i..i + 1))).collect();
        assert_eq!(all, want, "order kept across retries");
        assert!(
            f.queries.iter().all(|q| q.contains("bucket=tl") && q.contains("precision=ms")),
            "{:?}",
            f.queries
        );
        assert!(f.auth.iter().all(|a| a == "Token s3cret"), "{:?}", f.auth);
    }
    assert_eq!(metrics.write_failures.get(), 2);
    assert_eq!(metrics.buffer_points.get(), 0);
    assert!(metrics.last_success.get() > 0);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(metrics.dropped("shutdown").get(), 0);
    assert_eq!(metrics.dropped("buffer_full").get(), 0);
}

#[tokio::test]
async fn a_refused_batch_is_dropped_and_counted_not_retried() {
    let fake = Arc::new(Mutex::new(Fake { fail: 1, status: 400, ..Fake::default() }));
    let url = fake_server(fake.clone()).await;
    let metrics = InfluxMetrics::default();
    let sink = InfluxSink::new(settings(&url, 2, 100), metrics.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(sink.clone().run(stop.clone()));
    sink.push(chunk(0..2));
    until("the refusal", || metrics.dropped("rejected").get() == 2).await;
    sink.push(chunk(2..3));
    until("the next point", || metrics.points_written.get() == 1).await;
    assert_eq!(metrics.write_failures.get(), 0);
    assert_eq!(fake.lock().unwrap().bodies.concat(), lines(&chunk(2..3)));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_dead_server_never_blocks_push_and_stop_counts_what_is_left() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = InfluxMetrics::default();
    let sink = InfluxSink::new(settings(&format!("http://127.0.0.1:{port}"), 2, 4), metrics.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(sink.clone().run(stop.clone()));
    let start = Instant::now();
    for i in 0..6 {
        sink.push(chunk(i..i + 1));
    }
    assert!(start.elapsed() < Duration::from_millis(50), "push waited: {:?}", start.elapsed());
    until("failures and drops", || {
        metrics.write_failures.get() >= 2 && metrics.dropped("buffer_full").get() == 2 && sink.held() == 4
    })
    .await;
    assert_eq!(metrics.buffer_points.get(), 4);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(metrics.dropped("shutdown").get(), 4);
    assert_eq!(metrics.buffer_points.get(), 0);
    assert_eq!(metrics.points_written.get(), 0);
    // After the stop, points are counted, not kept.
    sink.push(chunk(9..10));
    assert_eq!((sink.held(), metrics.dropped("shutdown").get()), (0, 5));
}

#[tokio::test]
async fn a_stop_does_not_wait_for_a_hanging_server() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let metrics = InfluxMetrics::default();
    let sink = InfluxSink::new(settings(&url, 2, 100), metrics.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(sink.clone().run(stop.clone()));
    sink.push(chunk(0..3));
    // The first batch (2 points) is in flight, one point waits.
    until("a write in flight", || sink.inner.ring.lock().unwrap().in_flight == 2).await;
    let start = Instant::now();
    stop.cancel();
    task.await.unwrap();
    // shutdown_flush is 300 ms in these settings; the write timeout 2 s.
    assert!(start.elapsed() < Duration::from_millis(1500), "stop took {:?}", start.elapsed());
    assert_eq!(metrics.dropped("shutdown").get(), 3);
    assert_eq!((metrics.points_written.get(), sink.held()), (0, 0));
}
