//! Throughline aggregator: MQTT ingest, live state of every line and feeder,
//! HTTP API and metrics, with an embedded broker for zero set-up use.
//!
//! # Layout
//! - [`config`]: `Config` from TOML plus command-line overrides, validated.
//! - [`broker`]: the embedded rumqttd broker.
//! - [`ingest`]: MQTT subscribe, decode, dedup, update state and counters.
//! - [`state`]: live state per asset and agent (pure, event time).
//! - [`rollup`]: embedded history: per-minute rollups flushed to SQLite,
//!   downsampled for the API.
//! - [`metrics`]: Prometheus/OpenMetrics counters.
//! - [`sink`]: time-series sinks (InfluxDB v2 write API), fed by ingest.
//! - [`api`]: `router(shared) -> Router` for `/api/v1`, `/metrics`, `/healthz`.
//! - [`demo`]: `aggregator demo`, a small simulated plant in one process.
//! - [`App`]: build from config, then `run(token)` until cancelled.

pub mod alerts;
pub mod api;
pub mod balance;
pub mod broker;
pub mod config;
pub mod ctp;
pub mod demo;
pub mod domain;
pub mod error;
pub mod forecast;
pub mod history;
pub mod ingest;
pub mod metrics;
pub mod planner;
pub mod rollup;
pub mod sink;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use throughline_shared::broker::BrokerUrl;
use throughline_shared::Limits;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use error::Error;

/// State shared by ingest, alerting and the HTTP API.
#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<state::LiveState>,
    pub metrics: metrics::Metrics,
    pub mqtt_connected: AtomicBool,
    pub store: Arc<store::Store>,
    /// Writer of the embedded history (per-minute rollups in the store).
    pub rollups: rollup::Rollups,
    /// Forecast buckets in force (cache of the store).
    pub forecasts: RwLock<Vec<domain::ForecastRow>>,
    pub book: Mutex<alerts::book::AlertBook>,
    pub planner: planner::Planner,
    pub receivers: Vec<alerts::notify::Receiver>,
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// The InfluxDB sink, when `[influxdb]` is configured.
    pub influx: Option<sink::influx::InfluxSink>,
    pub auth: api::auth::Auth,
    /// The MQTT client, once connected, for publishing alert events.
    pub mqtt: OnceLock<rumqttc::AsyncClient>,
    pub quote_valid_hours: u32,
    /// Live updates for the dashboard (server-sent events).
    pub live: api::live::Live,
}

impl Shared {
    /// Re-read the forecasts in force from the store.
    pub fn reload_forecasts(&self) {
        match self.store.forecasts(None, None, None, false) {
            Ok(rows) => {
                *self.forecasts.write().expect("forecast lock") = rows.into_iter().map(|f| f.row).collect()
            }
            Err(e) => tracing::error!(error = %e, "forecasts could not be read"),
        }
    }
}

/// A built aggregator: listeners bound, broker running, not yet ingesting.
#[derive(Debug)]
pub struct App {
    shared: Arc<Shared>,
    http: tokio::net::TcpListener,
    ingest: ingest::mqtt::IngestSettings,
    embedded: bool,
    evaluate_every: Duration,
}

/// File name of the state store inside the data dir.
pub const STORE_FILE: &str = "throughline.db";

