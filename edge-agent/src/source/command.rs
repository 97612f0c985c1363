//! `command` source: runs a program that prints samples as JSON lines.
//! (Implementation in progress.)

use std::sync::Arc;

use serde::Deserialize;

use crate::source::{Health, Sink};

/// Settings of a `type = "command"` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program to run (absolute path, or a name looked up in PATH).
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

impl CommandConfig {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.program.trim().is_empty() {
            p.push(format!("{key}.program: must not be empty"));
        }
        p
    }
}

/// Run the command source of asset number `asset` (id `asset_id`) until the agent stops.
pub async fn run(asset: usize, asset_id: String, config: CommandConfig, sink: Sink, health: Arc<Health>) {
    let _ = (asset, asset_id, config, health);
    sink.stopping().cancelled().await;
}
