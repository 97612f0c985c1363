//! Encode and decode protocol v1 payloads. Decoding validates everything the
//! protocol promises, so code downstream of [`decode_telemetry`] can trust
//! what it gets. Each refusal carries a [`RejectReason`] with a stable label
//! (used as a metrics label and in `docs/protocol.md`) and a detail message.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::ids::{AgentId, AssetId, SiteId};
use crate::message::PROTOCOL_VERSION;
use crate::message::{
    AgentStatus, AssetState, Envelope, Notice, ResendRequest, Sample, SeqRange, MAX_REASON_LEN,
};
use crate::topic::{Topic, TopicError};

/// Size limits and clock tolerance applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Most samples in one envelope.
    pub max_samples: usize,
    /// How far a sample's `ts` may lie ahead of the receiver's clock.
    pub max_future: Duration,
    /// How far a sample's `ts` may lie behind the receiver's clock: longer
    /// than an agent's spool holds, so a backlog is never refused, but a
    /// clock that says 1970 (a Pi before NTP) is.
    pub max_past: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 256 * 1024,
            max_samples: 4096,
            max_future: Duration::minutes(5),
            max_past: Duration::days(30),
        }
    }
}

/// Why a message was rejected. The label of each is stable: it is a metrics
/// label and part of the public protocol description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Topic is not a protocol v1 topic.
    BadTopic,
    /// An id (in the topic or the payload) breaks `[A-Za-z0-9_-]{1,64}`.
    BadId,
    /// Payload larger than the limit, or too many samples.
    Oversize,
    /// Not UTF-8 JSON (syntax error, empty payload, NaN, a number out of range).
    BadJson,
    /// `v` is not 1.
    UnsupportedVersion,
    /// A required field is absent (`v`, `agent`, `seq`, `samples`, `ts`, `online`).
    MissingField,
    /// A field has the wrong type or an unknown value (e.g. an unknown state).
    InvalidField,
    /// `agent` differs from the topic's `{agent}`.
    AgentMismatch,
    /// `samples` is empty.
    NoSamples,
    /// A sample carries none of output, state, reason, load_kw.
    NoMeasurement,
    /// A number is NaN or infinite.
    NonFiniteValue,
    /// `output` or `load_kw` is negative.
    NegativeValue,
    /// `ts` is not RFC 3339.
    BadTimestamp,
    /// `ts` lies further in the future than the receiver tolerates.
    FutureTimestamp,
    /// `ts` lies further in the past than the receiver tolerates.
    PastTimestamp,
    /// The agent may not report this asset: a registered asset names other
    /// agents, or another agent owns it (the receiver decides, not the codec).
    NotOwner,
    /// A new agent or asset that no registration names, beyond the
    /// receiver's cap on those (the receiver decides, not the codec).
    UnregisteredLimit,
}

impl RejectReason {
    /// Every reason, for metrics that list all of them from the start.
    pub const ALL: [RejectReason; 17] = [
        RejectReason::BadTopic,
        RejectReason::BadId,
        RejectReason::Oversize,
        RejectReason::BadJson,
        RejectReason::UnsupportedVersion,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::AgentMismatch,
        RejectReason::NoSamples,
        RejectReason::NoMeasurement,
        RejectReason::NonFiniteValue,
        RejectReason::NegativeValue,
        RejectReason::BadTimestamp,
        RejectReason::FutureTimestamp,
        RejectReason::PastTimestamp,
        RejectReason::NotOwner,
        RejectReason::UnregisteredLimit,
    ];

    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::BadTopic => "bad_topic",
            RejectReason::BadId => "bad_id",
            RejectReason::Oversize => "oversize",
            RejectReason::BadJson => "bad_json",
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::AgentMismatch => "agent_mismatch",
            RejectReason::NoSamples => "no_samples",
            RejectReason::NoMeasurement => "no_measurement",
            RejectReason::NonFiniteValue => "non_finite_value",
            RejectReason::NegativeValue => "negative_value",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::PastTimestamp => "past_timestamp",
            RejectReason::NotOwner => "not_owner",
            RejectReason::UnregisteredLimit => "unregistered_limit",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A rejected message: the reason and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct CodecError {
    pub reason: RejectReason,
    pub detail: String,
    /// The sample time refused, for `future_timestamp` and `past_timestamp`.
    pub ts: Option<DateTime<Utc>>,
}

impl CodecError {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        CodecError { reason, detail: detail.into(), ts: None }
    }
}

