//! The aggregator's MQTT client: a persistent session subscribed to every
//! agent's telemetry and status, reconnecting with backoff.
//!
//! Messages are handled inside the event-loop task (decode and a short state
//! update, microseconds each), so there is no queue between broker and
//! state; rumqttc's own request channel is bounded at
//! [`REQUEST_CAPACITY`] and carries subscriptions, resend requests,
//! notices and alert events, never acks.
//!
//! # Acks keep pace with reads
//! The messages of one read from the network are journaled with one write,
//! applied, and their acks written straight onto the connection and
//! flushed together before the next read ([`send_acks`]). Through the
//! request channel, acks would compete with the reads: rumqttc's event
//! loop takes one request per turn against up to ten packets read, so
//! during a catch-up the acks fell behind by thousands. Mosquitto 2.0.11
//! (Debian's) then holds every unacknowledged message in flight: its
//! `max_inflight_messages` window does not hold for a session's backlog
//! (seen: each PUBACK releases 20 more PUBLISHes), a reconnect resends all
//! of them (21,000 at once, counted as duplicates), and the PINGRESP
//! waits behind them. While messages arrive the broker is answering, so a
//! publish read counts as the answer to the last ping: the keep-alive
//! still drops a connection on which nothing arrives, not one that is
//! merely busy.
//!
//! # A message the client cannot read
//! rumqttc refuses a packet above its limit before reading it, so it can
//! neither count nor acknowledge it: the connection ends and the broker
//! sends it again after the reconnect ([`link`](crate::link) module docs).
//! Every message up to the limit is read, refused `oversize` by the decoder
//! and acknowledged. Above it: the embedded broker refuses it itself; over
//! MQTT 5 the broker is told the limit and drops it; over MQTT 3.1.1 the
//! broker must be configured below [`EXTERNAL_MAX_INCOMING_PACKET`]. A run
//! of [`REPEATED_FAILURES`] failures with one error is logged once (error
//! level), later attempts are not, and `/healthz` shows
//! `mqtt_last_disconnect` with its count in a row.
//!
//! # Acknowledged means durable
//! Each message is appended to the [`Journal`] first, then applied, then
//! acknowledged (manual acks): a `kill -9` at any instant loses nothing the
//! broker was told is received. When the journal cannot be written (disk
//! full, read-only), messages are not acknowledged: the broker keeps them
//! (in the persistent session, bounded by its queue), `/healthz` says
//! `degraded`, and once a probe write succeeds the client reconnects so the
//! broker sends them again. Messages refused by the decoder and duplicates
//! are acknowledged too (a refused message would only come back refused).
//!
//! # Asking for what a broker lost
//! Once a second (while subscribed) the [`ResendPlanner`] goes through the
//! agents' missing `seq` ranges: what is due is asked for on each agent's
//! `resend` topic (QoS 1, not retained), what was asked for too often in
//! vain is reported lost. A CONNACK without the session (a broker that
//! lost it, or a clean session) asks every online agent for everything
//! after its highest number once.
//!
//! # Telling an agent its clock is off
//! A message refused for its sample times (`future_timestamp`,
//! `past_timestamp`) sets the agent's notice ([`NoticeBoard`]), published
//! retained on its `notice` topic (QoS 1) at most once per agent per 10 s
//! and cleared with an empty retained payload once its messages are
//! accepted again and 30 s passed without a refusal. While envelopes an
//! agent had refused as ahead would still be ahead, the gaps they leave
//! are neither asked for nor given up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::QoS;
use throughline_shared::broker::BrokerUrl;
use throughline_shared::codec::{encode_notice, encode_resend};
use throughline_shared::message::ResendRequest;
use throughline_shared::mqtt::ClientSettings;
use throughline_shared::throttle::FailureLog;
use throughline_shared::topic::{STATUS_FILTER, TELEMETRY_FILTER};
use throughline_shared::{Limits, RejectReason, Topic, PROTOCOL_VERSION};
use tokio_util::sync::CancellationToken;

