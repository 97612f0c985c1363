//! Aggregator configuration: TOML file (optional), then command-line flags on
//! top. Validated once at start-up; every problem is reported with its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use throughline_shared::broker::{BrokerUrl, Credentials};

use crate::error::Error;
pub use crate::model::{AssetConfig, AssetKind, GroupConfig};
use crate::projection::{Planner, Windows};

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

/// How live capacity is projected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanningConfig {
    /// Window for an asset's rate while running (minutes of event time).
    #[serde(default = "default_rate_minutes")]
    pub rate_window_minutes: u32,
    /// Window for measured availability: running / (running + down).
    #[serde(default = "default_availability_hours")]
    pub availability_window_hours: u32,
    /// Per-minute history kept per asset, in hours (bounded memory).
    #[serde(default = "default_history_hours")]
    pub history_hours: u32,
    /// How often alerts are evaluated, in milliseconds.
    #[serde(default = "default_eval_ms")]
    pub evaluate_every_ms: u64,
    /// How long a capable-to-promise quote holds its reservation, in hours.
    #[serde(default = "default_quote_hours")]
    pub quote_valid_hours: u32,
}

fn default_rate_minutes() -> u32 {
    15
}
fn default_availability_hours() -> u32 {
    8
}
fn default_history_hours() -> u32 {
    48
}
fn default_eval_ms() -> u64 {
    1000
}
fn default_quote_hours() -> u32 {
    24
}

impl Default for PlanningConfig {
    fn default() -> Self {
        PlanningConfig {
            rate_window_minutes: default_rate_minutes(),
            availability_window_hours: default_availability_hours(),
            history_hours: default_history_hours(),
            evaluate_every_ms: default_eval_ms(),
            quote_valid_hours: default_quote_hours(),
        }
    }
}

/// Embedded history: per-asset, per-minute rollups written to the SQLite
/// store in batches, served by `/api/v1/assets/{site}/{asset}/history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// How often changed minutes are written, in seconds (one transaction
    /// each time); a crash loses at most this much history.
    #[serde(default = "default_flush_secs")]
    pub flush_secs: u64,
    /// Rollups older than this many days (by the server clock) are deleted,
    /// once an hour and at start.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_flush_secs() -> u64 {
    10
}
fn default_retention_days() -> u32 {
    90
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { flush_secs: default_flush_secs(), retention_days: default_retention_days() }
    }
}

/// Roles, each allowed what the one before it may do and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Imports forecasts, acknowledges and resolves alerts, quotes promises.
    Planner,
    /// Everything.
    Admin,
}

/// API access.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// When true, reads need a token too (any role).
    #[serde(default)]
    pub read_requires_token: bool,
    /// Bearer tokens. Writes need a planner or admin token.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One bearer token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it; recorded as the actor of acknowledgements and imports.
    pub name: String,
    pub role: Role,
    /// The token itself; prefer `token_file` or `token_env`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .finish()
    }
}

/// A webhook: every alert change is POSTed as JSON, signed with
/// HMAC-SHA256 of the body in `X-Throughline-Signature: sha256=<hex>`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

/// Prometheus Alertmanager (v2 API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
}

/// Read a secret from exactly one of: inline, file, environment variable.
pub fn read_secret(
    key: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<String, String> {
    match (inline, file, env) {
        (Some(s), None, None) => Ok(s.to_string()),
        (None, Some(f), None) => std::fs::read_to_string(f)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("{key}_file: cannot read {}: {e}", f.display())),
        (None, None, Some(v)) => {
            std::env::var(v).map_err(|_| format!("{key}_env: environment variable {v} is not set"))
        }
        (None, None, None) => Err(format!("{key}: set one of {key}, {key}_file, {key}_env")),
        _ => Err(format!("{key}: set only one of {key}, {key}_file, {key}_env")),
    }
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

/// The InfluxDB v2 sink (`[influxdb]`): every accepted sample is written as
/// line protocol to `{url}/api/v2/write` (InfluxDB 2 and 3, VictoriaMetrics).
/// Schema: docs/timeseries.md.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// Organization (InfluxDB 2; other servers ignore it).
    pub org: String,
    /// Bucket (InfluxDB 2), database (InfluxDB 3).
    pub bucket: String,
    /// API token in the file itself; prefer `token_file` or `token_env`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// A write is sent as soon as this many points wait.
    #[serde(default = "default_influx_batch")]
    pub batch_points: usize,
    /// ...or when the oldest waiting point has waited this long.
    #[serde(default = "default_influx_flush")]
    pub flush_ms: u64,
    /// Points held while the server is slow or down. When full, the oldest
    /// are dropped (counted in `throughline_influx_points_dropped_total`):
    /// ingest and alerting never wait for the database.
    #[serde(default = "default_influx_buffer")]
    pub buffer_points: usize,
    /// One write may take this long before it counts as failed (and is retried).
    #[serde(default = "default_influx_timeout")]
    pub timeout_ms: u64,
}

