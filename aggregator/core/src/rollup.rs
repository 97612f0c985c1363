//! Rollups: what the per-minute history becomes when it is written and
//! read back. [`PendingMinutes`] is the writer's list of minutes changed
//! since they were last written (fed by each message's `minutes`),
//! which also keeps them from being pruned before they are written;
//! [`Layout`] and [`buckets`] cut a range into at most `points` buckets of
//! whole minutes and turn each bucket's [`Totals`] into a
//! [`HistoryBucket`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use throughline_shared::{AssetId, SiteId};

use crate::history::Minute;
use crate::state::{AssetIx, LiveState, TelemetryOutcome};

/// Most buckets one history answer may hold.
pub const MAX_POINTS: u32 = 2000;
/// Buckets when the request names none.
pub const DEFAULT_POINTS: u32 = 200;

/// The minute slots of one asset to write, as (minute start in epoch
/// seconds, slot).
pub type MinuteRows = (SiteId, AssetId, Vec<(i64, Minute)>);

/// Sums over some minutes of one asset (or several).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    pub output: f64,
    pub running_s: f64,
    pub idle_s: f64,
    pub setup_s: f64,
    pub maintenance_s: f64,
    pub down_s: f64,
    pub unknown_s: f64,
    /// Integral of the load, kW x s.
    pub load_kws: f64,
    /// Seconds with a known load.
    pub load_s: f64,
    /// Highest load reading, kW.
    pub load_max_kw: Option<f64>,
    pub samples: u64,
    /// Minutes with a row.
    pub minutes: u64,
}

impl Totals {
    /// Add `other` (sums add, the highest load is the higher).
    pub fn add(&mut self, other: &Totals) {
        self.output += other.output;
        self.running_s += other.running_s;
        self.idle_s += other.idle_s;
        self.setup_s += other.setup_s;
        self.maintenance_s += other.maintenance_s;
        self.down_s += other.down_s;
        self.unknown_s += other.unknown_s;
        self.load_kws += other.load_kws;
        self.load_s += other.load_s;
        self.load_max_kw = match (self.load_max_kw, other.load_max_kw) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.samples += other.samples;
        self.minutes += other.minutes;
    }

    /// Seconds covered by data (all state seconds).
    pub fn covered_s(&self) -> f64 {
        self.running_s + self.idle_s + self.setup_s + self.maintenance_s + self.down_s + self.unknown_s
    }
}

/// How `[from, to)` is cut into buckets: whole minutes, `step` seconds
/// each, the last one possibly shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `from` rounded down to its minute, epoch seconds.
    pub from: i64,
    /// `to` rounded up to a whole minute, epoch seconds.
    pub to: i64,
    /// Bucket length, seconds (a multiple of 60).
    pub step: i64,
}

