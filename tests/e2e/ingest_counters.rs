//! A raw MQTT client publishes garbage, duplicates, a gap, a counter reset,
//! a counter glitch, a sample from 1970 and a jump of the numbering: ingest
//! goes on, /metrics counts each, the good samples all count. A forged
//! counter reading far beyond a registered line's rated capacity adds
//! nothing and is counted.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::json;
use throughline_tests::*;

#[tokio::test]
async fn garbage_duplicates_gaps_resets_and_glitches_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agg, mqtt) = start_embedded_aggregator(dir.path());
    agg.wait_mqtt_connected().await;

    let mut opts = MqttOptions::new("raw-test-client", "127.0.0.1", mqtt);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return acked,
                Ok(_) => {}
                Err(e) => panic!("raw client: {e}"),
            }
        }
    });

    let now = chrono_now();
    let topic = "throughline/v1/plant-raw/gw-raw/line-1/telemetry";
    let good = |seq: u64, outputs: &[f64]| {
        let samples: Vec<_> =
            outputs.iter().map(|o| json!({"ts": now, "output": o, "state": "running"})).collect();
        json!({"v": 1, "agent": "gw-raw", "seq": seq, "samples": samples}).to_string()
    };
    let sample = json!([{"ts": now, "output": 1}]);
    let future = json!([{"ts": "2099-01-01T00:00:00Z", "output": 1}]);
    let past = json!([{"ts": "1970-01-01T00:00:00Z", "output": 1}]);
    let negative = json!([{"ts": now, "load_kw": -3}]);
    let messages: Vec<(String, String)> = vec![
        (topic.into(), good(1, &[100.0, 110.0])),  // +10
        (topic.into(), "this is not json".into()), // bad_json
        (topic.into(), json!({"v": 9, "agent": "gw-raw", "seq": 2, "samples": sample}).to_string()), // unsupported_version
        (topic.into(), json!({"v": 1, "agent": "gw-raw", "seq": 2}).to_string()), // missing_field
        (topic.into(), json!({"v": 1, "agent": "gw-other", "seq": 2, "samples": sample}).to_string()), // agent_mismatch
        (topic.into(), json!({"v": 1, "agent": "gw-raw", "seq": 2, "samples": future}).to_string()), // future_timestamp
        (topic.into(), json!({"v": 1, "agent": "gw-raw", "seq": 2, "samples": negative}).to_string()), // negative_value
        (topic.into(), json!({"v": 1, "agent": "gw-raw", "seq": 2, "samples": [{"ts": now}]}).to_string()), // no_measurement
        ("throughline/v1/plant-raw/gw-raw/line 1/telemetry".into(), good(2, &[1.0])), // bad_id
        (topic.into(), format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024))),        // oversize
        (topic.into(), good(2, &[120.0])),                                            // +10
        (topic.into(), good(2, &[120.0])),                                            // duplicate
        (topic.into(), good(3, &[130.0])),                                            // +10
        (topic.into(), good(1, &[100.0, 110.0])),                                     // duplicate
        (topic.into(), good(6, &[1.0, 6.0])), // gap of 2 (4, 5); reset (near zero): +1, then +5
        (topic.into(), good(7, &[16.0])),     // +10
        (topic.into(), good(8, &[15.5])),     // glitch: lower, not near zero; +0
        (topic.into(), good(9, &[20.0])),     // +4, from the last good reading
        (topic.into(), json!({"v": 1, "agent": "gw-raw", "seq": 10, "samples": past}).to_string()), // past_timestamp
        (topic.into(), good(5_000_010, &[29.0])), // +9; a new epoch, not 5 million missing
    ];
    let total = messages.len();
    for (t, payload) in messages {
        client.publish(t, QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    let metrics_url = format!("{}/metrics", agg.http);
    let text = wait_for("every message accounted for", || async {
        let text = get_text(&metrics_url).await;
        let rejected: f64 = text
            .lines()
            .filter(|l| l.starts_with("throughline_rejected_messages_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let counted = metric(&text, "throughline_messages_ingested_total").unwrap_or(0.0)
            + metric(&text, "throughline_duplicate_messages_total").unwrap_or(0.0)
            + rejected;
        if counted as usize == total {
            Ok(text)
        } else {
            Err(format!("{counted} of {total} counted:\n{text}"))
        }
    })
    .await;
    for reason in [
        "bad_json",
        "unsupported_version",
        "missing_field",
        "agent_mismatch",
        "future_timestamp",
        "past_timestamp",
        "negative_value",
        "no_measurement",
        "bad_id",
        "oversize",
    ] {
        assert_eq!(
            metric(&text, &format!("throughline_rejected_messages_total{{reason=\"{reason}\"}}")),
            Some(1.0),
            "{reason}:\n{text}"
        );
    }
    assert_eq!(metric(&text, "throughline_messages_ingested_total"), Some(8.0), "{text}");
    assert_eq!(metric(&text, "throughline_samples_ingested_total"), Some(10.0), "{text}");
    assert_eq!(metric(&text, "throughline_duplicate_messages_total"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "throughline_seq_gaps_total"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "throughline_seq_epochs_total"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "throughline_counter_resets_total"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "throughline_counter_glitches_total{site=\"plant-raw\",asset=\"line-1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "throughline_unregistered_assets"), Some(1.0), "{text}");

    // The good samples all count, each once: 10 + 10 + 10 + 1 + 5 + 10 + 4 + 9.
    let asset = get_json(&format!("{}/api/v1/assets/plant-raw/line-1", agg.http)).await;
    assert_eq!(asset["output_total"], 59.0, "{asset}");
    assert_eq!(asset["output_counter"], 29.0, "{asset}");
    assert_eq!(asset["counter_resets"], 1, "{asset}");
    assert_eq!(asset["counter_glitches"], 1, "{asset}");
    assert_eq!(asset["registered"], false, "{asset}");
    let agents = get_json(&format!("{}/api/v1/agents", agg.http)).await;
    let agent = agents["agents"].as_array().unwrap().iter().find(|a| a["agent"] == "gw-raw").unwrap();
    assert_eq!((agent["seq_epochs"].as_u64(), agent["seq_missing"].as_u64()), (Some(1), Some(0)), "{agent}");
    assert_eq!(agent["last_seq"], 5_000_010, "{agent}");

    // Unknown asset and bad id answer with JSON errors.
    let r = reqwest::get(format!("{}/api/v1/assets/plant-raw/nope", agg.http)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("nope"));
    let r = reqwest::get(format!("{}/api/v1/assets/plant-raw/bad%20id", agg.http)).await.unwrap();
    assert_eq!(r.status(), 400);

    client.disconnect().await.unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(10), acks).await.unwrap().unwrap();
    assert_eq!(acked, total, "the broker acknowledged every publish");
    agg.proc.stop();
}

#[tokio::test]
async fn a_forged_counter_reading_beyond_the_rated_capacity_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-forged";
    let config = write_plant_config(dir.path(), site, "");
    let mqtt = free_port();
    let mut agg = start_plant(dir.path(), &config, mqtt);
    agg.wait_mqtt_connected().await;
    let client = raw_client(mqtt, "forging-client");

    // line-1 is rated 36000 pieces/h: 10 s apart it makes about 100.
    let now = chrono::Utc::now();
    let at = |secs_ago: i64| (now - chrono::Duration::seconds(secs_ago)).to_rfc3339();
    let sample =
        |secs_ago: i64, output: f64| json!({"ts": at(secs_ago), "output": output, "state": "running"});
    let envelopes = [
        json!([sample(30, 1000.0), sample(20, 1010.0)]), // +10
        json!([sample(10, 1e12)]),                       // forged: +0, counted
        json!([sample(0, 1030.0)]),                      // +20, from the last good reading
    ];
    for (i, samples) in envelopes.into_iter().enumerate() {
        publish_telemetry(&client, site, "gw-forged", "line-1", i as u64 + 1, samples).await;
    }

    let metrics_url = format!("{}/metrics", agg.http);
    let text = wait_for("every message ingested", || async {
        let text = get_text(&metrics_url).await;
        match metric(&text, "throughline_messages_ingested_total") {
            Some(n) if n >= 3.0 => Ok(text),
            _ => Err(text),
        }
    })
    .await;
    assert_eq!(
        metric(&text, &format!("throughline_implausible_steps_total{{site=\"{site}\",asset=\"line-1\"}}")),
        Some(1.0),
        "{text}"
    );
    let asset = get_json(&format!("{}/api/v1/assets/{site}/line-1", agg.http)).await;
    assert_eq!(asset["registered"], true, "{asset}");
    assert_eq!(asset["output_total"], 30.0, "{asset}");
    assert_eq!(asset["output_counter"], 1030.0, "{asset}");
    assert_eq!(
        (asset["implausible_steps"].as_u64(), asset["counter_rebases"].as_u64()),
        (Some(1), Some(0)),
        "{asset}"
    );
    assert_eq!(asset["counter_glitches"], 0, "{asset}");

    client.disconnect().await.unwrap();
    agg.proc.stop();
}

fn chrono_now() -> String {
    // RFC 3339 "now" without pulling a date crate into the tests.
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%3NZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
