//! `[mqtt]`: the embedded broker or an external one, and how ingest logs in;
//! builds the ingest task's connection settings (the password read then).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use throughline_shared::broker::{BrokerUrl, Credentials};
use throughline_shared::tls;

use throughline_shared::{AgentId, SiteId};

use super::secrets::{Secret, Secrets};
use super::{ConfigError, IngestConfig};
use crate::broker::acl::{AgentLogin, Logins};
use crate::broker::front::FrontLimits;
use crate::broker::{Guard, Started};
use crate::link::Protocol;
use crate::tasks::ingest::mqtt::{
    IngestSettings, EMBEDDED_MAX_INCOMING_PACKET, EXTERNAL_MAX_INCOMING_PACKET, PACKET_ROOM,
};

/// Where telemetry comes from: the embedded broker (default) or an
/// external one (`broker`).
#[derive(Clone, Deserialize)]
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
    /// With `mqtts://`: the CA certificate(s) that signed the broker's
    /// certificate (PEM). Required for TLS.
    pub ca_file: Option<PathBuf>,
    /// With `mqtts://`: the aggregator's client certificate chain (PEM), for
    /// brokers that require client certificates (mTLS); with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// With `mqtts://`: the client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// MQTT version spoken to the external broker. `"5"` tells the broker
    /// the largest packet ingest takes (`ingest.max_payload_bytes` + 64 KiB),
    /// so it drops a larger message instead of sending it. `"3.1.1"`
    /// (default) reads packets up to 8 MiB: limit the message size at the
    /// broker below that (the shipped Mosquitto config: 1 MiB), or a larger
    /// message stops ingest (reported in /healthz and the log). MQTT 5 is
    /// not the default yet: a catch-up of a large backlog after a restart
    /// stalls over it (docs/reliability.md). The embedded broker is always
    /// spoken to in 3.1.1: its own limit keeps larger messages out.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Logins of the embedded broker, one per agent (username = agent id).
    /// With any, every client must log in and may write only its own
    /// topics; without, the embedded broker is open and `listen` must be a
    /// loopback address.
    #[serde(default)]
    pub agents: Vec<AgentLoginConfig>,
    /// Embedded broker with logins: open connections from one source address.
    #[serde(default = "default_max_per_address")]
    pub max_connections_per_address: usize,
    /// Embedded broker with logins: new connections per second from one
    /// source address, sustained.
    #[serde(default = "default_connects_per_sec")]
    pub connects_per_address_per_sec: f64,
    /// Embedded broker with logins: new connections from one source address
    /// let through at once before `connects_per_address_per_sec` applies.
    #[serde(default = "default_connect_burst")]
    pub connect_burst_per_address: u32,
}

/// `[[mqtt.agents]]`: one agent's login at the embedded broker.
#[derive(Clone, Deserialize)]
pub struct AgentLoginConfig {
    /// The agent id: its `agent` and its `mqtt.username`.
    pub id: String,
    /// The site its topics are under (`throughline/v1/{site}/{id}/...`).
    pub site: String,
    /// The password in the file itself; prefer `password_file` or `password_env`.
    pub password: Option<String>,
    /// Read the password from this file (first line).
    pub password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    pub password_env: Option<String>,
}

