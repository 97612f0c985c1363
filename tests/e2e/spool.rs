//! Store-and-forward through a real Mosquitto that the test stops and
//! restarts: nothing produced during an outage is lost, nothing is counted
//! twice, order is kept; a SIGKILL during the outage loses nothing spooled;
//! a corrupt spool tail is skipped and reported.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use throughline_edge_agent::spool::{Spool, SpoolConfig};
use throughline_tests::*;

async fn agent_view(http: &str, agent: &str) -> Option<Value> {
    let v = get_json(&format!("{http}/api/v1/agents")).await;
    v["agents"].as_array()?.iter().find(|a| a["agent"] == agent).cloned()
}

async fn asset_view(http: &str, site: &str, asset: &str) -> Option<Value> {
    let resp = reqwest::get(format!("{http}/api/v1/assets/{site}/{asset}")).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

fn start_external_aggregator(dir: &Path, broker: &str) -> Aggregator {
    start_aggregator(&[
        "--http-listen",
        "127.0.0.1:0",
        "--broker",
        broker,
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ])
}

struct Setup {
    mosq: Mosquitto,
    agg: Aggregator,
    cfg: std::path::PathBuf,
}

/// A Mosquitto of the test's own, an aggregator subscribed to it, and the
/// config of an agent with one line at 10 samples/s (`None`: skip).
async fn setup(dir: &Path, agent: &str, site: &str) -> Option<Setup> {
    let mosq = Mosquitto::start(dir)?;
    let agg = start_external_aggregator(dir, &mosq.url());
    agg.wait_mqtt_connected().await;
    let line = SimLine { id: "line-1", rate_per_hour: 3600.0, stop: None };
    let cfg = write_agent_config(dir, agent, site, &mosq.url(), &[line]);
    Some(Setup { mosq, agg, cfg })
}

/// Wait until the agent has spooled at least `bytes` while the broker is away.
async fn wait_spooled(spool_dir: &Path, bytes: u64) -> u64 {
    wait_for(&format!("spool in {} reaching {bytes} bytes", spool_dir.display()), || async {
        let now = spool_bytes(spool_dir);
        if now >= bytes {
            Ok(now)
        } else {
            Err(format!("{now} bytes"))
        }
    })
    .await
}

/// The `name=value` field of the agent's "edge agent stopped" log line.
fn stop_field(log: &Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("edge agent stopped"))
        .unwrap_or_else(|| panic!("no stop line in log:\n{text}"));
    let key = format!("{name}=");
    let at = line.find(&key).unwrap_or_else(|| panic!("{name} not in {line}")) + key.len();
    line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn broker_outage_every_sample_arrives_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-outage", "plant-outage");
    let Some(Setup { mut mosq, mut agg, cfg }) = setup(dir.path(), agent, site).await else { return };
    let http = agg.http.clone();
    let log = dir.path().join("agent.log");
    let mut a = start_agent_logged(&cfg, &log);
    wait_for("first samples at the aggregator", || async {
        match asset_view(&http, site, "line-1").await {
            Some(v) if v["samples"].as_u64().unwrap_or(0) > 0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The broker goes away while the line keeps producing (10 samples/s).
    mosq.stop();
    let spool_dir = dir.path().join(format!("state-{agent}/spool"));
    let before = spool_bytes(&spool_dir);
    wait_spooled(&spool_dir, before + 4000).await;
    mosq.restart();

    // Back: the backlog drains while new samples keep flowing.
    wait_for("the agent reporting its backlog delivered", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("spooled backlog delivered") {
            Ok(())
        } else {
            Err(text.lines().last().unwrap_or_default().to_string())
        }
    })
    .await;
    a.stop();
    let readings = stop_field(&log, "readings");
    assert_eq!(
        stop_field(&log, "spool_records"),
        0,
        "everything acknowledged at the clean stop: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(stop_field(&log, "dropped_at_shutdown"), 0);
    let v = wait_for("every sample counted at the aggregator", || async {
        match asset_view(&http, site, "line-1").await {
            Some(v) if v["samples"].as_u64() == Some(readings) => Ok(v),
            other => {
                Err(format!("want {readings} samples: {other:?} agent: {:?}", agent_view(&http, agent).await))
            }
        }
    })
    .await;
    assert_eq!(v["late_samples"], 0, "replayed in order: {v}");
    assert_eq!(v["counter_resets"], 0, "{v}");
    let g = agent_view(&http, agent).await.unwrap();
    assert_eq!(g["seq_missing"], 0, "no envelope missing: {g}");
    agg.proc.stop();
}

#[tokio::test]
async fn sigkill_during_an_outage_loses_nothing_spooled_and_a_corrupt_tail_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-kill", "plant-kill");
    let Some(Setup { mut mosq, mut agg, cfg }) = setup(dir.path(), agent, site).await else { return };
    let http = agg.http.clone();
    let mut a = start_agent(&cfg);
    wait_for("agent online", || async {
        match agent_view(&http, agent).await {
            Some(v) if v["online"] == true => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    mosq.stop();
    let spool_dir = dir.path().join(format!("state-{agent}/spool"));
    let before = spool_bytes(&spool_dir);
    wait_spooled(&spool_dir, before + 3000).await;
    a.signal("KILL");
    a.wait_exit();

    // What the killed agent left in its spool.
    let spooled: Vec<u64> = {
        let mut s = Spool::open(&spool_dir, SpoolConfig::default()).unwrap();
        let mut seqs = Vec::new();
        while let Some(r) = s.next_unsent().unwrap() {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
        seqs
    };
    assert!(spooled.len() >= 5, "outage produced envelopes: {spooled:?}");
    // A record torn by a power loss at the end of the newest segment.
    let mut segs: Vec<_> = std::fs::read_dir(&spool_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let newest = segs.pop().unwrap();
    let mut torn = std::fs::OpenOptions::new().append(true).open(&newest).unwrap();
    std::io::Write::write_all(&mut torn, b"TLR1\x80\x00\x00\x00garbage-of-a-torn-write").unwrap();
    drop(torn);

    // Broker back, a watcher on the agent's topics, then the agent again.
    mosq.restart();
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let watcher = {
        let mut opts = rumqttc::MqttOptions::new(unique("watch"), "127.0.0.1", mosq.port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
        client
            .subscribe(format!("throughline/v1/{site}/{agent}/+/telemetry"), rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let seen = seen.clone();
        let subscribed = Arc::new(tokio::sync::Notify::new());
        let ready = subscribed.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => ready.notify_one(),
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let v: Value = serde_json::from_slice(&p.payload).unwrap();
                        seen.lock().unwrap().push(v["seq"].as_u64().unwrap());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        tokio::time::timeout(DEADLINE, subscribed.notified()).await.expect("watcher subscribed");
        client
    };
    let mut a = start_agent(&cfg);
    let want: BTreeSet<u64> = spooled.iter().copied().collect();
    wait_for("every spooled envelope delivered", || async {
        let got: BTreeSet<u64> = seen.lock().unwrap().iter().copied().collect();
        let missing: Vec<_> = want.difference(&got).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {missing:?}"))
        }
    })
    .await;
    // In order: the spooled envelopes arrived in the order they were numbered.
    let order: Vec<u64> = seen.lock().unwrap().iter().copied().filter(|s| want.contains(s)).collect();
    let mut first_arrivals = Vec::new();
    for s in order {
        if !first_arrivals.contains(&s) {
            first_arrivals.push(s);
        }
    }
    assert_eq!(first_arrivals, spooled, "replayed in order");
    let v = wait_for("the torn record reported in the agent's status", || async {
        match agent_view(&http, agent).await {
            Some(v) if v["online"] == true && v["health"]["spool"]["corrupt"].as_u64() == Some(1) => Ok(v),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(v["health"]["spool"]["dropped"], 0, "{v}");
    let _ = watcher.disconnect().await;
    a.stop();
    agg.proc.stop();
}
