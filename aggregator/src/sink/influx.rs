//! The InfluxDB v2 sink: every accepted sample becomes a line-protocol point
//! written to `{url}/api/v2/write` through the `influxdb2` client.
//!
//! ```text
//! ingest (state lock held): points(telemetry, before, live) -> Points (one message's)
//!   -> InfluxSink::push: short lock, append to a bounded ring (drop oldest points, counted)
//!        '-> Notify when the ring was empty or reached a batch
//! writer task: batch of batch_points, or what waits after flush_ms
//!   -> line protocol -> write (timeout) -> ok: counted written
//!                                        -> refused as malformed (400/413/422): dropped, counted
//!                                        -> other failure: batch back at the front, backoff 0.5 s .. 30 s
//! stop: flush what is held for at most SHUTDOWN_FLUSH, count the rest as dropped
//! ```
//!
//! Ingest never waits for the database: `push` moves one message's points
//! into the ring in O(1) under a mutex that the writer also holds only for
//! O(1) steps per message, and the line protocol is formatted in the writer
//! task. The schema (measurements,
//! tags, fields, state codes) is documented in docs/timeseries.md; the
//! constants below are its source of truth and the Grafana dashboard test
//! checks its queries against them.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use influxdb2::api::write::TimestampPrecision;
use influxdb2::RequestError;
use prometheus_client::metrics::counter::Counter;
use throughline_shared::codec::Telemetry;
use throughline_shared::AssetState;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::InfluxMetrics;
use crate::model::AssetKind;
use crate::state::{LiveEvent, LiveState, TelemetryOutcome};

/// One point per accepted sample.
pub const MEASUREMENT: &str = "throughline_asset";
/// One point each time an asset enters a state (or is first seen in one).
pub const STATE_MEASUREMENT: &str = "throughline_state_change";

pub const TAG_AGENT: &str = "agent";
pub const TAG_ASSET: &str = "asset";
pub const TAG_GROUP: &str = "group";
pub const TAG_KIND: &str = "kind";
pub const TAG_SITE: &str = "site";
pub const TAG_REASON: &str = "reason";
pub const TAG_STATE: &str = "state";
/// Tags of both measurements (`group` and `kind` only for registered assets).
pub const TAGS: [&str; 5] = [TAG_AGENT, TAG_ASSET, TAG_GROUP, TAG_KIND, TAG_SITE];
/// Further tags of [`STATE_MEASUREMENT`] (`reason` only when the sample has one).
pub const STATE_TAGS: [&str; 2] = [TAG_REASON, TAG_STATE];

/// The sample's raw output counter (pieces or kWh).
pub const FIELD_OUTPUT: &str = "output";
/// The sample's load, kW.
pub const FIELD_LOAD_KW: &str = "load_kw";
/// The sample's state as an integer ([`state_code`]).
pub const FIELD_STATE_CODE: &str = "state_code";
/// The asset's live rate (output per hour over the rate window), on the
/// newest sample of each message.
pub const FIELD_RATE_PER_HOUR: &str = "rate_per_hour";
/// Fields of [`MEASUREMENT`].
pub const FIELDS: [&str; 4] = [FIELD_OUTPUT, FIELD_LOAD_KW, FIELD_STATE_CODE, FIELD_RATE_PER_HOUR];
/// Fields of [`STATE_MEASUREMENT`].
pub const STATE_FIELDS: [&str; 1] = [FIELD_STATE_CODE];

/// Retry backoff: doubles from the first to the last.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));
/// How long a stopping aggregator spends writing what the sink still holds.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Write failures are logged at once, then at most this often (with a count).
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);

/// Integer code of a state in `state_code`: running 1, idle 2, setup 3,
/// maintenance 4, down 5; 0 (unknown) is reserved and never written.
pub fn state_code(state: Option<AssetState>) -> i64 {
    match state {
        None => 0,
        Some(AssetState::Running) => 1,
        Some(AssetState::Idle) => 2,
        Some(AssetState::Setup) => 3,
        Some(AssetState::Maintenance) => 4,
        Some(AssetState::Down) => 5,
    }
}

