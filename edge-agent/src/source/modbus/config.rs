//! Configuration of the `modbus-tcp` source: the `[[devices]]` entries and
//! each asset's register map. Validation reports every mistake with its key.

use std::collections::BTreeMap;

use serde::Deserialize;
use throughline_shared::message::MAX_REASON_LEN;
use throughline_shared::AssetState;

/// A Modbus TCP device (`[[devices]]`): a PLC, meter or gateway. One task
/// polls all the assets read from it, so a slow or dead device never holds
/// up another.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    /// Name used by assets' `device` key and in logs and status (`modbus:<id>`).
    pub id: String,
    /// Host name or IP address.
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Modbus unit (slave) id; behind a gateway this selects the device.
    /// An asset can override it.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Time between polls of all the device's assets, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Longest wait for a connection or for the answer to one request, in
    /// milliseconds. A timeout drops the connection; the task reconnects
    /// with a backoff of 0.5 s doubling to 30 s.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_port() -> u16 {
    502
}
fn default_unit_id() -> u8 {
    1
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    1000
}

/// Shortest allowed `poll_ms`.
pub const MIN_POLL_MS: u64 = 50;

impl ModbusDevice {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.id.is_empty()
            || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            p.push(format!("{key}.id: use letters, digits, '-', '_' and '.' only (not empty)"));
        }
        if self.host.trim().is_empty() || self.host.chars().any(char::is_whitespace) {
            p.push(format!("{key}.host: must be a host name or IP address"));
        }
        if self.port == 0 {
            p.push(format!("{key}.port: must be 1..=65535"));
        }
        if !(MIN_POLL_MS..=3_600_000).contains(&self.poll_ms) {
            p.push(format!("{key}.poll_ms: must be {MIN_POLL_MS}..=3600000"));
        }
        if !(10..=60_000).contains(&self.timeout_ms) {
            p.push(format!("{key}.timeout_ms: must be 10..=60000"));
        }
        p
    }
}

/// Which register table a value is read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Table {
    /// Holding registers (function 0x03).
    #[default]
    Holding,
    /// Input registers (function 0x04).
    Input,
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Table::Holding => "holding",
            Table::Input => "input",
        })
    }
}

/// Order of the 16-bit words of a value that spans several registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WordOrder {
    /// Most significant word at the lowest address (Modbus' own byte order,
    /// "big-endian").
    #[default]
    HighFirst,
    /// Least significant word at the lowest address ("word-swapped").
    LowFirst,
}

/// An asset's register map (`type = "modbus-tcp"` source). At least one of
/// `output`, `state`, `reason`, `load` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusAsset {
    /// The `[[devices]]` id this asset is read from.
    pub device: String,
    /// Unit id for this asset's requests, when it differs from the device's
    /// (several devices behind one gateway).
    pub unit_id: Option<u8>,
    /// Cumulative output counter (pieces, or kWh for a feeder).
    pub output: Option<CounterRegister>,
    /// State register and what its values mean.
    pub state: Option<StateRegister>,
    /// Downtime reason code register and what its values mean.
    pub reason: Option<ReasonRegister>,
    /// Instantaneous load, scaled to kW.
    pub load: Option<LoadRegister>,
}

/// The output counter: an unsigned 16, 32 or 64-bit value.
/// `output = (wraps + raw) * scale`. A 16 or 32-bit counter that drops by
/// more than half its range has wrapped around and keeps counting up; a
/// smaller drop is a reset and is published as such.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterRegister {
    /// First register, 0-based (register 40001 of the manual is `0` in the holding table).
    pub address: u16,
    #[serde(default)]
    pub table: Table,
    /// Registers the value spans: 1, 2 or 4 (16, 32 or 64 bits).
    #[serde(default = "one_word")]
    pub words: u8,
    #[serde(default)]
    pub word_order: WordOrder,
    /// Counter unit to the asset's unit, e.g. 0.001 for a Wh counter of a
    /// feeder that reports kWh. Must be > 0.
    #[serde(default = "unit_scale")]
    pub scale: f64,
}