impl std::fmt::Debug for AgentLoginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLoginConfig")
            .field("id", &self.id)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl AgentLoginConfig {
    fn secret(&self, i: usize) -> Secret<'_> {
        Secret {
            section: format!("mqtt.agents[{i}]"),
            name: "password",
            inline: self.password.as_deref(),
            file: self.password_file.as_deref(),
            env: self.password_env.as_deref(),
            required: true,
        }
    }
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

    /// The embedded broker's address, unless an external broker is set.
    pub fn embedded(&self) -> Option<SocketAddr> {
        self.broker.is_none().then_some(self.listen)
    }

    /// Report every problem under `mqtt`. Only which keys of the ingest
    /// password are set is checked here: that password itself is read by
    /// [`MqttConfig::build`]; the agents' passwords are read now.
    pub fn validate(&self, secrets: &mut Secrets, problems: &mut Vec<String>) {
        self.validate_logins(secrets, problems);
        let tls_files = self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some();
        match self.broker.as_deref().map(BrokerUrl::parse) {
            Some(Err(e)) => problems.push(format!("mqtt.broker: {e}")),
            Some(Ok(u)) if u.tls => {
                if let Err(e) = self.tls() {
                    problems.push(e);
                }
            }
            Some(Ok(_)) if tls_files => problems.push(
                "mqtt.broker: ca_file/cert_file/key_file are set but the broker is mqtt:// (plain TCP); \
                 use mqtts://"
                    .into(),
            ),
            None if tls_files => problems.push(
                "mqtt: ca_file/cert_file/key_file are set but no broker is: the embedded broker speaks \
                 plain MQTT on loopback; set mqtt.broker = \"mqtts://HOST:PORT\" for a TLS broker"
                    .into(),
            ),
            _ => {}
        }
        problems.extend(self.credentials().problems("mqtt"));
        if self.client_id.is_empty() {
            problems.push("mqtt.client_id: must not be empty".into());
        }
        if !matches!(self.protocol.as_str(), "5" | "3.1.1") {
            problems.push(format!("mqtt.protocol: `{}` is not \"5\" or \"3.1.1\"", self.protocol));
        }
        if self.keep_alive_secs < 5 {
            problems.push("mqtt.keep_alive_secs: must be at least 5".into());
        }
    }

    /// The TLS client configuration for an `mqtts://` broker (`None`
    /// otherwise); the files are read here, and a problem names its key.
    pub fn tls(&self) -> Result<Option<Arc<tls::ClientConfig>>, String> {
        if !self.broker.as_deref().is_some_and(|b| BrokerUrl::parse(b).is_ok_and(|u| u.tls)) {
            return Ok(None);
        }
        let Some(ca_file) = self.ca_file.as_deref() else {
            return Err(
                "mqtt.ca_file: required with mqtts:// (the CA that signed the broker's certificate)".into()
            );
        };
        tls::client_config(tls::TlsFiles {
            ca_file,
            cert_file: self.cert_file.as_deref(),
            key_file: self.key_file.as_deref(),
        })
        .map(Some)
        .map_err(|e| format!("mqtt: {e}"))
    }

    fn validate_logins(&self, secrets: &mut Secrets, problems: &mut Vec<String>) {
        if self.broker.is_some() {
            if !self.agents.is_empty() {
                problems.push(
                    "mqtt.agents: logins of the embedded broker, but mqtt.broker is set: enrol the agents at that broker (deploy/mosquitto/add-agent.sh)".into(),
                );
            }
            return;
        }
        if self.agents.is_empty() && !self.listen.ip().is_loopback() {
            problems.push(format!(
                "mqtt.listen: {} is not a loopback address, and the embedded broker has no logins: anyone who reaches it could publish as any agent. Add a [[mqtt.agents]] login per agent (id, site, password_file), keep it on 127.0.0.1, or use Mosquitto with deploy/mosquitto (mqtt.broker)",
                self.listen
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let key = format!("mqtt.agents[{i}]");
            if let Err(e) = AgentId::parse(&a.id) {
                problems.push(format!("{key}.id: {e}"));
            }
            if let Err(e) = SiteId::parse(&a.site) {
                problems.push(format!("{key}.site: {e}"));
            }
            if a.id == self.client_id {
                problems
                    .push(format!("{key}.id: `{}` is the aggregator's own client id (mqtt.client_id)", a.id));
            }
            if !seen.insert(a.id.as_str()) {
                problems.push(format!("{key}.id: `{}` has a login already", a.id));
            }
            secrets.check(&a.secret(i), problems);
        }
        if self.connect_burst_per_address < 1 {
            problems.push("mqtt.connect_burst_per_address: must be at least 1".into());
        }
        if self.max_connections_per_address < 1 {
            problems.push("mqtt.max_connections_per_address: must be at least 1".into());
        }
        if !(self.connects_per_address_per_sec > 0.0 && self.connects_per_address_per_sec.is_finite()) {
            problems.push("mqtt.connects_per_address_per_sec: must be a positive number".into());
        }
    }

    /// The embedded broker's guard (its logins, with their passwords, and
    /// the front door's limits), if logins are configured.
    pub fn guard(&self, secrets: &mut Secrets) -> Result<Option<Guard>, ConfigError> {
        if self.broker.is_some() || self.agents.is_empty() {
            return Ok(None);
        }
        let mut logins = Vec::with_capacity(self.agents.len());
        for (i, a) in self.agents.iter().enumerate() {
            let password = secrets.take_required(&a.secret(i))?;
            let bad = |e: throughline_shared::IdError| ConfigError::Invalid(format!("mqtt.agents[{i}]: {e}"));
            logins.push(AgentLogin {
                agent: AgentId::parse(&a.id).map_err(bad)?,
                site: SiteId::parse(&a.site).map_err(bad)?,
                password,
            });
        }
        Ok(Some(Guard {
            logins: Logins::new(logins),
            limits: FrontLimits {
                max_per_address: self.max_connections_per_address,
                connects_per_sec: self.connects_per_address_per_sec,
                connect_burst: f64::from(self.connect_burst_per_address),
                max_connections: crate::broker::MAX_CONNECTIONS,
                max_addresses: 100_000,
                connect_timeout: Duration::from_secs(10),
                max_packet: crate::broker::MAX_PAYLOAD + 64 * 1024,
            },
        }))
    }

    fn password_secret(&self) -> Secret<'_> {
        Secret {
            section: "mqtt".into(),
            name: "password",
            inline: self.password.as_deref(),
            file: self.password_file.as_deref(),
            env: self.password_env.as_deref(),
            required: false,
        }
    }

    /// The ingest task's connection: the broker (external, or the embedded
    /// one on `listen`), the login with its password, and `ingest`'s limits.
    /// `embedded` is where the embedded broker took ingest's connection
    /// (with its secret), if it runs.
    pub fn build(
        &self,
        ingest: &IngestConfig,
        secrets: &mut Secrets,
        embedded: Option<&Started>,
    ) -> Result<IngestSettings, ConfigError> {
        let (broker, username, password) = match (&self.broker, embedded) {
            (Some(url), _) => {
                (BrokerUrl::parse(url)?, self.username.clone(), secrets.take(&self.password_secret())?)
            }
            (None, Some(s)) => (
                BrokerUrl { host: s.broker.ip().to_string(), port: s.broker.port(), tls: false },
                s.password.as_ref().map(|_| self.client_id.clone()),
                s.password.clone(),
            ),
            (None, None) => (
                BrokerUrl { host: self.listen.ip().to_string(), port: self.listen.port(), tls: false },
                self.username.clone(),
                secrets.take(&self.password_secret())?,
            ),
        };
        let (protocol, max_incoming_packet) = match (&self.broker, self.protocol.as_str()) {
            (None, _) => (Protocol::V311, EMBEDDED_MAX_INCOMING_PACKET),
            (Some(_), "5") => (Protocol::V5, ingest.max_payload_bytes + PACKET_ROOM),
            (Some(_), _) => (Protocol::V311, EXTERNAL_MAX_INCOMING_PACKET),
        };
        Ok(IngestSettings {
            broker,
            client_id: self.client_id.clone(),
            username,
            password,
            keep_alive: Duration::from_secs(self.keep_alive_secs),
            persistent_session: self.persistent_session,
            limits: ingest.limits(),
            protocol,
            max_incoming_packet,
            resend: ingest.resend(),
            tls: self.tls().map_err(ConfigError::Invalid)?,
        })
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
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("agents", &self.agents.iter().map(|a| (&a.id, &a.site)).collect::<Vec<_>>())
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
fn default_protocol() -> String {
    "3.1.1".into()
}
fn default_max_per_address() -> usize {
    64
}
fn default_connects_per_sec() -> f64 {
    10.0
}
fn default_connect_burst() -> u32 {
    50
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
            ca_file: None,
            cert_file: None,
            key_file: None,
            protocol: default_protocol(),
            agents: Vec::new(),
            max_connections_per_address: default_max_per_address(),
            connects_per_address_per_sec: default_connects_per_sec(),
            connect_burst_per_address: default_connect_burst(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: &MqttConfig) -> Vec<String> {
        let mut p = Vec::new();
        c.validate(&mut Secrets::default(), &mut p);
        p
    }

    #[test]
    fn validate_names_each_key() {
        assert!(problems(&MqttConfig::default()).is_empty());
        let c = MqttConfig {
            broker: Some("mqtts://broker.plant".into()),
            password: Some("p".into()),
            password_env: Some("V".into()),
            client_id: String::new(),
            keep_alive_secs: 4,
            protocol: "3".into(),
            ..MqttConfig::default()
        };
        let p = problems(&c);
        for want in [
            "mqtt.ca_file: required with mqtts:// (the CA that signed the broker's certificate)",
            "mqtt: set only one of password, password_file, password_env",
            "mqtt.username: required when a password is set",
            "mqtt.client_id: must not be empty",
            "mqtt.keep_alive_secs: must be at least 5",
            "mqtt.protocol: `3` is not \"5\" or \"3.1.1\"",
        ] {
            assert!(p.iter().any(|m| m == want), "{want} missing in {p:?}");
        }
        assert!(!format!("{c:?}").contains("\"p\""), "the password never shows");
    }

    fn login(id: &str, site: &str, password: Option<&str>) -> AgentLoginConfig {
        AgentLoginConfig {
            id: id.into(),
            site: site.into(),
            password: password.map(Into::into),
            password_file: None,
            password_env: None,
        }
    }

    #[test]
    fn embedded_broker_logins_are_validated_and_an_open_one_stays_on_loopback() {
        let open_wide =
            MqttConfig { listen: SocketAddr::from(([0, 0, 0, 0], 1883)), ..MqttConfig::default() };
        let p = problems(&open_wide);
        assert!(
            p.iter().any(|m| m.starts_with("mqtt.listen: 0.0.0.0:1883 is not a loopback address")),
            "{p:?}"
        );
        let guarded = MqttConfig {
            agents: vec![login("gw-1", "plant-a", Some("pw1")), login("gw-2", "plant-a", Some("pw2"))],
            ..open_wide.clone()
        };
        assert!(problems(&guarded).is_empty(), "{:?}", problems(&guarded));
        let guard = guarded.guard(&mut Secrets::default()).unwrap().unwrap();
        assert_eq!(guard.logins.check("gw-2", "pw2").unwrap().agent(), "gw-2");
        assert_eq!(guard.limits.max_per_address, 64);
        assert!(!format!("{guarded:?}").contains("pw1"), "no password in Debug output");
        let bad = MqttConfig {
            agents: vec![
                login("gw 1", "plant-a", Some("x")),
                login("gw-2", "plant/a", Some("x")),
                login("gw-3", "plant-a", None),
                login("gw-3", "plant-a", Some("x")),
                login("throughline-aggregator", "plant-a", Some("x")),
            ],
            max_connections_per_address: 0,
            connects_per_address_per_sec: 0.0,
            connect_burst_per_address: 0,
            ..open_wide.clone()
        };
        let p = problems(&bad);
        for want in [
            "mqtt.agents[0].id: agent id `gw 1` may only contain letters, digits, `_` and `-`",
            "mqtt.agents[1].site: site id `plant/a` may only contain letters, digits, `_` and `-`",
            "mqtt.agents[2].password: set one of password, password_file, password_env",
            "mqtt.agents[3].id: `gw-3` has a login already",
            "mqtt.agents[4].id: `throughline-aggregator` is the aggregator's own client id (mqtt.client_id)",
            "mqtt.max_connections_per_address: must be at least 1",
            "mqtt.connects_per_address_per_sec: must be a positive number",
            "mqtt.connect_burst_per_address: must be at least 1",
        ] {
            assert!(p.iter().any(|m| m == want), "{want} missing in {p:?}");
        }
        let external = MqttConfig { broker: Some("mqtt://b:1883".into()), ..guarded };
        assert!(problems(&external)[0]
            .starts_with("mqtt.agents: logins of the embedded broker, but mqtt.broker is set"));
    }

    #[test]
    fn tls_files_need_an_mqtts_broker_and_are_read_at_validation() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let plain = MqttConfig {
            broker: Some("mqtt://b:1883".into()),
            ca_file: Some(ca.clone()),
            ..MqttConfig::default()
        };
        assert!(
            problems(&plain)[0].starts_with("mqtt.broker: ca_file/cert_file/key_file are set"),
            "{:?}",
            problems(&plain)
        );
        let embedded = MqttConfig { key_file: Some(ca.clone()), ..MqttConfig::default() };
        assert!(problems(&embedded)[0].contains("no broker is"), "{:?}", problems(&embedded));
        let tls = MqttConfig {
            broker: Some("mqtts://b".into()),
            ca_file: Some(ca.clone()),
            ..MqttConfig::default()
        };
        let p = problems(&tls);
        assert!(
            p[0].starts_with("mqtt: ") && p[0].contains("ca.pem") && p[0].contains("cannot read"),
            "{p:?}"
        );
        std::fs::write(&ca, "not a certificate\n").unwrap();
        assert!(problems(&tls)[0].contains("no certificate in the file"), "{:?}", problems(&tls));
        let half = MqttConfig { cert_file: Some(ca.clone()), ..tls.clone() };
        assert!(problems(&half)[0].contains("no certificate"), "the CA is checked first");
        assert!(tls.build(&IngestConfig::default(), &mut Secrets::default(), None).is_err());
    }

    #[test]
    fn build_connects_to_the_embedded_or_the_external_broker() {
        let ingest = IngestConfig::default();
        let embedded =
            MqttConfig { listen: SocketAddr::from(([127, 0, 0, 1], 1999)), ..MqttConfig::default() };
        assert_eq!(embedded.embedded(), Some(embedded.listen));
        let s = embedded.build(&ingest, &mut Secrets::default(), None).unwrap();
        assert_eq!(s.broker.to_string(), "mqtt://127.0.0.1:1999");
        assert_eq!((s.password, s.keep_alive), (None, Duration::from_secs(15)));
        assert_eq!(s.limits.max_payload_bytes, ingest.max_payload_bytes);
        assert_eq!((s.protocol, s.max_incoming_packet), (Protocol::V311, EMBEDDED_MAX_INCOMING_PACKET));
        let external = MqttConfig {
            broker: Some("mqtt://broker.plant:1884".into()),
            username: Some("agg".into()),
            password: Some("pw".into()),
            ..MqttConfig::default()
        };
        assert_eq!(external.embedded(), None);
        let s = external.build(&ingest, &mut Secrets::default(), None).unwrap();
        assert_eq!(
            (s.broker.port, s.username.as_deref(), s.password.as_deref()),
            (1884, Some("agg"), Some("pw"))
        );
        assert_eq!((s.protocol, s.max_incoming_packet), (Protocol::V311, EXTERNAL_MAX_INCOMING_PACKET));
        let v5 = MqttConfig { protocol: "5".into(), ..external.clone() };
        let s = v5.build(&ingest, &mut Secrets::default(), None).unwrap();
        assert_eq!(
            (s.protocol, s.max_incoming_packet),
            (Protocol::V5, ingest.max_payload_bytes + PACKET_ROOM),
            "over MQTT 5 the broker is told the payload limit plus room for the topic"
        );
        let unset = MqttConfig {
            username: Some("agg".into()),
            password_env: Some("THROUGHLINE_TEST_UNSET_VAR".into()),
            ..MqttConfig::default()
        };
        let e = unset.build(&ingest, &mut Secrets::default(), None).unwrap_err().to_string();
        assert_eq!(e, "mqtt.password_env: environment variable THROUGHLINE_TEST_UNSET_VAR is not set");
        let bad = MqttConfig { broker: Some("http://x".into()), ..MqttConfig::default() };
        let e = bad.build(&ingest, &mut Secrets::default(), None).unwrap_err().to_string();
        assert!(e.starts_with("mqtt.broker: broker URL `http://x`"), "{e}");
    }
}
