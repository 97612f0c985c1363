//! `throughline-bench`: the tools behind `bench/suite.sh` (numbers, not tests).
//!
//! - `config`: writes an aggregator config (registered lines, feeders and
//!   probe feeders in capacity groups) and a forecast CSV for its groups.
//! - `load`: publishes protocol v1 telemetry envelopes at QoS 1 as fast as the
//!   broker takes them and times how long a consumer takes to process all of
//!   them, read from a Prometheus-style counter the consumer serves over HTTP.
//! - `count`: a minimal subscriber that only counts messages (the ceiling).
//! - `probe`: alert latency: a threshold-crossing sample until its alert
//!   event arrives, beside the broker-only round trip in the same run.
//!
//! # Layout
//! - [`plant`]: asset names, groups, envelopes, config and forecast writer.
//! - [`mqtt`]: client options and the counter poll shared by the commands.
//! - [`load`], [`count`], [`probe`]: one file per command.

mod count;
mod load;
mod mqtt;
mod plant;
mod probe;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "throughline-bench", version, about = "Benchmark tools for bench/suite.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write aggregator.toml and forecast.csv for a simulated plant.
    Config(plant::ConfigArgs),
    /// Publish a burst of telemetry and time a consumer's processing of it.
    Load(load::Args),
    /// Count the messages on a topic filter; serve the count over HTTP.
    Count(count::Args),
    /// Measure alert latency against the broker's own round trip.
    Probe(probe::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Config(a) = &cli.command {
        return plant::write_config(a);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Config(_) => Ok(()),
            Command::Load(a) => load::run(a).await,
            Command::Count(a) => count::run(a).await,
            Command::Probe(a) => probe::run(a).await,
        }
    })
}