/// The load: a 16 or 32-bit value, `load_kw = raw * scale + offset`. A
/// negative result is published as 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRegister {
    /// First register, 0-based.
    pub address: u16,
    #[serde(default)]
    pub table: Table,
    /// Registers the value spans: 1 or 2.
    #[serde(default = "one_word")]
    pub words: u8,
    #[serde(default)]
    pub word_order: WordOrder,
    /// The raw value is two's complement signed.
    #[serde(default)]
    pub signed: bool,
    /// Raw value to kW (e.g. 0.1 for a register in units of 100 W).
    #[serde(default = "unit_scale")]
    pub scale: f64,
    /// Added after scaling, in kW.
    #[serde(default)]
    pub offset: f64,
}

/// The state register: a 16-bit value mapped to a state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRegister {
    /// The register, 0-based.
    pub address: u16,
    #[serde(default)]
    pub table: Table,
    /// Register value (as a TOML key, e.g. `"1"`) to state (`running`,
    /// `idle`, `down`, `setup`, `maintenance`).
    pub map: BTreeMap<String, String>,
    /// State for values the map does not name. Without it such a value is a
    /// source error (shown in the agent's status) and the reading carries no
    /// state.
    pub default: Option<AssetState>,
}

/// The reason-code register: a 16-bit value mapped to a reason code. 0
/// means no reason unless the map names it; other values the map does not
/// name are sent as `code-<value>`. No reason is sent while the state
/// register says `running`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRegister {
    /// The register, 0-based.
    pub address: u16,
    #[serde(default)]
    pub table: Table,
    /// Register value (as a TOML key, e.g. `"3"`) to reason code (e.g. `jam`).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

fn one_word() -> u8 {
    1
}
fn unit_scale() -> f64 {
    1.0
}

impl ModbusAsset {
    /// Validation problems, each naming its key under `key`. (That
    /// `device` names a `[[devices]]` entry is checked with the whole config.)
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.device.is_empty() {
            p.push(format!("{key}.device: must name a [[devices]] id"));
        }
        if self.output.is_none() && self.state.is_none() && self.reason.is_none() && self.load.is_none() {
            p.push(format!("{key}: set at least one of `output`, `state`, `reason`, `load`"));
        }
        if let Some(o) = &self.output {
            let k = format!("{key}.output");
            if !matches!(o.words, 1 | 2 | 4) {
                p.push(format!("{k}.words: must be 1, 2 or 4 (16, 32 or 64 bits)"));
            }
            p.extend(span_problem(&k, o.address, o.words));
            if !(o.scale.is_finite() && o.scale > 0.0) {
                p.push(format!("{k}.scale: must be a number > 0"));
            }
        }
        if let Some(l) = &self.load {
            let k = format!("{key}.load");
            if !matches!(l.words, 1 | 2) {
                p.push(format!("{k}.words: must be 1 or 2 (16 or 32 bits)"));
            }
            p.extend(span_problem(&k, l.address, l.words));
            if !(l.scale.is_finite() && l.scale != 0.0) {
                p.push(format!("{k}.scale: must be a number other than 0"));
            }
            if !l.offset.is_finite() {
                p.push(format!("{k}.offset: must be a number"));
            }
        }
        if let Some(s) = &self.state {
            let k = format!("{key}.state");
            if s.map.is_empty() {
                p.push(format!("{k}.map: must name at least one value, e.g. {{ \"1\" = \"running\" }}"));
            }
            for (value, state) in &s.map {
                if value.parse::<u16>().is_err() {
                    p.push(format!("{k}.map.\"{value}\": key must be a register value 0..=65535"));
                }
                if AssetState::parse(state).is_none() {
                    let all: Vec<&str> = AssetState::ALL.iter().map(|s| s.as_str()).collect();
                    p.push(format!("{k}.map.\"{value}\": `{state}` is not a state ({})", all.join(", ")));
                }
            }
        }
        if let Some(r) = &self.reason {
            let k = format!("{key}.reason");
            for (value, reason) in &r.map {
                if value.parse::<u16>().is_err() {
                    p.push(format!("{k}.map.\"{value}\": key must be a register value 0..=65535"));
                }
                if reason.trim().is_empty() {
                    p.push(format!("{k}.map.\"{value}\": reason must not be empty"));
                } else if reason.chars().count() > MAX_REASON_LEN {
                    p.push(format!("{k}.map.\"{value}\": longer than {MAX_REASON_LEN} characters"));
                }
            }
        }
        p
    }
}

