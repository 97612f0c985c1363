//! Aggregator configuration: TOML file (optional), then command-line flags on
//! top. Validated once at start-up; every problem is reported with its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use throughline_shared::broker::{BrokerUrl, Credentials};
use throughline_shared::{AssetId, SiteId};

use crate::error::Error;

/// The whole aggregator configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Directory for the aggregator's state. Created if missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Registered assets. Telemetry for other assets is kept and shown as
    /// unregistered.
    #[serde(default)]
    pub assets: Vec<AssetConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./throughline-data")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            data_dir: default_data_dir(),
            ingest: IngestConfig::default(),
            assets: Vec::new(),
        }
    }
}

/// HTTP API server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free port).
    #[serde(default = "default_http")]
    pub listen: SocketAddr,
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: default_http() }
    }
}

/// Where telemetry comes from: the embedded broker (default) or an
/// external one (`broker`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Embedded broker's listen address, used when `broker` is not set.
    #[serde(default = "default_mqtt_listen")]
    pub listen: SocketAddr,
    /// External broker URL (`mqtt://HOST:PORT`); when set, no broker is embedded.
    pub broker: Option<String>,
    /// Username at the external broker.
    pub username: Option<String>,
    /// Password in the file itself; prefer `password_file` or `password_env`.
    pub password: Option<String>,
    /// Read the password from this file.
    pub password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    pub password_env: Option<String>,
    /// MQTT client id. The session is persistent, so an external broker keeps
    /// QoS 1 telemetry for the aggregator while it restarts.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Keep the broker session across restarts (MQTT `clean_session = false`).
    /// Turn off only for throwaway instances: a persistent session that is
    /// never resumed keeps collecting messages at the broker.
    #[serde(default = "default_true")]
    pub persistent_session: bool,
    /// Keep-alive in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
}

impl MqttConfig {
    /// Username and password source.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            password_file: self.password_file.as_deref(),
            password_env: self.password_env.as_deref(),
        }
    }
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("listen", &self.listen)
            .field("broker", &self.broker)
            .field("credentials", &self.credentials())
            .field("client_id", &self.client_id)
            .field("persistent_session", &self.persistent_session)
            .finish_non_exhaustive()
    }
}

fn default_mqtt_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}
fn default_client_id() -> String {
    "throughline-aggregator".into()
}
fn default_keep_alive() -> u64 {
    15
}
fn default_true() -> bool {
    true
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: default_mqtt_listen(),
            broker: None,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            client_id: default_client_id(),
            persistent_session: true,
            keep_alive_secs: default_keep_alive(),
        }
    }
}

/// Ingest limits and live-state settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Window over which an asset's output rate is computed, in seconds.
    #[serde(default = "default_rate_window")]
    pub rate_window_secs: u64,
    /// How far ahead of this server's clock a sample's `ts` may be, in seconds.
    #[serde(default = "default_max_future")]
    pub max_future_secs: i64,
    /// Largest accepted message, in bytes.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
}

fn default_rate_window() -> u64 {
    300
}
fn default_max_future() -> i64 {
    300
}
fn default_max_payload() -> usize {
    256 * 1024
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            rate_window_secs: default_rate_window(),
            max_future_secs: default_max_future(),
            max_payload_bytes: default_max_payload(),
        }
    }
}

/// Kind of asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// Production line: output in pieces, rated capacity in pieces/hour.
    Line,
    /// Distribution feeder: output in kWh, rated capacity in kW.
    Feeder,
}

impl AssetKind {
    /// Unit of the output counter.
    pub fn output_unit(self) -> &'static str {
        match self {
            AssetKind::Line => "pieces",
            AssetKind::Feeder => "kWh",
        }
    }
    /// Unit of the rated capacity and of the output rate.
    pub fn rate_unit(self) -> &'static str {
        match self {
            AssetKind::Line => "pieces/h",
            AssetKind::Feeder => "kW",
        }
    }
}

