//! Balance engine: one forecast bucket of one capacity group held against
//! what its assets have made and can still make. Pure: no I/O, no clock;
//! `now` is event time (the latest sample time), so replayed data gives the
//! same numbers as live data.
//!
//! Lines: supply = output made in the bucket so far + projected output for
//! the rest of it; each running asset contributes its recent rate while
//! running x its measured availability x the hours left; an asset that is
//! down contributes the same from its expected return on (the projection
//! takes it from the asset's repair history, [`crate::stops`]), or nothing
//! without one; idle, in setup or maintenance, nothing until it reports
//! running again. gap = effective demand - supply.
//!
//! Feeders: supply = energy delivered so far + what the group's rated
//! capacity can deliver in the hours left (x availability), a down feeder's
//! from its expected return; `projected` is the energy if the current load
//! continues. Peak and current load are held against the rated capacity: a
//! group loaded above it is short at once.
//!
//! Each asset's "hours left" in a bucket under way are its own: from its
//! own event time ([`AssetPlan::as_of`], its watermark) or the bucket's
//! start, whichever is later, to the end. What it made reaches up to its
//! watermark, so an asset whose data is behind the plant's `now` (a
//! gateway sending its backlog) projects the time in between too. The
//! balance's `hours_left` is the plant's: from `now`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use throughline_shared::{AssetId, AssetState, SiteId};

use crate::model::{hours_between, ForecastRow, Unit};
use crate::model::{AssetKind, GroupConfig};
use crate::stops::ReturnBasis;

/// One asset of the group as the engine sees it for one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetPlan {
    pub site: SiteId,
    pub asset: AssetId,
    /// Pieces/h for a line, kW for a feeder.
    pub rated: f64,
    pub state: Option<AssetState>,
    /// The asset's own event time: `min(now, its newest sample time)`; none
    /// when never heard from (then its time left is the plant's). Its rate,
    /// availability and expected return are as of this time, and in a
    /// bucket under way it projects from here (or the bucket's start).
    pub as_of: Option<DateTime<Utc>>,
    /// Output made in `[bucket start, min(now, bucket end))`.
    pub made: f64,
    /// Output per hour while running, over the recent window (None: no
    /// running time in the window).
    pub rate_running: Option<f64>,
    /// Running / (running + down) over the availability window; 1 without data.
    pub availability: f64,
    /// Current load, kW.
    pub load_kw: Option<f64>,
    /// Highest load in the bucket so far, kW.
    pub peak_kw: Option<f64>,
    /// A down asset: when it is expected back (none: it adds nothing for
    /// the rest of the bucket).
    pub expected_return: Option<DateTime<Utc>>,
    /// A down asset: how `expected_return` was found.
    pub return_basis: Option<ReturnBasis>,
}

/// Where a bucket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    AtRisk,
    Short,
}

/// Whether the bucket lies ahead, is under way, or is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Future,
    Open,
    Closed,
}

/// One asset's part of a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub site: SiteId,
    pub asset: AssetId,
    pub state: Option<AssetState>,
    pub made: f64,
    pub projected: f64,
    /// Its own event time (its watermark, at most the balance's `now`):
    /// what it made reaches up to here.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
    /// Its own hours left in the bucket: from `as_of` (or the bucket's
    /// start) to its end; the balance's `hours_left` is from `now`. A down
    /// asset expected back makes its rate for the part after its return.
    #[serde(default)]
    pub hours_left: f64,
    /// Rate used for the projection (units/h), after availability.
    pub rate: f64,
    /// Capacity it could add per hour (rated minus what it makes now).
    pub spare_rate: f64,
    /// A down asset: when it is projected back (none: at zero for the rest
    /// of the bucket); it makes `rate` from then on.
    #[serde(default)]
    pub expected_return: Option<DateTime<Utc>>,
    /// A down asset: the assumption behind `expected_return`.
    #[serde(default)]
    pub return_basis: Option<ReturnBasis>,
}

/// The balance of one (group, bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketBalance {
    pub group: String,
    pub kind: AssetKind,
    pub unit: Unit,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub phase: Phase,
    /// Event time the balance was computed at.
    pub now: DateTime<Utc>,
    pub hours_left: f64,
    pub demand: f64,
    pub uplift_pct: f64,
    /// Demand x (1 + uplift/100).
    pub effective_demand: f64,
    /// Output (lines) or energy (feeders) made in the bucket so far.
    pub made: f64,
    /// Lines: made + projected rest. Feeders: made + current load x hours left.
    pub projected: f64,
    /// Lines: same as projected. Feeders: made + rated capacity x availability x hours left.
    pub supply: f64,
    pub gap: f64,
    /// gap / effective demand, percent (0 when demand is 0).
    pub gap_pct: f64,
    pub status: Status,
    /// Sum of the projection rates of running assets (units/h); a down line
    /// expected back is not in it.
    pub group_rate: f64,
    /// Sum of the assets' spare rates (units/h).
    pub spare_rate: f64,
    /// Feeders: sum of rated kW; lines: sum of rated pieces/h.
    pub rated_total: f64,
    /// Feeders: current load of the group, kW.
    pub load_kw: Option<f64>,
    /// Feeders: sum of the assets' peak loads in the bucket, kW.
    pub peak_load_kw: Option<f64>,
    /// Lines: hours at the current group rate that would close the gap.
    pub extra_hours: Option<f64>,
    /// Feeders: load above the rated capacity now or at the bucket's peak, kW.
    pub overload_kw: f64,
    pub assets: Vec<Contribution>,
}

