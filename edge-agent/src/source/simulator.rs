//! Deterministic simulator. Readings depend only on the seed, the settings and
//! the tick number, never on the wall clock, so demos and tests reproduce:
//! tick `n` of a given configuration always yields the same values. Only the
//! timestamp (`ts`) comes from the caller.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use throughline_shared::{AssetState, Sample};

use crate::source::Sink;

/// What the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimProfile {
    /// A production line: output in pieces at `rate_per_hour`.
    Line,
    /// A feeder: load following a daily-like curve, output in kWh.
    Feeder,
}

/// Simulator settings. The same seed and settings give the same sequence of
/// readings, tick by tick.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    pub profile: SimProfile,
    /// Seed of the random jitter.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Time between readings, in milliseconds.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Line: pieces per hour at full speed.
    #[serde(default)]
    pub rate_per_hour: f64,
    /// Line: electrical load while running (optional; idle draws 10 %).
    pub running_load_kw: Option<f64>,
    /// Feeder: load at the bottom of the curve, kW.
    #[serde(default)]
    pub base_kw: f64,
    /// Feeder: load at the top of the curve, kW.
    #[serde(default)]
    pub peak_kw: f64,
    /// Feeder: length of one load cycle in seconds (86400 for a real day;
    /// shorter for demos).
    #[serde(default = "default_period")]
    pub period_s: u64,
    /// Random variation of rate and load, in percent (+/-).
    #[serde(default = "default_jitter")]
    pub jitter_pct: f64,
    /// Output counter at start.
    #[serde(default)]
    pub start_output: f64,
    /// Scripted episodes, in seconds since the agent started.
    #[serde(default)]
    pub episodes: Vec<Episode>,
}

fn default_seed() -> u64 {
    1
}
fn default_interval() -> u64 {
    1000
}
fn default_period() -> u64 {
    86_400
}
fn default_jitter() -> f64 {
    2.0
}

/// A scripted episode: a stop with a state and reason, or a slowdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Episode {
    /// Start, in seconds after the agent started.
    pub start_s: u64,
    /// Length in seconds.
    pub duration_s: u64,
    /// State during the episode (`down`, `setup`, `maintenance`, `idle`).
    pub state: Option<AssetState>,
    /// Reason code reported during the episode (e.g. `jam`).
    pub reason: Option<String>,
    /// Running, but this many percent slower.
    pub slowdown_pct: Option<f64>,
}

impl SimulatorConfig {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.interval_ms < 10 {
            p.push(format!("{key}.interval_ms: must be at least 10"));
        }
        match self.profile {
            SimProfile::Line if self.rate_per_hour.is_nan() || self.rate_per_hour <= 0.0 => {
                p.push(format!("{key}.rate_per_hour: must be > 0 for a line"))
            }
            SimProfile::Feeder
                if !(self.peak_kw >= self.base_kw && self.base_kw >= 0.0 && self.peak_kw > 0.0) =>
            {
                p.push(format!("{key}: feeder needs 0 <= base_kw <= peak_kw and peak_kw > 0"))
            }
            SimProfile::Feeder if self.period_s == 0 => p.push(format!("{key}.period_s: must be > 0")),
            _ => {}
        }
        if !(0.0..=50.0).contains(&self.jitter_pct) {
            p.push(format!("{key}.jitter_pct: must be 0..=50"));
        }
        for (j, e) in self.episodes.iter().enumerate() {
            let ek = format!("{key}.episodes[{j}]");
            match (e.state, e.slowdown_pct) {
                (None, None) => p.push(format!("{ek}: set `state` or `slowdown_pct`")),
                (Some(_), Some(_)) => p.push(format!("{ek}: set only one of `state` and `slowdown_pct`")),
                (Some(AssetState::Running), _) => {
                    p.push(format!("{ek}.state: an episode is a stop, not `running`"))
                }
                (None, Some(pct)) if !(0.0..=100.0).contains(&pct) => {
                    p.push(format!("{ek}.slowdown_pct: must be 0..=100"))
                }
                _ => {}
            }
            if let Some(r) = &e.reason {
                if r.chars().count() > throughline_shared::message::MAX_REASON_LEN {
                    p.push(format!("{ek}.reason: longer than 64 characters"));
                }
            }
        }
        p
    }
}

/// Run one simulated asset until the agent stops.
pub async fn run(asset: usize, config: SimulatorConfig, sink: Sink) {
    let mut sim = Simulator::new(config);
    let mut ticks = tokio::time::interval(sim.interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sink.stopping().cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !sink.send(asset, sim.next_sample(Utc::now())).await {
            return;
        }
    }
}

/// Simulator state for one asset.
#[derive(Debug)]
pub struct Simulator {
    config: SimulatorConfig,
    rng: fastrand::Rng,
    tick: u64,
    output: f64,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Simulator {
        let rng = fastrand::Rng::with_seed(config.seed);
        let output = config.start_output;
        Simulator { config, rng, tick: 0, output }
    }

