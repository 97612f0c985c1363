//! Durable state in one SQLite file (WAL) under the data dir: forecasts with
//! every version, alerts with their acknowledgements, the notification
//! outbox, capable-to-promise reservations and the per-minute history
//! ([`rollups`]). All of it survives a restart.
//!
//! Calls are short and synchronous behind a mutex; callers on the async
//! runtime use them directly (each is a few indexed statements on a local
//! file).

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::domain::{ForecastRow, Unit};

pub mod rollups;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {source}")]
pub struct StoreError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

/// A forecast bucket as stored, with its version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredForecast {
    pub id: i64,
    #[serde(flatten)]
    pub row: ForecastRow,
    pub effective_demand: f64,
    /// 1 for the first import of this (group, start, end), then 2, 3, ...
    pub version: i64,
    /// Whether this is the version in force.
    pub current: bool,
    pub import_id: i64,
    pub imported_at: DateTime<Utc>,
    pub imported_by: String,
}

/// What one import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub import_id: i64,
    pub rows: usize,
    /// Buckets that replaced an earlier version.
    pub replaced: usize,
}

/// A notification waiting for (or done with) delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub receiver: String,
    pub body: String,
    pub attempts: i64,
}

/// A capacity reservation made by a capable-to-promise quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: i64,
    pub group: String,
    pub quantity: f64,
    /// The stretches of time whose capacity it holds, with quantities.
    pub consumes: Vec<crate::ctp::DemandBucket>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `held`, `confirmed` or `released`.
    pub status: String,
    pub reference: Option<String>,
    pub created_by: String,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS forecasts (
    id INTEGER PRIMARY KEY,
    group_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    demand REAL NOT NULL,
    unit TEXT NOT NULL,
    uplift_pct REAL NOT NULL,
    version INTEGER NOT NULL,
    current INTEGER NOT NULL,
    import_id INTEGER NOT NULL REFERENCES imports(id)
);
CREATE INDEX IF NOT EXISTS forecasts_current ON forecasts(group_id, current, start_ms);
CREATE UNIQUE INDEX IF NOT EXISTS forecasts_version ON forecasts(group_id, start_ms, end_ms, version);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    group_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, key);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(receiver, delivered_ms, next_ms);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    group_id TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
"#;

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
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(rollups::SCHEMA).map_err(err)?;
        Ok(Store { conn: Mutex::new(conn), path: p })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError { path: self.path.clone(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("store lock poisoned")
    }

    /// Import validated rows in one transaction: each replaces the current
    /// version of its (group, start, end), which stays listable.
    pub fn import_forecasts(
        &self,
        rows: &[ForecastRow],
        source: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ImportSummary, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO imports (at_ms, actor, source, rows) VALUES (?1, ?2, ?3, ?4)",
            params![ms(now), actor, source, rows.len() as i64],
        )
        .map_err(|e| self.err(e))?;
        let import_id = tx.last_insert_rowid();
        let mut replaced = 0;
        for r in rows {
            let prev: Option<i64> = tx
                .query_row(
                    "SELECT MAX(version) FROM forecasts WHERE group_id = ?1 AND start_ms = ?2 AND end_ms = ?3",
                    params![r.group, ms(r.start), ms(r.end)],
                    |row| row.get(0),
                )
                .map_err(|e| self.err(e))?;
            if prev.is_some() {
                replaced += 1;
            }
            // Any current bucket of the group overlapping this one is superseded.
            tx.execute(
                "UPDATE forecasts SET current = 0 WHERE group_id = ?1 AND current = 1 AND start_ms < ?3 AND end_ms > ?2",
                params![r.group, ms(r.start), ms(r.end)],
            )
            .map_err(|e| self.err(e))?;
            tx.execute(
                "INSERT INTO forecasts (group_id, start_ms, end_ms, demand, unit, uplift_pct, version, current, import_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)",
                params![
                    r.group,
                    ms(r.start),
                    ms(r.end),
                    r.demand,
                    r.unit.as_str(),
                    r.uplift_pct,
                    prev.unwrap_or(0) + 1,
                    import_id
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(ImportSummary { import_id, rows: rows.len(), replaced })
    }

    /// Forecast buckets overlapping `[from, to)`, oldest first; only the
    /// versions in force unless `all_versions`.
    pub fn forecasts(
        &self,
        group: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        all_versions: bool,
    ) -> Result<Vec<StoredForecast>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT f.id, f.group_id, f.start_ms, f.end_ms, f.demand, f.unit, f.uplift_pct, f.version, f.current,
                        f.import_id, i.at_ms, i.actor
                 FROM forecasts f JOIN imports i ON i.id = f.import_id
                 WHERE (?1 IS NULL OR f.group_id = ?1) AND (?2 IS NULL OR f.end_ms > ?2) AND (?3 IS NULL OR f.start_ms < ?3)
                   AND (?4 = 1 OR f.current = 1)
                 ORDER BY f.group_id, f.start_ms, f.version",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![group, from.map(ms), to.map(ms), all_versions as i64], |r| {
                let unit: String = r.get(5)?;
                let row = ForecastRow {
                    group: r.get(1)?,
                    start: from_ms(r.get(2)?),
                    end: from_ms(r.get(3)?),
                    demand: r.get(4)?,
                    unit: Unit::parse(&unit).unwrap_or(Unit::Pieces),
                    uplift_pct: r.get(6)?,
                };
                Ok(StoredForecast {
                    id: r.get(0)?,
                    effective_demand: row.effective_demand(),
                    row,
                    version: r.get(7)?,
                    current: r.get::<_, i64>(8)? == 1,
                    import_id: r.get(9)?,
                    imported_at: from_ms(r.get(10)?),
                    imported_by: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Insert or update an alert (stored as JSON plus indexed columns);
    /// returns its id.
    pub fn save_alert<A: Serialize>(
        &self,
        id: Option<i64>,
        key: &str,
        kind: &str,
        status: &str,
        group: Option<&str>,
        alert: &A,
    ) -> Result<i64, StoreError> {
        let body = serde_json::to_string(alert).expect("alert serializes");
        let conn = self.lock();
        match id {
            Some(id) => {
                conn.execute(
                    "UPDATE alerts SET key = ?2, kind = ?3, status = ?4, group_id = ?5, body = ?6 WHERE id = ?1",
                    params![id, key, kind, status, group, body],
                )
                .map_err(|e| self.err(e))?;
                Ok(id)
            }
            None => {
                conn.execute(
                    "INSERT INTO alerts (key, kind, status, group_id, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![key, kind, status, group, body],
                )
                .map_err(|e| self.err(e))?;
                Ok(conn.last_insert_rowid())
            }
        }
    }

    /// Alert bodies (JSON) by optional status/kind/group, newest first.
    pub fn alerts(
        &self,
        status: Option<&str>,
        kind: Option<&str>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, body FROM alerts WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)
                 AND (?3 IS NULL OR group_id = ?3) ORDER BY id DESC LIMIT ?4",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![status, kind, group, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The status of alert `id`, if it exists.
    pub fn alert_status(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row("SELECT status FROM alerts WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Alerts not resolved yet (JSON bodies), oldest first.
    pub fn unresolved_alerts(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id, body FROM alerts WHERE status != 'resolved' ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Queue a notification for a receiver.
    pub fn enqueue(&self, receiver: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO outbox (receiver, body, created_ms, next_ms) VALUES (?1, ?2, ?3, ?3)",
                params![receiver, body, ms(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The oldest undelivered notification of `receiver`, if it is due.
    /// Delivery is in order: a later one waits for the one before it.
    pub fn next_due(
        &self,
        receiver: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(OutboxItem, bool)>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT id, receiver, body, attempts, next_ms FROM outbox WHERE receiver = ?1 AND delivered_ms IS NULL
             ORDER BY id LIMIT 1",
            params![receiver],
            |r| {
                let next: i64 = r.get(4)?;
                Ok((
                    OutboxItem { id: r.get(0)?, receiver: r.get(1)?, body: r.get(2)?, attempts: r.get(3)? },
                    next <= ms(now),
                ))
            },
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Mark a notification delivered; delivered rows older than a week go.
    pub fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE outbox SET delivered_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, ms(now)],
        )
        .map_err(|e| self.err(e))?;
        conn.execute(
            "DELETE FROM outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1",
            params![ms(now - chrono::Duration::days(7))],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn mark_failed(&self, id: i64, next: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id, ms(next), error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// SQLite's `data_version`: changes when another connection (another
    /// process, e.g. `aggregator import-forecast`) has committed to the
    /// file since the last call on this connection; never for its own writes.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.pragma_query_value(None, "data_version", |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// Undelivered notifications per receiver.
    pub fn outbox_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT receiver, COUNT(*) FROM outbox WHERE delivered_ms IS NULL GROUP BY receiver",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Store a new reservation; returns its id.
    pub fn insert_reservation(&self, r: &Reservation) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO reservations (group_id, status, expires_ms, body) VALUES (?1, ?2, ?3, '{}')",
            params![r.group, r.status, ms(r.expires_at)],
        )
        .map_err(|e| self.err(e))?;
        let id = conn.last_insert_rowid();
        let body = serde_json::to_string(&Reservation { id, ..r.clone() }).expect("reservation serializes");
        conn.execute("UPDATE reservations SET body = ?2 WHERE id = ?1", params![id, body])
            .map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Reservations of `group` still holding capacity at `now`: held and not
    /// expired. A confirmed order leaves the reservations (it belongs in the
    /// next forecast import); a released one frees its capacity.
    pub fn active_reservations(
        &self,
        group: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Reservation>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT body FROM reservations WHERE group_id = ?1 AND status = 'held' AND expires_ms > ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map(params![group, ms(now)], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let bodies = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok(bodies.iter().filter_map(|b| serde_json::from_str(b).ok()).collect())
    }

    /// Set a reservation's status (`confirmed`, `released`); false if unknown.
    pub fn set_reservation_status(&self, id: i64, status: &str) -> Result<Option<Reservation>, StoreError> {
        let conn = self.lock();
        let body: Option<String> = conn
            .query_row("SELECT body FROM reservations WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(mut r) = body.and_then(|b| serde_json::from_str::<Reservation>(&b).ok()) else {
            return Ok(None);
        };
        if r.status != "held" {
            // Confirmed and released are final; report without changing.
            return Ok(Some(r));
        }
        r.status = status.to_string();
        let body = serde_json::to_string(&r).expect("reservation serializes");
        conn.execute(
            "UPDATE reservations SET status = ?2, body = ?3 WHERE id = ?1",
            params![id, status, body],
        )
        .map_err(|e| self.err(e))?;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn row(start_h: i64, demand: f64) -> ForecastRow {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        ForecastRow {
            group: "family-a".into(),
            start: t0 + Duration::hours(start_h),
            end: t0 + Duration::hours(start_h + 8),
            demand,
            unit: Unit::Pieces,
            uplift_pct: 10.0,
        }
    }

    #[test]
    fn data_version_tells_another_process_import_from_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let running = Store::open(&path).unwrap();
        let v0 = running.data_version().unwrap();
        running.import_forecasts(&[row(0, 100.0)], "csv", "api", Utc::now()).unwrap();
        assert_eq!(running.data_version().unwrap(), v0, "its own import: reloaded by the API already");
        let cli = Store::open(&path).unwrap();
        cli.import_forecasts(&[row(8, 200.0)], "csv", "cli", Utc::now()).unwrap();
        let v1 = running.data_version().unwrap();
        assert_ne!(v1, v0, "another connection committed");
        assert_eq!(running.data_version().unwrap(), v1, "and nothing since");
    }

    #[test]
    fn reimport_replaces_and_keeps_versions_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let now = Utc::now();
        {
            let s = Store::open(&path).unwrap();
            let a = s.import_forecasts(&[row(0, 100.0), row(8, 200.0)], "csv", "alice", now).unwrap();
            assert_eq!((a.rows, a.replaced), (2, 0));
            let b = s.import_forecasts(&[row(8, 250.0)], "csv", "bob", now).unwrap();
            assert_eq!(b.replaced, 1);
        }
        let s = Store::open(&path).unwrap();
        let current = s.forecasts(Some("family-a"), None, None, false).unwrap();
        assert_eq!(current.len(), 2);
        assert_eq!(current[1].row.demand, 250.0);
        assert_eq!((current[1].version, current[1].imported_by.as_str()), (2, "bob"));
        assert!((current[1].effective_demand - 275.0).abs() < 1e-9);
        let all = s.forecasts(Some("family-a"), None, None, true).unwrap();
        assert_eq!(all.len(), 3);
        assert!(!all[1].current && all[1].row.demand == 200.0);
        // Range filter: buckets overlapping [10:00, 11:00).
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let some =
            s.forecasts(None, Some(t0 + Duration::hours(10)), Some(t0 + Duration::hours(11)), false).unwrap();
        assert_eq!(some.len(), 1);
    }

    #[test]
    fn outbox_is_ordered_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let now = Utc::now();
        {
            let s = Store::open(&path).unwrap();
            s.enqueue("hook", "one", now).unwrap();
            s.enqueue("hook", "two", now).unwrap();
            let (first, due) = s.next_due("hook", now).unwrap().unwrap();
            assert!(due && first.body == "one");
            s.mark_failed(first.id, now + Duration::seconds(5), "connection refused").unwrap();
            let (again, due) = s.next_due("hook", now).unwrap().unwrap();
            assert!(!due && again.body == "one", "a failed item blocks the ones behind it until retried");
        }
        let s = Store::open(&path).unwrap();
        let (first, due) = s.next_due("hook", now + Duration::seconds(6)).unwrap().unwrap();
        assert!(due && first.body == "one" && first.attempts == 1);
        s.mark_delivered(first.id, now).unwrap();
        assert_eq!(s.next_due("hook", now).unwrap().unwrap().0.body, "two");
        assert_eq!(s.outbox_depth().unwrap(), vec![("hook".to_string(), 1)]);
    }
}
