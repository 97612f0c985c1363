//! The `rollups` table: one row per (site, asset, minute) with what the
//! asset did in that minute (output, seconds in each state, load, samples).
//! Written in batches by the flusher (`crate::service::history`), one transaction per
//! flush; a row is replaced whole when its minute changes again (late data).

use rusqlite::{params, OptionalExtension};
use throughline_shared::{AssetId, SiteId};

use super::{Store, StoreError};
use crate::history::Minute;
use crate::rollup::{MinuteRows, Totals};

/// Created by [`Store::open`] with the rest of the schema.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rollups (
    site TEXT NOT NULL,
    asset TEXT NOT NULL,
    -- start of the minute, seconds since the Unix epoch (event time)
    minute INTEGER NOT NULL,
    output REAL NOT NULL,
    running_s REAL NOT NULL,
    idle_s REAL NOT NULL,
    setup_s REAL NOT NULL,
    maintenance_s REAL NOT NULL,
    down_s REAL NOT NULL,
    unknown_s REAL NOT NULL,
    -- integral of the load over the minute (kW x s) and the seconds it covers
    load_kws REAL NOT NULL,
    load_s REAL NOT NULL,
    -- highest load reading, kW; NULL when the minute has no load reading
    load_max REAL,
    samples INTEGER NOT NULL,
    -- part of the minute with data, seconds from its start
    covered_from REAL NOT NULL,
    covered_to REAL NOT NULL,
    PRIMARY KEY (site, asset, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_minute ON rollups(minute);
"#;

/// Insert or replace the given minutes inside `tx`; returns the rows written.
pub(super) fn put_rollups(tx: &rusqlite::Transaction<'_>, rows: &[MinuteRows]) -> rusqlite::Result<usize> {
    let mut n = 0;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO rollups (site, asset, minute, output, running_s, idle_s, setup_s, maintenance_s,
                down_s, unknown_s, load_kws, load_s, load_max, samples, covered_from, covered_to)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT (site, asset, minute) DO UPDATE SET
                output = excluded.output, running_s = excluded.running_s, idle_s = excluded.idle_s,
                setup_s = excluded.setup_s, maintenance_s = excluded.maintenance_s,
                down_s = excluded.down_s, unknown_s = excluded.unknown_s,
                load_kws = excluded.load_kws, load_s = excluded.load_s, load_max = excluded.load_max,
                samples = excluded.samples, covered_from = excluded.covered_from,
                covered_to = excluded.covered_to",
    )?;
    for (site, asset, minutes) in rows {
        for (start, m) in minutes {
            let load_max = (m.load_s > 0.0 || m.load_max_kw > 0.0).then_some(m.load_max_kw);
            stmt.execute(params![
                site.as_str(),
                asset.as_str(),
                start,
                m.output,
                m.running_s,
                m.idle_s,
                m.setup_s,
                m.maintenance_s,
                m.down_s,
                m.unknown_s,
                m.load_kws,
                m.load_s,
                load_max,
                m.samples,
                m.covered_from,
                m.covered_to
            ])?;
            n += 1;
        }
    }
    Ok(n)
}

/// The columns summed per bucket, in the order [`totals_of`] reads them.
const SUMS: &str = "SUM(output), SUM(running_s), SUM(idle_s), SUM(setup_s), SUM(maintenance_s), SUM(down_s),
     SUM(unknown_s), SUM(load_kws), SUM(load_s), MAX(load_max), SUM(samples), COUNT(*)";

fn totals_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Totals> {
    let f = |i: usize| -> rusqlite::Result<f64> { Ok(r.get::<_, Option<f64>>(first + i)?.unwrap_or(0.0)) };
    Ok(Totals {
        output: f(0)?,
        running_s: f(1)?,
        idle_s: f(2)?,
        setup_s: f(3)?,
        maintenance_s: f(4)?,
        down_s: f(5)?,
        unknown_s: f(6)?,
        load_kws: f(7)?,
        load_s: f(8)?,
        load_max_kw: r.get(first + 9)?,
        samples: r.get::<_, Option<i64>>(first + 10)?.unwrap_or(0) as u64,
        minutes: r.get::<_, i64>(first + 11)? as u64,
    })
}

