//! Poison messages: one message the MQTT client cannot read must not stop
//! ingest. A 10 MB payload on a telemetry topic of a Mosquitto without a
//! size limit, between good envelopes: over MQTT 5 (the default towards an
//! external broker) the broker is told the largest packet the aggregator
//! takes and drops the larger one; over MQTT 3.1.1 the loop it causes (read
//! error, reconnect, the persistent session sends it again) is visible in
//! `/metrics`, `/healthz` and once in the log. The embedded broker refuses
//! a message over its limit itself. The edge agent reads and ignores
//! garbage and large retained messages on its `resend` and `notice` topics.

use std::path::Path;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use throughline_tests::*;

const TEN_MB: usize = 10 * 1024 * 1024;

/// A publisher whose packets may be up to 11 MiB; its event loop runs in
/// the background and counts PUBACKs, reconnecting on errors (a broker
/// that drops it for a too large packet).
fn big_publisher(port: u16, id: &str) -> (AsyncClient, tokio::task::JoinHandle<u64>) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 11 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let task = tokio::spawn(async move {
        let mut acked = 0;
        let mut errors = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return acked,
                Ok(_) => {}
                Err(_) if errors < 50 => {
                    errors += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(_) => return acked,
            }
        }
    });
    (client, task)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn good(agent: &str, seq: u64, output: u64) -> String {
    json!({"v": 1, "agent": agent, "seq": seq, "samples": [{"ts": now(), "output": output, "state": "running"}]})
        .to_string()
}

async fn samples(http: &str, site: &str, asset: &str) -> Option<u64> {
    let resp = reqwest::get(format!("{http}/api/v1/assets/{site}/{asset}")).await.ok()?;
    let v: Value = resp.json().await.ok()?;
    v["samples"].as_u64()
}

async fn metrics(http: &str) -> String {
    get_text(&format!("{http}/metrics")).await
}

fn start_external(dir: &Path, broker: &str, protocol: &str, log: &Path) -> Aggregator {
    let config = dir.join("aggregator.toml");
    std::fs::write(
        &config,
        format!("[mqtt]\nprotocol = \"{protocol}\"\nclient_id = \"{}\"\n", unique("agg")),
    )
    .unwrap();
    start_aggregator_logged(
        &[
            "--config",
            config.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
            "--broker",
            broker,
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ],
        log,
    )
}

/// Good envelope 1, a 10 MB message, a 300 KB one (over the 256 KiB
/// payload limit, within the packet room), good envelopes 2 and 3.
async fn publish_poisoned_stream(client: &AsyncClient, site: &str, agent: &str, asset: &str) {
    let topic = format!("throughline/v1/{site}/{agent}/{asset}/telemetry");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(TEN_MB));
    let over = format!("{{\"pad\":\"{}\"}}", "y".repeat(300 * 1024));
    for payload in [good(agent, 1, 10), big, over, good(agent, 2, 20), good(agent, 3, 30)] {
        client.publish(&topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
}

#[tokio::test]
async fn mosquitto_ten_megabytes_between_good_envelopes_over_mqtt5_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosq) = Mosquitto::start(dir.path()) else { return };
    let log = dir.path().join("aggregator.log");
    let mut agg = start_external(dir.path(), &mosq.url(), "5", &log);
    agg.wait_mqtt_connected().await;

    let (site, agent, asset) = ("plant-poison5", "gw-poison5", "line-1");
    let (client, _acks) = big_publisher(mosq.port, &unique("poisoner"));
    publish_poisoned_stream(&client, site, agent, asset).await;

    let http = agg.http.clone();
    let text = three_good_and_one_oversize(&http, site, asset).await;
    assert_eq!(
        metric(&text, "throughline_mqtt_reconnects_total"),
        Some(0.0),
        "the 10 MB message never reached the aggregator: the broker dropped it (Maximum Packet Size)"
    );
    let health = get_json(&format!("{http}/healthz")).await;
    assert!(health.get("mqtt_last_disconnect").is_none(), "{health}");
    agg.proc.stop();
}

#[tokio::test]
async fn mosquitto_ten_megabytes_over_mqtt311_loop_is_visible_and_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosq) = Mosquitto::start(dir.path()) else { return };
    let log = dir.path().join("aggregator.log");
    let mut agg = start_external(dir.path(), &mosq.url(), "3.1.1", &log);
    agg.wait_mqtt_connected().await;

    let (site, agent, asset) = ("plant-poison3", "gw-poison3", "line-1");
    let (client, _acks) = big_publisher(mosq.port, &unique("poisoner"));
    publish_poisoned_stream(&client, site, agent, asset).await;

    // MQTT 3.1.1 cannot tell the broker a limit: the message comes back
    // after every reconnect. What this version promises is that the loop
    // is seen, not silent.
    let http = agg.http.clone();
    let health = wait_until("ten failures in a row in /healthz", 60, || async {
        let h = get_json(&format!("{http}/healthz")).await;
        match h["mqtt_last_disconnect"]["in_a_row"].as_u64() {
            Some(n) if n >= 10 => Ok(h),
            _ => Err(h.to_string()),
        }
    })
    .await;
    let error = health["mqtt_last_disconnect"]["error"].as_str().unwrap();
    assert!(error.contains("ayload size"), "{health}");
    let text = metrics(&http).await;
    assert!(metric(&text, "throughline_mqtt_reconnects_total").unwrap() >= 10.0, "{text}");
    agg.proc.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    let told = log.matches("fails again and again with the same error").count();
    assert_eq!(told, 1, "the loop is logged once, not per attempt:\n{log}");
    let per_attempt = log.matches("broker connection problem").count();
    assert!(per_attempt < 5, "{per_attempt} per-attempt lines:\n{log}");
}

