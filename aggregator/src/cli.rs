//! The command-line flags the aggregator and the demo share: a config file
//! and the few settings a first run needs, on top of it.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::Config;
use crate::error::Error;

/// Flags that override the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// TOML config file (see deploy/aggregator.example.toml). Optional: the
    /// defaults run an embedded broker and an HTTP API on loopback.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:8080; port 0 = any free port].
    #[arg(long, value_name = "ADDR", global = true)]
    pub http_listen: Option<SocketAddr>,
    /// Embedded MQTT broker listen address [default: 127.0.0.1:1883].
    #[arg(long, value_name = "ADDR", global = true, conflicts_with = "broker")]
    pub mqtt_listen: Option<SocketAddr>,
    /// Use this external broker (mqtt://HOST:PORT) instead of the embedded one.
    #[arg(long, value_name = "URL", global = true)]
    pub broker: Option<String>,
    /// Directory for the aggregator's state [default: ./throughline-data;
    /// for the demo, a directory under the system's temp dir].
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// The config file (or the defaults) with these flags on top, and where
    /// it came from (for messages). `default_data_dir`, if given, is the
    /// data dir unless `--data-dir` names one.
    pub fn load(&self, default_data_dir: Option<PathBuf>) -> Result<(Config, String), Error> {
        let (mut config, origin) = match &self.config {
            Some(path) => (Config::load(path)?, path.display().to_string()),
            None => (Config::default(), "command line".to_string()),
        };
        if let Some(a) = self.http_listen {
            config.http.listen = a;
        }
        if let Some(a) = self.mqtt_listen {
            config.mqtt.listen = a;
            config.mqtt.broker = None;
        }
        if let Some(b) = &self.broker {
            config.mqtt.broker = Some(b.clone());
        }
        match (&self.data_dir, default_data_dir) {
            (Some(d), _) => config.data_dir = d.clone(),
            (None, Some(d)) => config.data_dir = d,
            (None, None) => {}
        }
        Ok((config, origin))
    }
}

/// Log to stderr at `info` (RUST_LOG overrides; the embedded broker's own
/// logs are off unless RUST_LOG names rumqttd).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off,rumqttc=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// Cancel `token` on SIGTERM or Ctrl-C.
pub async fn stop_on_signal(token: tokio_util::sync::CancellationToken) {
    throughline_shared::signal::stop_requested().await;
    tracing::info!("stop requested");
    token.cancel();
}
