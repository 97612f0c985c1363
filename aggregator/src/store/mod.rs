//! Durable state in one SQLite file (WAL) under the data dir, one file per
//! table family: [`forecasts`] (every version of every bucket), [`alerts`]
//! (with their acknowledgements), the notification [`outbox`], capacity
//! [`reservations`] and the per-minute history ([`rollups`]). All of it
//! survives a restart. The store speaks the core's vocabulary and knows
//! nothing of live state.
//!
//! Calls are short and synchronous behind a mutex (the last lock taken in
//! the aggregator's lock order); callers on the async runtime use them
//! directly (each is a few indexed statements on a local file).

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub mod alerts;
pub mod checkpoint;
pub mod forecasts;
pub mod outbox;
pub mod reservations;
pub mod rollups;

pub use checkpoint::Checkpoint;
pub use forecasts::{ImportSummary, StoredForecast};
pub use outbox::OutboxItem;
pub use reservations::Reservation;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {source}")]
pub struct StoreError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

impl Store {
    /// Open (or create) the store file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError { path: p.clone(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        for schema in [
            forecasts::SCHEMA,
            alerts::SCHEMA,
            outbox::SCHEMA,
            reservations::SCHEMA,
            rollups::SCHEMA,
            checkpoint::SCHEMA,
        ] {
            conn.execute_batch(schema).map_err(err)?;
        }
        let hours = rollups::backfill_hours(&conn).map_err(err)?;
        if hours > 0 {
            tracing::info!(hours, "hourly rollups built from the stored minutes");
        }
        Ok(Store { conn: Mutex::new(conn), path: p })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError { path: self.path.clone(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("store lock poisoned")
    }

    /// SQLite's `data_version`: changes when another connection (another
    /// process, e.g. `aggregator import-forecast`) has committed to the
    /// file since the last call on this connection; never for its own writes.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.pragma_query_value(None, "data_version", |r| r.get(0)).map_err(|e| self.err(e))
    }
}
