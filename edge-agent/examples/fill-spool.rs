//! Fill an agent's spool with a backlog, as if the broker had been away:
//! by default one hour of readings at 1 Hz in envelopes of 10 samples, on the
//! agent's own telemetry topics, with increasing `seq`.
//!
//! ```sh
//! cargo run --release -p throughline-edge-agent --example fill-spool -- \
//!     --state-dir /tmp/agent-state --site plant-a --agent gw-1 \
//!     --asset line-01 --asset feeder-01
//! ```
//!
//! Used by `bench/edge-agent.sh` to time the agent's replay. Only the public
//! `Spool` API is used; the agent finds the records at its next start.

#[path = "../benches/support/backlog.rs"]
mod backlog;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use throughline_edge_agent::spool::{Appended, Spool, SpoolConfig};

/// Append a simulated backlog to `STATE_DIR/spool`.
#[derive(Debug, Parser)]
struct Cli {
    /// The agent's `state_dir`.
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long)]
    site: String,
    #[arg(long)]
    agent: String,
    /// Asset ids, in the agent's config order (`feeder...` simulates a feeder,
    /// anything else a line).
    #[arg(long = "asset", required = true)]
    assets: Vec<String>,
    /// Seconds of readings per asset.
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
    /// Samples per envelope.
    #[arg(long, default_value_t = 10)]
    per_envelope: usize,
    /// `seq` of the first envelope.
    #[arg(long, default_value_t = 1)]
    first_seq: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shape = backlog::Shape {
        site: cli.site,
        agent: cli.agent,
        assets: cli.assets,
        seconds: cli.seconds,
        per_envelope: cli.per_envelope,
        first_seq: cli.first_seq,
        start: chrono::Utc::now() - chrono::Duration::seconds(cli.seconds as i64),
    };
    let records = backlog::generate(&shape);
    let dir = cli.state_dir.join("spool");
    let mut spool = Spool::open(&dir, SpoolConfig::default()).context("opening the spool")?;
    let mut bytes = 0;
    for r in &records {
        match spool.append(&r.topic, &r.payload)? {
            Appended::Stored(_) => bytes += r.payload.len(),
            Appended::Refused => anyhow::bail!("the spool refused a record (full?)"),
        }
    }
    let health = spool.close()?;
    println!(
        "spooled {} envelopes, {} samples, {bytes} payload bytes in {} (spool now holds {} records, {} bytes)",
        records.len(),
        records.iter().map(|r| r.samples).sum::<usize>(),
        dir.display(),
        health.records,
        health.bytes
    );
    Ok(())
}
