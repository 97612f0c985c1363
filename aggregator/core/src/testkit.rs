//! Messages and assets for the core's tests: one site `s`, one agent `gw`,
//! time from 2026-11-23 08:00 UTC.

use chrono::{DateTime, Duration, TimeZone, Utc};
use throughline_shared::codec::Telemetry;
use throughline_shared::{AgentId, AssetId, Envelope, Sample, SiteId};

use crate::model::{AssetConfig, AssetKind};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
}

/// A registered line of group `g`, rated 3600 pieces/h.
pub fn reg(asset: &str) -> AssetConfig {
    AssetConfig {
        site: SiteId::parse("s").unwrap(),
        id: AssetId::parse(asset).unwrap(),
        kind: AssetKind::Line,
        group: "g".into(),
        rated_capacity: 3600.0,
        name: None,
        agents: Vec::new(),
    }
}

/// Envelope `seq` of agent `gw` for `asset`.
pub fn tel(asset: &str, seq: u64, samples: Vec<Sample>) -> Telemetry {
    Telemetry {
        site: SiteId::parse("s").unwrap(),
        asset: AssetId::parse(asset).unwrap(),
        envelope: Envelope { v: 1, agent: AgentId::parse("gw").unwrap(), seq, samples },
    }
}

/// An output counter reading `secs` after [`t0`].
pub fn out(secs: i64, output: f64) -> Sample {
    Sample { output: Some(output), ..Sample::at(t0() + Duration::seconds(secs)) }
}
