//! MQTT ingest: subscribe, decode and validate, deduplicate, update live
//! state and counters. One bad message is counted and logged, never fatal.

pub mod mqtt;

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use throughline_shared::codec::{self, Inbound, Telemetry};
use throughline_shared::{AgentId, Limits, RejectReason, Topic};

use crate::journal::{Journal, JournalError};
use crate::metrics::{AgentLabels, AssetLabels, ReasonLabel};
use crate::service::Services;
use crate::state::{AssetIx, LiveEvent, TelemetryOutcome};

/// How often one agent's clock refusals, or its numbering restarts, and
/// one asset's implausible counter steps, are logged at most.
const PER_AGENT_EVERY: Duration = Duration::from_secs(60);
/// Most agents throttled one by one; beyond it (many ids in one minute) a
/// new agent shares its reason's throttle, so memory stays bounded
/// whatever is published.
const MAX_AGENTS: usize = 1024;
/// Most assets throttled one by one, as [`MAX_AGENTS`]; beyond it a new
/// asset shares one throttle with every other.
const MAX_ASSETS: usize = 1024;

/// At most one line per key per `every`, counting the lines held back.
#[derive(Debug)]
struct Throttle<K> {
    every: Duration,
    /// Key -> when it was last logged, lines suppressed since.
    last: HashMap<K, (Instant, u64)>,
}

impl<K: Hash + Eq> Throttle<K> {
    fn new(every: Duration) -> Throttle<K> {
        Throttle { every, last: HashMap::new() }
    }

    /// Whether `key` is logged at `now`; a new key finds no room while
    /// `cap` keys were logged within `every`.
    fn pass(&mut self, key: K, now: Instant, cap: usize) -> Verdict {
        if let Some((at, suppressed)) = self.last.get_mut(&key) {
            if now.duration_since(*at) < self.every {
                *suppressed += 1;
                return Verdict::Hold;
            }
            *at = now;
            return Verdict::Log { suppressed: std::mem::take(suppressed) };
        }
        if self.last.len() >= cap {
            let every = self.every;
            self.last.retain(|_, (at, _)| now.duration_since(*at) < every);
            if self.last.len() >= cap {
                return Verdict::NoRoom;
            }
        }
        self.last.insert(key, (now, 0));
        Verdict::Log { suppressed: 0 }
    }
}

/// What [`Throttle::pass`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Log it, saying how many lines were held back since the last.
    Log {
        suppressed: u64,
    },
    Hold,
    NoRoom,
}

/// What is throttled per agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PerAgent {
    Rejected(RejectReason),
    SeqEpoch,
}

/// What is throttled per asset: its counter readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PerAsset {
    ImplausibleStep,
    Rebase,
}

/// Logs each rejection reason at most once per `every`, with how many were
/// suppressed in between, so a misbehaving device cannot flood the log. A
/// sample time out of bounds (`past_timestamp`, `future_timestamp`) is one
/// agent's clock, repeated with each of its messages: logged at most once
/// per agent per minute instead, so one bad clock does not hide another's.
/// So is a restart of an agent's numbering. A counter reading refused as
/// an implausible step (a forged or misread value), and a counter taken at
/// a new level, are logged at most once per asset a minute.
#[derive(Debug)]
pub struct RejectLog {
    last: Throttle<RejectReason>,
    agents: Throttle<(PerAgent, AgentId)>,
    assets: Throttle<(PerAsset, AssetIx)>,
    /// Shared by the assets beyond [`MAX_ASSETS`].
    other_assets: Throttle<PerAsset>,
    /// New unregistered assets: at most one line per `every`.
    unregistered: Throttle<()>,
    /// Statuses whose free text was cut: at most one line per `every`.
    status_text: Throttle<()>,
}

impl RejectLog {
    pub fn new(every: Duration) -> RejectLog {
        RejectLog {
            last: Throttle::new(every),
            agents: Throttle::new(PER_AGENT_EVERY),
            assets: Throttle::new(PER_AGENT_EVERY),
            other_assets: Throttle::new(PER_AGENT_EVERY),
            unregistered: Throttle::new(every),
            status_text: Throttle::new(every),
        }
    }

    /// Whether a new unregistered asset is logged now (how many were not
    /// since the last line).
    fn pass_unregistered(&mut self, now: Instant) -> Option<u64> {
        match self.unregistered.pass((), now, 1) {
            Verdict::Log { suppressed } => Some(suppressed),
            Verdict::Hold | Verdict::NoRoom => None,
        }
    }

