//! `aggregator [run|check|import-forecast] [flags]`: parse, load, run until
//! SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use throughline_aggregator::cli::{init_tracing, stop_on_signal, Overrides};
use throughline_aggregator::App;
use tokio_util::sync::CancellationToken;

/// Throughline aggregator: receives line and feeder telemetry over MQTT
/// (protocol v1), keeps the live state of every asset and serves it over
/// HTTP (/api/v1/assets, /api/v1/agents, /metrics, /healthz).
///
/// By default it embeds its own MQTT broker on 127.0.0.1:1883; with --broker
/// it subscribes to an external one (Mosquitto, EMQX, ...) instead.
/// Flags override the config file. Logs go to stderr (RUST_LOG=debug for more;
/// the embedded broker's own logs are off unless RUST_LOG names rumqttd).
#[derive(Debug, Parser)]
#[command(name = "aggregator", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the aggregator (the default).
    Run,
    /// The demo is its own program now: `throughline-demo`.
    #[command(hide = true)]
    Demo,
    /// Validate the configuration (file plus flags), print a summary, exit.
    Check,
    /// Import a forecast file (CSV or JSON, by extension) into the state
    /// store under the data dir: all or nothing, every error listed by line
    /// and column. A running aggregator picks it up within a second.
    ImportForecast {
        /// The forecast file (`.csv` or `.json`).
        file: PathBuf,
        /// Name recorded as the importer.
        #[arg(long, default_value = "command line")]
        by: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message only: a backtrace helps nobody fix a config file.
            eprintln!("aggregator: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Some(Command::Demo)) {
        anyhow::bail!(
            "the demo is its own program, so that the aggregator does not carry the edge agent: \
             run `cargo run -p throughline-demo` (or the installed `throughline-demo`) with the same flags"
        );
    }
    let (config, origin) = cli.overrides.load(None)?;
    if matches!(cli.command, Some(Command::Check)) {
        config.validate(&origin)?;
        println!(
            "{origin}: OK: {} registered asset(s), HTTP {}, broker {}",
            config.assets.len(),
            config.http.listen,
            config.mqtt.broker.clone().unwrap_or_else(|| format!("embedded on {}", config.mqtt.listen))
        );
        return Ok(());
    }
    if let Some(Command::ImportForecast { file, by }) = &cli.command {
        config.validate(&origin)?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let kinds = config.planner().group_kinds();
        let json = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if json {
            throughline_aggregator::forecast::parse_json(&text, &kinds)
        } else {
            throughline_aggregator::forecast::parse_csv(&text, &kinds)
        };
        let rows = match parsed {
            Ok(rows) => rows,
            Err(refusal) => {
                for e in refusal.errors() {
                    eprintln!("{}: {e}", file.display());
                }
                if refusal.len() < refusal.total() {
                    eprintln!("{}: ... and {} more", file.display(), refusal.total() - refusal.len());
                }
                anyhow::bail!("{}: refused, nothing imported ({} error(s))", file.display(), refusal.total());
            }
        };
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let store = throughline_aggregator::store::Store::open(
            &config.data_dir.join(throughline_aggregator::STORE_FILE),
        )?;
        let source = if json { "json file" } else { "csv file" };
        let s = store.import_forecasts(&rows, source, by, chrono::Utc::now())?;
        println!(
            "{}: imported {} bucket(s) ({} replacing an earlier version) as import {} into {}",
            file.display(),
            s.rows,
            s.replaced,
            s.import_id,
            config.data_dir.display()
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let token = CancellationToken::new();
        tokio::spawn(stop_on_signal(token.clone()));
        let app = App::build(config, &origin).await?;
        // One stable line on stdout for scripts and tests.
        println!(
            "listening http=http://{} mqtt={} broker={}",
            app.http_addr(),
            app.broker_url(),
            if app.embedded_broker() { "embedded" } else { "external" }
        );
        app.run(token).await?;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
