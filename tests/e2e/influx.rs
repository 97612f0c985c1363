//! The InfluxDB sink against a real server: a VictoriaMetrics of the test's
//! own (Debian's `victoria-metrics`, which speaks the InfluxDB v2 write API)
//! receives what the aggregator ingests, and the points are read back through
//! its export API with their exact values, labels and sample timestamps.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::QoS;
use serde_json::json;
use throughline_tests::*;

const TOKEN_ENV: &str = "THROUGHLINE_TEST_INFLUX_TOKEN";
const SITE: &str = "plant-i";
const AGENT: &str = "gw-influx";

/// One series as VictoriaMetrics stores it: name and labels, then
/// `(timestamp ms, value)` in time order.
type Series = BTreeMap<String, String>;
type Points = Vec<(i64, f64)>;

fn write_config(dir: &Path, vm_url: &str, extra: &str) -> String {
    let path = dir.join("aggregator.toml");
    std::fs::write(
        &path,
        format!(
            "[influxdb]\nurl = \"{vm_url}\"\norg = \"plant\"\nbucket = \"throughline\"\ntoken_env = \"{TOKEN_ENV}\"\nflush_ms = 100\n{extra}\n\
             [[assets]]\nsite = \"{SITE}\"\nid = \"press-1\"\nkind = \"line\"\ngroup = \"family-a\"\nrated_capacity = 3600\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn start(dir: &Path, config: &str) -> (Aggregator, u16) {
    let mqtt = free_port();
    let agg = start_aggregator_env(
        &[
            "--config",
            config,
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            &format!("127.0.0.1:{mqtt}"),
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ],
        &[(TOKEN_ENV, "tok-e2e-not-checked-by-victoria-metrics")],
    );
    (agg, mqtt)
}

/// Whole seconds, ten minutes ago: recent enough for the server's retention,
/// old enough not to be a future timestamp anywhere.
fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() - 600, 0).unwrap()
}

fn at(t0: DateTime<Utc>, ms: i64) -> (String, i64) {
    let t = t0 + chrono::Duration::milliseconds(ms);
    (t.to_rfc3339_opts(SecondsFormat::Millis, true), t.timestamp_millis())
}

async fn publish(client: &rumqttc::AsyncClient, asset: &str, seq: u64, samples: serde_json::Value) {
    let topic = format!("throughline/v1/{SITE}/{AGENT}/{asset}/telemetry");
    let payload = json!({"v": 1, "agent": AGENT, "seq": seq, "samples": samples}).to_string();
    client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut s: Series = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    s.insert("__name__".into(), name.into());
    s
}

fn press_labels() -> Vec<(&'static str, &'static str)> {
    vec![("agent", AGENT), ("asset", "press-1"), ("group", "family-a"), ("kind", "line"), ("site", SITE)]
}

