//! `edge-agent --config FILE`: parse, load, run until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Throughline edge agent: reads the production lines and feeders named in
/// its config and publishes their throughput, state and load to the MQTT
/// broker as Throughline protocol v1 (QoS 1).
///
/// The config file (TOML) names the agent, its site, the broker and each
/// asset's source; see deploy/edge-agent.example.toml and the README.
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.
#[derive(Debug, Parser)]
#[command(name = "edge-agent", version)]
struct Cli {
    /// Path of the agent's TOML config file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the config, print a summary and exit without connecting.
    #[arg(long)]
    check: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message only: a backtrace helps nobody fix a config file.
            eprintln!("edge-agent: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let config = throughline_edge_agent::AgentConfig::load(&cli.config)?;
    if cli.check {
        println!(
            "{}: OK: agent {} at site {}, broker {}, {} asset(s)",
            cli.config.display(),
            config.agent,
            config.site,
            config.mqtt.url,
            config.assets.len()
        );
        return Ok(());
    }
    // One thread: the agent's work is small and mostly waiting; a single
    // thread keeps the resident memory of a Pi agent low (see the README's
    // benchmark section).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let token = CancellationToken::new();
        tokio::spawn(stop_on_signal(token.clone()));
        throughline_edge_agent::run(config, &cli.config, token).await
    })?;
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `RUST_LOG` as `level` or `level,target=level,...` (no regex filters:
    // they would cost the edge binary half a megabyte).
    let default: tracing_subscriber::filter::Targets = "info,rumqttc=warn".parse().expect("valid filter");
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) => v.parse().unwrap_or_else(|e| {
            eprintln!("edge-agent: RUST_LOG={v:?} not understood ({e}); using info");
            default.clone()
        }),
        Err(_) => default,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
        .with(filter)
        .init();
}

async fn stop_on_signal(token: CancellationToken) {
    throughline_shared::signal::stop_requested().await;
    tracing::info!("stop requested; flushing and disconnecting");
    token.cancel();
}
