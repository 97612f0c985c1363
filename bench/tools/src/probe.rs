//! `probe`: alert latency. Trial `i` publishes one sample of probe feeder
//! `probe-i` above its rated load and times the arrival of the alert event
//! that names it (`alert.group` or `alert.asset`, event `opened`) on
//! `throughline/v1/{site}/alerts`. Beside each trial, in the same run and
//! over the same two connections, the broker-only round trip: a message to
//! a topic the receiving connection subscribes to.
//!
//! Every probe is first sent a sample below the threshold (running, with an
//! energy counter), and the trials start once the consumer has counted them
//! all, so each trial's sample crosses the threshold of an asset the
//! consumer already knows.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use rumqttc::{Event, Packet, QoS};

use crate::mqtt::{self, Counter};
use crate::plant::{self, PROBE_RATED_KW};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The broker.
    #[arg(long)]
    pub broker: SocketAddr,
    #[arg(long, default_value = "bench-site")]
    pub site: String,
    /// Trials (one probe feeder each, `probe-000` on).
    #[arg(long, default_value_t = 200)]
    pub trials: usize,
    /// Page with the consumer's sample counter (to know the priming is in).
    #[arg(long)]
    pub count_url: String,
    #[arg(long)]
    pub count_name: String,
    /// Pause before each trial, spread over [0, this) ms: set it to the
    /// alert evaluation period so that trials fall on every phase of it.
    #[arg(long, default_value_t = 100)]
    pub jitter_ms: u64,
    /// Also print every trial (round trip and alert, ms) to stderr.
    #[arg(long)]
    pub raw: bool,
    /// A trial without its alert after this long counts as a timeout.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
}

type Received = (String, Vec<u8>, Instant);

