//! `[ingest]`: limits on what is accepted, and how live state reads the
//! samples (rate window, counter resets); builds the decoder's [`Limits`]
//! and live state's [`StateSettings`].

use serde::Deserialize;
use throughline_shared::Limits;

use crate::state::StateSettings;

/// Ingest limits and live-state settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Window over which an asset's output rate is computed, in seconds.
    #[serde(default = "default_rate_window")]
    pub rate_window_secs: u64,
    /// How far ahead of this server's clock a sample's `ts` may be, in seconds.
    #[serde(default = "default_max_future")]
    pub max_future_secs: i64,
    /// Largest accepted message, in bytes.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// An output counter lower than its last good reading is a reset (a
    /// restart from zero) only when it is at most this share of it; any
    /// other dip is a glitch and adds no output. 0 < f < 1.
    #[serde(default = "default_counter_reset_fraction")]
    pub counter_reset_fraction: f64,
}

fn default_rate_window() -> u64 {
    300
}
fn default_max_future() -> i64 {
    300
}
fn default_max_payload() -> usize {
    256 * 1024
}
fn default_counter_reset_fraction() -> f64 {
    StateSettings::DEFAULT_COUNTER_RESET_FRACTION
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            rate_window_secs: default_rate_window(),
            max_future_secs: default_max_future(),
            max_payload_bytes: default_max_payload(),
            counter_reset_fraction: default_counter_reset_fraction(),
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
    }

    /// What the decoder accepts (the sample count per envelope is fixed).
    pub fn limits(&self) -> Limits {
        Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_samples: Limits::default().max_samples,
            max_future: chrono::Duration::seconds(self.max_future_secs),
        }
    }

    /// The live state's rate window.
    pub fn rate_window(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.rate_window_secs as i64)
    }

    /// How live state reads the samples.
    pub fn state_settings(&self) -> StateSettings {
        StateSettings { rate_window: self.rate_window(), counter_reset_fraction: self.counter_reset_fraction }
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
            max_payload_bytes: 1023,
            counter_reset_fraction: 1.0,
        };
        c.validate(&mut p);
        assert_eq!(
            p,
            [
                "ingest.rate_window_secs: must be at least 10",
                "ingest.max_future_secs: must not be negative",
                "ingest.max_payload_bytes: must be at least 1024",
                "ingest.counter_reset_fraction: must be above 0 and below 1 (got 1): a counter that falls \
                 to at most this share of its last reading is a reset, e.g. 0.01",
            ]
        );
        for bad in [0.0, -0.5, f64::NAN] {
            let mut p = Vec::new();
            IngestConfig { counter_reset_fraction: bad, ..IngestConfig::default() }.validate(&mut p);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].starts_with("ingest.counter_reset_fraction: "), "{p:?}");
        }
        let s = IngestConfig { counter_reset_fraction: 0.05, ..IngestConfig::default() }.state_settings();
        assert_eq!((s.rate_window, s.counter_reset_fraction), (chrono::Duration::minutes(5), 0.05));
        assert_eq!(IngestConfig::default().state_settings().counter_reset_fraction, 0.01);
        let l = IngestConfig { max_future_secs: 60, ..IngestConfig::default() }.limits();
        assert_eq!((l.max_payload_bytes, l.max_future), (256 * 1024, chrono::Duration::seconds(60)));
        assert_eq!(l.max_samples, Limits::default().max_samples);
        assert_eq!(IngestConfig::default().rate_window(), chrono::Duration::minutes(5));
    }
}