impl From<TopicError> for CodecError {
    fn from(e: TopicError) -> Self {
        let reason = match e {
            TopicError::Unknown(_) => RejectReason::BadTopic,
            TopicError::BadId { .. } => RejectReason::BadId,
        };
        CodecError::new(reason, e.to_string())
    }
}

/// A decoded, validated telemetry message with the ids from its topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    pub site: SiteId,
    pub asset: AssetId,
    pub envelope: Envelope,
}

/// A decoded status message with the ids from its topic.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMessage {
    pub site: SiteId,
    pub agent: AgentId,
    pub status: AgentStatus,
}

/// Any message an aggregator receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Telemetry(Telemetry),
    Status(StatusMessage),
}

// Wire shapes with every field optional, so that a missing field is reported
// as such rather than as a generic JSON error. Unknown fields are ignored
// (forward compatibility within v1).
// Strings borrow from the payload where they hold no escapes (the usual
// case), so decoding allocates only what the result keeps.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    v: Option<serde_json::Value>,
    #[serde(borrow)]
    agent: Option<Cow<'a, str>>,
    seq: Option<u64>,
    #[serde(borrow)]
    samples: Option<Vec<RawSample<'a>>>,
}

#[derive(Deserialize)]
struct RawSample<'a> {
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    output: Option<f64>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    load_kw: Option<f64>,
}

#[derive(Deserialize)]
struct RawStatus {
    v: Option<serde_json::Value>,
    online: Option<bool>,
    ts: Option<String>,
    software: Option<String>,
    health: Option<serde_json::Value>,
    seq_skipped: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawResend {
    v: Option<serde_json::Value>,
    from: Option<u64>,
    to: Option<u64>,
}

/// Encode an envelope as compact JSON.
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(envelope).expect("envelope serialization cannot fail")
}

/// Encode an agent status as compact JSON.
pub fn encode_status(status: &AgentStatus) -> Vec<u8> {
    serde_json::to_vec(status).expect("status serialization cannot fail")
}

/// Encode a resend request as compact JSON.
pub fn encode_resend(request: &ResendRequest) -> Vec<u8> {
    serde_json::to_vec(request).expect("resend request serialization cannot fail")
}

/// Encode a notice as compact JSON.
pub fn encode_notice(notice: &Notice) -> Vec<u8> {
    serde_json::to_vec(notice).expect("notice serialization cannot fail")
}

/// Decode a notice (what an agent reads on its `notice` topic): `None` for
/// an empty payload (the notice was cleared), otherwise `v` 1, `reason`,
/// `count`, `since` and `last` required.
pub fn decode_notice(payload: &[u8], limits: &Limits) -> Result<Option<Notice>, CodecError> {
    if payload.is_empty() {
        return Ok(None);
    }
    let raw: serde_json::Value = parse_json(payload, limits)?;
    check_version(raw.get("v").cloned())?;
    serde_json::from_value(raw)
        .map(Some)
        .map_err(|e| CodecError::new(RejectReason::InvalidField, e.to_string()))
}

/// Decode and validate a resend request (what an agent reads on its
/// `resend` topic): `v` 1, `from` required, `to` optional and not below it.
pub fn decode_resend(payload: &[u8], limits: &Limits) -> Result<ResendRequest, CodecError> {
    let raw: RawResend = parse_json(payload, limits)?;
    check_version(raw.v)?;
    let from = raw.from.ok_or_else(|| CodecError::new(RejectReason::MissingField, "`from` is missing"))?;
    if let Some(to) = raw.to.filter(|to| *to < from) {
        return Err(CodecError::new(RejectReason::InvalidField, format!("`to` {to} is below `from` {from}")));
    }
    Ok(ResendRequest { v: PROTOCOL_VERSION, from, to: raw.to })
}

