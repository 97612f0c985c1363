//! The MQTT link: options from config, and the task that owns rumqttc's
//! event loop and feeds it from the spool, through the [`Window`] and in
//! the [`LinkMode`] of the moment.
//!
//! The spool is the agent's memory: the broker keeps no session for the agent
//! (clean session). [`drive`] reads records from the spool and publishes them
//! at QoS 1 with at most [`MAX_IN_FLIGHT`] unacknowledged; a PUBACK removes
//! its record from the spool. After a reconnect, everything that was in flight
//! is sent again from the oldest, so order is kept and nothing is lost; a
//! record whose PUBACK was lost with the connection arrives twice, and the
//! aggregator drops the copy by its `seq`.
//!
//! The agent subscribes to its own `resend` topic on every connect: a
//! resend request queues the delivered envelopes of its range that the
//! spool still keeps ([`Resends`]), published again ahead of new records.
//!
//! It subscribes to its own `notice` topic as well: the aggregator's
//! retained notice that it refuses the agent's messages for their sample
//! times (the agent's clock is off). A notice is logged once per change
//! (warn), kept in [`LinkStats::notice`] and shown in the status health
//! until the aggregator clears it (an empty retained payload).
//!
//! rumqttc's request channel ([`REQUEST_CAPACITY`]) is larger than the window,
//! so a publish never waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, Outgoing, Packet, QoS, SubscribeReasonCode, TlsConfiguration,
};
use throughline_shared::broker::BrokerUrl;
use throughline_shared::codec::{decode_notice, decode_resend, encode_status};
use throughline_shared::message::{AgentHealth, Notice, SeqRange};
use throughline_shared::mqtt::ClientSettings;
use throughline_shared::throttle::FailureLog;
use throughline_shared::{AgentStatus, PROTOCOL_VERSION};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::mode::{LinkEvent, LinkMode};
use super::resend::Resends;
use super::window::{Slot, Window};
use crate::source::Health;
use crate::spool::Spool;

/// Envelopes published and not yet acknowledged, at most.
pub const MAX_IN_FLIGHT: usize = 64;
/// Requests that may wait for the event loop (window plus status messages).
pub const REQUEST_CAPACITY: usize = 2 * MAX_IN_FLIGHT + 16;
/// Largest MQTT packet sent.
pub const MAX_PACKET: usize = 512 * 1024;
/// Largest MQTT packet received: above what the embedded broker and the
/// shipped Mosquitto forward (1 MiB), so whatever reaches the agent on its
/// `resend` or `notice` topic can be read and, if bad, ignored. rumqttc
/// cannot skip a larger packet: it ends the connection, and a retained one
/// would come again after every reconnect. Read whole, so at most this
/// much memory per message.
pub const MAX_INCOMING_PACKET: usize = 1024 * 1024 + 64 * 1024;

/// Which connection failures are logged (the others are only counted).
const FAILURE_LOG: FailureLog = FailureLog::connection();
/// Which resend requests are logged: the first 20, then every 100th (a
/// flood of them on an open broker does not flood the log).
const RESEND_LOG: FailureLog = FailureLog::new(20, 100);

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
    /// Resend requests received, and delivered envelopes published again
    /// for them (acknowledged by the broker).
    pub resend_requests: AtomicU64,
    pub resent: AtomicU64,
    /// The aggregator's notice while one is set (its `notice` topic).
    pub notice: Mutex<Option<Notice>>,
}

impl LinkStats {
    /// The notice held, as one line for the logs.
    pub fn notice_summary(&self) -> Option<String> {
        let notice = self.notice.lock().expect("notice lock");
        notice.as_ref().map(|n| format!("{} ({} refused since {}): {}", n.reason, n.count, n.since, n.detail))
    }