/// The points of one message, not formatted yet (that happens in the
/// writer): the escaped tag set they share, once, then one entry per line,
/// oldest first. The unit ingest hands to the sink, so a push moves one
/// value whatever the number of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    series: Arc<str>,
    lines: Vec<Point>,
    /// Lines before this one are gone (dropped, or taken for a write).
    start: usize,
}

/// One line of line protocol, without its tags.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    ts_ms: i64,
    what: What,
}

#[derive(Debug, Clone, PartialEq)]
enum What {
    Sample {
        output: Option<f64>,
        load_kw: Option<f64>,
        state: Option<AssetState>,
        rate_per_hour: Option<f64>,
    },
    StateChange {
        state: AssetState,
        reason: Option<Box<str>>,
    },
}

impl Points {
    /// Lines held.
    pub fn len(&self) -> usize {
        self.lines.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append the lines (each with its newline) to `out`.
    pub fn write_lines(&self, out: &mut String) {
        for p in &self.lines[self.start..] {
            p.write_line(&self.series, out);
        }
    }
}

impl Point {
    /// Append this point as one line (with its newline) to `out`.
    fn write_line(&self, series: &str, out: &mut String) {
        match &self.what {
            What::Sample { output, load_kw, state, rate_per_hour } => {
                out.push_str(MEASUREMENT);
                out.push(',');
                out.push_str(series);
                let mut sep = ' ';
                for (key, value) in [
                    (FIELD_OUTPUT, *output),
                    (FIELD_LOAD_KW, *load_kw),
                    (FIELD_RATE_PER_HOUR, *rate_per_hour),
                ] {
                    if let Some(v) = value.filter(|v| v.is_finite()) {
                        out.push(sep);
                        out.push_str(key);
                        out.push('=');
                        write_float(v, out);
                        sep = ',';
                    }
                }
                if state.is_some() {
                    out.push(sep);
                    out.push_str(FIELD_STATE_CODE);
                    out.push('=');
                    out.push_str(itoa::Buffer::new().format(state_code(*state)));
                    out.push('i');
                }
            }
            What::StateChange { state, reason } => {
                out.push_str(STATE_MEASUREMENT);
                out.push(',');
                out.push_str(series);
                if let Some(r) = reason {
                    out.push(',');
                    out.push_str(TAG_REASON);
                    out.push('=');
                    escape_tag(r, out);
                }
                let _ = write!(
                    out,
                    ",{TAG_STATE}={} {FIELD_STATE_CODE}={}i",
                    state.as_str(),
                    state_code(Some(*state))
                );
            }
        }
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(self.ts_ms));
        out.push('\n');
    }

    /// Whether the line would carry at least one field (else it is not written).
    fn has_fields(&self) -> bool {
        match &self.what {
            What::Sample { output, load_kw, state, rate_per_hour } => {
                state.is_some()
                    || [output, load_kw, rate_per_hour].iter().any(|v| v.is_some_and(f64::is_finite))
            }
            What::StateChange { .. } => true,
        }
    }
}

/// A finite float as line protocol takes it: whole numbers without a
/// fraction (`120`), others in their shortest exact form (`40.5`, `1e-7`).
fn write_float(v: f64, out: &mut String) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// Escape a tag key or value: backslash, comma, equals sign and space get a
/// backslash; line breaks (which line protocol cannot carry) become spaces.
/// An empty value becomes `_` (line protocol has no empty tag values).
pub fn escape_tag(s: &str, out: &mut String) {
    if s.is_empty() {
        out.push('_');
    }
    for c in s.chars() {
        match c {
            '\\' | ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push_str("\\ "),
            c => out.push(c),
        }
    }
}

