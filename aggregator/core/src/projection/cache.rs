//! Balances kept between evaluations, recomputed per group: when some
//! assets report, only the groups they serve are computed again.
//!
//! Every balance is evaluated at event time `now` (the watermark): the
//! hours left in a bucket, and each asset's own event time (its watermark,
//! at most `now`) with its recent rate and availability, move with it or
//! with the asset's own samples. So an update at the same watermark
//! recomputes only the groups of the changed assets, and one after the
//! watermark moved recomputes every group. One thing moves with the server
//! clock alone: an asset behind but still delivering turns silent when
//! nothing has arrived for it for a while (`Planner::silent_after`);
//! its group is recomputed once that time has passed. Either way the result
//! equals [`Planner::balances`] over all forecasts (tested below on random
//! changes).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use throughline_shared::{AssetId, SiteId};

use super::Planner;
use crate::balance::BucketBalance;
use crate::model::ForecastRow;
use crate::state::LiveState;

/// What one [`GroupBalances::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recomputed {
    /// Groups whose balances were computed again.
    pub groups: usize,
    /// The watermark had moved (or nothing was cached): every group.
    pub all: bool,
}

/// The balances of every (group, forecast bucket), per group.
#[derive(Debug, Default)]
pub struct GroupBalances {
    /// Event time the cached balances were computed at.
    now: Option<DateTime<Utc>>,
    /// Forecast rows per group, in the order given.
    forecasts: HashMap<String, Vec<ForecastRow>>,
    balances: HashMap<String, Vec<BucketBalance>>,
    /// (site, asset) -> the groups it serves.
    asset_groups: HashMap<(SiteId, AssetId), Vec<String>>,
    /// Group -> the server-clock time after which one of its assets, behind
    /// but delivering when it was computed, turns silent.
    silent_after: HashMap<String, DateTime<Utc>>,
}

impl GroupBalances {
    /// An empty cache for `forecasts`; the first [`GroupBalances::update`]
    /// computes everything.
    pub fn new(planner: &Planner, forecasts: &[ForecastRow]) -> GroupBalances {
        let mut by_group: HashMap<String, Vec<ForecastRow>> = HashMap::new();
        for f in forecasts.iter().filter(|f| planner.group(&f.group).is_some()) {
            by_group.entry(f.group.clone()).or_default().push(f.clone());
        }
        let mut asset_groups: HashMap<(SiteId, AssetId), Vec<String>> = HashMap::new();
        for (group, list) in &planner.assets {
            for a in list {
                asset_groups.entry((a.site.clone(), a.id.clone())).or_default().push(group.clone());
            }
        }
        GroupBalances {
            now: None,
            forecasts: by_group,
            balances: HashMap::new(),
            asset_groups,
            silent_after: HashMap::new(),
        }
    }

    /// Bring the balances up to date after `changed` assets reported.
    pub fn update(
        &mut self,
        planner: &Planner,
        state: &LiveState,
        changed: &[(SiteId, AssetId)],
        wall_now: DateTime<Utc>,
    ) -> Recomputed {
        let now = state.watermark().unwrap_or(wall_now);
        if self.now != Some(now) {
            self.now = Some(now);
            self.silent_after.clear();
            for (group, rows) in &self.forecasts {
                self.balances
                    .insert(group.clone(), planner.group_balances(state, group, rows, now, wall_now));
                if let Some(t) = planner.silent_after(state, group, now, wall_now) {
                    self.silent_after.insert(group.clone(), t);
                }
            }
            return Recomputed { groups: self.forecasts.len(), all: true };
        }
        let mut groups: Vec<String> =
            changed.iter().filter_map(|key| self.asset_groups.get(key)).flatten().cloned().collect();
        groups.extend(self.silent_after.iter().filter(|(_, t)| wall_now > **t).map(|(g, _)| g.clone()));
        groups.sort_unstable();
        groups.dedup();
        let mut n = 0;
        for group in groups {
            if let Some(rows) = self.forecasts.get(&group) {
                self.balances
                    .insert(group.clone(), planner.group_balances(state, &group, rows, now, wall_now));
                match planner.silent_after(state, &group, now, wall_now) {
                    Some(t) => self.silent_after.insert(group, t),
                    None => self.silent_after.remove(&group),
                };
                n += 1;
            }
        }
        Recomputed { groups: n, all: false }
    }

