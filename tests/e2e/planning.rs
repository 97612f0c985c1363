//! Forecasts against live capacity, end to end: simulated agents through the
//! embedded broker, forecasts imported over the API, alerts observed over the
//! API and at a webhook.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use serde_json::{json, Value};
use throughline_tests::*;

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn wait_alert(http: &str, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("a {kind} alert"), || async {
        let list = alerts_of(http, kind).await;
        list.iter().find(|a| pred(a)).cloned().ok_or_else(|| format!("{list:?}"))
    })
    .await
}

#[tokio::test]
async fn schedule_dispatch_and_deviation_alerts_from_simulated_agents() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-plan";
    let config = write_plant_config(dir.path(), site, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    let http = agg.http.clone();

    // One line at exactly 36000 pieces/h (no jitter); one feeder loaded at
    // 600 kW against its rated 500 kW.
    let assets = r#"
[[assets]]
id = "line-1"
[assets.source]
type = "simulator"
profile = "line"
interval_ms = 100
rate_per_hour = 36000
jitter_pct = 0

[[assets]]
id = "feeder-1"
[assets.source]
type = "simulator"
profile = "feeder"
interval_ms = 100
base_kw = 600
peak_kw = 600
jitter_pct = 0
"#;
    let cfg =
        write_agent_config_raw(dir.path(), "gw-plan", site, &format!("mqtt://127.0.0.1:{mqtt}"), assets);
    let mut agent = start_agent(&cfg);
    let asset_url = format!("{http}/api/v1/assets/{site}/line-1");
    wait_for("line-1 reporting", || async {
        let v = get_json(&asset_url).await;
        if v["samples"].as_u64().unwrap_or(0) >= 3 {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;

    // Forecasts relative to now: a 2-minute line bucket needing twice what
    // one line makes; a feeder bucket under way; a short feeder bucket that
    // closes in 6 s with a demand far from what the feeder delivers.
    let now = Utc::now();
    let (a0, a1) = (now - Duration::seconds(5), now + Duration::seconds(115));
    let demand = 2.0 * 36000.0 * (a1 - a0).num_milliseconds() as f64 / 3_600_000.0;
    let (f0, f1, f2) = (now - Duration::seconds(5), now + Duration::seconds(2), now + Duration::seconds(6));
    let csv = format!(
        "group,start,end,demand,unit,uplift_pct\n\
         family-a,{},{},{demand},pieces,0\n\
         region-north,{},{},100,kWh,\n\
         region-north,{},{},5,kWh,\n",
        rfc(a0),
        rfc(a1),
        rfc(f0),
        rfc(f1),
        rfc(f1),
        rfc(f2)
    );
    let forecasts = format!("{http}/api/v1/forecasts");
    let (status, body) = post(&forecasts, "text/csv", None, csv.clone()).await;
    assert_eq!(status, 401, "import needs a token: {body}");
    let (status, body) = post(&forecasts, "text/csv", Some("viewer-token"), csv.clone()).await;
    assert_eq!(status, 403, "a viewer may not import: {body}");
    let (status, body) = post(&forecasts, "text/csv", Some(TOKEN), csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], 3);

    // Schedule: raised while more than half the bucket is left, with the
    // extra hours a planner would compute by hand.
    let sched = wait_alert(&http, "schedule", |a| a["group"] == "family-a").await;
    let b = &sched["details"];
    let event_time: DateTime<Utc> = b["now"].as_str().unwrap().parse().unwrap();
    let left = (a1 - event_time).num_milliseconds() as f64;
    assert!(left > (a1 - a0).num_milliseconds() as f64 / 2.0, "raised with {left} ms of the bucket left");
    let made = b["made"].as_f64().unwrap();
    let hours_left = left / 3_600_000.0;
    // By hand: the line makes 36000/h; line-2 is silent and counts as 0.
    let hand_gap = demand - (made + 36000.0 * hours_left);
    let hand_extra = hand_gap / 36000.0;
    let extra = b["extra_hours"].as_f64().unwrap_or_else(|| panic!("no extra_hours in {b}"));
    assert!((extra - hand_extra).abs() <= 0.05 * hand_extra, "extra hours {extra} vs hand {hand_extra}");
    assert!(sched["action"].as_str().unwrap().contains("at the current 36000 pieces/h"), "{sched}");
    assert_eq!(sched["status"], "open");

    // Dispatch: the feeder group is loaded above its rating.
    let disp = wait_alert(&http, "dispatch", |a| {
        a["group"] == "region-north" && a["action"].as_str().unwrap_or_default().starts_with("Transfer")
    })
    .await;
    assert!(disp["action"].as_str().unwrap().contains("Transfer at least 100 kW"), "{disp}");

    // Forecast deviation once the short bucket has closed: 600 kW for 4 s is
    // 0.67 kWh against a forecast of 5.
    let dev = wait_alert(&http, "forecast_deviation", |a| a["group"] == "region-north").await;
    let actual = dev["details"]["made"].as_f64().unwrap();
    assert!((actual - 0.667).abs() < 0.1, "delivered {actual} kWh");
    assert!(dev["value"].as_f64().unwrap() > 80.0, "{dev}");

    // The balance API shows the same numbers.
    let bal = get_json(&format!("{http}/api/v1/balance?group=family-a")).await;
    let row = &bal["balances"][0];
    assert_eq!(row["status"], "short", "{bal}");
    assert!((row["effective_demand"].as_f64().unwrap() - demand).abs() < 1e-6);

    // Acknowledge, with who and a note; one alert per key however long it lasts.
    let id = sched["id"].as_i64().unwrap();
    let (status, acked) = post(
        &format!("{http}/api/v1/alerts/{id}/ack"),
        "application/json",
        Some(TOKEN),
        json!({"note": "calling in a shift"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged"]["by"], "test-planner");
    let all_sched = alerts_of(&http, "schedule").await;
    assert_eq!(all_sched.iter().filter(|a| a["group"] == "family-a").count(), 1, "{all_sched:?}");

    // Capable-to-promise against the same live capacity: the bucket's
    // demand already takes all the line can make until it ends.
    let (status, p) = post(
        &format!("{http}/api/v1/promise"),
        "application/json",
        None,
        json!({"group": "family-a", "quantity": 100, "due": rfc(a1 + Duration::minutes(10))}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    let earliest: DateTime<Utc> = p["answer"]["earliest"].as_str().unwrap().parse().unwrap();
    assert!(earliest >= a1, "capacity is taken by the forecast until the bucket ends: {p}");
    assert_eq!(p["answer"]["feasible"], true, "{p}");

    // A planner resolves it; resolving again is refused; the alert does not
    // reopen while the gap persists.
    let resolve = format!("{http}/api/v1/alerts/{id}/resolve");
    let (status, done) =
        post(&resolve, "application/json", Some(TOKEN), json!({"note": "moved to Saturday"}).to_string())
            .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["status"].as_str(), done["resolved"]["by"].as_str()),
        (Some("resolved"), Some("test-planner"))
    );
    let (status, again) = post(&resolve, "application/json", Some(TOKEN), String::new()).await;
    assert_eq!(status, 409, "{again}");
    let (status, _) =
        post(&format!("{http}/api/v1/alerts/{id}/snooze"), "application/json", Some(TOKEN), String::new())
            .await;
    assert_eq!(status, 404);

    agent.stop();
    agg.proc.stop();
}

#[tokio::test]
async fn replayed_old_downtime_opens_no_alert_but_live_downtime_does() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-replay";
    let config = write_plant_config(dir.path(), site, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    // Every alert change is also published on the site's alerts topic.
    let mut opts = rumqttc::MqttOptions::new("alerts-watcher", "127.0.0.1", mqtt);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (watcher, mut watch_loop) = rumqttc::AsyncClient::new(opts, 10);
    watcher.subscribe(format!("throughline/v1/{site}/alerts"), rumqttc::QoS::AtLeastOnce).await.unwrap();
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let watch = tokio::spawn(async move {
        while let Ok(ev) = watch_loop.poll().await {
            match ev {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    let _ = events_tx.send(json!("subscribed"));
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let _ = events_tx.send(serde_json::from_slice(&p.payload).unwrap());
                }
                _ => {}
            }
        }
    });
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), events_rx.recv()).await;
    assert_eq!(first.ok().flatten(), Some(json!("subscribed")));
    let client = raw_client(mqtt, "replay-test");
    let now = Utc::now();

    // An hour of downtime that ended ten minutes ago, replayed from a buffer.
    let old: Vec<Value> = (0..=60)
        .map(|m| json!({"ts": rfc(now - Duration::minutes(70 - m)), "state": "down", "reason": "jam", "output": 5}))
        .collect();
    let topic = |asset: &str| format!("throughline/v1/{site}/gw-replay/{asset}/telemetry");
    let env = |seq: u64, samples: Vec<Value>| {
        json!({"v": 1, "agent": "gw-replay", "seq": seq, "samples": samples}).to_string()
    };
    client.publish(topic("line-1"), rumqttc::QoS::AtLeastOnce, false, env(1, old)).await.unwrap();
    // Live: line-2 down now, for longer than the 3 s threshold.
    let live = vec![
        json!({"ts": rfc(now - Duration::seconds(10)), "state": "down", "reason": "die-change"}),
        json!({"ts": rfc(now), "state": "down", "reason": "die-change"}),
    ];
    client.publish(topic("line-2"), rumqttc::QoS::AtLeastOnce, false, env(2, live)).await.unwrap();

    let alert = wait_alert(&agg.http, "downtime", |a| a["asset"] == "line-2").await;
    assert!(alert["summary"].as_str().unwrap().contains("die-change"), "{alert}");
    // The replayed hour was ingested before line-2's data, so every
    // evaluation that saw line-2 saw it too.
    let line1 = get_json(&format!("{}/api/v1/assets/{site}/line-1", agg.http)).await;
    assert_eq!(line1["samples"], 61, "{line1}");
    let downtime = alerts_of(&agg.http, "downtime").await;
    assert!(downtime.iter().all(|a| a["asset"] != "line-1"), "replay raised an alert: {downtime:?}");
    let published = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let e = events_rx.recv().await.expect("alerts watcher ended");
            if e["alert"]["asset"] == "line-2" {
                return e;
            }
        }
    })
    .await
    .expect("the downtime alert on the alerts topic");
    assert_eq!(published["event"], "opened");
    assert_eq!(published["alert"]["id"], alert["id"]);
    watch.abort();
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String, String)>>>);

