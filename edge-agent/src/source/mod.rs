//! Sources of readings. Each source runs as its own task (a Modbus device
//! task serves all the assets on that device) and sends `(asset index,
//! Sample)` into the publisher's bounded queue through a [`Sink`]; when the
//! queue is full the source waits (block policy) and the wait is counted.
//!
//! Sources report their health (ok, or the last error) to [`Health`]; the
//! agent's status message carries it, and a change of health is logged once,
//! not at every poll.
//!
//! Between the queue and the batcher each asset's readings pass an
//! [`Emitter`]: state and reason changes go on at once, other readings at
//! most every `sample_interval_ms`, earlier only when the load moved by more
//! than `load_deadband_kw`.

pub mod command;
pub mod modbus;
pub mod simulator;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::Deserialize;
use throughline_shared::{AssetId, Sample};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use command::CommandConfig;
use modbus::{ModbusAsset, ModbusDevice};
use simulator::SimulatorConfig;

/// One asset served by this agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// Asset id, unique within the site.
    pub id: AssetId,
    /// Publish a reading at most this often (ms) while nothing changes;
    /// state and reason changes go out at once. Default: every reading for
    /// the simulator, 1000 ms for Modbus and command sources.
    pub sample_interval_ms: Option<u64>,
    /// Publish early when the load moved by more than this many kW since
    /// the last published reading. Default: load changes alone wait for
    /// the interval.
    pub load_deadband_kw: Option<f64>,
    /// Where its readings come from.
    pub source: SourceConfig,
}

impl AssetConfig {
    /// The effective `sample_interval_ms`.
    pub fn sample_interval_ms(&self) -> u64 {
        self.sample_interval_ms.unwrap_or(match self.source {
            SourceConfig::Simulator(_) => 0,
            _ => 1000,
        })
    }
}

/// A source of readings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// Deterministic simulator for demos and tests.
    Simulator(SimulatorConfig),
    /// Registers of a Modbus TCP device (see `[[devices]]`).
    ModbusTcp(ModbusAsset),
    /// A program printing samples as JSON lines.
    Command(CommandConfig),
}

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

/// Where a source sends its readings: the bounded queue to the publisher.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<Reading>,
    stats: Arc<SourceStats>,
    token: CancellationToken,
}

impl Sink {
    pub fn new(tx: mpsc::Sender<Reading>, stats: Arc<SourceStats>, token: CancellationToken) -> Sink {
        Sink { tx, stats, token }
    }