    /// Whether a status whose text was cut is logged now (how many were
    /// not since the last line).
    fn pass_status_text(&mut self, now: Instant) -> Option<u64> {
        match self.status_text.pass((), now, 1) {
            Verdict::Log { suppressed } => Some(suppressed),
            Verdict::Hold | Verdict::NoRoom => None,
        }
    }

    /// Whether a note about asset `ix`'s counter is logged now.
    fn pass_asset(&mut self, what: PerAsset, ix: AssetIx, now: Instant) -> Option<u64> {
        let verdict = match self.assets.pass((what, ix), now, MAX_ASSETS) {
            Verdict::NoRoom => self.other_assets.pass(what, now, usize::MAX),
            v => v,
        };
        match verdict {
            Verdict::Log { suppressed } => Some(suppressed),
            Verdict::Hold | Verdict::NoRoom => None,
        }
    }

    /// Log what `t`'s implausible counter steps and rebases were, at most
    /// once per asset a minute each; `last_good` reads the asset's last
    /// good counter after the message, only when a line is written. Returns
    /// how many lines were.
    fn note_counter_steps(
        &mut self,
        t: &Telemetry,
        out: &TelemetryOutcome,
        last_good: impl FnOnce() -> Option<f64>,
        now: Instant,
    ) -> usize {
        let Some(ix) = out.asset else { return 0 };
        let reading = |want: fn(&LiveEvent) -> Option<usize>| {
            out.events.iter().find_map(want).and_then(|i| t.envelope.samples.get(i)).and_then(|s| s.output)
        };
        let mut lines = 0;
        if out.implausible_steps > 0 {
            if let Some(suppressed) = self.pass_asset(PerAsset::ImplausibleStep, ix, now) {
                let reading = reading(|e| match e {
                    LiveEvent::ImplausibleStep { index } => Some(*index),
                    _ => None,
                });
                tracing::warn!(
                    site = %t.site,
                    asset = %t.asset,
                    agent = %t.envelope.agent,
                    seq = t.envelope.seq,
                    reading,
                    last_good = last_good(),
                    steps = out.implausible_steps,
                    suppressed,
                    "output counter step larger than the asset's rated capacity could make (ingest.implausible_step_factor): skipped, the last good reading stays the base"
                );
                lines += 1;
            }
        }
        if out.counter_rebases > 0 {
            if let Some(suppressed) = self.pass_asset(PerAsset::Rebase, ix, now) {
                let reading = reading(|e| match e {
                    LiveEvent::CounterRebase { index } => Some(*index),
                    _ => None,
                });
                tracing::warn!(
                    site = %t.site,
                    asset = %t.asset,
                    agent = %t.envelope.agent,
                    seq = t.envelope.seq,
                    reading,
                    suppressed,
                    "output counter stayed at a new level: taken as the new base, no output counted for the jump"
                );
                lines += 1;
            }
        }
        lines
    }

    /// Whether a refusal is logged; `true` when it was.
    fn note(&mut self, reason: RejectReason, topic: &str, detail: &str, now: Instant) -> bool {
        let per_agent = matches!(reason, RejectReason::PastTimestamp | RejectReason::FutureTimestamp);
        let agent = match Topic::parse(topic) {
            Ok(Topic::Telemetry { agent, .. } | Topic::Status { agent, .. }) if per_agent => Some(agent),
            _ => None,
        };
        let verdict = match agent {
            Some(agent) => self.agents.pass((PerAgent::Rejected(reason), agent), now, MAX_AGENTS),
            None => Verdict::NoRoom,
        };
        let verdict = match verdict {
            Verdict::NoRoom => self.last.pass(reason, now, usize::MAX),
            v => v,
        };
        let Verdict::Log { suppressed } = verdict else { return false };
        tracing::warn!(reason = reason.label(), topic, detail, suppressed, "message rejected");
        true
    }

    /// Whether an agent's new numbering is logged; `true` when it was. Rare
    /// enough to be logged without room to throttle it.
    fn note_epoch(&mut self, agent: &AgentId, seq: u64, previous: u64, now: Instant) -> bool {
        let suppressed = match self.agents.pass((PerAgent::SeqEpoch, agent.clone()), now, MAX_AGENTS) {
            Verdict::Log { suppressed } => suppressed,
            Verdict::NoRoom => 0,
            Verdict::Hold => return false,
        };
        tracing::info!(%agent, seq, previous, suppressed, "sequence numbers restarted: a new epoch, nothing counted as missing");
        true
    }
}