impl Store {
    /// Insert or replace the given minutes, all in one transaction; returns
    /// the number of rows written.
    pub fn write_rollups(&self, rows: &[MinuteRows]) -> Result<usize, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = put_rollups(&tx, rows).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Totals per bucket of one asset: minutes in `[from, to)` (epoch
    /// seconds) grouped by `(minute - from) / step`; returns (bucket index,
    /// totals) for the buckets that have rows, in order.
    pub fn rollup_buckets(
        &self,
        site: &SiteId,
        asset: &AssetId,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<(i64, Totals)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT (minute - ?3) / ?5 AS bucket, {SUMS} FROM rollups
                 WHERE site = ?1 AND asset = ?2 AND minute >= ?3 AND minute < ?4
                 GROUP BY bucket ORDER BY bucket"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![site.as_str(), asset.as_str(), from, to, step.max(60)], |r| {
                Ok((r.get(0)?, totals_of(r, 1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Totals of one asset over the minutes starting in `[from, to)` (epoch
    /// seconds).
    pub fn rollup_totals(
        &self,
        site: &SiteId,
        asset: &AssetId,
        from: i64,
        to: i64,
    ) -> Result<Totals, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {SUMS} FROM rollups WHERE site = ?1 AND asset = ?2 AND minute >= ?3 AND minute < ?4"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![site.as_str(), asset.as_str(), from, to], |r| totals_of(r, 0))
            .map_err(|e| self.err(e))
    }

    /// Whether any rollup of this asset is stored.
    pub fn has_rollups(&self, site: &SiteId, asset: &AssetId) -> Result<bool, StoreError> {
        self.lock()
            .query_row(
                "SELECT 1 FROM rollups WHERE site = ?1 AND asset = ?2 LIMIT 1",
                params![site.as_str(), asset.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.err(e))
    }

    /// The start of the newest stored minute of one asset (epoch seconds).
    pub fn rollup_newest(&self, site: &SiteId, asset: &AssetId) -> Result<Option<i64>, StoreError> {
        self.lock()
            .query_row(
                "SELECT MAX(minute) FROM rollups WHERE site = ?1 AND asset = ?2",
                params![site.as_str(), asset.as_str()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every asset with rollups and the start of its newest minute.
    pub fn rollup_assets(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT site, asset, MAX(minute) FROM rollups GROUP BY site, asset")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The stored minutes of one asset from `from` (epoch seconds) on, as
    /// (minute start, slot), oldest first.
    pub fn rollup_minutes(
        &self,
        site: &str,
        asset: &str,
        from: i64,
    ) -> Result<Vec<(i64, Minute)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT minute, output, running_s, idle_s, setup_s, maintenance_s, down_s, unknown_s, load_kws,
                        load_s, load_max, samples, covered_from, covered_to
                 FROM rollups WHERE site = ?1 AND asset = ?2 AND minute >= ?3 ORDER BY minute",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![site, asset, from], |r| {
                Ok((
                    r.get(0)?,
                    Minute {
                        output: r.get(1)?,
                        running_s: r.get(2)?,
                        idle_s: r.get(3)?,
                        setup_s: r.get(4)?,
                        maintenance_s: r.get(5)?,
                        down_s: r.get(6)?,
                        unknown_s: r.get(7)?,
                        load_kws: r.get(8)?,
                        load_s: r.get(9)?,
                        load_max_kw: r.get::<_, Option<f64>>(10)?.unwrap_or(0.0),
                        samples: r.get(11)?,
                        covered_from: r.get(12)?,
                        covered_to: r.get(13)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Delete rollups of minutes before `before` (epoch seconds); returns
    /// how many went.
    pub fn prune_rollups(&self, before: i64) -> Result<usize, StoreError> {
        self.lock().execute("DELETE FROM rollups WHERE minute < ?1", params![before]).map_err(|e| self.err(e))
    }
}
