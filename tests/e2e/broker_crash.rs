//! A Mosquitto `kill -9` between two autosaves, while the aggregator is
//! away: the broker has acknowledged envelopes to the agent and queued them
//! for the aggregator's persistent session, and the crash loses the queue
//! and the session. The restarted aggregator sees the gap (and the lost
//! session), asks the agent to resend, and the agent answers from the
//! delivered envelopes its spool keeps; what it no longer keeps is reported
//! lost with its range, never silently missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use throughline_tests::*;

/// The aggregator asks every 2 s, three times, before it reports a loss.
fn aggregator_config(dir: &Path) -> PathBuf {
    let path = dir.join("aggregator.toml");
    std::fs::write(&path, "[ingest]\nresend_interval_secs = 2\nresend_attempts = 3\n").unwrap();
    path
}

fn start(dir: &Path, config: &Path, broker: &str) -> Aggregator {
    start_aggregator(&[
        "--config",
        config.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--broker",
        broker,
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ])
}

async fn agent_view(http: &str, agent: &str) -> Option<Value> {
    let v = get_json(&format!("{http}/api/v1/agents")).await;
    v["agents"].as_array()?.iter().find(|a| a["agent"] == agent).cloned()
}

async fn samples(http: &str, site: &str, asset: &str) -> Option<u64> {
    let resp = reqwest::get(format!("{http}/api/v1/assets/{site}/{asset}")).await.ok()?;
    let v: Value = resp.json().await.ok()?;
    v["samples"].as_u64()
}