async fn start_receiver(port: u16, received: Received) -> tokio::task::JoinHandle<()> {
    use axum::routing::post as route_post;
    let app = axum::Router::new().route(
        "/hook",
        route_post(move |headers: axum::http::HeaderMap, body: String| {
            let received = received.clone();
            async move {
                let h =
                    |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                received.0.lock().unwrap().push((
                    h("x-throughline-delivery"),
                    h("x-throughline-signature"),
                    body,
                ));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

#[tokio::test]
async fn webhook_down_then_up_gets_each_event_once_across_a_restart() {
    use hmac::Mac;
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-hook";
    let hook_port = free_port();
    let extra = format!(
        "\n[[webhooks]]\nname = \"planners\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"hook-secret\"\n"
    );
    let config = write_plant_config(dir.path(), site, &extra);
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;

    // line-2 down: a downtime alert opens while the receiver is down.
    let client = raw_client(mqtt, "hook-test-1");
    let now = Utc::now();
    let topic = format!("throughline/v1/{site}/gw-hook/line-2/telemetry");
    let down = json!({"v": 1, "agent": "gw-hook", "seq": 1, "samples": [
        {"ts": rfc(now - Duration::seconds(10)), "state": "down", "reason": "jam"},
        {"ts": rfc(now), "state": "down", "reason": "jam"}]});
    client.publish(&topic, rumqttc::QoS::AtLeastOnce, false, down.to_string()).await.unwrap();
    let alert = wait_alert(&agg.http, "downtime", |a| a["asset"] == "line-2").await;
    let id = alert["id"].as_i64().unwrap();
    let metrics_url = format!("{}/metrics", agg.http);
    wait_for("a failed delivery attempt", || async {
        let m = get_text(&metrics_url).await;
        match metric(&m, "throughline_notification_failures_total") {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    client.disconnect().await.unwrap();

    // Restart with the receiver still down: the queued event survives.
    agg.proc.stop();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    let reopened = alerts_of(&agg.http, "downtime").await;
    assert!(
        reopened.iter().any(|a| a["id"] == id && a["status"] == "open"),
        "kept across restart: {reopened:?}"
    );

    // line-2 runs again: the alert resolves (a second event, queued too).
    let client = raw_client(mqtt, "hook-test-2");
    let up = json!({"v": 1, "agent": "gw-hook", "seq": 2, "samples": [
        {"ts": rfc(Utc::now()), "state": "running", "output": 1}]});
    client.publish(&topic, rumqttc::QoS::AtLeastOnce, false, up.to_string()).await.unwrap();
    wait_alert(&agg.http, "downtime", |a| a["id"] == id && a["status"] == "resolved").await;

    // The receiver comes up: both events arrive, each once, signed.
    let received = Received::default();
    let _server = start_receiver(hook_port, received.clone()).await;
    let metrics_url = format!("{}/metrics", agg.http);
    let got = wait_for("both events delivered and the outbox empty", || async {
        let m = get_text(&metrics_url).await;
        let got = received.0.lock().unwrap().clone();
        let depth = metric(&m, "throughline_outbox_depth");
        if got.len() >= 2 && depth == Some(0.0) {
            Ok(got)
        } else {
            Err(format!("{} received, outbox depth {depth:?}", got.len()))
        }
    })
    .await;
    let mut seen = std::collections::HashSet::new();
    for (delivery, signature, body) in &got {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(body.as_bytes());
        assert_eq!(
            signature,
            &format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
            "bad signature"
        );
        let e: Value = serde_json::from_str(body).unwrap();
        assert!(
            seen.insert((e["alert"]["id"].as_i64().unwrap(), e["event"].as_str().unwrap().to_string())),
            "delivered twice: {body}"
        );
        assert!(!delivery.is_empty());
    }
    assert!(seen.contains(&(id, "opened".to_string())), "{seen:?}");
    assert!(seen.contains(&(id, "resolved".to_string())), "{seen:?}");
    assert_eq!(got.len(), seen.len(), "each event once");
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

#[tokio::test]
async fn a_bad_forecast_file_is_refused_whole_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_plant_config(dir.path(), "plant-csv", "");
    let mut agg = start_plant(dir.path(), &config, free_port());
    let csv = "group,start,end,demand,unit,uplift_pct\n\
               family-a,2026-11-23,2026-11-24,1000,pieces,5\n\
               family-a,2026-11-24,2026-11-25,-5,pieces,\n\
               family-x,2026-11-24,2026-11-25,10,pieces,\n\
               region-north,2026-11-24,2026-11-25,10,pieces,\n\
               family-a,2026-13-01,2026-11-25,10,pieces,\n\
               family-a,2026-11-26\n";
    let (status, body) =
        post(&format!("{}/api/v1/forecasts", agg.http), "text/csv", Some(TOKEN), csv.into()).await;
    assert_eq!(status, 422, "{body}");
    let errors: Vec<(u64, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (3, "demand".to_string()),
            (4, "group".to_string()),
            (5, "unit".to_string()),
            (6, "start".to_string()),
            (7, "".to_string()),
        ],
        "{body}"
    );
    let stored = get_json(&format!("{}/api/v1/forecasts?versions=all", agg.http)).await;
    assert_eq!(stored["forecasts"].as_array().unwrap().len(), 0, "nothing imported: {stored}");
    agg.proc.stop();
}

#[tokio::test]
async fn a_gap_hovering_at_the_threshold_opens_one_alert() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-hover";
    let config = write_plant_config(dir.path(), site, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();

    // Two minutes of line-1 running at 3600 pieces/h, through the broker.
    // No further samples: event time stands still, so supply stays put and
    // only the demand moves.
    let now = Utc::now();
    let samples: Vec<Value> = (0..=120)
        .map(|i| json!({"ts": rfc(now - Duration::seconds(120 - i)), "output": i, "state": "running"}))
        .collect();
    let client = raw_client(mqtt, "hover-test");
    publish_telemetry(&client, site, "gw-hover", "line-1", 1, json!(samples)).await;
    wait_for("samples in", || async {
        let v = get_json(&format!("{http}/api/v1/assets/{site}/line-1")).await;
        if v["samples"] == 121 {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;

    let (start, end) = (now - Duration::minutes(30), now + Duration::minutes(30));
    let import = |demand: f64| {
        let csv =
            format!("group,start,end,demand,unit\nfamily-a,{},{},{demand:.3},pieces\n", rfc(start), rfc(end));
        let url = format!("{http}/api/v1/forecasts");
        async move {
            let (status, body) = post(&url, "text/csv", Some(TOKEN), csv).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    import(1000.0).await;
    let bal_url = format!("{http}/api/v1/balance?group=family-a");
    let supply = wait_for("a balance", || async {
        let b = get_json(&bal_url).await;
        b["balances"][0]["supply"].as_f64().ok_or_else(|| b.to_string())
    })
    .await;
    // Supply: 120 made + 3600/h for the 30 min left = 1920.
    assert!((supply - 1920.0).abs() < 5.0, "supply {supply}");

    // Each step: a new demand, then two full evaluations after it.
    let metrics_url = format!("{http}/metrics");
    let evaluations = || async {
        metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0)
    };
    let mut opened_ids = std::collections::HashSet::new();
    for gap_pct in [5.1, 4.9, 5.05, 4.95, 6.0, 3.5, 5.2, 4.99] {
        import(supply / (1.0 - gap_pct / 100.0)).await;
        let before = evaluations().await;
        wait_for("two evaluations", || async {
            let n = evaluations().await;
            if n >= before + 2.0 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        })
        .await;
        for a in alerts_of(&http, "schedule").await {
            opened_ids.insert(a["id"].as_i64().unwrap());
        }
    }
    let alerts = alerts_of(&http, "schedule").await;
    assert_eq!(opened_ids.len(), 1, "one alert while hovering between 3 % and 6 %: {alerts:?}");
    assert_eq!(alerts[0]["status"], "open", "{alerts:?}");

    // Below threshold minus hysteresis (5 - 2 = 3 %): resolved, once.
    import(supply / (1.0 - 2.5 / 100.0)).await;
    wait_alert(&http, "schedule", |a| a["status"] == "resolved").await;
    assert_eq!(alerts_of(&http, "schedule").await.len(), 1);
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

/// An asset going down is evaluated at once for its group, not at the next
/// periodic evaluation (here 10 minutes away).
#[tokio::test]
async fn a_state_change_is_evaluated_at_once_for_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-edge";
    let config = write_plant_config(dir.path(), site, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("evaluate_every_ms = 200", "evaluate_every_ms = 600000")).unwrap();
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    // The first periodic evaluation runs at start; let it pass.
    let http = agg.http.clone();
    wait_for("the start-up evaluation", || async {
        let m = get_text(&format!("{http}/metrics")).await;
        metric(&m, "throughline_alert_evaluations_total").filter(|n| *n >= 1.0).ok_or(m)
    })
    .await;

    let client = raw_client(mqtt, &unique("edge"));
    let now = Utc::now();
    let samples = json!([
        {"ts": rfc(now - Duration::seconds(10)), "output": 10, "state": "down", "reason": "jam"},
        {"ts": rfc(now), "output": 10, "state": "down"}]);
    publish_telemetry(&client, site, "gw-edge", "line-1", 1, samples).await;
    let alert = wait_alert(&agg.http, "downtime", |a| a["asset"] == "line-1").await;
    assert_eq!(alert["status"], "open");
    let m = get_text(&format!("{}/metrics", agg.http)).await;
    assert_eq!(metric(&m, "throughline_alert_evaluations_total"), Some(1.0), "no periodic evaluation ran");
    assert!(metric(&m, "throughline_alert_edge_evaluations_total").unwrap_or(0.0) >= 1.0, "{m}");
    agg.proc.stop();
}

/// `alert_after_secs` in event time, through the broker: a 30 s stop (with
/// a 60 s debounce) raises no schedule alert and is counted; a 150 s one
/// raises exactly one. Samples carry their own times, so the stops last
/// what the data says, whatever the wall clock does.
#[tokio::test]
async fn a_short_stop_is_counted_and_a_long_one_raises_one_schedule_alert() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-debounce";
    let config = write_plant_config_debounced(dir.path(), site, 60, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();
    let metrics_url = format!("{http}/metrics");
    let debounced = || async {
        let m = get_text(&metrics_url).await;
        metric(&m, "throughline_alert_conditions_debounced_total{kind=\"schedule\"}")
            .unwrap_or_else(|| panic!("no debounce metric in {m}"))
    };
    assert_eq!(debounced().await, 0.0);

    // line-1 makes 10 pieces/s while running; samples every 10 s, times
    // relative to now (s). Demand: what it covers easily while running.
    let now = Utc::now();
    let mut output = 0.0;
    let mut last_running = true;
    let mut seq = 0;
    let client = raw_client(mqtt, &unique("debounce"));
    let mut send = |from: i64, to: i64, state: &'static str| {
        let samples: Vec<Value> = (from..=to)
            .step_by(10)
            .map(|s| {
                if last_running {
                    output += 100.0;
                }
                last_running = state == "running";
                json!({"ts": rfc(now + Duration::seconds(s)), "output": output, "state": state, "reason": (state == "down").then_some("jam")})
            })
            .collect();
        seq += 1;
        (seq, json!(samples))
    };
    let evaluated = || async {
        let before =
            metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0);
        wait_for("two evaluations", || async {
            let n =
                metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0);
            if n >= before + 2.0 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        })
        .await;
    };
    let (n, warm_up) = send(-400, -210, "running");
    publish_telemetry(&client, site, "gw-debounce", "line-1", n, warm_up).await;
    let (start, end) = (now - Duration::minutes(30), now + Duration::minutes(30));
    let csv = format!("group,start,end,demand,unit\nfamily-a,{},{},12000,pieces\n", rfc(start), rfc(end));
    let (status, body) = post(&format!("{http}/api/v1/forecasts"), "text/csv", Some(TOKEN), csv).await;
    assert_eq!(status, 200, "{body}");
    evaluated().await;
    let balance = get_json(&format!("{http}/api/v1/balance?group=family-a")).await;
    assert_eq!(balance["balances"][0]["status"], "ok", "covered while running: {balance}");

    // A 30 s stop, seen by evaluations while it lasts, then running again.
    let (n, stop) = send(-200, -180, "down");
    publish_telemetry(&client, site, "gw-debounce", "line-1", n, stop).await;
    evaluated().await;
    let (n, again) = send(-170, -160, "running");
    publish_telemetry(&client, site, "gw-debounce", "line-1", n, again).await;
    wait_for("the short stop counted", || async {
        let n = debounced().await;
        if n == 1.0 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    assert!(alerts_of(&http, "schedule").await.is_empty(), "a 30 s stop is not a schedule alert");

    // A stop that lasts 150 s of event time: one alert, however many
    // evaluations see it.
    let (n, stop) = send(-150, -140, "down");
    publish_telemetry(&client, site, "gw-debounce", "line-1", n, stop).await;
    evaluated().await;
    assert!(alerts_of(&http, "schedule").await.is_empty(), "10 s into the stop: pending");
    let (n, more) = send(-130, 0, "down");
    publish_telemetry(&client, site, "gw-debounce", "line-1", n, more).await;
    let alert = wait_alert(&http, "schedule", |a| a["group"] == "family-a").await;
    assert_eq!(alert["status"], "open", "{alert}");
    evaluated().await;
    assert_eq!(alerts_of(&http, "schedule").await.len(), 1);
    assert_eq!(debounced().await, 1.0, "the long stop is an alert, not a debounced condition");
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

/// Publish `samples` (envelope `seq`) for `asset` and wait until it has
/// `total` samples applied.
async fn publish_applied(
    client: &rumqttc::AsyncClient,
    http: &str,
    site: &str,
    asset: &str,
    (seq, samples, total): (u64, Value, u64),
) {
    publish_telemetry(client, site, "gw-repair", asset, seq, samples).await;
    let url = format!("{http}/api/v1/assets/{site}/{asset}");
    wait_for("the samples applied", || async {
        let v = get_json(&url).await;
        if v["samples"].as_u64() == Some(total) {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
}

/// A down line is projected back after the median of its own stops, end to
/// end: six 20 s jams in a bucket the line still covers open no `schedule`
/// alert (only the first, without history, is a condition, and it is
/// debounced), the balance says when each is expected back and why; then a
/// stop that outlasts every jam projects zero for the rest of the bucket
/// and opens one alert that says so. Samples carry their own times, up to
/// 25 minutes in the past, published by a raw client.
#[tokio::test]
async fn short_jams_are_projected_back_and_only_a_stop_longer_than_them_raises_a_schedule_alert() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-repair";
    let config = write_plant_config_debounced(dir.path(), site, 60, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();
    let metrics_url = format!("{http}/metrics");
    let balance_url = format!("{http}/api/v1/balance?group=family-a");
    let debounced = || async {
        let m = get_text(&metrics_url).await;
        metric(&m, "throughline_alert_conditions_debounced_total{kind=\"schedule\"}")
            .unwrap_or_else(|| panic!("no debounce metric in {m}"))
    };
    let evaluated = || async {
        let before =
            metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0);
        wait_for("two evaluations", || async {
            let n =
                metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0);
            if n >= before + 2.0 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        })
        .await;
    };
    let line_1 = |balance: &Value| balance["balances"][0]["assets"][0].clone();

    // line-1 makes 10 pieces/s (its rated 36000/h) while running; a sample
    // every 10 s, times in seconds from now. line-2 stays silent (no state,
    // no projection).
    let now = Utc::now();
    let mut output = 0.0;
    let mut last_running = true;
    let (mut seq, mut total) = (0, 0);
    let client = raw_client(mqtt, &unique("repair"));
    let mut send = |from: i64, to: i64, state: &'static str| {
        let samples: Vec<Value> = (from..=to)
            .step_by(10)
            .map(|s| {
                if last_running {
                    output += 100.0;
                }
                last_running = state == "running";
                json!({"ts": rfc(now + Duration::seconds(s)), "output": output, "state": state,
                       "reason": (state == "down").then_some("jam")})
            })
            .collect();
        seq += 1;
        total += samples.len() as u64;
        (seq, json!(samples), total)
    };
    publish_applied(&client, &http, site, "line-1", send(-1500, -1210, "running")).await;
    // The bucket: an hour around now, 20000 pieces. Running, the line makes
    // about 30000; projected at zero from a stop early on, far less.
    let (start, end) = (now - Duration::minutes(30), now + Duration::minutes(30));
    let csv = format!("group,start,end,demand,unit\nfamily-a,{},{},20000,pieces\n", rfc(start), rfc(end));
    let (status, body) = post(&format!("{http}/api/v1/forecasts"), "text/csv", Some(TOKEN), csv).await;
    assert_eq!(status, 200, "{body}");
    evaluated().await;
    let balance = get_json(&balance_url).await;
    assert_eq!(balance["balances"][0]["status"], "ok", "covered while running: {balance}");

    // Six jams of 20 s, one every 2 minutes, each seen by evaluations while
    // it lasts.
    for k in 0..6 {
        let t = -1200 + 120 * k;
        publish_applied(&client, &http, site, "line-1", send(t, t + 10, "down")).await;
        evaluated().await;
        let a = line_1(&get_json(&balance_url).await);
        assert_eq!(a["state"], "down", "{a}");
        if k == 0 {
            assert_eq!(a["return_basis"]["rule"], "no_history", "{a}");
            assert!(a["expected_return"].is_null(), "{a}");
        } else {
            // Back 20 s after it stopped: the median of the jams before it.
            let back: DateTime<Utc> = a["expected_return"].as_str().unwrap().parse().unwrap();
            assert!((back - (now + Duration::seconds(t + 20))).num_milliseconds().abs() <= 1, "jam {k}: {a}");
            assert_eq!(a["return_basis"]["rule"], "reason_median", "{a}");
            assert_eq!(a["return_basis"]["stops"], k, "{a}");
            assert_eq!(
                a["return_basis"]["text"],
                format!("median of {k} jam stop{} in the last 8 h: 20 s", if k == 1 { "" } else { "s" }),
                "{a}"
            );
        }
        publish_applied(&client, &http, site, "line-1", send(t + 20, t + 110, "running")).await;
        evaluated().await;
        assert!(alerts_of(&http, "schedule").await.is_empty(), "jam {k} raised a schedule alert");
    }
    assert_eq!(debounced().await, 1.0, "only the first jam, without history, was a condition");

    // Running until 5 minutes ago, then down: 10 s in it is expected back
    // with the jams; once longer than all of them it is projected at zero
    // and, down for more than the 60 s debounce, raises one alert.
    publish_applied(&client, &http, site, "line-1", send(-480, -310, "running")).await;
    publish_applied(&client, &http, site, "line-1", send(-300, -290, "down")).await;
    evaluated().await;
    assert_eq!(line_1(&get_json(&balance_url).await)["return_basis"]["rule"], "reason_median");
    assert!(alerts_of(&http, "schedule").await.is_empty(), "10 s into the stop: expected back");
    publish_applied(&client, &http, site, "line-1", send(-280, 0, "down")).await;
    let alert = wait_alert(&http, "schedule", |a| a["group"] == "family-a").await;
    // The stop's time of day, with its date only on the day before event time.
    let stopped = now - Duration::seconds(300);
    let since = stopped.format(if stopped.date_naive() == now.date_naive() {
        "%H:%M UTC"
    } else {
        "%Y-%m-%d %H:%M UTC"
    });
    let says = format!(
        "Assumes line-1 down (jam) since {since}, down longer than any of its 6 jam stops in the last 8 h: \
         projected at zero for the rest of the bucket."
    );
    assert!(alert["summary"].as_str().unwrap().ends_with(&says), "{alert}");
    let a = &alert["details"]["assets"].as_array().unwrap().iter().find(|a| a["asset"] == "line-1").unwrap();
    assert_eq!((a["return_basis"]["rule"].as_str(), a["expected_return"].as_str()), (Some("exceeded"), None));
    evaluated().await;
    assert_eq!(alerts_of(&http, "schedule").await.len(), 1, "one alert");
    assert_eq!(debounced().await, 1.0, "the long stop is an alert, not a debounced condition");
    let b = line_1(&get_json(&balance_url).await);
    assert_eq!(b["return_basis"]["rule"], "exceeded", "{b}");
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

/// Per-asset event time through the broker: line-2's gateway is sending its
/// buffer, two hours behind line-1's live data. Each line makes 10 pieces/s
/// (36000/h) while running; the bucket runs from 3 h ago to 1 h ahead and
/// needs 98 % of what both make in it. line-2 is projected from its own
/// data (its 3 h left, not the plant's 1 h): the group balances as it would
/// live, 144000 each, and no `schedule` alert opens while it catches up.
/// (From the plant's clock it would lack line-2's 2 h in between, 72000
/// pieces, 23 % short; counted as making nothing, 108000.)
#[tokio::test]
async fn a_gateway_sending_its_backlog_is_projected_from_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-behind";
    let config = write_plant_config(dir.path(), site, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();
    let metrics_url = format!("{http}/metrics");
    let evaluated = || async {
        let before =
            metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0);
        wait_for("two evaluations", || async {
            let n =
                metric(&get_text(&metrics_url).await, "throughline_alert_evaluations_total").unwrap_or(0.0);
            if n >= before + 2.0 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        })
        .await;
    };
    // A sample a minute from 3 h 15 min ago (minute -195) to `to`.
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let samples = |from: i64, to: i64| {
        json!((from..=to)
            .map(|m| json!({"ts": rfc(now + Duration::minutes(m)), "output": 600 * (m + 195), "state": "running"}))
            .collect::<Vec<_>>())
    };
    let applied = |asset: &'static str, total: u64| {
        let url = format!("{http}/api/v1/assets/{site}/{asset}");
        async move {
            wait_for("the samples applied", || async {
                let v = get_json(&url).await;
                if v["samples"].as_u64() == Some(total) {
                    Ok(())
                } else {
                    Err(v.to_string())
                }
            })
            .await;
        }
    };
    let live = raw_client(mqtt, &unique("live"));
    let backlog = raw_client(mqtt, &unique("backlog"));
    publish_telemetry(&live, site, "gw-live", "line-1", 1, samples(-195, 0)).await;
    applied("line-1", 196).await;
    publish_telemetry(&backlog, site, "gw-backlog", "line-2", 1, samples(-195, -120)).await;
    applied("line-2", 76).await;

    let (start, end) = (now - Duration::hours(3), now + Duration::hours(1));
    let demand = 0.98 * 2.0 * 36000.0 * 4.0;
    let csv = format!("group,start,end,demand,unit\nfamily-a,{},{},{demand},pieces\n", rfc(start), rfc(end));
    let (status, body) = post(&format!("{http}/api/v1/forecasts"), "text/csv", Some(TOKEN), csv).await;
    assert_eq!(status, 200, "{body}");
    evaluated().await;
    let balance = get_json(&format!("{http}/api/v1/balance?group=family-a")).await;
    let b = &balance["balances"][0];
    assert_eq!(b["status"], "ok", "{balance}");
    assert!((b["hours_left"].as_f64().unwrap() - 1.0).abs() < 1e-6, "the plant's view: {b}");
    let asset = |id: &str| b["assets"].as_array().unwrap().iter().find(|a| a["asset"] == id).unwrap().clone();
    let (l1, l2) = (asset("line-1"), asset("line-2"));
    assert_eq!(
        l2["as_of"].as_str().map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(now - Duration::hours(2))
    );
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-6 * want.max(1.0);
    assert!(close(&l1["hours_left"], 1.0) && close(&l2["hours_left"], 3.0), "{l1} {l2}");
    assert!(close(&l1["made"], 108000.0) && close(&l1["projected"], 36000.0), "{l1}");
    assert!(close(&l2["made"], 36000.0) && close(&l2["projected"], 108000.0), "{l2}");
    assert!(close(&b["projected"], 288000.0), "as both live: {b}");
    assert!(alerts_of(&http, "schedule").await.is_empty(), "no schedule alert while line-2 is behind");

    // The rest of the buffer arrives: caught up, the same totals.
    publish_telemetry(&backlog, site, "gw-backlog", "line-2", 2, samples(-119, 0)).await;
    applied("line-2", 196).await;
    evaluated().await;
    let balance = get_json(&format!("{http}/api/v1/balance?group=family-a")).await;
    let b = &balance["balances"][0];
    assert!(close(&b["projected"], 288000.0), "{b}");
    let hours: Vec<f64> =
        b["assets"].as_array().unwrap().iter().map(|a| a["hours_left"].as_f64().unwrap()).collect();
    assert!(hours.iter().all(|h| (h - 1.0).abs() < 1e-6), "{hours:?}");
    assert!(alerts_of(&http, "schedule").await.is_empty());
    live.disconnect().await.unwrap();
    backlog.disconnect().await.unwrap();
    agg.proc.stop();
}
