//! Broker addresses as both binaries take them: `mqtt://host:port` (or
//! `tcp://`); `mqtts://` for TLS. IPv6 hosts go in brackets: `mqtt://[::1]:1883`.

use std::fmt;
use std::path::Path;

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Why a broker address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker URL `{url}`: {reason} (expected mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883)")]
pub struct BrokerUrlError {
    pub url: String,
    pub reason: &'static str,
}

impl BrokerUrl {
    /// Parse `mqtt://host[:port]`, `tcp://host[:port]` or `mqtts://host[:port]`.
    pub fn parse(url: &str) -> Result<BrokerUrl, BrokerUrlError> {
        let err = |reason| BrokerUrlError { url: url.to_string(), reason };
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://"))
        {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://").or_else(|| url.strip_prefix("ssl://")) {
            (true, r)
        } else {
            return Err(err("unknown scheme"));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') {
            return Err(err("credentials do not belong in the URL; set username and password in the config"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| err("unclosed `[` in IPv6 host"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().map_err(|_| err("port is not a number 1-65535"))?),
                None if after.is_empty() => (host, default_port),
                None => return Err(err("unexpected text after the IPv6 host")),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| err("port is not a number 1-65535"))?),
                None => (rest, default_port),
            }
        };
        if host.is_empty() || host.contains('/') {
            return Err(err("host is missing"));
        }
        if port == 0 {
            return Err(err("port 0 is not a broker port"));
        }
        Ok(BrokerUrl { host: host.to_string(), port, tls })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Broker credentials as both configs spell them: a username and at most
/// one place to read the password from. The password itself never reaches
/// `Debug` output or logs.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub password_env: Option<&'a str>,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .finish()
    }
}

impl Credentials<'_> {
    /// Problems with the combination, each naming its key under `section`.
    pub fn problems(&self, section: &str) -> Vec<String> {
        let set = [self.password.is_some(), self.password_file.is_some(), self.password_env.is_some()];
        let mut p = Vec::new();
        if set.iter().filter(|s| **s).count() > 1 {
            p.push(format!("{section}: set only one of password, password_file, password_env"));
        }
        if set.iter().any(|s| *s) && self.username.is_none() {
            p.push(format!("{section}.username: required when a password is set"));
        }
        p
    }

    /// The password, read from wherever it is configured (by
    /// [`read_secret`](crate::secret::read_secret), as every secret is).
    pub fn password(&self, section: &str) -> Result<Option<String>, String> {
        crate::secret::read_secret(section, "password", self.password, self.password_file, self.password_env)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_sources_and_problems() {
        let none = Credentials { username: None, password: None, password_file: None, password_env: None };
        assert!(none.problems("mqtt").is_empty());
        assert_eq!(none.password("mqtt").unwrap(), None);
        let both = Credentials { password: Some("x"), password_env: Some("V"), ..none };
        let p = both.problems("mqtt");
        assert!(
            p.iter().any(|m| m.contains("only one")) && p.iter().any(|m| m.contains("mqtt.username")),
            "{p:?}"
        );
        let dir = std::env::temp_dir().join(format!("tl-cred-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let file = Credentials { username: Some("u"), password_file: Some(&dir), ..none };
        assert_eq!(file.password("mqtt").unwrap().as_deref(), Some("s3cret"));
        std::fs::remove_file(&dir).unwrap();
        let missing =
            Credentials { username: Some("u"), password_env: Some("THROUGHLINE_TEST_UNSET_VAR"), ..none };
        assert!(missing.password("mqtt").unwrap_err().contains("THROUGHLINE_TEST_UNSET_VAR"));
        assert!(!format!("{:?}", Credentials { password: Some("hunter2"), ..none }).contains("hunter2"));
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap(),
            BrokerUrl { host: "127.0.0.1".into(), port: 1884, tls: false }
        );
        assert_eq!(BrokerUrl::parse("tcp://broker.plant").unwrap().port, 1883);
        assert_eq!(BrokerUrl::parse("mqtts://broker.plant").unwrap().port, 8883);
        let v6 = BrokerUrl::parse("mqtt://[::1]:1999").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1999));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1999");
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "127.0.0.1:1883",
            "http://x",
            "mqtt://",
            "mqtt://h:port",
            "mqtt://h:0",
            "mqtt://u:p@h",
            "mqtt://[::1",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
