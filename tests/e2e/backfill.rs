//! The same data gives the same alerts however it arrives: four regional
//! feeders' gateways deliver three hours of history live (interleaved in
//! time), as one backfill after another, and as four backfills at
//! different speeds while a line at another site sends live data. Each
//! delivery goes to a fresh aggregator through its broker; all three raise
//! exactly the `forecast_deviation` alerts the data holds, and the
//! forecast-accuracy report agrees with the alerts row for row.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};
use throughline_tests::*;

const FEEDERS: [(&str, &str, f64); 4] = [
    ("f1", "region-a", 400.0),
    ("f2", "region-a", 200.0),
    ("f3", "region-b", 300.0),
    ("f4", "region-b", 150.0),
];
/// Buckets of 20 minutes per region.
const BUCKETS: i64 = 6;
/// Samples a minute apart; envelopes of six.
const PER_ENVELOPE: usize = 6;

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let mut toml = format!(
        "data_dir = \"{}\"\n{extra}\n[planning]\nevaluate_every_ms = 200\n\n\
         [[groups]]\nid = \"region-a\"\nkind = \"feeder\"\ndeviation_pct = 10\n\n\
         [[groups]]\nid = \"region-b\"\nkind = \"feeder\"\ndeviation_pct = 10\n\n\
         [[groups]]\nid = \"family-live\"\nkind = \"line\"\n\n\
         [[assets]]\nsite = \"works\"\nid = \"line-live\"\nkind = \"line\"\ngroup = \"family-live\"\nrated_capacity = 3600\n\n\
         [[auth.tokens]]\nname = \"planner\"\nrole = \"planner\"\ntoken = \"{TOKEN}\"\n",
        dir.join("data").display()
    );
    for (id, group, _) in FEEDERS {
        toml += &format!(
            "\n[[assets]]\nsite = \"grid\"\nid = \"{id}\"\nkind = \"feeder\"\ngroup = \"{group}\"\nrated_capacity = 1000\n"
        );
    }
    let path = dir.join("aggregator.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// A feeder's load in minute `m`: its base, and in buckets 1 and 4 (region
/// a) or 2 and 5 (region b) two thirds of it.
fn load(feeder: usize, m: i64) -> f64 {
    let (_, group, base) = FEEDERS[feeder];
    let bucket = m / 20;
    let low = if group == "region-a" { [1, 4] } else { [2, 5] };
    if low.contains(&bucket) {
        base * 2.0 / 3.0
    } else {
        base
    }
}

/// Feeder `f`'s envelopes from `b`: a sample a minute, cumulative kWh.
fn envelopes(f: usize, b: DateTime<Utc>) -> Vec<Value> {
    let minutes = BUCKETS * 20 + 5;
    let mut kwh = 0.0;
    let samples: Vec<Value> = (0..=minutes)
        .map(|m| {
            if m > 0 {
                kwh += load(f, m - 1) / 60.0;
            }
            json!({"ts": rfc(b + Duration::minutes(m)), "output": kwh, "load_kw": load(f, m), "state": "running"})
        })
        .collect();
    samples.chunks(PER_ENVELOPE).map(|c| Value::Array(c.to_vec())).collect()
}

/// The forecast: each bucket at the region's base load, so the low buckets
/// deviate by -33 % and the others by 0.
fn forecast_csv(b: DateTime<Utc>) -> String {
    let mut csv = "group,start,end,demand,unit,uplift_pct\n".to_string();
    for (group, base) in [("region-a", 600.0), ("region-b", 450.0)] {
        for k in 0..BUCKETS {
            let start = b + Duration::minutes(20 * k);
            csv += &format!(
                "{group},{},{},{},kWh,\n",
                rfc(start),
                rfc(start + Duration::minutes(20)),
                base / 3.0
            );
        }
    }
    csv
}

#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// All gateways interleaved in time, as they would send live.
    Live,
    /// Each gateway's buffer after the other's.
    OneBackfillEach,
    /// All gateways at once at 1, 2, 3 and 5 envelopes a round.
    Interleaved,
}