use super::{handle, Handled, RejectLog};
use crate::journal::Journal;
use crate::link::{self, Client, Events, LinkEvent, Message, Protocol};
use crate::notice::{NoticeBoard, NoticeOut, NoticeSettings};
use crate::resend::{ResendPlanner, ResendSettings};
use crate::service::Services;

/// Requests that may wait for the event loop (subscriptions, acks and alert
/// events). Alert events use `try_publish`: when full, the event is counted
/// in `throughline_alert_events_not_published_total` and still reaches the
/// receivers from the outbox.
pub const REQUEST_CAPACITY: usize = 256;
/// Room above `ingest.max_payload_bytes` in the largest packet taken from
/// the broker: for the topic (up to 65,535 bytes), packet id, properties
/// and headers. A message whose payload is over the limit but within this
/// room is received, counted `oversize` and acknowledged.
pub const PACKET_ROOM: usize = 64 * 1024 + 64;
/// Largest packet taken from the embedded broker (MQTT 3.1.1): above its
/// own limit ([`crate::broker::MAX_PAYLOAD`]), so that whatever it forwards
/// can be read, counted and acknowledged.
pub const EMBEDDED_MAX_INCOMING_PACKET: usize = crate::broker::MAX_PAYLOAD + PACKET_ROOM;
/// Largest packet taken from an external broker over MQTT 3.1.1, which
/// cannot tell the broker a limit: above the shipped Mosquitto config's
/// `max_packet_size` (1 MiB), so what it forwards is read, counted and
/// acknowledged. A larger message stops ingest (module docs).
pub const EXTERNAL_MAX_INCOMING_PACKET: usize = 8 * 1024 * 1024;
/// Consecutive connection failures with the same error after which the
/// loop is reported (once, at error level) and per-attempt lines stop.
pub const REPEATED_FAILURES: u64 = 5;
/// A connection that held this long ends a run of repeated failures.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Connection settings.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub broker: BrokerUrl,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub persistent_session: bool,
    pub limits: Limits,
    /// MQTT 3.1.1 (the embedded broker, or `mqtt.protocol = "3.1.1"`) or 5.
    pub protocol: Protocol,
    /// Largest packet taken from the broker (and, with MQTT 5, the Maximum
    /// Packet Size the broker is told).
    pub max_incoming_packet: usize,
    /// How agents are asked to resend missing envelopes (`None`: never).
    pub resend: Option<ResendSettings>,
    /// TLS client configuration for an `mqtts://` broker.
    pub tls: Option<Arc<throughline_shared::tls::ClientConfig>>,
}

/// Build the client and its event loop (not connected yet).
pub fn client(s: &IngestSettings) -> (Client, Events) {
    let settings = ClientSettings {
        broker: &s.broker,
        client_id: &s.client_id,
        username: s.username.as_deref(),
        password: s.password.as_deref(),
        keep_alive: s.keep_alive,
        clean_session: !s.persistent_session,
        max_incoming_packet: s.max_incoming_packet,
        max_outgoing_packet: 64 * 1024,
        inflight: None,
        request_capacity: REQUEST_CAPACITY,
        last_will: None,
        manual_acks: true,
        tls: s.tls.clone().map(rumqttc::TlsConfiguration::Rustls),
    };
    link::build(&settings, s.protocol)
}

/// How often a failing journal is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Most messages journaled with one write: those handed out by one read
/// from the network (rumqttc reads at most ten packets at a time), bounded
/// here as well. Their acks go out together once they are journaled.
const MAX_BATCH: usize = 64;
/// Longest wait for the broker to take our acks; beyond it the connection
/// is dropped (the broker sends the messages again: duplicates).
const ACK_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages received and not yet journaled, applied or acknowledged: those
/// of one read from the network, journaled with one write.
#[derive(Default)]
struct Batch {
    messages: Vec<Message>,
    /// The journaled (or refused) messages not yet acknowledged: their acks
    /// are written onto the connection before the next poll
    /// ([`Events::send_acks`]).
    acks: Vec<Message>,
    /// Not acknowledged because the journal failed, since the last probe
    /// that wrote.
    held: u64,
}

