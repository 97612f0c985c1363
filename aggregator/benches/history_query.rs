//! What a closed month of a group costs to read back from the store: the
//! query behind the forecast-accuracy report and the group history
//! (`rollup_totals` per asset), on a store holding a year of hourly
//! rollups for every asset and a month of minutes for the group.
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench history_query
//! HISTORY_ASSETS=10000 cargo bench -p throughline-aggregator --bench history_query
//! ```
//! `HISTORY_ASSETS` (default 1000) assets get 8,760 hourly rows each; a
//! group of `HISTORY_GROUP` (default 100) of them also gets the 43,200
//! minute rows of one month. Each month of the year is then read for the
//! group from the hourly table, and the minutes' month from the minutes
//! alone (the cost without hourly rollups); medians of 5 rounds.

use std::time::Instant;

use rusqlite::params;
use throughline_aggregator::store::Store;
use throughline_shared::{AssetId, SiteId};

const HOUR: i64 = 3600;
/// 2025-01-01T00:00:00Z.
const YEAR: i64 = 1_735_689_600;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let assets = env("HISTORY_ASSETS", 1000);
    let group = env("HISTORY_GROUP", 100).min(assets);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let store = Store::open(&path).unwrap();
    let started = Instant::now();
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut hour = tx
                .prepare(
                    "INSERT INTO rollups_hourly (site, asset, hour, output, running_s, idle_s, setup_s,
                        maintenance_s, down_s, unknown_s, load_kws, load_s, load_max, samples, minutes)
                     VALUES ('s', ?1, ?2, ?3, 3000, 0, 0, 0, 600, 0, 0, 0, NULL, 360, 60)",
                )
                .unwrap();
            for a in 0..assets {
                let id = format!("a{a:05}");
                for h in 0..8760 {
                    hour.execute(params![id, YEAR + h * HOUR, 50.0 + (h % 7) as f64]).unwrap();
                }
            }
            let mut minute = tx
                .prepare(
                    "INSERT INTO rollups (site, asset, minute, output, running_s, idle_s, setup_s, maintenance_s,
                        down_s, unknown_s, load_kws, load_s, load_max, samples, covered_from, covered_to)
                     VALUES ('s', ?1, ?2, ?3, 50, 0, 0, 0, 10, 0, 0, 0, NULL, 6, 0, 60)",
                )
                .unwrap();
            // The minutes of the last 30 days of the year, for the group.
            let from = YEAR + (8760 - 720) * HOUR;
            for a in 0..group {
                let id = format!("a{a:05}");
                for m in 0..43_200 {
                    minute.execute(params![id, from + m * 60, 1.0]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("history.db-wal")).map(|m| m.len()).unwrap_or(0);
    println!(
        "store: {assets} assets x 8,760 hourly rows + {group} x 43,200 minute rows, {:.0} MB, built in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let site = SiteId::parse("s").unwrap();
    let ids: Vec<AssetId> = (0..group).map(|a| AssetId::parse(format!("a{a:05}")).unwrap()).collect();
    let month = |from: i64, to: i64| -> (f64, f64) {
        // The per-asset read behind the report and the group history.
        let t = Instant::now();
        let total: f64 = ids.iter().map(|id| store.rollup_totals(&site, id, from, to).unwrap().output).sum();
        (t.elapsed().as_secs_f64() * 1000.0, total)
    };
    // Hourly: each 30-day month of the year, 5 rounds.
    let mut hourly = Vec::new();
    for _ in 0..5 {
        for m in 0..12 {
            let from = YEAR + m * 720 * HOUR;
            let (ms, total) = month(from, from + 720 * HOUR);
            assert!(total > 0.0);
            hourly.push(ms);
        }
    }
    // The minutes' month, read from the minutes alone: one bucket whose
    // step is not whole hours keeps the hourly table out.
    let from = YEAR + (8760 - 720) * HOUR;
    let to = from + 720 * HOUR;
    let mut minutes = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let total: f64 = ids
            .iter()
            .map(|id| {
                store
                    .rollup_buckets(&site, id, from, to, to - from + 60)
                    .unwrap()
                    .iter()
                    .map(|(_, t)| t.output)
                    .sum::<f64>()
            })
            .sum();
        assert!((total - 43_200.0 * group as f64).abs() < 1e-6, "{total}");
        minutes.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (h, m) = (median(hourly), median(minutes));
    println!("group of {group} x a 30-day month from hourly rollups: median {h:.1} ms");
    println!("the same month from minute rows alone: median {m:.1} ms ({:.0} x the hourly read)", m / h);
}
