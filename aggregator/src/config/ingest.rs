//! `[ingest]`: limits on what is accepted, and the live rate window; builds
//! the decoder's [`Limits`].

use serde::Deserialize;
use throughline_shared::Limits;

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

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            rate_window_secs: default_rate_window(),
            max_future_secs: default_max_future(),
            max_payload_bytes: default_max_payload(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_and_limits() {
        let mut p = Vec::new();
        IngestConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let c = IngestConfig { rate_window_secs: 9, max_future_secs: -1, max_payload_bytes: 1023 };
        c.validate(&mut p);
        assert_eq!(
            p,
            [
                "ingest.rate_window_secs: must be at least 10",
                "ingest.max_future_secs: must not be negative",
                "ingest.max_payload_bytes: must be at least 1024",
            ]
        );
        let l = IngestConfig { max_future_secs: 60, ..IngestConfig::default() }.limits();
        assert_eq!((l.max_payload_bytes, l.max_future), (256 * 1024, chrono::Duration::seconds(60)));
        assert_eq!(l.max_samples, Limits::default().max_samples);
        assert_eq!(IngestConfig::default().rate_window(), chrono::Duration::minutes(5));
    }
}
