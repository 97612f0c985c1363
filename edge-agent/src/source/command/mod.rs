//! `command` source: runs a program that prints samples as JSON lines on its
//! standard output, one object per line:
//!
//! ```text
//! {"output": 120455, "state": "running", "load_kw": 42.5}
//! {"ts": "2026-11-23T08:00:06.120Z", "state": "down", "reason": "jam"}
//! ```
//!
//! The fields are those of a protocol v1 sample: `ts` (RFC 3339 with an
//! offset; absent means "now"), `output`, `state`, `reason` and `load_kw`,
//! with at least one measurement. A line is checked by the rules the
//! aggregator applies to a sample (see `docs/protocol.md`), so a bad line is
//! refused here, with its line number and the reason, instead of making the
//! aggregator refuse a whole envelope later. Bad lines are logged, counted
//! and shown in the source's health; the other lines go on.
//!
//! Two modes:
//! - `periodic`: the program is started every `interval_ms`, prints one or
//!   more lines and exits. A run that takes longer than `timeout_ms` is
//!   killed. Runs never overlap.
//! - `long-running`: the program is started once and prints lines as long
//!   as it runs. When it exits it is started again after `restart_delay_ms`;
//!   the delay doubles (up to 60 s) while it keeps failing within a minute.
//!
//! The program gets no standard input; its standard error is logged at
//! debug level and its last line is quoted in health errors. It runs in a
//! process group of its own, and the whole group is killed when the agent
//! stops, when a periodic run times out, and when the program exits but
//! leaves something behind that still holds its output open.
//!
//! # Layout
//! - `config`: `CommandConfig` (`[assets.source]` with `type = "command"`)
//!   and its validation.
//! - `parser`: one output line to a checked [`Sample`](throughline_shared::Sample) (pure).
//! - `reader`: splits the program's output into bounded lines.
//! - `process`: starts, watches and kills the program, in either mode.
//!
//! Data flows `process` (spawn) -> `reader` (lines) -> `parser` (samples)
//! -> the source's [`Sink`](crate::source::Sink).

mod config;
mod parser;
mod process;
mod reader;

pub use config::{CommandConfig, CommandMode};
pub use parser::parse_line;
pub use process::run;
pub use reader::MAX_LINE_BYTES;
