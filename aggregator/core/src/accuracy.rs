//! Forecast accuracy: how far each closed forecast bucket's actual output
//! (from the stored per-minute rollups) landed from its effective demand,
//! whether every asset of the group had delivered its data for the bucket,
//! and per group the mean absolute and the mean signed error. Pure: the
//! caller reads the store and live state and passes the numbers in.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{AssetKind, ForecastRow, GroupConfig, Unit};
use crate::rollup::tidy;

/// Length of one stored minute, seconds.
const MINUTE_SECS: i64 = 60;

/// Whether one asset's data reaches the end of a bucket: its newest stored
/// minute (start, epoch seconds) is the bucket's last minute or later, or,
/// without such a minute, live state has a sample at or past the end.
pub fn asset_complete(
    end: DateTime<Utc>,
    newest_minute: Option<i64>,
    last_sample: Option<DateTime<Utc>>,
) -> bool {
    newest_minute.is_some_and(|m| m >= end.timestamp() - MINUTE_SECS) || last_sample.is_some_and(|t| t >= end)
}

/// One closed bucket of one group: forecast against actual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyRow {
    pub group: String,
    pub kind: AssetKind,
    pub unit: Unit,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Demand as marketing stated it, before uplift.
    pub forecast: f64,
    pub uplift_pct: f64,
    pub effective_demand: f64,
    /// What the group's registered assets made in the bucket.
    pub actual: f64,
    /// `actual - effective_demand`: positive when the plant made more.
    pub difference: f64,
    /// `difference / effective_demand × 100`; None without demand.
    pub deviation_pct: Option<f64>,
    /// |deviation| above the group's `deviation_pct`.
    pub over_threshold: bool,
    /// Every asset's data reaches the bucket's end ([`asset_complete`]).
    pub complete: bool,
    /// `site/asset` of the assets whose data does not.
    pub missing: Vec<String>,
}

impl AccuracyRow {
    /// The row of `forecast` for `group`, given what its assets made and
    /// which of them have not delivered the whole bucket.
    pub fn new(
        group: &GroupConfig,
        forecast: &ForecastRow,
        actual: f64,
        missing: Vec<String>,
    ) -> AccuracyRow {
        let demand = forecast.effective_demand();
        let difference = actual - demand;
        let deviation = (demand > 0.0).then(|| difference / demand * 100.0);
        AccuracyRow {
            group: group.id.clone(),
            kind: group.kind,
            unit: forecast.unit,
            start: forecast.start,
            end: forecast.end,
            forecast: tidy(forecast.demand),
            uplift_pct: forecast.uplift_pct,
            effective_demand: tidy(demand),
            actual: tidy(actual),
            difference: tidy(difference),
            deviation_pct: deviation.map(tidy),
            over_threshold: deviation.is_some_and(|d| d.abs() > group.deviation_pct),
            complete: missing.is_empty(),
            missing,
        }
    }
}

/// One group's accuracy over the rows of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyTotals {
    pub buckets: usize,
    pub complete_buckets: usize,
    /// Mean |deviation %| over the complete buckets with demand; None when
    /// there are none.
    pub mape_pct: Option<f64>,
    /// Mean signed deviation % over the same buckets: positive when the
    /// plant makes more than forecast.
    pub bias_pct: Option<f64>,
}

impl AccuracyTotals {
    pub fn of(rows: &[AccuracyRow]) -> AccuracyTotals {
        let judged: Vec<f64> = rows.iter().filter(|r| r.complete).filter_map(|r| r.deviation_pct).collect();
        let mean = |f: fn(f64) -> f64| {
            (!judged.is_empty())
                .then(|| tidy(judged.iter().copied().map(f).sum::<f64>() / judged.len() as f64))
        };
        AccuracyTotals {
            buckets: rows.len(),
            complete_buckets: rows.iter().filter(|r| r.complete).count(),
            mape_pct: mean(f64::abs),
            bias_pct: mean(|d| d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_asset_is_complete_when_its_minutes_or_its_last_sample_reach_the_end() {
        let end = t("2026-01-01T01:00:00Z");
        let minute = |s: &str| Some(t(s).timestamp());
        let cases = [
            // (newest stored minute, last sample in live state, complete)
            (minute("2026-01-01T00:59:00Z"), None, true),
            (minute("2026-01-01T03:00:00Z"), None, true),
            (minute("2026-01-01T00:58:00Z"), None, false),
            (minute("2026-01-01T00:58:00Z"), Some(t("2026-01-01T01:00:00Z")), true),
            (minute("2026-01-01T00:58:00Z"), Some(t("2026-01-01T00:59:59Z")), false),
            (None, Some(t("2026-01-01T01:00:05Z")), true),
            (None, Some(t("2026-01-01T00:30:00Z")), false),
            (None, None, false),
        ];
        for (i, (newest, last, want)) in cases.into_iter().enumerate() {
            assert_eq!(asset_complete(end, newest, last), want, "case {i}: {newest:?} {last:?}");
        }
    }

    fn group() -> GroupConfig {
        GroupConfig::with_defaults("region-north", AssetKind::Feeder)
    }

    fn bucket(demand: f64, uplift_pct: f64) -> ForecastRow {
        ForecastRow {
            group: "region-north".into(),
            start: t("2026-01-01T00:00:00Z"),
            end: t("2026-02-01T00:00:00Z"),
            demand,
            unit: Unit::KWh,
            uplift_pct,
        }
    }

    #[test]
    fn a_row_holds_actual_against_effective_demand() {
        // 40,000 kWh with a 12.5 % campaign: 45,000; 5,921 made.
        let r = AccuracyRow::new(&group(), &bucket(40_000.0, 12.5), 5_921.0, vec!["north/feeder-2".into()]);
        assert_eq!(
            (r.effective_demand, r.actual, r.difference, r.deviation_pct),
            (45_000.0, 5_921.0, -39_079.0, Some(-86.842222))
        );
        assert!(r.over_threshold && !r.complete, "{r:?}");
        // Within the 10 % threshold (the edge itself is not over).
        let r = AccuracyRow::new(&group(), &bucket(1000.0, 0.0), 1100.0, Vec::new());
        assert_eq!((r.deviation_pct, r.over_threshold, r.complete), (Some(10.0), false, true));
        // No demand: no percentage, never over.
        let r = AccuracyRow::new(&group(), &bucket(0.0, 0.0), 50.0, Vec::new());
        assert_eq!((r.difference, r.deviation_pct, r.over_threshold), (50.0, None, false));
    }

    #[test]
    fn totals_count_only_complete_buckets_with_demand() {
        let g = group();
        let rows = [
            AccuracyRow::new(&g, &bucket(1000.0, 0.0), 1080.0, Vec::new()), // +8 %
            AccuracyRow::new(&g, &bucket(1000.0, 0.0), 800.0, Vec::new()),  // -20 %
            AccuracyRow::new(&g, &bucket(1000.0, 0.0), 0.0, vec!["s/a".into()]), // incomplete
            AccuracyRow::new(&g, &bucket(0.0, 0.0), 10.0, Vec::new()),      // no demand
        ];
        assert_eq!(
            AccuracyTotals::of(&rows),
            AccuracyTotals { buckets: 4, complete_buckets: 3, mape_pct: Some(14.0), bias_pct: Some(-6.0) }
        );
        assert_eq!(
            AccuracyTotals::of(&rows[2..3]),
            AccuracyTotals { buckets: 1, complete_buckets: 0, mape_pct: None, bias_pct: None }
        );
    }
}