impl Layout {
    /// At most `points` buckets over `[from, to)`; `from` must be before
    /// `to` and `points` between 1 and [`MAX_POINTS`].
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, points: u32) -> Result<Layout, String> {
        if from >= to {
            return Err(format!(
                "`from` ({}) must be before `to` ({})",
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if !(1..=MAX_POINTS).contains(&points) {
            return Err(format!("`points` must be between 1 and {MAX_POINTS}, found {points}"));
        }
        let from_s = from.timestamp().div_euclid(60) * 60;
        let to_ceil = to.timestamp() + i64::from(to.timestamp_subsec_nanos() > 0);
        let to_s = (to_ceil + 59).div_euclid(60) * 60;
        let minutes = ((to_s - from_s) / 60).max(1);
        let step_minutes = (minutes + i64::from(points) - 1) / i64::from(points);
        Ok(Layout { from: from_s, to: from_s + minutes * 60, step: step_minutes * 60 })
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        ((self.to - self.from + self.step - 1) / self.step) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start and end of bucket `i`, epoch seconds.
    pub fn bucket(&self, i: usize) -> (i64, i64) {
        let start = self.from + i as i64 * self.step;
        (start, (start + self.step).min(self.to))
    }
}

/// Seconds in each state within a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StateSeconds {
    pub running: f64,
    pub idle: f64,
    pub setup: f64,
    pub maintenance: f64,
    pub down: f64,
    /// Covered by data, state not known (before the first state). A
    /// silence longer than 10 minutes is not covered but for its last 10.
    pub unknown: f64,
}

/// One bucket of an asset's history, as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Output made in the bucket (the sum of counter increases); null when
    /// the bucket has no data.
    pub output: Option<f64>,
    /// Output per hour of covered time; null without covered time.
    pub rate_per_hour: Option<f64>,
    /// Time-weighted mean load, kW; null without load data.
    pub load_mean_kw: Option<f64>,
    /// Highest load reading, kW; null without load data.
    pub load_max_kw: Option<f64>,
    pub seconds: StateSeconds,
    /// Seconds of the bucket covered by data (the sum of `seconds`).
    pub covered_seconds: f64,
    pub samples: u64,
}

/// Round to 6 decimals: spreading output over seconds leaves float dust.
pub fn tidy(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Every bucket of `layout`, filled from `totals` (bucket index, totals);
/// buckets without rows are included with nulls and zero seconds.
pub fn buckets(layout: &Layout, totals: &[(i64, Totals)]) -> Vec<HistoryBucket> {
    let mut out: Vec<HistoryBucket> = (0..layout.len())
        .map(|i| {
            let (start, end) = layout.bucket(i);
            HistoryBucket {
                start: at(start),
                end: at(end),
                output: None,
                rate_per_hour: None,
                load_mean_kw: None,
                load_max_kw: None,
                seconds: StateSeconds {
                    running: 0.0,
                    idle: 0.0,
                    setup: 0.0,
                    maintenance: 0.0,
                    down: 0.0,
                    unknown: 0.0,
                },
                covered_seconds: 0.0,
                samples: 0,
            }
        })
        .collect();
    for (i, t) in totals {
        let Some(b) = usize::try_from(*i).ok().and_then(|i| out.get_mut(i)) else { continue };
        let covered = t.covered_s();
        b.output = Some(tidy(t.output));
        b.rate_per_hour = (covered > 0.0).then(|| tidy(t.output / covered * 3600.0));
        b.load_mean_kw = (t.load_s > 0.0).then(|| tidy(t.load_kws / t.load_s));
        b.load_max_kw = t.load_max_kw.map(tidy);
        b.seconds = StateSeconds {
            running: tidy(t.running_s),
            idle: tidy(t.idle_s),
            setup: tidy(t.setup_s),
            maintenance: tidy(t.maintenance_s),
            down: tidy(t.down_s),
            unknown: tidy(t.unknown_s),
        };
        b.covered_seconds = tidy(covered);
        b.samples = t.samples;
    }
    out
}

/// Minutes of each asset's history changed since they were last written.
#[derive(Debug)]
pub struct PendingMinutes {
    /// Asset -> minute starts (epoch seconds).
    minutes: BTreeMap<AssetIx, BTreeSet<i64>>,
    /// History kept in memory per asset.
    keep: Duration,
}

impl PendingMinutes {
    /// Nothing pending; `keep` is how much history each asset keeps in memory.
    pub fn new(keep: Duration) -> PendingMinutes {
        PendingMinutes { minutes: BTreeMap::new(), keep }
    }

    /// Note what a message applied to `state` changed, and prune the
    /// asset's history once it holds an hour more than `keep` (minutes not
    /// yet written stay until they are).
    pub fn note(&mut self, state: &mut LiveState, out: &TelemetryOutcome) {
        let Some(ix) = out.asset else { return };
        if let (Some(span), Some(a)) = (out.minutes, state.asset_at(ix)) {
            // The slots inside the span, not each minute of it: samples far
            // apart in one message span much more than they change.
            self.minutes.entry(ix).or_default().extend(a.history.starts_within(span));
        }
        if out.history_minutes as i64 > self.keep.num_minutes() + 60 {
            let Some(last) = state.asset_at(ix).and_then(|a| a.last_ts) else { return };
            let pending = self.minutes.get(&ix);
            state.prune_history(ix, last - self.keep, |m| pending.is_some_and(|p| p.contains(&m)));
        }
    }

    /// Take the pending minutes as rows to write (a copy of the slots, cheap
    /// enough to make under the live-state lock), in (site, asset) order;
    /// they count as written afterwards.
    pub fn take(&mut self, state: &LiveState) -> Vec<MinuteRows> {
        let mut rows: Vec<MinuteRows> = std::mem::take(&mut self.minutes)
            .into_iter()
            .filter_map(|(ix, minutes)| {
                let a = state.asset_at(ix)?;
                let rows: Vec<(i64, Minute)> =
                    minutes.into_iter().filter_map(|m| a.history.minute(m).map(|s| (m, *s))).collect();
                (!rows.is_empty()).then(|| (a.site.clone(), a.asset.clone(), rows))
            })
            .collect();
        rows.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        rows
    }

    /// Put back rows whose write failed: they are retried at the next take.
    pub fn put_back(&mut self, state: &LiveState, rows: &[MinuteRows]) {
        for (site, asset, minutes) in rows {
            if let Some(ix) = state.ix_of(site, asset) {
                self.minutes.entry(ix).or_default().extend(minutes.iter().map(|(m, _)| *m));
            }
        }
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }
}
