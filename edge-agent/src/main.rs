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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttc=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

async fn stop_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stop requested; flushing and disconnecting");
    token.cancel();
}