/// Decode any message on a protocol v1 topic that an aggregator subscribes to.
pub fn decode(
    topic: &str,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Inbound, CodecError> {
    match Topic::parse(topic)? {
        Topic::Telemetry { site, agent, asset } => {
            let envelope = decode_envelope_owned(agent, payload, now, limits)?;
            Ok(Inbound::Telemetry(Telemetry { site, asset, envelope }))
        }
        Topic::Status { site, agent } => {
            let status = decode_status(payload, limits)?;
            Ok(Inbound::Status(StatusMessage { site, agent, status }))
        }
        Topic::Alerts { .. } | Topic::Resend { .. } | Topic::Notice { .. } => Err(CodecError::new(
            RejectReason::BadTopic,
            "alerts, resend and notice topics are published by the aggregator, not ingested",
        )),
    }
}

fn parse_json<'a, T: Deserialize<'a>>(payload: &'a [u8], limits: &Limits) -> Result<T, CodecError> {
    if payload.len() > limits.max_payload_bytes {
        return Err(CodecError::new(
            RejectReason::Oversize,
            format!("payload is {} bytes, the limit is {}", payload.len(), limits.max_payload_bytes),
        ));
    }
    serde_json::from_slice(payload).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Data => RejectReason::InvalidField,
            _ => RejectReason::BadJson,
        };
        CodecError::new(reason, e.to_string())
    })
}

fn check_version(v: Option<serde_json::Value>) -> Result<(), CodecError> {
    match v {
        None => Err(CodecError::new(RejectReason::MissingField, "`v` is missing")),
        Some(v) if v.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => Ok(()),
        Some(v) => Err(CodecError::new(
            RejectReason::UnsupportedVersion,
            format!("`v` is {v}; this receiver speaks version {PROTOCOL_VERSION}"),
        )),
    }
}

/// Decode and validate a telemetry envelope published by `topic_agent`.
pub fn decode_envelope(
    topic_agent: &AgentId,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Envelope, CodecError> {
    decode_envelope_owned(topic_agent.clone(), payload, now, limits)
}

/// [`decode_envelope`] taking the topic's agent id, which becomes the
/// envelope's (the payload's `agent` must equal it).
fn decode_envelope_owned(
    topic_agent: AgentId,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Envelope, CodecError> {
    let raw: RawEnvelope = parse_json(payload, limits)?;
    check_version(raw.v)?;
    let agent = raw.agent.ok_or_else(|| CodecError::new(RejectReason::MissingField, "`agent` is missing"))?;
    // Equal to the topic's (already validated) id: take that one.
    let agent = if agent == topic_agent.as_str() {
        topic_agent
    } else {
        let agent = AgentId::parse(agent).map_err(|e| CodecError::new(RejectReason::BadId, e.to_string()))?;
        return Err(CodecError::new(
            RejectReason::AgentMismatch,
            format!("`agent` is `{agent}` but the topic belongs to `{topic_agent}`"),
        ));
    };
    let seq = raw.seq.ok_or_else(|| CodecError::new(RejectReason::MissingField, "`seq` is missing"))?;
    let raw_samples =
        raw.samples.ok_or_else(|| CodecError::new(RejectReason::MissingField, "`samples` is missing"))?;
    if raw_samples.is_empty() {
        return Err(CodecError::new(RejectReason::NoSamples, "`samples` is empty"));
    }
    if raw_samples.len() > limits.max_samples {
        return Err(CodecError::new(
            RejectReason::Oversize,
            format!("{} samples, the limit is {}", raw_samples.len(), limits.max_samples),
        ));
    }
    let window = TsWindow {
        now,
        earliest: now.checked_sub_signed(limits.max_past).unwrap_or(DateTime::<Utc>::MIN_UTC),
        latest: now.checked_add_signed(limits.max_future).unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    let mut samples = Vec::with_capacity(raw_samples.len());
    for (i, s) in raw_samples.into_iter().enumerate() {
        samples.push(validate_sample(i, s, window)?);
    }
    Ok(Envelope { v: PROTOCOL_VERSION, agent, seq, samples })
}

/// The sample times a receiver accepts, from its clock and [`Limits`].
#[derive(Debug, Clone, Copy)]
struct TsWindow {
    now: DateTime<Utc>,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
}

fn validate_sample(i: usize, s: RawSample, window: TsWindow) -> Result<Sample, CodecError> {
    let at = |msg: String| format!("samples[{i}]: {msg}");
    let ts = s.ts.ok_or_else(|| CodecError::new(RejectReason::MissingField, at("`ts` is missing".into())))?;
    let ts = parse_rfc3339(&ts).map_err(|e| {
        CodecError::new(RejectReason::BadTimestamp, at(format!("`ts` {ts:?} is not RFC 3339 ({e})")))
    })?;
    if ts > window.latest {
        return Err(CodecError {
            ts: Some(ts),
            ..CodecError::new(
                RejectReason::FutureTimestamp,
                at(format!(
                    "`ts` {} is {} s ahead of the receiver's clock (tolerance {} s)",
                    ts.to_rfc3339(),
                    (ts - window.now).num_seconds(),
                    (window.latest - window.now).num_seconds()
                )),
            )
        });
    }
    if ts < window.earliest {
        return Err(CodecError {
            ts: Some(ts),
            ..CodecError::new(
                RejectReason::PastTimestamp,
                at(format!(
                    "`ts` {} is {} s behind the receiver's clock (tolerance {} s; a clock not set?)",
                    ts.to_rfc3339(),
                    (window.now - ts).num_seconds(),
                    (window.now - window.earliest).num_seconds()
                )),
            )
        });
    }
    if s.output.is_none() && s.state.is_none() && s.reason.is_none() && s.load_kw.is_none() {
        return Err(CodecError::new(
            RejectReason::NoMeasurement,
            at("none of `output`, `state`, `reason`, `load_kw` is present".into()),
        ));
    }
    for (name, value) in [("output", s.output), ("load_kw", s.load_kw)] {
        if let Some(v) = value {
            if !v.is_finite() {
                return Err(CodecError::new(
                    RejectReason::NonFiniteValue,
                    at(format!("`{name}` is not finite")),
                ));
            }
            if v < 0.0 {
                return Err(CodecError::new(
                    RejectReason::NegativeValue,
                    at(format!("`{name}` is {v}, below 0")),
                ));
            }
        }
    }
    let state = match s.state {
        None => None,
        Some(st) => Some(AssetState::parse(&st).ok_or_else(|| {
            CodecError::new(
                RejectReason::InvalidField,
                at(format!("`state` {st:?} is not one of running, idle, down, setup, maintenance")),
            )
        })?),
    };
    if let Some(r) = &s.reason {
        if r.chars().count() > MAX_REASON_LEN {
            return Err(CodecError::new(
                RejectReason::InvalidField,
                at(format!("`reason` is longer than {MAX_REASON_LEN} characters")),
            ));
        }
        if let Some((i, c)) = crate::ids::first_unprintable(r) {
            return Err(CodecError::new(
                RejectReason::InvalidField,
                at(format!("`reason` has an unprintable character ({:?}) at position {i}", c)),
            ));
        }
    }
    Ok(Sample { ts, output: s.output, state, reason: s.reason.map(Cow::into_owned), load_kw: s.load_kw })
}

/// RFC 3339 to UTC, as `DateTime::parse_from_rfc3339` does. The shape
/// agents send (`2026-11-23T08:00:05.120Z`: UTC, `T`, up to nine fraction
/// digits) is read directly, which is several times faster; anything else
/// (offsets, lower case, leap seconds, errors) goes through chrono.
pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    fast_rfc3339_utc(s.as_bytes())
        .map_or_else(|| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)), Ok)
}