fn default_influx_batch() -> usize {
    5000
}
fn default_influx_flush() -> u64 {
    1000
}
fn default_influx_buffer() -> usize {
    200_000
}
fn default_influx_timeout() -> u64 {
    5000
}

impl std::fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .field("batch_points", &self.batch_points)
            .field("flush_ms", &self.flush_ms)
            .field("buffer_points", &self.buffer_points)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl InfluxConfig {
    /// The token, read from wherever it is configured.
    pub fn read_token(&self) -> Result<String, String> {
        read_secret("token", self.token.as_deref(), self.token_file.as_deref(), self.token_env.as_deref())
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() => {
                p.push(format!("influxdb.url: `{}` must be http:// or https:// with a host", self.url))
            }
            // The client writes to {url}/api/v2/write on the host itself.
            Ok(u) if u.path() != "/" || u.query().is_some() => p.push(format!(
                "influxdb.url: `{}` must be the server's base URL, without a path or query",
                self.url
            )),
            Ok(_) => {}
            Err(e) => p.push(format!("influxdb.url: `{}` is not a URL: {e}", self.url)),
        }
        if self.org.trim().is_empty() {
            p.push("influxdb.org: must not be empty (any name for servers without organizations)".into());
        }
        if self.bucket.trim().is_empty() {
            p.push("influxdb.bucket: must not be empty".into());
        }
        if let Err(e) = self.read_token() {
            p.push(format!("influxdb.{e}"));
        }
        if !(1..=100_000).contains(&self.batch_points) {
            p.push(format!(
                "influxdb.batch_points: must be between 1 and 100000, found {}",
                self.batch_points
            ));
        }
        if !(10..=600_000).contains(&self.flush_ms) {
            p.push(format!("influxdb.flush_ms: must be between 10 and 600000, found {}", self.flush_ms));
        }
        if self.buffer_points < self.batch_points || self.buffer_points > 100_000_000 {
            p.push(format!(
                "influxdb.buffer_points: must be at least batch_points ({}) and at most 100000000, found {}",
                self.batch_points, self.buffer_points
            ));
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            p.push(format!("influxdb.timeout_ms: must be between 100 and 600000, found {}", self.timeout_ms));
        }
        p
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
        if let Some(influx) = &self.influxdb {
            p.extend(influx.problems());
        }
        let mut group_ids = std::collections::HashSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            if g.id.trim().is_empty() || !group_ids.insert(g.id.clone()) {
                p.push(format!("groups[{i}].id: `{}` is empty or appears twice", g.id));
            }
            for (key, v, lo, hi) in [
                ("shortfall_pct", g.shortfall_pct, 0.0, 100.0),
                ("deviation_pct", g.deviation_pct, 0.0, 1000.0),
                ("downtime_minutes", g.downtime_minutes, 0.0, 10_080.0),
                ("hysteresis_pct", g.hysteresis_pct, 0.0, 100.0),
            ] {
                if !(v.is_finite() && v >= lo && v <= hi) {
                    p.push(format!("groups[{i}].{key}: must be between {lo} and {hi}, found {v}"));
                }
            }
        }
        for (i, a) in self.assets.iter().enumerate() {
            if let Some(g) = self.groups.iter().find(|g| g.id == a.group) {
                if g.kind != a.kind {
                    p.push(format!(
                        "assets[{i}].group: group `{}` is a {:?} group but the asset is a {:?}",
                        g.id, g.kind, a.kind
                    ));
                }
            } else if let Some(other) = self.assets.iter().find(|b| b.group == a.group && b.kind != a.kind) {
                p.push(format!(
                    "assets[{i}].group: group `{}` mixes lines and feeders (also `{}`); declare it under [[groups]]",
                    a.group, other.id
                ));
            }
        }
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if let Err(e) =
                read_secret("token", t.token.as_deref(), t.token_file.as_deref(), t.token_env.as_deref())
            {
                p.push(format!("auth.tokens[{i}].{e}"));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                p.push(format!("webhooks[{i}].url: must start with http:// or https://"));
            }
            if let Err(e) =
                read_secret("secret", w.secret.as_deref(), w.secret_file.as_deref(), w.secret_env.as_deref())
            {
                p.push(format!("webhooks[{i}].{e}"));
            }
        }
        if let Some(am) = &self.alertmanager {
            if !(am.url.starts_with("http://") || am.url.starts_with("https://")) {
                p.push("alertmanager.url: must start with http:// or https://".into());
            }
        }
        if self.planning.rate_window_minutes == 0 || self.planning.availability_window_hours == 0 {
            p.push("planning: rate_window_minutes and availability_window_hours must be > 0".into());
        }
        if self.planning.history_hours < 2 {
            p.push("planning.history_hours: must be at least 2".into());
        }
        if !(1..=3600).contains(&self.history.flush_secs) {
            p.push(format!(
                "history.flush_secs: must be between 1 and 3600, found {}",
                self.history.flush_secs
            ));
        }
        if !(1..=36_500).contains(&self.history.retention_days) {
            p.push(format!(
                "history.retention_days: must be between 1 and 36500, found {}",
                self.history.retention_days
            ));
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

impl Config {
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
        let p = &self.planning;
        let windows = Windows {
            rate: chrono::Duration::minutes(i64::from(p.rate_window_minutes)),
            availability: chrono::Duration::hours(i64::from(p.availability_window_hours)),
            history: chrono::Duration::hours(i64::from(p.history_hours)),
        };
        Planner::new(&self.assets, self.all_groups(), windows)
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
    fn influxdb_keys_are_checked_by_name_and_the_token_never_shows() {
        let c: Config = toml::from_str(
            "[influxdb]\nurl = \"tcp://x\"\norg = \"\"\nbucket = \"b\"\nbatch_points = 0\nbuffer_points = 10\nflush_ms = 1\ntimeout_ms = 5",
        )
        .unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        for want in [
            "influxdb.url",
            "influxdb.org",
            "influxdb.token: set one of token, token_file, token_env",
            "influxdb.batch_points",
            "influxdb.flush_ms",
            "influxdb.timeout_ms",
        ] {
            assert!(e.contains(want), "{want} missing in {e}");
        }
        let c: Config = toml::from_str(
            "[influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"plant\"\nbucket = \"tl\"\ntoken = \"s3cret-token\"\nbatch_points = 100\nbuffer_points = 50",
        )
        .unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        assert!(e.contains("influxdb.buffer_points: must be at least batch_points (100)"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret") && debug.contains("<redacted>"), "{debug}");
        let c: Config = toml::from_str(
            "[influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"plant\"\nbucket = \"tl\"\ntoken_env = \"THROUGHLINE_NO_SUCH_VARIABLE\"",
        )
        .unwrap();
        let e = c.validate("agg.toml").unwrap_err().to_string();
        assert!(
            e.contains("influxdb.token_env: environment variable THROUGHLINE_NO_SUCH_VARIABLE is not set"),
            "{e}"
        );
        for url in ["http://127.0.0.1:8086/influx", "http://", "127.0.0.1:8086", "ftp://h", "http://h?x=1"] {
            let c: Config = toml::from_str(&format!(
                "[influxdb]\nurl = \"{url}\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\""
            ))
            .unwrap();
            let e = c.validate("agg.toml").unwrap_err().to_string();
            assert!(e.contains("influxdb.url"), "{url}: {e}");
        }
        let ok: Config = toml::from_str(
            "[influxdb]\nurl = \"http://127.0.0.1:8086/\"\norg = \"plant\"\nbucket = \"tl\"\ntoken = \"t\"",
        )
        .unwrap();
        ok.validate("agg.toml").unwrap();
        let i = ok.influxdb.unwrap();
        assert_eq!((i.batch_points, i.flush_ms, i.buffer_points, i.timeout_ms), (5000, 1000, 200_000, 5000));
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
