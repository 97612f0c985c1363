//! Embedded history end to end: telemetry with chosen timestamps through
//! the embedded broker, per-minute rollups in SQLite, downsampled by the
//! history API; the same answers after a restart; a group's demand against
//! actual per forecast bucket.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use throughline_tests::*;

const TOKEN: &str = "history-planner-token";

pub(crate) fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A whole minute about 20 minutes ago: the data's second 0.
pub(crate) fn base() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now - now.rem_euclid(60), 0).unwrap() - Duration::minutes(20)
}

pub(crate) fn write_config(dir: &std::path::Path, site: &str) -> std::path::PathBuf {
    let path = dir.join("aggregator.toml");
    std::fs::write(
        &path,
        format!(
            r#"data_dir = "{data}"

[history]
flush_secs = 1
retention_days = 30

[[groups]]
id = "family-a"
kind = "line"

[[assets]]
site = "{site}"
id = "line-1"
kind = "line"
group = "family-a"
rated_capacity = 3600

[[assets]]
site = "{site}"
id = "line-2"
kind = "line"
group = "family-a"
rated_capacity = 3600

[[auth.tokens]]
name = "planner"
role = "planner"
token = "{TOKEN}"
"#,
            data = dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

pub(crate) fn start(config: &std::path::Path, mqtt: u16) -> Aggregator {
    start_aggregator(&[
        "--config",
        config.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        &format!("127.0.0.1:{mqtt}"),
    ])
}

/// Publish one envelope of `samples` (second offset from `base`, fields)
/// for `asset`, and wait until the aggregator has applied all of them.
pub(crate) async fn publish(
    agg: &Aggregator,
    mqtt: u16,
    site: &str,
    asset: &str,
    seq: u64,
    base: DateTime<Utc>,
    samples: &[(i64, Value)],
) {
    let samples: Vec<Value> = samples
        .iter()
        .map(|(secs, fields)| {
            let mut s = fields.clone();
            s["ts"] = json!(rfc(base + Duration::seconds(*secs)));
            s
        })
        .collect();
    let n = samples.len();
    let url = format!("{}/api/v1/assets/{site}/{asset}", agg.http);
    // rumqttd (the embedded broker) can close a new connection that reuses
    // the connection id of one still closing (the previous call's client):
    // seen as `incoming_disconnect` right after `Client connection
    // registered`. This client does not reconnect, so a publish that found
    // no connection is sent again by a new one (the same seq: applied once).
    let applied = || async { get_json(&url).await["samples"].as_u64().unwrap_or(0) >= n as u64 };
    let mut client = raw_client(mqtt, &unique("history-pub"));
    for _ in 0..3 {
        publish_telemetry(&client, site, "gw-history", asset, seq, json!(samples.clone())).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !applied().await && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if applied().await {
            break;
        }
        client = raw_client(mqtt, &unique("history-pub"));
    }
    wait_for(&format!("{n} samples of {asset} applied"), || async {
        let a = get_json(&url).await;
        if a["samples"].as_u64().unwrap_or(0) >= n as u64 {
            Ok(())
        } else {
            Err(a.to_string())
        }
    })
    .await;
    client.disconnect().await.unwrap();
}

/// Import three buckets of `family-a`: `[b, b + 3 min)` and
/// `[b + 3 min, b + 6 min)` with the given demand and uplift, and a
/// bucket of 1000 pieces from `b + 6 min` to `b + 30 min`.
pub(crate) async fn import_buckets(
    agg: &Aggregator,
    b: DateTime<Utc>,
    first: (u32, &str),
    second: (u32, &str),
) {
    let csv = format!(
        "group,start,end,demand,unit,uplift_pct\n\
         family-a,{},{},{},pieces,{}\n\
         family-a,{},{},{},pieces,{}\n\
         family-a,{},{},1000,pieces,\n",
        rfc(b),
        rfc(b + Duration::minutes(3)),
        first.0,
        first.1,
        rfc(b + Duration::minutes(3)),
        rfc(b + Duration::minutes(6)),
        second.0,
        second.1,
        rfc(b + Duration::minutes(6)),
        rfc(b + Duration::minutes(30)),
    );
    let (status, body) = post(&format!("{}/api/v1/forecasts", agg.http), "text/csv", Some(TOKEN), csv).await;
    assert_eq!(status, 200, "{body}");
}

/// `path` on `agg` for `[b, b + 30 min)`.
pub(crate) fn range_url(agg: &Aggregator, path: &str, b: DateTime<Utc>) -> String {
    format!("{}{path}?from={}&to={}", agg.http, rfc(b), rfc(b + Duration::minutes(30)))
}

/// `unknown` (a path naming group `family-z`) answers 404 naming it;
/// `path` over `[b + 30 min, b)` answers 400.
pub(crate) async fn refuses_unknown_group_and_reversed_range(
    agg: &Aggregator,
    unknown: &str,
    path: &str,
    b: DateTime<Utc>,
) {
    let (status, body) = get(&format!("{}{unknown}", agg.http)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("family-z"), "{body}");
    let reversed = format!("{}{path}?from={}&to={}", agg.http, rfc(b + Duration::minutes(30)), rfc(b));
    let (status, body) = get(&reversed).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("must be before"), "{body}");
}

pub(crate) async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn asset_history_is_downsampled_from_rollups_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-history";
    let config = write_config(dir.path(), site);
    let mqtt = free_port();
    let mut agg = start(&config, mqtt);
    agg.wait_mqtt_connected().await;
    let b = base();

    // 0..60 s running at 10 then 20 kW, 60 pieces; 60..90 down; 90..120
    // setup at 0 kW; 120..240 running, 120 pieces; 240: a 30 kW reading.
    publish(
        &agg,
        mqtt,
        site,
        "line-1",
        1,
        b,
        &[
            (0, json!({"output": 0, "state": "running", "load_kw": 10})),
            (30, json!({"output": 30, "state": "running", "load_kw": 20})),
            (60, json!({"output": 60, "state": "down", "reason": "jam"})),
            (90, json!({"output": 60, "state": "setup", "load_kw": 0})),
            (120, json!({"output": 60, "state": "running"})),
            (180, json!({"output": 120})),
            (240, json!({"output": 180, "load_kw": 30})),
        ],
    )
    .await;

    let http = agg.http.clone();
    let history = |http: &str, from: DateTime<Utc>, to: DateTime<Utc>, points: &str| {
        format!(
            "{http}/api/v1/assets/{site}/line-1/history?from={}&to={}&points={points}",
            rfc(from),
            rfc(to)
        )
    };
    let url = history(&http, b, b + Duration::minutes(4), "2");
    let h = get_json(&url).await;
    assert_eq!(
        (h["output_unit"].as_str(), h["step_seconds"].as_i64(), h["points"].as_i64()),
        (Some("pieces"), Some(120), Some(2)),
        "{h}"
    );
    let buckets = h["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{h}");
    assert_eq!(
        buckets[0],
        json!({
            "start": rfc(b), "end": rfc(b + Duration::minutes(2)),
            "output": 60.0, "rate_per_hour": 1800.0,
            // (10 x 30 + 20 x 30 + 20 x 30 + 0 x 30) kW s / 120 s
            "load_mean_kw": 12.5, "load_max_kw": 20.0,
            "seconds": {"running": 60.0, "idle": 0.0, "setup": 30.0, "maintenance": 0.0, "down": 30.0, "unknown": 0.0},
            "covered_seconds": 120.0, "samples": 4
        }),
        "{h}"
    );
    assert_eq!(
        buckets[1],
        json!({
            "start": rfc(b + Duration::minutes(2)), "end": rfc(b + Duration::minutes(4)),
            "output": 120.0, "rate_per_hour": 3600.0,
            "load_mean_kw": 0.0, "load_max_kw": 0.0,
            "seconds": {"running": 120.0, "idle": 0.0, "setup": 0.0, "maintenance": 0.0, "down": 0.0, "unknown": 0.0},
            "covered_seconds": 120.0, "samples": 2
        }),
        "{h}"
    );

    // One bucket a minute, with an empty minute before the data (nulls)
    // and the 30 kW reading alone in the last one.
    let fine = get_json(&history(&http, b - Duration::minutes(1), b + Duration::minutes(5), "2000")).await;
    let outputs: Vec<Value> =
        fine["buckets"].as_array().unwrap().iter().map(|x| x["output"].clone()).collect();
    assert_eq!(
        outputs,
        vec![Value::Null, json!(60.0), json!(0.0), json!(60.0), json!(60.0), json!(0.0)],
        "{fine}"
    );
    assert_eq!(fine["buckets"][0]["covered_seconds"], 0.0, "{fine}");
    assert_eq!(fine["buckets"][5]["load_max_kw"], 30.0, "{fine}");
    assert_eq!(fine["buckets"][5]["samples"], 1, "{fine}");

    // Bounds and errors, as JSON.
    for (query, status, needle) in [
        (history(&http, b, b + Duration::minutes(4), "2001"), 400, "points"),
        (history(&http, b, b + Duration::minutes(4), "0"), 400, "points"),
        (history(&http, b, b + Duration::minutes(4), "many"), 400, "points"),
        (history(&http, b + Duration::minutes(4), b, "10"), 400, "before"),
        (format!("{}/api/v1/assets/{site}/line-1/history?from=yesterday", agg.http), 400, "from"),
        (format!("{}/api/v1/assets/{site}/line-9/history", agg.http), 404, "line-9"),
    ] {
        let (got, body) = get(&query).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body["error"].as_str().unwrap_or_default().contains(needle), "{query}: {body}");
    }
    // Defaults: the last 24 hours in at most 200 buckets (whole minutes).
    let (got, d) = get(&format!("{}/api/v1/assets/{site}/line-1/history", agg.http)).await;
    assert_eq!(got, 200, "{d}");
    assert!(d["points"].as_u64().unwrap() <= 200 && d["step_seconds"].as_i64().unwrap() % 60 == 0, "{d}");
    let total: f64 = d["buckets"].as_array().unwrap().iter().filter_map(|x| x["output"].as_f64()).sum();
    assert_eq!(total, 180.0, "{d}");

    // The flusher wrote the minutes in batches, and says so.
    let metrics_url = format!("{}/metrics", agg.http);
    let text = wait_for("history flushes counted", || async {
        let text = get_text(&metrics_url).await;
        match metric(&text, "throughline_history_rows_written_total") {
            Some(n) if n >= 5.0 => Ok(text),
            _ => Err(text),
        }
    })
    .await;
    assert!(metric(&text, "throughline_history_flushes_total").unwrap() >= 1.0, "{text}");
    assert!(metric(&text, "throughline_history_flush_seconds_count").unwrap() >= 1.0, "{text}");
    assert_eq!(metric(&text, "throughline_history_rows_pruned_total"), Some(0.0), "{text}");

    // Restart on the same data dir: live state comes back as it was (the
    // checkpoint), the history from SQLite unchanged.
    let before = get_json(&format!("{}/api/v1/assets/{site}/line-1", agg.http)).await;
    agg.proc.stop();
    let mut agg = start(&config, free_port());
    let asset = get_json(&format!("{}/api/v1/assets/{site}/line-1", agg.http)).await;
    for key in
        ["samples", "output_counter", "output_total", "state", "state_since", "last_sample_ts", "load_kw"]
    {
        assert_eq!(asset[key], before[key], "{key}: {asset}");
    }
    let url = history(&agg.http, b, b + Duration::minutes(4), "2");
    assert_eq!(get_json(&url).await, h, "the same history after a restart");
    let fine_url = history(&agg.http, b - Duration::minutes(1), b + Duration::minutes(5), "2000");
    assert_eq!(get_json(&fine_url).await, fine);
    agg.proc.stop();
}

