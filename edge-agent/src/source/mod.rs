//! Sources of readings. Each source runs as its own task and sends
//! `(asset index, Sample)` into the publisher's bounded queue; when the queue
//! is full the source waits (block policy) and the wait is counted.

pub mod simulator;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use throughline_shared::Sample;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SourceConfig;

/// A reading of asset number `asset` (its index in the config).
#[derive(Debug)]
pub struct Reading {
    pub asset: usize,
    pub sample: Sample,
}

/// Counters shared by all sources.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Readings produced.
    pub readings: AtomicU64,
    /// Times a source found the queue full and had to wait.
    pub queue_full_waits: AtomicU64,
    /// Readings a source still held when asked to stop with the queue full.
    pub dropped_at_shutdown: AtomicU64,
}

/// Run one asset's source until `token` is cancelled.
pub async fn run(
    asset: usize,
    config: SourceConfig,
    tx: mpsc::Sender<Reading>,
    stats: Arc<SourceStats>,
    token: CancellationToken,
) {
    match config {
        SourceConfig::Simulator(c) => {
            let mut sim = simulator::Simulator::new(c);
            let mut ticks = tokio::time::interval(sim.interval());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let reading = Reading { asset, sample: sim.next_sample(Utc::now()) };
                stats.readings.fetch_add(1, Ordering::Relaxed);
                let reading = match tx.try_send(reading) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    Err(mpsc::error::TrySendError::Full(r)) => r,
                };
                stats.queue_full_waits.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(asset, "publish queue full; source waits (block policy)");
                tokio::select! {
                    _ = token.cancelled() => {
                        // Stopping: hand over the reading if there is room now.
                        if tx.try_send(reading).is_err() {
                            stats.dropped_at_shutdown.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                    permit = tx.reserve() => match permit {
                        Ok(permit) => permit.send(reading),
                        Err(_) => return,
                    },
                }
            }
        }
    }
}
