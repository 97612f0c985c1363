//! The MQTT link: options from config, and the task that owns rumqttc's
//! event loop and feeds it from the spool.
//!
//! The spool is the agent's memory: the broker keeps no session for the agent
//! (clean session). [`drive`] reads records from the spool and publishes them
//! at QoS 1 with at most [`MAX_IN_FLIGHT`] unacknowledged; a PUBACK removes
//! its record from the spool. After a reconnect, everything that was in flight
//! is sent again from the oldest, so order is kept and nothing is lost; a
//! record whose PUBACK was lost with the connection arrives twice, and the
//! aggregator drops the copy by its `seq`.
//!
//! rumqttc's request channel ([`REQUEST_CAPACITY`]) is larger than the window,
//! so a publish never waits for it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use throughline_shared::broker::BrokerUrl;
use throughline_shared::codec::encode_status;
use throughline_shared::message::AgentHealth;
use throughline_shared::{AgentStatus, PROTOCOL_VERSION};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::source::Health;
use crate::spool::Spool;

/// Envelopes published and not yet acknowledged, at most.
pub const MAX_IN_FLIGHT: usize = 64;
/// Requests that may wait for the event loop (window plus status messages).
pub const REQUEST_CAPACITY: usize = 2 * MAX_IN_FLIGHT + 16;
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
    /// Spool records acknowledged by the broker (and so removed from the spool).
    pub delivered: AtomicU64,
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
    /// Software name in status messages.
    pub software: String,
    /// How often the status (with spool and source health) is republished.
    pub status_interval: Duration,
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
    // The spool, not the broker, keeps what is unacknowledged (module docs).
    o.set_clean_session(true);
    o.set_inflight(MAX_IN_FLIGHT as u16 + 16);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let will = encode_status(&AgentStatus {
        v: PROTOCOL_VERSION,
        online: false,
        ts: None,
        software: None,
        health: None,
    });
    o.set_last_will(LastWill::new(&s.status_topic, will, QoS::AtLeastOnce, true));
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

/// What the link task shares with the rest of the agent.
#[derive(Debug, Clone)]
pub struct Shared {
    pub spool: Arc<Mutex<Spool>>,
    /// Woken when records are appended to the spool.
    pub appended: Arc<Notify>,
    pub health: Arc<Health>,
    pub stats: Arc<LinkStats>,
}

/// The agent's status message: online flag, software, spool and source health.
pub fn status_payload(online: bool, software: &str, shared: &Shared) -> Vec<u8> {
    let spool = shared.spool.lock().expect("spool lock").health();
    encode_status(&AgentStatus {
        v: PROTOCOL_VERSION,
        online,
        ts: Some(Utc::now()),
        software: Some(software.to_string()),
        health: Some(AgentHealth { spool: Some(spool), sources: shared.health.snapshot() }),
    })
}

/// Drive the event loop and publish from the spool until `finish` (publish
/// the offline status, disconnect cleanly) or `stop` (return at once).
pub async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    s: LinkSettings,
    shared: Shared,
    finish: CancellationToken,
    stop: CancellationToken,
) {
    let stats = &shared.stats;
    let mut backoff = Duration::from_millis(500);
    let mut connected = false;
    let mut finishing = false;
    let mut disconnecting = false;
    // Publishes handed to rumqttc whose packet id is not known yet (None: a
    // status message), then by packet id until acknowledged.
    let mut queued: VecDeque<Option<u64>> = VecDeque::new();
    let mut by_pkid: HashMap<u16, Option<u64>> = HashMap::new();
    // A backlog was waiting at connect: report in the status when it is gone.
    let mut backlog = false;
    let mut status_tick = tokio::time::interval(s.status_interval);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status_tick.tick().await;
    let publish_status = |online: bool, queued: &mut VecDeque<Option<u64>>| {
        let payload = status_payload(online, &s.software, &shared);
        match client.try_publish(s.status_topic.clone(), QoS::AtLeastOnce, true, payload) {
            Ok(()) => queued.push_back(None),
            Err(e) => tracing::warn!(error = %e, "status message not queued"),
        }
    };
    loop {
        if connected && !finishing {
            let mut spool = shared.spool.lock().expect("spool lock");
            while queued.len() + by_pkid.len() < MAX_IN_FLIGHT {
                match spool.next_unsent() {
                    Ok(Some(r)) => match client.try_publish(r.topic, QoS::AtLeastOnce, false, r.payload) {
                        Ok(()) => queued.push_back(Some(r.id)),
                        Err(e) => {
                            // Cannot happen with the channel larger than the window;
                            // the record is sent again after the next reconnect.
                            tracing::warn!(error = %e, "publish not queued");
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the spool failed");
                        break;
                    }
                }
            }
        }
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            _ = finish.cancelled(), if !finishing => {
                finishing = true;
                if !connected {
                    return;
                }
                publish_status(false, &mut queued);
                let _ = client.try_disconnect();
                continue;
            }
            _ = shared.appended.notified(), if connected && !finishing => continue,
            _ = shared.health.changed(), if connected && !finishing => {
                publish_status(true, &mut queued);
                continue;
            }
            _ = status_tick.tick(), if connected && !finishing => {
                publish_status(true, &mut queued);
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected = true;
                let n = stats.connects.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                // Nothing of the old connection will be acknowledged now.
                queued.clear();
                by_pkid.clear();
                let mut spool = shared.spool.lock().expect("spool lock");
                spool.rewind();
                let waiting = spool.unacked();
                drop(spool);
                tracing::info!(broker = %s.broker, reconnect = n > 0, session_present = ack.session_present, spooled = waiting, "connected");
                backlog = waiting > 0;
                backoff = Duration::from_millis(500);
                publish_status(true, &mut queued);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                stats.pubacks.fetch_add(1, Ordering::Relaxed);
                if let Some(Some(id)) = by_pkid.remove(&ack.pkid) {
                    let mut spool = shared.spool.lock().expect("spool lock");
                    spool.ack(id);
                    let caught_up = backlog && spool.unacked() == 0;
                    drop(spool);
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    if caught_up {
                        backlog = false;
                        tracing::info!("spooled backlog delivered");
                        publish_status(true, &mut queued);
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                stats.publishes_sent.fetch_add(1, Ordering::Relaxed);
                // A packet id already known is a retransmission, not a new publish.
                if let std::collections::hash_map::Entry::Vacant(slot) = by_pkid.entry(pkid) {
                    if let Some(entry) = queued.pop_front() {
                        slot.insert(entry);
                    }
                }
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
                if connected {
                    let spooled = shared.spool.lock().expect("spool lock").unacked();
                    tracing::warn!(broker = %s.broker, error = %e, spooled, "connection lost; envelopes wait in the spool");
                }
                connected = false;
                stats.connected.store(false, Ordering::Relaxed);
                if finishing {
                    return;
                }
                let failures = stats.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures <= 5 || failures % 20 == 0 {
                    tracing::warn!(broker = %s.broker, error = %e, retry_in_ms = backoff.as_millis() as u64, failures, "MQTT connection problem");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = finish.cancelled(), if !finishing => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(s.reconnect_max);
            }
        }
    }
}