/// A registered asset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    pub site: SiteId,
    pub id: AssetId,
    pub kind: AssetKind,
    /// Capacity group: the assets that serve one demand stream (a product
    /// family for lines, a region for feeders).
    pub group: String,
    /// Rated capacity: pieces/hour for a line, kW for a feeder.
    pub rated_capacity: f64,
    /// Display name.
    pub name: Option<String>,
}

impl Config {
    /// Read a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        toml::from_str(&text)
            .map_err(|e| Error::Config { path: path.display().to_string(), message: e.to_string() })
    }

    /// Check the whole config; `origin` names it in the error.
    pub fn validate(&self, origin: &str) -> Result<(), Error> {
        let mut p = Vec::new();
        if let Some(url) = &self.mqtt.broker {
            match BrokerUrl::parse(url) {
                Err(e) => p.push(format!("mqtt.broker: {e}")),
                Ok(u) if u.tls => {
                    p.push("mqtt.broker: mqtts:// (TLS) is not supported by this version yet".into())
                }
                Ok(_) => {}
            }
        }
        p.extend(self.mqtt.credentials().problems("mqtt"));
        if self.mqtt.client_id.is_empty() {
            p.push("mqtt.client_id: must not be empty".into());
        }
        if self.mqtt.keep_alive_secs < 5 {
            p.push("mqtt.keep_alive_secs: must be at least 5".into());
        }
        if self.ingest.rate_window_secs < 10 {
            p.push("ingest.rate_window_secs: must be at least 10".into());
        }
        if self.ingest.max_future_secs < 0 {
            p.push("ingest.max_future_secs: must not be negative".into());
        }
        if self.ingest.max_payload_bytes < 1024 {
            p.push("ingest.max_payload_bytes: must be at least 1024".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.assets.iter().enumerate() {
            if !seen.insert((a.site.clone(), a.id.clone())) {
                p.push(format!("assets[{i}]: site `{}` asset `{}` is registered twice", a.site, a.id));
            }
            if !(a.rated_capacity.is_finite() && a.rated_capacity > 0.0) {
                p.push(format!("assets[{i}].rated_capacity: must be a number > 0 ({})", a.kind.rate_unit()));
            }
            if a.group.trim().is_empty() {
                p.push(format!("assets[{i}].group: must not be empty"));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Config { path: origin.to_string(), message: p.join("\n") })
        }
    }

    /// The external broker's password, if one is configured.
    pub fn password(&self, origin: &str) -> Result<Option<String>, Error> {
        self.mqtt
            .credentials()
            .password("mqtt")
            .map_err(|message| Error::Config { path: origin.to_string(), message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_working_defaults() {
        let c: Config = toml::from_str("").unwrap();
        c.validate("x.toml").unwrap();
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.mqtt.listen.port(), 1883);
        assert!(c.mqtt.broker.is_none());
    }

    #[test]
    fn every_problem_is_named() {
        let c: Config = toml::from_str(
            r#"
[mqtt]
broker = "http://nope"
[[assets]]
site = "s"
id = "a"
kind = "line"
group = "g"
rated_capacity = 0
[[assets]]
site = "s"
id = "a"
kind = "feeder"
group = ""
rated_capacity = 5
"#,
        )
        .unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        for want in [
            "agg.toml",
            "mqtt.broker",
            "assets[0].rated_capacity",
            "assets[1]: site `s` asset `a`",
            "assets[1].group",
        ] {
            assert!(e.contains(want), "{want} missing in {e}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_kinds_are_refused_by_name() {
        let e = toml::from_str::<Config>("[http]\nlisten_addr = \"x\"").unwrap_err().to_string();
        assert!(e.contains("listen_addr"), "{e}");
        let e = toml::from_str::<Config>(
            "[[assets]]\nsite=\"s\"\nid=\"a\"\nkind=\"pump\"\ngroup=\"g\"\nrated_capacity=1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pump"), "{e}");
    }
}
