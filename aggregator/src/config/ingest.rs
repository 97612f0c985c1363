//! `[ingest]`: limits on what is accepted, and how live state reads the
//! samples (rate window, counter resets, implausible steps, sequence
//! window) and asks agents to resend what a broker lost; builds the
//! decoder's [`Limits`], live state's [`StateSettings`] and the
//! [`ResendSettings`].

use serde::Deserialize;
use throughline_shared::Limits;

use crate::resend::ResendSettings;
use crate::state::StateSettings;

/// Ingest limits and live-state settings.
#[derive(Debug, Clone, Deserialize)]
pub struct IngestConfig {
    /// Window over which an asset's output rate is computed, in seconds.
    #[serde(default = "default_rate_window")]
    pub rate_window_secs: u64,
    /// How far ahead of this server's clock a sample's `ts` may be, in seconds.
    #[serde(default = "default_max_future")]
    pub max_future_secs: i64,
    /// How far behind this server's clock a sample's `ts` may be, in
    /// seconds: longer than an agent's spool holds (a backlog replayed after
    /// an outage must pass), short enough to refuse a clock that was never
    /// set (a Pi without a clock battery says 1970 until NTP).
    #[serde(default = "default_max_past")]
    pub max_past_secs: i64,
    /// Largest forward or backward jump of an agent's `seq` still taken as
    /// the same numbering; a larger one starts a new epoch (nothing counted
    /// as missing). Above the most envelopes a device delivers out of order.
    #[serde(default = "default_max_seq_jump")]
    pub max_seq_jump: u64,
    /// Largest accepted message, in bytes.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// An output counter lower than its last good reading is a reset (a
    /// restart from zero) only when it is at most this share of it; any
    /// other dip is a glitch and adds no output. 0 < f < 1.
    #[serde(default = "default_counter_reset_fraction")]
    pub counter_reset_fraction: f64,
    /// Seconds between two resend requests for one missing `seq` range,
    /// and after the last before the range is reported lost. 0: agents are
    /// never asked and gaps stay missing (nothing is reported lost).
    #[serde(default = "default_resend_interval")]
    pub resend_interval_secs: u64,
    /// Resend requests for one range, while its agent is online and not
    /// answering, before it is reported lost.
    #[serde(default = "default_resend_attempts")]
    pub resend_attempts: u32,
    /// A registered asset's output step larger than its rated capacity
    /// could make since the last good reading (taken as at least 60 s),
    /// times this, is implausible: no output, the last good reading stays
    /// the base; three readings in a row at such a new level make it the
    /// base. >= 1.
    #[serde(default = "default_implausible_step_factor")]
    pub implausible_step_factor: f64,
    /// Most agents that no registration names (no asset's `agents`, no
    /// embedded broker login), and most unregistered assets, kept; telemetry
    /// or a status that would add one more is refused as
    /// `unregistered_limit`. Bounds what a flood of made-up ids costs.
    #[serde(default = "default_max_unregistered")]
    pub max_unregistered: usize,
    /// An agent that no registration names and that reports no registered
    /// asset gets no `offline` alert once silent this long (its open one
    /// resolves), in seconds.
    #[serde(default = "default_unregistered_expiry")]
    pub unregistered_offline_expiry_secs: u64,
}

