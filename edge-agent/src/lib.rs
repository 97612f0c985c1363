//! Throughline edge agent: reads the assets of one line or feeder gateway,
//! numbers their samples and publishes them to the broker as protocol v1.
//!
//! # Layout
//! - [`config`]: `AgentConfig` from TOML, validated as a whole.
//! - [`error`]: [`Error`], the crate's one error type.
//! - [`source`]: readings sources, each a task feeding a bounded queue:
//!   [`source::simulator`] (deterministic), [`source::modbus`] (Modbus TCP),
//!   [`source::command`] (a program printing JSON lines); and the
//!   [`source::Emitter`] that thins each asset's readings.
//! - [`publish`]: [`publish::Batcher`] groups samples into envelopes (pure).
//! - [`seq`]: sequence numbers persisted across restarts.
//! - [`spool`]: the disk spool every envelope passes through.
//! - [`link`]: the broker connection: the in-flight [`link::window`], the
//!   [`link::mode`] state machine, the [`link::mqtt`] task and [`link::tls`].
//! - [`run`] (here): wires the pipeline and stops it cleanly.
//!
//! # Data flow
//! ```text
//! source tasks -> queue (block when full) -> emitter -> batcher -> seq
//!   -> spool (disk) -> link (window, QoS 1) -> broker
//!                      PUBACK -> link -> spool (record acknowledged; kept
//!                      for resends within spool.keep_delivered)
//!   broker -> resend request -> link -> spool (kept records) -> broker
//! ```
//!
//! # Dependencies between modules
//! Imports go one way, and no module imports this file's items:
//! `config` -> `source`, `spool`, `link::tls`, `error`; `link` -> `spool`,
//! `source` (its `Health`); `seq` -> `error` -> `spool`; `source` (whose
//! submodules use its `Sink` and `Health`), `spool` and `publish` import no
//! other module (`publish` only re-exports `link::{mqtt, tls}` under their
//! old paths). `source` takes its settings as [`source::Sources`], which
//! `AgentConfig` converts into. Check with `grep -rn "crate::" edge-agent/src`.

pub mod config;
pub mod error;
pub mod link;
pub mod publish;
pub mod seq;
pub mod source;
pub mod spool;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use throughline_shared::codec::encode_envelope;
use throughline_shared::{Envelope, Topic, PROTOCOL_VERSION};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::AgentConfig;
pub use error::Error;

use link::mqtt::{LinkSettings, LinkStats, Shared};
use publish::Batcher;
use source::{Emitter, Sink, SourceStats};
use spool::{Appended, Spool};

/// Software name reported in the agent's status message.
pub const SOFTWARE: &str = concat!("throughline-edge-agent ", env!("CARGO_PKG_VERSION"));

