//! The forecast-accuracy report: for every closed forecast bucket in force
//! of a group, its effective demand against what the group's registered
//! assets made (the stored per-minute rollups, so months and quarters work
//! for as long as `history.retention_days` keeps the minutes), whether
//! every asset's data reaches the bucket's end, and per group the mean
//! absolute and signed errors ([`crate::accuracy`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughline_shared::{AssetId, SiteId};

use super::{history, Services};
use crate::accuracy::{asset_complete, AccuracyRow, AccuracyTotals};
use crate::model::{AssetKind, GroupConfig, Unit};
use crate::store::StoreError;

/// What a report covers.
#[derive(Debug, Clone)]
pub struct AccuracyRequest {
    /// One group, or every configured group.
    pub group: Option<String>,
    /// Buckets overlapping `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The report: one entry per group, in configuration order.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyReport {
    /// A bucket is closed when it ends at or before this: the event time
    /// (the newest sample time), or the server clock before any sample.
    pub now: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub groups: Vec<GroupAccuracy>,
}

/// One group's closed buckets, oldest first, and their totals.
#[derive(Debug, Clone, Serialize)]
pub struct GroupAccuracy {
    pub group: String,
    pub kind: AssetKind,
    pub unit: Unit,
    /// The group's `deviation_pct`: a bucket further off is over threshold.
    pub deviation_threshold_pct: f64,
    pub totals: AccuracyTotals,
    pub buckets: Vec<AccuracyRow>,
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no capacity group `{0}`; see GET /api/v1/balance for the groups")]
    NoGroup(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Services {
    /// The forecast-accuracy report of `req`, after writing the minutes not
    /// yet stored. Blocking (SQLite): call it off the async runtime.
    pub fn forecast_accuracy(&self, req: &AccuracyRequest) -> Result<AccuracyReport, ReportError> {
        let planner = self.live.planner();
        let groups: Vec<&GroupConfig> = match &req.group {
            Some(id) => vec![planner.group(id).ok_or_else(|| ReportError::NoGroup(id.clone()))?],
            None => planner.groups.iter().collect(),
        };
        // Event time and every asset's newest sample, in one look at live state.
        let (now, last_sample) = self.live.read(|st| {
            let last: HashMap<(&SiteId, &AssetId), DateTime<Utc>> = groups
                .iter()
                .flat_map(|g| planner.group_assets(&g.id))
                .filter_map(|a| Some(((&a.site, &a.id), st.asset(&a.site, &a.id)?.newest_ts?)))
                .collect();
            (st.watermark().unwrap_or_else(Utc::now), last)
        });
        let _ = history::flush_before_read(self);
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let assets = planner.group_assets(&g.id);
            let newest = assets
                .iter()
                .map(|a| Ok(((&a.site, &a.id), self.store.rollup_newest(&a.site, &a.id)?)))
                .collect::<Result<HashMap<_, _>, StoreError>>()?;
            let buckets = history::bucket_actuals(self, &g.id, req.from, req.to, |f| f.row.end <= now)?;
            let rows: Vec<AccuracyRow> = buckets
                .iter()
                .map(|b| {
                    let end = b.forecast.row.end;
                    let actual = b.assets.iter().map(|(_, t)| t.output).sum();
                    let missing = assets
                        .iter()
                        .filter(|a| {
                            let key = (&a.site, &a.id);
                            !asset_complete(end, newest[&key], last_sample.get(&key).copied())
                        })
                        .map(|a| format!("{}/{}", a.site, a.id))
                        .collect();
                    AccuracyRow::new(g, &b.forecast.row, actual, missing)
                })
                .collect();
            out.push(GroupAccuracy {
                group: g.id.clone(),
                kind: g.kind,
                unit: Unit::of(g.kind),
                deviation_threshold_pct: g.deviation_pct,
                totals: AccuracyTotals::of(&rows),
                buckets: rows,
            });
        }
        Ok(AccuracyReport { now, from: req.from, to: req.to, groups: out })
    }
}