/// How often the missing ranges are looked at for resend requests.
const RESEND_EVERY: Duration = Duration::from_secs(1);

/// Run until `token` is cancelled.
pub async fn run(
    client: Client,
    mut eventloop: Events,
    s: IngestSettings,
    shared: Arc<Services>,
    mut journal: Journal,
    token: CancellationToken,
) {
    let mut log = RejectLog::new(Duration::from_secs(10));
    let mut backoff = Duration::from_millis(200);
    let mut failures = FailureLog::connection();
    let mut streak = Streak::default();
    let mut connected_at = Instant::now();
    let mut batch = Batch::default();
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut planner = s.resend.map(ResendPlanner::new);
    let mut notices = NoticeBoard::new(NoticeSettings::default());
    let mut resend_tick = tokio::time::interval(RESEND_EVERY);
    resend_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The rest of the last read is handed out without waiting: journal
        // the batch once it is all here.
        if !batch.messages.is_empty() && (!eventloop.has_buffered() || batch.messages.len() >= MAX_BATCH) {
            commit(&shared, &s, &mut log, &mut journal, &mut batch, &mut notices);
        }
        if !batch.acks.is_empty() {
            if let Err(e) = eventloop.send_acks(&client, &mut batch.acks, ACK_FLUSH_TIMEOUT).await {
                tracing::warn!(broker = %s.broker, error = %e, "acks could not be written: reconnecting (the broker sends the unacknowledged messages again)");
                eventloop.clean();
                shared.set_connected(false);
                shared.metrics.mqtt_reconnects.inc();
            }
        }
        let sync_at = journal.sync_deadline().map(tokio::time::Instant::from_std);
        let event = tokio::select! {
            _ = token.cancelled() => break,
            _ = async { tokio::time::sleep_until(sync_at.expect("guarded")).await }, if sync_at.is_some() => {
                if let Err(e) = journal.sync_if_due() {
                    journal_failed(&shared, &e);
                }
                continue;
            }
            _ = resend_tick.tick(), if shared.link.is_connected() => {
                if streak.count >= REPEATED_FAILURES && connected_at.elapsed() >= STABLE_AFTER {
                    tracing::info!(broker = %s.broker, failures = streak.count, "the broker connection holds again after repeated failures");
                    streak = Streak::default();
                }
                publish_notices(&client, &mut notices);
                if let Some(planner) = planner.as_mut() {
                    ask_for_resends(&client, &shared, planner, &notices);
                }
                continue;
            }
            _ = probe.tick(), if batch.held > 0 => {
                if journal.probe().is_ok() {
                    tracing::info!(held = batch.held, "journal written again: reconnecting so the broker sends the messages it holds");
                    shared.durability.journal_ok();
                    batch.held = 0;
                    client.try_disconnect();
                }
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(LinkEvent::Message(p)) => {
                // The broker is answering (see the module docs).
                eventloop.broker_answered();
                batch.messages.push(p);
            }
            Ok(LinkEvent::ConnAck { session_present }) => {
                if streak.count < REPEATED_FAILURES {
                    tracing::info!(broker = %s.broker, protocol = s.protocol.as_str(), session_present, "connected to broker");
                } else {
                    tracing::debug!(broker = %s.broker, session_present, "connected to broker");
                }
                connected_at = Instant::now();
                failures.reset();
                backoff = Duration::from_millis(200);
                if let (false, Some(planner)) = (session_present, planner.as_mut()) {
                    planner.session_lost();
                }
                // Acks owed to the last connection: the broker sends those
                // messages again (recognised as duplicates).
                batch.acks.clear();
                // One SUBSCRIBE for both filters: its SUBACK means both are
                // in place, so "connected" is never reported while
                // telemetry could still be missed.
                if let Err(e) = client.try_subscribe_all(&[STATUS_FILTER, TELEMETRY_FILTER]) {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(LinkEvent::SubAck) => {
                shared.set_connected(true);
            }
            Ok(_) => {}
            Err(e) => {
                // What was read before the connection dropped is kept (the
                // broker sends it again; then it is a duplicate).
                commit(&shared, &s, &mut log, &mut journal, &mut batch, &mut notices);
                batch.acks.clear();
                shared.set_connected(false);
                shared.metrics.mqtt_reconnects.inc();
                if connected_at.elapsed() >= STABLE_AFTER {
                    streak = Streak::default();
                }
                let in_a_row = streak.fail(&e);
                shared.link.disconnected(&e, in_a_row);
                if in_a_row == REPEATED_FAILURES {
                    tracing::error!(
                        broker = %s.broker, error = %e, failures = in_a_row, protocol = s.protocol.as_str(),
                        max_incoming_packet = s.max_incoming_packet,
                        "the broker connection fails again and again with the same error (logged once; see /healthz and throughline_mqtt_reconnects_total); \
                         a message larger than max_incoming_packet that the broker sends after every reconnect does this: \
                         limit the size at the broker (Mosquitto: max_packet_size) or use MQTT 5 (mqtt.protocol)"
                    );
                } else if in_a_row < REPEATED_FAILURES && failures.fail() {
                    tracing::warn!(broker = %s.broker, error = %e, failures = failures.failures(), retry_in_ms = backoff.as_millis() as u64, "broker connection problem");
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                // Capped low: after a broker restart the aggregator should
                // be back before the agents.
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    // Leave cleanly so the broker keeps the persistent session for our
    // return; what it sent and was not acknowledged comes again.
    client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, LinkEvent::Disconnected) {
                break;
            }
        }
    })
    .await;
    if let Err(e) = journal.sync() {
        tracing::error!(error = %e, "journal could not be synced at shutdown");
    }
    shared.set_connected(false);
    tracing::info!("ingest stopped");
}

/// Publish the notices that are due (retained, QoS 1).
fn publish_notices(client: &Client, notices: &mut NoticeBoard) {
    for out in notices.due(Instant::now()) {
        let (site, agent, body, set) = match &out {
            NoticeOut::Set { site, agent, notice } => (site, agent, encode_notice(notice), true),
            NoticeOut::Clear { site, agent } => (site, agent, Vec::new(), false),
        };
        match client.try_publish(Topic::notice(site, agent), QoS::AtLeastOnce, true, body) {
            Ok(()) if set => {
                tracing::info!(%agent, "notice published: the agent's messages are refused for their sample times")
            }
            Ok(()) => tracing::info!(%agent, "notice cleared: the agent's messages are accepted again"),
            // The request channel is full: a notice goes out again with
            // the next refusal; a clearing is lost (the agent shows the old
            // notice until its next one).
            Err(e) => tracing::warn!(%agent, error = %e, "notice not queued"),
        }
    }
}

/// Publish the resend requests that are due and report what is given up.
fn ask_for_resends(client: &Client, shared: &Services, planner: &mut ResendPlanner, notices: &NoticeBoard) {
    let now = Utc::now();
    let plan = shared.live.plan_resends(planner, Instant::now(), |agent| notices.holds_resends(agent, now));
    let mut sent = 0;
    for r in &plan.requests {
        let body = encode_resend(&ResendRequest { v: PROTOCOL_VERSION, from: r.from, to: r.to });
        match client.try_publish(Topic::resend(&r.site, &r.agent), QoS::AtLeastOnce, false, body) {
            Ok(()) => {
                sent += 1;
                tracing::debug!(agent = %r.agent, from = r.from, to = r.to, "resend requested");
            }
            // The request channel is full: the range is asked for again
            // after the interval.
            Err(e) => tracing::debug!(agent = %r.agent, error = %e, "resend request not queued"),
        }
    }
    shared.metrics.resend_requests.inc_by(sent);
    if sent > 0 {
        let agents: std::collections::BTreeSet<_> = plan.requests.iter().map(|r| &r.agent).collect();
        tracing::info!(requests = sent, agents = agents.len(), "agents asked to resend missing envelopes");
    }
    if plan.lost.is_empty() {
        return;
    }
    for (l, n) in plan.lost.iter().zip(shared.live.declare_lost(&plan.lost)) {
        if n == 0 {
            continue;
        }
        shared.metrics.seq_lost.inc_by(n);
        tracing::warn!(
            agent = %l.agent, from = l.range.from, to = l.range.to, envelopes = n,
            "envelopes lost: asked for again and not resent (the agent no longer keeps them)"
        );
    }
}

/// Consecutive connection failures with one and the same error.
#[derive(Debug, Default)]
struct Streak {
    error: String,
    count: u64,
}

impl Streak {
    /// Count a failure with `error`; the failures in a row with it.
    fn fail(&mut self, error: &str) -> u64 {
        if self.error != error {
            self.error = error.to_string();
            self.count = 0;
        }
        self.count += 1;
        self.count
    }
}

/// Longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Journal the batch with one write, then apply and acknowledge each
/// message in order. If the journal cannot take it, nothing of it is
/// applied or acknowledged (the broker keeps it). Messages the decoder
/// refuses by size alone are not journaled, only counted and acknowledged.
fn commit(
    shared: &Services,
    s: &IngestSettings,
    log: &mut RejectLog,
    journal: &mut Journal,
    batch: &mut Batch,
    notices: &mut NoticeBoard,
) {
    if batch.messages.is_empty() {
        return;
    }
    let now = Utc::now();
    let max = s.limits.max_payload_bytes;
    let messages = std::mem::take(&mut batch.messages);
    let kept: Vec<(&str, &[u8])> = messages
        .iter()
        .filter(|p| p.payload.len() <= max)
        .map(|p| (p.topic.as_str(), &p.payload[..]))
        .collect();
    let journaled = kept.len() as u64;
    let first = if kept.is_empty() { Ok(0) } else { journal.append_many(&kept, now) };
    drop(kept);
    let mut id = match first {
        Ok(id) => id,
        Err(e) => {
            journal_failed(shared, &e);
            batch.held += messages.len() as u64;
            shared.metrics.messages_held.inc_by(messages.len() as u64);
            return;
        }
    };
    shared.metrics.journal_appends.inc_by(journaled);
    for p in messages {
        match handle(shared, &s.limits, log, &p.topic, &p.payload, now) {
            Handled::Refused(e)
                if matches!(e.reason, RejectReason::FutureTimestamp | RejectReason::PastTimestamp) =>
            {
                if let Ok(Topic::Telemetry { site, agent, .. }) = Topic::parse(&p.topic) {
                    let at = Instant::now();
                    notices.refused(&site, &agent, e.reason, &e.detail, e.ts, s.limits.max_future, now, at);
                }
            }
            Handled::Accepted if !notices.is_empty() => {
                if let Ok(Topic::Telemetry { agent, .. }) = Topic::parse(&p.topic) {
                    notices.accepted(&agent);
                }
            }
            _ => {}
        }
        if p.payload.len() <= max {
            shared.live.journaled(id);
            id += 1;
        }
        if p.qos != QoS::AtMostOnce {
            batch.acks.push(p);
        }
    }
}

fn journal_failed(shared: &Services, e: &crate::journal::JournalError) {
    shared.metrics.journal_failures.inc();
    if shared.durability.journal_failed(e) {
        tracing::error!(error = %e, "journal cannot be written: messages are not acknowledged, the broker keeps them (logged once a minute)");
    }
}
