//! The aggregator's long-running tasks, each stopping within seconds when
//! its token is cancelled:
//!
//! - [`ingest`]: the MQTT client; decodes each message and applies it to
//!   live state (which tells the sink, the alert task, the rollups and the
//!   dashboard what changed);
//! - [`alerts`]: periodic and edge-triggered alert evaluation, publishing
//!   every change;
//! - [`rollup`]: writes the per-minute history to the store, prunes it;
//! - [`live_tick`]: pushes the dashboard's changed views;
//! - [`notify`]: one per receiver, delivers the outbox.

pub mod alerts;
pub mod ingest;
pub mod live_tick;
pub mod notify;
pub mod rollup;
