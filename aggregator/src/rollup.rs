//! Embedded history: per-asset, per-minute rollups in the SQLite store, the
//! zero set-up time series behind the dashboard.
//!
//! Ingest keeps one-minute slots per asset in memory ([`crate::history`],
//! event time). Every `history.flush_secs` the flusher copies the slots
//! changed since the last flush out of live state (under its lock, a copy of
//! a few rows) and writes them outside the lock in one transaction
//! ([`crate::store::rollups`]); a minute changed again by late data is
//! written again, whole. Rows older than `history.retention_days` are
//! deleted at start and then once an hour. At start the newest
//! `planning.history_hours` of each asset are read back into memory, so
//! balances and the history go on where they stopped.
//!
//! Reads (`/api/v1/assets/{site}/{asset}/history`, group history) flush
//! first and then read SQLite only, so an answer holds everything ingested
//! before the request. Downsampling happens in SQL: [`Layout`] splits the
//! range into at most `points` buckets of whole minutes, and each bucket's
//! [`Totals`] become a [`HistoryBucket`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughline_shared::{AssetId, SiteId};
use tokio_util::sync::CancellationToken;

use crate::config::HistoryConfig;
use crate::state::LiveState;
use crate::store::{Store, StoreError};
use crate::Shared;

/// Most buckets one history answer may hold.
pub const MAX_POINTS: u32 = 2000;
/// Buckets when the request names none.
pub const DEFAULT_POINTS: u32 = 200;
/// How often old rollups are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Sums over some minutes of one asset (or several).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    pub output: f64,
    pub running_s: f64,
    pub idle_s: f64,
    pub setup_s: f64,
    pub maintenance_s: f64,
    pub down_s: f64,
    pub unknown_s: f64,
    /// Integral of the load, kW x s.
    pub load_kws: f64,
    /// Seconds with a known load.
    pub load_s: f64,
    /// Highest load reading, kW.
    pub load_max_kw: Option<f64>,
    pub samples: u64,
    /// Minutes with a row.
    pub minutes: u64,
}

impl Totals {
    /// Seconds covered by data (all state seconds).
    pub fn covered_s(&self) -> f64 {
        self.running_s + self.idle_s + self.setup_s + self.maintenance_s + self.down_s + self.unknown_s
    }
}

/// How `[from, to)` is cut into buckets: whole minutes, `step` seconds
/// each, the last one possibly shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `from` rounded down to its minute, epoch seconds.
    pub from: i64,
    /// `to` rounded up to a whole minute, epoch seconds.
    pub to: i64,
    /// Bucket length, seconds (a multiple of 60).
    pub step: i64,
}