/// What the sink needs to know about an asset before a message is applied
/// to live state (to tell state changes and late samples).
/// The points for a message that live state has just accepted (not a
/// duplicate): one per sample with a field, late samples included (they are
/// real data with their own timestamps), plus one per state change, as
/// live state reported them in `out.events`. Called with the state lock
/// held, so the asset's registration and rate are those this message
/// produced.
pub fn points(t: &Telemetry, out: &TelemetryOutcome, live: &LiveState) -> Points {
    let asset = live.asset(&t.site, &t.asset);
    let registration = asset.and_then(|a| a.registration.as_ref());
    let mut series = String::with_capacity(96);
    let group = registration.map(|r| r.group.as_str());
    let kind = registration.map(|r| match r.kind {
        AssetKind::Line => "line",
        AssetKind::Feeder => "feeder",
    });
    let mut first = true;
    for (key, value) in [
        (TAG_AGENT, Some(t.envelope.agent.as_str())),
        (TAG_ASSET, Some(t.asset.as_str())),
        (TAG_GROUP, group),
        (TAG_KIND, kind),
        (TAG_SITE, Some(t.site.as_str())),
    ] {
        if let Some(v) = value {
            if !first {
                series.push(',');
            }
            first = false;
            series.push_str(key);
            series.push('=');
            escape_tag(v, &mut series);
        }
    }
    let samples = &t.envelope.samples;
    // Late and filled-in samples are in the past: the live rate is not theirs.
    let late = |i: usize| {
        out.events.contains(&LiveEvent::Late { index: i })
            || out.events.contains(&LiveEvent::Filled { index: i })
    };
    // The live rate belongs to the newest sample, if this message brought it.
    let rate = match (samples.len().checked_sub(1), asset) {
        (Some(last), Some(a)) if !late(last) => a.rate_per_hour().map(|r| (r * 1000.0).round() / 1000.0),
        _ => None,
    };
    // One point per sample; a state change (rare) grows it.
    let mut lines = Vec::with_capacity(samples.len());
    let mut changes = out.events.iter().filter_map(|e| match e {
        LiveEvent::StateChanged { index, state } => Some((*index, *state)),
        _ => None,
    });
    let mut next_change = changes.next();
    for (i, s) in samples.iter().enumerate() {
        let ts_ms = s.ts.timestamp_millis();
        if let Some((_, st)) = next_change.filter(|(index, _)| *index == i) {
            next_change = changes.next();
            lines.push(Point {
                ts_ms,
                what: What::StateChange {
                    state: st,
                    reason: s.reason.as_deref().filter(|r| !r.is_empty()).map(Into::into),
                },
            });
        }
        let p = Point {
            ts_ms,
            what: What::Sample {
                output: s.output,
                load_kw: s.load_kw,
                state: s.state,
                rate_per_hour: if i + 1 == samples.len() { rate } else { None },
            },
        };
        if p.has_fields() {
            lines.push(p);
        }
    }
    Points { series: series.into(), lines, start: 0 }
}

/// The bounded buffer: messages' points waiting, oldest first, counted in
/// points, plus the count of those taken out for the write in flight.
#[derive(Debug)]
pub struct Ring {
    chunks: VecDeque<Points>,
    waiting: usize,
    capacity: usize,
    in_flight: usize,
    closed: bool,
}

/// Points taken out for one write, oldest first.
pub type Batch = Vec<Points>;

