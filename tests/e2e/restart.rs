//! `kill -9` of the aggregator mid-stream, through a Mosquitto with
//! persistence: the journal and the checkpoint make the restarted
//! aggregator count every sample once. The truth is a subscriber of the
//! test's own that sees every envelope the agent published.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use throughline_tests::*;

const LINES: usize = 10;
const ENVELOPES: usize = 20_000;

#[derive(Debug, Default, Clone)]
struct Seen {
    seqs: BTreeSet<u64>,
    samples: u64,
    /// Output counter readings by envelope seq.
    outputs: BTreeMap<u64, Vec<f64>>,
}

impl Seen {
    /// What the counters say was made, in seq order: increases, and after a
    /// restart of the agent (its simulator counts from zero again) the new
    /// reading.
    fn made(&self) -> f64 {
        let mut prev: Option<f64> = None;
        let mut made = 0.0;
        for &out in self.outputs.values().flatten() {
            if let Some(p) = prev {
                made += if out >= p { out - p } else { out };
            }
            prev = Some(out);
        }
        made
    }
}

type Truth = Arc<Mutex<BTreeMap<String, Seen>>>;

/// Subscribe to every telemetry envelope of `site`; returns once subscribed.
async fn watch(port: u16, site: &str) -> (rumqttc::AsyncClient, Truth) {
    let truth: Truth = Arc::default();
    let mut opts = rumqttc::MqttOptions::new(unique("truth"), "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    // A persistent session: across a broker restart it misses nothing.
    opts.set_clean_session(false);
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
    client
        .subscribe(format!("throughline/v1/{site}/+/+/telemetry"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let subscribed = Arc::new(tokio::sync::Notify::new());
    let (ready, seen) = (subscribed.clone(), truth.clone());
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => ready.notify_one(),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let asset = p.topic.split('/').nth(4).unwrap().to_string();
                    let v: Value = serde_json::from_slice(&p.payload).unwrap();
                    let mut t = seen.lock().unwrap();
                    let s = t.entry(asset).or_default();
                    let seq = v["seq"].as_u64().unwrap();
                    if !s.seqs.insert(seq) {
                        continue;
                    }
                    for sample in v["samples"].as_array().unwrap() {
                        s.samples += 1;
                        if let Some(out) = sample["output"].as_f64() {
                            s.outputs.entry(seq).or_default().push(out);
                        }
                    }
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                // The broker is away: poll again, which reconnects.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(DEADLINE, subscribed.notified()).await.expect("truth subscriber subscribed");
    (client, truth)
}

fn envelopes(truth: &Truth) -> usize {
    truth.lock().unwrap().values().map(|s| s.seqs.len()).sum()
}

fn aggregator(dir: &Path, broker: &str) -> Aggregator {
    start_aggregator(&[
        "--http-listen",
        "127.0.0.1:0",
        "--broker",
        broker,
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ])
}

async fn agent_messages(http: &str, agent: &str) -> u64 {
    let Ok(resp) = reqwest::get(format!("{http}/api/v1/agents")).await else { return 0 };
    let v: Value = resp.json().await.unwrap_or_default();
    v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|g| g["agent"] == agent))
        .and_then(|g| g["messages"].as_u64())
        .unwrap_or(0)
}

/// An agent config of `lines` simulated lines at 100 readings/s, one
/// reading per envelope (asset ids `{agent}-line-{i}`).
fn fast_agent(dir: &Path, agent: &str, site: &str, broker: &str, lines: usize) -> std::path::PathBuf {
    let assets: String = (0..lines)
        .map(|i| {
            format!("[[assets]]\nid = \"{agent}-line-{i}\"\n[assets.source]\ntype = \"simulator\"\nprofile = \"line\"\ninterval_ms = 10\nrate_per_hour = {}\n\n", 3600 + 360 * i)
        })
        .collect();
    let cfg = write_agent_config_raw(dir, agent, site, broker, &assets);
    let text =
        std::fs::read_to_string(&cfg).unwrap().replace("max_batch_samples = 5", "max_batch_samples = 1");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Envelopes every agent of the site delivered to the aggregator (not
/// counting duplicates).
async fn site_messages(http: &str) -> u64 {
    let Ok(resp) = reqwest::get(format!("{http}/api/v1/agents")).await else { return 0 };
    let v: Value = resp.json().await.unwrap_or_default();
    v["agents"].as_array().map(|a| a.iter().filter_map(|g| g["messages"].as_u64()).sum()).unwrap_or(0)
}

/// Wait until the truth subscriber has seen nothing new for a second;
/// returns the envelopes it saw.
async fn quiet(truth: &Truth) -> usize {
    let mut last = (envelopes(truth), Instant::now());
    wait_until("the truth subscriber quiet", 30, || {
        let n = envelopes(truth);
        if n != last.0 {
            last = (n, Instant::now());
        }
        let quiet = last.1.elapsed() > Duration::from_secs(1);
        async move {
            if quiet {
                Ok(n)
            } else {
                Err(format!("{n} envelopes"))
            }
        }
    })
    .await
}

/// The aggregator at `http` has every envelope the agents published, each
/// once: per asset the samples, the output and the stored history equal
/// what the truth subscriber saw; no agent misses a number.
async fn assert_counted_once(http: &str, site: &str, truth: &Truth) -> usize {
    let published = quiet(truth).await;
    wait_until("every envelope at the aggregator", 60, || async {
        let n = site_messages(http).await;
        if n as usize >= published {
            Ok(())
        } else {
            let m = get_text(&format!("{http}/metrics")).await;
            let seen: Vec<&str> = m
                .lines()
                .filter(|l| {
                    [
                        "throughline_journal",
                        "throughline_messages",
                        "throughline_mqtt",
                        "throughline_duplicate",
                    ]
                    .iter()
                    .any(|p| l.starts_with(p))
                })
                .collect();
            Err(format!("{n} of {published}; {seen:?}"))
        }
    })
    .await;
    let agents = get_json(&format!("{http}/api/v1/agents")).await;
    let delivered: u64 =
        agents["agents"].as_array().unwrap().iter().map(|g| g["messages"].as_u64().unwrap()).sum();
    assert_eq!(delivered as usize, published, "0 lost, 0 double-counted: {agents}");
    let truth = truth.lock().unwrap().clone();
    // Numbers the agent never published (the block it skips after a crash)
    // are announced (or missing) at the aggregator too; nothing else is.
    let mut seqs: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (asset, seen) in &truth {
        let agent = asset.rsplit_once("-line-").unwrap().0;
        seqs.entry(agent).or_default().extend(&seen.seqs);
    }
    for g in agents["agents"].as_array().unwrap() {
        let s = &seqs[g["agent"].as_str().unwrap()];
        let never = s.last().unwrap() - s.first().unwrap() + 1 - s.len() as u64;
        // The agent announces the block it skips; none is lost.
        let announced = g["seq_skipped_announced"].as_u64().unwrap_or(0);
        assert_eq!(g["seq_missing"].as_u64().unwrap() + announced, never, "{g}");
        assert_eq!(g["seq_lost"].as_u64().unwrap_or(0), 0, "{g}");
    }
    let (from, to) = (
        chrono::Utc::now() - chrono::Duration::minutes(10),
        chrono::Utc::now() + chrono::Duration::minutes(2),
    );
    for (asset, seen) in &truth {
        let v = get_json(&format!("{http}/api/v1/assets/{site}/{asset}")).await;
        assert_eq!(v["samples"].as_u64(), Some(seen.samples), "{asset}: every sample once: {v}");
        let made = seen.made();
        let total = v["output_total"].as_f64().unwrap();
        assert!((total - made).abs() < 1e-6, "{asset}: output {total}, published counters say {made}");
        let h = get_json(&format!(
            "{http}/api/v1/assets/{site}/{asset}/history?from={}&to={}&points=1",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
        .await;
        let b = &h["buckets"][0];
        assert!((b["output"].as_f64().unwrap() - made).abs() < 1e-3, "{asset}: history {b}, made {made}");
        assert_eq!(b["samples"].as_u64(), Some(seen.samples), "{asset}: {b}");
    }
    published
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-k9", "plant-k9");
    let Some(mosq) = Mosquitto::start(dir.path()) else { return };
    let (watcher, truth) = watch(mosq.port, site).await;
    let mut agg = aggregator(dir.path(), &mosq.url());
    agg.wait_mqtt_connected().await;
    // Ten lines at 100 readings/s, one reading per envelope: ~1,000 envelopes/s.
    let mut a = start_agent(&fast_agent(dir.path(), agent, site, &mosq.url(), LINES));

    let http = agg.http.clone();
    // After a checkpoint (every 10 s), so that the restart reads state back
    // from the store and replays the journal after it.
    wait_until("the aggregator a quarter through the stream, past a checkpoint", 60, || async {
        let n = agent_messages(&http, agent).await;
        let rows =
            metric(&get_text(&format!("{http}/metrics")).await, "throughline_history_rows_written_total");
        if n >= (ENVELOPES / 4) as u64 && rows.is_some_and(|r| r > 0.0) {
            Ok(())
        } else {
            Err(format!("{n} envelopes, {rows:?} rows written"))
        }
    })
    .await;
    // And some more after it: acknowledged, journaled, not checkpointed.
    let n0 = agent_messages(&http, agent).await;
    wait_until("messages after the checkpoint", 30, || async {
        let n = agent_messages(&http, agent).await;
        if n >= n0 + 500 {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    let counted = agent_messages(&http, agent).await as usize;
    agg.proc.signal("KILL");
    agg.proc.wait_exit();
    // The stream goes on into the broker, queued for the aggregator's session.
    let at_kill = envelopes(&truth);
    wait_until("the agent publishing on while the aggregator is down", 30, || async {
        let n = envelopes(&truth);
        if n >= at_kill + 2000 {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;

    let restarted = (Instant::now(), envelopes(&truth));
    let mut agg = aggregator(dir.path(), &mosq.url());
    let http = agg.http.clone();
    wait_until("the agent past 20,000 envelopes", 60, || async {
        let n = envelopes(&truth);
        if n >= ENVELOPES {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    a.stop();
    let published = assert_counted_once(&http, site, &truth).await;
    assert_eq!(truth.lock().unwrap().len(), LINES);
    let metrics = get_text(&format!("{http}/metrics")).await;
    let replayed = metric(&metrics, "throughline_journal_replayed_total").unwrap();
    assert!(replayed > 0.0, "the restart replayed the journal (acknowledged, not yet checkpointed)");
    eprintln!("kill -9 mid-stream: {published} envelopes, {replayed} replayed from the journal");
    // A figure, not an assertion: the backlog at the restart and the rest
    // of the stream, until every envelope was counted.
    eprintln!(
        "after the restart: {} envelopes counted in {:.1} s ({} queued at the restart)",
        published.saturating_sub(counted),
        restarted.0.elapsed().as_secs_f64(),
        restarted.1.saturating_sub(counted)
    );
    let _ = watcher.disconnect().await;
    agg.proc.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_catching_up_a_backlog_of_three_agents_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-catchup";
    let Some(mosq) = Mosquitto::start(dir.path()) else { return };
    let (watcher, truth) = watch(mosq.port, site).await;
    // The aggregator's session exists, then it is away while three agents
    // produce: the broker queues the backlog for it.
    let mut agg = aggregator(dir.path(), &mosq.url());
    agg.wait_mqtt_connected().await;
    agg.proc.stop();
    let mut agents: Vec<Proc> = (0..3)
        .map(|i| start_agent(&fast_agent(dir.path(), &format!("gw-c{i}"), site, &mosq.url(), 2)))
        .collect();
    wait_until("a backlog of 6,000 envelopes", 60, || async {
        let n = envelopes(&truth);
        if n >= 6000 {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    let started = Instant::now();
    let mut agg = aggregator(dir.path(), &mosq.url());
    let http = agg.http.clone();
    let backlog = envelopes(&truth) as u64;
    wait_until("the backlog caught up", 60, || async {
        let n = site_messages(&http).await;
        if n >= backlog {
            Ok(())
        } else {
            Err(format!("{n} of {backlog}"))
        }
    })
    .await;
    let caught_up = started.elapsed();
    let counted = site_messages(&http).await;
    // Figures, not assertions: the catch-up rate under whatever load the
    // machine has (startup included), and below the drain after the kill.
    eprintln!(
        "catch-up: {backlog} envelopes of backlog in {:.1} s ({:.0}/s)",
        caught_up.as_secs_f64(),
        backlog as f64 / caught_up.as_secs_f64()
    );
    // Within a second of catching up, long before the next checkpoint.
    agg.proc.signal("KILL");
    agg.proc.wait_exit();
    let restarted = Instant::now();
    let mut agg = aggregator(dir.path(), &mosq.url());
    let http = agg.http.clone();
    for a in &mut agents {
        a.stop();
    }
    let published = assert_counted_once(&http, site, &truth).await;
    eprintln!(
        "drain after the kill -9: the rest ({} envelopes) counted in {:.1} s",
        published as u64 - counted.min(published as u64),
        restarted.elapsed().as_secs_f64()
    );
    let replayed =
        metric(&get_text(&format!("{http}/metrics")).await, "throughline_journal_replayed_total").unwrap();
    eprintln!("kill -9 after a catch-up: {published} envelopes ({backlog} of backlog), {replayed} replayed");
    let _ = watcher.disconnect().await;
    agg.proc.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_before_its_cursor_was_written_resends_and_nothing_counts_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-resend", "plant-resend");
    let Some(mut mosq) = Mosquitto::start(dir.path()) else { return };
    let (watcher, truth) = watch(mosq.port, site).await;
    let mut agg = aggregator(dir.path(), &mosq.url());
    agg.wait_mqtt_connected().await;
    let cfg = fast_agent(dir.path(), agent, site, &mosq.url(), 2);
    let log = dir.path().join("agent.log");
    let mut a = start_agent_logged(&cfg, &log);
    let http = agg.http.clone();
    wait_until("the stream flowing", 30, || async {
        let n = agent_messages(&http, agent).await;
        if n >= 200 {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    // A broker outage builds a backlog in the agent's spool.
    mosq.stop();
    let spool_dir = dir.path().join(format!("state-{agent}/spool"));
    let before = spool_bytes(&spool_dir);
    wait_until("the agent spooling", 30, || async {
        let now = spool_bytes(&spool_dir);
        if now >= before + 100_000 {
            Ok(())
        } else {
            Err(format!("{now} bytes"))
        }
    })
    .await;
    mosq.restart();
    wait_until("the backlog delivered", 30, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("spooled backlog delivered") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    // Killed before its spool cursor is rewritten: it will send again what
    // the broker acknowledged. The aggregator restarts meanwhile.
    a.signal("KILL");
    a.wait_exit();
    agg.proc.signal("KILL");
    agg.proc.wait_exit();
    let mut agg = aggregator(dir.path(), &mosq.url());
    let http = agg.http.clone();
    let mut a = start_agent(&cfg);
    wait_until("the agent back", 30, || async {
        let n = agent_messages(&http, agent).await;
        let d = get_json(&format!("{http}/api/v1/agents")).await;
        let online = d["agents"]
            .as_array()
            .is_some_and(|v| v.iter().any(|g| g["agent"] == agent && g["online"] == true));
        if n > 0 && online {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    a.stop();
    let published = assert_counted_once(&http, site, &truth).await;
    let agents = get_json(&format!("{http}/api/v1/agents")).await;
    let dups = agents["agents"][0]["duplicates"].as_u64().unwrap_or(0);
    eprintln!("agent killed before its cursor: {published} envelopes, {dups} resent envelopes recognised as duplicates");
    let _ = watcher.disconnect().await;
    agg.proc.stop();
}

/// A tmpfs of `bytes` mounted at `at` (root only); unmounted on drop.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, bytes: u64) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(SmallDisk { at: at.to_path_buf() });
        }
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but a tmpfs cannot be mounted (the disk-full test runs as root)");
        }
        eprintln!("SKIPPED: cannot mount a tmpfs (run as root to test a full disk; under CI=true this fails instead)");
        None
    }

    /// Fill it up; returns the filler file.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        let small = [0u8; 512];
        while std::io::Write::write_all(&mut f, &small).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_acks_says_degraded_and_loses_nothing_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, site) = ("gw-full", "plant-full");
    let Some(disk) = SmallDisk::mount(&dir.path().join("data"), 8 * 1024 * 1024) else { return };
    let Some(mosq) = Mosquitto::start(dir.path()) else { return };
    let (watcher, truth) = watch(mosq.port, site).await;
    let mut agg = aggregator(dir.path(), &mosq.url());
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();
    let assets: String = (0..2)
        .map(|i| {
            format!("[[assets]]\nid = \"line-{i}\"\n[assets.source]\ntype = \"simulator\"\nprofile = \"line\"\ninterval_ms = 10\nrate_per_hour = 3600\n\n")
        })
        .collect();
    let cfg = write_agent_config_raw(dir.path(), agent, site, &mosq.url(), &assets);
    let text =
        std::fs::read_to_string(&cfg).unwrap().replace("max_batch_samples = 5", "max_batch_samples = 1");
    std::fs::write(&cfg, text).unwrap();
    let mut a = start_agent(&cfg);
    wait_until("the stream flowing", 30, || async {
        let n = agent_messages(&http, agent).await;
        if n >= 300 {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;

    let filler = disk.fill();
    let health = wait_until("/healthz saying degraded", 30, || async {
        let resp = reqwest::get(format!("{http}/healthz")).await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if code == 503 && body["status"] == "degraded" {
            Ok(body)
        } else {
            Err(format!("{code} {body}"))
        }
    })
    .await;
    let problem = format!("{} {}", health["journal"], health["store"]);
    assert!(problem.contains("No space left"), "names the cause: {health}");
    // Nothing is acknowledged meanwhile: the broker holds the stream.
    let held_from = envelopes(&truth);
    wait_until("the stream going on into the broker", 30, || async {
        let n = envelopes(&truth);
        if n >= held_from + 600 {
            Ok(())
        } else {
            Err(format!("{n} envelopes"))
        }
    })
    .await;
    let metrics = get_text(&format!("{http}/metrics")).await;
    assert!(metric(&metrics, "throughline_messages_held_total").unwrap() > 0.0, "held, not acknowledged");

    std::fs::remove_file(filler).unwrap();
    wait_until("/healthz ok again", 30, || async {
        let resp = reqwest::get(format!("{http}/healthz")).await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        if code == 200 {
            Ok(())
        } else {
            Err(format!("{code} {}", resp.text().await.unwrap_or_default()))
        }
    })
    .await;
    a.stop();
    let mut last = (envelopes(&truth), Instant::now());
    let published = wait_until("the truth subscriber quiet", 30, || {
        let n = envelopes(&truth);
        if n != last.0 {
            last = (n, Instant::now());
        }
        let quiet = last.1.elapsed() > Duration::from_secs(1);
        async move {
            if quiet {
                Ok(n)
            } else {
                Err(format!("{n} envelopes"))
            }
        }
    })
    .await;
    wait_until("everything the broker held ingested", 60, || async {
        let n = agent_messages(&http, agent).await;
        if n as usize >= published {
            Ok(())
        } else {
            Err(format!("{n} of {published}"))
        }
    })
    .await;
    let truth = truth.lock().unwrap().clone();
    for (asset, seen) in &truth {
        let v = get_json(&format!("{http}/api/v1/assets/{site}/{asset}")).await;
        assert_eq!(v["samples"].as_u64(), Some(seen.samples), "{asset}: every sample once: {v}");
        let made = seen.made();
        assert!((v["output_total"].as_f64().unwrap() - made).abs() < 1e-6, "{asset}: {v} made {made}");
    }
    eprintln!(
        "full disk: {published} envelopes, {} held while the disk was full",
        metric(&metrics, "throughline_messages_held_total").unwrap()
    );
    let _ = watcher.disconnect().await;
    agg.proc.stop();
}
