//! The edge agent's one error type at its crate boundary.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("state file {path}: {source}")]
    State { path: PathBuf, source: std::io::Error },
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
}