/// Every `seq` published on `site`'s telemetry, as a subscriber of the
/// test's own sees them (until the broker goes).
async fn watch(port: u16, site: &str) -> Arc<Mutex<BTreeSet<u64>>> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let mut opts = rumqttc::MqttOptions::new(unique("truth"), "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
    client
        .subscribe(format!("throughline/v1/{site}/+/+/telemetry"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let subscribed = Arc::new(tokio::sync::Notify::new());
    let (ready, s) = (subscribed.clone(), seen.clone());
    tokio::spawn(async move {
        let _client = client;
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => ready.notify_one(),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap();
                    s.lock().unwrap().insert(v["seq"].as_u64().unwrap());
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(DEADLINE, subscribed.notified()).await.expect("truth subscriber subscribed");
    seen
}

/// The `name=value` field of the agent's "edge agent stopped" log line.
fn stop_field(log: &Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("edge agent stopped"))
        .unwrap_or_else(|| panic!("no stop line in log:\n{text}"));
    let key = format!(" {name}=");
    let at = line.find(&key).unwrap_or_else(|| panic!("{name} not in {line}")) + key.len();
    line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// What the crash left: the aggregator's highest `seq` shortly before it
/// went away (what it lacks starts above), and the highest the broker had
/// taken from the agent at the kill.
#[derive(Debug)]
struct Crash {
    before: u64,
    at_kill: u64,
}

/// Mosquitto (autosave once an hour), an aggregator and the agent of
/// `agent_cfg` running; the aggregator stops cleanly (its session stays at
/// the broker, collecting), the agent publishes `envelopes` more, Mosquitto
/// is killed and restarted, and the aggregator starts again.
async fn crash_while_the_aggregator_is_away(
    dir: &Path,
    mosq: &mut Mosquitto,
    mut agg: Aggregator,
    (site, agent): (&str, &str),
    envelopes: usize,
) -> (Aggregator, Crash) {
    let truth = watch(mosq.port, site).await;
    let before = agent_view(&agg.http, agent).await.unwrap()["last_seq"].as_u64().unwrap();
    agg.proc.stop();
    let from = truth.lock().unwrap().len();
    wait_until("the agent publishing into the aggregator's session", 30, || async {
        let n = truth.lock().unwrap().len();
        if n >= from + envelopes {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    mosq.kill();
    let at_kill = *truth.lock().unwrap().iter().next_back().unwrap();
    mosq.restart();
    let agg = start(dir, &aggregator_config(dir), &mosq.url());
    (agg, Crash { before, at_kill })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_before_its_autosave_loses_nothing_the_agent_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-crash", "plant-crash");
    let Some(mut mosq) = Mosquitto::start_with_autosave(dir.path(), 3600) else { return };
    let agg = start(dir.path(), &aggregator_config(dir.path()), &mosq.url());
    agg.wait_mqtt_connected().await;
    let line = SimLine { id: "line-1", rate_per_hour: 3600.0, stop: None };
    let cfg = write_agent_config(dir.path(), agent, site, &mosq.url(), &[line]);
    let log = dir.path().join("agent.log");
    let mut a = start_agent_logged(&cfg, &log);
    let http = agg.http.clone();
    wait_until("first samples at the aggregator", 30, || async {
        match samples(&http, site, "line-1").await {
            Some(n) if n > 0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let (mut agg, crash) =
        crash_while_the_aggregator_is_away(dir.path(), &mut mosq, agg, (site, agent), 50).await;
    let http = agg.http.clone();
    let g = wait_until("the gap asked for and filled", 60, || async {
        match agent_view(&http, agent).await {
            Some(g)
                if g["last_seq"].as_u64().unwrap_or(0) > crash.at_kill
                    && g["seq_missing"] == 0
                    && g["online"] == true =>
            {
                Ok(g)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    a.stop();
    let readings = stop_field(&log, "readings");
    let resent = stop_field(&log, "resent");
    let requests = stop_field(&log, "resend_requests");
    assert_eq!(stop_field(&log, "spool_records"), 0, "everything acknowledged at the clean stop");
    let v = wait_until("every reading counted once at the aggregator", 60, || async {
        match samples(&http, site, "line-1").await {
            Some(n) if n == readings => Ok(n),
            other => Err(format!("want {readings}: {other:?} agent: {:?}", agent_view(&http, agent).await)),
        }
    })
    .await;
    assert_eq!(v, readings);
    // The resent samples went into the history of the minutes they belong
    // to, not aside as late ones.
    let a = get_json(&format!("{http}/api/v1/assets/{site}/line-1")).await;
    assert_eq!(a["late_samples"], 0, "{a}");
    let (from, to) = (
        chrono::Utc::now() - chrono::Duration::minutes(10),
        chrono::Utc::now() + chrono::Duration::minutes(2),
    );
    let h = get_json(&format!(
        "{http}/api/v1/assets/{site}/line-1/history?from={}&to={}&points=1",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
    .await;
    assert_eq!(h["buckets"][0]["samples"].as_u64(), Some(readings), "{h}");
    let g = agent_view(&http, agent).await.unwrap_or(g);
    assert_eq!((g["seq_missing"].as_u64(), g["seq_lost"].as_u64()), (Some(0), Some(0)), "{g}");
    assert_eq!(g["lost_ranges"], serde_json::json!([]), "{g}");
    // At least the 50 published after the aggregator had gone were lost
    // with its session (a few before may have reached it).
    let lost_by_broker = crash.at_kill - crash.before;
    assert!(lost_by_broker >= 50, "{crash:?}");
    assert!(requests >= 1 && resent >= 40, "the agent resent them: {resent} ({crash:?})");
    let metrics = get_text(&format!("{http}/metrics")).await;
    assert!(metric(&metrics, "throughline_resend_requests_total").unwrap() >= 1.0);
    assert_eq!(metric(&metrics, "throughline_seq_lost_total"), Some(0.0));
    let filled = metric(&metrics, "throughline_filled_samples_total").unwrap();
    assert!(filled >= resent as f64, "{filled} samples filled in from {resent} envelopes");
    eprintln!(
        "broker kill -9: {lost_by_broker} envelopes it had acknowledged were lost with the aggregator's session; \
         {requests} resend requests, {resent} envelopes resent ({filled} samples filled into the history); \
         {readings} readings, {v} samples at the aggregator, {} duplicates dropped",
        g["duplicates"]
    );
    agg.proc.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_agent_no_longer_keeps_is_reported_lost_with_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-forgets", "plant-forgets");
    let Some(mut mosq) = Mosquitto::start_with_autosave(dir.path(), 3600) else { return };
    let agg = start(dir.path(), &aggregator_config(dir.path()), &mosq.url());
    agg.wait_mqtt_connected().await;
    let line = SimLine { id: "line-1", rate_per_hour: 3600.0, stop: None };
    let cfg = write_agent_config(dir.path(), agent, site, &mosq.url(), &[line]);
    // Keep no delivered envelope beyond the segment being written (4 KiB:
    // about 20 of them).
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += "\n[spool]\nsegment_bytes = 4096\nmax_bytes = 65536\nkeep_delivered = 0\n";
    std::fs::write(&cfg, text).unwrap();
    let log = dir.path().join("agent.log");
    let mut a = start_agent_logged(&cfg, &log);
    let http = agg.http.clone();
    wait_until("first samples at the aggregator", 30, || async {
        match samples(&http, site, "line-1").await {
            Some(n) if n > 0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let (mut agg, crash) =
        crash_while_the_aggregator_is_away(dir.path(), &mut mosq, agg, (site, agent), 100).await;
    let http = agg.http.clone();
    let g = wait_until("the loss reported", 60, || async {
        match agent_view(&http, agent).await {
            Some(g)
                if g["last_seq"].as_u64().unwrap_or(0) > crash.at_kill
                    && g["seq_missing"] == 0
                    && g["seq_lost"].as_u64().unwrap_or(0) > 0 =>
            {
                Ok(g)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let lost = g["seq_lost"].as_u64().unwrap();
    let ranges: Vec<(u64, u64)> = g["lost_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["from"].as_u64().unwrap(), r["to"].as_u64().unwrap()))
        .collect();
    assert_eq!(ranges.iter().map(|(f, t)| t - f + 1).sum::<u64>(), lost, "{g}");
    for &(from, to) in &ranges {
        assert!(
            crash.before < from && to <= crash.at_kill,
            "lost {from}..={to} lies in what the broker lost: {crash:?}"
        );
    }
    a.stop();
    let envelopes = stop_field(&log, "envelopes");
    let g = wait_until("every envelope received or reported lost", 60, || async {
        match agent_view(&http, agent).await {
            Some(g)
                if g["messages"].as_u64().unwrap_or(0) + g["seq_lost"].as_u64().unwrap_or(0) == envelopes =>
            {
                Ok(g)
            }
            other => Err(format!("want {envelopes} received or lost: {other:?}")),
        }
    })
    .await;
    assert_eq!(g["seq_missing"], 0, "{g}");
    let metrics = get_text(&format!("{http}/metrics")).await;
    assert_eq!(metric(&metrics, "throughline_seq_lost_total"), Some(lost as f64));
    eprintln!(
        "broker kill -9 with keep_delivered = 0: {} envelopes lost by the broker, {lost} reported lost as {ranges:?}, \
         {} resent by the agent; {} received of {envelopes}",
        crash.at_kill - crash.before,
        stop_field(&log, "resent"),
        g["messages"]
    );
    agg.proc.stop();
}
