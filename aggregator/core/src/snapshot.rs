//! What live state needs to go on after a restart as if there had been
//! none: per asset the last counter, state and event time, per agent the
//! sequence window. The aggregator commits a snapshot of every asset and
//! agent changed since its last checkpoint together with the per-minute
//! history (and the journal position they correspond to), and reads them
//! back at start, so that
//!
//! - the output between the last sample before a restart and the first
//!   after it is counted (the last counter is known), and a step is judged
//!   plausible or not over the time since that counter was read (readings
//!   at a new level waiting to become the base stay waiting),
//! - envelopes the broker redelivers are still recognised as duplicates
//!   (the sequence window is known),
//! - an asset's event time does not start again from nothing (the close
//!   rule and "time left" go on from where they were),
//! - a stop under way is still projected from the asset's repair history
//!   (its recent stops are kept).
//!
//! The per-minute history itself comes back from the rollups
//! ([`LiveState::restore_history`]). The rate window is kept thinned to at
//! most [`WINDOW_POINTS`] points (always its first and last): right after a
//! restart the rate is the one before it, and it is exact again once a
//! rate window of new samples has arrived.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use throughline_shared::message::SeqRange;
use throughline_shared::{AgentId, AssetId, AssetState, SiteId};

use crate::state::{
    AgentIx, AssetIx, ClockStep, GapInterval, LiveState, PendingRebase, SeqTracker, TelemetryOutcome,
    MAX_GAP_INTERVALS,
};
use crate::stops::{Stop, StopLog};

/// Most rate-window points kept in a snapshot.
pub const WINDOW_POINTS: usize = 32;

/// One asset's live state, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetSnapshot {
    pub site: SiteId,
    pub asset: AssetId,
    #[serde(default)]
    pub agent: Option<AgentId>,
    /// Server-clock time its last message was received (none in a snapshot
    /// written before it was kept: its agent's is used then).
    #[serde(default)]
    pub last_message: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_ts: Option<DateTime<Utc>>,
    /// The asset's own watermark (never goes back).
    #[serde(default)]
    pub newest_ts: Option<DateTime<Utc>>,
    #[serde(default)]
    pub first_ts: Option<DateTime<Utc>>,
    #[serde(default)]
    pub state: Option<AssetState>,
    #[serde(default)]
    pub state_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub output_counter: Option<f64>,
    /// When the last good reading was taken (a snapshot written before it
    /// was kept: the last sample time).
    #[serde(default)]
    pub output_counter_ts: Option<DateTime<Utc>>,
    #[serde(default)]
    pub output_total: f64,
    #[serde(default)]
    pub counter_resets: u64,
    #[serde(default)]
    pub counter_glitches: u64,
    #[serde(default)]
    pub implausible_steps: u64,
    #[serde(default)]
    pub counter_rebases: u64,
    /// Readings at a new counter level waiting to become the base.
    #[serde(default)]
    pub pending_rebase: Option<PendingRebase>,
    #[serde(default)]
    pub load_kw: Option<f64>,
    #[serde(default)]
    pub samples: u64,
    #[serde(default)]
    pub late_samples: u64,
    /// Rate window points: (ms since the epoch, cumulative output).
    #[serde(default)]
    pub window: Vec<(i64, f64)>,
    /// Recent ended `down` stops, oldest first (none in a snapshot written
    /// before they were kept).
    #[serde(default)]
    pub stops: Vec<Stop>,
    /// The `seq` of the envelope of the last sample applied in order.
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// Intervals over gaps of the agent's `seq`, for resent samples to fill.
    #[serde(default)]
    pub gaps: Vec<GapInterval>,
}

/// One agent's live state, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub agent: AgentId,
    pub site: SiteId,
    #[serde(default)]
    pub online: Option<bool>,
    #[serde(default)]
    pub software: Option<String>,
    #[serde(default)]
    pub last_message: Option<DateTime<Utc>>,
    /// Highest sequence number seen.
    #[serde(default)]
    pub seq_max: Option<u64>,
    /// Ranges below it not seen yet, inclusive.
    #[serde(default)]
    pub seq_missing: Vec<(u64, u64)>,
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub seq_epochs: u64,
    #[serde(default)]
    pub clock_steps: u64,
    #[serde(default)]
    pub largest_clock_step_secs: f64,
    /// The latest clock step: (from, to).
    #[serde(default)]
    pub last_clock_step: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Ranges reported lost (asked for, not resent), inclusive.
    #[serde(default)]
    pub seq_lost_ranges: Vec<(u64, u64)>,
    /// Numbers reported lost and not arrived since.
    #[serde(default)]
    pub seq_lost: u64,
    /// The agent's latest skip announcements, inclusive.
    #[serde(default)]
    pub seq_announced: Vec<(u64, u64)>,
    /// Numbers not counted missing as announced skips.
    #[serde(default)]
    pub seq_excused: u64,
    #[serde(default)]
    pub seq_late_fills: u64,
}

