//! The link to the broker: everything between the spool and the network.
//!
//! - [`window`]: the in-flight window (packet id -> spool record, PUBACKs,
//!   rewind on reconnect); pure bookkeeping.
//! - [`mode`]: the link's modes (`Connecting`, `Connected`, `Backoff`,
//!   `Closing`, `Disconnecting`) and their transitions; pure.
//! - [`mqtt`]: the task that owns rumqttc's event loop and drives both, plus
//!   the client options (built by `throughline_shared::mqtt`) and the status
//!   message.
//! - [`tls`]: the rustls client configuration for `mqtts://` (shared with
//!   the aggregator: `throughline_shared::tls`).
//! - [`resend`]: the aggregator's resend requests: which delivered
//!   envelopes the spool still keeps, queued to be published again; pure.
//!
//! Batching stays in [`crate::publish`]: it decides what goes into an
//! envelope; the link only moves spooled envelopes to the broker.

pub mod mode;
pub mod mqtt;
pub mod resend;
pub use throughline_shared::tls;
pub mod window;
