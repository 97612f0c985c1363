//! Throughline aggregator: MQTT ingest, live state of every line and feeder,
//! HTTP API and metrics, with an embedded broker for zero set-up use.
//!
//! # Layout, lowest layer first (imports go downwards only; checked by
//! `tests/layers.rs`)
//! - The planning core (`throughline_core`, re-exported): [`model`],
//!   [`stops`], [`history`], [`balance`], [`ctp`], [`forecast`], [`state`], [`alert`],
//!   [`rollup`], [`snapshot`], [`resend`], [`projection`], [`fanout`], [`accuracy`]. No I/O, no
//!   clock, no async.
//! - [`metrics`]: Prometheus/OpenMetrics counters. [`store`]: the SQLite
//!   state store, one file per table family. [`journal`]: the ingest
//!   journal (what is acknowledged to the broker, until a checkpoint).
//! - [`error`]: the crate's error type. [`broker`]: the embedded rumqttd
//!   broker. [`link`]: ingest's MQTT client in 3.1.1 or 5 behind one type.
//! - [`sink`]: the InfluxDB v2 sink.
//! - [`service`]: the handles that own the locks (live state, alert book,
//!   forecasts, dashboard feed, rollup writer, tokens) and the planning use
//!   cases; the lock order is documented there.
//! - [`tasks`]: ingest, alert evaluation, rollup flush, live-event tick,
//!   delivery. [`api`]: `router(services) -> Router` for `/api/v1`,
//!   `/metrics`, `/healthz` and the dashboard.
//! - [`config`]: `Config` from TOML, one file per section; each section
//!   validates itself and builds its component (reading its secret once).
//! - [`cli`]: the flags both binaries take, on top of a `Config`.
//! - [`App`]: build from config, then `run(token)` until cancelled.
//!
//! # Which way data flows
//! broker -> `tasks::ingest` (decode) -> `service::live` (core state:
//! events to the sink, the dashboard, the alert task, the rollups) ->
//! `tasks::alerts` (core projection and rules -> alert book -> store ->
//! MQTT, dashboard, outbox -> `tasks::notify`) and `tasks::rollup` (store);
//! `api` reads through the services.

pub mod api;
pub mod broker;
pub mod cli;
pub mod config;
pub mod error;
pub mod journal;
pub mod link;
pub mod metrics;
pub mod service;
pub mod sink;
pub mod store;
pub mod tasks;

