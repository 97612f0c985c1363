//! Ingest hot path, in process: `ingest::handle` on realistic envelopes
//! (decode, validate, dedup, live state, per-minute history, counters) on a
//! `Services` built by `App::build` from a config with 200 registered assets
//! in 20 groups. No broker: this is the aggregator's own cost per message.
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench ingest
//! ```
//! `ingest/single` is one sample per message, `ingest/batch50` fifty. Every
//! message carries the next `seq` of its agent and later timestamps, so each
//! is applied (no duplicates), as in a live plant. `ingest/duplicate` is a
//! repeat of a message already applied (the dedup path). The `_journaled`
//! variants also append each message to the ingest journal first (one
//! `write` each, an fsync a second on the journal's own thread), as the
//! ingest task does before its ack: the ratio to the plain variant in the
//! same run is the journal's cost.
//!
//! Under callgrind (instructions per message; see docs/benchmarks.md):
//! `INGEST_PROFILE=single|batch50 INGEST_MESSAGES=N target/release/deps/ingest-* --bench`
//! handles N messages once and exits, without criterion.

use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, Criterion, Throughput};
use throughline_aggregator::config::{AssetConfig, AssetKind, Config, GroupConfig};
use throughline_aggregator::journal::Journal;
use throughline_aggregator::tasks::ingest::{handle, RejectLog};
use throughline_aggregator::{App, Services};
use throughline_shared::{AssetId, Limits, SiteId};

const ASSETS: usize = 200;
const GROUPS: usize = 20;
const AGENTS: usize = 20;

struct Plant {
    shared: Arc<Services>,
    _app: App,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
    limits: Limits,
    /// Next seq per agent, next sample index per asset.
    seq: Vec<u64>,
    sample: Vec<i64>,
    start: DateTime<Utc>,
}

fn plant() -> Plant {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    // An external broker that is never connected to: no embedded broker thread.
    config.mqtt.broker = Some("mqtt://127.0.0.1:9".into());
    config.groups =
        (0..GROUPS).map(|g| GroupConfig::with_defaults(&format!("group-{g:02}"), AssetKind::Line)).collect();
    config.assets = (0..ASSETS)
        .map(|i| AssetConfig {
            site: SiteId::parse("bench-site").unwrap(),
            id: AssetId::parse(format!("asset-{i:04}")).unwrap(),
            kind: AssetKind::Line,
            group: format!("group-{:02}", i % GROUPS),
            rated_capacity: 3600.0,
            name: None,
            agents: Vec::new(),
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let app = rt.block_on(App::build(config, "bench")).unwrap();
    let shared = app.shared();
    // Event time starting two days ago; the clock tolerance allows up to now + 5 min.
    let start = Utc.timestamp_opt(Utc::now().timestamp() - 2 * 86_400, 0).unwrap();
    Plant {
        shared,
        _app: app,
        _dir: dir,
        _rt: rt,
        limits: Limits::default(),
        seq: vec![0; AGENTS],
        sample: vec![0; ASSETS],
        start,
    }
}

impl Plant {
    /// The next message of asset `m % ASSETS` with `samples` samples, 100 ms
    /// apart in event time.
    fn message(&mut self, m: usize, samples: usize) -> (String, Vec<u8>) {
        let asset = m % ASSETS;
        let agent = asset % AGENTS;
        self.seq[agent] += 1;
        let mut body = format!(r#"{{"v":1,"agent":"agent-{agent:02}","seq":{},"samples":["#, self.seq[agent]);
        for k in 0..samples {
            let i = self.sample[asset];
            self.sample[asset] += 1;
            // Wrap within the two days so that no timestamp lies in the future.
            let ts = self.start + chrono::Duration::milliseconds((i * 100) % (40 * 3_600_000));
            if k > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"ts":"{}","output":{},"state":"running","load_kw":{}}}"#,
                ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                i * 2,
                40.0 + (i % 10) as f64 * 0.5
            ));
        }
        body.push_str("]}");
        let topic = format!("throughline/v1/bench-site/agent-{agent:02}/asset-{asset:04}/telemetry");
        (topic, body.into_bytes())
    }

    fn messages(&mut self, n: usize, samples: usize, first: usize) -> Vec<(String, Vec<u8>)> {
        (0..n).map(|m| self.message(first + m, samples)).collect()
    }

    fn handle_all(&self, msgs: &[(String, Vec<u8>)], log: &mut RejectLog) -> Duration {
        let now = Utc::now();
        let t = Instant::now();
        for (topic, payload) in msgs {
            handle(&self.shared, &self.limits, log, topic, payload, black_box(now));
        }
        t.elapsed()
    }

    /// [`Plant::handle_all`], journaled first as ingest does: one write per
    /// message, then applied (ingest writes the messages of one network
    /// read, up to ten, with one write: this is its costliest case).
    fn journal_all(
        &self,
        msgs: &[(String, Vec<u8>)],
        log: &mut RejectLog,
        journal: &mut Journal,
    ) -> Duration {
        let now = Utc::now();
        let t = Instant::now();
        for chunk in msgs.chunks(1) {
            let parts: Vec<(&str, &[u8])> = chunk.iter().map(|(t, p)| (t.as_str(), p.as_slice())).collect();
            let first = journal.append_many(&parts, now).expect("journal append");
            for (i, (topic, payload)) in chunk.iter().enumerate() {
                handle(&self.shared, &self.limits, log, topic, payload, black_box(now));
                self.shared.live.journaled(first + i as u64);
            }
            journal.sync_if_due().expect("journal sync");
        }
        t.elapsed()
    }
}

