//! Live state of every asset and agent, updated from validated messages.
//! Pure: no I/O, no clock of its own; everything runs in event time (the
//! samples' `ts`), so a replayed backlog gives the same state as live data.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use throughline_shared::codec::{StatusMessage, Telemetry};
use throughline_shared::{AgentId, AssetId, AssetState, Sample, SiteId};

use crate::history::{History, MinuteSpan};
use crate::model::{AssetConfig, AssetKind};

/// Most gap ranges remembered per agent; beyond it the oldest are forgotten
/// (a message from a forgotten gap then counts as a duplicate).
const MAX_MISSING_RANGES: usize = 1024;
/// Most points kept in an asset's rate window.
const MAX_WINDOW_POINTS: usize = 4096;
/// Largest jump of an agent's `seq`, up or down, still taken as the same
/// numbering (`ingest.max_seq_jump`): a day of envelopes of a busy agent
/// (ten a second), far below where a fresh numbering lands (our agent's,
/// after a lost state file, is the clock in milliseconds: years away).
pub const DEFAULT_MAX_SEQ_JUMP: u64 = 1_000_000;

/// What a sequence number means given what was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The agent's first message since this aggregator started.
    First,
    /// The next number, or a later one; `skipped` numbers were not (yet) seen.
    Ahead { skipped: u64 },
    /// A number from an earlier gap arriving late: new, not a duplicate.
    LateFill,
    /// Seen before: drop.
    Duplicate,
    /// Further from the highest number than the window allows, above or
    /// below (and not a missing one): the agent numbers afresh (a lost state
    /// file; a numbering started from a clock that said 1970; a device that
    /// counts from 1 again; a corrupt `seq`). Taken as new; the tracker
    /// restarts from it and counts nothing as missing. `previous` is the
    /// highest number before.
    NewEpoch { previous: u64 },
}

/// Per-agent duplicate detection on `seq`: the highest number seen plus the
/// ranges below it still missing. Everything else below the highest is a
/// repeat, unless it is more than the window below: then, as for a jump
/// more than the window above, the numbering starts a new epoch (a jump
/// cannot make millions of numbers missing, nor a restart from a low number
/// drop everything as repeats). Memory stays small however long the agent
/// runs.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    max: Option<u64>,
    /// Missing ranges, start -> end (inclusive).
    missing: BTreeMap<u64, u64>,
}

impl SeqTracker {
    /// What `seq` is, `max_jump` being the largest distance from the highest
    /// number still taken as the same numbering; remembers it.
    pub fn observe(&mut self, seq: u64, max_jump: u64) -> SeqOutcome {
        let Some(max) = self.max else {
            self.max = Some(seq);
            return SeqOutcome::First;
        };
        if seq > max {
            if seq - max > max_jump {
                return self.new_epoch(seq, max);
            }
            let skipped = seq - max - 1;
            if skipped > 0 {
                self.missing.insert(max + 1, seq - 1);
                while self.missing.len() > MAX_MISSING_RANGES {
                    self.missing.pop_first();
                }
            }
            self.max = Some(seq);
            return SeqOutcome::Ahead { skipped };
        }
        // Below the highest: new only if inside a missing range, or so far
        // below that it is another numbering.
        let Some((&start, &end)) = self.missing.range(..=seq).next_back().filter(|&(_, &end)| seq <= end)
        else {
            if max - seq > max_jump {
                return self.new_epoch(seq, max);
            }
            return SeqOutcome::Duplicate;
        };
        self.missing.remove(&start);
        if start < seq {
            self.missing.insert(start, seq - 1);
        }
        if seq < end {
            self.missing.insert(seq + 1, end);
        }
        SeqOutcome::LateFill
    }

    fn new_epoch(&mut self, seq: u64, previous: u64) -> SeqOutcome {
        self.max = Some(seq);
        self.missing.clear();
        SeqOutcome::NewEpoch { previous }
    }

    /// Highest sequence number seen.
    pub fn max(&self) -> Option<u64> {
        self.max
    }

