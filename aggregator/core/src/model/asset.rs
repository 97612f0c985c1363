//! The plant as configured: kinds of asset, registered assets and capacity
//! groups with their alert thresholds.

use serde::{Deserialize, Serialize};
use throughline_shared::{AgentId, AssetId, SiteId};

/// Kind of asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// Production line: output in pieces, rated capacity in pieces/hour.
    Line,
    /// Distribution feeder: output in kWh, rated capacity in kW.
    Feeder,
}

impl AssetKind {
    /// Unit of the output counter.
    pub fn output_unit(self) -> &'static str {
        match self {
            AssetKind::Line => "pieces",
            AssetKind::Feeder => "kWh",
        }
    }
    /// Unit of the rated capacity and of the output rate.
    pub fn rate_unit(self) -> &'static str {
        match self {
            AssetKind::Line => "pieces/h",
            AssetKind::Feeder => "kW",
        }
    }
}

fn missing_capacity() -> f64 {
    f64::NAN
}

/// A registered asset.
#[derive(Debug, Clone, Deserialize)]
pub struct AssetConfig {
    pub site: SiteId,
    pub id: AssetId,
    pub kind: AssetKind,
    /// Capacity group: the assets that serve one demand stream (a product
    /// family for lines, a region for feeders).
    pub group: String,
    /// Rated capacity: pieces/hour for a line, kW for a feeder. Absent in a
    /// file: NaN, which the config check refuses under its key, so that a
    /// misspelt key is reported with every other problem, not alone.
    #[serde(default = "missing_capacity")]
    pub rated_capacity: f64,
    /// Display name.
    pub name: Option<String>,
    /// The agents allowed to report this asset (a gateway, and its standby
    /// if it has one); telemetry from any other is refused as `not_owner`.
    /// Empty: the first agent heard owns it until an admin moves it
    /// (`PUT /api/v1/assets/{site}/{asset}/owner`).
    #[serde(default)]
    pub agents: Vec<AgentId>,
}

/// A capacity group: the assets serving one demand stream, and when to alert.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GroupConfig {
    pub id: String,
    /// Kind of its assets: `line` (plans in pieces) or `feeder` (kWh).
    pub kind: AssetKind,
    /// Display name.
    pub name: Option<String>,
    /// `schedule`/`dispatch` alert when the projected gap exceeds this share
    /// of demand, percent.
    #[serde(default = "default_shortfall")]
    pub shortfall_pct: f64,
    /// `forecast_deviation` alert when a closed bucket's actual differs from
    /// its forecast by more than this, percent of the forecast.
    #[serde(default = "default_deviation")]
    pub deviation_pct: f64,
    /// `downtime` alert when an asset has been down longer than this.
    #[serde(default = "default_downtime")]
    pub downtime_minutes: f64,
    /// `offline` alert when an agent has been silent this long.
    #[serde(default = "default_offline")]
    pub offline_secs: u64,
    /// An open gap alert resolves only when the gap falls this many
    /// percentage points below the threshold (no flapping at the edge).
    #[serde(default = "default_hysteresis")]
    pub hysteresis_pct: f64,
    /// A `schedule`/`dispatch` condition must hold this long in event time
    /// before its alert opens (0: at once), so a short stop that projects
    /// zero for the rest of the bucket is counted, not alerted.
    #[serde(default = "default_alert_after")]
    pub alert_after_secs: u64,
    /// A bucket is closed for the group once every asset's own samples have
    /// reached its end; an asset still behind counts as missing once it has
    /// been silent this long (server clock), and the bucket then closes
    /// incomplete: judged by nobody, no `forecast_deviation` alert.
    #[serde(default = "default_close_grace")]
    pub close_grace_secs: u64,
    /// How long a stop of an asset without repair history in the
    /// availability window is projected to last, minutes; none: such an
    /// asset is projected at zero for the rest of the bucket
    /// ([`crate::stops`]).
    #[serde(default)]
    pub default_repair_minutes: Option<f64>,
}

fn default_shortfall() -> f64 {
    5.0
}
fn default_deviation() -> f64 {
    10.0
}
fn default_downtime() -> f64 {
    15.0
}
fn default_offline() -> u64 {
    120
}
fn default_hysteresis() -> f64 {
    2.0
}
fn default_alert_after() -> u64 {
    120
}
fn default_close_grace() -> u64 {
    900
}

impl GroupConfig {
    /// A group with the default thresholds.
    pub fn with_defaults(id: &str, kind: AssetKind) -> GroupConfig {
        GroupConfig {
            id: id.to_string(),
            kind,
            name: None,
            shortfall_pct: default_shortfall(),
            deviation_pct: default_deviation(),
            downtime_minutes: default_downtime(),
            offline_secs: default_offline(),
            hysteresis_pct: default_hysteresis(),
            alert_after_secs: default_alert_after(),
            close_grace_secs: default_close_grace(),
            default_repair_minutes: None,
        }
    }
}
