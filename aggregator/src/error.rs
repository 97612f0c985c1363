//! The aggregator's error type at its crate boundary.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("{what} address {addr} is already in use{hint}")]
    AddrInUse { what: &'static str, addr: std::net::SocketAddr, hint: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("embedded broker: {0}")]
    Broker(String),
    #[error("HTTP client for alert delivery: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("aggregator task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}