    /// Numbers below the highest not seen yet.
    pub fn missing(&self) -> u64 {
        self.missing.iter().map(|(s, e)| e - s + 1).sum()
    }
}

/// An asset's place in live state, given when live state first holds it
/// and kept for its lifetime: those who keep something per asset (the
/// rollup writer, the dashboard) use it instead of comparing ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetIx(u32);

/// An agent's place in live state, as [`AssetIx`] for assets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentIx(u32);

/// Live view of one asset.
#[derive(Debug, Clone)]
pub struct AssetLive {
    pub ix: AssetIx,
    pub site: SiteId,
    pub asset: AssetId,
    pub registration: Option<AssetConfig>,
    /// Agent that last reported this asset.
    pub agent: Option<AgentId>,
    pub last_ts: Option<DateTime<Utc>>,
    /// First sample time seen (the history starts there).
    pub first_ts: Option<DateTime<Utc>>,
    pub state: Option<AssetState>,
    pub state_since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// Last raw output counter.
    pub output_counter: Option<f64>,
    /// Output since this aggregator first saw the asset, counter resets included.
    pub output_total: f64,
    pub counter_resets: u64,
    pub load_kw: Option<f64>,
    pub samples: u64,
    /// Samples older than the newest already applied (ignored for live state).
    pub late_samples: u64,
    window: VecDeque<(DateTime<Utc>, f64)>,
    /// Per-minute history in event time (for balances).
    pub history: History,
}

impl AssetLive {
    /// What an instant alert depends on: the state, and for a registered
    /// feeder whether its load is above its rating.
    fn alert_edge_inputs(&self) -> (Option<AssetState>, bool) {
        let over = self.registration.as_ref().is_some_and(|r| {
            r.kind == AssetKind::Feeder && self.load_kw.is_some_and(|kw| kw > r.rated_capacity)
        });
        (self.state, over)
    }

    fn new(ix: AssetIx, site: SiteId, asset: AssetId, registration: Option<AssetConfig>) -> AssetLive {
        AssetLive {
            ix,
            site,
            asset,
            registration,
            agent: None,
            last_ts: None,
            first_ts: None,
            state: None,
            state_since: None,
            reason: None,
            output_counter: None,
            output_total: 0.0,
            counter_resets: 0,
            load_kw: None,
            samples: 0,
            late_samples: 0,
            window: VecDeque::new(),
            history: History::default(),
        }
    }

    /// Output per hour over the rate window (pieces/h, or kWh/h = mean kW).
    pub fn rate_per_hour(&self) -> Option<f64> {
        let (t0, v0) = self.window.front()?;
        let (t1, v1) = self.window.back()?;
        let secs = (*t1 - *t0).num_milliseconds() as f64 / 1000.0;
        (secs >= 1.0).then(|| (v1 - v0) / secs * 3600.0)
    }