/// Every asset's and agent's state that a checkpoint writes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StateRows {
    pub assets: Vec<AssetSnapshot>,
    pub agents: Vec<AgentSnapshot>,
}

impl StateRows {
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty() && self.agents.is_empty()
    }
}

/// Which assets and agents changed since the last checkpoint.
#[derive(Debug, Default)]
pub struct Dirty {
    assets: BTreeSet<AssetIx>,
    agents: BTreeSet<AgentIx>,
}

impl Dirty {
    /// Note what a telemetry message changed (a duplicate changes its
    /// agent's counters).
    pub fn note_telemetry(&mut self, out: &TelemetryOutcome) {
        self.assets.extend(out.asset);
        self.agents.extend(out.agent);
    }

    /// Note an agent whose status changed.
    pub fn note_agent(&mut self, ix: AgentIx) {
        self.agents.insert(ix);
    }

    /// Note an asset changed otherwise (moved to another agent).
    pub fn note_asset(&mut self, ix: AssetIx) {
        self.assets.insert(ix);
    }

    /// Snapshots of what changed; it counts as written afterwards.
    pub fn take(&mut self, state: &LiveState) -> StateRows {
        StateRows {
            assets: std::mem::take(&mut self.assets)
                .into_iter()
                .filter_map(|ix| state.asset_snapshot(ix))
                .collect(),
            agents: std::mem::take(&mut self.agents)
                .into_iter()
                .filter_map(|ix| state.agent_snapshot(ix))
                .collect(),
        }
    }

    /// Put back rows whose write failed: taken again at the next checkpoint.
    pub fn put_back(&mut self, state: &LiveState, rows: &StateRows) {
        self.assets.extend(rows.assets.iter().filter_map(|a| state.ix_of(&a.site, &a.asset)));
        self.agents.extend(rows.agents.iter().filter_map(|g| state.agent(&g.agent).map(|g| g.ix)));
    }

    /// Whether every asset and agent is written.
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty() && self.agents.is_empty()
    }

    /// Everything in `state` counts as changed (to write it all once).
    pub fn all(&mut self, state: &LiveState) {
        self.assets.extend(state.assets().map(|a| a.ix));
        self.agents.extend(state.agents().map(|g| g.ix));
    }
}

/// Keep at most `n` points, evenly spread, always the first and the last.
fn thin(points: impl ExactSizeIterator<Item = (i64, f64)>, n: usize) -> Vec<(i64, f64)> {
    let all: Vec<(i64, f64)> = points.collect();
    if all.len() <= n {
        return all;
    }
    let last = all.len() - 1;
    (0..n).map(|i| all[i * last / (n - 1)]).collect()
}

impl LiveState {
    /// The asset at `ix` as stored.
    pub fn asset_snapshot(&self, ix: AssetIx) -> Option<AssetSnapshot> {
        let a = self.asset_at(ix)?;
        Some(AssetSnapshot {
            site: a.site.clone(),
            asset: a.asset.clone(),
            agent: a.agent.clone(),
            last_message: a.last_message,
            last_ts: a.last_ts,
            newest_ts: a.newest_ts,
            first_ts: a.first_ts,
            state: a.state,
            state_since: a.state_since,
            reason: a.reason.clone(),
            output_counter: a.output_counter,
            output_counter_ts: a.output_counter_ts,
            output_total: a.output_total,
            counter_resets: a.counter_resets,
            counter_glitches: a.counter_glitches,
            implausible_steps: a.implausible_steps,
            counter_rebases: a.counter_rebases,
            pending_rebase: a.pending_rebase,
            load_kw: a.load_kw,
            samples: a.samples,
            late_samples: a.late_samples,
            window: thin(
                a.window.iter().map(|&(t, v)| (t, v)).map(|(t, v)| (t.timestamp_millis(), v)),
                WINDOW_POINTS,
            ),
            stops: a.stops.iter().cloned().collect(),
            last_seq: a.last_seq,
            gaps: a.gaps.iter().copied().collect(),
        })
    }