fn batch_len(batch: &Batch) -> usize {
    batch.iter().map(Points::len).sum()
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring { chunks: VecDeque::new(), waiting: 0, capacity: capacity.max(1), in_flight: 0, closed: false }
    }

    /// Points waiting (not in flight).
    pub fn len(&self) -> usize {
        self.waiting
    }

    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Points held: waiting plus in flight.
    pub fn held(&self) -> usize {
        self.waiting + self.in_flight
    }

    /// Append; returns how many of the oldest points were dropped to make room.
    pub fn push(&mut self, points: Points) -> usize {
        if points.is_empty() {
            return 0;
        }
        self.waiting += points.len();
        self.chunks.push_back(points);
        self.trim()
    }

    /// Take up to `max` of the oldest points for a write.
    pub fn take(&mut self, max: usize) -> Batch {
        let mut batch = Vec::new();
        let mut taken = 0;
        while taken < max {
            let Some(mut c) = self.chunks.pop_front() else { break };
            if taken + c.len() > max {
                let keep = c.start + (max - taken);
                let rest = Points { series: c.series.clone(), lines: c.lines.split_off(keep), start: 0 };
                self.chunks.push_front(rest);
            }
            taken += c.len();
            batch.push(c);
        }
        self.waiting -= taken;
        self.in_flight = taken;
        batch
    }

    /// The write in flight succeeded or was given up.
    pub fn done(&mut self) {
        self.in_flight = 0;
    }

    /// The write in flight failed: its points go back to the front, order
    /// kept. Returns how many of the oldest were dropped to stay in capacity.
    pub fn put_back(&mut self, batch: Batch) -> usize {
        self.in_flight = 0;
        for c in batch.into_iter().rev() {
            self.waiting += c.len();
            self.chunks.push_front(c);
        }
        self.trim()
    }

    /// Forget everything waiting; returns how many points that was.
    fn clear(&mut self) -> usize {
        self.chunks.clear();
        std::mem::take(&mut self.waiting)
    }

    fn trim(&mut self) -> usize {
        let mut dropped = 0;
        while self.waiting > self.capacity {
            let excess = self.waiting - self.capacity;
            let front = self.chunks.front_mut().expect("points waiting");
            let n = front.len().min(excess);
            if n == front.len() {
                self.chunks.pop_front();
            } else {
                front.start += n;
            }
            self.waiting -= n;
            dropped += n;
        }
        dropped
    }
}

/// A token that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: String) -> Token {
        Token(token)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how to write; built from `[influxdb]` by
/// `crate::config::InfluxConfig::build`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Token,
    pub batch_points: usize,
    pub flush: Duration,
    pub buffer_points: usize,
    pub timeout: Duration,
    pub backoff: (Duration, Duration),
    pub shutdown_flush: Duration,
}

/// The handle ingest pushes to; cheap to clone. [`InfluxSink::run`] is the
/// writer task.
#[derive(Debug, Clone)]
pub struct InfluxSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ring: Mutex<Ring>,
    wake: Notify,
    settings: Settings,
    metrics: InfluxMetrics,
    dropped_full: Counter,
    dropped_rejected: Counter,
    dropped_shutdown: Counter,
}

/// Why a write did not succeed.
#[derive(Debug)]
enum Failure {
    /// Worth retrying: the server is away, slow, or refuses us for now.
    Retry(String),
    /// The server refused the batch itself: retrying cannot help.
    Rejected(String),
}