    /// Apply one sample, widening `touched` by the history minutes it
    /// changed.
    fn apply(&mut self, s: &Sample, window: Duration, touched: &mut Option<MinuteSpan>) -> SampleOutcome {
        if self.last_ts.is_some_and(|last| s.ts < last) {
            self.late_samples += 1;
            return SampleOutcome::Late;
        }
        self.samples += 1;
        let prev_ts = self.last_ts.replace(s.ts);
        self.first_ts.get_or_insert(s.ts);
        let mut reset = false;
        let mut delta = 0.0;
        if let Some(out) = s.output {
            if let Some(prev) = self.output_counter {
                if out >= prev {
                    delta = out - prev;
                } else {
                    // A counter that went down restarted from zero.
                    reset = true;
                    self.counter_resets += 1;
                    delta = out;
                }
                self.output_total += delta;
            }
            self.output_counter = Some(out);
            self.window.push_back((s.ts, self.output_total));
            let horizon = s.ts - window;
            while self.window.len() > MAX_WINDOW_POINTS
                || self.window.front().is_some_and(|(t, _)| *t < horizon)
            {
                self.window.pop_front();
            }
        }
        // The interval since the previous sample belongs to the previous
        // state and load; the output increase is spread over it.
        if let Some(prev_ts) = prev_ts {
            if let Some(span) = self.history.attribute(prev_ts, s.ts, delta, self.state, self.load_kw) {
                MinuteSpan::extend(touched, span);
            }
        }
        if let Some(kw) = s.load_kw {
            MinuteSpan::extend(touched, self.history.note_load(s.ts, kw));
        }
        MinuteSpan::extend(touched, self.history.note_sample(s.ts));
        let mut changed = false;
        if let Some(st) = s.state {
            if self.state != Some(st) {
                changed = true;
                self.state = Some(st);
                self.state_since = Some(s.ts);
                if s.reason.is_none() {
                    self.reason = None;
                }
            }
        }
        if let Some(r) = &s.reason {
            self.reason = Some(r.clone());
        }
        if let Some(kw) = s.load_kw {
            self.load_kw = Some(kw);
        }
        SampleOutcome::Applied { reset, changed }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleOutcome {
    /// In order; `reset`: the output counter went down; `changed`: the
    /// state changed.
    Applied {
        reset: bool,
        changed: bool,
    },
    Late,
}

/// Live view of one agent.
#[derive(Debug, Clone)]
pub struct AgentLive {
    pub ix: AgentIx,
    pub agent: AgentId,
    pub site: SiteId,
    /// From the retained status topic; `None` until a status or telemetry arrives.
    pub online: Option<bool>,
    pub software: Option<String>,
    pub health: Option<throughline_shared::message::AgentHealth>,
    pub last_message: Option<DateTime<Utc>>,
    pub seq: SeqTracker,
    pub messages: u64,
    pub duplicates: u64,
    /// Times its numbering started afresh ([`SeqOutcome::NewEpoch`]).
    pub seq_epochs: u64,
}

/// One thing a telemetry message changed, for those who act on it: the
/// time-series sink (state changes, late samples), the alert task (state
/// changes, load crossings). They read these instead of deriving them
/// again. The minutes of history a message changed, which almost every
/// message has, are the outcome's `minutes` (for the rollup writer), so
/// that the common message allocates no event list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEvent {
    /// Sample `index` of the envelope changed the asset's state.
    StateChanged { index: usize, state: AssetState },
    /// Sample `index` is older than one already applied: real data with its
    /// own time, but not for live state or history.
    Late { index: usize },
    /// Sample `index` brought an output counter lower than the last: taken
    /// as a counter reset.
    CounterReset { index: usize },
    /// A registered feeder's load crossed its rating (`above`: it is above
    /// it now).
    LoadCrossed { above: bool },
}

/// What one telemetry message did, for counters, logs and the events its
/// consumers act on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TelemetryOutcome {
    pub duplicate: bool,
    pub seq_skipped: u64,
    pub late_fill: bool,
    /// The agent's numbering started afresh with this message: the highest
    /// number before ([`SeqOutcome::NewEpoch`]).
    pub seq_epoch: Option<u64>,
    pub samples: u64,
    pub counter_resets: u64,
    pub late_samples: u64,
    pub new_unregistered_asset: bool,
    /// The agent was not known online before this message.
    pub agent_came_online: bool,
    /// The asset's state changed, or a feeder's load crossed its rating:
    /// an alert may open or clear now, not only at the next evaluation.
    pub alert_edge: bool,
    /// The message's agent, and its asset (none for a duplicate).
    pub agent: Option<AgentIx>,
    pub asset: Option<AssetIx>,
    /// What changed, in sample order (a duplicate changes nothing).
    pub events: Vec<LiveEvent>,
    /// The minutes of the asset's history the message changed.
    pub minutes: Option<MinuteSpan>,
    /// The asset's history holds this many minutes now.
    pub history_minutes: usize,
}

/// All live state.
#[derive(Debug)]
pub struct LiveState {
    /// Site -> asset -> live view: looked up by borrowed ids, no key to
    /// build per message; iterates in (site, asset) order.
    assets: BTreeMap<SiteId, BTreeMap<AssetId, AssetLive>>,
    agents: BTreeMap<AgentId, AgentLive>,
    rate_window: Duration,
    /// Largest `seq` jump still taken as the same numbering.
    max_seq_jump: u64,
    /// Latest sample time seen from any asset: "now" in event time.
    watermark: Option<DateTime<Utc>>,
    /// History read back from the store for assets not registered, handed
    /// to each when it reports again.
    restored: BTreeMap<(SiteId, AssetId), History>,
    /// [`AssetIx`] -> ids, [`AgentIx`] -> id.
    asset_ids: Vec<(SiteId, AssetId)>,
    agent_ids: Vec<AgentId>,
}