/// Open the journal in `dir` and apply what it holds from record `from`
/// on (received after the last checkpoint), as ingest applied it before;
/// returns the journal, for ingest to append to.
pub fn replay(
    shared: &Services,
    dir: &std::path::Path,
    fsync_every: Duration,
    from: u64,
    limits: &Limits,
) -> Result<Journal, JournalError> {
    let started = Instant::now();
    let mut log = RejectLog::new(Duration::from_secs(10));
    let (journal, replayed) =
        Journal::open(dir, fsync_every, from, shared.durability.released.clone(), |e| {
            handle(shared, limits, &mut log, e.topic, e.payload, e.received);
            shared.live.journaled(e.id);
        })?;
    shared.metrics.journal_replayed.inc_by(replayed.records);
    if replayed.records > 0 || replayed.corrupt > 0 {
        tracing::info!(
            records = replayed.records,
            corrupt = replayed.corrupt,
            ms = started.elapsed().as_millis() as u64,
            "journal replayed: messages received after the last checkpoint"
        );
    }
    Ok(journal)
}

/// What became of one message (for the agents' notices).
#[derive(Debug)]
pub enum Handled {
    /// Telemetry taken (a duplicate included).
    Accepted,
    /// Refused by the decoder.
    Refused(codec::CodecError),
    /// Anything else (a status message, a cleared status).
    Other,
}

