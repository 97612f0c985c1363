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
    let (config, _) = cli.overrides.load(Some(std::env::temp_dir().join("throughline-demo")))?;
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