impl LiveState {
    pub fn new(registered: &[AssetConfig], rate_window: Duration) -> LiveState {
        let mut st = LiveState {
            assets: BTreeMap::new(),
            agents: BTreeMap::new(),
            rate_window,
            max_seq_jump: DEFAULT_MAX_SEQ_JUMP,
            watermark: None,
            restored: BTreeMap::new(),
            asset_ids: Vec::new(),
            agent_ids: Vec::new(),
        };
        for a in registered {
            if st.asset(&a.site, &a.id).is_none() {
                st.insert_asset(&a.site, &a.id, Some(a.clone()));
            }
        }
        st
    }

    /// Take a `seq` more than `max_jump` away from an agent's highest as a
    /// new numbering ([`SeqOutcome::NewEpoch`]); [`DEFAULT_MAX_SEQ_JUMP`]
    /// otherwise.
    pub fn with_max_seq_jump(mut self, max_jump: u64) -> LiveState {
        self.max_seq_jump = max_jump;
        self
    }

    fn insert_asset(&mut self, site: &SiteId, asset: &AssetId, registration: Option<AssetConfig>) {
        let ix = AssetIx(self.asset_ids.len() as u32);
        self.asset_ids.push((site.clone(), asset.clone()));
        let a = AssetLive::new(ix, site.clone(), asset.clone(), registration);
        self.assets.entry(site.clone()).or_default().insert(asset.clone(), a);
    }

    /// The asset at `ix`.
    pub fn asset_at(&self, ix: AssetIx) -> Option<&AssetLive> {
        let (site, asset) = self.asset_ids.get(ix.0 as usize)?;
        self.asset(site, asset)
    }

    /// The agent at `ix`.
    pub fn agent_at(&self, ix: AgentIx) -> Option<&AgentLive> {
        self.agents.get(self.agent_ids.get(ix.0 as usize)?)
    }

    /// Put back per-minute history read from the store (after a restart).
    pub fn restore_history(
        &mut self,
        site: &SiteId,
        asset: &AssetId,
        rows: impl IntoIterator<Item = (i64, crate::history::Minute)>,
    ) {
        match self.assets.get_mut(site).and_then(|m| m.get_mut(asset)) {
            Some(a) => a.history.restore(rows),
            None => self.restored.entry((site.clone(), asset.clone())).or_default().restore(rows),
        }
    }

    /// Drop the history of the asset at `ix` before `before`, except the
    /// minutes (epoch seconds of their start) for which `pending` holds.
    pub fn prune_history(&mut self, ix: AssetIx, before: DateTime<Utc>, pending: impl Fn(i64) -> bool) {
        let Some((site, asset)) = self.asset_ids.get(ix.0 as usize).cloned() else { return };
        if let Some(a) = self.asset_mut(&site, &asset) {
            a.history.prune(before, pending);
        }
    }

    fn asset_mut(&mut self, site: &SiteId, asset: &AssetId) -> Option<&mut AssetLive> {
        self.assets.get_mut(site)?.get_mut(asset)
    }

    /// The place of `site/asset`, if live state holds it.
    pub fn ix_of(&self, site: &SiteId, asset: &AssetId) -> Option<AssetIx> {
        self.asset(site, asset).map(|a| a.ix)
    }