fn default_rate_window() -> u64 {
    300
}
fn default_max_future() -> i64 {
    300
}
fn default_max_past() -> i64 {
    30 * 86_400
}
fn default_max_seq_jump() -> u64 {
    throughline_core::state::DEFAULT_MAX_SEQ_JUMP
}
/// 100 years: more is not a tolerance, and would overflow the clock arithmetic.
const MAX_PAST_SECS_LIMIT: i64 = 36_500 * 86_400;
fn default_max_payload() -> usize {
    256 * 1024
}
fn default_counter_reset_fraction() -> f64 {
    StateSettings::DEFAULT_COUNTER_RESET_FRACTION
}
fn default_resend_interval() -> u64 {
    ResendSettings::DEFAULT_INTERVAL.as_secs()
}
fn default_resend_attempts() -> u32 {
    ResendSettings::DEFAULT_ATTEMPTS
}
fn default_max_unregistered() -> usize {
    1000
}
fn default_unregistered_expiry() -> u64 {
    throughline_core::state::DEFAULT_UNREGISTERED_EXPIRY_SECS as u64
}
fn default_implausible_step_factor() -> f64 {
    StateSettings::DEFAULT_IMPLAUSIBLE_STEP_FACTOR
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            rate_window_secs: default_rate_window(),
            max_future_secs: default_max_future(),
            max_past_secs: default_max_past(),
            max_seq_jump: default_max_seq_jump(),
            max_payload_bytes: default_max_payload(),
            counter_reset_fraction: default_counter_reset_fraction(),
            resend_interval_secs: default_resend_interval(),
            resend_attempts: default_resend_attempts(),
            implausible_step_factor: default_implausible_step_factor(),
            max_unregistered: default_max_unregistered(),
            unregistered_offline_expiry_secs: default_unregistered_expiry(),
        }
    }
}

