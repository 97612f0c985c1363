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
-- The same per hour: the sums of the hour's minute rows (`minutes` of them),
-- kept up to date with every write, and kept longer than the minutes
-- (history.hourly_retention_days), so old months stay cheap to read.
CREATE TABLE IF NOT EXISTS rollups_hourly (
    site TEXT NOT NULL,
    asset TEXT NOT NULL,
    -- start of the hour, seconds since the Unix epoch (event time)
    hour INTEGER NOT NULL,
    output REAL NOT NULL,
    running_s REAL NOT NULL,
    idle_s REAL NOT NULL,
    setup_s REAL NOT NULL,
    maintenance_s REAL NOT NULL,
    down_s REAL NOT NULL,
    unknown_s REAL NOT NULL,
    load_kws REAL NOT NULL,
    load_s REAL NOT NULL,
    load_max REAL,
    samples INTEGER NOT NULL,
    minutes INTEGER NOT NULL,
    PRIMARY KEY (site, asset, hour)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_hourly_hour ON rollups_hourly(hour);
"#;

/// Seconds in an hour.
const HOUR: i64 = 3600;

/// Recompute hour `?3` of asset (`?1`, `?2`) from its minute rows.
const REHOUR: &str = "INSERT INTO rollups_hourly (site, asset, hour, output, running_s, idle_s, setup_s,
        maintenance_s, down_s, unknown_s, load_kws, load_s, load_max, samples, minutes)
     SELECT ?1, ?2, ?3, SUM(output), SUM(running_s), SUM(idle_s), SUM(setup_s), SUM(maintenance_s),
        SUM(down_s), SUM(unknown_s), SUM(load_kws), SUM(load_s), MAX(load_max), SUM(samples), COUNT(*)
     FROM rollups WHERE site = ?1 AND asset = ?2 AND minute >= ?3 AND minute < ?3 + 3600
     ON CONFLICT (site, asset, hour) DO UPDATE SET
        output = excluded.output, running_s = excluded.running_s, idle_s = excluded.idle_s,
        setup_s = excluded.setup_s, maintenance_s = excluded.maintenance_s, down_s = excluded.down_s,
        unknown_s = excluded.unknown_s, load_kws = excluded.load_kws, load_s = excluded.load_s,
        load_max = excluded.load_max, samples = excluded.samples, minutes = excluded.minutes";

/// Fill the hourly table from the minutes of a store written before it
/// existed (at open; nothing to do once it holds rows).
pub(super) fn backfill_hours(conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
    let empty: bool = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM rollups_hourly)", [], |r| r.get(0))?;
    if !empty {
        return Ok(0);
    }
    conn.execute(
        "INSERT INTO rollups_hourly (site, asset, hour, output, running_s, idle_s, setup_s, maintenance_s,
            down_s, unknown_s, load_kws, load_s, load_max, samples, minutes)
         SELECT site, asset, (minute / 3600) * 3600 AS h, SUM(output), SUM(running_s), SUM(idle_s),
            SUM(setup_s), SUM(maintenance_s), SUM(down_s), SUM(unknown_s), SUM(load_kws), SUM(load_s),
            MAX(load_max), SUM(samples), COUNT(*)
         FROM rollups GROUP BY site, asset, h",
        [],
    )
}

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
    let mut rehour = tx.prepare_cached(REHOUR)?;
    for (site, asset, minutes) in rows {
        let hours: std::collections::BTreeSet<i64> =
            minutes.iter().map(|(m, _)| m.div_euclid(HOUR) * HOUR).collect();
        for h in hours {
            rehour.execute(params![site.as_str(), asset.as_str(), h])?;
        }
    }
    Ok(n)
}

/// The columns summed per bucket, in the order [`totals_of`] reads them.
const SUMS: &str = "SUM(output), SUM(running_s), SUM(idle_s), SUM(setup_s), SUM(maintenance_s), SUM(down_s),
     SUM(unknown_s), SUM(load_kws), SUM(load_s), MAX(load_max), SUM(samples), COUNT(*)";