fn fast_rfc3339_utc(b: &[u8]) -> Option<DateTime<Utc>> {
    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let nanos = match (b[19], b.len()) {
        (b'Z', 20) => 0,
        (b'.', n @ 22..=30) if b[n - 1] == b'Z' => {
            let frac = &b[20..n - 1];
            digits(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    // A leap second (60) and out-of-range fields are chrono's to judge.
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// Decode and validate an agent status payload.
pub fn decode_status(payload: &[u8], limits: &Limits) -> Result<AgentStatus, CodecError> {
    let raw: RawStatus = parse_json(payload, limits)?;
    check_version(raw.v)?;
    let online =
        raw.online.ok_or_else(|| CodecError::new(RejectReason::MissingField, "`online` is missing"))?;
    let ts = match raw.ts {
        None => None,
        Some(ts) => Some(
            DateTime::parse_from_rfc3339(&ts)
                .map_err(|e| CodecError::new(RejectReason::BadTimestamp, format!("`ts` {ts:?}: {e}")))?
                .with_timezone(&Utc),
        ),
    };
    // Health is informational: a shape this version does not know is dropped, not rejected.
    let health = raw.health.and_then(|h| serde_json::from_value(h).ok());
    // So is a skip announcement that is not a range: without it the numbers
    // are only asked for and reported lost, which is safe.
    let seq_skipped =
        raw.seq_skipped.and_then(|r| serde_json::from_value::<SeqRange>(r).ok()).filter(|r| r.from <= r.to);
    Ok(AgentStatus { v: PROTOCOL_VERSION, online, ts, software: raw.software, health, seq_skipped })
}

#[cfg(test)]
mod tests;