pub async fn run(a: Args) -> anyhow::Result<()> {
    let pid = std::process::id();
    let rtt_topic = format!("bench/rtt/{pid}");
    let alerts_topic = format!("throughline/v1/{}/alerts", a.site);
    let (rx_client, mut rx_loop) = mqtt::client(&format!("bench-probe-rx-{pid}"), a.broker, 100, 16);
    rx_client.subscribe(&alerts_topic, QoS::AtLeastOnce).await?;
    rx_client.subscribe(&rtt_topic, QoS::AtLeastOnce).await?;
    mqtt::connected(&mut rx_loop, 2).await?;
    let (tx, mut inbox) = tokio::sync::mpsc::channel::<Received>(4096);
    tokio::spawn(async move {
        while let Ok(ev) = rx_loop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                // Blocks (never drops) when full: the trial loop drains it.
                if tx.send((p.topic, p.payload.to_vec(), Instant::now())).await.is_err() {
                    return;
                }
            }
        }
    });
    let (client, mut tx_loop) = mqtt::client(&format!("bench-probe-tx-{pid}"), a.broker, 100, 64);
    mqtt::connected(&mut tx_loop, 0).await?;
    tokio::spawn(async move { while tx_loop.poll().await.is_ok() {} });

    let agent = "probe-agent";
    let mut seq = 0u64;
    let counter = Counter::new(&a.count_url, &a.count_name);
    let before = counter.read().await?;
    let mut send_sample = |i: usize, load: f64| {
        seq += 1;
        // Running, with an energy counter: the group's supply covers its
        // (tiny) forecast, so the load is the only condition that can open.
        let s = format!(
            r#"{{"ts":"{}","output":{seq},"state":"running","load_kw":{load}}}"#,
            plant::rfc3339(Utc::now())
        );
        let topic = format!("throughline/v1/{}/{agent}/{}/telemetry", a.site, plant::probe_name(i));
        (topic, plant::envelope(agent, seq, &s))
    };
    for i in 0..a.trials {
        let (topic, body) = send_sample(i, PROBE_RATED_KW * 0.5);
        client.publish(topic, QoS::AtLeastOnce, false, body).await?;
    }
    counter
        .wait_for(before + a.trials as f64, Duration::from_secs(30))
        .await
        .context("priming the probes")?;

    let limit = Duration::from_millis(a.timeout_ms);
    let (mut rtt, mut alert, mut timeouts) = (Vec::new(), Vec::new(), 0);
    for i in 0..a.trials {
        let marker = format!("{i}");
        let t = Instant::now();
        client.publish(&rtt_topic, QoS::AtLeastOnce, false, marker.clone()).await?;
        match wait(&mut inbox, limit, |topic, p| topic == rtt_topic && p == marker.as_bytes()).await {
            Some(at) => rtt.push((at - t).as_secs_f64() * 1e3),
            None => anyhow::bail!("the broker did not deliver a round-trip message in {limit:?}"),
        }
        let name = plant::probe_name(i);
        let (topic, body) = send_sample(i, PROBE_RATED_KW * 1.5);
        let t = Instant::now();
        client.publish(topic, QoS::AtLeastOnce, false, body).await?;
        let names_probe = |topic: &str, p: &[u8]| topic == alerts_topic && is_opened_for(p, &name);
        match wait(&mut inbox, limit, names_probe).await {
            Some(at) => alert.push((at - t).as_secs_f64() * 1e3),
            None => timeouts += 1,
        }
        if a.raw {
            eprintln!(
                "trial {i} rtt_ms={:.3} alert_ms={:.3}",
                rtt[rtt.len() - 1],
                alert.last().unwrap_or(&f64::NAN)
            );
        }
        // Spread the trials over the phase of a periodic evaluation (a
        // trial that waited for a tick would otherwise start just after it).
        // Golden-ratio steps cover [0, jitter) evenly for any number of trials.
        let phase = (i as f64 * 0.618_033_988_749_895).fract();
        tokio::time::sleep(Duration::from_secs_f64(phase * a.jitter_ms as f64 / 1000.0)).await;
    }
    let (r50, r99) = (percentile(&mut rtt, 50.0), percentile(&mut rtt, 99.0));
    let (a50, a99) = (percentile(&mut alert, 50.0), percentile(&mut alert, 99.0));
    println!(
        "trials={} timeouts={timeouts} rtt_p50_ms={r50:.3} rtt_p99_ms={r99:.3} alert_p50_ms={a50:.3} \
         alert_p99_ms={a99:.3} alert_max_ms={:.3} over_p50_ms={:.3} over_p99_ms={:.3}",
        a.trials,
        alert.iter().cloned().fold(f64::NAN, f64::max),
        a50 - r50,
        a99 - r99
    );
    let _ = rx_client.try_disconnect();
    let _ = client.try_disconnect();
    Ok(())
}

/// The first received message matching `f` within `limit`: its arrival time.
async fn wait(
    inbox: &mut tokio::sync::mpsc::Receiver<Received>,
    limit: Duration,
    f: impl Fn(&str, &[u8]) -> bool,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, inbox.recv()).await {
            Ok(Some((topic, payload, at))) if f(&topic, &payload) => return Some(at),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Whether an alert event is an `opened` event about `name` (group or asset).
fn is_opened_for(payload: &[u8], name: &str) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else { return false };
    let alert = &v["alert"];
    v["event"] == "opened" && (alert["group"] == name || alert["asset"] == name)
}

/// Nearest-rank percentile; NaN when empty.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 100.0);
        assert_eq!(percentile(&mut v, 99.0), 198.0);
        assert_eq!(percentile(&mut v, 100.0), 200.0);
        assert!(percentile(&mut [], 99.0).is_nan());
    }

    #[test]
    fn only_an_opened_event_about_the_probe_counts() {
        let ev = |event: &str, group: &str, asset: &str| {
            serde_json::json!({"v": 1, "event": event, "alert": {"group": group, "asset": asset}}).to_string()
        };
        assert!(is_opened_for(ev("opened", "probe-007", "x").as_bytes(), "probe-007"));
        assert!(is_opened_for(ev("opened", "x", "probe-007").as_bytes(), "probe-007"));
        assert!(!is_opened_for(ev("resolved", "probe-007", "x").as_bytes(), "probe-007"));
        assert!(!is_opened_for(ev("opened", "probe-070", "x").as_bytes(), "probe-007"));
        assert!(!is_opened_for(b"not json", "probe-007"));
    }
}
