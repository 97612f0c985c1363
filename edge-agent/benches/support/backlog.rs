//! A realistic spool backlog: what the agent spools while the broker is
//! away, made by the agent's own simulator and encoded with the protocol's
//! own `encode_envelope`.
//!
//! Shared by the `spool` benchmark and the `fill-spool` / `publish-backlog`
//! examples (included with `#[path]`), so all three handle the same bytes.
//!
//! Assets alternate between a production line and a feeder; each reads once
//! a second. Envelopes are cut every `per_envelope` samples per asset (10:
//! the agent during an outage, `outage_batch_delay_ms` = 10 s at 1 Hz; 1: an
//! online agent publishing each reading) and ordered by time, then asset, as
//! the agent's batcher emits them. `seq` increases by one per envelope.

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use throughline_edge_agent::config::{Episode, SimProfile, SimulatorConfig};
use throughline_edge_agent::source::simulator::Simulator;
use throughline_shared::codec::encode_envelope;
use throughline_shared::{AgentId, AssetId, AssetState, Envelope, SiteId, Topic, PROTOCOL_VERSION};

/// Site and agent of the benchmark's topics.
pub const SITE: &str = "bench-site";
pub const AGENT: &str = "bench-agent";

/// One spooled envelope: topic and payload (compact JSON).
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub payload: Vec<u8>,
    pub samples: usize,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Shape {
    pub site: String,
    pub agent: String,
    /// Asset ids; an id starting with `feeder` simulates a feeder, any other a line.
    pub assets: Vec<String>,
    /// Seconds of readings per asset (one reading a second).
    pub seconds: u64,
    /// Samples per envelope.
    pub per_envelope: usize,
    /// `seq` of the first envelope.
    pub first_seq: u64,
    /// Timestamp of the first reading.
    pub start: DateTime<Utc>,
}

impl Shape {
    /// The benchmark's standard backlog: `assets` assets (`line-01`,
    /// `feeder-01`, `line-02`, ...) for one hour.
    pub fn hour(assets: usize, per_envelope: usize) -> Shape {
        Shape {
            site: SITE.into(),
            agent: AGENT.into(),
            assets: asset_ids(assets),
            seconds: 3600,
            per_envelope,
            first_seq: 1,
            start: DateTime::from_timestamp(1_790_000_000, 0).expect("valid timestamp"),
        }
    }
}

/// `n` asset ids, lines and feeders alternating.
pub fn asset_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(
            |i| {
                if i % 2 == 0 {
                    format!("line-{:02}", i / 2 + 1)
                } else {
                    format!("feeder-{:02}", i / 2 + 1)
                }
            },
        )
        .collect()
}

/// Simulator settings for asset number `i` named `id`: lines of 1200 to
/// 2400 pieces/h drawing 30 to 54 kW (the first with a 5-minute jam), feeders
/// between 200 and 900 kW.
pub fn simulator_config(i: usize, id: &str) -> SimulatorConfig {
    let k = i as f64;
    let feeder = id.starts_with("feeder");
    SimulatorConfig {
        profile: if feeder { SimProfile::Feeder } else { SimProfile::Line },
        seed: 100 + i as u64,
        interval_ms: 1000,
        rate_per_hour: if feeder { 0.0 } else { 1200.0 + 120.0 * k },
        running_load_kw: (!feeder).then_some(30.0 + 2.4 * k),
        base_kw: if feeder { 200.0 + 20.0 * k } else { 0.0 },
        peak_kw: if feeder { 600.0 + 30.0 * k } else { 0.0 },
        period_s: 86_400,
        jitter_pct: 2.0,
        start_output: 10_000.0 * (k + 1.0),
        episodes: if i == 0 {
            vec![Episode {
                start_s: 1200,
                duration_s: 300,
                state: Some(AssetState::Down),
                reason: Some("jam".into()),
                slowdown_pct: None,
            }]
        } else {
            Vec::new()
        },
    }
}

/// The backlog, in the order the agent spools it.
pub fn generate(shape: &Shape) -> Vec<Record> {
    let site = SiteId::parse(shape.site.as_str()).expect("valid site id");
    let agent = AgentId::parse(shape.agent.as_str()).expect("valid agent id");
    let per = shape.per_envelope.max(1);
    let mut sims: Vec<(String, Simulator)> = shape
        .assets
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let asset = AssetId::parse(id.as_str()).expect("valid asset id");
            (Topic::telemetry(&site, &agent, &asset), Simulator::new(simulator_config(i, id)))
        })
        .collect();
    let mut out = Vec::with_capacity(shape.assets.len() * (shape.seconds as usize).div_ceil(per));
    let mut seq = shape.first_seq;
    let mut tick = 0;
    while tick < shape.seconds {
        let n = per.min((shape.seconds - tick) as usize);
        for (topic, sim) in &mut sims {
            let samples = (0..n)
                .map(|j| sim.next_sample(shape.start + Duration::seconds((tick + j as u64) as i64)))
                .collect();
            let envelope = Envelope { v: PROTOCOL_VERSION, agent: agent.clone(), seq, samples };
            seq += 1;
            out.push(Record { topic: topic.clone(), payload: encode_envelope(&envelope), samples: n });
        }
        tick += n as u64;
    }
    out
}
