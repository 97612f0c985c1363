//! `[influxdb]`: the time-series sink; builds the [`InfluxSink`] handle with
//! its token.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secrets::{Secret, Secrets};
use super::ConfigError;
use crate::metrics::InfluxMetrics;
use crate::sink::influx::{InfluxSink, Settings, Token, BACKOFF, SHUTDOWN_FLUSH};

/// The InfluxDB v2 sink (`[influxdb]`): every accepted sample is written as
/// line protocol to `{url}/api/v2/write` (InfluxDB 2 and 3, VictoriaMetrics).
/// Schema: docs/timeseries.md.
#[derive(Clone, Deserialize)]
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
    fn token_secret(&self) -> Secret<'_> {
        Secret {
            section: "influxdb".into(),
            name: "token",
            inline: self.token.as_deref(),
            file: self.token_file.as_deref(),
            env: self.token_env.as_deref(),
            required: true,
        }
    }

    /// Report every problem under `influxdb`, reading the token.
    pub fn validate(&self, secrets: &mut Secrets, p: &mut Vec<String>) {
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
        secrets.check(&self.token_secret(), p);
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
    }

    /// The sink's handle (its writer task is started by `App::run`).
    pub fn build(&self, secrets: &mut Secrets, metrics: InfluxMetrics) -> Result<InfluxSink, ConfigError> {
        let token = secrets.take_required(&self.token_secret())?;
        Ok(InfluxSink::new(self.settings(token), metrics))
    }

    fn settings(&self, token: String) -> Settings {
        Settings {
            url: self.url.trim_end_matches('/').to_string(),
            org: self.org.clone(),
            bucket: self.bucket.clone(),
            token: Token::new(token),
            batch_points: self.batch_points.max(1),
            flush: Duration::from_millis(self.flush_ms),
            buffer_points: self.buffer_points,
            timeout: Duration::from_millis(self.timeout_ms),
            backoff: BACKOFF,
            shutdown_flush: SHUTDOWN_FLUSH,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
    fn build_uses_the_token_read_by_validate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("influx-token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c: Config = toml::from_str(&format!(
            "[influxdb]\nurl = \"http://127.0.0.1:8086/\"\norg = \"plant\"\nbucket = \"tl\"\ntoken_file = \"{}\"\nbatch_points = 10\nbuffer_points = 20\nflush_ms = 50",
            file.display()
        ))
        .unwrap();
        let mut secrets = c.validate("agg.toml").unwrap();
        std::fs::remove_file(&file).unwrap();
        let influx = c.influxdb.as_ref().unwrap();
        let sink = influx.build(&mut secrets, InfluxMetrics::default()).unwrap();
        let s = sink.settings();
        assert_eq!(
            (s.url.as_str(), s.org.as_str(), s.bucket.as_str()),
            ("http://127.0.0.1:8086", "plant", "tl")
        );
        assert_eq!((s.batch_points, s.buffer_points, s.flush), (10, 20, Duration::from_millis(50)));
        assert_eq!(
            (s.timeout, s.backoff, s.shutdown_flush),
            (Duration::from_secs(5), BACKOFF, SHUTDOWN_FLUSH)
        );
        assert!(!format!("{sink:?}").contains("s3cret"));
        // Without validation the token is read by the build, which fails by key.
        let e = influx.build(&mut Secrets::default(), InfluxMetrics::default()).unwrap_err().to_string();
        assert!(e.starts_with("influxdb.token_file: cannot read "), "{e}");
    }
}
