//! Durable state in one SQLite file (WAL) under the data dir, one file per
//! table family: [`forecasts`] (every version of every bucket), [`alerts`]
//! (with their acknowledgements), the notification [`outbox`], capacity
//! [`reservations`] and the per-minute history ([`rollups`]). All of it
//! survives a restart. The store speaks the core's vocabulary and knows
//! nothing of live state.
//!
//! Calls are short and synchronous behind a mutex (the last lock taken in
//! the aggregator's lock order); callers on the async runtime use them
//! directly (each is a few indexed statements on a local file). The one
//! long write, a forecast import, opens a connection of its own and runs on
//! a blocking thread; another writer (a history flush, an import by
//! `aggregator import-forecast` in another process) waits for it up to
//! [`BUSY_TIMEOUT`] instead of failing with `database is locked`.

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

/// How long a write waits for another connection's write transaction to end
/// before it fails with `database is locked`. Longer than the largest
/// forecast import takes to write (a year of 10-minute buckets for 10
/// groups, 525,600 rows, writes in a few seconds; docs/benchmarks.md).
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

/// Open the file with the store's settings: WAL (readers never wait for a
/// writer), `synchronous = NORMAL`, foreign keys, [`BUSY_TIMEOUT`].
fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

impl Store {
    /// Open (or create) the store file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError { path: p.clone(), source };
        let conn = connect(path).map_err(err)?;
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

    /// A connection of its own to the same file, for a long write that must
    /// not hold the shared connection's lock.
    fn open_writer(&self) -> Result<Connection, StoreError> {
        connect(Path::new(&self.path)).map_err(|e| self.err(e))
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
