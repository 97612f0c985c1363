//! Aggregator configuration: TOML file (optional), then command-line flags on
//! top. Validated once at start-up; every problem is reported with its key.
//!
//! One file per section, each with its serde struct, a `validate` that adds
//! the section's problems under their keys, and a `build` for the component
//! the section configures (as vector's `SinkConfig::build`):
//!
//! | section | file | builds |
//! |---|---|---|
//! | `[http]` | [`http`] | the bound HTTP listener |
//! | `[mqtt]` | [`mqtt`] | the ingest connection (`IngestSettings`, with the broker password) |
//! | `[ingest]` | [`ingest`] | the decoder's `Limits`, live state's `StateSettings` (rate window, counter resets, implausible steps) |
//! | `[influxdb]` | [`influx`] | the `InfluxSink` handle, with its token |
//! | `[[groups]]`, `[[assets]]` | [`plant`] | (checks only; [`Config::planner`] uses them) |
//! | `[planning]` | [`planning`] | the projection `Windows`, the alert interval |
//! | `[history]` | [`history`] | the rollup writer (`Rollups`) |
//! | `[auth]` | [`auth`] | the `Auth` handle, with every token |
//! | `[[webhooks]]`, `[alertmanager]` | [`alerts`] | the outbox `Receiver`s, with webhook secrets |
//!
//! Secrets are read once, through [`Secrets`]: [`Config::validate`] reads
//! those it has always reported on (API tokens, webhook secrets, the
//! InfluxDB token) and returns them; each build takes its own. The broker
//! password is read by the `[mqtt]` build, as before (validation checks only
//! which of its keys are set).

pub mod alerts;
pub mod auth;
pub mod history;
pub mod http;
pub mod influx;
pub mod ingest;
pub mod mqtt;
pub mod planning;
pub mod plant;
pub mod secrets;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use throughline_shared::broker::BrokerUrlError;
use throughline_shared::secret::SecretError;

pub use self::alerts::{AlertmanagerConfig, WebhookConfig};
pub use self::auth::{AuthConfig, Role, TokenConfig};
pub use self::history::HistoryConfig;
pub use self::http::HttpConfig;
pub use self::influx::InfluxConfig;
pub use self::ingest::IngestConfig;
pub use self::mqtt::MqttConfig;
pub use self::planning::PlanningConfig;
pub use self::secrets::Secrets;
use crate::error::Error;
pub use crate::model::{AssetConfig, AssetKind, GroupConfig};
use crate::projection::Planner;