    /// Hold `notice` (`None`: cleared); whether it changed what was held
    /// beyond its count and times (a new reason or a clearing).
    fn set_notice(&self, notice: Option<Notice>) -> bool {
        let mut held = self.notice.lock().expect("notice lock");
        let changed = match (&*held, &notice) {
            (Some(a), Some(b)) => a.reason != b.reason || a.since != b.since,
            (None, None) => false,
            _ => true,
        };
        *held = notice;
        changed
    }

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
    /// The agent's resend-request topic (subscribed on every connect).
    pub resend_topic: String,
    /// The agent's notice topic (subscribed on every connect).
    pub notice_topic: String,
    /// Numbers this run skipped (a reserved block after a crash), announced
    /// in every status message.
    pub seq_skipped: Option<SeqRange>,
    /// Software name in status messages.
    pub software: String,
    /// How often the status (with spool and source health) is republished.
    pub status_interval: Duration,
    /// TLS client configuration for `mqtts://`.
    pub tls: Option<Arc<throughline_shared::tls::ClientConfig>>,
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
    let will = encode_status(&AgentStatus {
        v: PROTOCOL_VERSION,
        online: false,
        ts: None,
        software: None,
        health: None,
        seq_skipped: None,
    });
    ClientSettings {
        broker: &s.broker,
        client_id: &s.client_id,
        username: s.username.as_deref(),
        password: s.password.as_deref(),
        keep_alive: s.keep_alive,
        // The spool, not the broker, keeps what is unacknowledged (module docs).
        clean_session: true,
        max_incoming_packet: MAX_INCOMING_PACKET,
        max_outgoing_packet: MAX_PACKET,
        inflight: Some(MAX_IN_FLIGHT as u16 + 16),
        request_capacity: REQUEST_CAPACITY,
        last_will: Some(LastWill::new(&s.status_topic, will, QoS::AtLeastOnce, true)),
        manual_acks: false,
        tls: s.tls.clone().map(TlsConfiguration::Rustls),
    }
    .build()
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

/// The agent's status message: online flag, software, spool and source
/// health, and the numbers this run skipped.
pub fn status_payload(online: bool, s: &LinkSettings, shared: &Shared) -> Vec<u8> {
    let spool = shared.spool.lock().expect("spool lock").health();
    encode_status(&AgentStatus {
        v: PROTOCOL_VERSION,
        online,
        ts: Some(Utc::now()),
        software: Some(s.software.clone()),
        health: Some(AgentHealth {
            spool: Some(spool),
            sources: shared.health.snapshot(),
            notice: shared.stats.notice.lock().expect("notice lock").clone(),
        }),
        seq_skipped: s.seq_skipped,
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
    let mut mode = LinkMode::Connecting;
    // Every mode change goes through here, and so does the published flag.
    let step = |mode: &mut LinkMode, event: LinkEvent| -> bool {
        let next = mode.on(event);
        stats.connected.store(next.is_some_and(LinkMode::connected), Ordering::Relaxed);
        if let Some(next) = next {
            *mode = next;
        }
        next.is_some()
    };
    let mut window = Window::new(MAX_IN_FLIGHT);
    let mut resends = Resends::default();
    let mut refused_resend_logged = false;
    // A backlog was waiting at connect: report in the status when it is gone.
    let mut backlog = false;
    let mut status_tick = tokio::time::interval(s.status_interval);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status_tick.tick().await;
    let publish_status = |online: bool, window: &mut Window| {
        let payload = status_payload(online, &s, &shared);
        match client.try_publish(s.status_topic.clone(), QoS::AtLeastOnce, true, payload) {
            Ok(()) => window.status_queued(),
            Err(e) => tracing::warn!(error = %e, "status message not queued"),
        }
    };
    loop {
        match mode {
            LinkMode::Connected => {
                let mut spool = shared.spool.lock().expect("spool lock");
                let publish = |r: crate::spool::Record| {
                    match client.try_publish(r.topic, QoS::AtLeastOnce, false, r.payload) {
                        Ok(()) => true,
                        Err(e) => {
                            // Cannot happen with the channel larger than the window;
                            // the record is sent again after the next reconnect.
                            tracing::warn!(error = %e, "publish not queued");
                            false
                        }
                    }
                };
                let filled = window
                    .fill_resends(&mut spool, &mut resends, publish)
                    .and_then(|()| window.fill(&mut spool, publish));
                if let Err(e) = filled {
                    tracing::error!(error = %e, "reading the spool failed");
                }
            }
            LinkMode::Backoff => {
                let event = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = finish.cancelled() => LinkEvent::Finish,
                    _ = tokio::time::sleep(backoff) => LinkEvent::Retry,
                };
                if !step(&mut mode, event) {
                    return;
                }
                backoff = (backoff * 2).min(s.reconnect_max);
                continue;
            }
            LinkMode::Connecting | LinkMode::Closing | LinkMode::Disconnecting => {}
        }
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            _ = finish.cancelled(), if !mode.finishing() => {
                if !step(&mut mode, LinkEvent::Finish) {
                    return;
                }
                publish_status(false, &mut window);
                let _ = client.try_disconnect();
                continue;
            }
            _ = shared.appended.notified(), if mode.publishing() => continue,
            _ = shared.health.changed(), if mode.publishing() => {
                publish_status(true, &mut window);
                continue;
            }
            _ = status_tick.tick(), if mode.publishing() => {
                publish_status(true, &mut window);
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let n = stats.connects.fetch_add(1, Ordering::Relaxed);
                step(&mut mode, LinkEvent::ConnAck);
                // Nothing of the old connection will be acknowledged now.
                let mut spool = shared.spool.lock().expect("spool lock");
                window.rewind(&mut spool);
                resends.clear();
                let waiting = spool.unacked();
                drop(spool);
                tracing::info!(broker = %s.broker, reconnect = n > 0, session_present = ack.session_present, spooled = waiting, "connected");
                backlog = waiting > 0;
                backoff = Duration::from_millis(500);
                publish_status(true, &mut window);
                // A clean session: the subscription is made again on every connect.
                if let Err(e) = client.try_subscribe(s.resend_topic.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(error = %e, "resend requests not subscribed");
                }
                if let Err(e) = client.try_subscribe(s.notice_topic.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(error = %e, "notices not subscribed");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) && !refused_resend_logged {
                    refused_resend_logged = true;
                    tracing::warn!(topic = %s.resend_topic, "the broker refused the resend-request subscription (its ACL?): envelopes a broker crash loses cannot be asked for again");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == s.resend_topic => {
                let nth = stats.resend_requests.fetch_add(1, Ordering::Relaxed) + 1;
                let log = RESEND_LOG.logs(nth);
                match decode_resend(&p.payload, &throughline_shared::Limits::default()) {
                    Ok(request) => {
                        let mut spool = shared.spool.lock().expect("spool lock");
                        match resends.request(&request, &mut spool) {
                            Ok(queued) if log => tracing::info!(
                                from = request.from,
                                to = request.to,
                                queued,
                                waiting = resends.len(),
                                requests = nth,
                                "resend requested: delivered envelopes the spool keeps are published again"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::error!(error = %e, "reading the spool for a resend failed"),
                        }
                    }
                    Err(e) if log => tracing::warn!(error = %e, requests = nth, "resend request ignored"),
                    Err(_) => {}
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == s.notice_topic => {
                match decode_notice(&p.payload, &throughline_shared::Limits::default()) {
                    Ok(notice) => {
                        let shown = notice.clone();
                        if stats.set_notice(notice) {
                            match shown {
                                Some(n) => tracing::warn!(
                                    reason = %n.reason,
                                    count = n.count,
                                    since = %n.since,
                                    last = %n.last,
                                    detail = %n.detail,
                                    "the aggregator refuses this agent's messages for their sample times: check the clock (NTP)"
                                ),
                                None => tracing::info!(
                                    "the aggregator's notice is cleared: messages accepted again"
                                ),
                            }
                        }
                        publish_status(true, &mut window);
                    }
                    Err(e) => tracing::warn!(error = %e, "notice ignored"),
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                stats.pubacks.fetch_add(1, Ordering::Relaxed);
                let mut spool = shared.spool.lock().expect("spool lock");
                let slot = window.ack(ack.pkid, &mut spool);
                if slot == Some(Slot::Resend) {
                    stats.resent.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(Slot::Record(_)) = slot {
                    let caught_up = backlog && spool.unacked() == 0;
                    drop(spool);
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    if caught_up {
                        backlog = false;
                        tracing::info!("spooled backlog delivered");
                        publish_status(true, &mut window);
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                stats.publishes_sent.fetch_add(1, Ordering::Relaxed);
                window.written(pkid);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                step(&mut mode, LinkEvent::DisconnectWritten);
            }
            Ok(_) => {}
            Err(_) if mode == LinkMode::Disconnecting => {
                step(&mut mode, LinkEvent::Failed);
                tracing::info!("disconnected from broker");
                return;
            }
            Err(e) => {
                if mode.connected() {
                    let spooled = shared.spool.lock().expect("spool lock").unacked();
                    tracing::warn!(broker = %s.broker, error = %e, spooled, "connection lost; envelopes wait in the spool");
                }
                if !step(&mut mode, LinkEvent::Failed) {
                    return;
                }
                // Counted in the link's stats over the agent's life, never reset.
                let failures = stats.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if FAILURE_LOG.logs(failures) {
                    tracing::warn!(broker = %s.broker, error = %throughline_shared::mqtt::explain(&e.to_string()), retry_in_ms = backoff.as_millis() as u64, failures, "MQTT connection problem");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LinkSettings {
        LinkSettings {
            broker: BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
            client_id: "gw-1".into(),
            username: Some("gw-1".into()),
            password: None,
            keep_alive: Duration::from_secs(15),
            reconnect_max: Duration::from_secs(30),
            status_topic: "throughline/v1/plant-a/gw-1/status".into(),
            resend_topic: "throughline/v1/plant-a/gw-1/resend".into(),
            notice_topic: "throughline/v1/plant-a/gw-1/notice".into(),
            seq_skipped: None,
            software: "test".into(),
            status_interval: Duration::from_secs(60),
            tls: None,
        }
    }

    // The options the agent has always connected with.
    #[test]
    fn client_options_are_the_agents() {
        let (_, eventloop) = client(&settings());
        let o = &eventloop.mqtt_options;
        assert_eq!(o.broker_address(), ("127.0.0.1".to_string(), 1883));
        assert_eq!((o.client_id().as_str(), o.keep_alive()), ("gw-1", Duration::from_secs(15)));
        assert!(o.clean_session(), "the spool, not the broker, keeps the backlog");
        assert_eq!(o.inflight(), MAX_IN_FLIGHT as u16 + 16);
        assert_eq!(o.max_packet_size(), MAX_INCOMING_PACKET);
        let login = o.credentials().unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("gw-1", ""));
        let will = o.last_will().unwrap();
        assert_eq!(
            (will.topic.as_str(), will.qos, will.retain),
            ("throughline/v1/plant-a/gw-1/status", QoS::AtLeastOnce, true)
        );
        let status: serde_json::Value = serde_json::from_slice(&will.message).unwrap();
        assert_eq!(status["online"], false);
        assert!(matches!(o.transport(), rumqttc::Transport::Tcp));
        assert_eq!(eventloop.network_options.connection_timeout(), 10);
    }
}
