//! Balance engine at plant scale: N assets in N/10 capacity groups, 168
//! hourly forecast buckets per group (a week), three hours of per-minute
//! history per asset. Measures
//! - `full/N`: every (group, bucket) balance, as `Planner::balances` computes
//!   them for the evaluation loop and the API;
//! - `incremental/N`: one asset's sample arrives (at the current event time)
//!   and the cached balances are brought up to date (`GroupBalances::update`
//!   recomputes that asset's group: 168 buckets);
//! - `group_query/N`: one group's balances through `Planner::balances` with
//!   a group filter (what the API does for one group).
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench balance
//! BALANCE_SIZES=10000 cargo bench -p throughline-aggregator --bench balance   # one size
//! ```

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, BenchmarkId, Criterion};
use throughline_aggregator::config::{AssetConfig, AssetKind, Config, GroupConfig};
use throughline_aggregator::model::{ForecastRow, Unit};
use throughline_aggregator::projection::cache::GroupBalances;
use throughline_aggregator::projection::Planner;
use throughline_aggregator::state::LiveState;
use throughline_shared::codec::Telemetry;
use throughline_shared::{AgentId, AssetId, AssetState, Envelope, Sample, SiteId};

const BUCKETS: i64 = 168;
const HISTORY_MINUTES: i64 = 180;
const ASSETS_PER_GROUP: usize = 10;

struct Plant {
    planner: Planner,
    state: LiveState,
    forecasts: Vec<ForecastRow>,
    site: SiteId,
    agent: AgentId,
    ids: Vec<AssetId>,
    seq: u64,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
}

impl Plant {
    fn new(assets: usize) -> Plant {
        let groups = assets / ASSETS_PER_GROUP;
        let mut c = Config::default();
        // One group in five is a feeder group.
        let kind = |g: usize| if g % 5 == 4 { AssetKind::Feeder } else { AssetKind::Line };
        c.groups = (0..groups).map(|g| GroupConfig::with_defaults(&format!("g{g:04}"), kind(g))).collect();
        let site = SiteId::parse("plant").unwrap();
        let ids: Vec<AssetId> = (0..assets).map(|i| AssetId::parse(format!("a{i:05}")).unwrap()).collect();
        c.assets = ids
            .iter()
            .enumerate()
            .map(|(i, id)| AssetConfig {
                site: site.clone(),
                id: id.clone(),
                kind: kind(i % groups),
                group: format!("g{:04}", i % groups),
                rated_capacity: 60.0 + (i % 7) as f64 * 10.0,
                name: None,
                agents: Vec::new(),
            })
            .collect();
        let planner = c.planner();
        let state = LiveState::new(&c.assets, chrono::Duration::seconds(300));
        // The week starts a day before the latest sample: 24 closed or open buckets, the rest ahead.
        let first = t0() + chrono::Duration::minutes(HISTORY_MINUTES) - chrono::Duration::hours(24);
        let forecasts = (0..groups)
            .flat_map(|g| {
                (0..BUCKETS).map(move |h| ForecastRow {
                    group: format!("g{g:04}"),
                    start: first + chrono::Duration::hours(h),
                    end: first + chrono::Duration::hours(h + 1),
                    demand: 500.0 + (g % 13) as f64 * 20.0,
                    unit: if kind(g) == AssetKind::Feeder { Unit::KWh } else { Unit::Pieces },
                    uplift_pct: (g % 3) as f64 * 5.0,
                })
            })
            .collect();
        let mut p =
            Plant { planner, state, forecasts, site, agent: AgentId::parse("gw").unwrap(), ids, seq: 0 };
        for minute in 0..=HISTORY_MINUTES {
            for a in 0..assets {
                p.sample(a, t0() + chrono::Duration::minutes(minute));
            }
        }
        p
    }

    fn sample(&mut self, asset: usize, ts: DateTime<Utc>) {
        self.seq += 1;
        let mut s = Sample::at(ts);
        s.output = Some(self.seq as f64);
        // Every 17th asset is down, the rest run.
        s.state = Some(if asset % 17 == 3 { AssetState::Down } else { AssetState::Running });
        s.load_kw = Some(20.0 + (asset % 11) as f64);
        let t = Telemetry {
            site: self.site.clone(),
            asset: self.ids[asset].clone(),
            envelope: Envelope { v: 1, agent: self.agent.clone(), seq: self.seq, samples: vec![s] },
        };
        self.state.apply_telemetry(&t, ts);
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("BALANCE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 2500, 5000, 10_000])
}

fn balance(c: &mut Criterion) {
    let mut g = c.benchmark_group("balance");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    for n in sizes() {
        let mut p = Plant::new(n);
        let total = p.forecasts.len();
        let full = p.planner.balances(&p.state, &p.forecasts, None, None, None, chrono::Utc::now());
        assert_eq!(full.len(), total);
        g.bench_with_input(BenchmarkId::new("full", n), &n, |b, _| {
            b.iter(|| {
                black_box(p.planner.balances(&p.state, &p.forecasts, None, None, None, chrono::Utc::now()))
            })
        });
        let mut cache = GroupBalances::new(&p.planner, &p.forecasts);
        assert!(cache.update(&p.planner, &p.state, &[], chrono::Utc::now()).all);
        let watermark = p.state.watermark().unwrap();
        let mut k = 0;
        g.bench_with_input(BenchmarkId::new("incremental", n), &n, |b, _| {
            b.iter(|| {
                // One asset reports at the current event time.
                let a = (k * 7919) % n;
                k += 1;
                p.sample(a, watermark);
                let changed = [(p.site.clone(), p.ids[a].clone())];
                let r = cache.update(&p.planner, &p.state, &changed, chrono::Utc::now());
                assert_eq!((r.groups, r.all), (1, false));
                black_box(cache.group(&format!("g{:04}", a % (n / ASSETS_PER_GROUP))).len())
            })
        });
        g.bench_with_input(BenchmarkId::new("group_query", n), &n, |b, _| {
            b.iter(|| {
                black_box(p.planner.balances(
                    &p.state,
                    &p.forecasts,
                    Some("g0007"),
                    None,
                    None,
                    chrono::Utc::now(),
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, balance);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