    /// The balances of one group, in forecast order.
    pub fn group(&self, group: &str) -> &[BucketBalance] {
        self.balances.get(group).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every balance (groups in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = &BucketBalance> {
        self.balances.values().flatten()
    }

    /// Event time of the cached balances.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AssetConfig, AssetKind, GroupConfig, Unit};
    use crate::projection::Windows;
    use chrono::{Duration, TimeZone};
    use throughline_shared::codec::Telemetry;
    use throughline_shared::{AgentId, AssetState, Envelope, Sample};

    struct Plant {
        assets: Vec<AssetConfig>,
        groups: Vec<GroupConfig>,
    }

    pub(crate) fn windows() -> Windows {
        Windows {
            rate: Duration::minutes(15),
            availability: Duration::hours(8),
            history: Duration::hours(48),
        }
    }

    fn config(assets: usize, groups: usize) -> Plant {
        let mut c = Plant { assets: Vec::new(), groups: Vec::new() };
        c.groups = (0..groups)
            .map(|g| {
                let kind = if g % 3 == 2 { AssetKind::Feeder } else { AssetKind::Line };
                GroupConfig::with_defaults(&format!("g{g}"), kind)
            })
            .collect();
        c.assets = (0..assets)
            .map(|i| {
                let g = i % groups;
                AssetConfig {
                    site: SiteId::parse("s").unwrap(),
                    id: AssetId::parse(format!("a{i}")).unwrap(),
                    kind: c.groups[g].kind,
                    group: format!("g{g}"),
                    rated_capacity: 100.0 + i as f64,
                    name: None,
                    agents: Vec::new(),
                }
            })
            .collect();
        c
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
    }

    fn sample(state: &mut LiveState, asset: usize, seq: u64, ts: DateTime<Utc>, rng: &mut fastrand::Rng) {
        let mut s = Sample::at(ts);
        s.output = Some(seq as f64 * rng.f64() * 10.0);
        s.state = Some([AssetState::Running, AssetState::Down, AssetState::Idle][rng.usize(0..3)]);
        s.load_kw = Some(rng.f64() * 200.0);
        let t = Telemetry {
            site: SiteId::parse("s").unwrap(),
            asset: AssetId::parse(format!("a{asset}")).unwrap(),
            envelope: Envelope { v: 1, agent: AgentId::parse("ag").unwrap(), seq, samples: vec![s] },
        };
        state.apply_telemetry(&t, ts);
    }

    fn sorted(mut b: Vec<BucketBalance>) -> Vec<BucketBalance> {
        b.sort_by(|x, y| x.group.cmp(&y.group).then(x.start.cmp(&y.start)));
        b
    }

    #[test]
    fn incremental_equals_full_recompute_on_random_changes() {
        let c = config(60, 12);
        let planner = Planner::new(&c.assets, c.groups.clone(), windows());
        let mut state = LiveState::new(&c.assets, Duration::seconds(300));
        let forecasts: Vec<ForecastRow> = (0..12)
            .flat_map(|g| {
                (0..24).map(move |h| ForecastRow {
                    group: format!("g{g}"),
                    start: t0() + Duration::hours(h),
                    end: t0() + Duration::hours(h + 1),
                    demand: 1000.0 + g as f64,
                    unit: if g % 3 == 2 { Unit::KWh } else { Unit::Pieces },
                    uplift_pct: 0.0,
                })
            })
            .collect();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seq = 0;
        // Two hours of history for every asset.
        for minute in 0..120 {
            for a in 0..60 {
                seq += 1;
                sample(&mut state, a, seq, t0() + Duration::minutes(minute), &mut rng);
            }
        }
        let mut cache = GroupBalances::new(&planner, &forecasts);
        let first = cache.update(&planner, &state, &[], t0());
        assert!(first.all);
        assert_eq!(
            sorted(cache.iter().cloned().collect()),
            sorted(planner.balances(&state, &forecasts, None, None, None, t0()))
        );
        let mut partial_updates = 0;
        for round in 0..40 {
            let watermark = state.watermark().unwrap();
            // Some assets report at (or before) the watermark, sometimes one after it.
            let mut changed = Vec::new();
            for _ in 0..rng.usize(1..4) {
                let a = rng.usize(0..60);
                seq += 1;
                let ahead = round % 5 == 4;
                let ts = if ahead { watermark + Duration::seconds(30) } else { watermark };
                sample(&mut state, a, seq, ts, &mut rng);
                changed.push((SiteId::parse("s").unwrap(), AssetId::parse(format!("a{a}")).unwrap()));
            }
            let r = cache.update(&planner, &state, &changed, t0());
            if !r.all {
                partial_updates += 1;
                assert!(r.groups <= changed.len(), "{r:?}");
            }
            let full = planner.balances(&state, &forecasts, None, None, None, t0());
            assert_eq!(sorted(cache.iter().cloned().collect()), sorted(full), "round {round}");
        }
        assert!(partial_updates >= 20, "only {partial_updates} updates were partial");
    }

    /// A line 30 min behind whose backlog stops arriving turns silent by
    /// the server clock alone: its group is computed again then, though no
    /// sample arrived and event time stood still.
    #[test]
    fn a_group_is_recomputed_when_an_asset_behind_turns_silent() {
        let c = config(2, 1);
        let planner = Planner::new(&c.assets, c.groups.clone(), windows());
        let mut state = LiveState::new(&c.assets, Duration::seconds(300));
        let at = |m: i64| t0() + Duration::minutes(m);
        // a0 live to minute 60; a1's backlog to minute 30, received at 60.
        for (asset, to) in [(0, 60), (1, 30)] {
            let samples = (0..=to)
                .map(|m| Sample {
                    output: Some(2.0 * m as f64),
                    state: Some(AssetState::Running),
                    ..Sample::at(at(m))
                })
                .collect();
            let t = Telemetry {
                site: SiteId::parse("s").unwrap(),
                asset: AssetId::parse(format!("a{asset}")).unwrap(),
                envelope: Envelope {
                    v: 1,
                    agent: AgentId::parse(format!("ag{asset}")).unwrap(),
                    seq: 1,
                    samples,
                },
            };
            state.apply_telemetry(&t, at(60));
        }
        let forecasts = vec![ForecastRow {
            group: "g0".into(),
            start: at(0),
            end: at(120),
            demand: 100.0,
            unit: Unit::Pieces,
            uplift_pct: 0.0,
        }];
        let mut cache = GroupBalances::new(&planner, &forecasts);
        assert!(cache.update(&planner, &state, &[], at(60)).all);
        let a1 = |cache: &GroupBalances| cache.group("g0")[0].assets[1].state;
        assert_eq!(a1(&cache), Some(AssetState::Running), "behind but delivering");
        // Heard 10 min ago: still delivering.
        assert_eq!(cache.update(&planner, &state, &[], at(70)), Recomputed { groups: 0, all: false });
        // Silent for more than 10 min: recomputed, and as a full computation.
        let wall = at(70) + Duration::seconds(1);
        assert_eq!(cache.update(&planner, &state, &[], wall), Recomputed { groups: 1, all: false });
        assert_eq!(a1(&cache), None, "silent: state unknown");
        assert_eq!(
            cache.group("g0"),
            planner.balances(&state, &forecasts, None, None, None, wall).as_slice()
        );
        assert_eq!(cache.update(&planner, &state, &[], at(90)), Recomputed { groups: 0, all: false });
    }
}