    /// Send one reading. When the queue is full, wait for room (counted and
    /// logged); returns `false` once the agent is stopping or the queue is
    /// closed, and the source should return.
    pub async fn send(&self, asset: usize, sample: Sample) -> bool {
        if self.token.is_cancelled() {
            return false;
        }
        self.stats.readings.fetch_add(1, Ordering::Relaxed);
        let reading = match self.tx.try_send(Reading { asset, sample }) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(r)) => r,
        };
        self.stats.queue_full_waits.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(asset, "publish queue full; source waits (block policy)");
        tokio::select! {
            _ = self.token.cancelled() => {
                // Stopping: hand over the reading if there is room now.
                if self.tx.try_send(reading).is_err() {
                    self.stats.dropped_at_shutdown.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            permit = self.tx.reserve() => match permit {
                Ok(permit) => {
                    permit.send(reading);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// The agent's stop signal, for sources to `select!` on while they wait.
    pub fn stopping(&self) -> &CancellationToken {
        &self.token
    }
}

pub use throughline_shared::message::SourceHealth;

/// Health of every source. Changes wake [`Health::changed`] so the status
/// message can be republished at once.
#[derive(Debug, Default)]
pub struct Health {
    sources: Mutex<BTreeMap<String, SourceHealth>>,
    changed: Notify,
}

impl Health {
    /// Record the outcome of one poll or run of source `name`. A change
    /// between ok and failing (or to a different error) is logged once;
    /// repeats of the same error are only counted.
    pub fn report(&self, name: &str, result: Result<(), String>) {
        let mut sources = self.sources.lock().expect("health lock");
        let now = Utc::now();
        let entry = sources.entry(name.to_string()).or_insert_with(|| SourceHealth {
            name: name.to_string(),
            ok: true,
            error: None,
            errors: 0,
            since: now,
        });
        let flipped = match result {
            Ok(()) => {
                let was_failing = !entry.ok;
                if was_failing {
                    tracing::info!(source = name, "source recovered");
                    entry.ok = true;
                    entry.error = None;
                    entry.since = now;
                }
                was_failing
            }
            Err(e) => {
                entry.errors += 1;
                let new = entry.ok || entry.error.as_deref() != Some(e.as_str());
                if new {
                    tracing::warn!(source = name, error = %e, errors = entry.errors, "source failing");
                    if entry.ok {
                        entry.since = now;
                    }
                    entry.ok = false;
                    entry.error = Some(e);
                }
                new
            }
        };
        drop(sources);
        if flipped {
            self.changed.notify_one();
        }
    }

    /// Every source's health, by name.
    pub fn snapshot(&self) -> Vec<SourceHealth> {
        self.sources.lock().expect("health lock").values().cloned().collect()
    }

    /// Resolves after the next change of health.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// Per-asset filter between the queue and the batcher (see the module docs).
/// Works on the samples' own timestamps, so it is deterministic.
#[derive(Debug)]
pub struct Emitter {
    interval_ms: i64,
    deadband_kw: Option<f64>,
    last: Option<Sample>,
}

impl Emitter {
    /// `interval_ms` 0 lets every reading through.
    pub fn new(interval_ms: u64, deadband_kw: Option<f64>) -> Emitter {
        Emitter { interval_ms: interval_ms as i64, deadband_kw, last: None }
    }

    /// The sample to publish, or `None` when this reading adds nothing yet.
    pub fn offer(&mut self, sample: Sample) -> Option<Sample> {
        let emit = match &self.last {
            None => true,
            Some(last) => {
                self.interval_ms == 0
                    || sample.state != last.state
                    || sample.reason != last.reason
                    || (sample.ts - last.ts).num_milliseconds() >= self.interval_ms
                    || match (self.deadband_kw, sample.load_kw, last.load_kw) {
                        (Some(band), Some(now), Some(before)) => (now - before).abs() > band,
                        (Some(_), Some(_), None) | (Some(_), None, Some(_)) => true,
                        _ => false,
                    }
                    // A counter that went backwards (reset) is news too.
                    || matches!((sample.output, last.output), (Some(now), Some(before)) if now < before)
                    // So is a clock that stepped back (NTP correcting a fast
                    // clock): measured from the last reading's later time,
                    // nothing would pass until the clock caught up with it.
                    || sample.ts < last.ts
            }
        };
        if emit {
            self.last = Some(sample.clone());
            Some(sample)
        } else {
            None
        }
    }
}

/// What [`spawn_all`] starts: the assets and the Modbus devices they read
/// from. The agent's config converts into this (`From<&AgentConfig>`), so
/// this module needs nothing from `config`.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub assets: &'a [AssetConfig],
    pub devices: &'a [ModbusDevice],
}

/// Start every source of `config`: one task per simulator or command asset,
/// one task per Modbus device for all its assets.
pub fn spawn_all<'a>(
    config: impl Into<Sources<'a>>,
    sink: &Sink,
    health: &Arc<Health>,
    tracker: &TaskTracker,
) {
    let config = config.into();
    let mut devices: BTreeMap<String, Vec<(usize, ModbusAsset)>> = BTreeMap::new();
    for (i, asset) in config.assets.iter().enumerate() {
        match &asset.source {
            SourceConfig::Simulator(c) => {
                tracker.spawn(simulator::run(i, c.clone(), sink.clone()));
            }
            SourceConfig::Command(c) => {
                tracker.spawn(command::run(i, asset.id.to_string(), c.clone(), sink.clone(), health.clone()));
            }
            SourceConfig::ModbusTcp(c) => devices.entry(c.device.clone()).or_default().push((i, c.clone())),
        }
    }
    for (device, assets) in devices {
        let device = config.devices.iter().find(|d| d.id == device).cloned().expect("validated device");
        tracker.spawn(modbus::run_device(device, assets, sink.clone(), health.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use throughline_shared::AssetState;

    fn at(s: i64, state: AssetState, load: f64) -> Sample {
        Sample {
            state: Some(state),
            load_kw: Some(load),
            output: Some(s as f64),
            ..Sample::at(DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap())
        }
    }

    #[test]
    fn emitter_passes_changes_at_once_and_the_rest_per_interval() {
        let mut e = Emitter::new(5_000, Some(2.0));
        let run = AssetState::Running;
        assert!(e.offer(at(0, run, 10.0)).is_some(), "first reading");
        assert!(e.offer(at(1, run, 11.0)).is_none(), "inside the deadband");
        assert!(e.offer(at(2, run, 12.5)).is_some(), "load moved 2.5 kW > 2");
        assert!(e.offer(at(3, run, 12.0)).is_none());
        assert!(e.offer(at(4, AssetState::Down, 12.0)).is_some(), "state change");
        assert!(e.offer(at(8, AssetState::Down, 12.0)).is_none());
        assert!(e.offer(at(9, AssetState::Down, 12.0)).is_some(), "interval of 5 s reached");
        let mut every = Emitter::new(0, None);
        assert!((0..5).all(|s| every.offer(at(s, run, 1.0)).is_some()));
    }

    #[test]
    fn a_clock_stepping_back_does_not_hold_readings_back() {
        // A 240 s fast clock corrected, the counter going on: with a 1 s
        // interval the readings after the step go out at once and then per
        // interval, not only once the clock has caught up 240 s later.
        let mut e = Emitter::new(1_000, None);
        let reading = |ts: i64, n: f64| Sample { output: Some(n), ..at(ts, AssetState::Running, 1.0) };
        assert!(e.offer(reading(240, 0.0)).is_some());
        assert!(e.offer(reading(241, 1.0)).is_some());
        assert!(e.offer(reading(2, 2.0)).is_some(), "the first reading after the step");
        let passed = (3..60).filter(|&s| e.offer(reading(s, s as f64)).is_some()).count();
        assert_eq!(passed, 57, "every later reading at the 1 s interval");
    }

    #[test]
    fn health_logs_flips_and_counts_repeats() {
        let h = Health::default();
        h.report("modbus:plc-1", Ok(()));
        h.report("modbus:plc-1", Err("timeout".into()));
        h.report("modbus:plc-1", Err("timeout".into()));
        let s = h.snapshot();
        assert_eq!((s[0].ok, s[0].errors, s[0].error.as_deref()), (false, 2, Some("timeout")));
        h.report("modbus:plc-1", Ok(()));
        assert!(h.snapshot()[0].ok);
    }
}