impl App {
    /// Validate `config`, create the data directory, bind the HTTP listener
    /// and start the embedded broker unless an external one is configured.
    /// `origin` names the config (file or "command line") in errors.
    pub async fn build(config: Config, origin: &str) -> Result<App, Error> {
        config.validate(origin)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::Config {
            path: origin.to_string(),
            message: format!("data_dir {}: cannot create: {e}", config.data_dir.display()),
        })?;
        let http = match tokio::net::TcpListener::bind(config.http.listen).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(Error::AddrInUse {
                    what: "HTTP",
                    addr: config.http.listen,
                    hint: ". Choose another with --http-listen 127.0.0.1:8081 (or port 0 for any free port)"
                        .into(),
                })
            }
            Err(e) => return Err(Error::Io(e)),
        };
        let (broker_url, embedded) = match &config.mqtt.broker {
            Some(url) => (
                BrokerUrl::parse(url)
                    .map_err(|e| Error::Config { path: origin.into(), message: e.to_string() })?,
                false,
            ),
            None => {
                broker::start(config.mqtt.listen)?;
                let l = config.mqtt.listen;
                (BrokerUrl { host: l.ip().to_string(), port: l.port(), tls: false }, true)
            }
        };
        let limits = Limits {
            max_payload_bytes: config.ingest.max_payload_bytes,
            max_samples: Limits::default().max_samples,
            max_future: chrono::Duration::seconds(config.ingest.max_future_secs),
        };
        let ingest = ingest::mqtt::IngestSettings {
            broker: broker_url,
            client_id: config.mqtt.client_id.clone(),
            username: config.mqtt.username.clone(),
            password: config.password(origin)?,
            keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
            persistent_session: config.mqtt.persistent_session,
            limits,
        };
        let store = Arc::new(
            store::Store::open(&config.data_dir.join(STORE_FILE)).map_err(|e| Error::Store(e.to_string()))?,
        );
        let book = alerts::book::AlertBook::load(&store).map_err(|e| Error::Store(e.to_string()))?;
        let receivers = alerts::notify::receivers(&config)
            .map_err(|message| Error::Config { path: origin.into(), message })?;
        let auth = api::auth::Auth::from_config(&config.auth)
            .map_err(|message| Error::Config { path: origin.into(), message })?;
        let metrics = metrics::Metrics::new();
        let influx = match &config.influxdb {
            Some(c) => {
                let token = c
                    .read_token()
                    .map_err(|e| Error::Config { path: origin.into(), message: format!("influxdb.{e}") })?;
                let settings = sink::influx::Settings::new(c, token);
                Some(sink::influx::InfluxSink::new(settings, metrics.influx.clone()))
            }
            None => None,
        };
        let mut live = state::LiveState::new(
            &config.assets,
            chrono::Duration::seconds(config.ingest.rate_window_secs as i64),
        );
        live.set_history_keep(chrono::Duration::hours(config.planning.history_hours as i64));
        let restored =
            rollup::restore(&store, &mut live, chrono::Duration::hours(config.planning.history_hours as i64))
                .map_err(|e| Error::Store(e.to_string()))?;
        tracing::info!(minutes = restored, "per-minute history read back from the store");
        let shared = Arc::new(Shared {
            state: Mutex::new(live),
            metrics,
            mqtt_connected: AtomicBool::new(false),
            store,
            rollups: rollup::Rollups::new(&config.history),
            forecasts: RwLock::new(Vec::new()),
            book: Mutex::new(book),
            planner: planner::Planner::new(&config),
            receivers,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            influx,
            auth,
            mqtt: OnceLock::new(),
            quote_valid_hours: config.planning.quote_valid_hours,
            live: api::live::Live::new(),
        });
        shared.reload_forecasts();
        if let Ok(depth) = shared.store.outbox_depth() {
            shared.metrics.outbox_depth.set(depth.iter().map(|(_, n)| n).sum());
        }
        let evaluate_every = Duration::from_millis(config.planning.evaluate_every_ms.max(100));
        Ok(App { shared, http, ingest, embedded, evaluate_every })
    }

    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    /// The broker ingest connects to.
    pub fn broker_url(&self) -> &BrokerUrl {
        &self.ingest.broker
    }

    /// Whether the broker is the embedded one.
    pub fn embedded_broker(&self) -> bool {
        self.embedded
    }

    /// Shared state, for in-process callers (the demo, tests).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Ingest and serve until `token` is cancelled; then stop within seconds.
    pub async fn run(self, token: CancellationToken) -> Result<(), Error> {
        let tracker = TaskTracker::new();
        // The sink stops after ingest, so that it can write what ingest
        // handed it last.
        let influx = self.shared.influx.clone().map(|sink| {
            let stop = CancellationToken::new();
            (tokio::spawn(sink.run(stop.clone())), stop)
        });
        let (client, eventloop) = ingest::mqtt::client(&self.ingest);
        let _ = self.shared.mqtt.set(client.clone());
        tracker.spawn(ingest::mqtt::run(
            client.clone(),
            eventloop,
            self.ingest,
            self.shared.clone(),
            token.child_token(),
        ));
        tracker.spawn(planner::run_alerts(
            self.shared.clone(),
            Some(client),
            self.evaluate_every,
            token.child_token(),
        ));
        tracker.spawn(rollup::run(self.shared.clone(), token.child_token()));
        tracker.spawn(api::live::run(self.shared.clone(), token.child_token()));
        let http_client =
            reqwest::Client::builder().build().map_err(|e| Error::Broker(format!("HTTP client: {e}")))?;
        for r in self.shared.receivers.clone() {
            tracker.spawn(alerts::notify::run(
                r,
                self.shared.store.clone(),
                self.shared.outbox_wake.clone(),
                http_client.clone(),
                self.shared.clone(),
                token.child_token(),
            ));
        }
        let app = api::router(self.shared.clone());
        let stop = token.clone();
        let shared = self.shared.clone();
        let server = axum::serve(self.http, app).with_graceful_shutdown(async move {
            stop.cancelled().await;
            // Open event streams end, so they do not hold up the stop.
            shared.live.close();
        });
        let served = tokio::select! {
            r = server => r,
            // Open connections (e.g. a slow client) may not hold up shutdown for long.
            _ = async { token.cancelled().await; tokio::time::sleep(Duration::from_secs(5)).await } => Ok(()),
        };
        token.cancel();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
            tracing::warn!("ingest did not stop within 5 s");
        }
        // Ingest has stopped: write the history it left behind.
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || rollup::flush(&shared)).await {
            Ok(Ok(n)) => tracing::debug!(rows = n, "history flushed at shutdown"),
            Ok(Err(e)) => tracing::error!(error = %e, "history could not be flushed at shutdown"),
            Err(e) => tracing::error!(error = %e, "history flush at shutdown failed"),
        }
        if let Some((task, stop)) = influx {
            stop.cancel();
            let limit = sink::influx::SHUTDOWN_FLUSH + Duration::from_secs(1);
            if tokio::time::timeout(limit, task).await.is_err() {
                tracing::warn!("InfluxDB sink did not stop within {limit:?}");
            }
        }
        served.map_err(Error::Io)
    }
}