impl IngestConfig {
    /// Report every problem under `ingest`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.rate_window_secs < 10 {
            problems.push("ingest.rate_window_secs: must be at least 10".into());
        }
        if self.max_future_secs < 0 {
            problems.push("ingest.max_future_secs: must not be negative".into());
        }
        if !(1..=MAX_PAST_SECS_LIMIT).contains(&self.max_past_secs) {
            problems.push(format!(
                "ingest.max_past_secs: must be between 1 and {MAX_PAST_SECS_LIMIT} (100 years)"
            ));
        }
        if self.max_seq_jump == 0 {
            problems.push("ingest.max_seq_jump: must be at least 1".into());
        }
        if self.unregistered_offline_expiry_secs > 100 * 365 * 86_400 {
            problems.push("ingest.unregistered_offline_expiry_secs: at most 100 years".into());
        }
        if self.max_payload_bytes < 1024 {
            problems.push("ingest.max_payload_bytes: must be at least 1024".into());
        }
        let f = self.counter_reset_fraction;
        if !(f > 0.0 && f < 1.0) {
            problems.push(format!(
                "ingest.counter_reset_fraction: must be above 0 and below 1 (got {f}): a counter that \
                 falls to at most this share of its last reading is a reset, e.g. 0.01"
            ));
        }
        let k = self.implausible_step_factor;
        if !(k.is_finite() && k >= 1.0) {
            problems.push(format!(
                "ingest.implausible_step_factor: must be a number >= 1 (got {k}): a counter step above \
                 this many times what the rated capacity makes in the time is refused, e.g. 10"
            ));
        }
        if self.resend_interval_secs > 3600 {
            problems.push(
                "ingest.resend_interval_secs: must be at most 3600 (0 turns resend requests off)".into(),
            );
        }
        if !(1..=100).contains(&self.resend_attempts) {
            problems.push("ingest.resend_attempts: must be between 1 and 100".into());
        }
    }

    /// How agents are asked to resend; `None` when they are not.
    pub fn resend(&self) -> Option<ResendSettings> {
        (self.resend_interval_secs > 0).then(|| ResendSettings {
            interval: std::time::Duration::from_secs(self.resend_interval_secs),
            attempts: self.resend_attempts,
            ..ResendSettings::default()
        })
    }

    /// What the decoder accepts (the sample count per envelope is fixed).
    pub fn limits(&self) -> Limits {
        Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_samples: Limits::default().max_samples,
            max_future: chrono::Duration::seconds(self.max_future_secs),
            max_past: chrono::Duration::seconds(self.max_past_secs),
        }
    }

    /// The live state's rate window.
    pub fn rate_window(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.rate_window_secs as i64)
    }

    /// How live state reads the samples.
    pub fn state_settings(&self) -> StateSettings {
        StateSettings {
            rate_window: self.rate_window(),
            counter_reset_fraction: self.counter_reset_fraction,
            implausible_step_factor: self.implausible_step_factor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_and_limits() {
        let mut p = Vec::new();
        IngestConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let c = IngestConfig {
            rate_window_secs: 9,
            max_future_secs: -1,
            max_past_secs: 0,
            max_seq_jump: 0,
            max_payload_bytes: 1023,
            counter_reset_fraction: 1.0,
            resend_interval_secs: 3601,
            resend_attempts: 0,
            implausible_step_factor: 0.5,
            max_unregistered: 0,
            unregistered_offline_expiry_secs: 0,
        };
        c.validate(&mut p);
        assert_eq!(
            p,
            [
                "ingest.rate_window_secs: must be at least 10",
                "ingest.max_future_secs: must not be negative",
                "ingest.max_past_secs: must be between 1 and 3153600000 (100 years)",
                "ingest.max_seq_jump: must be at least 1",
                "ingest.max_payload_bytes: must be at least 1024",
                "ingest.counter_reset_fraction: must be above 0 and below 1 (got 1): a counter that falls \
                 to at most this share of its last reading is a reset, e.g. 0.01",
                "ingest.implausible_step_factor: must be a number >= 1 (got 0.5): a counter step above this \
                 many times what the rated capacity makes in the time is refused, e.g. 10",
                "ingest.resend_interval_secs: must be at most 3600 (0 turns resend requests off)",
                "ingest.resend_attempts: must be between 1 and 100",
            ]
        );
        let r = IngestConfig::default().resend().unwrap();
        assert_eq!((r.interval, r.attempts), (std::time::Duration::from_secs(10), 3));
        assert_eq!(IngestConfig { resend_interval_secs: 0, ..IngestConfig::default() }.resend(), None);
        for bad in [0.0, -0.5, f64::NAN] {
            let mut p = Vec::new();
            IngestConfig { counter_reset_fraction: bad, ..IngestConfig::default() }.validate(&mut p);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].starts_with("ingest.counter_reset_fraction: "), "{p:?}");
        }
        for bad in [f64::INFINITY, f64::NAN, 0.99] {
            let mut p = Vec::new();
            IngestConfig { implausible_step_factor: bad, ..IngestConfig::default() }.validate(&mut p);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].starts_with("ingest.implausible_step_factor: "), "{p:?}");
        }
        let mut p = Vec::new();
        IngestConfig { implausible_step_factor: 1.0, ..IngestConfig::default() }.validate(&mut p);
        assert!(p.is_empty(), "1 is the least: {p:?}");
        let s = IngestConfig {
            counter_reset_fraction: 0.05,
            implausible_step_factor: 25.0,
            ..IngestConfig::default()
        }
        .state_settings();
        assert_eq!(
            (s.rate_window, s.counter_reset_fraction, s.implausible_step_factor),
            (chrono::Duration::minutes(5), 0.05, 25.0)
        );
        let d = IngestConfig::default().state_settings();
        assert_eq!((d.counter_reset_fraction, d.implausible_step_factor), (0.01, 10.0));
        let mut p = Vec::new();
        IngestConfig { max_past_secs: MAX_PAST_SECS_LIMIT + 1, ..IngestConfig::default() }.validate(&mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        let l = IngestConfig { max_future_secs: 60, ..IngestConfig::default() }.limits();
        assert_eq!((l.max_payload_bytes, l.max_future), (256 * 1024, chrono::Duration::seconds(60)));
        assert_eq!(l.max_past, chrono::Duration::days(30), "the default");
        assert_eq!(
            IngestConfig { max_past_secs: 3600, ..IngestConfig::default() }.limits().max_past,
            chrono::Duration::hours(1)
        );
        assert_eq!(IngestConfig::default().max_seq_jump, 1_000_000);
        assert_eq!(l.max_samples, Limits::default().max_samples);
        assert_eq!(IngestConfig::default().rate_window(), chrono::Duration::minutes(5));
    }
}
