//! `[http]`: the API server's listen address and the limits that bound
//! what one client costs; builds the bound listener.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
pub use crate::service::HttpLimits;

/// HTTP API server.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free port).
    #[serde(default = "default_http")]
    pub listen: SocketAddr,
    /// Connections served at once; one more is closed as soon as it is
    /// accepted (counted in `throughline_http_connections_refused_total`),
    /// so a flood of idle sockets cannot use up the process's file
    /// descriptors (keep it well under `LimitNOFILE`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, counted from the
    /// connection's start or the end of its previous request; then the
    /// connection is closed (a slowloris client holds nothing for longer).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection may pass with no byte in either direction; then
    /// it is closed. The event stream sends a ping well within it.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a request has to send its whole body, from the end of its
    /// headers (408 after that).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Largest forecast file `POST /api/v1/forecasts` takes, in bytes
    /// (413 beyond). Read as it streams in; one import runs at a time.
    #[serde(default = "default_max_import_bytes")]
    pub max_import_bytes: usize,
}

fn default_max_connections() -> usize {
    512
}

fn default_header_timeout() -> u64 {
    10
}

fn default_idle_timeout() -> u64 {
    60
}

fn default_body_timeout() -> u64 {
    60
}

fn default_max_import_bytes() -> usize {
    64 * 1024 * 1024
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http(),
            max_connections: default_max_connections(),
            header_timeout_secs: default_header_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            body_timeout_secs: default_body_timeout(),
            max_import_bytes: default_max_import_bytes(),
        }
    }
}

impl HttpConfig {
    /// Report every limit that cannot work.
    pub fn validate(&self, p: &mut Vec<String>) {
        for (key, v) in [
            ("max_connections", self.max_connections as u64),
            ("header_timeout_secs", self.header_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("max_import_bytes", self.max_import_bytes as u64),
        ] {
            if v == 0 {
                p.push(format!("http.{key}: must be > 0"));
            }
        }
    }

    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            max_import_bytes: self.max_import_bytes,
        }
    }

    /// Bind the listener; a taken address says which flag picks another.
    pub async fn bind(&self) -> Result<tokio::net::TcpListener, Error> {
        match tokio::net::TcpListener::bind(self.listen).await {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::AddrInUse {
                what: "HTTP",
                addr: self.listen,
                hint: ". Choose another with --http-listen 127.0.0.1:8081 (or port 0 for any free port)"
                    .into(),
            }),
            Err(e) => Err(Error::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_names_the_flag() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = HttpConfig { listen: taken.local_addr().unwrap(), ..HttpConfig::default() };
        let e = c.bind().await.unwrap_err().to_string();
        assert!(e.starts_with("HTTP address 127.0.0.1:") && e.contains("--http-listen"), "{e}");
        let free = HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..HttpConfig::default() };
        assert_ne!(free.bind().await.unwrap().local_addr().unwrap().port(), 0);
    }
}
