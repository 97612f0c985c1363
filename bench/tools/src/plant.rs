//! The simulated plant: asset names and groups, the envelopes its agents
//! publish, and the aggregator config and forecast that register it.
//!
//! Assets `0..lines` are lines `line-NNNNN` in groups `family-NNN`; the next
//! `feeders` are feeders `feeder-NNNNN` in groups `region-NNN`; `group_size`
//! assets per group. Asset `i` is published by agent `gw-{i % agents}`.
//! Probe feeders `probe-NNN` (for `probe`) each form a group of their own,
//! rated [`PROBE_RATED_KW`], so that one sample above it opens one alert.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};

/// Rated capacity of a line, pieces/hour: one piece a second.
pub const LINE_RATED: f64 = 3600.0;
/// Rated capacity of a feeder, kW (the load stays at 40-50 kW).
pub const FEEDER_RATED_KW: f64 = 80.0;
/// Rated capacity of a probe feeder, kW.
pub const PROBE_RATED_KW: f64 = 100.0;

/// The plant's shape, shared by `config` and `load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Site of every asset.
    #[arg(long, default_value = "bench-site")]
    pub site: String,
    /// Registered lines.
    #[arg(long, default_value_t = 100)]
    pub lines: usize,
    /// Registered feeders.
    #[arg(long, default_value_t = 20)]
    pub feeders: usize,
    /// Assets per capacity group.
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// Agents (gateways) the assets are spread over; `load` opens one MQTT
    /// connection per agent.
    #[arg(long, default_value_t = 4)]
    pub agents: usize,
}

/// One asset of the plant.
#[derive(Debug, Clone)]
pub struct Asset {
    pub id: String,
    pub group: String,
    pub feeder: bool,
    pub agent: usize,
}

impl Shape {
    pub fn assets(&self) -> Vec<Asset> {
        let g = self.group_size.max(1);
        let agents = self.agents.max(1);
        (0..self.lines + self.feeders)
            .map(|i| {
                let (id, group, feeder) = if i < self.lines {
                    (format!("line-{i:05}"), format!("family-{:03}", i / g), false)
                } else {
                    let j = i - self.lines;
                    (format!("feeder-{j:05}"), format!("region-{:03}", j / g), true)
                };
                Asset { id, group, feeder, agent: i % agents }
            })
            .collect()
    }

    pub fn agent_name(&self, agent: usize) -> String {
        format!("gw-{agent:03}")
    }

    pub fn telemetry_topic(&self, agent: &str, asset: &str) -> String {
        format!("throughline/v1/{}/{agent}/{asset}/telemetry", self.site)
    }
}

