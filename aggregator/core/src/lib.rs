//! Throughline's planning core: what the aggregator knows and decides,
//! without I/O, clocks or async. Everything here is a function of its
//! inputs (samples, configuration, forecasts, event time), so replayed data
//! gives the same numbers and alerts as live data, and every rule is tested
//! without a broker or a database.
//!
//! The crate depends on no async runtime, database or network crate (see
//! its `Cargo.toml`; `cargo tree -p throughline-core -e normal` proves it).
//!
//! # Modules, in the order data flows through them
//! - [`model`]: the vocabulary: asset kinds and units, assets and groups as
//!   configured, forecast rows, alert keys/kinds/statuses, reservation
//!   statuses.
//! - [`state`]: live state per asset and agent; `apply_telemetry` and
//!   `apply_status` return what changed (the events the sink, the alert
//!   task, the rollups and the dashboard act on).
//! - [`snapshot`]: what of live state a checkpoint stores and a restart
//!   reads back (last counters, states, event times, sequence windows).
//! - [`resend`]: which of the agents' missing `seq` ranges to ask them to
//!   resend, when, and when to report a range lost (time passed in).
//! - [`notice`]: which agents to tell that their messages are refused for
//!   their sample times (a clock off), and until when a gap of envelopes
//!   refused as ahead waits before it is asked for.
//! - [`history`]: per-minute output, state seconds and load of one asset.
//! - [`stops`]: an asset's recent stops, and the repair time they suggest
//!   for the stop under way (when a down asset is projected back).
//! - [`balance`]: one forecast bucket of one group against what its assets
//!   made and can still make.
//! - [`projection`]: the plant's groups and assets, and from live state the
//!   per-asset plans and balances of every bucket; which alert keys a group
//!   covers.
//! - [`ctp`]: capable-to-promise: can N more be made by a date.
//! - [`alert`]: rules (balances and live state to conditions) and the alert
//!   book (conditions to alert changes).
//! - [`forecast`]: forecast files (CSV, JSON) to validated rows, every
//!   problem located by line and field.
//! - [`accuracy`]: closed buckets' stored actuals against their forecast
//!   (the forecast-accuracy report), and per group the mean errors.

#![forbid(unsafe_code)]

pub mod accuracy;
pub mod alert;
pub mod balance;
pub mod ctp;
pub mod fanout;
pub mod forecast;
pub mod history;
pub mod model;
pub mod notice;
pub mod projection;
pub mod resend;
pub mod rollup;
pub mod snapshot;
pub mod state;
pub mod stops;
#[cfg(test)]
mod testkit;