async fn deliver(how: Delivery, b: DateTime<Utc>) -> (BTreeSet<(String, String)>, Vec<Value>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut agg, mqtt) = start_plant_on_free_port(dir.path(), &cfg);
    agg.wait_mqtt_connected().await;
    let (status, body) =
        post(&format!("{}/api/v1/forecasts", agg.http), "text/csv", Some(TOKEN), forecast_csv(b)).await;
    assert_eq!(status, 200, "{body}");
    let gateways: Vec<_> = (0..4).map(|f| raw_client(mqtt, &unique(&format!("gw-{f}")))).collect();
    let live = raw_client(mqtt, &unique("gw-live"));
    let env: Vec<Vec<Value>> = (0..4).map(|f| envelopes(f, b)).collect();
    let mut next = [0usize; 4];
    let mut live_seq = 0u64;
    let mut live_out = 0.0;
    let send = |f: usize, i: usize| {
        let (client, samples) = (&gateways[f], env[f][i].clone());
        async move {
            publish_telemetry(client, "grid", &format!("gw-{f}"), FEEDERS[f].0, i as u64 + 1, samples).await;
        }
    };
    let total: usize = env.iter().map(Vec::len).sum();
    let mut sent = 0;
    while sent < total {
        let mut round: Vec<usize> = Vec::new();
        match how {
            Delivery::Live => round.extend(0..4),
            Delivery::OneBackfillEach => {
                let f = (0..4).find(|&f| next[f] < env[f].len()).unwrap();
                round.extend(std::iter::repeat_n(f, env[f].len()));
            }
            Delivery::Interleaved => {
                for (f, speed) in [1, 2, 3, 5].into_iter().enumerate() {
                    round.extend(std::iter::repeat_n(f, speed));
                }
            }
        }
        for f in round {
            if next[f] < env[f].len() {
                send(f, next[f]).await;
                next[f] += 1;
                sent += 1;
            }
        }
        // The line at the other site runs live meanwhile: its event time is now.
        live_seq += 1;
        live_out += 10.0;
        publish_telemetry(
            &live,
            "works",
            "gw-live",
            "line-live",
            live_seq,
            json!([{"ts": rfc(Utc::now()), "output": live_out, "state": "running"}]),
        )
        .await;
    }
    let http = agg.http.clone();
    let want = total as u64;
    wait_for("every envelope ingested", || async {
        let v = get_json(&format!("{http}/api/v1/agents")).await;
        let n: u64 = v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["site"] == "grid")
            .map(|g| g["messages"].as_u64().unwrap())
            .sum();
        if n >= want {
            Ok(())
        } else {
            Err(format!("{n} of {want}"))
        }
    })
    .await;
    let from = b;
    let to = b + Duration::minutes(20 * BUCKETS);
    let report_url = format!("{http}/api/v1/reports/forecast-accuracy?from={}&to={}", rfc(from), rfc(to));
    let report = wait_for("every bucket closed and complete", || async {
        let r = get_json(&report_url).await;
        let rows: Vec<&Value> =
            r["groups"].as_array().unwrap().iter().flat_map(|g| g["buckets"].as_array().unwrap()).collect();
        if rows.len() == 2 * BUCKETS as usize && rows.iter().all(|x| x["complete"] == true) {
            Ok(r)
        } else {
            Err(r.to_string())
        }
    })
    .await;
    let over: usize = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["buckets"].as_array().unwrap())
        .filter(|x| x["over_threshold"] == true)
        .count();
    let alerts = wait_for("a forecast_deviation alert per bucket over the threshold", || async {
        let a = alerts_of(&http, "forecast_deviation").await;
        if a.len() >= over {
            Ok(a)
        } else {
            Err(format!("{} of {over}: {a:?}", a.len()))
        }
    })
    .await;
    let keys: BTreeSet<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["group"].as_str().unwrap().to_string(),
                a["details"]["bucket_start"]
                    .as_str()
                    .or(a["bucket_start"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let balances: Vec<Value> = futures_join(&http, from, to).await;
    for c in gateways.iter().chain([&live]) {
        let _ = c.disconnect().await;
    }
    agg.proc.stop();
    (keys, balances, report)
}

/// Each region's group history: demand against the stored actual per bucket.
async fn futures_join(http: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
    let mut out = Vec::new();
    for g in ["region-a", "region-b"] {
        let h =
            get_json(&format!("{http}/api/v1/groups/{g}/history?from={}&to={}", rfc(from), rfc(to))).await;
        for b in h["buckets"].as_array().unwrap() {
            out.push(json!({"group": g, "start": b["start"], "demand": b["effective_demand"], "actual": b["actual"]}));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_one_backfill_and_interleaved_backfills_give_the_same_alerts() {
    let b = (Utc::now() - Duration::minutes(150)).duration_trunc(Duration::minutes(1)).unwrap();
    let mut results = Vec::new();
    for how in [Delivery::Live, Delivery::OneBackfillEach, Delivery::Interleaved] {
        let (alerts, balances, report) = deliver(how, b).await;
        // The report and the alerts agree row for row.
        let over: BTreeSet<(String, String)> = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| {
                let group = g["group"].as_str().unwrap().to_string();
                g["buckets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|x| x["over_threshold"] == true)
                    .map(move |x| {
                        let start: DateTime<Utc> = x["start"].as_str().unwrap().parse().unwrap();
                        (group.clone(), start)
                    })
                    .collect::<Vec<_>>()
            })
            .map(|(g, s)| (g, rfc(s)))
            .collect();
        let alerts: BTreeSet<(String, String)> =
            alerts.into_iter().map(|(g, s)| (g, s.parse::<DateTime<Utc>>().map(rfc).unwrap_or(s))).collect();
        assert_eq!(alerts, over, "{how:?}: alerts and report rows over the threshold");
        results.push((how, alerts, balances));
    }
    // What the data holds: region a low in buckets 1 and 4, region b in 2 and 5.
    let want: BTreeSet<(String, String)> =
        [("region-a", 1), ("region-a", 4), ("region-b", 2), ("region-b", 5)]
            .into_iter()
            .map(|(g, k)| (g.to_string(), rfc(b + Duration::minutes(20 * k))))
            .collect();
    for (how, alerts, balances) in &results {
        assert_eq!(alerts, &want, "{how:?}: exactly the deviations the data holds");
        assert_eq!(balances, &results[0].2, "{how:?}: the same actuals per bucket");
    }
    eprintln!(
        "{} deliveries, each with the alerts {want:?} and {} equal bucket actuals",
        results.len(),
        results[0].2.len()
    );
}

/// A bucket longer than the history kept in memory is judged on what the
/// store holds: 210 minutes of two feeders per region, with two hours kept
/// in memory and the first part of the data checkpointed (and so pruned
/// from memory) before the rest arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_longer_than_the_memory_is_judged_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[history]\nflush_secs = 1\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("evaluate_every_ms = 200", "evaluate_every_ms = 200\nhistory_hours = 2");
    std::fs::write(&cfg, text).unwrap();
    let (mut agg, mqtt) = start_plant_on_free_port(dir.path(), &cfg);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();
    let b = (Utc::now() - Duration::minutes(240)).duration_trunc(Duration::minutes(1)).unwrap();
    let (start, end) = (b + Duration::minutes(20), b + Duration::minutes(230));
    // Region a's forecast is what its feeders make in the bucket; region b's
    // is 1.5 times it.
    let made = |group: &str| FEEDERS.iter().filter(|f| f.1 == group).map(|f| f.2).sum::<f64>() * 210.0 / 60.0;
    let csv = format!(
        "group,start,end,demand,unit,uplift_pct\nregion-a,{s},{e},{},kWh,\nregion-b,{s},{e},{},kWh,\n",
        made("region-a"),
        made("region-b") * 1.5,
        s = rfc(start),
        e = rfc(end)
    );
    let (status, body) = post(&format!("{http}/api/v1/forecasts"), "text/csv", Some(TOKEN), csv).await;
    assert_eq!(status, 200, "{body}");
    let clients: Vec<_> = (0..4).map(|f| raw_client(mqtt, &unique(&format!("gw-{f}")))).collect();
    // Constant loads: one sample a minute, cumulative kWh.
    let series = |f: usize, from: i64, to: i64| -> Vec<Value> {
        let kw = FEEDERS[f].2;
        (from..=to)
            .map(|m| json!({"ts": rfc(b + Duration::minutes(m)), "output": kw * m as f64 / 60.0, "load_kw": kw, "state": "running"}))
            .collect()
    };
    let mut seq = [0u64; 4];
    for (from, to) in [(0, 150), (151, 235)] {
        for f in 0..4 {
            for chunk in series(f, from, to).chunks(10) {
                seq[f] += 1;
                publish_telemetry(
                    &clients[f],
                    "grid",
                    &format!("gw-{f}"),
                    FEEDERS[f].0,
                    seq[f],
                    Value::Array(chunk.to_vec()),
                )
                .await;
            }
        }
        let want: u64 = seq.iter().sum();
        wait_for("the data so far checkpointed", || async {
            let agents = get_json(&format!("{http}/api/v1/agents")).await;
            let n: u64 =
                agents["agents"].as_array().unwrap().iter().map(|g| g["messages"].as_u64().unwrap()).sum();
            let h = get_json(&format!(
                "{http}/api/v1/assets/grid/f4/history?from={}&to={}&points=1",
                rfc(b),
                rfc(b + Duration::minutes(240))
            ))
            .await;
            let samples = h["buckets"][0]["samples"].as_i64().unwrap_or(0);
            if n >= want && samples > to {
                Ok(())
            } else {
                Err(format!("{n} of {want}, {samples} samples stored"))
            }
        })
        .await;
    }
    let alerts = wait_for("region b's deviation", || async {
        let a = alerts_of(&http, "forecast_deviation").await;
        if a.iter().any(|a| a["group"] == "region-b") {
            Ok(a)
        } else {
            Err(format!("{a:?}"))
        }
    })
    .await;
    let groups: Vec<&str> = alerts.iter().map(|a| a["group"].as_str().unwrap()).collect();
    assert_eq!(groups, ["region-b"], "region a made its forecast: {alerts:?}");
    let got = alerts[0]["details"]["made"].as_f64().unwrap();
    assert!((got - made("region-b")).abs() < 1e-6, "made {got}, the feeders made {}", made("region-b"));
    // The balance shows the whole bucket too.
    let bal =
        get_json(&format!("{http}/api/v1/balance?group=region-a&from={}&to={}", rfc(start), rfc(end))).await;
    let row = &bal["balances"][0];
    assert!((row["made"].as_f64().unwrap() - made("region-a")).abs() < 1e-6, "{bal}");
    for c in &clients {
        let _ = c.disconnect().await;
    }
    agg.proc.stop();
}