/// The planning core, under the names the rest of the aggregator uses.
pub use throughline_core::{
    accuracy, alert, balance, ctp, fanout, forecast, history, model, notice, projection, resend, rollup,
    snapshot, state, stops,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use throughline_shared::broker::BrokerUrl;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use error::Error;
pub use service::Services;

/// A built aggregator: listeners bound, broker running, not yet ingesting.
#[derive(Debug)]
pub struct App {
    shared: Arc<Services>,
    http: tokio::net::TcpListener,
    ingest: tasks::ingest::mqtt::IngestSettings,
    /// Where agents connect: the embedded broker's listen address, or the
    /// external broker.
    mqtt_url: BrokerUrl,
    journal: journal::Journal,
    embedded: bool,
    evaluate_every: Duration,
}

/// File name of the state store inside the data dir.
pub const STORE_FILE: &str = "throughline.db";
/// Directory of the ingest journal inside the data dir.
pub const JOURNAL_DIR: &str = "journal";

impl App {
    /// Validate `config`, create the data directory, bind the HTTP listener
    /// and start the embedded broker unless an external one is configured.
    /// `origin` names the config (file or "command line") in errors.
    pub async fn build(config: Config, origin: &str) -> Result<App, Error> {
        let mut secrets = config.validate(origin)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::Config {
            path: origin.to_string(),
            message: format!("data_dir {}: cannot create: {e}", config.data_dir.display()),
        })?;
        let http = config.http.bind().await?;
        let metrics = metrics::Metrics::new();
        let embedded = match config.mqtt.embedded() {
            Some(listen) => {
                let guard = config.mqtt.guard(&mut secrets).map_err(|e| e.at(origin))?;
                Some(broker::start(listen, guard, &metrics.broker)?)
            }
            None => None,
        };
        let ingest =
            config.mqtt.build(&config.ingest, &mut secrets, embedded.as_ref()).map_err(|e| e.at(origin))?;
        let mqtt_url = match config.mqtt.embedded() {
            Some(listen) => BrokerUrl { host: listen.ip().to_string(), port: listen.port(), tls: false },
            None => ingest.broker.clone(),
        };
        let store = Arc::new(store::Store::open(&config.data_dir.join(STORE_FILE))?);
        let alerts = service::alerts::Alerts::load(store.clone())?;
        let receivers = config::alerts::receivers(
            &config.webhooks,
            config.alertmanager.as_ref(),
            &config.outbox,
            &mut secrets,
        )
        .map_err(|e| e.at(origin))?;
        let auth = config.auth.build(&mut secrets).map_err(|e| e.at(origin))?;
        let influx = match &config.influxdb {
            Some(c) => Some(c.build(&mut secrets, metrics.influx.clone()).map_err(|e| e.at(origin))?),
            None => None,
        };
        // In memory only what projections need; older minutes are read from the store.
        let keep = config.planning.memory();
        let mut live = state::LiveState::with_settings(&config.assets, config.ingest.state_settings())
            .with_max_seq_jump(config.ingest.max_seq_jump)
            .with_max_unregistered(config.ingest.max_unregistered)
            .with_unregistered_expiry(chrono::Duration::seconds(
                config.ingest.unregistered_offline_expiry_secs as i64,
            ))
            .with_known_agents(
                config.mqtt.agents.iter().filter_map(|a| throughline_shared::AgentId::parse(&a.id).ok()),
            )
            .with_stop_window(config.planning.windows().availability);
        let started = std::time::Instant::now();
        let minutes = service::history::restore(&store, &mut live, keep)?;
        let checkpoint = service::history::restore_state(&store, &mut live)?;
        tracing::info!(
            minutes,
            assets = checkpoint.assets,
            agents = checkpoint.agents,
            journal_next = checkpoint.journal_next,
            "per-minute history and live state read back from the store"
        );
        let shared = Arc::new(Services {
            live: service::live::Live::new(
                live,
                config.planner().with_stored(Arc::new(service::history::StoredOutputs::new(store.clone()))),
                keep,
            ),
            alerts,
            forecasts: service::forecasts::Forecasts::new(store.clone()),
            feed: service::feed::Feed::new(),
            rollups: config.history.build(),
            store,
            metrics,
            influx,
            auth,
            link: service::Link::default(),
            durability: service::durability::Durability::default(),
            receivers,
            quote_valid_hours: config.planning.quote_valid_hours,
            http: config.http.limits(),
            import_gate: tokio::sync::Semaphore::new(1),
        });
        shared.durability.released.store(checkpoint.journal_next, std::sync::atomic::Ordering::Relaxed);
        let journal = tasks::ingest::replay(
            &shared,
            &config.data_dir.join(JOURNAL_DIR),
            config.history.journal_fsync(),
            checkpoint.journal_next,
            &ingest.limits,
        )?;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "restart recovery done");
        shared.forecasts.reload();
        shared.count_outbox();
        let evaluate_every = config.planning.evaluate_every();
        Ok(App { shared, http, ingest, mqtt_url, journal, embedded: embedded.is_some(), evaluate_every })
    }

    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    /// The broker agents connect to (the embedded broker's listen address;
    /// with logins, ingest itself connects to the broker behind its front).
    pub fn broker_url(&self) -> &BrokerUrl {
        &self.mqtt_url
    }

    /// Whether the broker is the embedded one.
    pub fn embedded_broker(&self) -> bool {
        self.embedded
    }

    /// The services, for in-process callers (the demo, tests).
    pub fn shared(&self) -> Arc<Services> {
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
        let (client, eventloop) = tasks::ingest::mqtt::client(&self.ingest);
        self.shared.link.set_client(client.clone());
        tracker.spawn(tasks::ingest::mqtt::run(
            client,
            eventloop,
            self.ingest,
            self.shared.clone(),
            self.journal,
            token.child_token(),
        ));
        tracker.spawn(tasks::alerts::run(self.shared.clone(), self.evaluate_every, token.child_token()));
        tracker.spawn(tasks::rollup::run(self.shared.clone(), token.child_token()));
        tracker.spawn(tasks::live_tick::run(self.shared.clone(), token.child_token()));
        // A receiver's redirect is not followed: the signed body would go to
        // wherever it points. A 3xx is a failed delivery (retried, logged
        // with its Location).
        let http_client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        for r in self.shared.receivers.clone() {
            tracker.spawn(tasks::notify::run(
                r,
                http_client.clone(),
                self.shared.clone(),
                token.child_token(),
            ));
        }
        let app = api::router(self.shared.clone());
        let stop = token.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            // Open event streams end, so they do not hold up the stop.
            shared.feed.close();
        });
        let server =
            api::server::serve(self.http, app, self.shared.http, self.shared.clone(), token.child_token());
        tokio::select! {
            _ = server => {}
            // Open connections (e.g. a slow client) may not hold up shutdown for long.
            _ = async { token.cancelled().await; tokio::time::sleep(Duration::from_secs(5)).await } => {}
        };
        token.cancel();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
            tracing::warn!("ingest did not stop within 5 s");
        }
        // Ingest has stopped: write the history it left behind.
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || service::history::flush(&shared)).await {
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
        Ok(())
    }
}
