//! The MQTT link: options from config, and the task that drives rumqttc's
//! event loop (connect, birth message, reconnect with backoff, PUBACK counts).
//!
//! rumqttc's request channel between [`AsyncClient`] and the event loop is
//! bounded ([`REQUEST_CAPACITY`]); when it is full, `publish` waits (block
//! policy), which holds back the publisher and, behind it, the sources.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use throughline_shared::broker::BrokerUrl;
use tokio_util::sync::CancellationToken;

/// Requests (publishes) that may wait for the event loop.
pub const REQUEST_CAPACITY: usize = 64;
/// Largest MQTT packet sent or received.
pub const MAX_PACKET: usize = 512 * 1024;

/// Link counters, read by the publisher and the logs.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// QoS 1 publishes written to the network (retransmissions included).
    pub publishes_sent: AtomicU64,
    /// PUBACKs received.
    pub pubacks: AtomicU64,
}

impl LinkStats {
    /// Publishes written but not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.publishes_sent.load(Ordering::Relaxed).saturating_sub(self.pubacks.load(Ordering::Relaxed))
    }
}

/// Everything needed to open the connection.
#[derive(Clone)]
pub struct LinkSettings {
    pub broker: BrokerUrl,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub reconnect_max: Duration,
    /// Retained status topic, for the birth message and the last will.
    pub status_topic: String,
    pub birth: Vec<u8>,
    pub will: Vec<u8>,
    /// TLS client configuration for `mqtts://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("LinkSettings")
            .field("broker", &self.broker)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Build the client and its event loop (nothing is connected yet).
pub fn client(s: &LinkSettings) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(&s.client_id, &s.broker.host, s.broker.port);
    o.set_keep_alive(s.keep_alive);
    // Keep the broker session so unacknowledged QoS 1 messages are resent
    // after a reconnect.
    o.set_clean_session(false);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    o.set_last_will(LastWill::new(&s.status_topic, s.will.clone(), QoS::AtLeastOnce, true));
    if let Some(tls) = &s.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
    }
    if let Some(user) = &s.username {
        o.set_credentials(user, s.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(o, REQUEST_CAPACITY);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(10);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// Drive the event loop until the client disconnects cleanly or `stop` is
/// cancelled. Publishes the retained birth status on every connect.
pub async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    s: LinkSettings,
    stats: Arc<LinkStats>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    let mut disconnecting = false;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                stats.connected.store(true, Ordering::Relaxed);
                let n = stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(broker = %s.broker, session_present = ack.session_present, reconnect = n > 0, "connected");
                backoff = Duration::from_millis(500);
                // Not awaited here: the event loop must keep turning while
                // the request channel has no room.
                let (client, topic, birth) = (client.clone(), s.status_topic.clone(), s.birth.clone());
                tokio::spawn(async move {
                    if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, birth).await {
                        tracing::warn!(error = %e, "birth status not queued");
                    }
                });
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                stats.pubacks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                stats.publishes_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                // The DISCONNECT is written but maybe not flushed: keep
                // polling until the broker closes the connection, or the
                // broker would publish our last will.
                disconnecting = true;
            }
            Ok(_) => {}
            Err(_) if disconnecting => {
                stats.connected.store(false, Ordering::Relaxed);
                tracing::info!("disconnected from broker");
                return;
            }
            Err(e) => {
                stats.connected.store(false, Ordering::Relaxed);
                let failures = stats.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures <= 5 || failures % 20 == 0 {
                    tracing::warn!(broker = %s.broker, error = %e, retry_in_ms = backoff.as_millis() as u64, failures, "MQTT connection problem");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(s.reconnect_max);
            }
        }
    }
}
