//! Agent configuration: a TOML file read once at start-up, validated as a
//! whole so that every mistake is reported at once with its key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use throughline_shared::broker::{BrokerUrl, Credentials};
use throughline_shared::{AgentId, SiteId};

// The source settings live beside their sources (`source` imports nothing
// from here); their `config::` paths stay.
pub use crate::source::simulator::{Episode, SimProfile, SimulatorConfig};
pub use crate::source::{AssetConfig, SourceConfig};

use crate::error::Error;
use crate::source::modbus::ModbusDevice;
use crate::source::Sources;

/// The whole agent configuration (`edge-agent --config FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This agent's id: the `{agent}` level of its topics and its MQTT client id.
    pub agent: AgentId,
    /// The site (plant) whose assets this agent serves.
    pub site: SiteId,
    /// Directory for the agent's own state (the sequence-number file). Must
    /// survive reboots: the protocol requires `seq` to keep increasing.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub publish: PublishConfig,
    /// The disk spool (under `state_dir/spool`).
    #[serde(default)]
    pub spool: crate::spool::SpoolConfig,
    /// Modbus TCP devices that `modbus-tcp` assets are read from.
    #[serde(default)]
    pub devices: Vec<ModbusDevice>,
    /// The assets this agent reads and publishes.
    pub assets: Vec<AssetConfig>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./edge-agent-state")
}

/// Broker connection.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` for TLS (port 8883 by default).
    pub url: String,
    /// TLS: CA certificate(s) of the broker (PEM). Required with `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// TLS: this agent's client certificate (PEM), when the broker requires mTLS.
    pub cert_file: Option<PathBuf>,
    /// TLS: the private key of `cert_file` (PEM). Keep it readable by the agent only.
    pub key_file: Option<PathBuf>,
    /// MQTT username (with a per-agent ACL, usually the agent id).
    pub username: Option<String>,
    /// Password in the file itself. Prefer `password_file` or `password_env`.
    pub password: Option<String>,
    /// Read the password from this file (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    pub password_env: Option<String>,
    /// MQTT client id; defaults to the agent id.
    pub client_id: Option<String>,
    /// Keep-alive in seconds; the broker declares the agent gone (and sends
    /// its last will) after 1.5 times this without traffic.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// Longest wait between reconnect attempts (backoff doubles from 0.5 s).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: u64,
}

impl MqttConfig {
    /// Plain TCP to `url` without credentials, other settings at their defaults.
    pub fn plain(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.to_string(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            client_id: None,
            keep_alive_secs: default_keep_alive(),
            reconnect_max_secs: default_reconnect_max(),
        }
    }

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
            .field("url", &self.url)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("credentials", &self.credentials())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn default_keep_alive() -> u64 {
    15
}
fn default_reconnect_max() -> u64 {
    30
}

/// Batching of samples into envelopes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Most samples in one envelope.
    #[serde(default = "default_max_batch")]
    pub max_batch_samples: usize,
    /// Longest a sample waits for its batch, in milliseconds. A state change
    /// (e.g. a line going down) is sent at once regardless.
    #[serde(default = "default_max_delay")]
    pub max_batch_delay_ms: u64,
    /// Longest a sample waits for its batch while the broker is unreachable,
    /// in milliseconds: fuller envelopes make the spool smaller and its
    /// replay faster. State changes are still spooled at once. A crash
    /// during an outage loses at most this much that was not yet spooled.
    #[serde(default = "default_outage_delay")]
    pub outage_batch_delay_ms: u64,
    /// Capacity of the queue between sources and the publisher, in samples.
    /// When full, sources wait (block); each wait is counted and logged.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// How long a clean shutdown waits for the broker to acknowledge what
    /// was sent, in milliseconds.
    #[serde(default = "default_drain")]
    pub shutdown_drain_ms: u64,
    /// How often the retained status message (with spool and source
    /// health) is republished, in seconds; also at once when a source's
    /// health changes.
    #[serde(default = "default_status_interval")]
    pub status_interval_secs: u64,
}