#[tokio::test]
async fn embedded_broker_refuses_a_message_over_its_limit_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agg, mqtt) = start_embedded_aggregator(dir.path());
    agg.wait_mqtt_connected().await;

    let (site, agent, asset) = ("plant-poisonE", "gw-poisonE", "line-1");
    let topic = format!("throughline/v1/{site}/{agent}/{asset}/telemetry");
    // The poisoner: rumqttd ends its connection at the fixed header of the
    // 2 MB packet; nothing of it is forwarded.
    let (poisoner, _p) = big_publisher(mqtt, &unique("poisoner"));
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    poisoner.publish(&topic, QoS::AtLeastOnce, false, big).await.unwrap();
    // A well-behaved device on its own connection.
    let (client, _acks) = big_publisher(mqtt, &unique("device"));
    let over = format!("{{\"pad\":\"{}\"}}", "y".repeat(300 * 1024));
    for payload in [good(agent, 1, 10), over, good(agent, 2, 20), good(agent, 3, 30)] {
        client.publish(&topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    let http = agg.http.clone();
    let text = three_good_and_one_oversize(&http, site, asset).await;
    assert_eq!(metric(&text, "throughline_mqtt_reconnects_total"), Some(0.0), "{text}");
    agg.proc.stop();
}

#[tokio::test]
async fn agent_ignores_garbage_and_a_large_retained_notice_and_keeps_publishing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agg, mqtt) = start_embedded_aggregator(dir.path());
    agg.wait_mqtt_connected().await;
    let (site, agent) = ("plant-poisonA", "gw-poisonA");
    // Before the agent starts: a retained 900 KB notice (above the agent's
    // old 512 KiB read limit, within the broker's 1 MiB) that every
    // (re)subscription delivers again, and garbage on its resend topic.
    let (client, _acks) = big_publisher(mqtt, &unique("poisoner"));
    let notice = format!("throughline/v1/{site}/{agent}/notice");
    let resend = format!("throughline/v1/{site}/{agent}/resend");
    client.publish(&notice, QoS::AtLeastOnce, true, vec![b'{'; 900 * 1024]).await.unwrap();
    let config = write_agent_config(
        dir.path(),
        agent,
        site,
        &format!("mqtt://127.0.0.1:{mqtt}"),
        &[SimLine { id: "line-1", rate_per_hour: 3600.0, stop: None }],
    );
    let log = dir.path().join("agent.log");
    let mut proc = start_agent_logged(&config, &log);
    let http = agg.http.clone();
    wait_for("the agent's first samples", || async {
        match samples(&http, site, "line-1").await {
            Some(n) if n > 0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    for garbage in [&b"\xff\xfe not json"[..], b"{\"v\":1,\"from\":\"x\"}", &[b'['; 4096][..]] {
        client.publish(&resend, QoS::AtLeastOnce, false, garbage.to_vec()).await.unwrap();
        client.publish(&notice, QoS::AtLeastOnce, false, garbage.to_vec()).await.unwrap();
    }
    let before = samples(&http, site, "line-1").await.unwrap();
    wait_for("the agent goes on publishing", || async {
        match samples(&http, site, "line-1").await {
            Some(n) if n >= before + 20 => Ok(()),
            other => Err(format!("{other:?} (from {before})")),
        }
    })
    .await;
    proc.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("reconnect=true").count(), 0, "the agent never lost its connection:\n{log}");
    assert!(log.contains("notice ignored") && log.contains("resend request ignored"), "{log}");
    agg.proc.stop();
}

/// Wait for the three good envelopes of a poisoned stream and the one
/// oversize message counted once; the metrics text then.
async fn three_good_and_one_oversize(http: &str, site: &str, asset: &str) -> String {
    wait_for("the three good envelopes ingested", || async {
        match samples(http, site, asset).await {
            Some(3) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let text = wait_for("the 300 KB message counted oversize", || async {
        let text = metrics(http).await;
        match metric(&text, "throughline_rejected_messages_total{reason=\"oversize\"}") {
            Some(n) if n >= 1.0 => Ok(text),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(metric(&text, "throughline_rejected_messages_total{reason=\"oversize\"}"), Some(1.0));
    text
}