    /// Latest event time seen from any asset.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    fn agent_mut(&mut self, agent: &AgentId, site: &SiteId) -> &mut AgentLive {
        // Known agents (every message but the first) without cloning the id.
        if self.agents.contains_key(agent) {
            return self.agents.get_mut(agent).expect("just found");
        }
        let ix = AgentIx(self.agent_ids.len() as u32);
        self.agent_ids.push(agent.clone());
        self.agents.entry(agent.clone()).or_insert_with(|| AgentLive {
            ix,
            agent: agent.clone(),
            site: site.clone(),
            online: None,
            software: None,
            health: None,
            last_message: None,
            seq: SeqTracker::default(),
            messages: 0,
            duplicates: 0,
            seq_epochs: 0,
        })
    }

    /// Apply a telemetry message received at `now` (wall clock, only used
    /// for "last heard"); what it changed is in the outcome's `events`.
    pub fn apply_telemetry(&mut self, t: &Telemetry, now: DateTime<Utc>) -> TelemetryOutcome {
        let mut out = TelemetryOutcome::default();
        let env = &t.envelope;
        let max_seq_jump = self.max_seq_jump;
        let agent = self.agent_mut(&env.agent, &t.site);
        agent.last_message = Some(now);
        out.agent = Some(agent.ix);
        match agent.seq.observe(env.seq, max_seq_jump) {
            SeqOutcome::Duplicate => {
                agent.duplicates += 1;
                out.duplicate = true;
                return out;
            }
            SeqOutcome::Ahead { skipped } => out.seq_skipped = skipped,
            SeqOutcome::LateFill => out.late_fill = true,
            SeqOutcome::NewEpoch { previous } => {
                agent.seq_epochs += 1;
                out.seq_epoch = Some(previous);
            }
            SeqOutcome::First => {}
        }
        agent.messages += 1;
        if agent.online.is_none() {
            agent.online = Some(true);
            out.agent_came_online = true;
        }
        let window = self.rate_window;
        if !self.assets.get(&t.site).is_some_and(|m| m.contains_key(&t.asset)) {
            out.new_unregistered_asset = true;
            self.insert_asset(&t.site, &t.asset, None);
            if let Some(h) = self.restored.remove(&(t.site.clone(), t.asset.clone())) {
                self.asset_mut(&t.site, &t.asset).expect("inserted above").history = h;
            }
        }
        let asset =
            self.assets.get_mut(&t.site).and_then(|m| m.get_mut(&t.asset)).expect("asset inserted above");
        out.asset = Some(asset.ix);
        if asset.agent.as_ref() != Some(&env.agent) {
            asset.agent = Some(env.agent.clone());
        }
        let before = asset.last_ts;
        let edge_before = asset.alert_edge_inputs();
        let mut touched = None;
        for (index, s) in env.samples.iter().enumerate() {
            out.samples += 1;
            match asset.apply(s, window, &mut touched) {
                SampleOutcome::Applied { reset, changed } => {
                    if reset {
                        out.counter_resets += 1;
                        out.events.push(LiveEvent::CounterReset { index });
                    }
                    if let (true, Some(state)) = (changed, asset.state) {
                        out.events.push(LiveEvent::StateChanged { index, state });
                    }
                }
                SampleOutcome::Late => {
                    out.late_samples += 1;
                    out.events.push(LiveEvent::Late { index });
                }
            }
        }
        let edge_after = asset.alert_edge_inputs();
        if edge_after != edge_before {
            out.alert_edge = true;
            if edge_after.1 != edge_before.1 {
                out.events.push(LiveEvent::LoadCrossed { above: edge_after.1 });
            }
        }
        out.minutes = touched;
        out.history_minutes = asset.history.len();
        if asset.last_ts != before {
            if let Some(last) = asset.last_ts {
                if self.watermark.is_none_or(|w| last > w) {
                    self.watermark = Some(last);
                }
            }
        }
        out
    }

    /// Apply an agent status (birth or last will). Returns the previous
    /// online flag.
    pub fn apply_status(&mut self, m: &StatusMessage, now: DateTime<Utc>) -> Option<bool> {
        let agent = self.agent_mut(&m.agent, &m.site);
        let before = agent.online;
        agent.online = Some(m.status.online);
        agent.site = m.site.clone();
        if m.status.software.is_some() {
            agent.software = m.status.software.clone();
        }
        if m.status.health.is_some() {
            agent.health = m.status.health.clone();
        }
        agent.last_message = Some(now);
        before
    }

    /// The assets `agent` reported last.
    pub fn assets_of<'a>(&'a self, agent: &'a AgentId) -> impl Iterator<Item = &'a AssetLive> + 'a {
        self.assets().filter(move |a| a.agent.as_ref() == Some(agent))
    }

    pub fn assets(&self) -> impl Iterator<Item = &AssetLive> {
        self.assets.values().flat_map(BTreeMap::values)
    }

    pub fn asset(&self, site: &SiteId, asset: &AssetId) -> Option<&AssetLive> {
        self.assets.get(site)?.get(asset)
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentLive> {
        self.agents.values()
    }

    pub fn agent(&self, id: &AgentId) -> Option<&AgentLive> {
        self.agents.get(id)
    }
}

