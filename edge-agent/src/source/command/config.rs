//! Settings of a `type = "command"` source and their validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

const DEFAULT_INTERVAL_MS: u64 = 1000;
const MIN_INTERVAL_MS: u64 = 100;
const DEFAULT_TIMEOUT_MS: u64 = 5000;
const MIN_TIMEOUT_MS: u64 = 100;
const DEFAULT_RESTART_DELAY_MS: u64 = 1000;
const MIN_RESTART_DELAY_MS: u64 = 100;
/// Longest wait before a restart, and the run time after which a
/// long-running program counts as healthy again (its delay starts over).
pub(super) const MAX_RESTART_DELAY_MS: u64 = 60_000;

/// How the program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandMode {
    /// Started every `interval_ms`; prints its lines and exits.
    #[default]
    Periodic,
    /// Started once and kept running; restarted when it exits.
    LongRunning,
}

impl CommandMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandMode::Periodic => "periodic",
            CommandMode::LongRunning => "long-running",
        }
    }
}

/// Settings of a `type = "command"` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program to run (absolute path, or a name looked up in PATH).
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `periodic` (default) or `long-running`.
    #[serde(default)]
    pub mode: CommandMode,
    /// Periodic: start the program this often, in milliseconds (default
    /// 1000, at least 100).
    pub interval_ms: Option<u64>,
    /// Periodic: kill a run that takes longer than this, in milliseconds
    /// (default 5000, at least 100).
    pub timeout_ms: Option<u64>,
    /// Long-running: wait this long before starting the program again after
    /// it exited, in milliseconds (default 1000, 100..=60000). Doubles, up
    /// to 60 s, while the program keeps exiting within a minute.
    pub restart_delay_ms: Option<u64>,
    /// Environment variables set for the program, on top of the agent's own.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Directory the program runs in (default: the agent's).
    pub working_dir: Option<PathBuf>,
}

impl CommandConfig {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.program.trim().is_empty() {
            p.push(format!("{key}.program: must not be empty"));
        } else if self.program.contains('\0') {
            p.push(format!("{key}.program: must not contain a NUL character"));
        }
        for (i, arg) in self.args.iter().enumerate() {
            if arg.contains('\0') {
                p.push(format!("{key}.args[{i}]: must not contain a NUL character"));
            }
        }
        let keys = [
            ("interval_ms", self.interval_ms, CommandMode::Periodic, MIN_INTERVAL_MS, u64::MAX),
            ("timeout_ms", self.timeout_ms, CommandMode::Periodic, MIN_TIMEOUT_MS, u64::MAX),
            (
                "restart_delay_ms",
                self.restart_delay_ms,
                CommandMode::LongRunning,
                MIN_RESTART_DELAY_MS,
                MAX_RESTART_DELAY_MS,
            ),
        ];
        for (name, value, mode, min, max) in keys {
            let Some(ms) = value else { continue };
            if mode != self.mode {
                p.push(format!(
                    "{key}.{name}: only used with mode = \"{}\", this source is \"{}\"",
                    mode.as_str(),
                    self.mode.as_str()
                ));
            } else if ms < min {
                p.push(format!("{key}.{name}: must be at least {min}"));
            } else if ms > max {
                p.push(format!("{key}.{name}: must be at most {max}"));
            }
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                p.push(format!("{key}.env: variable name {name:?} must be non-empty, without `=` or NUL"));
            }
            if value.contains('\0') {
                p.push(format!("{key}.env.{name}: must not contain a NUL character"));
            }
        }
        if self.working_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            p.push(format!("{key}.working_dir: must not be empty"));
        }
        p
    }

    /// Periodic: time between starts of the program.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS))
    }

    /// Periodic: longest run before the program is killed.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// Long-running: first wait before a restart.
    pub fn restart_delay(&self) -> Duration {
        Duration::from_millis(self.restart_delay_ms.unwrap_or(DEFAULT_RESTART_DELAY_MS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> CommandConfig {
        toml::from_str(&format!("program = \"/usr/bin/reader\"\n{extra}")).unwrap()
    }

    #[test]
    fn config_defaults() {
        let c = config("");
        assert_eq!(c.mode, CommandMode::Periodic);
        assert_eq!(c.interval(), Duration::from_millis(1000));
        assert_eq!(c.timeout(), Duration::from_millis(5000));
        assert_eq!(c.restart_delay(), Duration::from_millis(1000));
        assert!(c.problems("s").is_empty());
        let c = config("mode = \"long-running\"\nrestart_delay_ms = 60000\nargs = [\"-v\"]\nworking_dir = \"/tmp\"\n[env]\nA = \"1\"");
        assert!(c.problems("s").is_empty(), "{:?}", c.problems("s"));
        assert_eq!(c.mode, CommandMode::LongRunning);
        assert!(toml::from_str::<CommandConfig>("program = \"x\"\nmode = \"daily\"").is_err());
        assert!(toml::from_str::<CommandConfig>("program = \"x\"\ninterval = 5").is_err());
    }

    #[test]
    fn config_problems_name_their_keys() {
        let c: CommandConfig = toml::from_str(
            "program = \" \"\nargs = [\"ok\", \"a\\u0000b\"]\ninterval_ms = 50\ntimeout_ms = 99\n\
             restart_delay_ms = 500\nworking_dir = \"\"\n[env]\n\"A=B\" = \"1\"\nC = \"x\\u0000\"",
        )
        .unwrap();
        let p = c.problems("assets[2].source");
        for want in [
            "assets[2].source.program: must not be empty",
            "assets[2].source.args[1]: must not contain a NUL",
            "assets[2].source.interval_ms: must be at least 100",
            "assets[2].source.timeout_ms: must be at least 100",
            "assets[2].source.restart_delay_ms: only used with mode = \"long-running\"",
            "assets[2].source.env: variable name \"A=B\"",
            "assets[2].source.env.C: must not contain a NUL",
            "assets[2].source.working_dir: must not be empty",
        ] {
            assert!(p.iter().any(|x| x.starts_with(want)), "{want} in {p:#?}");
        }
        assert_eq!(p.len(), 8, "{p:#?}");

        let c = config(
            "mode = \"long-running\"\ninterval_ms = 1000\ntimeout_ms = 1000\nrestart_delay_ms = 60001",
        );
        let p = c.problems("k");
        assert_eq!(
            p,
            vec![
                "k.interval_ms: only used with mode = \"periodic\", this source is \"long-running\"",
                "k.timeout_ms: only used with mode = \"periodic\", this source is \"long-running\"",
                "k.restart_delay_ms: must be at most 60000",
            ]
        );
    }
}
