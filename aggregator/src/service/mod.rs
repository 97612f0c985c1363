//! The aggregator's running state, as handles that own their locks (each
//! with methods and private fields; a caller never holds a raw lock):
//!
//! - [`live::Live`]: live state of every asset and agent, and the
//!   bookkeeping of those who act on its changes;
//! - [`alerts::Alerts`]: the alert book, stored on every change;
//! - [`forecasts::Forecasts`]: the forecast buckets in force;
//! - [`feed::Feed`]: the dashboard's live feed;
//! - [`history::Rollups`]: the writer of the per-minute history;
//! - [`auth::Auth`]: the configured tokens;
//! - [`durability::Durability`]: whether what ingest acknowledges is durable;
//! - [`delivery`]: what each alert receiver gets (the outbox).
//!
//! Use cases on top of them: [`planning`] (forecast import, promises),
//! [`report`] (forecast accuracy).
//!
//! [`Services`] holds one of each, shared by the tasks (`crate::tasks`)
//! and the HTTP API (`crate::api`).
//!
//! # Lock order
//! A thread that holds more than one lock takes them in this order, and
//! no method sends a notification or does I/O other than the store's while
//! holding one:
//!
//! 1. the rollup writer's flush lock ([`history::Rollups`]);
//! 2. the forecasts' read lock (held only to clone an `Arc`);
//! 3. live state ([`live::Live`]);
//! 4. the alert book ([`alerts::Alerts`], taken inside an evaluation's
//!    live-state lock);
//! 5. the planner's cache of stored output ([`history::StoredOutputs`],
//!    taken while a plan is made, inside the two above);
//! 6. the store's connection ([`crate::store::Store`]).

pub mod alerts;
pub mod auth;
pub mod delivery;
pub mod durability;
pub mod feed;
pub mod forecasts;
pub mod history;
pub mod live;
pub mod planning;
pub mod report;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use throughline_shared::{SiteId, Topic};

use crate::alert::AlertEvent;
use crate::link::Client;
use crate::metrics::{KindLabel, Metrics, ReceiverLabel};
use crate::model::{AlertChange, ForecastRow};
use crate::projection::Scope;
use crate::sink::influx::InfluxSink;
use crate::store::Store;

/// The aggregator's link to its broker: whether ingest is subscribed, the
/// last disconnect, and the client alert events are published with.
#[derive(Debug, Default)]
pub struct Link {
    connected: AtomicBool,
    last_disconnect: Mutex<Option<Disconnect>>,
    client: OnceLock<Client>,
}

/// The last time the broker connection was lost, for `/healthz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Disconnect {
    /// The error, as the MQTT client words it.
    pub error: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Failures in a row with this same error (a message the client cannot
    /// read, sent again after every reconnect, makes this grow).
    pub in_a_row: u64,
}

impl Link {
    /// Whether ingest is connected and subscribed.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Alert events are published with `client` from now on.
    pub fn set_client(&self, client: Client) {
        let _ = self.client.set(client);
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.get()
    }

    /// Note a lost connection: its error and how many in a row had it.
    pub fn disconnected(&self, error: &str, in_a_row: u64) {
        let d = Disconnect { error: error.to_string(), at: chrono::Utc::now(), in_a_row };
        *self.last_disconnect.lock().expect("link lock") = Some(d);
    }

    /// The last lost connection, if any.
    pub fn last_disconnect(&self) -> Option<Disconnect> {
        self.last_disconnect.lock().expect("link lock").clone()
    }
}

/// What one HTTP client may cost: `[http]` (`crate::config::HttpConfig`)
/// as the server and the handlers use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub max_import_bytes: usize,
}

/// Every handle, shared by the tasks and the HTTP API.
#[derive(Debug)]
pub struct Services {
    pub live: live::Live,
    pub alerts: alerts::Alerts,
    pub forecasts: forecasts::Forecasts,
    pub feed: feed::Feed,
    pub rollups: history::Rollups,
    pub store: Arc<Store>,
    pub metrics: Metrics,
    /// The InfluxDB sink, when `[influxdb]` is configured.
    pub influx: Option<InfluxSink>,
    pub auth: auth::Auth,
    pub link: Link,
    /// The journal's position in the store, and what fails to write.
    pub durability: durability::Durability,
    pub receivers: Vec<delivery::Receiver>,
    /// How long a quote's reservation holds capacity.
    pub quote_valid_hours: u32,
    /// What one HTTP client may cost (`[http]`).
    pub http: HttpLimits,
    /// One forecast import at a time: a second waits, its body unread.
    pub import_gate: tokio::sync::Semaphore,
}

impl Services {
    /// One alert evaluation of `scope`; the events it caused, stored.
    pub fn evaluate(&self, forecasts: &[ForecastRow], scope: Scope) -> Vec<AlertEvent> {
        let done = self.alerts.evaluate(&self.live, forecasts, scope);
        self.metrics.alerts_unresolved.set(done.unresolved as i64);
        for (kind, n) in done.debounced {
            self.metrics
                .alert_conditions_debounced
                .get_or_create(&KindLabel { kind: kind.as_str() })
                .inc_by(n as u64);
        }
        done.events
    }

    /// Tell everyone about alert events already stored: MQTT
    /// (`throughline/v1/{site}/alerts`), the dashboard, and every receiver's
    /// queue in the outbox.
    pub fn publish(&self, events: &[AlertEvent]) {
        if events.is_empty() {
            return;
        }
        for e in events {
            let kind = KindLabel { kind: e.alert.kind.as_str() };
            match e.event {
                AlertChange::Opened => self.metrics.alerts_opened.get_or_create(&kind).inc(),
                AlertChange::Resolved => self.metrics.alerts_resolved.get_or_create(&kind).inc(),
                AlertChange::Acknowledged => 0,
            };
            let site = e.alert.site.as_deref().and_then(|s| SiteId::parse(s).ok());
            let sent = match (self.link.client(), site) {
                (Some(client), Some(site)) => {
                    let body = serde_json::to_vec(e).expect("event serializes");
                    client.try_publish(Topic::alerts(&site), rumqttc::QoS::AtLeastOnce, false, body).is_ok()
                }
                _ => false,
            };
            if sent {
                self.metrics.alert_events_published.inc();
            } else {
                self.metrics.alert_events_not_published.inc();
            }
            if self.feed.listening() {
                self.feed.send("alert", serde_json::to_string(e).expect("event serializes"));
            }
        }
        // The page's group view should agree with the alert it just got.
        self.feed.overview_changed();
        match delivery::enqueue(&self.store, &self.receivers, events) {
            Ok(dropped) => {
                for (receiver, n) in dropped {
                    self.metrics
                        .outbox_dropped
                        .get_or_create(&ReceiverLabel { receiver: receiver.clone() })
                        .inc_by(n);
                    tracing::warn!(%receiver, dropped = n, "outbox full for this receiver: its oldest undelivered events were dropped (outbox.max_pending)");
                }
            }
            Err(e) => tracing::error!(error = %e, "alert events could not be queued for delivery"),
        }
        self.alerts.wake_delivery();
        self.count_outbox();
    }

    /// Set the outbox gauge from the store.
    pub fn count_outbox(&self) {
        if let Ok(depth) = self.store.outbox_depth() {
            self.metrics.outbox_depth.set(depth.iter().map(|(_, n)| n).sum());
        }
    }

    /// Note whether ingest is connected.
    pub fn set_connected(&self, connected: bool) {
        self.link.set_connected(connected);
        self.metrics.mqtt_connected.set(i64::from(connected));
    }
}