/// A value of `words` registers from `address` must stay within 0..=65535.
fn span_problem(key: &str, address: u16, words: u8) -> Option<String> {
    let last = address as u32 + (words.max(1) as u32) - 1;
    (last > u16::MAX as u32)
        .then(|| format!("{key}.address: registers {address}..={last} run past the last register 65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(toml_text: &str) -> ModbusAsset {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_of_a_device() {
        let d: ModbusDevice = toml::from_str("id = \"plc-1\"\nhost = \"10.0.0.5\"").unwrap();
        assert_eq!((d.port, d.unit_id, d.poll_ms, d.timeout_ms), (502, 1, 1000, 1000));
        assert!(d.problems("devices[0]").is_empty());
    }

    #[test]
    fn device_problems_name_their_keys() {
        let d: ModbusDevice =
            toml::from_str("id = \"plc 1\"\nhost = \"\"\nport = 0\npoll_ms = 10\ntimeout_ms = 0").unwrap();
        let p = d.problems("devices[1]").join("\n");
        for key in ["id", "host", "port", "poll_ms", "timeout_ms"] {
            assert!(p.contains(&format!("devices[1].{key}: ")), "{key} missing in:\n{p}");
        }
    }

    #[test]
    fn register_map_defaults_and_a_good_map() {
        let a = asset(
            r#"
device = "plc-1"
output = { address = 0, words = 2, word_order = "low-first" }
state = { address = 10, map = { "0" = "down", "1" = "running" }, default = "idle" }
reason = { address = 11, table = "input", map = { "3" = "jam" } }
load = { address = 12, signed = true, scale = 0.1, offset = 2.5 }
"#,
        );
        assert!(a.problems("assets[0].source").is_empty(), "{:?}", a.problems("assets[0].source"));
        let o = a.output.as_ref().unwrap();
        assert_eq!((o.table, o.word_order, o.scale), (Table::Holding, WordOrder::LowFirst, 1.0));
        assert_eq!(a.reason.as_ref().unwrap().table, Table::Input);
        assert_eq!(a.state.as_ref().unwrap().default, Some(AssetState::Idle));
        let l = a.load.as_ref().unwrap();
        assert_eq!((l.words, l.word_order, l.signed), (1, WordOrder::HighFirst, true));
    }

    #[test]
    fn register_map_problems_name_their_keys() {
        let a = asset(
            r#"
device = ""
output = { address = 65534, words = 3, scale = 0 }
state = { address = 10, map = { "x" = "running", "2" = "stopped" } }
reason = { address = 11, map = { "70000" = "jam", "4" = "" } }
load = { address = 12, words = 4, scale = 0 }
"#,
        );
        let p = a.problems("assets[2].source").join("\n");
        for expected in [
            "assets[2].source.device: ",
            "assets[2].source.output.words: must be 1, 2 or 4",
            "assets[2].source.output.address: registers 65534..=65536",
            "assets[2].source.output.scale: ",
            "assets[2].source.state.map.\"x\": key must be a register value",
            "assets[2].source.state.map.\"2\": `stopped` is not a state",
            "assets[2].source.reason.map.\"70000\": key must be",
            "assets[2].source.reason.map.\"4\": reason must not be empty",
            "assets[2].source.load.words: must be 1 or 2",
            "assets[2].source.load.scale: ",
        ] {
            assert!(p.contains(expected), "`{expected}` missing in:\n{p}");
        }
        let empty = asset("device = \"plc-1\"");
        assert_eq!(empty.problems("k"), vec!["k: set at least one of `output`, `state`, `reason`, `load`"]);
    }

    #[test]
    fn unknown_keys_and_bad_enums_are_refused_when_parsing() {
        let e = toml::from_str::<ModbusAsset>("device = \"d\"\noutput = { address = 1, wordz = 2 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wordz"), "{e}");
        let e = toml::from_str::<ModbusAsset>("device = \"d\"\noutput = { address = 1, table = \"coil\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("coil"), "{e}");
        let e = toml::from_str::<ModbusAsset>("device = \"d\"\nload = { address = 70000 }").unwrap_err();
        assert!(e.to_string().contains("70000"), "{e}");
    }
}
