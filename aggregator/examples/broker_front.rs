//! The cost of the embedded broker's front door (logins, per-topic checks,
//! per-address limits): the same load through rumqttd open, and through the
//! front with a login. One publisher, one subscriber (as ingest: on rumqttd
//! itself), QoS 1 both ways, in-process brokers on loopback.
//!
//! ```sh
//! cargo run --release -p throughline-aggregator --example broker_front [-- --messages 50000 --bytes 1024]
//! ```
//! Prints, per set-up, the throughput of a stream of publishes and the
//! round trip (publish to delivery) of single messages one at a time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use throughline_aggregator::broker::acl::{AgentLogin, Logins};
use throughline_aggregator::broker::front::FrontLimits;
use throughline_aggregator::broker::{self, Guard};
use throughline_aggregator::metrics::BrokerMetrics;
use throughline_shared::{AgentId, SiteId};

#[derive(Debug, Parser)]
struct Args {
    /// Messages in the stream.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024)]
    bytes: usize,
    /// Single round trips timed.
    #[arg(long, default_value_t = 2000)]
    round_trips: usize,
}

const TOPIC: &str = "throughline/v1/s/gw/a/telemetry";

fn free() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

fn client(id: &str, addr: SocketAddr, login: Option<(&str, &str)>) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    AsyncClient::new(o, 1000)
}

async fn connected(el: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = el.poll().await? {
            return Ok(());
        }
    }
}

/// Stream `n` messages, then time `trips` single round trips.
async fn measure(
    name: &str,
    publish_to: SocketAddr,
    publish_login: Option<(&str, &str)>,
    subscribe_to: SocketAddr,
    subscribe_login: Option<(&str, &str)>,
    args: &Args,
) -> anyhow::Result<()> {
    let (sub, mut sub_el) = client(&format!("sub-{name}"), subscribe_to, subscribe_login);
    connected(&mut sub_el).await.context("subscriber")?;
    sub.subscribe(TOPIC, QoS::AtLeastOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_el.poll().await? {
            break;
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        while let Ok(e) = sub_el.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = e {
                let _ = tx.send(Instant::now());
            }
        }
    });
    let (publ, mut pub_el) = client("gw", publish_to, publish_login);
    connected(&mut pub_el).await.context("publisher")?;
    tokio::spawn(async move { while pub_el.poll().await.is_ok() {} });
    let payload = vec![b'x'; args.bytes];
    let started = Instant::now();
    for _ in 0..args.messages {
        publ.publish(TOPIC, QoS::AtLeastOnce, false, payload.clone()).await?;
    }
    for _ in 0..args.messages {
        rx.recv().await.context("subscriber ended")?;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut trips = Vec::with_capacity(args.round_trips);
    for _ in 0..args.round_trips {
        let at = Instant::now();
        publ.publish(TOPIC, QoS::AtLeastOnce, false, payload.clone()).await?;
        let got = rx.recv().await.context("subscriber ended")?;
        trips.push(got.duration_since(at).as_secs_f64() * 1e6);
    }
    trips.sort_by(f64::total_cmp);
    let pct = |p: f64| trips[((trips.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name}: {} messages of {} B in {secs:.2} s = {:.0} msg/s; round trip median {:.0} us, p99 {:.0} us",
        args.messages,
        args.bytes,
        args.messages as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let metrics = BrokerMetrics::default();
    let open = free()?;
    broker::start(open, None, &metrics)?;
    measure("open (rumqttd alone)", open, None, open, None, &args).await?;
    let guarded = free()?;
    let guard = Guard {
        logins: Logins::new([AgentLogin {
            agent: AgentId::parse("gw")?,
            site: SiteId::parse("s")?,
            password: "pw".into(),
        }]),
        limits: FrontLimits {
            max_per_address: 64,
            connects_per_sec: 10.0,
            connect_burst: 50.0,
            max_connections: broker::MAX_CONNECTIONS,
            max_addresses: 100_000,
            connect_timeout: Duration::from_secs(10),
            max_packet: broker::MAX_PAYLOAD + 64 * 1024,
        },
    };
    let started = broker::start(guarded, Some(guard), &metrics)?;
    let secret = started.password.clone().unwrap_or_default();
    measure(
        "front (login, checks)",
        guarded,
        Some(("gw", "pw")),
        started.broker,
        Some(("ingest", &secret)),
        &args,
    )
    .await?;
    Ok(())
}