impl InfluxSink {
    pub fn new(settings: Settings, metrics: InfluxMetrics) -> InfluxSink {
        InfluxSink {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring::new(settings.buffer_points)),
                wake: Notify::new(),
                dropped_full: metrics.dropped("buffer_full"),
                dropped_rejected: metrics.dropped("rejected"),
                dropped_shutdown: metrics.dropped("shutdown"),
                settings,
                metrics,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Hand points to the writer without waiting: when the buffer is full
    /// the oldest points are dropped and counted.
    pub fn push(&self, points: Points) {
        if points.is_empty() {
            return;
        }
        let n = points.len();
        let batch = self.inner.settings.batch_points;
        let mut ring = self.inner.ring.lock().expect("influx ring lock");
        if ring.closed {
            drop(ring);
            self.inner.dropped_shutdown.inc_by(n as u64);
            return;
        }
        let before = ring.len();
        let dropped = ring.push(points);
        let after = ring.len();
        self.inner.metrics.buffer_points.set(ring.held() as i64);
        drop(ring);
        if dropped > 0 {
            self.inner.dropped_full.inc_by(dropped as u64);
        }
        if before == 0 || (before < batch && after >= batch) {
            self.inner.wake.notify_one();
        }
    }

    /// Points held now (waiting plus in flight).
    pub fn held(&self) -> usize {
        self.inner.ring.lock().expect("influx ring lock").held()
    }

    /// The writer: runs until `stop`, then flushes what it holds for at most
    /// `shutdown_flush` and counts the rest as dropped.
    pub async fn run(self, stop: CancellationToken) {
        let s = &self.inner.settings;
        let client = influxdb2::Client::new(s.url.clone(), s.org.clone(), s.token.0.clone());
        tracing::info!(url = %s.url, org = %s.org, bucket = %s.bucket, batch_points = s.batch_points, buffer_points = s.buffer_points, "InfluxDB sink on");
        let mut backoff = s.backoff.0;
        let mut retry_now = false;
        let mut log = FailureLog::default();
        while let Some(batch) = self.next_batch(&stop, retry_now).await {
            retry_now = false;
            // A stop does not wait for a slow write: the batch goes back and
            // the drain below sends it again (at least once).
            let outcome = tokio::select! {
                r = self.write(&client, &batch) => Some(r),
                _ = stop.cancelled() => None,
            };
            let Some(outcome) = outcome else {
                self.put_back(batch);
                break;
            };
            match outcome {
                Ok(()) => {
                    self.finished();
                    self.inner.metrics.points_written.inc_by(batch_len(&batch) as u64);
                    self.inner.metrics.last_success.set(Utc::now().timestamp());
                    backoff = s.backoff.0;
                    log.recovered();
                }
                Err(Failure::Rejected(error)) => {
                    self.finished();
                    self.inner.dropped_rejected.inc_by(batch_len(&batch) as u64);
                    tracing::warn!(
                        points = batch_len(&batch),
                        error,
                        "InfluxDB refused a batch as malformed; dropped"
                    );
                }
                Err(Failure::Retry(error)) => {
                    self.inner.metrics.write_failures.inc();
                    self.put_back(batch);
                    log.failed(&error, backoff, self.inner.dropped_full.get());
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(s.backoff.1);
                    retry_now = true;
                }
            }
        }
        self.drain(&client).await;
    }

    /// Wait for a batch: `batch_points` waiting, or anything that has waited
    /// `flush` (at once after a failure). `None` when stopped.
    async fn next_batch(&self, stop: &CancellationToken, retry_now: bool) -> Option<Batch> {
        let s = &self.inner.settings;
        let mut since: Option<Instant> = None;
        loop {
            let woken = self.inner.wake.notified();
            {
                let mut ring = self.inner.ring.lock().expect("influx ring lock");
                let len = ring.len();
                if len == 0 {
                    since = None;
                } else if len >= s.batch_points || retry_now || since.is_some_and(|t| t.elapsed() >= s.flush)
                {
                    let batch = ring.take(s.batch_points);
                    self.inner.metrics.buffer_points.set(ring.held() as i64);
                    return Some(batch);
                } else {
                    since.get_or_insert_with(Instant::now);
                }
            }
            // Nothing waiting: sleep until woken (an hour is "for ever").
            let due = since.map_or_else(|| Instant::now() + Duration::from_secs(3600), |t| t + s.flush);
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = woken => {}
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
    }

    async fn write(&self, client: &influxdb2::Client, batch: &Batch) -> Result<(), Failure> {
        let s = &self.inner.settings;
        let mut body = String::with_capacity(batch_len(batch) * 160);
        for p in batch {
            p.write_lines(&mut body);
        }
        let write = client.write_line_protocol_with_precision(
            &s.org,
            &s.bucket,
            body,
            TimestampPrecision::Milliseconds,
        );
        match tokio::time::timeout(s.timeout, write).await {
            Err(_) => Err(Failure::Retry(format!("no answer within {} ms", s.timeout.as_millis()))),
            Ok(Ok(())) => Ok(()),
            Ok(Err(RequestError::Http { status, text })) if matches!(status.as_u16(), 400 | 413 | 422) => {
                Err(Failure::Rejected(format!("HTTP {status}: {}", clip(&text))))
            }
            Ok(Err(RequestError::Http { status, text })) => {
                Err(Failure::Retry(format!("HTTP {status}: {}", clip(&text))))
            }
            Ok(Err(e)) => Err(Failure::Retry(e.to_string())),
        }
    }

    fn finished(&self) {
        let mut ring = self.inner.ring.lock().expect("influx ring lock");
        ring.done();
        self.inner.metrics.buffer_points.set(ring.held() as i64);
    }

    fn put_back(&self, batch: Batch) {
        let mut ring = self.inner.ring.lock().expect("influx ring lock");
        let dropped = ring.put_back(batch);
        self.inner.metrics.buffer_points.set(ring.held() as i64);
        drop(ring);
        self.inner.dropped_full.inc_by(dropped as u64);
    }

    /// Write what is held, batch by batch, until done, a failure, or the
    /// deadline; then close the ring and count what is left as dropped.
    async fn drain(&self, client: &influxdb2::Client) {
        let s = &self.inner.settings;
        let deadline = tokio::time::Instant::now() + s.shutdown_flush;
        let mut flushed = 0usize;
        loop {
            let batch = {
                let mut ring = self.inner.ring.lock().expect("influx ring lock");
                ring.take(s.batch_points)
            };
            if batch.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, self.write(client, &batch)).await {
                Ok(Ok(())) => {
                    self.finished();
                    self.inner.metrics.points_written.inc_by(batch_len(&batch) as u64);
                    self.inner.metrics.last_success.set(Utc::now().timestamp());
                    flushed += batch_len(&batch);
                }
                Ok(Err(Failure::Rejected(_))) => {
                    self.finished();
                    self.inner.dropped_rejected.inc_by(batch_len(&batch) as u64);
                }
                Ok(Err(Failure::Retry(_))) | Err(_) => {
                    self.put_back(batch);
                    break;
                }
            }
        }
        let left = {
            let mut ring = self.inner.ring.lock().expect("influx ring lock");
            ring.closed = true;
            let left = ring.clear() + ring.in_flight;
            ring.done();
            self.inner.metrics.buffer_points.set(0);
            left
        };
        self.inner.dropped_shutdown.inc_by(left as u64);
        if left > 0 {
            tracing::warn!(
                flushed,
                dropped = left,
                "InfluxDB sink stopped with points not written (counted as dropped)"
            );
        } else {
            tracing::info!(flushed, "InfluxDB sink stopped, nothing left unwritten");
        }
    }
}

fn clip(text: &str) -> &str {
    let end = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
    text[..end].trim()
}

/// Logs the first write failure at once, later ones at most every
/// [`FAILURE_LOG_EVERY`] with how many there were, and the recovery.
#[derive(Debug, Default)]
struct FailureLog {
    last: Option<Instant>,
    since_log: u64,
    in_row: u64,
}

impl FailureLog {
    fn failed(&mut self, error: &str, retry_in: Duration, dropped_total: u64) {
        self.in_row += 1;
        self.since_log += 1;
        if self.last.is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY) {
            tracing::warn!(
                error,
                failures = self.since_log,
                retry_in_ms = retry_in.as_millis() as u64,
                dropped_total,
                "InfluxDB write failed; points kept and retried"
            );
            self.last = Some(Instant::now());
            self.since_log = 0;
        }
    }

    fn recovered(&mut self) {
        if self.in_row > 0 {
            tracing::info!(failures = self.in_row, "InfluxDB writes resumed");
        }
        *self = FailureLog::default();
    }
}

#[cfg(test)]
mod tests;
