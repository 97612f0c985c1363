//! What live state costs in memory per asset after a restart, with more
//! history stored than memory keeps: `MEMORY_ASSETS` (default 10,000)
//! registered lines, each with `MEMORY_HOURS` (default 12) of per-minute
//! rollups in the store. `App::build` reads back only what projections need
//! (`PlanningConfig::memory`, 9 h with the defaults); the resident set
//! before and after the build, and per asset, are printed. With
//! `MEMORY_KEEP_HOURS=48` the availability window is raised so that memory
//! keeps 48 h (what every asset cost before memory was bounded by the
//! projection windows), for comparison.
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench memory_restore
//! MEMORY_KEEP_HOURS=48 cargo bench -p throughline-aggregator --bench memory_restore
//! ```

use std::time::Instant;

use rusqlite::params;
use throughline_aggregator::config::{AssetConfig, AssetKind, Config, GroupConfig};
use throughline_aggregator::store::Store;
use throughline_aggregator::{App, STORE_FILE};
use throughline_shared::{AssetId, SiteId};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let assets = env("MEMORY_ASSETS", 10_000);
    let hours = env("MEMORY_HOURS", 12) as i64;
    let keep_hours = env("MEMORY_KEEP_HOURS", 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STORE_FILE);
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    {
        drop(Store::open(&path).unwrap());
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut minute = tx
                .prepare(
                    "INSERT INTO rollups (site, asset, minute, output, running_s, idle_s, setup_s, maintenance_s,
                        down_s, unknown_s, load_kws, load_s, load_max, samples, covered_from, covered_to)
                     VALUES ('site', ?1, ?2, 1, 50, 0, 0, 0, 10, 0, 0, 0, NULL, 6, 0, 60)",
                )
                .unwrap();
            for a in 0..assets {
                let id = format!("a{a:05}");
                for m in 0..hours * 60 {
                    minute.execute(params![id, now - (hours * 60 - m) * 60]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    println!(
        "store: {assets} assets x {hours} h of minutes ({} rows), built in {:.0} s",
        assets as i64 * hours * 60,
        started.elapsed().as_secs_f64()
    );
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.mqtt.broker = Some("mqtt://127.0.0.1:9".into());
    if keep_hours > 0 {
        config.planning.availability_window_hours = keep_hours as u32 - 1;
        config.planning.history_hours = config.planning.history_hours.max(keep_hours as u32);
    }
    config.groups =
        (0..100).map(|g| GroupConfig::with_defaults(&format!("group-{g:02}"), AssetKind::Line)).collect();
    config.assets = (0..assets)
        .map(|i| AssetConfig {
            site: SiteId::parse("site").unwrap(),
            id: AssetId::parse(format!("a{i:05}")).unwrap(),
            kind: AssetKind::Line,
            group: format!("group-{:02}", i % 100),
            rated_capacity: 3600.0,
            name: None,
            agents: Vec::new(),
        })
        .collect();
    let memory = config.planning.memory();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before = rss_kib();
    let t = Instant::now();
    let app = rt.block_on(App::build(config, "bench")).unwrap();
    let took = t.elapsed().as_secs_f64();
    let after = rss_kib();
    let minutes: usize = app.shared().live.read(|st| st.assets().map(|a| a.history.len()).sum());
    println!(
        "memory keeps {} h: {minutes} minutes read back in {took:.1} s; RSS {:.0} -> {:.0} MiB: {:.1} KiB per asset, {:.0} bytes per minute slot",
        memory.num_hours(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after - before) as f64 / assets as f64,
        (after - before) as f64 * 1024.0 / minutes.max(1) as f64
    );
}