/// Run the agent until `token` is cancelled, then stop the sources, spool and
/// publish what they produced, mark the agent offline and disconnect.
/// Whatever the broker has not acknowledged by then stays in the spool and is
/// sent first at the next start.
///
/// `config_path` only names the file in error messages.
pub async fn run(config: AgentConfig, config_path: &Path, token: CancellationToken) -> Result<(), Error> {
    let config_error = |message: String| Error::Config { path: config_path.to_path_buf(), message };
    let password = config.password(config_path)?;
    let broker = throughline_shared::broker::BrokerUrl::parse(&config.mqtt.url)
        .map_err(|e| config_error(e.to_string()))?;
    let mut seq = seq::SeqStore::open(&config.state_dir)?;
    let spool_dir = config.state_dir.join("spool");
    let spool = Spool::open(&spool_dir, config.spool.clone())?;
    let seq_skipped = seq::skipped(seq.peek(), spool.newest_seq());
    if let Some(r) = seq_skipped {
        tracing::info!(
            from = r.from,
            to = r.to,
            "sequence numbers reserved before a crash are skipped; announced in the status message"
        );
    }
    let link = LinkSettings {
        broker,
        client_id: config.mqtt.client_id.clone().unwrap_or_else(|| config.agent.to_string()),
        username: config.mqtt.username.clone(),
        password,
        keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
        reconnect_max: Duration::from_secs(config.mqtt.reconnect_max_secs.max(1)),
        status_topic: Topic::status(&config.site, &config.agent),
        resend_topic: Topic::resend(&config.site, &config.agent),
        notice_topic: Topic::notice(&config.site, &config.agent),
        seq_skipped,
        software: SOFTWARE.to_string(),
        status_interval: Duration::from_secs(config.publish.status_interval_secs.max(1)),
        tls: config.tls().map_err(config_error)?,
    };
    tracing::info!(
        agent = %config.agent, site = %config.site, broker = %link.broker, assets = config.assets.len(),
        next_seq = seq.peek(), spool = %spool_dir.display(), "edge agent starting"
    );

    let shared = Shared {
        spool: Arc::new(Mutex::new(spool)),
        appended: Arc::new(Notify::new()),
        health: Arc::new(source::Health::default()),
        stats: Arc::new(LinkStats::default()),
    };
    let (client, eventloop) = link::mqtt::client(&link);
    let finish = CancellationToken::new();
    let link_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let link_task = tracker.spawn(link::mqtt::drive(
        eventloop,
        client.clone(),
        link.clone(),
        shared.clone(),
        finish.clone(),
        link_stop.clone(),
    ));

    // Sources stop on `token`; the queue closes when the last one has gone.
    let (tx, mut rx) = mpsc::channel(config.publish.queue_capacity);
    let source_stats = Arc::new(SourceStats::default());
    source::spawn_all(
        &config,
        &Sink::new(tx, source_stats.clone(), token.child_token()),
        &shared.health,
        &tracker,
    );
    let mut emitters: Vec<Emitter> =
        config.assets.iter().map(|a| Emitter::new(a.sample_interval_ms(), a.load_deadband_kw)).collect();

    let topics: Vec<String> =
        config.assets.iter().map(|a| Topic::telemetry(&config.site, &config.agent, &a.id)).collect();
    let mut batcher = Batcher::new(
        config.assets.len(),
        config.publish.max_batch_samples,
        Duration::from_millis(config.publish.max_batch_delay_ms),
    );
    let mut publisher =
        Publisher { shared: &shared, seq: &mut seq, agent: &config.agent, topics: &topics, spooled: 0 };

    let (online_delay, outage_delay) = (
        Duration::from_millis(config.publish.max_batch_delay_ms),
        Duration::from_millis(config.publish.outage_batch_delay_ms.max(config.publish.max_batch_delay_ms)),
    );
    loop {
        let connected = shared.stats.connected.load(Ordering::Relaxed);
        batcher.set_max_delay(if connected { online_delay } else { outage_delay });
        let deadline = batcher.next_deadline();
        let sync_at =
            shared.spool.lock().expect("spool lock").sync_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            reading = rx.recv() => match reading {
                Some(r) => {
                    let Some(sample) = emitters[r.asset].offer(r.sample) else { continue };
                    if let Some(batch) = batcher.push(r.asset, sample, tokio::time::Instant::now()) {
                        publisher.send(batch)?;
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                for batch in batcher.due(tokio::time::Instant::now()) {
                    publisher.send(batch)?;
                }
            }
            _ = tokio::time::sleep_until(sync_at.unwrap_or_else(tokio::time::Instant::now)), if sync_at.is_some() => {
                shared.spool.lock().expect("spool lock").sync_if_due()?;
            }
        }
    }

    // Shutdown: everything the sources produced goes to the spool and, while
    // the broker is reachable, out to it, bounded by `shutdown_drain_ms`.
    let started = tokio::time::Instant::now();
    for batch in batcher.drain() {
        publisher.send(batch)?;
    }
    let spooled = publisher.spooled;
    shared.spool.lock().expect("spool lock").sync()?;
    let drain = Duration::from_millis(config.publish.shutdown_drain_ms);
    let _ = tokio::time::timeout(drain, async {
        loop {
            let waiting = shared.spool.lock().expect("spool lock").unacked();
            if waiting == 0 || !shared.stats.connected.load(Ordering::Relaxed) {
                return waiting;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let connected_at_stop = shared.stats.connected.load(Ordering::Relaxed);
    finish.cancel();
    if tokio::time::timeout(Duration::from_secs(2), link_task).await.is_err() {
        link_stop.cancel();
    }
    link_stop.cancel();
    tracker.close();
    tracker.wait().await;
    let spool = Arc::into_inner(shared.spool).expect("link task ended").into_inner().expect("spool lock");
    let health = spool.close()?;
    if health.records > 0 {
        tracing::warn!(
            records = health.records,
            broker_connected = connected_at_stop,
            "envelopes not yet acknowledged stay in the spool and are sent first at the next start"
        );
    }
    let next = seq.peek();
    seq.close()?;
    tracing::info!(
        envelopes = spooled,
        delivered = shared.stats.delivered.load(Ordering::Relaxed),
        resend_requests = shared.stats.resend_requests.load(Ordering::Relaxed),
        resent = shared.stats.resent.load(Ordering::Relaxed),
        notice = shared.stats.notice_summary().as_deref(),
        readings = source_stats.readings.load(Ordering::Relaxed),
        queue_full_waits = source_stats.queue_full_waits.load(Ordering::Relaxed),
        dropped_at_shutdown = source_stats.dropped_at_shutdown.load(Ordering::Relaxed),
        spool_records = health.records,
        spool_kept = health.kept,
        spool_dropped = health.dropped,
        spool_refused = health.refused,
        spool_corrupt = health.corrupt,
        next_seq = next,
        shutdown_ms = started.elapsed().as_millis() as u64,
        "edge agent stopped"
    );
    Ok(())
}

struct Publisher<'a> {
    shared: &'a Shared,
    seq: &'a mut seq::SeqStore,
    agent: &'a throughline_shared::AgentId,
    topics: &'a [String],
    spooled: u64,
}

impl Publisher<'_> {
    /// Number the batch, write it to the spool and wake the link.
    fn send(&mut self, (asset, samples): publish::Batch) -> Result<(), Error> {
        let envelope =
            Envelope { v: PROTOCOL_VERSION, agent: self.agent.clone(), seq: self.seq.allocate()?, samples };
        let payload = encode_envelope(&envelope);
        let stored = self.shared.spool.lock().expect("spool lock").append(&self.topics[asset], &payload)?;
        if let Appended::Stored(_) = stored {
            self.spooled += 1;
            self.shared.appended.notify_one();
        }
        Ok(())
    }
}