/// Why a section could not build its component; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("mqtt.broker: {0}")]
    Broker(#[from] BrokerUrlError),
    /// A value validation would have refused (validate first).
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// The crate's error, naming the config (`origin`) the key is in.
    pub fn at(self, origin: &str) -> Error {
        Error::Config { path: origin.to_string(), message: self.to_string() }
    }
}

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
    /// Time-series sink: any InfluxDB v2 write API. Absent: off.
    pub influxdb: Option<InfluxConfig>,
    /// Registered assets. Telemetry for other assets is kept and shown as
    /// unregistered.
    #[serde(default)]
    pub assets: Vec<AssetConfig>,
    /// Capacity groups with their alert thresholds. A group named by an asset
    /// but not listed here gets the default thresholds.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    #[serde(default)]
    pub planning: PlanningConfig,
    /// Embedded history: per-minute rollups in the state store.
    #[serde(default)]
    pub history: HistoryConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Signed webhooks that receive every alert change.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Prometheus Alertmanager that receives open and resolved alerts.
    pub alertmanager: Option<AlertmanagerConfig>,
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
            influxdb: None,
            assets: Vec::new(),
            groups: Vec::new(),
            planning: PlanningConfig::default(),
            history: HistoryConfig::default(),
            auth: AuthConfig::default(),
            webhooks: Vec::new(),
            alertmanager: None,
        }
    }
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

    /// Check the whole config, section by section; `origin` names it in the
    /// error, which lists every problem. Returns the secrets read on the
    /// way, for the section builds.
    pub fn validate(&self, origin: &str) -> Result<Secrets, Error> {
        let mut secrets = Secrets::default();
        let mut p = Vec::new();
        self.mqtt.validate(&mut secrets, &mut p);
        self.ingest.validate(&mut p);
        if let Some(influx) = &self.influxdb {
            influx.validate(&mut secrets, &mut p);
        }
        plant::validate_groups(&self.groups, &self.assets, &mut p);
        self.auth.validate(&mut secrets, &mut p);
        for (i, w) in self.webhooks.iter().enumerate() {
            w.validate(i, &mut secrets, &mut p);
        }
        if let Some(am) = &self.alertmanager {
            am.validate(&mut p);
        }
        self.planning.validate(&mut p);
        self.history.validate(&mut p);
        plant::validate_assets(&self.assets, &mut p);
        if p.is_empty() {
            Ok(secrets)
        } else {
            Err(Error::Config { path: origin.to_string(), message: p.join("\n") })
        }
    }

    /// Every capacity group: the declared ones, then those only named by
    /// assets (default thresholds, the assets' kind).
    pub fn all_groups(&self) -> Vec<GroupConfig> {
        let mut out = self.groups.clone();
        for a in &self.assets {
            if !out.iter().any(|g| g.id == a.group) {
                out.push(GroupConfig::with_defaults(&a.group, a.kind));
            }
        }
        out
    }

    /// The plant's groups and assets with the projection windows.
    pub fn planner(&self) -> Planner {
        Planner::new(&self.assets, self.all_groups(), self.planning.windows())
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
        assert_eq!((c.history.flush_secs, c.history.retention_days), (10, 90));
    }

    #[test]
    fn every_problem_is_named() {
        let c: Config = toml::from_str(
            r#"
[mqtt]
broker = "http://nope"
[history]
flush_secs = 0
retention_days = 0
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
            "history.flush_secs",
            "history.retention_days",
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

    // The sections report in this order, so a message list reads the same
    // as before the split into sections.
    #[test]
    fn problems_come_in_section_order_and_secrets_are_handed_on() {
        let c: Config = toml::from_str(
            r#"
[mqtt]
keep_alive_secs = 1
[ingest]
rate_window_secs = 1
[influxdb]
url = "http://127.0.0.1:8086"
org = "o"
bucket = ""
token = "t"
[[groups]]
id = ""
kind = "line"
[auth]
tokens = [{ name = "a", role = "viewer" }]
[[webhooks]]
name = "w"
url = "x"
secret = "k"
[alertmanager]
url = "y"
[planning]
history_hours = 1
[history]
flush_secs = 0
[[assets]]
site = "s"
id = "a"
kind = "line"
group = ""
rated_capacity = 1
"#,
        )
        .unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        let keys: Vec<&str> =
            e.trim_start_matches("agg.toml: ").lines().map(|l| l.split([':', ' ']).next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "mqtt.keep_alive_secs",
                "ingest.rate_window_secs",
                "influxdb.bucket",
                "groups[0].id",
                "auth.tokens[0].token",
                "webhooks[0].url",
                "alertmanager.url",
                "planning.history_hours",
                "history.flush_secs",
                "assets[0].group",
            ]
        );
        let ok: Config = toml::from_str(
            "[influxdb]\nurl = \"http://h:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\n[[webhooks]]\nname = \"w\"\nurl = \"http://w\"\nsecret = \"k\"",
        )
        .unwrap();
        let secrets = ok.validate("agg.toml").unwrap();
        assert_eq!(format!("{secrets:?}"), r#"Secrets { keys: ["influxdb.token", "webhooks[0].secret"] }"#);
        let e =
            ConfigError::from(BrokerUrlError { url: "x".into(), reason: "unknown scheme" }).at("agg.toml");
        assert!(e.to_string().starts_with("agg.toml: mqtt.broker: broker URL `x`: unknown scheme"), "{e}");
    }
}
