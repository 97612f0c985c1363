//! `[http]`: the API server's listen address; builds the bound listener.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::error::Error;

/// HTTP API server.
#[derive(Debug, Clone, Deserialize)]
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

impl HttpConfig {
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
        let c = HttpConfig { listen: taken.local_addr().unwrap() };
        let e = c.bind().await.unwrap_err().to_string();
        assert!(e.starts_with("HTTP address 127.0.0.1:") && e.contains("--http-listen"), "{e}");
        let free = HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)) };
        assert_ne!(free.bind().await.unwrap().local_addr().unwrap().port(), 0);
    }
}
