//! Embedded history: per-asset, per-minute rollups in the SQLite store, the
//! zero set-up time series behind the dashboard.
//!
//! Ingest keeps one-minute slots per asset in memory ([`crate::history`],
//! event time). Every `history.flush_secs` the flusher (`crate::tasks::rollup`)
//! copies the minutes changed since the last flush out of live state (under
//! its lock, a copy of a few rows) and writes them outside the lock in one
//! transaction ([`crate::store::rollups`]); a minute changed again by late
//! data is written again, whole. Rows older than `history.retention_days`
//! are deleted at start and then once an hour. At start the newest
//! `planning.history_hours` of each asset are read back into memory, so
//! balances and the history go on where they stopped.
//!
//! Reads (`/api/v1/assets/{site}/{asset}/history`, group history) flush
//! first and then read SQLite only, so an answer holds everything ingested
//! before the request. Downsampling happens in SQL: [`crate::rollup::Layout`]
//! splits the range into at most `points` buckets of whole minutes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use throughline_shared::{AssetId, SiteId};

use super::Services;
use crate::model::AssetConfig;
use crate::projection::StoredOutput;
use crate::rollup::Totals;
use crate::state::LiveState;
use crate::store::{Store, StoreError, StoredForecast};

/// Serialises flushes, so an older copy of a minute is never written after
/// a newer one.
#[derive(Debug)]
pub struct Rollups {
    flush: Mutex<()>,
    retention: chrono::Duration,
    hourly_retention: chrono::Duration,
    /// How often the flusher writes.
    pub every: Duration,
}

impl Rollups {
    /// Keep minute rollups for `retention` and hourly ones for
    /// `hourly_retention`; write changed minutes `every` so often.
    pub fn new(retention: chrono::Duration, hourly_retention: chrono::Duration, every: Duration) -> Rollups {
        Rollups { flush: Mutex::new(()), retention, hourly_retention, every }
    }

    /// How long rollups are kept.
    pub fn retention(&self) -> chrono::Duration {
        self.retention
    }
}

/// Commit a checkpoint: every minute and every asset's and agent's state
/// changed since the last one, with the journal position they stand for,
/// in one transaction; returns the history rows written. Blocking: call it
/// off the async runtime. On failure everything stays pending for the next
/// one (and the journal keeps its records).
pub fn flush(s: &Services) -> Result<usize, StoreError> {
    let _one_at_a_time = s.rollups.flush.lock().expect("flush lock poisoned");
    let cp = s.live.take_checkpoint();
    let released = s.durability.released.load(Ordering::Relaxed);
    if cp.rows.is_empty() && cp.state.is_empty() && cp.journal_next.is_none_or(|n| n <= released) {
        return Ok(0);
    }
    let started = Instant::now();
    match s.store.write_checkpoint(&cp, Utc::now().timestamp_millis()) {
        Ok(n) => {
            if let Some(next) = cp.journal_next {
                s.durability.released.fetch_max(next, Ordering::Relaxed);
            }
            if s.durability.store_ok() {
                tracing::info!("state store written again");
            }
            let m = &s.metrics;
            m.history_flush_seconds.observe(started.elapsed().as_secs_f64());
            m.history_flushes.inc();
            m.history_rows_written.inc_by(n as u64);
            Ok(n)
        }
        Err(e) => {
            s.metrics.history_flush_failures.inc();
            s.live.put_back_checkpoint(&cp);
            if s.durability.store_failed(&e) {
                tracing::error!(error = %e, "state store cannot be written: history and live state are retried at each flush, the journal keeps every message until then (logged once a minute)");
            }
            Err(e)
        }
    }
}

/// Write what is dirty before a read; `false` if that failed (the store
/// cannot be written): the read goes on with what is stored, and its
/// answer says it may not hold everything ingested (`"complete": false`).
pub fn flush_before_read(s: &Services) -> bool {
    match flush(s) {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(error = %e, "history flush before a read failed; answering from what is stored");
            false
        }
    }
}