/// Compute the balance of `forecast` for `group` at event time `now`.
pub fn balance(
    group: &GroupConfig,
    forecast: &ForecastRow,
    assets: &[AssetPlan],
    now: DateTime<Utc>,
) -> BucketBalance {
    let phase = if now >= forecast.end {
        Phase::Closed
    } else if now < forecast.start {
        Phase::Future
    } else {
        Phase::Open
    };
    let hours_left = match phase {
        Phase::Closed => 0.0,
        Phase::Future => forecast.hours(),
        Phase::Open => hours_between(now, forecast.end),
    };
    let effective_demand = forecast.effective_demand();
    let mut contributions = Vec::with_capacity(assets.len());
    let (mut made, mut projected_rest, mut group_rate, mut spare_rate, mut rated_total) =
        (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut capacity_rest, mut load_now, mut peak, mut any_load) = (0.0, 0.0, 0.0, false);
    for a in assets {
        let asset_made = if phase == Phase::Future { 0.0 } else { a.made };
        made += asset_made;
        rated_total += a.rated;
        let availability = a.availability.clamp(0.0, 1.0);
        // The asset's own time left: from its own event time, or the
        // bucket's start.
        let from = a.as_of.map_or(now, |t| t.min(now)).max(forecast.start);
        let own_left = match phase {
            Phase::Closed => 0.0,
            Phase::Future | Phase::Open => hours_between(from, forecast.end),
        };
        // A down asset expected back produces from its return on: the hours
        // of the rest of the bucket after it.
        let back = a.expected_return.filter(|_| a.state == Some(AssetState::Down));
        let hours = match (back, phase) {
            (_, Phase::Closed) | (None, _) => own_left,
            (Some(t), _) => hours_between(t.max(from), forecast.end).clamp(0.0, own_left),
        };
        let (rate, spare) = match group.kind {
            AssetKind::Line => match a.state {
                Some(AssetState::Running) => {
                    let r = a.rate_running.unwrap_or(a.rated);
                    (r * availability, (a.rated - r).max(0.0))
                }
                Some(AssetState::Idle) => (0.0, a.rated),
                Some(AssetState::Down) if back.is_some() => {
                    (a.rate_running.unwrap_or(a.rated) * availability, 0.0)
                }
                _ => (0.0, 0.0),
            },
            AssetKind::Feeder => {
                let kw = a.load_kw.unwrap_or(0.0);
                if let Some(l) = a.load_kw {
                    any_load = true;
                    load_now += l;
                }
                if let Some(p) = a.peak_kw {
                    peak += p;
                }
                // Only a feeder known to be in service adds capacity; a
                // stale or silent one (state unknown) counts as out.
                let in_service = matches!(a.state, Some(AssetState::Running | AssetState::Idle));
                if in_service || back.is_some() {
                    capacity_rest += a.rated * availability * hours;
                }
                (kw, (a.rated - kw).max(0.0))
            }
        };
        // A feeder's `projected` is its current load continuing.
        let asset_projected = rate * if group.kind == AssetKind::Line { hours } else { own_left };
        projected_rest += asset_projected;
        if back.is_none() || group.kind == AssetKind::Feeder {
            group_rate += rate;
        }
        spare_rate += spare;
        contributions.push(Contribution {
            site: a.site.clone(),
            asset: a.asset.clone(),
            state: a.state,
            made: asset_made,
            projected: asset_projected,
            as_of: a.as_of,
            hours_left: own_left,
            rate,
            spare_rate: spare,
            expected_return: back,
            return_basis: a.return_basis.clone(),
        });
    }
    let projected = made + projected_rest;
    let supply = match group.kind {
        AssetKind::Line => projected,
        AssetKind::Feeder => made + capacity_rest,
    };
    let gap = effective_demand - supply;
    let gap_pct = if effective_demand > 0.0 { gap / effective_demand * 100.0 } else { 0.0 };
    let mut b = BucketBalance {
        group: group.id.clone(),
        kind: group.kind,
        unit: Unit::of(group.kind),
        start: forecast.start,
        end: forecast.end,
        phase,
        now,
        hours_left,
        demand: forecast.demand,
        uplift_pct: forecast.uplift_pct,
        effective_demand,
        made,
        projected,
        supply,
        gap,
        gap_pct,
        status: Status::Ok,
        group_rate,
        spare_rate,
        rated_total,
        load_kw: (group.kind == AssetKind::Feeder && any_load).then_some(load_now),
        peak_load_kw: (group.kind == AssetKind::Feeder && peak > 0.0).then_some(peak),
        extra_hours: (gap > 0.0 && group_rate > 0.0 && group.kind == AssetKind::Line)
            .then(|| gap / group_rate),
        overload_kw: 0.0,
        assets: contributions,
    };
    if b.kind == AssetKind::Feeder && phase != Phase::Future {
        let load = b.load_kw.unwrap_or(0.0).max(b.peak_load_kw.unwrap_or(0.0));
        b.overload_kw = (load - b.rated_total).max(0.0);
    }
    b.status = if gap_pct > group.shortfall_pct || (b.kind == AssetKind::Feeder && b.overload_kw > 0.0) {
        Status::Short
    } else if gap_pct > 0.0 {
        Status::AtRisk
    } else {
        Status::Ok
    };
    b
}

#[cfg(test)]
mod tests;
