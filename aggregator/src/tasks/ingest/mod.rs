//! MQTT ingest: subscribe, decode and validate, deduplicate, update live
//! state and counters. One bad message is counted and logged, never fatal.

pub mod mqtt;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use throughline_shared::codec::{self, Inbound};
use throughline_shared::{Limits, RejectReason};

use crate::journal::{Journal, JournalError};
use crate::metrics::{AgentLabels, AssetLabels, ReasonLabel};
use crate::service::Services;
use crate::state::LiveEvent;

/// Logs each rejection reason at most once per `every`, with how many were
/// suppressed in between, so a misbehaving device cannot flood the log.
#[derive(Debug)]
pub struct RejectLog {
    every: Duration,
    last: HashMap<RejectReason, (Instant, u64)>,
}

impl RejectLog {
    pub fn new(every: Duration) -> RejectLog {
        RejectLog { every, last: HashMap::new() }
    }

    fn note(&mut self, reason: RejectReason, topic: &str, detail: &str) {
        let now = Instant::now();
        match self.last.get_mut(&reason) {
            Some((at, suppressed)) if now.duration_since(*at) < self.every => *suppressed += 1,
            entry => {
                let suppressed = entry.map_or(0, |(_, s)| *s);
                tracing::warn!(reason = reason.label(), topic, detail, suppressed, "message rejected");
                self.last.insert(reason, (now, 0));
            }
        }
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

/// Handle one message from the broker.
pub fn handle(
    shared: &Services,
    limits: &Limits,
    log: &mut RejectLog,
    topic: &str,
    payload: &[u8],
    now: DateTime<Utc>,
) {
    let m = &shared.metrics;
    if payload.is_empty() && topic.ends_with("/status") {
        // An operator clearing a decommissioned agent's retained status.
        tracing::debug!(topic, "retained status cleared");
        return;
    }
    match codec::decode(topic, payload, now, limits) {
        Err(e) => {
            m.rejected.get_or_create(&ReasonLabel { reason: e.reason.label() }).inc();
            log.note(e.reason, topic, &e.detail);
        }
        Ok(Inbound::Telemetry(t)) => {
            let out = shared.live.apply_telemetry(&t, now, shared.influx.as_ref());
            if out.duplicate {
                m.duplicates.inc();
                tracing::debug!(agent = %t.envelope.agent, seq = t.envelope.seq, "duplicate dropped");
                return;
            }
            m.messages.inc();
            m.samples.inc_by(out.samples);
            m.seq_gaps.inc_by(out.seq_skipped);
            m.counter_resets.inc_by(out.counter_resets);
            m.late_samples.inc_by(out.late_samples);
            if out.counter_glitches > 0 {
                m.counter_glitches
                    .get_or_create(&AssetLabels { site: t.site.to_string(), asset: t.asset.to_string() })
                    .inc_by(out.counter_glitches);
                tracing::debug!(site = %t.site, asset = %t.asset, glitches = out.counter_glitches, "output counter below its last good reading, not near zero: skipped");
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
            if out.seq_skipped > 0 {
                tracing::info!(agent = %t.envelope.agent, seq = t.envelope.seq, skipped = out.seq_skipped, "sequence gap");
            }
            if out.new_unregistered_asset {
                m.unregistered_assets.inc();
                tracing::warn!(site = %t.site, asset = %t.asset, agent = %t.envelope.agent, "telemetry for an unregistered asset; kept and shown as unregistered");
            }
            if out.agent_came_online {
                m.agent_online
                    .get_or_create(&AgentLabels {
                        site: t.site.to_string(),
                        agent: t.envelope.agent.to_string(),
                    })
                    .set(1);
            }
        }
        Ok(Inbound::Status(s)) => {
            m.status_messages.inc();
            let before = shared.live.apply_status(&s, now);
            m.agent_online
                .get_or_create(&AgentLabels { site: s.site.to_string(), agent: s.agent.to_string() })
                .set(i64::from(s.status.online));
            if before != Some(s.status.online) {
                tracing::info!(site = %s.site, agent = %s.agent, online = s.status.online, "agent status");
            }
        }
    }
}
