//! Publish the same backlog as `fill-spool` straight to a broker, without a
//! spool: the broker's ceiling for the agent's replay, with the agent's own
//! MQTT options (`link::mqtt::client`) and window (QoS 1, at most
//! `MAX_IN_FLIGHT` = 64 unacknowledged).
//!
//! ```sh
//! cargo run --release -p throughline-edge-agent --example publish-backlog -- \
//!     --url mqtt://127.0.0.1:1883 --site plant-a --agent gw-1 --asset line-01 --asset feeder-01
//! ```
//!
//! Prints one line: `envelopes=N samples=M connect_ms=.. publish_ms=..` where
//! `publish_ms` runs from the CONNACK to the last PUBACK (what the agent logs
//! between `connected` and `spooled backlog delivered`).

#[path = "../benches/support/backlog.rs"]
mod backlog;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rumqttc::{Event, Packet, QoS};
use throughline_edge_agent::link::mqtt::{client, LinkSettings, MAX_IN_FLIGHT};
use throughline_shared::broker::BrokerUrl;

/// Publish a simulated backlog at QoS 1 and time it.
#[derive(Debug, Parser)]
struct Cli {
    /// `mqtt://HOST:PORT`
    #[arg(long)]
    url: String,
    #[arg(long)]
    site: String,
    #[arg(long)]
    agent: String,
    /// Asset ids (`feeder...` simulates a feeder, anything else a line).
    #[arg(long = "asset", required = true)]
    assets: Vec<String>,
    /// Seconds of readings per asset.
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
    /// Samples per envelope.
    #[arg(long, default_value_t = 10)]
    per_envelope: usize,
    /// Most publishes waiting for their PUBACK.
    #[arg(long, default_value_t = MAX_IN_FLIGHT)]
    window: usize,
    /// MQTT client id.
    #[arg(long, default_value = "publish-backlog")]
    client_id: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shape = backlog::Shape {
        site: cli.site.clone(),
        agent: cli.agent.clone(),
        assets: cli.assets.clone(),
        seconds: cli.seconds,
        per_envelope: cli.per_envelope,
        first_seq: 1,
        start: chrono::Utc::now() - chrono::Duration::seconds(cli.seconds as i64),
    };
    let records = backlog::generate(&shape);
    let samples: usize = records.iter().map(|r| r.samples).sum();
    let link = LinkSettings {
        broker: BrokerUrl::parse(&cli.url).context("--url")?,
        client_id: cli.client_id.clone(),
        username: None,
        password: None,
        keep_alive: Duration::from_secs(15),
        reconnect_max: Duration::from_secs(1),
        status_topic: format!("throughline/v1/{}/{}/status", cli.site, cli.client_id),
        resend_topic: format!("throughline/v1/{}/{}/resend", cli.site, cli.client_id),
        notice_topic: format!("throughline/v1/{}/{}/notice", cli.site, cli.client_id),
        seq_skipped: None,
        software: "publish-backlog".into(),
        status_interval: Duration::from_secs(60),
        tls: None,
    };
    let (client, mut eventloop) = client(&link);
    let window = cli.window.clamp(1, MAX_IN_FLIGHT);

    let started = Instant::now();
    let mut connected_at = None;
    let (mut next, mut acked) = (0, 0);
    let done_at = loop {
        if connected_at.is_some() {
            while next < records.len() && next - acked < window {
                let r = &records[next];
                client.try_publish(r.topic.clone(), QoS::AtLeastOnce, false, r.payload.clone())?;
                next += 1;
            }
        }
        match eventloop.poll().await.context("MQTT connection")? {
            Event::Incoming(Packet::ConnAck(_)) => connected_at = Some(Instant::now()),
            Event::Incoming(Packet::PubAck(_)) => {
                acked += 1;
                if acked == records.len() {
                    break Instant::now();
                }
            }
            _ => {}
        }
    };
    let connected_at = connected_at.expect("connected before any PUBACK");
    client.disconnect().await?;
    // Until the broker closes the connection after our DISCONNECT.
    let _ =
        tokio::time::timeout(Duration::from_secs(2), async { while eventloop.poll().await.is_ok() {} }).await;
    let publish = done_at - connected_at;
    println!(
        "envelopes={} samples={samples} window={window} connect_ms={:.1} publish_ms={:.1} samples_per_s={:.0}",
        records.len(),
        (connected_at - started).as_secs_f64() * 1e3,
        publish.as_secs_f64() * 1e3,
        samples as f64 / publish.as_secs_f64()
    );
    Ok(())
}