impl Layout {
    /// At most `points` buckets over `[from, to)`; `from` must be before
    /// `to` and `points` between 1 and [`MAX_POINTS`].
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, points: u32) -> Result<Layout, String> {
        if from >= to {
            return Err(format!(
                "`from` ({}) must be before `to` ({})",
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if !(1..=MAX_POINTS).contains(&points) {
            return Err(format!("`points` must be between 1 and {MAX_POINTS}, found {points}"));
        }
        let from_s = from.timestamp().div_euclid(60) * 60;
        let to_ceil = to.timestamp() + i64::from(to.timestamp_subsec_nanos() > 0);
        let to_s = (to_ceil + 59).div_euclid(60) * 60;
        let minutes = ((to_s - from_s) / 60).max(1);
        let step_minutes = (minutes + i64::from(points) - 1) / i64::from(points);
        Ok(Layout { from: from_s, to: from_s + minutes * 60, step: step_minutes * 60 })
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        ((self.to - self.from + self.step - 1) / self.step) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start and end of bucket `i`, epoch seconds.
    pub fn bucket(&self, i: usize) -> (i64, i64) {
        let start = self.from + i as i64 * self.step;
        (start, (start + self.step).min(self.to))
    }
}

/// Seconds in each state within a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StateSeconds {
    pub running: f64,
    pub idle: f64,
    pub setup: f64,
    pub maintenance: f64,
    pub down: f64,
    /// Covered by data, state not known (before the first state, or a
    /// silence longer than 10 minutes).
    pub unknown: f64,
}

/// One bucket of an asset's history, as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Output made in the bucket (the sum of counter increases); null when
    /// the bucket has no data.
    pub output: Option<f64>,
    /// Output per hour of covered time; null without covered time.
    pub rate_per_hour: Option<f64>,
    /// Time-weighted mean load, kW; null without load data.
    pub load_mean_kw: Option<f64>,
    /// Highest load reading, kW; null without load data.
    pub load_max_kw: Option<f64>,
    pub seconds: StateSeconds,
    /// Seconds of the bucket covered by data (the sum of `seconds`).
    pub covered_seconds: f64,
    pub samples: u64,
}

/// Round to 6 decimals: spreading output over seconds leaves float dust.
pub fn tidy(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Every bucket of `layout`, filled from `totals` (bucket index, totals);
/// buckets without rows are included with nulls and zero seconds.
pub fn buckets(layout: &Layout, totals: &[(i64, Totals)]) -> Vec<HistoryBucket> {
    let mut out: Vec<HistoryBucket> = (0..layout.len())
        .map(|i| {
            let (start, end) = layout.bucket(i);
            HistoryBucket {
                start: at(start),
                end: at(end),
                output: None,
                rate_per_hour: None,
                load_mean_kw: None,
                load_max_kw: None,
                seconds: StateSeconds {
                    running: 0.0,
                    idle: 0.0,
                    setup: 0.0,
                    maintenance: 0.0,
                    down: 0.0,
                    unknown: 0.0,
                },
                covered_seconds: 0.0,
                samples: 0,
            }
        })
        .collect();
    for (i, t) in totals {
        let Some(b) = usize::try_from(*i).ok().and_then(|i| out.get_mut(i)) else { continue };
        let covered = t.covered_s();
        b.output = Some(tidy(t.output));
        b.rate_per_hour = (covered > 0.0).then(|| tidy(t.output / covered * 3600.0));
        b.load_mean_kw = (t.load_s > 0.0).then(|| tidy(t.load_kws / t.load_s));
        b.load_max_kw = t.load_max_kw.map(tidy);
        b.seconds = StateSeconds {
            running: tidy(t.running_s),
            idle: tidy(t.idle_s),
            setup: tidy(t.setup_s),
            maintenance: tidy(t.maintenance_s),
            down: tidy(t.down_s),
            unknown: tidy(t.unknown_s),
        };
        b.covered_seconds = tidy(covered);
        b.samples = t.samples;
    }
    out
}

/// Serialises flushes, so an older copy of a minute is never written after
/// a newer one.
#[derive(Debug)]
pub struct Rollups {
    flush: Mutex<()>,
    retention: chrono::Duration,
    /// How often the flusher writes.
    pub every: Duration,
}

impl Rollups {
    pub fn new(config: &HistoryConfig) -> Rollups {
        Rollups {
            flush: Mutex::new(()),
            retention: chrono::Duration::days(i64::from(config.retention_days)),
            every: Duration::from_secs(config.flush_secs.max(1)),
        }
    }
}

/// Write every minute changed since the last flush, in one transaction;
/// returns the rows written. Blocking: call it off the async runtime. On
/// failure the minutes stay dirty for the next flush.
pub fn flush(shared: &Shared) -> Result<usize, StoreError> {
    let _one_at_a_time = shared.rollups.flush.lock().expect("flush lock poisoned");
    let dirty = shared.state.lock().expect("state lock poisoned").take_dirty_minutes();
    if dirty.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    match shared.store.write_rollups(&dirty) {
        Ok(n) => {
            let m = &shared.metrics;
            m.history_flush_seconds.observe(started.elapsed().as_secs_f64());
            m.history_flushes.inc();
            m.history_rows_written.inc_by(n as u64);
            Ok(n)
        }
        Err(e) => {
            shared.metrics.history_flush_failures.inc();
            let mut state = shared.state.lock().expect("state lock poisoned");
            for (site, asset, minutes) in &dirty {
                let starts: Vec<i64> = minutes.iter().map(|(s, _)| *s).collect();
                state.mark_dirty(site, asset, &starts);
            }
            Err(e)
        }
    }
}

/// Delete rollups older than the retention (by `now`, the server clock);
/// returns how many went.
pub fn prune(shared: &Shared, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let n = shared.store.prune_rollups((now - shared.rollups.retention).timestamp())?;
    shared.metrics.history_rows_pruned.inc_by(n as u64);
    Ok(n)
}

/// Read the newest `keep` of each asset's stored history back into live
/// state (at start). Returns the minutes restored.
pub fn restore(store: &Store, live: &mut LiveState, keep: chrono::Duration) -> Result<usize, StoreError> {
    let mut restored = 0;
    for (site, asset, newest) in store.rollup_assets()? {
        let (Ok(site_id), Ok(asset_id)) = (SiteId::parse(site.as_str()), AssetId::parse(asset.as_str()))
        else {
            continue;
        };
        let rows = store.rollup_minutes(&site, &asset, newest - keep.num_seconds())?;
        restored += rows.len();
        live.restore_history(&site_id, &asset_id, rows);
    }
    Ok(restored)
}

/// Flush every `history.flush_secs` and prune every hour (both at once at
/// start) until cancelled. The last flush, after ingest has stopped, is the
/// caller's ([`flush`]).
pub async fn run(shared: Arc<Shared>, token: CancellationToken) {
    let mut flush_tick = tokio::time::interval(shared.rollups.every);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = flush_tick.tick() => {
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || flush(&s)).await {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(rows = n, "history flushed"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "history flush failed; retried at the next one"),
                    Err(e) => tracing::error!(error = %e, "history flush task failed"),
                }
            }
            _ = prune_tick.tick() => {
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || prune(&s, Utc::now())).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "old history pruned"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "history prune failed"),
                    Err(e) => tracing::error!(error = %e, "history prune task failed"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