pub fn probe_name(i: usize) -> String {
    format!("probe-{i:03}")
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Sample `k` of an asset at event time `ts`, as a line or a feeder at 1 Hz
/// reports it: a line makes a piece a second and stops for a jam 30 s in
/// every 15 min; a feeder's energy counter follows its 40-50 kW load.
pub fn sample(out: &mut String, asset: &Asset, k: u64, ts: DateTime<Utc>) {
    let ts = rfc3339(ts);
    if asset.feeder {
        let load = 40.0 + (k % 20) as f64 * 0.5;
        let kwh = k as f64 * 45.0 / 3600.0;
        let _ = write!(out, r#"{{"ts":"{ts}","output":{kwh:.3},"load_kw":{load}}}"#);
    } else {
        let (made, r) = ((k / 900) * 870 + (k % 900).min(870), k % 900);
        if r >= 870 {
            let _ = write!(out, r#"{{"ts":"{ts}","output":{made},"state":"down","reason":"jam"}}"#);
        } else {
            let _ = write!(out, r#"{{"ts":"{ts}","output":{made},"state":"running"}}"#);
        }
    }
}

/// A v1 envelope around already formatted samples.
pub fn envelope(agent: &str, seq: u64, samples: &str) -> String {
    format!(r#"{{"v":1,"agent":"{agent}","seq":{seq},"samples":[{samples}]}}"#)
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// Probe feeders (one group each) for `probe`.
    #[arg(long, default_value_t = 0)]
    pub probes: usize,
    /// The external broker, mqtt://HOST:PORT.
    #[arg(long)]
    pub broker: String,
    /// Alert evaluation period of the aggregator, ms.
    #[arg(long, default_value_t = 1000)]
    pub evaluate_ms: u64,
    /// History flush period of the aggregator, s.
    #[arg(long, default_value_t = 10)]
    pub flush_secs: u64,
    /// Directory to write aggregator.toml and forecast.csv into.
    #[arg(long)]
    pub out: PathBuf,
}

/// Write `aggregator.toml` and `forecast.csv`: 8-hour buckets from yesterday
/// 00:00 to the day after tomorrow; every other line group's demand is above
/// what it can make (so `schedule` alerts open and stay open), feeder groups
/// ask for half their rated energy, probe groups for almost nothing.
pub fn write_config(a: &ConfigArgs) -> anyhow::Result<()> {
    let s = &a.shape;
    let mut toml = String::new();
    let _ = writeln!(toml, "# Written by throughline-bench config for bench/suite.sh.");
    let _ = writeln!(toml, "[mqtt]\nbroker = \"{}\"\nclient_id = \"bench-aggregator\"", a.broker);
    let _ = writeln!(toml, "persistent_session = false\n");
    let _ = writeln!(toml, "[planning]\nevaluate_every_ms = {}\n", a.evaluate_ms);
    let _ = writeln!(toml, "[history]\nflush_secs = {}\n", a.flush_secs);
    let assets = s.assets();
    let mut groups: Vec<(String, bool)> = Vec::new();
    for x in &assets {
        if groups.last().is_none_or(|(g, _)| *g != x.group) {
            groups.push((x.group.clone(), x.feeder));
        }
    }
    for (g, feeder) in &groups {
        let kind = if *feeder { "feeder" } else { "line" };
        let _ = writeln!(toml, "[[groups]]\nid = \"{g}\"\nkind = \"{kind}\"\n");
    }
    for i in 0..a.probes {
        let _ = writeln!(toml, "[[groups]]\nid = \"{}\"\nkind = \"feeder\"\n", probe_name(i));
    }
    for x in &assets {
        let (kind, rated) = if x.feeder { ("feeder", FEEDER_RATED_KW) } else { ("line", LINE_RATED) };
        let _ = writeln!(
            toml,
            "[[assets]]\nsite = \"{}\"\nid = \"{}\"\nkind = \"{kind}\"\ngroup = \"{}\"\nrated_capacity = {rated}\n",
            s.site, x.id, x.group
        );
    }
    for i in 0..a.probes {
        let p = probe_name(i);
        let _ = writeln!(
            toml,
            "[[assets]]\nsite = \"{}\"\nid = \"{p}\"\nkind = \"feeder\"\ngroup = \"{p}\"\nrated_capacity = {PROBE_RATED_KW}\n",
            s.site
        );
    }

    let day = Utc::now().duration_trunc(Duration::days(1))?;
    let mut csv = String::from("group,start,end,demand,unit,uplift_pct\n");
    let g = s.group_size.max(1) as f64;
    for b in 0..9 {
        let start = day - Duration::days(1) + Duration::hours(8 * b);
        let (from, to) = (rfc3339(start), rfc3339(start + Duration::hours(8)));
        for (n, (id, feeder)) in groups.iter().enumerate() {
            let (demand, unit) = if *feeder {
                (g * FEEDER_RATED_KW * 8.0 * 0.5, "kWh")
            } else {
                (g * LINE_RATED * 8.0 * if n % 2 == 0 { 0.8 } else { 1.3 }, "pieces")
            };
            let _ = writeln!(csv, "{id},{from},{to},{demand},{unit},");
        }
        for i in 0..a.probes {
            let _ = writeln!(csv, "{},{from},{to},1,kWh,", probe_name(i));
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    std::fs::write(a.out.join("aggregator.toml"), toml)?;
    std::fs::write(a.out.join("forecast.csv"), csv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughline_shared::codec::{decode, Inbound};
    use throughline_shared::Limits;

    /// The load's envelopes must pass the protocol's validation: a rejected
    /// envelope is never counted, and the load would wait for it in vain.
    #[test]
    fn generated_envelopes_pass_validation_and_counters_never_go_back() {
        let shape = Shape { site: "bench-site".into(), lines: 3, feeders: 2, group_size: 2, agents: 2 };
        let now = Utc::now();
        let mut states = std::collections::HashSet::new();
        for (i, x) in shape.assets().iter().enumerate() {
            let mut body = String::new();
            // Samples 7 s apart over 7,000 s: every phase of a jam cycle.
            for k in 0..1000u64 {
                if k > 0 {
                    body.push(',');
                }
                sample(&mut body, x, k * 7, now - Duration::seconds(7000 - 7 * k as i64));
            }
            let agent = shape.agent_name(x.agent);
            let topic = shape.telemetry_topic(&agent, &x.id);
            let payload = envelope(&agent, i as u64 + 1, &body);
            let t = match decode(&topic, payload.as_bytes(), now, &Limits::default()) {
                Ok(Inbound::Telemetry(t)) => t,
                other => panic!("{topic}: {other:?}"),
            };
            assert_eq!((t.asset.to_string(), t.envelope.samples.len()), (x.id.clone(), 1000));
            let outputs: Vec<f64> = t.envelope.samples.iter().filter_map(|s| s.output).collect();
            assert_eq!(outputs.len(), 1000);
            assert!(outputs.windows(2).all(|w| w[1] >= w[0]), "{}: counter went back", x.id);
            states.extend(t.envelope.samples.iter().map(|s| format!("{:?}", s.state)));
        }
        // Lines run and stop for jams; feeders report no state.
        assert_eq!(states.len(), 3, "{states:?}");
    }
}
