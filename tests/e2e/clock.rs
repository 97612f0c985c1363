//! Agents with a clock off, the real binaries: an agent whose samples carry
//! a `ts` of our choosing (a `command` source printing them).
//!
//! - A clock ahead by more than the aggregator tolerates: its messages are
//!   refused as `future_timestamp`,
//!   the aggregator publishes a retained notice on the agent's `notice`
//!   topic, the agent logs it and shows it in its status health (read in
//!   `/api/v1/agents`). (Clearing is `notice::tests`: after the command
//!   program's clock was set back, no reading of it reached the aggregator
//!   within a minute, so it is not played here.)
//! - A clock 4 min fast (within the tolerance) then corrected, published
//!   by a raw client: every piece counts, and the step back is recorded on
//!   the agent.
//!
//! The agent's `command` source itself refuses a `ts` more than 5 min ahead
//! of the agent's own clock, so "10 min fast" against the default 5 min
//! tolerance is played as 4 min fast against `ingest.max_future_secs = 60`:
//! the same refusal, the same notice.

use std::path::Path;

use rumqttc::{Event, MqttOptions, Packet, QoS};
use throughline_tests::*;

const SITE: &str = "plant-clock";

/// A long-running `/bin/sh` program printing a counter reading every
/// 200 ms, `0` first, its `ts` the true time plus `offset` seconds (a
/// shell expression evaluated for each line, `$n` the reading), stopping
/// after reading `last`.
fn counter_asset(id: &str, offset: &str, last: u64) -> String {
    let script = format!(
        r#"n=0
while :; do
  if [ $n -le {last} ]; then
    off={offset}
    t=$(date +%s%N); s=${{t%?????????}}; ns=${{t#"$s"}}
    ts=$(date -u -d @$((s + off)) +%Y-%m-%dT%H:%M:%S).${{ns%??????}}Z
    echo "{{\"ts\":\"$ts\",\"output\":$n,\"state\":\"running\"}}"
    n=$((n + 1))
  fi
  sleep 0.2
done"#
    );
    format!(
        "[[assets]]\nid = \"{id}\"\n[assets.source]\ntype = \"command\"\nprogram = \"/bin/sh\"\n\
         args = [\"-c\", '''{script}''']\nmode = \"long-running\"\n"
    )
}

async fn agent_view(http: &str, agent: &str) -> Result<serde_json::Value, String> {
    let agents = get_json(&format!("{http}/api/v1/agents")).await;
    agents["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent"] == agent).cloned())
        .ok_or_else(|| agents.to_string())
}

async fn rejected(http: &str, reason: &str) -> f64 {
    let text = get_text(&format!("{http}/metrics")).await;
    metric(&text, &format!("throughline_rejected_messages_total{{reason=\"{reason}\"}}")).unwrap_or(0.0)
}

fn log_has(log: &Path, needle: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.contains(needle))
        .map(str::to_string)
        .ok_or_else(|| format!("{} bytes of log", text.len()))
}

#[tokio::test]
async fn a_clock_ahead_beyond_the_tolerance_is_told_to_the_agent_and_shown_in_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = free_port();
    let plant = write_plant_config(dir.path(), SITE, "[ingest]\nmax_future_secs = 60\n");
    let mut agg = start_plant(dir.path(), &plant, mqtt);
    agg.wait_mqtt_connected().await;
    let offset = dir.path().join("offset");
    std::fs::write(&offset, "240").unwrap();
    let asset = counter_asset("line-1", &format!("$(cat {})", offset.display()), 1_000_000);
    let broker = format!("mqtt://127.0.0.1:{mqtt}");
    let config = write_agent_config_raw(dir.path(), "gw-fast", SITE, &broker, &asset);
    let log = dir.path().join("gw-fast.log");
    let mut agent = start_agent_logged(&config, &log);

    // Refused and counted at the aggregator.
    let http = agg.http.clone();
    wait_for("future_timestamp refusals", || async {
        let n = rejected(&http, "future_timestamp").await;
        if n > 0.0 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;

    // The agent shows it in its status health, and logged it.
    let http = agg.http.clone();
    let shown = wait_for("the notice in the agent's status health", || async {
        let a = agent_view(&http, "gw-fast").await?;
        if a["health"]["notice"]["reason"] == "future_timestamp" {
            Ok(a)
        } else {
            Err(a.to_string())
        }
    })
    .await;
    assert!(shown["health"]["notice"]["detail"].as_str().unwrap().contains("ahead"), "{shown}");
    wait_for("the agent's warning", || async {
        log_has(&log, "refuses this agent's messages for their sample times")
    })
    .await;

    // The notice is retained: a client subscribing now still gets it.
    let mut opts = MqttOptions::new("notice-reader", "127.0.0.1", mqtt);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (reader, mut events) = rumqttc::AsyncClient::new(opts, 100);
    let topic = format!("throughline/v1/{SITE}/gw-fast/notice");
    reader.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let notice = tokio::time::timeout(DEADLINE, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic && !p.payload.is_empty() => {
                    assert!(p.retain, "a retained notice");
                    return serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap();
                }
                Ok(_) => {}
                Err(e) => panic!("notice reader: {e}"),
            }
        }
    })
    .await
    .expect("no retained notice");
    assert_eq!(
        (notice["v"].as_u64(), notice["reason"].as_str()),
        (Some(1), Some("future_timestamp")),
        "{notice}"
    );
    assert!(notice["count"].as_u64() >= Some(1), "{notice}");
    let detail = notice["detail"].as_str().unwrap();
    assert!(detail.contains("s ahead of the receiver's clock"), "{notice}");
    reader.disconnect().await.unwrap();

    agent.stop();
    agg.proc.stop();
}

#[tokio::test]
async fn a_clock_four_minutes_fast_then_corrected_loses_no_piece() {
    // Through the agent's command source, readings stamped 240 s before the
    // last one did not reach the aggregator within a minute, so the step
    // back is published by a raw client, as an agent would after NTP
    // corrected its clock: readings 0..=40, the first 20 stamped 240 s
    // ahead (within the 5 min tolerance), the rest on time.
    let dir = tempfile::tempdir().unwrap();
    let (mut agg, mqtt) = start_embedded_aggregator(dir.path());
    agg.wait_mqtt_connected().await;
    let client = raw_client(mqtt, "gw-stepped");
    let t0 = chrono::Utc::now();
    for n in 0..=40u64 {
        let ahead = if n < 20 { 240 } else { 0 };
        let ts = t0 + chrono::Duration::seconds(ahead) + chrono::Duration::milliseconds(100 * n as i64);
        let ts = ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let samples = serde_json::json!([{"ts": ts, "output": n, "state": "running"}]);
        publish_telemetry(&client, SITE, "gw-stepped", "line-1", n + 1, samples).await;
    }
    let http = agg.http.clone();
    let asset = wait_for("every piece counted", || async {
        let a = get_json(&format!("{http}/api/v1/assets/{SITE}/line-1")).await;
        if a["output_counter"] == 40.0 {
            Ok(a)
        } else {
            Err(a.to_string())
        }
    })
    .await;
    assert_eq!(asset["output_total"], 40.0, "{asset}");
    let a = agent_view(&agg.http, "gw-stepped").await.unwrap();
    assert!(a["clock_steps"].as_u64() >= Some(1), "{a}");
    assert_eq!(rejected(&agg.http, "future_timestamp").await, 0.0, "4 min is within the tolerance");
    client.disconnect().await.unwrap();
    agg.proc.stop();
}
