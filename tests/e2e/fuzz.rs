//! The bad-input suite, MQTT side: generated payloads (`throughline_tests::fuzz`,
//! fixed seed) interleaved with good envelopes, through the embedded broker
//! and through Mosquitto, against the real aggregator binary. The process
//! never exits, its RSS stays under a bound, every good envelope is
//! ingested, every refused one is counted under its reason, the 10 MB ones
//! never reach it, and it never reconnects.
//!
//! Short by default (`THROUGHLINE_FUZZ_PAYLOADS`, 1,500 per broker);
//! `bench/fuzz.sh` runs 10^6 in a release build and prints the figures.

use std::collections::BTreeMap;
use std::time::Instant;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use throughline_tests::fuzz::{Expect, Fuzz};
use throughline_tests::*;

/// Bound on the aggregator's resident set during the run, in KiB.
const MAX_RSS_KIB: u64 = 200 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("aggregator is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A QoS 1 publisher whose event loop ends on the first error (the
/// embedded broker ends the connection of a too large packet).
fn publisher(port: u16, id: &str, max_out: usize) -> (AsyncClient, tokio::task::JoinHandle<u64>) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, max_out);
    opts.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(opts, 200);
    let task = tokio::spawn(async move {
        let mut acked = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return acked,
                Ok(_) => {}
            }
        }
    });
    (client, task)
}

/// Publish the cases, wait until the aggregator has accounted for every
/// one, and check the counts, the RSS and that it never reconnected.
async fn run(agg: &mut Aggregator, port: u16, site: &str, seed: u64) {
    let n = env_u64("THROUGHLINE_FUZZ_PAYLOADS", 1500);
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut fuzz = Fuzz::new(seed, site, "gw-fuzz", &ts);
    fuzz.huge_every = 700;
    let pid = agg.proc.pid();
    let (client, acks) = publisher(port, &unique("fuzzer"), 1 << 20);
    let mut want: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut goods, mut huge, mut unrouted) = (0u64, 0u64, 0u64);
    let mut max_rss = rss_kib(pid);
    let start = Instant::now();
    for i in 0..n {
        let case = fuzz.next();
        match case.expect {
            Expect::Good => goods += 1,
            Expect::Refused(reason) => *want.entry(reason).or_default() += 1,
            Expect::Unrouted => unrouted += 1,
            Expect::Dropped => {
                huge += 1;
                // On its own connection: the embedded broker ends it.
                let (big, done) = publisher(port, &unique("huge"), 11 << 20);
                big.publish(case.topic, QoS::AtLeastOnce, false, case.payload).await.unwrap();
                let _ = big.disconnect().await;
                let _ = tokio::time::timeout(DEADLINE, done).await;
                continue;
            }
        }
        client.publish(case.topic, QoS::AtLeastOnce, false, case.payload).await.unwrap();
        if i % 200 == 0 {
            max_rss = max_rss.max(rss_kib(pid));
        }
    }
    let published = start.elapsed();
    let http = agg.http.clone();
    let deadline = 60 + n / 500;
    let text = wait_until("every case accounted for", deadline, || {
        let http = http.clone();
        let want = want.clone();
        async move {
            let text = get_text(&format!("{http}/metrics")).await;
            let ingested = metric(&text, "throughline_messages_ingested_total").unwrap_or(0.0) as u64;
            let refused: u64 = want
                .keys()
                .map(|r| {
                    metric(&text, &format!("throughline_rejected_messages_total{{reason=\"{r}\"}}"))
                        .unwrap_or(0.0) as u64
                })
                .sum();
            if ingested >= goods && refused >= want.values().sum::<u64>() {
                Ok(text)
            } else {
                Err(format!(
                    "ingested {ingested} of {goods}, refused {refused} of {}",
                    want.values().sum::<u64>()
                ))
            }
        }
    })
    .await;
    let accounted = start.elapsed();
    max_rss = max_rss.max(rss_kib(pid));
    assert!(agg.proc.child.try_wait().unwrap().is_none(), "the aggregator exited");
    assert_eq!(
        metric(&text, "throughline_messages_ingested_total"),
        Some(goods as f64),
        "every good envelope, once"
    );
    for reason in throughline_shared::RejectReason::ALL {
        let got =
            metric(&text, &format!("throughline_rejected_messages_total{{reason=\"{}\"}}", reason.label()));
        let expected = want.get(reason.label()).copied().unwrap_or(0);
        assert_eq!(got, Some(expected as f64), "refused as {reason}");
    }
    assert_eq!(metric(&text, "throughline_mqtt_reconnects_total"), Some(0.0), "never reconnected");
    assert!(max_rss < MAX_RSS_KIB, "RSS peaked at {max_rss} KiB");
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(DEADLINE, acks).await;
    eprintln!(
        "fuzz {site}: {n} cases ({goods} good, {} refused in {} reasons, {huge} of 10 MB dropped upstream, {unrouted} unrouted) published in {:.1} s, accounted for in {:.1} s ({:.0} cases/s); aggregator RSS peak {} KiB",
        want.values().sum::<u64>(),
        want.len(),
        published.as_secs_f64(),
        accounted.as_secs_f64(),
        n as f64 / accounted.as_secs_f64(),
        max_rss
    );
}

#[tokio::test]
async fn fuzz_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agg, mqtt) = start_embedded_aggregator(dir.path());
    agg.wait_mqtt_connected().await;
    run(&mut agg, mqtt, "plant-fuzz-e", env_u64("THROUGHLINE_FUZZ_SEED_EMBEDDED", 1)).await;
    agg.proc.stop();
}

#[tokio::test]
async fn fuzz_through_mosquitto_over_mqtt5() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mosq) = Mosquitto::start(dir.path()) else { return };
    let config = dir.path().join("aggregator.toml");
    std::fs::write(&config, format!("[mqtt]\nprotocol = \"5\"\nclient_id = \"{}\"\n", unique("agg")))
        .unwrap();
    let mut agg = start_aggregator(&[
        "--config",
        config.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--broker",
        &mosq.url(),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    agg.wait_mqtt_connected().await;
    run(&mut agg, mosq.port, "plant-fuzz-m", env_u64("THROUGHLINE_FUZZ_SEED_MOSQUITTO", 2)).await;
    agg.proc.stop();
}