fn run(c: &mut Criterion, name: &str, samples: usize, journaled: bool) {
    let mut p = plant();
    let mut log = RejectLog::new(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) =
        Journal::open(dir.path(), Duration::from_secs(1), 0, Arc::new(AtomicU64::new(0)), |_| {}).unwrap();
    // Warm the state: every asset known, history windows filled a little.
    let warm = p.messages(ASSETS * 20, samples, 0);
    p.handle_all(&warm, &mut log);
    let mut next = ASSETS * 20;
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let msgs = p.messages(iters as usize, samples, next);
            next += iters as usize;
            if journaled {
                p.journal_all(&msgs, &mut log, &mut journal)
            } else {
                p.handle_all(&msgs, &mut log)
            }
        })
    });
    g.finish();
    let m = &p.shared.metrics;
    assert_eq!(m.duplicates.get(), 0, "bench messages must all be new");
    assert_eq!(m.messages.get() as usize, next, "every message applied");
}

fn single(c: &mut Criterion) {
    run(c, "single", 1, false);
    run(c, "single_journaled", 1, true);
}

fn batch50(c: &mut Criterion) {
    run(c, "batch50", 50, false);
    run(c, "batch50_journaled", 50, true);
}

fn duplicate(c: &mut Criterion) {
    let mut p = plant();
    let mut log = RejectLog::new(Duration::from_secs(10));
    let msgs = p.messages(ASSETS, 1, 0);
    p.handle_all(&msgs, &mut log);
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("duplicate", |b| {
        let mut i = 0;
        b.iter(|| {
            let (topic, payload) = &msgs[i % msgs.len()];
            i += 1;
            handle(&p.shared, &p.limits, &mut log, topic, payload, Utc::now());
        })
    });
    g.finish();
}

criterion_group!(benches, single, batch50, duplicate);

fn main() {
    // Profiling mode: handle a fixed number of messages once (for callgrind).
    if let Ok(kind) = std::env::var("INGEST_PROFILE") {
        let samples = if kind == "batch50" { 50 } else { 1 };
        let n: usize = std::env::var("INGEST_MESSAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
        let mut p = plant();
        let mut log = RejectLog::new(Duration::from_secs(10));
        let warm = p.messages(ASSETS * 20, samples, 0);
        p.handle_all(&warm, &mut log);
        let msgs = p.messages(n, samples, ASSETS * 20);
        let took = p.handle_all(&msgs, &mut log);
        println!(
            "{kind}: {n} messages in {:.3} s, {:.0} ns/message",
            took.as_secs_f64(),
            took.as_nanos() as f64 / n as f64
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
