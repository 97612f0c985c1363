//! Restart recovery: how long `App::build` takes to stand where a killed
//! aggregator stood, for a plant of `RECOVERY_ASSETS` (default 10,000)
//! registered lines. The first instance ingests a minute of one-sample
//! envelopes per asset through the journal, commits a checkpoint, ingests
//! `RECOVERY_AFTER` (default 100,000) more messages and is dropped without
//! a checkpoint, as `kill -9` leaves it. The second instance's build reads
//! the history and the checkpoint back and replays the journal; its time,
//! and the data dir's size, are printed (median of 3 rounds).
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench recovery
//! ```

use std::path::Path;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use throughline_aggregator::config::{AssetConfig, AssetKind, Config, GroupConfig};
use throughline_aggregator::service::history;
use throughline_aggregator::tasks::ingest::{handle, RejectLog};
use throughline_aggregator::{App, JOURNAL_DIR};
use throughline_shared::{AssetId, Limits, SiteId};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(dir: &Path, assets: usize) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.mqtt.broker = Some("mqtt://127.0.0.1:9".into());
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
    config
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let assets = env("RECOVERY_ASSETS", 10_000);
    let after = env("RECOVERY_AFTER", 100_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let start = Utc.timestamp_opt(Utc::now().timestamp() - 3600, 0).unwrap();
    let mut times = Vec::new();
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        let mut log = RejectLog::new(std::time::Duration::from_secs(10));
        let mut seq = 0u64;
        let mut message = |i: usize, k: i64| {
            seq += 1;
            let asset = i % assets;
            let ts = start + chrono::Duration::seconds(k);
            let body = format!(
                r#"{{"v":1,"agent":"gw","seq":{seq},"samples":[{{"ts":"{}","output":{},"state":"running"}}]}}"#,
                ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                k * 2
            );
            (format!("throughline/v1/site/gw/a{asset:05}/telemetry"), body)
        };
        {
            let app = rt.block_on(App::build(config(dir.path(), assets), "bench")).unwrap();
            let shared = app.shared();
            let (mut journal, _) = throughline_aggregator::journal::Journal::open(
                &dir.path().join(JOURNAL_DIR),
                std::time::Duration::from_secs(1),
                0,
                shared.durability.released.clone(),
                |_| {},
            )
            .unwrap();
            let mut feed = |n: usize, from: usize| {
                for i in from..from + n {
                    let (topic, body) = message(i, (i / assets) as i64 * 10);
                    let id = journal.append(&topic, body.as_bytes(), Utc::now()).unwrap();
                    handle(&shared, &limits, &mut log, &topic, body.as_bytes(), Utc::now());
                    shared.live.journaled(id);
                }
            };
            // Six samples per asset, then a checkpoint, then more.
            feed(6 * assets, 0);
            history::flush(&shared).unwrap();
            feed(after, 6 * assets);
            journal.sync().unwrap();
            // Dropped here without a checkpoint: what kill -9 leaves.
        }
        let size: u64 = walk(dir.path());
        let t = Instant::now();
        let app = rt.block_on(App::build(config(dir.path(), assets), "bench")).unwrap();
        let took = t.elapsed().as_secs_f64();
        let m = &app.shared().metrics;
        assert_eq!(m.journal_replayed.get() as usize, after, "every message after the checkpoint replayed");
        println!(
            "round {round}: {assets} assets, {after} journal records after the checkpoint, data dir {:.0} MB: recovered in {:.2} s",
            size as f64 / 1e6,
            took
        );
        times.push(took);
    }
    times.sort_by(f64::total_cmp);
    println!("restart recovery: median {:.2} s", times[1]);
}

fn walk(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
