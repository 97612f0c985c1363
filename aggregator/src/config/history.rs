//! `[history]`: the embedded per-minute history; builds the rollup writer
//! ([`Rollups`]).

use std::time::Duration;

use serde::Deserialize;

use crate::service::history::Rollups;

/// Embedded history: per-asset, per-minute rollups written to the SQLite
/// store in batches, served by `/api/v1/assets/{site}/{asset}/history`.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryConfig {
    /// How often changed minutes and live state are committed (a
    /// checkpoint), in seconds. A crash loses none of it (the journal holds
    /// every message acknowledged since); a restart replays at most this
    /// much of the journal.
    #[serde(default = "default_flush_secs")]
    pub flush_secs: u64,
    /// How often the ingest journal is forced to the device, in ms: a power
    /// cut (not a crash) can lose at most this much acknowledged telemetry.
    #[serde(default = "default_journal_fsync_ms")]
    pub journal_fsync_ms: u64,
    /// Rollups older than this many days (by the server clock) are deleted,
    /// once an hour and at start.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Hourly rollups (the sums of each hour's minutes) are kept this many
    /// days: old months and quarters stay readable, at 1/60 of the rows.
    #[serde(default = "default_hourly_retention_days")]
    pub hourly_retention_days: u32,
}

fn default_flush_secs() -> u64 {
    10
}
fn default_retention_days() -> u32 {
    90
}
fn default_hourly_retention_days() -> u32 {
    800
}
fn default_journal_fsync_ms() -> u64 {
    1000
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            flush_secs: default_flush_secs(),
            retention_days: default_retention_days(),
            hourly_retention_days: default_hourly_retention_days(),
            journal_fsync_ms: default_journal_fsync_ms(),
        }
    }
}

impl HistoryConfig {
    /// Report every problem under `history`.
    pub fn validate(&self, p: &mut Vec<String>) {
        if !(1..=3600).contains(&self.flush_secs) {
            p.push(format!("history.flush_secs: must be between 1 and 3600, found {}", self.flush_secs));
        }
        if !(1..=36_500).contains(&self.retention_days) {
            p.push(format!(
                "history.retention_days: must be between 1 and 36500, found {}",
                self.retention_days
            ));
        }
        if self.hourly_retention_days < self.retention_days || self.hourly_retention_days > 36_500 {
            p.push(format!(
                "history.hourly_retention_days: must be between history.retention_days ({}) and 36500, found {}",
                self.retention_days, self.hourly_retention_days
            ));
        }
        if !(1..=60_000).contains(&self.journal_fsync_ms) {
            p.push(format!(
                "history.journal_fsync_ms: must be between 1 and 60000, found {}",
                self.journal_fsync_ms
            ));
        }
    }

    /// How often the journal is synced.
    pub fn journal_fsync(&self) -> Duration {
        Duration::from_millis(self.journal_fsync_ms.max(1))
    }

    /// The rollup writer.
    pub fn build(&self) -> Rollups {
        Rollups::new(
            chrono::Duration::days(i64::from(self.retention_days)),
            chrono::Duration::days(i64::from(self.hourly_retention_days)),
            Duration::from_secs(self.flush_secs.max(1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_and_build() {
        let mut p = Vec::new();
        HistoryConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        HistoryConfig {
            flush_secs: 3601,
            retention_days: 0,
            hourly_retention_days: 40_000,
            journal_fsync_ms: 0,
        }
        .validate(&mut p);
        assert_eq!(
            p,
            [
                "history.flush_secs: must be between 1 and 3600, found 3601",
                "history.retention_days: must be between 1 and 36500, found 0",
                "history.hourly_retention_days: must be between history.retention_days (0) and 36500, found 40000",
                "history.journal_fsync_ms: must be between 1 and 60000, found 0",
            ]
        );
        let r = HistoryConfig {
            flush_secs: 30,
            retention_days: 7,
            hourly_retention_days: 30,
            journal_fsync_ms: 1000,
        }
        .build();
        assert_eq!((r.every, r.retention()), (Duration::from_secs(30), chrono::Duration::days(7)));
    }
}