    /// Time between readings.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.config.interval_ms)
    }

    /// The reading of the next tick, stamped `ts`.
    pub fn next_sample(&mut self, ts: DateTime<Utc>) -> Sample {
        let c = &self.config;
        let dt_h = c.interval_ms as f64 / 3_600_000.0;
        let elapsed_s = (self.tick * c.interval_ms) as f64 / 1000.0;
        self.tick += 1;
        let episode = c
            .episodes
            .iter()
            .find(|e| elapsed_s >= e.start_s as f64 && elapsed_s < (e.start_s + e.duration_s) as f64);
        let state = episode.and_then(|e| e.state).unwrap_or(AssetState::Running);
        let reason = episode.and_then(|e| e.reason.clone()).filter(|_| state != AssetState::Running);
        let speed = episode.and_then(|e| e.slowdown_pct).map_or(1.0, |pct| 1.0 - pct / 100.0);
        // Always draw, so the random stream does not depend on the state.
        let jitter = 1.0 + c.jitter_pct / 100.0 * (self.rng.f64() * 2.0 - 1.0);
        let running = state == AssetState::Running;

        let mut sample = Sample::at(ts);
        sample.state = Some(state);
        sample.reason = reason;
        match c.profile {
            SimProfile::Line => {
                if running {
                    self.output += c.rate_per_hour * speed * jitter * dt_h;
                }
                sample.output = Some(self.output.floor());
                sample.load_kw = c.running_load_kw.map(|kw| {
                    let kw = if running { kw * speed * jitter } else { kw * 0.1 };
                    round3(kw)
                });
            }
            SimProfile::Feeder => {
                let phase = (elapsed_s / c.period_s as f64) * std::f64::consts::TAU;
                let curve = 0.5 - 0.5 * phase.cos();
                let load = if running {
                    (c.base_kw + (c.peak_kw - c.base_kw) * curve) * speed * jitter
                } else {
                    0.0
                };
                let load = load.max(0.0);
                self.output += load * dt_h;
                sample.output = Some(round3(self.output));
                sample.load_kw = Some(round3(load));
            }
        }
        sample
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seed: u64) -> SimulatorConfig {
        SimulatorConfig {
            profile: SimProfile::Line,
            seed,
            interval_ms: 1000,
            rate_per_hour: 3600.0,
            running_load_kw: Some(40.0),
            base_kw: 0.0,
            peak_kw: 0.0,
            period_s: 86400,
            jitter_pct: 5.0,
            start_output: 100.0,
            episodes: vec![
                Episode {
                    start_s: 10,
                    duration_s: 5,
                    state: Some(AssetState::Down),
                    reason: Some("jam".into()),
                    slowdown_pct: None,
                },
                Episode { start_s: 20, duration_s: 10, state: None, reason: None, slowdown_pct: Some(50.0) },
            ],
        }
    }

    fn run(config: SimulatorConfig, n: usize) -> Vec<Sample> {
        let mut s = Simulator::new(config);
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        (0..n).map(|i| s.next_sample(t0 + chrono::Duration::seconds(i as i64))).collect()
    }

    #[test]
    fn same_seed_same_readings_different_seed_different() {
        assert_eq!(run(line(7), 60), run(line(7), 60));
        assert_ne!(run(line(7), 60), run(line(8), 60));
    }

    #[test]
    fn downtime_episode_stops_output_with_its_reason() {
        let s = run(line(1), 40);
        assert_eq!(s[9].state, Some(AssetState::Running));
        for x in &s[10..15] {
            assert_eq!(x.state, Some(AssetState::Down));
            assert_eq!(x.reason.as_deref(), Some("jam"));
        }
        assert_eq!(s[10].output, s[14].output, "no output while down");
        assert_eq!(s[15].state, Some(AssetState::Running));
        assert_eq!(s[15].reason, None);
        // About one piece a second at full speed, about half during the slowdown.
        let full = s[9].output.unwrap() - s[0].output.unwrap();
        let slow = s[29].output.unwrap() - s[20].output.unwrap();
        assert!((8.0..=10.0).contains(&full), "{full}");
        assert!((3.0..=6.0).contains(&slow), "{slow}");
        assert!(s.windows(2).all(|w| w[1].output >= w[0].output), "counter never decreases");
    }

    #[test]
    fn feeder_follows_its_curve_and_integrates_energy() {
        let c = SimulatorConfig {
            profile: SimProfile::Feeder,
            base_kw: 100.0,
            peak_kw: 300.0,
            period_s: 100,
            jitter_pct: 0.0,
            running_load_kw: None,
            episodes: vec![],
            start_output: 0.0,
            ..line(3)
        };
        let s = run(c, 101);
        assert_eq!(s[0].load_kw, Some(100.0));
        assert_eq!(s[50].load_kw, Some(300.0));
        // Mean load 200 kW over 100 s = 5.556 kWh.
        let kwh = s[100].output.unwrap();
        assert!((kwh - 5.556).abs() < 0.05, "{kwh}");
    }
}