fn default_status_interval() -> u64 {
    60
}

fn default_max_batch() -> usize {
    60
}
fn default_max_delay() -> u64 {
    1000
}
fn default_outage_delay() -> u64 {
    10_000
}
fn default_queue() -> usize {
    1024
}
fn default_drain() -> u64 {
    5000
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            max_batch_samples: default_max_batch(),
            max_batch_delay_ms: default_max_delay(),
            outage_batch_delay_ms: default_outage_delay(),
            queue_capacity: default_queue(),
            shutdown_drain_ms: default_drain(),
            status_interval_secs: default_status_interval(),
        }
    }
}

impl<'a> From<&'a AgentConfig> for Sources<'a> {
    fn from(c: &'a AgentConfig) -> Sources<'a> {
        Sources { assets: &c.assets, devices: &c.devices }
    }
}

impl AgentConfig {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<AgentConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("cannot read: {e}") })?;
        Self::from_toml(&text, path)
    }

    /// Parse and validate config text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<AgentConfig, Error> {
        let config: AgentConfig = toml::from_str(text)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Error::Config { path: path.to_path_buf(), message: problems.join("\n") })
        }
    }

    /// Every validation problem, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match BrokerUrl::parse(&self.mqtt.url) {
            Err(e) => p.push(format!("mqtt.url: {e}")),
            Ok(url) if url.tls => {
                if let Err(e) = self.tls() {
                    p.push(format!("mqtt: {e}"));
                }
            }
            Ok(_) => {
                if self.mqtt.ca_file.is_some()
                    || self.mqtt.cert_file.is_some()
                    || self.mqtt.key_file.is_some()
                {
                    p.push("mqtt.url: ca_file/cert_file/key_file are set but the url is mqtt:// (plain TCP); use mqtts://".into());
                }
            }
        }
        p.extend(self.mqtt.credentials().problems("mqtt"));
        if self.mqtt.keep_alive_secs < 5 {
            p.push("mqtt.keep_alive_secs: must be at least 5".into());
        }
        if self.publish.max_batch_samples == 0 || self.publish.max_batch_samples > 4096 {
            p.push("publish.max_batch_samples: must be 1..=4096 (the protocol's limit)".into());
        }
        p.extend(self.spool.problems());
        if self.publish.queue_capacity == 0 {
            p.push("publish.queue_capacity: must be at least 1".into());
        }
        if self.assets.is_empty() {
            p.push("assets: at least one [[assets]] entry is needed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.assets.iter().enumerate() {
            if !seen.insert(a.id.clone()) {
                p.push(format!("assets[{i}].id: `{}` appears twice", a.id));
            }
            let key = format!("assets[{i}].source");
            if let Some(band) = a.load_deadband_kw {
                if band.is_nan() || band < 0.0 {
                    p.push(format!("assets[{i}].load_deadband_kw: must be >= 0"));
                }
            }
            match &a.source {
                SourceConfig::Simulator(s) => p.extend(s.problems(&key)),
                SourceConfig::Command(c) => p.extend(c.problems(&key)),
                SourceConfig::ModbusTcp(m) => {
                    if !self.devices.iter().any(|d| d.id == m.device) {
                        p.push(format!("{key}.device: no [[devices]] entry has id `{}`", m.device));
                    }
                    p.extend(m.problems(&key));
                }
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            if !ids.insert(d.id.clone()) {
                p.push(format!("devices[{i}].id: `{}` appears twice", d.id));
            }
            p.extend(d.problems(&format!("devices[{i}]")));
        }
        p
    }

    /// The TLS client configuration for an `mqtts://` url (`None` for `mqtt://`).
    pub fn tls(&self) -> Result<Option<std::sync::Arc<throughline_shared::tls::ClientConfig>>, String> {
        if !BrokerUrl::parse(&self.mqtt.url).is_ok_and(|u| u.tls) {
            return Ok(None);
        }
        let Some(ca_file) = self.mqtt.ca_file.as_deref() else {
            return Err(
                "ca_file: required with mqtts:// (the CA that signed the broker's certificate)".into()
            );
        };
        crate::link::tls::client_config(crate::link::tls::TlsFiles {
            ca_file,
            cert_file: self.mqtt.cert_file.as_deref(),
            key_file: self.mqtt.key_file.as_deref(),
        })
        .map(Some)
    }

    /// The broker password, from whichever place the config names.
    pub fn password(&self, path: &Path) -> Result<Option<String>, Error> {
        self.mqtt
            .credentials()
            .password("mqtt")
            .map_err(|message| Error::Config { path: path.to_path_buf(), message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
agent = "gw-1"
site = "plant-a"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[assets]]
id = "press-1"
[assets.source]
type = "simulator"
profile = "line"
rate_per_hour = 1800
[[assets.source.episodes]]
start_s = 30
duration_s = 60
state = "down"
reason = "jam"
"#;

    #[test]
    fn good_config_loads_with_defaults() {
        let c = AgentConfig::from_toml(GOOD, Path::new("a.toml")).unwrap();
        assert_eq!(c.publish.max_batch_samples, 60);
        assert_eq!(c.mqtt.keep_alive_secs, 15);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let bad = GOOD
            .replace("mqtt://127.0.0.1:1883", "http://x")
            .replace("rate_per_hour = 1800", "rate_per_hour = 0")
            .replace("state = \"down\"", "");
        let e = AgentConfig::from_toml(&bad, Path::new("a.toml")).unwrap_err().to_string();
        assert!(e.starts_with("a.toml: "), "{e}");
        assert!(e.contains("mqtt.url"), "{e}");
        assert!(e.contains("assets[0].source.rate_per_hour"), "{e}");
        assert!(e.contains("assets[0].source.episodes[0]"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_ids_are_named() {
        let e =
            AgentConfig::from_toml(&GOOD.replace("site = ", "sitee = "), Path::new("a.toml")).unwrap_err();
        assert!(e.to_string().contains("sitee"), "{e}");
        let e = AgentConfig::from_toml(&GOOD.replace("gw-1", "gw 1"), Path::new("a.toml")).unwrap_err();
        assert!(e.to_string().contains("gw 1"), "{e}");
    }

    #[test]
    fn password_is_never_in_debug_output() {
        let c = AgentConfig::from_toml(
            &GOOD.replace("[mqtt]\n", "[mqtt]\nusername = \"gw-1\"\npassword = \"hunter2\"\n"),
            Path::new("a.toml"),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password(Path::new("a.toml")).unwrap().as_deref(), Some("hunter2"));
    }

    #[test]
    fn agent_config_reports_command_problems_under_the_asset() {
        let text = "agent = \"gw\"\nsite = \"s\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
                    [[assets]]\nid = \"a\"\n[assets.source]\ntype = \"command\"\nprogram = \"/bin/true\"\n\
                    [[assets]]\nid = \"b\"\n[assets.source]\ntype = \"command\"\nprogram = \"\"\n\
                    mode = \"long-running\"\ninterval_ms = 10\n";
        let path = std::path::Path::new("a.toml");
        let e = AgentConfig::from_toml(text, path).unwrap_err().to_string();
        assert!(e.contains("assets[1].source.program: must not be empty"), "{e}");
        assert!(e.contains("assets[1].source.interval_ms: only used with mode = \"periodic\""), "{e}");
        assert!(!e.contains("assets[0]"), "{e}");
        let typo = text.replace("program = \"/bin/true\"", "program = \"/bin/true\"\nintervall_ms = 5");
        let e = AgentConfig::from_toml(&typo, path).unwrap_err().to_string();
        assert!(e.contains("intervall_ms"), "{e}");
    }
}
