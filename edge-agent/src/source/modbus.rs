//! `modbus-tcp` source: one task per device polls the registers of all its
//! assets. (Implementation in progress.)

use std::sync::Arc;

use serde::Deserialize;

use crate::source::{Health, Sink};

/// A Modbus TCP device (`[[devices]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    /// Name used by assets' `device` key and in logs and status.
    pub id: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    502
}

impl ModbusDevice {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.host.trim().is_empty() {
            p.push(format!("{key}.host: must not be empty"));
        }
        p
    }
}

/// An asset's register map (`type = "modbus-tcp"` source).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusAsset {
    /// The `[[devices]]` id this asset is read from.
    pub device: String,
}

impl ModbusAsset {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let _ = key;
        Vec::new()
    }
}

/// Poll `device` for `assets` (index in the config, register map) until the agent stops.
pub async fn run_device(
    device: ModbusDevice,
    assets: Vec<(usize, ModbusAsset)>,
    sink: Sink,
    health: Arc<Health>,
) {
    let _ = (device, assets, health);
    sink.stopping().cancelled().await;
}
