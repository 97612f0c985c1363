//! The alert evaluation's pass over every agent (`Scope::Agents`, the
//! offline rule), which runs with the live-state lock held: N registered
//! assets reported by N/10 agents, plus `ingest.max_unregistered` (1,000)
//! made-up agents with one unregistered asset each, as a flood leaves them.
//! Each agent's assets are gathered in one pass over the plant, so the cost
//! grows with assets + agents (before: agents x assets).
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench agents_pass
//! AGENTS_PASS_SIZES=100000 cargo bench -p throughline-aggregator --bench agents_pass
//! ```

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, BenchmarkId, Criterion};
use throughline_aggregator::alert::book::AlertBook;
use throughline_aggregator::config::{AssetConfig, AssetKind, Config};
use throughline_aggregator::projection::Scope;
use throughline_aggregator::state::LiveState;
use throughline_shared::codec::Telemetry;
use throughline_shared::{AgentId, AssetId, Envelope, Sample, SiteId};

const UNREGISTERED: usize = 1000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
}

fn sizes() -> Vec<usize> {
    std::env::var("AGENTS_PASS_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000])
}

fn agents_pass(c: &mut Criterion) {
    let mut g = c.benchmark_group("agents_pass");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    for n in sizes() {
        let site = SiteId::parse("plant").unwrap();
        let assets: Vec<AssetConfig> = (0..n)
            .map(|i| AssetConfig {
                site: site.clone(),
                id: AssetId::parse(format!("a{i:06}")).unwrap(),
                kind: AssetKind::Line,
                group: format!("g{:04}", i / 10),
                rated_capacity: 600.0,
                name: None,
                agents: Vec::new(),
            })
            .collect();
        let cfg = Config { assets, ..Config::default() };
        let planner = cfg.planner();
        let mut state =
            LiveState::new(&cfg.assets, chrono::Duration::seconds(300)).with_max_unregistered(UNREGISTERED);
        let mut send = |agent: String, asset: String, seq: u64| {
            let mut s = Sample::at(t0());
            s.output = Some(1.0);
            let t = Telemetry {
                site: site.clone(),
                asset: AssetId::parse(asset).unwrap(),
                envelope: Envelope { v: 1, agent: AgentId::parse(agent).unwrap(), seq, samples: vec![s] },
            };
            state.apply_telemetry(&t, t0());
        };
        for i in 0..n {
            send(format!("gw{:05}", i / 10), format!("a{i:06}"), i as u64 + 1);
        }
        for i in 0..UNREGISTERED {
            send(format!("fake-{i:058}"), format!("fake-asset-{i:052}"), 1);
        }
        let book = AlertBook::default();
        // Half an hour later: every agent is silent, every one offline.
        let now = t0() + chrono::Duration::minutes(30);
        let found = planner.conditions_in(&state, &[], &book, now, Scope::Agents).len();
        assert_eq!(found, n / 10 + UNREGISTERED);
        g.bench_with_input(BenchmarkId::new("all_offline", n), &n, |b, _| {
            b.iter(|| black_box(planner.conditions_in(&state, &[], &book, now, Scope::Agents).len()))
        });
        // Thirty seconds on: every agent current, nothing to report (the
        // pass as it runs every second in a healthy plant).
        let current = t0() + chrono::Duration::seconds(30);
        assert_eq!(planner.conditions_in(&state, &[], &book, current, Scope::Agents).len(), 0);
        g.bench_with_input(BenchmarkId::new("all_current", n), &n, |b, _| {
            b.iter(|| black_box(planner.conditions_in(&state, &[], &book, current, Scope::Agents).len()))
        });
    }
    g.finish();
}

criterion_group!(benches, agents_pass);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
