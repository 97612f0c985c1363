//! `throughline-demo [flags]`: a small simulated plant in one process until
//! SIGTERM or Ctrl-C. The flags are the aggregator's.

use anyhow::Context;
use clap::Parser;
use throughline_aggregator::cli::{init_tracing, stop_on_signal, Overrides};
use tokio_util::sync::CancellationToken;

/// Throughline demo: the aggregator with its embedded broker and three
/// simulated edge agents (the real edge-agent code) for a small plant of
/// four lines and three feeders, with an hour of forecasts. Open the
/// dashboard it prints; Ctrl-C stops everything.
#[derive(Debug, Parser)]
#[command(name = "throughline-demo", version)]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throughline-demo: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let (mut config, _) = cli.overrides.load(Some(std::env::temp_dir().join("throughline-demo")))?;
    // The default ports are often taken on the machines this is for (a
    // Mosquitto on 1883, some web service on 8080): with no address asked
    // for, the demo takes another free port and says so. A port given on
    // the command line or in a config file is used as it is, or refused.
    let defaults = cli.overrides.config.is_none();
    if defaults && cli.overrides.mqtt_listen.is_none() && cli.overrides.broker.is_none() {
        config.mqtt.listen = throughline_demo::free_or_other(config.mqtt.listen, "MQTT", "--mqtt-listen")?;
    }
    if defaults && cli.overrides.http_listen.is_none() {
        config.http.listen = throughline_demo::free_or_other(config.http.listen, "HTTP", "--http-listen")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let token = CancellationToken::new();
        tokio::spawn(stop_on_signal(token.clone()));
        throughline_demo::run(config, token).await
    })?;
    Ok(())
}