    /// The agent at `ix` as stored.
    pub fn agent_snapshot(&self, ix: AgentIx) -> Option<AgentSnapshot> {
        let g = self.agent_at(ix)?;
        Some(AgentSnapshot {
            agent: g.agent.clone(),
            site: g.site.clone(),
            online: g.online,
            software: g.software.clone(),
            last_message: g.last_message,
            seq_max: g.seq.max(),
            seq_missing: g.seq.missing.iter().map(|(a, b)| (*a, *b)).collect(),
            messages: g.messages,
            duplicates: g.duplicates,
            seq_epochs: g.seq_epochs,
            clock_steps: g.clock_steps,
            largest_clock_step_secs: g.largest_clock_step_secs,
            last_clock_step: g.last_clock_step.as_ref().map(|c| (c.from, c.to)),
            seq_lost_ranges: g.seq.lost.iter().map(|(a, b)| (*a, *b)).collect(),
            seq_lost: g.seq.lost_count,
            seq_announced: g.seq.announced.iter().map(|r| (r.from, r.to)).collect(),
            seq_excused: g.seq.excused,
            seq_late_fills: g.seq_late_fills,
        })
    }

    /// Put back an asset's stored state (at start, after its history).
    pub fn restore_asset(&mut self, s: AssetSnapshot) {
        if self.asset(&s.site, &s.asset).is_none() {
            // Seen before the restart without being registered now.
            self.insert_asset(&s.site, &s.asset, None);
            if let Some(h) = self.restored.remove(&(s.site.clone(), s.asset.clone())) {
                self.asset_mut(&s.site, &s.asset).expect("inserted above").history = h;
            }
        }
        let a = self.asset_mut(&s.site, &s.asset).expect("present");
        a.agent = s.agent;
        a.last_message = s.last_message;
        a.last_ts = s.last_ts;
        a.newest_ts = s.newest_ts.or(s.last_ts);
        a.first_ts = s.first_ts;
        a.state = s.state;
        a.state_since = s.state_since;
        a.reason = s.reason;
        a.output_counter = s.output_counter;
        a.output_counter_ts = s.output_counter_ts.or(s.output_counter.and(s.last_ts));
        a.output_total = s.output_total;
        a.counter_resets = s.counter_resets;
        a.counter_glitches = s.counter_glitches;
        a.implausible_steps = s.implausible_steps;
        a.counter_rebases = s.counter_rebases;
        a.pending_rebase = s.pending_rebase;
        a.load_kw = s.load_kw;
        a.samples = s.samples;
        a.late_samples = s.late_samples;
        a.last_seq = s.last_seq;
        a.gaps = s.gaps.into_iter().filter(|g| g.from < g.to).take(MAX_GAP_INTERVALS).collect();
        a.window = s
            .window
            .into_iter()
            .filter_map(|(t, v)| Some((DateTime::from_timestamp_millis(t)?, v)))
            .collect();
        a.stops = StopLog::from_stops(s.stops);
        if let Some(last) = a.newest_ts {
            if self.watermark.is_none_or(|w| last > w) {
                self.watermark = Some(last);
            }
        }
    }

    /// Put back an agent's stored state (at start).
    pub fn restore_agent(&mut self, s: AgentSnapshot) {
        let g = self.agent_mut(&s.agent, &s.site);
        g.online = s.online;
        g.software = s.software;
        g.last_message = s.last_message;
        g.seq = SeqTracker {
            max: s.seq_max,
            missing: s.seq_missing.into_iter().collect(),
            lost: s.seq_lost_ranges.into_iter().collect(),
            lost_count: s.seq_lost,
            announced: s
                .seq_announced
                .into_iter()
                .filter(|(from, to)| from <= to)
                .map(|(from, to)| SeqRange { from, to })
                .collect(),
            excused: s.seq_excused,
        };
        g.seq_late_fills = s.seq_late_fills;
        g.messages = s.messages;
        g.duplicates = s.duplicates;
        g.seq_epochs = s.seq_epochs;
        g.clock_steps = s.clock_steps;
        g.largest_clock_step_secs = s.largest_clock_step_secs;
        g.last_clock_step = s.last_clock_step.map(|(from, to)| ClockStep { from, to });
    }
}

#[cfg(test)]
mod tests;
