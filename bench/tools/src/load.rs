//! `load`: a burst of telemetry at QoS 1, as fast as the broker takes it,
//! and the time until the consumer under test has processed all of it.
//!
//! Envelopes go round robin over the plant's assets, each on its agent's
//! connection with that agent's `seq`; samples are 1 s apart in event time
//! per asset and end a few seconds before now. Everything is formatted
//! before the clock starts. The consumer must serve a counter over HTTP
//! (the aggregator's `/metrics`, the counting subscriber's or Node-RED's
//! page); before the clock starts, a warm-up envelope (agent
//! `bench-warmup`) is sent until the counter moves, so the consumer is
//! known to be subscribed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use rumqttc::{Event, Packet, QoS};

use crate::mqtt::{self, Counter};
use crate::plant::{self, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    /// The counter counts messages.
    Messages,
    /// The counter counts samples.
    Samples,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub shape: Shape,
    /// The broker.
    #[arg(long)]
    pub broker: SocketAddr,
    /// Envelopes to publish.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Samples per envelope.
    #[arg(long, default_value_t = 1)]
    pub samples: u64,
    /// Unacknowledged publishes per connection.
    #[arg(long, default_value_t = 100)]
    pub inflight: u16,
    /// Page with the consumer's counter.
    #[arg(long)]
    pub count_url: String,
    /// Name of the counter on that page.
    #[arg(long)]
    pub count_name: String,
    /// What the counter counts.
    #[arg(long, value_enum, default_value = "samples")]
    pub expect: Expect,
    /// Give up after this long.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let assets = a.shape.assets();
    anyhow::ensure!(!assets.is_empty(), "no assets");
    let agents = a.shape.agents.max(1);
    let per_asset = a.messages.div_ceil(assets.len() as u64) * a.samples;
    let start = Utc::now() - chrono::Duration::seconds(per_asset as i64 + 5);
    let mut next = vec![0u64; assets.len()];
    let mut seq = vec![0u64; agents];
    let mut queues: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); agents];
    let mut body = String::new();
    for m in 0..a.messages {
        let i = (m % assets.len() as u64) as usize;
        let x = &assets[i];
        body.clear();
        for s in 0..a.samples {
            if s > 0 {
                body.push(',');
            }
            let k = next[i];
            next[i] += 1;
            plant::sample(&mut body, x, k, start + chrono::Duration::seconds(k as i64));
        }
        seq[x.agent] += 1;
        let agent = a.shape.agent_name(x.agent);
        queues[x.agent].push((
            a.shape.telemetry_topic(&agent, &x.id),
            plant::envelope(&agent, seq[x.agent], &body).into_bytes(),
        ));
    }

    let counter = Counter::new(&a.count_url, &a.count_name);
    let base = warm_up(&a, &counter).await?;

    // One connection per agent, connected before the clock starts.
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut drivers = Vec::new();
    let mut publishers = Vec::new();
    for (n, queue) in queues.into_iter().enumerate() {
        if queue.is_empty() {
            continue;
        }
        let id = format!("bench-load-{}-{n}", std::process::id());
        let (client, mut eventloop) = mqtt::client(&id, a.broker, a.inflight, 1024);
        mqtt::connected(&mut eventloop, 0).await?;
        let total = queue.len();
        drivers.push(tokio::spawn(async move {
            let mut acked = 0;
            while acked < total {
                if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
                    acked += 1;
                }
            }
            let done = Instant::now();
            // Let the DISCONNECT out.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while eventloop.poll().await.is_ok() {}
            })
            .await;
            Ok::<Instant, rumqttc::ConnectionError>(done)
        }));
        let mut go = go_rx.clone();
        publishers.push(tokio::spawn(async move {
            go.wait_for(|g| *g).await?;
            for (topic, payload) in queue {
                client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
            }
            Ok::<rumqttc::AsyncClient, anyhow::Error>(client)
        }));
    }

    let expected = match a.expect {
        Expect::Messages => a.messages as f64,
        Expect::Samples => (a.messages * a.samples) as f64,
    };
    let t0 = Instant::now();
    go_tx.send(true)?;
    counter.wait_for(base + expected, Duration::from_secs(a.timeout_secs)).await?;
    let drained = t0.elapsed().as_secs_f64();
    let mut clients = Vec::new();
    for p in publishers {
        clients.push(p.await??);
    }
    for c in &clients {
        let _ = c.disconnect().await;
    }
    let mut published = 0.0f64;
    for d in drivers {
        published = published.max((d.await?.context("publishing")? - t0).as_secs_f64());
    }
    let samples = a.messages * a.samples;
    println!(
        "messages={} samples={samples} publish_secs={published:.4} drain_secs={drained:.4} \
         msgs_per_sec={:.0} samples_per_sec={:.0} publish_msgs_per_sec={:.0}",
        a.messages,
        a.messages as f64 / drained,
        samples as f64 / drained,
        a.messages as f64 / published
    );
    Ok(())
}

/// Send warm-up envelopes until the consumer counts one; returns its count
/// then.
async fn warm_up(a: &Args, counter: &Counter) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        match counter.read().await {
            Ok(n) => break n,
            Err(e) if Instant::now() > deadline => return Err(e.context("the consumer's counter")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let id = format!("bench-load-{}-warmup", std::process::id());
    let (client, mut eventloop) = mqtt::client(&id, a.broker, 10, 16);
    mqtt::connected(&mut eventloop, 0).await?;
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let topic = a.shape.telemetry_topic("bench-warmup", "warmup");
    let mut seq = 0;
    let counted = loop {
        seq += 1;
        let mut s = String::new();
        let x = plant::Asset { id: "warmup".into(), group: String::new(), feeder: false, agent: 0 };
        plant::sample(&mut s, &x, seq, Utc::now());
        client.publish(&topic, QoS::AtLeastOnce, false, plant::envelope("bench-warmup", seq, &s)).await?;
        if counter.wait_for(before + 1.0, Duration::from_millis(250)).await.is_ok() {
            break counter.read().await?;
        }
        anyhow::ensure!(Instant::now() < deadline, "the consumer counted no warm-up envelope in 60 s");
    };
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    Ok(counted)
}
