//! The aggregator's MQTT client: a persistent session subscribed to every
//! agent's telemetry and status, reconnecting with backoff.
//!
//! Messages are handled inside the event-loop task (decode and a short state
//! update, microseconds each), so there is no queue between broker and
//! state; rumqttc's own request channel is bounded at
//! [`REQUEST_CAPACITY`] and only carries subscribe requests and acks.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS, SubscribeFilter};
use throughline_shared::broker::BrokerUrl;
use throughline_shared::mqtt::ClientSettings;
use throughline_shared::throttle::FailureLog;
use throughline_shared::topic::{STATUS_FILTER, TELEMETRY_FILTER};
use throughline_shared::Limits;
use tokio_util::sync::CancellationToken;

use super::{handle, RejectLog};
use crate::service::Services;

/// Requests that may wait for the event loop (subscriptions, acks and alert
/// events). Alert events use `try_publish`: when full, the event is counted
/// in `throughline_alert_events_not_published_total` and still reaches the
/// receivers from the outbox.
pub const REQUEST_CAPACITY: usize = 256;
/// Largest packet accepted from the broker. Above the protocol's payload
/// limit so that oversize messages are received, counted and dropped here;
/// configure the broker's own message size limit below this (Mosquitto:
/// `message_size_limit`).
pub const MAX_INCOMING_PACKET: usize = 8 * 1024 * 1024;

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
}

/// Build the client and its event loop (not connected yet).
pub fn client(s: &IngestSettings) -> (AsyncClient, EventLoop) {
    ClientSettings {
        broker: &s.broker,
        client_id: &s.client_id,
        username: s.username.as_deref(),
        password: s.password.as_deref(),
        keep_alive: s.keep_alive,
        clean_session: !s.persistent_session,
        max_incoming_packet: MAX_INCOMING_PACKET,
        max_outgoing_packet: 64 * 1024,
        inflight: None,
        request_capacity: REQUEST_CAPACITY,
        last_will: None,
        tls: None,
    }
    .build()
}

/// Run until `token` is cancelled.
pub async fn run(
    client: AsyncClient,
    mut eventloop: EventLoop,
    s: IngestSettings,
    shared: Arc<Services>,
    token: CancellationToken,
) {
    let mut log = RejectLog::new(Duration::from_secs(10));
    let mut backoff = Duration::from_millis(200);
    let mut failures = FailureLog::connection();
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                handle(&shared, &s.limits, &mut log, &p.topic, &p.payload, chrono::Utc::now());
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(broker = %s.broker, session_present = ack.session_present, "connected to broker");
                failures.reset();
                backoff = Duration::from_millis(200);
                // One SUBSCRIBE for both filters: its SUBACK means both are
                // in place, so "connected" is never reported while
                // telemetry could still be missed.
                let filters = [STATUS_FILTER, TELEMETRY_FILTER]
                    .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                shared.set_connected(true);
            }
            Ok(_) => {}
            Err(e) => {
                shared.set_connected(false);
                if failures.fail() {
                    tracing::warn!(broker = %s.broker, error = %e, failures = failures.failures(), retry_in_ms = backoff.as_millis() as u64, "broker connection problem");
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    // Leave cleanly so the broker keeps the persistent session for our return.
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                handle(&shared, &s.limits, &mut log, &p.topic, &p.payload, chrono::Utc::now());
            }
        }
    })
    .await;
    shared.set_connected(false);
    tracing::info!("ingest stopped");
}