/// Handle one message from the broker.
pub fn handle(
    shared: &Services,
    limits: &Limits,
    log: &mut RejectLog,
    topic: &str,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Handled {
    let m = &shared.metrics;
    if payload.is_empty() && topic.ends_with("/status") {
        // An operator clearing a decommissioned agent's retained status.
        tracing::debug!(topic, "retained status cleared");
        return Handled::Other;
    }
    match codec::decode(topic, payload, now, limits) {
        Err(e) => {
            m.rejected.get_or_create(&ReasonLabel { reason: e.reason.label() }).inc();
            log.note(e.reason, topic, &e.detail, Instant::now());
            Handled::Refused(e)
        }
        Ok(Inbound::Telemetry(t)) => {
            let out = shared.live.apply_telemetry(&t, now, shared.influx.as_ref());
            if let Some(reason) = out.refused {
                m.rejected.get_or_create(&ReasonLabel { reason: reason.label() }).inc();
                let detail = match reason {
                    RejectReason::NotOwner => format!(
                        "agent {:?} may not report asset {:?} at site {:?} (its [[assets]] agents, or the agent that owns it; an admin moves it)",
                        t.envelope.agent.as_str(), t.asset.as_str(), t.site.as_str()
                    ),
                    _ => "a new agent or asset beyond ingest.max_unregistered".to_string(),
                };
                log.note(reason, topic, &detail, Instant::now());
                return Handled::Other;
            }
            if out.duplicate {
                m.duplicates.inc();
                tracing::debug!(agent = %t.envelope.agent, seq = t.envelope.seq, "duplicate dropped");
                return Handled::Accepted;
            }
            m.messages.inc();
            m.samples.inc_by(out.samples);
            m.seq_gaps.inc_by(out.seq_skipped);
            m.counter_resets.inc_by(out.counter_resets);
            m.late_samples.inc_by(out.late_samples);
            m.filled_samples.inc_by(out.filled_samples);
            if out.counter_glitches > 0 {
                m.counter_glitches
                    .get_or_create(&AssetLabels { site: t.site.to_string(), asset: t.asset.to_string() })
                    .inc_by(out.counter_glitches);
                tracing::debug!(site = %t.site, asset = %t.asset, glitches = out.counter_glitches, "output counter below its last good reading, not near zero: skipped");
            }
            if out.implausible_steps > 0 || out.counter_rebases > 0 {
                let labels = AssetLabels { site: t.site.to_string(), asset: t.asset.to_string() };
                if out.implausible_steps > 0 {
                    m.implausible_steps.get_or_create(&labels).inc_by(out.implausible_steps);
                }
                if out.counter_rebases > 0 {
                    m.counter_rebases.get_or_create(&labels).inc_by(out.counter_rebases);
                }
                let last_good = || {
                    let ix = out.asset?;
                    shared.live.read(|st| st.asset_at(ix).and_then(|a| a.output_counter))
                };
                log.note_counter_steps(&t, &out, last_good, Instant::now());
            }
            if out.clock_steps > 0 {
                m.clock_steps
                    .get_or_create(&AgentLabels {
                        site: t.site.to_string(),
                        agent: t.envelope.agent.to_string(),
                    })
                    .inc_by(out.clock_steps);
                let back_ms = out
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        LiveEvent::ClockStep { back_ms, .. } => Some(*back_ms),
                        _ => None,
                    })
                    .max()
                    .unwrap_or_default();
                tracing::info!(agent = %t.envelope.agent, asset = %t.asset, seq = t.envelope.seq, back_secs = back_ms as f64 / 1000.0, "agent clock stepped back; samples applied from the new time");
            }
            if out.late_fill {
                m.seq_late_fills.inc();
            }
            if let Some(previous) = out.seq_epoch {
                m.seq_epochs.inc();
                log.note_epoch(&t.envelope.agent, t.envelope.seq, previous, Instant::now());
            }
            if out.seq_skipped > 0 {
                tracing::info!(agent = %t.envelope.agent, seq = t.envelope.seq, skipped = out.seq_skipped, "sequence gap");
            }
            if out.new_unregistered_asset {
                m.unregistered_assets.inc();
                if let Some(suppressed) = log.pass_unregistered(Instant::now()) {
                    tracing::warn!(site = %t.site, asset = %t.asset, agent = %t.envelope.agent, suppressed, "telemetry for an unregistered asset; kept and shown as unregistered");
                }
            }
            if out.agent_came_online {
                m.agent_online
                    .get_or_create(&AgentLabels {
                        site: t.site.to_string(),
                        agent: t.envelope.agent.to_string(),
                    })
                    .set(1);
            }
            Handled::Accepted
        }
        Ok(Inbound::Status(s)) => {
            if shared.live.read(|st| st.refuses_agent(&s.agent)) {
                let reason = RejectReason::UnregisteredLimit;
                m.rejected.get_or_create(&ReasonLabel { reason: reason.label() }).inc();
                log.note(reason, topic, "a new agent beyond ingest.max_unregistered", Instant::now());
                return Handled::Other;
            }
            m.status_messages.inc();
            let mut s = s;
            let cut = cut_status_text(&mut s.status);
            if cut > 0 {
                m.status_fields_cut.inc_by(cut);
                if let Some(suppressed) = log.pass_status_text(Instant::now()) {
                    tracing::warn!(agent = ?s.agent.as_str(), fields = cut, suppressed, "agent status text over its cap; kept cut");
                }
            }
            let before = shared.live.apply_status(&s, now);
            m.agent_online
                .get_or_create(&AgentLabels { site: s.site.to_string(), agent: s.agent.to_string() })
                .set(i64::from(s.status.online));
            if before != Some(s.status.online) {
                tracing::info!(site = %s.site, agent = %s.agent, online = s.status.online, "agent status");
            }
            Handled::Other
        }
    }
}

/// Longest `software` of an agent status kept, in characters (a name and
/// a version).
pub const MAX_SOFTWARE_CHARS: usize = 200;
/// Longest source `name` and `error` of a status's health, in characters.
pub const MAX_SOURCE_TEXT_CHARS: usize = 200;
/// Most sources of a status's health kept.
pub const MAX_HEALTH_SOURCES: usize = 64;

