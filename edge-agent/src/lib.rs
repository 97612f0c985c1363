//! Throughline edge agent: reads the assets of one line or feeder gateway,
//! numbers their samples and publishes them to the broker as protocol v1.
//!
//! # Layout
//! - [`config`]: `AgentConfig` from TOML, validated as a whole.
//! - [`source`]: readings sources (the deterministic [`source::simulator`]);
//!   each runs as a task feeding a bounded queue.
//! - [`publish`]: [`publish::Batcher`] groups samples into envelopes;
//!   [`publish::mqtt`] drives the broker connection.
//! - [`seq`]: sequence numbers persisted across restarts.
//! - [`run`]: wires the pipeline and stops it cleanly.
//!
//! Pipeline: `source tasks -> queue (block when full) -> batcher -> seq ->
//! MQTT publish (QoS 1)`. A disk spool between batcher and MQTT comes in a
//! later version; until then envelopes not acknowledged by the broker at
//! shutdown are reported, not kept.

pub mod config;
pub mod error;
pub mod publish;
pub mod seq;
pub mod source;
pub mod spool;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::QoS;
use throughline_shared::codec::{encode_envelope, encode_status};
use throughline_shared::{AgentStatus, Envelope, Topic, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::AgentConfig;
pub use error::Error;

use publish::mqtt::{LinkSettings, LinkStats};
use publish::Batcher;
use source::{Emitter, Sink, SourceStats};

/// Software name reported in the agent's status message.
pub const SOFTWARE: &str = concat!("throughline-edge-agent ", env!("CARGO_PKG_VERSION"));

/// Run the agent until `token` is cancelled, then stop the sources, publish
/// what they produced, mark the agent offline and disconnect.
///
/// `config_path` only names the file in error messages.
pub async fn run(config: AgentConfig, config_path: &Path, token: CancellationToken) -> Result<(), Error> {
    let password = config.password(config_path)?;
    let broker = throughline_shared::broker::BrokerUrl::parse(&config.mqtt.url)
        .map_err(|e| Error::Config { path: config_path.to_path_buf(), message: e.to_string() })?;
    let mut seq = seq::SeqStore::open(&config.state_dir)?;
    let status_topic = Topic::status(&config.site, &config.agent);
    let status = |online: bool| {
        encode_status(&AgentStatus {
            v: PROTOCOL_VERSION,
            online,
            ts: online.then(Utc::now),
            software: Some(SOFTWARE.to_string()),
            health: None,
        })
    };
    let link = LinkSettings {
        broker,
        client_id: config.mqtt.client_id.clone().unwrap_or_else(|| config.agent.to_string()),
        username: config.mqtt.username.clone(),
        password,
        keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
        reconnect_max: Duration::from_secs(config.mqtt.reconnect_max_secs.max(1)),
        status_topic: status_topic.clone(),
        birth: status(true),
        will: encode_status(&AgentStatus {
            v: PROTOCOL_VERSION,
            online: false,
            ts: None,
            software: None,
            health: None,
        }),
        tls: config.tls().map_err(|message| Error::Config { path: config_path.to_path_buf(), message })?,
    };
    tracing::info!(
        agent = %config.agent, site = %config.site, broker = %link.broker, assets = config.assets.len(),
        next_seq = seq.peek(), "edge agent starting"
    );

    let (client, eventloop) = publish::mqtt::client(&link);
    let link_stats = Arc::new(LinkStats::default());
    let link_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let link_task = tracker.spawn(publish::mqtt::drive(
        eventloop,
        client.clone(),
        link.clone(),
        link_stats.clone(),
        link_stop.clone(),
    ));

    // Sources stop on `token`; the queue closes when the last one has gone.
    let (tx, mut rx) = mpsc::channel(config.publish.queue_capacity);
    let source_stats = Arc::new(SourceStats::default());
    let health = Arc::new(source::Health::default());
    source::spawn_all(&config, &Sink::new(tx, source_stats.clone(), token.child_token()), &health, &tracker);
    let mut emitters: Vec<Emitter> =
        config.assets.iter().map(|a| Emitter::new(a.sample_interval_ms(), a.load_deadband_kw)).collect();

    let topics: Vec<String> =
        config.assets.iter().map(|a| Topic::telemetry(&config.site, &config.agent, &a.id)).collect();
    let mut batcher = Batcher::new(
        config.assets.len(),
        config.publish.max_batch_samples,
        Duration::from_millis(config.publish.max_batch_delay_ms),
    );
    let drain = Duration::from_millis(config.publish.shutdown_drain_ms);
    let mut publisher =
        Publisher { client: &client, seq: &mut seq, agent: &config.agent, topics: &topics, sent: 0 };

    loop {
        let deadline = batcher.next_deadline();
        tokio::select! {
            reading = rx.recv() => match reading {
                Some(r) => {
                    let Some(sample) = emitters[r.asset].offer(r.sample) else { continue };
                    if let Some(batch) = batcher.push(r.asset, sample, tokio::time::Instant::now()) {
                        publisher.send(batch).await?;
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                for batch in batcher.due(tokio::time::Instant::now()) {
                    publisher.send(batch).await?;
                }
            }
        }
    }

    // Shutdown: everything the sources produced goes out, bounded by `drain`.
    let started = tokio::time::Instant::now();
    let flush = async {
        for batch in batcher.drain() {
            publisher.send(batch).await?;
        }
        let _ = client.publish(status_topic.clone(), QoS::AtLeastOnce, true, status(false)).await;
        while link_stats.unacked() > 0 || !link_stats.connected.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<(), Error>(())
    };
    let flushed = tokio::time::timeout(drain, flush).await;
    let unacked = link_stats.unacked();
    let sent = publisher.sent;
    match flushed {
        Ok(r) => r?,
        Err(_) => tracing::warn!(
            unacked,
            waited_ms = drain.as_millis() as u64,
            "broker did not acknowledge everything before the shutdown deadline; those envelopes are lost (no spool in this version)"
        ),
    }
    let _ = client.try_disconnect();
    if tokio::time::timeout(Duration::from_secs(2), link_task).await.is_err() {
        link_stop.cancel();
    }
    link_stop.cancel();
    tracker.close();
    tracker.wait().await;
    let next = seq.peek();
    seq.close()?;
    tracing::info!(
        envelopes = sent,
        readings = source_stats.readings.load(Ordering::Relaxed),
        queue_full_waits = source_stats.queue_full_waits.load(Ordering::Relaxed),
        dropped_at_shutdown = source_stats.dropped_at_shutdown.load(Ordering::Relaxed),
        next_seq = next,
        shutdown_ms = started.elapsed().as_millis() as u64,
        "edge agent stopped"
    );
    Ok(())
}

struct Publisher<'a> {
    client: &'a rumqttc::AsyncClient,
    seq: &'a mut seq::SeqStore,
    agent: &'a throughline_shared::AgentId,
    topics: &'a [String],
    sent: u64,
}

impl Publisher<'_> {
    async fn send(&mut self, (asset, samples): publish::Batch) -> Result<(), Error> {
        let envelope =
            Envelope { v: PROTOCOL_VERSION, agent: self.agent.clone(), seq: self.seq.allocate()?, samples };
        let payload = encode_envelope(&envelope);
        self.client
            .publish(self.topics[asset].clone(), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| Error::Mqtt(e.to_string()))?;
        self.sent += 1;
        Ok(())
    }
}
