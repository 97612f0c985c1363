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
//! | `[[webhooks]]`, `[alertmanager]`, `[outbox]` | [`alerts`] | the outbox `Receiver`s, with webhook secrets and their queue bound |
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

pub use self::alerts::{AlertmanagerConfig, OutboxConfig, WebhookConfig};
pub use self::auth::{AuthConfig, Role, TokenConfig};
pub use self::history::HistoryConfig;
pub use self::http::{HttpConfig, HttpLimits};
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
    /// A setting that cannot be used (the message names its key).
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
    /// How many undelivered events each receiver keeps.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Keys of the file that no section knows, each with its line; reported
    /// by [`Config::validate`] with every other problem.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
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
            outbox: OutboxConfig::default(),
            unknown_keys: Vec::new(),
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
        Config::from_toml(&text)
            .map_err(|message| Error::Config { path: path.display().to_string(), message })
    }

    /// Parse a config file's text. A key no section knows does not stop the
    /// parse: it is kept in [`Config::unknown_keys`] (with its line), so that
    /// [`Config::validate`] reports it together with every other problem. A
    /// syntax or type error stops it; its message never shows the value of a
    /// secret key.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let de = toml::Deserializer::parse(text).map_err(|e| redact_secrets(&e.to_string()))?;
        let mut unknown = Vec::new();
        let mut config: Config = serde_ignored::deserialize(de, |path| unknown.push(key_path(&path)))
            .map_err(|e| redact_secrets(&e.to_string()))?;
        config.unknown_keys = unknown
            .into_iter()
            .map(|segments| {
                let line = line_of(text, &segments).map(|l| format!(" (line {l})")).unwrap_or_default();
                format!("{}: unknown key{line}", show_path(&segments))
            })
            .collect();
        Ok(config)
    }

    /// Check the whole config, section by section; `origin` names it in the
    /// error, which lists every problem. Returns the secrets read on the
    /// way, for the section builds.
    pub fn validate(&self, origin: &str) -> Result<Secrets, Error> {
        let mut secrets = Secrets::default();
        let mut p = self.unknown_keys.clone();
        self.http.validate(&mut p);
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
        self.outbox.validate(&mut p);
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

/// One step of a key's path in the file: a table key or an array index.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn key_path(path: &serde_ignored::Path<'_>) -> Vec<Segment> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    fn walk(p: &Path<'_>, out: &mut Vec<Segment>) {
        match p {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Segment::Index(*index));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Segment::Key(key.to_string()));
            }
            Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    walk(path, &mut out);
    out
}

/// `assets[3].rated_capacty`, as the key is written in a file.
fn show_path(segments: &[Segment]) -> String {
    let mut s = String::new();
    for seg in segments {
        match seg {
            Segment::Key(k) if s.is_empty() => s.push_str(k),
            Segment::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The line (from 1) where the key at `segments` is written.
fn line_of(text: &str, segments: &[Segment]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut span = None;
    let mut pending: Option<&DeValue<'_>> = None;
    for seg in segments {
        match (seg, pending) {
            (Segment::Key(k), None) => {
                let (key, value) = table.iter().find(|(key, _)| key.get_ref().as_ref() == k.as_str())?;
                span = Some(key.span());
                pending = Some(value.get_ref());
            }
            (Segment::Key(k), Some(DeValue::Table(t))) => {
                table = t;
                let (key, value) = table.iter().find(|(key, _)| key.get_ref().as_ref() == k.as_str())?;
                span = Some(key.span());
                pending = Some(value.get_ref());
            }
            (Segment::Index(i), Some(DeValue::Array(a))) => {
                let item = a.get(*i)?;
                span = Some(item.span());
                pending = Some(item.get_ref());
            }
            _ => return None,
        }
    }
    span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
}

/// Keys whose values are secrets (`password`, `token`, `secret`, ...).
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches('"').to_ascii_lowercase();
    ["password", "token", "secret"].iter().any(|s| key.contains(s))
        && !key.ends_with("_file")
        && !key.ends_with("_env")
}

/// A TOML error message with the value of any secret key in its quoted
/// source lines (`12 | password = "..."`) replaced by `<redacted>`.
fn redact_secrets(message: &str) -> String {
    message
        .lines()
        .map(|line| {
            let Some((gutter, source)) = line.split_once('|') else { return line.to_string() };
            if gutter.trim().parse::<usize>().is_err() {
                return line.to_string();
            }
            match source.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{gutter}|{key}= <redacted>"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
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
        let c = Config::from_toml("[http]\nlisten_addr = \"x\"").unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        assert!(e.contains("http.listen_addr: unknown key (line 2)"), "{e}");
        let e = Config::from_toml(
            "[[assets]]\nsite=\"s\"\nid=\"a\"\nkind=\"pump\"\ngroup=\"g\"\nrated_capacity=1",
        )
        .unwrap_err();
        assert!(e.contains("pump"), "{e}");
    }

    /// Every unknown key and every other problem in one answer, each at its
    /// line: a typo in one asset does not hide a feeder in a line group.
    #[test]
    fn unknown_keys_are_reported_with_every_other_problem() {
        let text = r#"
[[groups]]
id = "family-a"
kind = "line"

[[assets]]
site = "s"
id = "press-1"
kind = "line"
group = "family-a"
rated_capacty = 1200

[[assets]]
site = "s"
id = "feeder-1"
kind = "feeder"
group = "family-a"
rated_capacity = 400

[influxdb]
url = "http://127.0.0.1:8086"
org = "o"
bucket = "b"
tokn = "x"
"#;
        let c = Config::from_toml(text).unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        for want in [
            "assets[0].rated_capacty: unknown key (line 11)",
            "influxdb.tokn: unknown key (line 24)",
            "assets[1]",
            "assets[0].rated_capacity",
        ] {
            assert!(e.contains(want), "{want} missing in {e}");
        }
    }

    #[test]
    fn a_syntax_error_does_not_show_a_secret() {
        let e = Config::from_toml("[mqtt]\nbroker = \"mqtt://b\"\npassword = \"hunter2\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line 3") && e.contains("password = <redacted>"), "{e}");
        let e =
            Config::from_toml("[[auth.tokens]]\nsecret = 'open-sesame\nrole = \"planner\"\n").unwrap_err();
        assert!(!e.contains("open-sesame"), "{e}");
        let e = Config::from_toml("[mqtt]\nbroker = \"mqtt://b\n").unwrap_err();
        assert!(e.contains("mqtt://b"), "other values still show: {e}");
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