/// [`SUMS`] over the hourly table.
const SUMS_HOURLY: &str =
    "SUM(output), SUM(running_s), SUM(idle_s), SUM(setup_s), SUM(maintenance_s), SUM(down_s),
     SUM(unknown_s), SUM(load_kws), SUM(load_s), MAX(load_max), SUM(samples), COALESCE(SUM(minutes), 0)";

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
        // Whole hours from the hourly table (the same sums, 60 times fewer rows).
        let hourly = step % HOUR == 0 && from % HOUR == 0 && to % HOUR == 0;
        let sql = if hourly {
            format!(
                "SELECT (hour - ?3) / ?5 AS bucket, {SUMS_HOURLY} FROM rollups_hourly
                 WHERE site = ?1 AND asset = ?2 AND hour >= ?3 AND hour < ?4
                 GROUP BY bucket ORDER BY bucket"
            )
        } else {
            format!(
                "SELECT (minute - ?3) / ?5 AS bucket, {SUMS} FROM rollups
                 WHERE site = ?1 AND asset = ?2 AND minute >= ?3 AND minute < ?4
                 GROUP BY bucket ORDER BY bucket"
            )
        };
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![site.as_str(), asset.as_str(), from, to, step.max(60)], |r| {
                Ok((r.get(0)?, totals_of(r, 1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Totals of one asset over the minutes starting in `[from, to)` (epoch
    /// seconds): the whole hours inside from the hourly table, the edges
    /// from the minutes (so a month costs about 720 rows per asset, not
    /// 43,200, and reads back for as long as the hours are kept).
    pub fn rollup_totals(
        &self,
        site: &SiteId,
        asset: &AssetId,
        from: i64,
        to: i64,
    ) -> Result<Totals, StoreError> {
        let conn = self.lock();
        let minutes = |a: i64, b: i64| -> rusqlite::Result<Totals> {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUMS} FROM rollups WHERE site = ?1 AND asset = ?2 AND minute >= ?3 AND minute < ?4"
            ))?;
            stmt.query_row(params![site.as_str(), asset.as_str(), a, b], |r| totals_of(r, 0))
        };
        let (h1, h2) = (from.saturating_add(HOUR - 1).div_euclid(HOUR) * HOUR, to.div_euclid(HOUR) * HOUR);
        let q = || -> rusqlite::Result<Totals> {
            if h1 >= h2 {
                return minutes(from, to);
            }
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUMS_HOURLY} FROM rollups_hourly WHERE site = ?1 AND asset = ?2 AND hour >= ?3 AND hour < ?4"
            ))?;
            let mut t =
                stmt.query_row(params![site.as_str(), asset.as_str(), h1, h2], |r| totals_of(r, 0))?;
            t.add(&minutes(from, h1)?);
            t.add(&minutes(h2, to)?);
            Ok(t)
        };
        q().map_err(|e| self.err(e))
    }

    /// Whether any rollup of this asset is stored.
    pub fn has_rollups(&self, site: &SiteId, asset: &AssetId) -> Result<bool, StoreError> {
        self.lock()
            .query_row(
                "SELECT 1 FROM rollups WHERE site = ?1 AND asset = ?2
                 UNION ALL SELECT 1 FROM rollups_hourly WHERE site = ?1 AND asset = ?2 LIMIT 1",
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

    /// Delete hourly rollups of hours before `before` (epoch seconds);
    /// returns how many went.
    pub fn prune_hourly_rollups(&self, before: i64) -> Result<usize, StoreError> {
        self.lock()
            .execute("DELETE FROM rollups_hourly WHERE hour < ?1", params![before])
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (SiteId, AssetId) {
        (SiteId::parse("s").unwrap(), AssetId::parse("l1").unwrap())
    }

    /// Three hours and a bit of minutes from hour `h0`, output 1 + i % 7.
    fn minutes(h0: i64) -> Vec<(i64, Minute)> {
        (0..200)
            .map(|i| {
                let m = Minute {
                    output: 1.0 + (i % 7) as f64,
                    running_s: 50.0,
                    down_s: 10.0,
                    load_kws: 600.0,
                    load_s: 60.0,
                    load_max_kw: 10.0 + (i % 13) as f64,
                    samples: 6,
                    covered_from: 0.0,
                    covered_to: 60.0,
                    ..Minute::default()
                };
                (h0 + i * 60, m)
            })
            .collect()
    }

    fn sum(ms: &[(i64, Minute)], from: i64, to: i64) -> f64 {
        ms.iter().filter(|(m, _)| (from..to).contains(m)).map(|(_, s)| s.output).sum()
    }

    #[test]
    fn whole_hours_come_from_the_hourly_table_and_outlive_the_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let (site, asset) = ids();
        let h0 = 1_764_576_000; // an hour's start
        let ms = minutes(h0);
        store.write_rollups(&[(site.clone(), asset.clone(), ms.clone())]).unwrap();
        // Aligned, unaligned at both ends, inside one hour: the minutes' sums.
        for (from, to) in
            [(h0, h0 + 3 * 3600), (h0 + 600, h0 + 3 * 3600 + 1200), (h0 + 60, h0 + 1800), (0, i64::MAX / 2)]
        {
            let t = store.rollup_totals(&site, &asset, from, to).unwrap();
            assert!((t.output - sum(&ms, from, to)).abs() < 1e-9, "[{from}, {to}): {t:?}");
            let n = ms.iter().filter(|(m, _)| (from..to).contains(m)).count() as u64;
            assert_eq!((t.minutes, t.samples), (n, 6 * n), "[{from}, {to})");
        }
        // A minute written again (late data) changes its hour too.
        let mut late = ms[5];
        late.1.output += 100.0;
        store.write_rollups(&[(site.clone(), asset.clone(), vec![late])]).unwrap();
        let t = store.rollup_totals(&site, &asset, h0, h0 + 3600).unwrap();
        assert!((t.output - (sum(&ms, h0, h0 + 3600) + 100.0)).abs() < 1e-9);
        // Hourly buckets read the hourly table and agree with minute buckets.
        let by_hour = store.rollup_buckets(&site, &asset, h0, h0 + 3 * 3600, 3600).unwrap();
        let by_minutes = store.rollup_buckets(&site, &asset, h0 + 60, h0 + 3 * 3600 + 60, 3600).unwrap();
        assert_eq!(by_hour.len(), 3);
        assert_eq!(by_hour[0].1.load_max_kw, Some(22.0));
        assert!(by_minutes.len() >= 3);
        // The minutes go; whole hours stay readable.
        store.prune_rollups(h0 + 4 * 3600).unwrap();
        let t = store.rollup_totals(&site, &asset, h0, h0 + 3 * 3600).unwrap();
        assert!((t.output - (sum(&ms, h0, h0 + 3 * 3600) + 100.0)).abs() < 1e-9, "{t:?}");
        assert!(store.has_rollups(&site, &asset).unwrap());
        store.prune_hourly_rollups(h0 + 4 * 3600).unwrap();
        assert!(!store.has_rollups(&site, &asset).unwrap());
    }

    #[test]
    fn a_store_from_before_the_hourly_table_gets_it_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (site, asset) = ids();
        let h0 = 1_764_576_000;
        let ms = minutes(h0);
        {
            let store = Store::open(&path).unwrap();
            store.write_rollups(&[(site.clone(), asset.clone(), ms.clone())]).unwrap();
            store.lock().execute("DELETE FROM rollups_hourly", []).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let n: i64 = store.lock().query_row("SELECT COUNT(*) FROM rollups_hourly", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 4, "200 minutes from an hour's start span 4 hours");
        let t = store.rollup_totals(&site, &asset, h0, h0 + 3 * 3600).unwrap();
        assert!((t.output - sum(&ms, h0, h0 + 3 * 3600)).abs() < 1e-9);
    }
}