/// Cut the free text of a device's status to its caps; returns how many
/// fields were cut. A status is cut, not refused: it is the agent's birth
/// or last will, and its online flag, spool and seq skip matter more than
/// its text; the agent could not be told, and a refused last will would
/// leave the agent shown online. The live state keeps the status, and
/// every dashboard snapshot sends it, so what it holds is bounded here.
pub fn cut_status_text(status: &mut throughline_shared::AgentStatus) -> u64 {
    let mut cut = 0;
    let mut bound = |text: &mut String, max: usize| {
        if let Some((at, _)) = text.char_indices().nth(max) {
            // The last kept character says it was cut.
            let keep = text.char_indices().nth(max - 1).map_or(at, |(i, _)| i);
            text.truncate(keep);
            text.push('…');
            cut += 1;
        }
    };
    if let Some(sw) = status.software.as_mut() {
        bound(sw, MAX_SOFTWARE_CHARS);
    }
    if let Some(health) = status.health.as_mut() {
        for source in health.sources.iter_mut() {
            bound(&mut source.name, MAX_SOURCE_TEXT_CHARS);
            if let Some(e) = source.error.as_mut() {
                bound(e, MAX_SOURCE_TEXT_CHARS);
            }
        }
        if health.sources.len() > MAX_HEALTH_SOURCES {
            health.sources.truncate(MAX_HEALTH_SOURCES);
            cut += 1;
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAST: &str = "throughline/v1/s/gw-a/line-1/telemetry";

    fn topic(agent: &str) -> String {
        format!("throughline/v1/s/{agent}/line-1/telemetry")
    }

    #[test]
    fn status_text_is_cut_to_its_caps_and_counted() {
        use throughline_shared::message::{AgentHealth, SourceHealth};
        let source = |name: String, error: Option<String>| SourceHealth {
            name,
            ok: error.is_none(),
            error,
            errors: 0,
            since: chrono::DateTime::UNIX_EPOCH,
        };
        let mut status: throughline_shared::AgentStatus = serde_json::from_value(serde_json::json!({
            "v": 1, "online": true, "software": "é".repeat(200_000)
        }))
        .unwrap();
        let mut sources = vec![source("modbus:plc-1".into(), Some("x".repeat(5000)))];
        sources.extend((0..100).map(|i| source(format!("s{i}"), None)));
        assert_eq!(cut_status_text(&mut status), 1, "only the software");
        let sw = status.software.as_deref().unwrap();
        assert_eq!(sw.chars().count(), MAX_SOFTWARE_CHARS);
        assert!(sw.ends_with('…') && sw.starts_with("éé"), "{sw}");
        assert_eq!(cut_status_text(&mut status), 0, "a cut status is within its caps");
        status.health = Some(AgentHealth { sources, ..AgentHealth::default() });
        assert_eq!(cut_status_text(&mut status), 2, "the long error and the sources beyond the cap");
        let h = status.health.as_ref().unwrap();
        assert_eq!(h.sources.len(), MAX_HEALTH_SOURCES);
        assert_eq!(h.sources[0].error.as_ref().unwrap().chars().count(), MAX_SOURCE_TEXT_CHARS);
        assert_eq!(h.sources[0].name, "modbus:plc-1", "short text is left as it is");
    }

    #[test]
    fn clock_refusals_are_logged_once_per_agent_per_minute() {
        let mut log = RejectLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let past = RejectReason::PastTimestamp;
        assert!(log.note(past, PAST, "1970", at(0)));
        assert!(!log.note(past, PAST, "1970", at(1)), "the same agent, within the minute");
        assert!(log.note(past, &topic("gw-b"), "1970", at(2)), "another agent is not hidden");
        assert!(log.note(RejectReason::FutureTimestamp, PAST, "2099", at(3)), "another reason");
        assert!(!log.note(past, PAST, "1970", at(30)), "a per-reason 10 s would have logged it");
        assert!(log.note(past, PAST, "1970", at(60)), "a minute later");
        assert_eq!(
            log.agents.last[&(PerAgent::Rejected(past), AgentId::parse("gw-a").unwrap())],
            (at(60), 0)
        );
        // Other reasons stay throttled per reason, whichever agent.
        let bad = RejectReason::BadJson;
        assert!(log.note(bad, PAST, "x", at(0)));
        assert!(!log.note(bad, &topic("gw-b"), "x", at(5)));
        assert!(log.note(bad, &topic("gw-b"), "x", at(10)));
    }

    #[test]
    fn per_agent_memory_is_bounded() {
        let mut log = RejectLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let past = RejectReason::PastTimestamp;
        for i in 0..MAX_AGENTS {
            assert!(log.note(past, &topic(&format!("gw-{i}")), "1970", t0));
        }
        // Full within the minute: a new agent shares the reason's throttle.
        assert!(log.note(past, &topic("gw-new"), "1970", t0));
        assert!(!log.note(past, &topic("gw-newer"), "1970", t0));
        assert_eq!(log.agents.last.len(), MAX_AGENTS);
        // A minute on, the old entries make room.
        assert!(log.note(past, &topic("gw-newer"), "1970", t0 + PER_AGENT_EVERY));
        assert_eq!(log.agents.last.len(), 1);
    }

    /// `n` registered lines `line-0`.. at site `s`, and their places.
    fn lines(n: usize) -> Vec<AssetIx> {
        use crate::model::{AssetConfig, AssetKind};
        use throughline_shared::{AssetId, SiteId};
        let site = SiteId::parse("s").unwrap();
        let registered: Vec<AssetConfig> = (0..n)
            .map(|i| AssetConfig {
                site: site.clone(),
                id: AssetId::parse(format!("line-{i}")).unwrap(),
                kind: AssetKind::Line,
                group: "g".into(),
                rated_capacity: 3600.0,
                name: None,
                agents: Vec::new(),
            })
            .collect();
        let st = crate::state::LiveState::new(&registered, chrono::Duration::minutes(5));
        registered.iter().map(|a| st.ix_of(&a.site, &a.id).unwrap()).collect()
    }

    /// A forged reading for `line-0`, and what live state made of it.
    fn forged(ix: AssetIx, implausible: u64, rebases: u64) -> (Telemetry, TelemetryOutcome) {
        let json = r#"{"v":1,"agent":"gw","seq":1,"samples":[{"ts":"2026-11-23T08:00:00Z","output":1e12}]}"#;
        let now = "2026-11-23T08:00:01Z".parse().unwrap();
        let Ok(Inbound::Telemetry(t)) =
            codec::decode("throughline/v1/s/gw/line-0/telemetry", json.as_bytes(), now, &Limits::default())
        else {
            panic!("a valid message")
        };
        let event = if rebases > 0 {
            LiveEvent::CounterRebase { index: 0 }
        } else {
            LiveEvent::ImplausibleStep { index: 0 }
        };
        let out = TelemetryOutcome {
            asset: Some(ix),
            implausible_steps: implausible,
            counter_rebases: rebases,
            events: vec![event],
            ..TelemetryOutcome::default()
        };
        (t, out)
    }

    #[test]
    fn implausible_steps_are_logged_once_per_asset_per_minute() {
        let ix = lines(2);
        let mut log = RejectLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let note = |log: &mut RejectLog, ix: AssetIx, implausible: u64, rebases: u64, secs: u64| {
            let (t, out) = forged(ix, implausible, rebases);
            log.note_counter_steps(&t, &out, || Some(1000.0), at(secs))
        };
        assert_eq!(note(&mut log, ix[0], 1, 0, 0), 1);
        let (t, out) = forged(ix[0], 1, 0);
        let held = log.note_counter_steps(&t, &out, || panic!("the counter is read only for a line"), at(30));
        assert_eq!(held, 0, "the same asset within the minute");
        assert_eq!(note(&mut log, ix[1], 1, 0, 30), 1, "another asset is not hidden");
        assert_eq!(note(&mut log, ix[0], 0, 1, 40), 1, "a rebase has its own line");
        assert_eq!(note(&mut log, ix[0], 1, 0, 60), 1, "a minute later");
        assert_eq!(log.assets.last[&(PerAsset::ImplausibleStep, ix[0])], (at(60), 0));
        assert_eq!(note(&mut log, ix[0], 3, 0, 61), 0, "nothing counted");
    }

    #[test]
    fn per_asset_memory_is_bounded() {
        let ix = lines(MAX_ASSETS + 2);
        let mut log = RejectLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut note = |ix: AssetIx, at: Instant| {
            let (t, out) = forged(ix, 1, 0);
            log.note_counter_steps(&t, &out, || None, at)
        };
        for &i in &ix[..MAX_ASSETS] {
            assert_eq!(note(i, t0), 1);
        }
        // Full within the minute: a new asset shares one throttle.
        assert_eq!(note(ix[MAX_ASSETS], t0), 1);
        assert_eq!(note(ix[MAX_ASSETS + 1], t0), 0);
        // A minute on, the old entries make room.
        assert_eq!(note(ix[MAX_ASSETS + 1], t0 + PER_AGENT_EVERY), 1);
        assert_eq!(log.assets.last.len(), 1);
    }

    #[test]
    fn a_new_epoch_is_logged_once_per_agent_per_minute() {
        let mut log = RejectLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let (a, b) = (AgentId::parse("gw-a").unwrap(), AgentId::parse("gw-b").unwrap());
        assert!(log.note_epoch(&a, u64::MAX, 10, t0));
        assert!(!log.note_epoch(&a, 11, u64::MAX, t0 + Duration::from_secs(1)));
        assert!(log.note_epoch(&b, 5, 1_000_000_000, t0 + Duration::from_secs(1)));
        assert!(log.note_epoch(&a, 12, 5_000_000, t0 + PER_AGENT_EVERY));
    }
}