/// JSON view of an asset (`/api/v1/assets`).
#[derive(Debug, Serialize)]
pub struct AssetView {
    pub site: SiteId,
    pub asset: AssetId,
    pub registered: bool,
    pub name: Option<String>,
    pub kind: Option<AssetKind>,
    pub group: Option<String>,
    pub rated_capacity: Option<f64>,
    pub rated_unit: Option<&'static str>,
    pub output_unit: Option<&'static str>,
    pub agent: Option<AgentId>,
    pub agent_online: Option<bool>,
    pub last_sample_ts: Option<DateTime<Utc>>,
    pub state: Option<AssetState>,
    pub state_since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub output_counter: Option<f64>,
    pub output_total: f64,
    pub rate_per_hour: Option<f64>,
    pub rate_window_secs: i64,
    pub load_kw: Option<f64>,
    pub samples: u64,
    pub late_samples: u64,
    pub counter_resets: u64,
}

/// JSON view of an agent (`/api/v1/agents`).
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub agent: AgentId,
    pub site: SiteId,
    pub online: Option<bool>,
    pub software: Option<String>,
    /// The agent's last reported health (spool and sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<throughline_shared::message::AgentHealth>,
    pub last_message: Option<DateTime<Utc>>,
    pub last_seq: Option<u64>,
    pub seq_missing: u64,
    /// Times the agent's numbering started afresh (a jump of `seq` beyond
    /// `ingest.max_seq_jump`, up or down).
    pub seq_epochs: u64,
    pub messages: u64,
    pub duplicates: u64,
}

impl LiveState {
    pub fn asset_view(&self, a: &AssetLive) -> AssetView {
        let reg = a.registration.as_ref();
        AssetView {
            site: a.site.clone(),
            asset: a.asset.clone(),
            registered: reg.is_some(),
            name: reg.and_then(|r| r.name.clone()),
            kind: reg.map(|r| r.kind),
            group: reg.map(|r| r.group.clone()),
            rated_capacity: reg.map(|r| r.rated_capacity),
            rated_unit: reg.map(|r| r.kind.rate_unit()),
            output_unit: reg.map(|r| r.kind.output_unit()),
            agent: a.agent.clone(),
            agent_online: a.agent.as_ref().and_then(|id| self.agents.get(id)).and_then(|g| g.online),
            last_sample_ts: a.last_ts,
            state: a.state,
            state_since: a.state_since,
            reason: a.reason.clone(),
            output_counter: a.output_counter,
            output_total: a.output_total,
            rate_per_hour: a.rate_per_hour().map(|r| (r * 1000.0).round() / 1000.0),
            rate_window_secs: self.rate_window.num_seconds(),
            load_kw: a.load_kw,
            samples: a.samples,
            late_samples: a.late_samples,
            counter_resets: a.counter_resets,
        }
    }

    pub fn agent_view(&self, g: &AgentLive) -> AgentView {
        AgentView {
            agent: g.agent.clone(),
            site: g.site.clone(),
            online: g.online,
            software: g.software.clone(),
            health: g.health.clone(),
            last_message: g.last_message,
            last_seq: g.seq.max(),
            seq_missing: g.seq.missing(),
            seq_epochs: g.seq_epochs,
            messages: g.messages,
            duplicates: g.duplicates,
        }
    }
}

#[cfg(test)]
mod tests;
