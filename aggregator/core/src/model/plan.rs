//! Planning vocabulary shared by forecasts, balance, alerts and
//! capable-to-promise: units, buckets, forecasts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AssetKind;

/// Unit of a demand or output quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// Pieces: the unit of lines.
    #[serde(rename = "pieces")]
    Pieces,
    /// Kilowatt-hours: the unit of feeders.
    #[serde(rename = "kWh")]
    KWh,
}

impl Unit {
    /// The wire spelling (`pieces`, `kWh`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Pieces => "pieces",
            Unit::KWh => "kWh",
        }
    }

    /// Parse the wire spelling; `kwh` and `KWH` are accepted for kWh.
    pub fn parse(s: &str) -> Option<Unit> {
        // Units in any case, both kinds (a spreadsheet writes `Pieces`, `KWH`).
        match s.trim().to_ascii_lowercase().as_str() {
            "pieces" | "piece" | "pcs" => Some(Unit::Pieces),
            "kwh" => Some(Unit::KWh),
            _ => None,
        }
    }

    /// The unit a group of this kind plans in.
    pub fn of(kind: AssetKind) -> Unit {
        match kind {
            AssetKind::Line => Unit::Pieces,
            AssetKind::Feeder => Unit::KWh,
        }
    }
}

/// One forecast bucket of one group: demand over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastRow {
    pub group: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Demand as marketing states it, before uplift.
    pub demand: f64,
    pub unit: Unit,
    /// Marketing uplift (a campaign), percent; 0 when absent.
    pub uplift_pct: f64,
}

impl ForecastRow {
    /// Demand x (1 + uplift / 100).
    pub fn effective_demand(&self) -> f64 {
        self.demand * (1.0 + self.uplift_pct / 100.0)
    }

    /// Bucket length in hours.
    pub fn hours(&self) -> f64 {
        hours_between(self.start, self.end)
    }
}

/// Hours from `a` to `b` (negative if `b` is earlier).
pub fn hours_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 3_600_000.0
}
