//! Payload types of protocol v1. Serialization goes through [`crate::codec`],
//! which also validates; these types hold only values that passed validation.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::ids::AgentId;

/// The protocol version this crate speaks (the `v` field of every payload).
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest downtime reason code, in characters.
pub const MAX_REASON_LEN: usize = 64;

/// What an asset is doing. `Down` is unplanned; `Setup` and `Maintenance` are
/// planned stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetState {
    Running,
    Idle,
    Down,
    Setup,
    Maintenance,
}

impl AssetState {
    /// Every state, in wire spelling order.
    pub const ALL: [AssetState; 5] =
        [AssetState::Running, AssetState::Idle, AssetState::Down, AssetState::Setup, AssetState::Maintenance];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetState::Running => "running",
            AssetState::Idle => "idle",
            AssetState::Down => "down",
            AssetState::Setup => "setup",
            AssetState::Maintenance => "maintenance",
        }
    }

    /// Parse the wire spelling.
    pub fn parse(s: &str) -> Option<AssetState> {
        AssetState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Planned stops (setup, maintenance) do not count against availability.
    pub fn is_planned_stop(self) -> bool {
        matches!(self, AssetState::Setup | AssetState::Maintenance)
    }
}

impl std::fmt::Display for AssetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reading of one asset at one instant. At least one of `output`,
/// `state`, `reason`, `load_kw` is present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Event time of the reading (RFC 3339 on the wire, millisecond precision).
    #[serde(serialize_with = "ts_millis")]
    pub ts: DateTime<Utc>,
    /// Cumulative output counter in the asset's unit (pieces, or kWh for a
    /// feeder). A value lower than the previous one is a counter reset when
    /// near zero, otherwise a glitch the aggregator skips.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub output: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<AssetState>,
    /// Downtime reason code, at most [`MAX_REASON_LEN`] characters, all
    /// printable (no control or invisible formatting characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Instantaneous load in kW, >= 0.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub load_kw: Option<f64>,
}

impl Sample {
    /// A sample at `ts` with no measurement yet; set the fields you have.
    pub fn at(ts: DateTime<Utc>) -> Sample {
        Sample { ts, output: None, state: None, reason: None, load_kw: None }
    }
}

/// One telemetry message: the samples of one asset, numbered by the agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// Protocol version, always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The publishing agent; must equal the topic's `{agent}`.
    pub agent: AgentId,
    /// Per-agent sequence number, strictly increasing across restarts.
    pub seq: u64,
    pub samples: Vec<Sample>,
}

/// Retained status of an agent: birth (`online: true`) on connect, last will
/// (`online: false`) when it disappears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub v: u32,
    pub online: bool,
    /// When the agent published this status (absent in a last will, which the
    /// broker sends on the agent's behalf long after it was composed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<DateTime<Utc>>,
    /// Software and version of the agent, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
    /// The agent's own health: its spool and its sources (optional; added
    /// in v1 without breaking older readers, which ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<AgentHealth>,
    /// Sequence numbers this run of the agent skipped and will never use
    /// (a reserved block after a crash): not missing, not to be asked for
    /// again (optional; older readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_skipped: Option<SeqRange>,
}

/// Sequence numbers `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    pub from: u64,
    pub to: u64,
}

impl SeqRange {
    /// How many numbers it holds (`from <= to` holds for every range the
    /// codec lets through).
    pub fn count(&self) -> u64 {
        self.to.saturating_sub(self.from) + 1
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.from <= seq && seq <= self.to
    }
}

/// The aggregator asks an agent to publish again the envelopes it
/// delivered with `seq` from `from` to `to` (both included; no `to`: every
/// one from `from` on), on `throughline/v1/{site}/{agent}/resend`, after a
/// broker lost them. An agent answers with the envelopes it still keeps,
/// unchanged, on their telemetry topics; what it no longer has it leaves
/// unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResendRequest {
    pub v: u32,
    pub from: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

impl ResendRequest {
    /// Whether `seq` is asked for.
    pub fn covers(&self, seq: u64) -> bool {
        self.from <= seq && self.to.is_none_or(|to| seq <= to)
    }
}

/// The aggregator tells one agent that it refuses its messages for their
/// sample times (its clock is off), retained on
/// `throughline/v1/{site}/{agent}/notice` (QoS 1). An empty retained
/// payload clears it: the agent's messages are accepted again. Optional in
/// v1: an agent that does not subscribe misses only the notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub v: u32,
    /// The refusal's label: `future_timestamp` or `past_timestamp`.
    pub reason: String,
    /// Messages refused for it since `since`.
    pub count: u64,
    /// The first refusal of this notice, and the latest.
    pub since: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// What the latest refusal said, e.g. how far ahead the sample was.
    #[serde(default)]
    pub detail: String,
}

/// Health an agent reports in its status message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentHealth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolHealth>,
    #[serde(default)]
    pub sources: Vec<SourceHealth>,
    /// The aggregator's notice the agent holds, while one is set (optional;
    /// older readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
}

/// The agent's store-and-forward spool. Counters run since the agent started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SpoolHealth {
    /// Envelopes waiting for the broker's acknowledgement.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Envelopes dropped because the spool was full (oldest first).
    pub dropped: u64,
    /// Envelopes refused because the spool was full (`when_full = "refuse-new"`).
    pub refused: u64,
    /// Torn or corrupt records skipped (e.g. after a power loss mid-write).
    pub corrupt: u64,
    /// Delivered envelopes kept for resend requests (`spool.keep_delivered`).
    #[serde(default)]
    pub kept: u64,
}

/// One source of readings (a Modbus device, a command, a simulator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// Source name, e.g. `modbus:plc-1` or `command:press-1`.
    pub name: String,
    pub ok: bool,
    /// The last error, while not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Errors since the agent started.
    pub errors: u64,
    /// When the source last changed between ok and failing.
    pub since: DateTime<Utc>,
}

fn ts_millis<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Whole numbers go out without a fraction (`120455`, not `120455.0`).
fn number<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match *v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(x as i64),
        Some(x) => s.serialize_f64(x),
        None => s.serialize_none(),
    }
}