#[tokio::test]
async fn group_history_holds_demand_against_actual_per_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-group-history";
    let config = write_config(dir.path(), site);
    let mqtt = free_port();
    let mut agg = start(&config, mqtt);
    agg.wait_mqtt_connected().await;
    let b = base();

    // line-1 makes 60 pieces a minute, line-2 30, for six minutes.
    let run = |per_minute: i64| -> Vec<(i64, Value)> {
        (0..=6).map(|m| (m * 60, json!({"output": m * per_minute, "state": "running"}))).collect()
    };
    publish(&agg, mqtt, site, "line-1", 1, b, &run(60)).await;
    publish(&agg, mqtt, site, "line-2", 2, b, &run(30)).await;

    // Two closed buckets of 3 minutes, the second with a 10 % campaign,
    // and one under way from the last sample on.
    import_buckets(&agg, b, (200, ""), (300, "10")).await;
    let url = range_url(&agg, "/api/v1/groups/family-a/history", b);
    let g = get_json(&url).await;
    assert_eq!((g["group"].as_str(), g["kind"].as_str()), (Some("family-a"), Some("line")), "{g}");
    let buckets = g["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 3, "{g}");
    let pick = |x: &Value| {
        json!({
            "phase": x["phase"], "unit": x["unit"], "demand": x["demand"], "effective_demand": x["effective_demand"],
            "actual": x["actual"], "gap": x["gap"], "gap_pct": x["gap_pct"], "projected": x["projected"],
        })
    };
    // 180 + 90 pieces in each closed bucket.
    assert_eq!(
        pick(&buckets[0]),
        json!({"phase": "closed", "unit": "pieces", "demand": 200.0, "effective_demand": 200.0,
               "actual": 270.0, "gap": -70.0, "gap_pct": -35.0, "projected": null}),
        "{g}"
    );
    assert_eq!(
        pick(&buckets[1]),
        json!({"phase": "closed", "unit": "pieces", "demand": 300.0, "effective_demand": 330.0,
               "actual": 270.0, "gap": 60.0, "gap_pct": 18.181818, "projected": null}),
        "{g}"
    );
    let per_asset: Vec<(Value, Value)> = buckets[1]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["asset"].clone(), a["output"].clone()))
        .collect();
    assert_eq!(per_asset, vec![(json!("line-1"), json!(180.0)), (json!("line-2"), json!(90.0))], "{g}");
    // The bucket under way: nothing made yet, projected from the balance
    // at 3600 + 1800 pieces/h for the 24 minutes left.
    let open = &buckets[2];
    assert_eq!((open["phase"].as_str(), open["actual"].as_f64()), (Some("open"), Some(0.0)), "{g}");
    assert!((open["projected"].as_f64().unwrap() - 2160.0).abs() < 1e-3, "{g}");
    assert!((open["projected_gap"].as_f64().unwrap() - (1000.0 - 2160.0)).abs() < 1e-3, "{g}");

    refuses_unknown_group_and_reversed_range(
        &agg,
        "/api/v1/groups/family-z/history",
        "/api/v1/groups/family-a/history",
        b,
    )
    .await;

    // After a restart the actuals come from SQLite; the bucket under way
    // keeps what was made before it (per-minute history read back).
    agg.proc.stop();
    let mut agg = start(&config, free_port());
    let url = format!(
        "{}/api/v1/groups/family-a/history?from={}&to={}",
        agg.http,
        rfc(b),
        rfc(b + Duration::minutes(30))
    );
    let again = get_json(&url).await;
    for i in 0..2 {
        assert_eq!(pick(&again["buckets"][i]), pick(&buckets[i]), "{again}");
    }
    let made = get_json(&format!("{}/api/v1/balance?group=family-a", agg.http)).await;
    let closed: Vec<f64> =
        made["balances"].as_array().unwrap().iter().take(2).map(|x| x["made"].as_f64().unwrap()).collect();
    assert_eq!(closed, vec![270.0, 270.0], "balances made from the restored history: {made}");
    agg.proc.stop();
}
