//! History endpoints, read from the embedded rollups (SQLite):
//! `GET /api/v1/assets/{site}/{asset}/history` (downsampled on the server)
//! and `GET /api/v1/groups/{group}/history` (demand against actual per
//! forecast bucket). Both flush the minutes not yet written first, so an
//! answer holds everything ingested before the request.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use throughline_shared::{AssetId, SiteId};

use super::auth::Reader;
use super::error::ApiError;
use crate::balance::Phase;
use crate::forecast::parse_time;
use crate::rollup::{self, tidy, Layout, DEFAULT_POINTS, MAX_POINTS};
use crate::service::history::{self, BucketActuals};
use crate::service::Services;
use crate::store::StoreError;

/// Range when the request names none: the last 24 hours.
const DEFAULT_RANGE: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    points: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GroupHistoryQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `from` and `to` (RFC 3339 or a date); defaults: `default` up to the
/// server clock. `from` must be before `to`.
pub(super) fn range(
    from: &Option<String>,
    to: &Option<String>,
    default: chrono::Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let parse = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_time(s).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}"))))
            .transpose()
    };
    let to = parse("to", to)?.unwrap_or_else(Utc::now);
    let from = parse("from", from)?.unwrap_or(to - default);
    if from >= to {
        return Err(ApiError::BadRequest(format!(
            "`from` ({}) must be before `to` ({})",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok((from, to))
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// `GET /api/v1/assets/{site}/{asset}/history?from=&to=&points=`.
pub async fn asset_history(
    State(s): State<Arc<Services>>,
    _: Reader,
    Path((site, asset)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let site = SiteId::parse(site).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let asset = AssetId::parse(asset).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (from, to) = range(&q.from, &q.to, DEFAULT_RANGE)?;
    let points = match q.points.as_deref() {
        None => DEFAULT_POINTS,
        Some(p) => {
            p.trim().parse::<u32>().ok().filter(|n| (1..=MAX_POINTS).contains(n)).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`points` must be a whole number from 1 to {MAX_POINTS}, found {p:?}"
                ))
            })?
        }
    };
    let layout = Layout::new(from, to, points).map_err(ApiError::BadRequest)?;
    // Some(unit) when live state knows the asset (unit None: unregistered).
    let live = s
        .live
        .read(|st| st.asset(&site, &asset).map(|a| a.registration.as_ref().map(|r| r.kind.output_unit())));
    let shared = s.clone();
    let (site2, asset2) = (site.clone(), asset.clone());
    let read = tokio::task::spawn_blocking(move || {
        let complete = history::flush_before_read(&shared);
        let known = live.is_some() || shared.store.has_rollups(&site2, &asset2)?;
        let totals = if known {
            shared.store.rollup_buckets(&site2, &asset2, layout.from, layout.to, layout.step)?
        } else {
            Vec::new()
        };
        Ok::<_, StoreError>((known, totals, complete))
    });
    let (known, totals, complete) = read.await??;
    if !known {
        return Err(ApiError::NotFound(format!(
            "no asset `{asset}` at site `{site}` has been registered or heard from"
        )));
    }
    Ok(Json(json!({
        "site": site,
        "asset": asset,
        "output_unit": live.flatten(),
        "from": at(layout.from),
        "to": at(layout.to),
        "step_seconds": layout.step,
        "points": layout.len(),
        // false while the store cannot be written: newer data is not in it yet
        "complete": complete,
        "buckets": rollup::buckets(&layout, &totals),
    })))
}

/// `GET /api/v1/groups/{group}/history?from=&to=`: per forecast bucket in
/// force overlapping the range, demand against the group's actual output.
pub async fn group_history(
    State(s): State<Arc<Services>>,
    _: Reader,
    Path(group): Path<String>,
    Query(q): Query<GroupHistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let g = s.live.planner().group(&group).cloned().ok_or_else(|| {
        ApiError::NotFound(format!("no capacity group `{group}`; see GET /api/v1/balance for the groups"))
    })?;
    let (from, to) = range(&q.from, &q.to, DEFAULT_RANGE)?;
    let shared = s.clone();
    let gid = g.id.clone();
    let read = tokio::task::spawn_blocking(move || {
        let complete = history::flush_before_read(&shared);
        history::bucket_actuals(&shared, &gid, from, to, |_| true).map(|a| (a, complete))
    });
    let (actuals, complete) = read.await??;
    let rows: Vec<_> = actuals.iter().map(|b| b.forecast.row.clone()).collect();
    let (event_time, balances) = s.live.balances(&rows, Some(&g.id), Some(from), Some(to));
    let buckets: Vec<Value> = actuals
        .iter()
        .map(|BucketActuals { forecast: f, assets: per_asset }| {
            let actual: f64 = per_asset.iter().map(|(_, t)| t.output).sum();
            let demand = f.effective_demand;
            let gap = demand - actual;
            let b = balances.iter().find(|b| b.start == f.row.start && b.end == f.row.end);
            let ahead = b.filter(|b| b.phase != Phase::Closed);
            json!({
                "start": f.row.start,
                "end": f.row.end,
                "phase": b.map(|b| b.phase),
                "unit": f.row.unit,
                "demand": tidy(f.row.demand),
                "uplift_pct": f.row.uplift_pct,
                "effective_demand": tidy(demand),
                "actual": tidy(actual),
                "gap": tidy(gap),
                "gap_pct": (demand > 0.0).then(|| tidy(gap / demand * 100.0)),
                "projected": ahead.map(|b| tidy(b.projected)),
                "projected_gap": ahead.map(|b| tidy(b.gap)),
                "status": ahead.map(|b| b.status),
                "forecast_version": f.version,
                "assets": per_asset.iter().map(|(a, t)| json!({
                    "site": a.site,
                    "asset": a.id,
                    "output": tidy(t.output),
                    "covered_seconds": tidy(t.covered_s()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "group": g.id,
        "kind": g.kind,
        "from": from,
        "to": to,
        "event_time": event_time,
        // false while the store cannot be written: newer data is not in it yet
        "complete": complete,
        "buckets": buckets,
    })))
}
