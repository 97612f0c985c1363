//! `[planning]`: how live capacity is projected and how often alerts are
//! evaluated; builds the projection [`Windows`].

use std::time::Duration;

use serde::Deserialize;

use crate::projection::Windows;

/// How live capacity is projected.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanningConfig {
    /// Window for an asset's rate while running (minutes of event time).
    #[serde(default = "default_rate_minutes")]
    pub rate_window_minutes: u32,
    /// Window for measured availability: running / (running + down).
    #[serde(default = "default_availability_hours")]
    pub availability_window_hours: u32,
    /// Closed buckets are judged (`forecast_deviation`) while they end
    /// within this many hours of event time. The per-minute history kept in
    /// memory is only what projections need ([`PlanningConfig::memory`]);
    /// older parts of a bucket are read from the store.
    #[serde(default = "default_history_hours")]
    pub history_hours: u32,
    /// How often alerts are evaluated, in milliseconds.
    #[serde(default = "default_eval_ms")]
    pub evaluate_every_ms: u64,
    /// How long a capable-to-promise quote holds its reservation, in hours.
    #[serde(default = "default_quote_hours")]
    pub quote_valid_hours: u32,
}

fn default_rate_minutes() -> u32 {
    15
}
fn default_availability_hours() -> u32 {
    8
}
fn default_history_hours() -> u32 {
    48
}
fn default_eval_ms() -> u64 {
    1000
}
fn default_quote_hours() -> u32 {
    24
}

impl Default for PlanningConfig {
    fn default() -> Self {
        PlanningConfig {
            rate_window_minutes: default_rate_minutes(),
            availability_window_hours: default_availability_hours(),
            history_hours: default_history_hours(),
            evaluate_every_ms: default_eval_ms(),
            quote_valid_hours: default_quote_hours(),
        }
    }
}

impl PlanningConfig {
    /// Report every problem under `planning`.
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.rate_window_minutes == 0 || self.availability_window_hours == 0 {
            p.push("planning: rate_window_minutes and availability_window_hours must be > 0".into());
        }
        if self.history_hours < 2 {
            p.push("planning.history_hours: must be at least 2".into());
        }
    }

    /// The projection's windows.
    pub fn windows(&self) -> Windows {
        Windows {
            rate: chrono::Duration::minutes(i64::from(self.rate_window_minutes)),
            availability: chrono::Duration::hours(i64::from(self.availability_window_hours)),
            history: self.history(),
        }
    }

    /// How far back closed buckets are judged.
    pub fn history(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.history_hours))
    }

    /// The per-minute history live state keeps in memory per asset: the
    /// longer of the rate and availability windows and an hour more, at
    /// most [`PlanningConfig::history`] (9 h with the defaults). What a
    /// bucket needs from before it comes from the store.
    pub fn memory(&self) -> chrono::Duration {
        let w = self.windows();
        (w.rate.max(w.availability) + chrono::Duration::hours(1)).min(self.history())
    }

    /// How often the alert task evaluates (at least every 100 ms).
    pub fn evaluate_every(&self) -> Duration {
        Duration::from_millis(self.evaluate_every_ms.max(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_and_windows() {
        let mut p = Vec::new();
        PlanningConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(PlanningConfig::default().memory(), chrono::Duration::hours(9));
        let short = PlanningConfig { history_hours: 2, ..PlanningConfig::default() };
        assert_eq!(short.memory(), chrono::Duration::hours(2), "never more than the judging window");
        let c =
            PlanningConfig { availability_window_hours: 0, history_hours: 1, ..PlanningConfig::default() };
        c.validate(&mut p);
        assert_eq!(
            p,
            [
                "planning: rate_window_minutes and availability_window_hours must be > 0",
                "planning.history_hours: must be at least 2",
            ]
        );
        let w = PlanningConfig::default().windows();
        assert_eq!(
            (w.rate, w.availability, w.history),
            (chrono::Duration::minutes(15), chrono::Duration::hours(8), chrono::Duration::hours(48))
        );
        let fast = PlanningConfig { evaluate_every_ms: 10, ..PlanningConfig::default() };
        assert_eq!(fast.evaluate_every(), Duration::from_millis(100));
    }
}
