//! MQTT client options and the HTTP counter poll shared by the commands.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet};

/// A v4 client on `broker` with room for batched envelopes and Nagle off.
pub fn client(id: &str, broker: SocketAddr, inflight: u16, cap: usize) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_session(true);
    o.set_max_packet_size(8 << 20, 8 << 20);
    o.set_inflight(inflight);
    let (client, mut eventloop) = AsyncClient::new(o, cap);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// Poll the event loop until the broker's CONNACK (and `subacks` SUBACKs).
pub async fn connected(eventloop: &mut EventLoop, subacks: usize) -> anyhow::Result<()> {
    let mut seen = 0;
    let mut connack = false;
    let wait = async {
        loop {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => connack = true,
                Event::Incoming(Packet::SubAck(_)) => seen += 1,
                _ => {}
            }
            if connack && seen >= subacks {
                return Ok::<(), rumqttc::ConnectionError>(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .context("no CONNACK/SUBACK within 10 s")?
        .context("connecting to the broker")
}

/// Reads one counter from a Prometheus-style text page (`name value` lines).
#[derive(Debug, Clone)]
pub struct Counter {
    http: reqwest::Client,
    url: String,
    name: String,
}

impl Counter {
    pub fn new(url: &str, name: &str) -> Counter {
        Counter { http: reqwest::Client::new(), url: url.to_string(), name: name.to_string() }
    }

    pub async fn read(&self) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("GET {}", self.url))?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix(self.name.as_str()).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{} has no counter {}", self.url, self.name))
    }

    /// Poll every 5 ms until the counter reaches `target`; errors after `limit`.
    pub async fn wait_for(&self, target: f64, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let n = self.read().await?;
            if n >= target {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{} at {n}, short of {target} after {limit:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