/// A forecast bucket in force and what each registered asset of its group
/// made in it, from the stored rollups.
#[derive(Debug, Clone)]
pub struct BucketActuals {
    pub forecast: StoredForecast,
    /// Every registered asset of the group, in registration order.
    pub assets: Vec<(AssetConfig, Totals)>,
}

/// The buckets in force of `group` overlapping `[from, to)` that `keep`
/// accepts, each with its assets' stored totals. Blocking; reads the store
/// only, so [`flush_before_read`] first for an answer that holds everything
/// ingested.
pub fn bucket_actuals(
    s: &Services,
    group: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: impl Fn(&StoredForecast) -> bool,
) -> Result<Vec<BucketActuals>, StoreError> {
    let assets = s.live.planner().group_assets(group);
    let forecasts = s.store.forecasts(Some(group), Some(from), Some(to), false)?;
    forecasts
        .into_iter()
        .filter(|f| keep(f))
        .map(|forecast| {
            let (start, end) = (forecast.row.start.timestamp(), forecast.row.end.timestamp());
            let assets = assets
                .iter()
                .map(|a| Ok((a.clone(), s.store.rollup_totals(&a.site, &a.id, start, end)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(BucketActuals { forecast, assets })
        })
        .collect()
}

/// Delete rollups older than the retention (by `now`, the server clock);
/// returns how many went.
pub fn prune(s: &Services, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let n = s.store.prune_rollups((now - s.rollups.retention).timestamp())?
        + s.store.prune_hourly_rollups((now - s.rollups.hourly_retention).timestamp())?;
    s.metrics.history_rows_pruned.inc_by(n as u64);
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

/// What [`restore_state`] put back.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoredState {
    pub assets: usize,
    pub agents: usize,
    /// The journal is replayed from this record on.
    pub journal_next: u64,
}

/// Read the last checkpoint's live state back (at start, after
/// [`restore`]): every asset's last counter, state and event time, every
/// agent's sequence window.
pub fn restore_state(store: &Store, live: &mut LiveState) -> Result<RestoredState, StoreError> {
    let r = store.load_checkpoint()?;
    let done = RestoredState {
        assets: r.state.assets.len(),
        agents: r.state.agents.len(),
        journal_next: r.journal_next,
    };
    for a in r.state.assets {
        live.restore_asset(a);
    }
    for g in r.state.agents {
        live.restore_agent(g);
    }
    Ok(done)
}

/// The planner's reader of stored output ([`StoredOutput`]): the part of
/// a bucket older than an asset's in-memory history, read from the rollups
/// (whole hours from the hourly table) once per range and kept, since
/// minutes no longer in memory do not change. Called under the live-state
/// lock (and the alert book's); takes the store's.
#[derive(Debug)]
pub struct StoredOutputs {
    store: Arc<Store>,
    cache: Mutex<HashMap<(SiteId, AssetId, i64, i64), f64>>,
}

/// Ranges kept before the cache starts afresh.
const STORED_CACHE: usize = 100_000;

impl StoredOutputs {
    pub fn new(store: Arc<Store>) -> StoredOutputs {
        StoredOutputs { store, cache: Mutex::new(HashMap::new()) }
    }
}

impl StoredOutput for StoredOutputs {
    fn output_between(
        &self,
        site: &SiteId,
        asset: &AssetId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Option<f64> {
        let key = (site.clone(), asset.clone(), from.timestamp(), to.timestamp());
        let mut cache = self.cache.lock().expect("stored output cache poisoned");
        if let Some(v) = cache.get(&key) {
            return Some(*v);
        }
        match self.store.rollup_totals(site, asset, key.2, key.3) {
            Ok(t) => {
                if cache.len() >= STORED_CACHE {
                    cache.clear();
                }
                cache.insert(key, t.output);
                Some(t.output)
            }
            Err(e) => {
                tracing::debug!(error = %e, "stored output could not be read; the plan counts what memory holds");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