/// Everything the server holds under `throughline_*`, as series -> points.
async fn stored(vm: &VictoriaMetrics) -> BTreeMap<Series, Points> {
    let mut out = BTreeMap::new();
    for s in vm.export("throughline_.*").await {
        let labels: Series = s["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().into()))
            .collect();
        let ts = s["timestamps"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap());
        let vs = s["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap());
        let mut points: Points = ts.zip(vs).collect();
        points.sort_by_key(|p| p.0);
        out.insert(labels, points);
    }
    out
}

async fn wait_stored(vm: &VictoriaMetrics, want: &BTreeMap<Series, Points>) {
    wait_for("the points in VictoriaMetrics", || async {
        let got = stored(vm).await;
        if &got == want {
            Ok(())
        } else {
            Err(format!("\nwant {want:#?}\ngot  {got:#?}"))
        }
    })
    .await
}

/// Wait until each metric has exactly its value.
async fn wait_metrics(http: &str, what: &str, want: &[(&str, f64)]) {
    let url = format!("{http}/metrics");
    wait_for(what, || async {
        let text = get_text(&url).await;
        let off: Vec<_> = want
            .iter()
            .filter(|(series, v)| metric(&text, series) != Some(*v))
            .map(|(series, v)| format!("{series} = {:?}, want {v}", metric(&text, series)))
            .collect();
        if off.is_empty() {
            Ok(())
        } else {
            Err(off.join("; "))
        }
    })
    .await
}

#[tokio::test]
async fn accepted_samples_reach_the_server_with_their_tags_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = VictoriaMetrics::start(dir.path()) else { return };
    let config = write_config(dir.path(), &vm.url(), "");
    let (mut agg, mqtt) = start(dir.path(), &config);
    agg.wait_mqtt_connected().await;
    let client = raw_client(mqtt, &unique("influx-pub"));

    let t0 = base_time();
    let (s0, m0) = at(t0, 0);
    let (s1, m1) = at(t0, 1000);
    let (s15, m15) = at(t0, 1500);
    let (s2, m2) = at(t0, 2000);
    let first = json!([
        {"ts": s0, "output": 100, "state": "running", "load_kw": 40.5},
        {"ts": s1, "output": 110, "state": "running", "load_kw": 41},
        {"ts": s2, "output": 120, "state": "down", "reason": "jam"},
    ]);
    publish(&client, "press-1", 1, first.clone()).await;
    // seq 2 is left for the late sample below (a late fill of that gap).
    publish(&client, "mixer-9", 3, json!([{"ts": s0, "load_kw": 7.25}])).await;
    // A repeat of seq 1 is dropped by ingest and never written.
    publish(&client, "press-1", 1, first).await;
    // A late sample is real data: written with its own time.
    publish(&client, "press-1", 2, json!([{"ts": s15, "output": 115}])).await;

    // 3 + 1 + 1 sample points and 2 state changes.
    wait_metrics(
        &agg.http,
        "every point written",
        &[
            ("throughline_messages_ingested_total", 3.0),
            ("throughline_duplicate_messages_total", 1.0),
            ("throughline_influx_points_written_total", 7.0),
            ("throughline_influx_buffer_points", 0.0),
        ],
    )
    .await;

    let press = press_labels();
    let mut with_state = press.clone();
    with_state.push(("state", "running"));
    let mut down = press.clone();
    down.extend([("state", "down"), ("reason", "jam")]);
    let want: BTreeMap<Series, Points> = [
        (
            series("throughline_asset_output", &press),
            vec![(m0, 100.0), (m1, 110.0), (m15, 115.0), (m2, 120.0)],
        ),
        (series("throughline_asset_load_kw", &press), vec![(m0, 40.5), (m1, 41.0)]),
        (series("throughline_asset_state_code", &press), vec![(m0, 1.0), (m1, 1.0), (m2, 5.0)]),
        // (120 - 100) pieces in 2 s.
        (series("throughline_asset_rate_per_hour", &press), vec![(m2, 36000.0)]),
        (series("throughline_state_change_state_code", &with_state), vec![(m0, 1.0)]),
        (series("throughline_state_change_state_code", &down), vec![(m2, 5.0)]),
        // Unregistered: no group, no kind.
        (
            series("throughline_asset_load_kw", &[("agent", AGENT), ("asset", "mixer-9"), ("site", SITE)]),
            vec![(m0, 7.25)],
        ),
    ]
    .into_iter()
    .collect();
    wait_stored(&vm, &want).await;

    let text = get_text(&format!("{}/metrics", agg.http)).await;
    assert!(metric(&text, "throughline_influx_last_success_timestamp_seconds").unwrap() > 0.0, "{text}");
    for reason in ["buffer_full", "rejected", "shutdown"] {
        let series = format!("throughline_influx_points_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{text}");
    }
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

#[tokio::test]
async fn points_buffered_while_the_server_is_down_arrive_when_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    // Its port is reserved, but nothing listens there yet.
    let Some(mut vm) = VictoriaMetrics::new(dir.path()) else { return };
    let config =
        write_config(dir.path(), &vm.url(), "batch_points = 2\nbuffer_points = 4\ntimeout_ms = 1000\n");
    let (mut agg, mqtt) = start(dir.path(), &config);
    agg.wait_mqtt_connected().await;
    let client = raw_client(mqtt, &unique("influx-pub"));

    // Six messages of one sample, 10 pieces a second apart: ingest takes
    // them all while the database is away; the buffer keeps the newest 4.
    let t0 = base_time();
    let mut stamps = Vec::new();
    for i in 0..6 {
        let (ts, ms) = at(t0, i * 1000);
        stamps.push(ms);
        publish(&client, "press-1", i as u64 + 1, json!([{"ts": ts, "output": 10 * i}])).await;
    }
    let metrics_url = format!("{}/metrics", agg.http);
    wait_for("a failed write", || async {
        let text = get_text(&metrics_url).await;
        match metric(&text, "throughline_influx_write_failures_total") {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_metrics(
        &agg.http,
        "ingest done, buffer full, oldest dropped",
        &[
            ("throughline_samples_ingested_total", 6.0),
            ("throughline_influx_buffer_points", 4.0),
            ("throughline_influx_points_dropped_total{reason=\"buffer_full\"}", 2.0),
            ("throughline_influx_points_written_total", 0.0),
        ],
    )
    .await;
    let asset = get_json(&format!("{}/api/v1/assets/{SITE}/press-1", agg.http)).await;
    assert_eq!(asset["output_counter"], 50.0, "ingest went on: {asset}");

    vm.run();
    let press = press_labels();
    let newest = &stamps[2..];
    let want: BTreeMap<Series, Points> = [
        (
            series("throughline_asset_output", &press),
            newest.iter().zip([20.0, 30.0, 40.0, 50.0]).map(|(t, v)| (*t, v)).collect(),
        ),
        // Each message is its asset's newest sample: the live rate, 10 pieces/s.
        (series("throughline_asset_rate_per_hour", &press), newest.iter().map(|t| (*t, 36000.0)).collect()),
    ]
    .into_iter()
    .collect();
    wait_stored(&vm, &want).await;
    wait_metrics(
        &agg.http,
        "the backlog written",
        &[
            ("throughline_influx_points_written_total", 4.0),
            ("throughline_influx_buffer_points", 0.0),
            ("throughline_influx_points_dropped_total{reason=\"buffer_full\"}", 2.0),
        ],
    )
    .await;
    client.disconnect().await.unwrap();
    agg.proc.stop();
}
