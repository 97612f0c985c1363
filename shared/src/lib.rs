//! Throughline wire protocol v1, shared by the edge agent, the aggregator and
//! third-party devices that publish to Throughline.
//!
//! The protocol is a public contract: `docs/protocol.md` describes it for device
//! makers, and this crate is its one implementation in Rust.
//!
//! # Layout
//! - [`ids`]: `SiteId`, `AgentId`, `AssetId`, validated newtypes (`[A-Za-z0-9_-]{1,64}`).
//! - [`topic`]: topic builders and parsers; the only place topic strings are spelled.
//! - [`message`]: `Envelope`, `Sample`, `AssetState`, `AgentStatus` (serde types).
//! - [`codec`]: encode, decode and validate; [`codec::CodecError`] names every
//!   rejection reason with a stable label used in logs and metrics.
//! - [`broker`]: `mqtt://host:port` broker addresses and broker credentials
//!   as both binaries accept them.
//! - [`secret`]: the one reader of secrets in config (inline, `_file` or `_env`).
//! - [`throttle`]: [`throttle::FailureLog`], which repeated failures to log.
//! - `mqtt` (feature `mqtt`): the MQTT client builder both binaries use;
//!   `signal` (feature `signal`): waiting for SIGTERM or Ctrl-C; `record`
//!   (feature `record`): the record format of the spool and the journal. Without
//!   these features this crate links neither rumqttc nor tokio (the
//!   planning core depends on it).

pub mod broker;
pub mod codec;
pub mod ids;
pub mod message;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "record")]
pub mod record;
pub mod secret;
#[cfg(feature = "signal")]
pub mod signal;
pub mod throttle;
#[cfg(feature = "tls")]
pub mod tls;
pub mod topic;

pub use codec::{CodecError, Limits, RejectReason};
pub use ids::{AgentId, AssetId, IdError, SiteId};
pub use message::{AgentStatus, AssetState, Envelope, Sample};
pub use topic::Topic;

pub use message::PROTOCOL_VERSION;
