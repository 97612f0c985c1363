//! Forecast buckets: every import, every version of every bucket; the
//! versions in force are what planning uses.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{from_ms, ms, Store, StoreError};
use crate::model::{ForecastRow, Unit};

pub(super) const SCHEMA: &str = r#"
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
"#;

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

impl Store {
    /// Import validated rows in one transaction: each replaces the current
    /// version of its (group, start, end), which stays listable.
    ///
    /// Runs on a connection of its own, so the store's shared connection
    /// (history flushes, alerts, API reads) is never locked behind it; call
    /// it off the async runtime. The cost is linear in the rows: the buckets
    /// in force of a group never overlap (each import supersedes what it
    /// overlaps, and its own rows do not overlap), so the ones a new bucket
    /// overlaps are those starting inside it plus at most the one just
    /// before it, each found through the `forecasts_current` index.
    pub fn import_forecasts(
        &self,
        rows: &[ForecastRow],
        source: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ImportSummary, StoreError> {
        let mut conn = self.open_writer()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO imports (at_ms, actor, source, rows) VALUES (?1, ?2, ?3, ?4)",
            params![ms(now), actor, source, rows.len() as i64],
        )
        .map_err(|e| self.err(e))?;
        let import_id = tx.last_insert_rowid();
        let mut replaced = 0;
        {
            let mut prev_version = tx
                .prepare(
                    "SELECT MAX(version) FROM forecasts WHERE group_id = ?1 AND start_ms = ?2 AND end_ms = ?3",
                )
                .map_err(|e| self.err(e))?;
            // Buckets in force starting inside the new one.
            let mut supersede_inside = tx
                .prepare(
                    "UPDATE forecasts SET current = 0
                     WHERE group_id = ?1 AND current = 1 AND start_ms >= ?2 AND start_ms < ?3",
                )
                .map_err(|e| self.err(e))?;
            // The bucket in force starting just before it, if it reaches into it.
            let mut supersede_before = tx
                .prepare(
                    "UPDATE forecasts SET current = 0 WHERE id = (
                         SELECT id FROM forecasts WHERE group_id = ?1 AND current = 1 AND start_ms < ?2
                         ORDER BY start_ms DESC LIMIT 1) AND end_ms > ?2",
                )
                .map_err(|e| self.err(e))?;
            let mut insert = tx
                .prepare(
                    "INSERT INTO forecasts (group_id, start_ms, end_ms, demand, unit, uplift_pct, version, current, import_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)",
                )
                .map_err(|e| self.err(e))?;
            for r in rows {
                let (start, end) = (ms(r.start), ms(r.end));
                let prev: Option<i64> = prev_version
                    .query_row(params![r.group, start, end], |row| row.get(0))
                    .map_err(|e| self.err(e))?;
                if prev.is_some() {
                    replaced += 1;
                }
                supersede_inside.execute(params![r.group, start, end]).map_err(|e| self.err(e))?;
                supersede_before.execute(params![r.group, start]).map_err(|e| self.err(e))?;
                insert
                    .execute(params![
                        r.group,
                        start,
                        end,
                        r.demand,
                        r.unit.as_str(),
                        r.uplift_pct,
                        prev.unwrap_or(0) + 1,
                        import_id
                    ])
                    .map_err(|e| self.err(e))?;
            }
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
    fn data_version_changes_after_any_import_and_not_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let running = Store::open(&path).unwrap();
        let v0 = running.data_version().unwrap();
        assert_eq!(running.data_version().unwrap(), v0, "nothing committed");
        // An import writes through a connection of its own, so the running
        // store sees its own import as it sees another process's.
        running.import_forecasts(&[row(0, 100.0)], "csv", "api", Utc::now()).unwrap();
        let v1 = running.data_version().unwrap();
        assert_ne!(v1, v0, "its own import, on its own connection");
        let cli = Store::open(&path).unwrap();
        cli.import_forecasts(&[row(8, 200.0)], "csv", "cli", Utc::now()).unwrap();
        let v2 = running.data_version().unwrap();
        assert_ne!(v2, v1, "another process committed");
        assert_eq!(running.data_version().unwrap(), v2, "and nothing since");
    }

    fn at(start_min: i64, end_min: i64, demand: f64) -> ForecastRow {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        ForecastRow {
            group: "family-a".into(),
            start: t0 + Duration::minutes(start_min),
            end: t0 + Duration::minutes(end_min),
            demand,
            unit: Unit::Pieces,
            uplift_pct: 0.0,
        }
    }

    #[test]
    fn a_bucket_supersedes_every_bucket_in_force_it_overlaps_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        // In force: [0,60) [60,120) [120,180) [180,240), and another group's [0,240).
        let mut first: Vec<_> = (0..4).map(|i| at(i * 60, i * 60 + 60, 10.0 + i as f64)).collect();
        first.push(ForecastRow { group: "family-b".into(), ..at(0, 240, 99.0) });
        s.import_forecasts(&first, "csv", "a", Utc::now()).unwrap();
        // [30,150) reaches into [0,60) from inside, covers [60,120), ends inside [120,180).
        s.import_forecasts(&[at(30, 150, 7.0)], "csv", "b", Utc::now()).unwrap();
        let current: Vec<(i64, i64, f64)> = s
            .forecasts(Some("family-a"), None, None, false)
            .unwrap()
            .iter()
            .map(|f| (f.row.start.timestamp() / 60 % 1440, f.row.end.timestamp() / 60 % 1440, f.row.demand))
            .collect();
        assert_eq!(current, [(30, 150, 7.0), (180, 240, 13.0)]);
        assert_eq!(
            s.forecasts(Some("family-b"), None, None, false).unwrap().len(),
            1,
            "other group untouched"
        );
        // A bucket touching [180,240) at its start supersedes nothing.
        s.import_forecasts(&[at(240, 300, 1.0)], "csv", "c", Utc::now()).unwrap();
        assert_eq!(s.forecasts(Some("family-a"), None, None, false).unwrap().len(), 3);
        assert_eq!(s.forecasts(Some("family-a"), None, None, true).unwrap().len(), 6, "every version kept");
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
}
