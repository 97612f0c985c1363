//! Live state of every asset and agent, updated from validated messages.
//! Pure: no I/O, no clock of its own; everything runs in event time (the
//! samples' `ts`), so a replayed backlog gives the same state as live data.
//!
//! # Counters and clocks as gateways have them
//!
//! - **Output counter.** Output is the rise of the cumulative counter
//!   between samples. A lower reading is a *reset* (PLC restart, register
//!   rollover: the new value counts as output since zero) only when it is
//!   near zero: at most [`StateSettings::counter_reset_fraction`] of the
//!   last good reading. Any other dip is a *glitch* (float jitter, a stale
//!   register read): no output, the last good reading stays the one the
//!   next reading is compared with, and it is counted
//!   ([`AssetLive::counter_glitches`], [`LiveEvent::CounterGlitch`]).
//! - **Implausible steps.** For a registered asset, a rise (or the value
//!   after a reset) larger than its rated capacity could make since the
//!   last good reading, times [`StateSettings::implausible_step_factor`]
//!   (elapsed time taken as at least [`MIN_PLAUSIBLE_ELAPSED_SECS`]), is
//!   *implausible* (a forged or corrupt value, a register read as another
//!   type): no output, and, as for a glitch, the last good reading stays
//!   the one the next is compared with ([`AssetLive::implausible_steps`],
//!   [`LiveEvent::ImplausibleStep`]). A counter that really jumped (a
//!   replaced PLC, a preset register) keeps reporting from its new level:
//!   the [`REBASE_AFTER`]th reading in a row there, each step between them
//!   plausible, becomes the new base ([`AssetLive::counter_rebases`],
//!   [`LiveEvent::CounterRebase`]), adding the output made at the new level
//!   but none for the jump. An unregistered asset has no rated capacity:
//!   its steps are not checked.
//! - **Sample time.** A sample older than its asset's last one is *late*
//!   (ignored for live state and history) when its envelope fills a gap of
//!   its agent's `seq` (a replay, a redelivery) or arrived with a later
//!   sample of the same envelope at or past that last time (only out of
//!   order). In an envelope with the agent's next new `seq` it is the
//!   agent's clock *stepping back* (NTP correcting a fast clock): applied,
//!   see [`AssetLive::last_ts`] and [`AssetLive::newest_ts`], and counted
//!   on the agent ([`AgentLive::clock_steps`]).
//! - **Resent samples.** The interval between an asset's samples on either
//!   side of a gap in its agent's `seq` is remembered ([`GapInterval`], the
//!   latest [`MAX_GAP_INTERVALS`]). A late fill whose samples all lie
//!   inside one, with counters between its ends (an envelope resent after
//!   a broker lost it), is *filled in* rather than late: what the interval
//!   gave the history is taken back and given again sample by sample, so
//!   the minutes of the gap get the states, loads and output the samples
//!   say ([`LiveEvent::Filled`]). Live state (last time, counter, state)
//!   stays where the newer samples put it, and the asset's output total is
//!   the same. Resends come oldest first, so each fills the start of what
//!   is left of the interval.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Bound;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use throughline_shared::codec::{StatusMessage, Telemetry};
use throughline_shared::message::SeqRange;
use throughline_shared::{AgentId, AssetId, AssetState, RejectReason, Sample, SiteId};

use crate::history::{History, MinuteSpan};
use crate::model::{AssetConfig, AssetKind};
use crate::stops::{Stop, StopLog};

/// Most gap ranges remembered per agent; beyond it the oldest are forgotten
/// (a message from a forgotten gap then counts as a duplicate).
const MAX_MISSING_RANGES: usize = 1024;
/// Most lost ranges remembered per agent (the highest); the count of lost
/// numbers goes on beyond them.
pub const MAX_LOST_RANGES: usize = 32;
/// Most skip announcements remembered per agent (the latest).
const MAX_ANNOUNCED: usize = 4;
/// Most points kept in an asset's rate window.
const MAX_WINDOW_POINTS: usize = 4096;
/// Gap intervals remembered per asset (the latest).
pub const MAX_GAP_INTERVALS: usize = 4;
/// Largest jump of an agent's `seq`, up or down, still taken as the same
/// numbering (`ingest.max_seq_jump`): a day of envelopes of a busy agent
/// (ten a second), far below where a fresh numbering lands (our agent's,
/// after a lost state file, is the clock in milliseconds: years away).
pub const DEFAULT_MAX_SEQ_JUMP: u64 = 1_000_000;
/// How long ended stops are kept without [`LiveState::with_stop_window`]:
/// the default availability window.
pub const DEFAULT_STOP_WINDOW_HOURS: i64 = 8;
/// Shortest time since the last good reading an output step is judged
/// over: a step of up to this long at the rated capacity (times the
/// factor) is always plausible, so two readings a few milliseconds apart,
/// or a clock that stepped back, do not make an ordinary step implausible.
pub const MIN_PLAUSIBLE_ELAPSED_SECS: i64 = 60;
/// Readings in a row at a new counter level (each a plausible step from the
/// one before) after which the level is the counter's new base: a counter
/// that really jumped is followed within three readings, and a single
/// forged or corrupt reading, or two, never moves the base.
pub const REBASE_AFTER: u32 = 3;

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
///
/// A missing range can end two more ways: the agent announces it never
/// used those numbers (a block reserved before a crash, [`SeqTracker::excuse`]:
/// neither missing nor lost), or it was asked for and not resent
/// ([`SeqTracker::declare_lost`]: moved to the lost ranges, and counted).
/// A lost number that arrives after all is still taken, as a late fill.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    pub(crate) max: Option<u64>,
    /// Missing ranges, start -> end (inclusive).
    pub(crate) missing: BTreeMap<u64, u64>,
    /// Ranges reported lost, start -> end (inclusive); the highest
    /// [`MAX_LOST_RANGES`].
    pub(crate) lost: BTreeMap<u64, u64>,
    /// Numbers reported lost and not arrived since (forgotten ranges included).
    pub(crate) lost_count: u64,
    /// The agent's latest skip announcements: a gap that appears later
    /// leaves them out.
    pub(crate) announced: VecDeque<SeqRange>,
    /// Numbers left out of gaps (or taken out of them) as announced skips.
    pub(crate) excused: u64,
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
            let mut skipped = 0;
            if seq - max > 1 {
                let gap = SeqRange { from: max + 1, to: seq - 1 };
                for (from, to) in without(gap, &self.announced) {
                    self.missing.insert(from, to);
                    skipped += to - from + 1;
                }
                self.excused += gap.count() - skipped;
                while self.missing.len() > MAX_MISSING_RANGES {
                    self.missing.pop_first();
                }
            }
            self.max = Some(seq);
            return SeqOutcome::Ahead { skipped };
        }
        // Below the highest: new only if inside a missing (or lost) range,
        // or so far below that it is another numbering.
        if take(&mut self.missing, seq) {
            return SeqOutcome::LateFill;
        }
        if take(&mut self.lost, seq) {
            self.lost_count = self.lost_count.saturating_sub(1);
            return SeqOutcome::LateFill;
        }
        if max - seq > max_jump {
            return self.new_epoch(seq, max);
        }
        SeqOutcome::Duplicate
    }

    fn new_epoch(&mut self, seq: u64, previous: u64) -> SeqOutcome {
        self.max = Some(seq);
        self.missing.clear();
        self.lost.clear();
        SeqOutcome::NewEpoch { previous }
    }

    /// The agent announced it never used the numbers of `range`: they are
    /// not missing now, nor when a gap over them appears later. Returns how
    /// many were missing.
    pub fn excuse(&mut self, range: SeqRange) -> u64 {
        if !self.announced.contains(&range) {
            self.announced.push_back(range);
            if self.announced.len() > MAX_ANNOUNCED {
                self.announced.pop_front();
            }
        }
        let n = remove_range(&mut self.missing, range).iter().map(|(a, b)| b - a + 1).sum();
        self.excused += n;
        n
    }

    /// The numbers of `range` still missing are given up: reported lost
    /// (a resend did not bring them). Returns how many.
    pub fn declare_lost(&mut self, range: SeqRange) -> u64 {
        let mut n = 0;
        for (from, to) in remove_range(&mut self.missing, range) {
            self.lost.insert(from, to);
            n += to - from + 1;
        }
        while self.lost.len() > MAX_LOST_RANGES {
            self.lost.pop_first();
        }
        self.lost_count += n;
        n
    }

    /// The ranges still missing, lowest first.
    pub fn missing_ranges(&self) -> impl Iterator<Item = SeqRange> + '_ {
        self.missing.iter().map(|(&from, &to)| SeqRange { from, to })
    }

    /// Numbers reported lost (and not arrived since).
    pub fn lost(&self) -> u64 {
        self.lost_count
    }

    /// The lost ranges remembered, lowest first.
    pub fn lost_ranges(&self) -> impl Iterator<Item = SeqRange> + '_ {
        self.lost.iter().map(|(&from, &to)| SeqRange { from, to })
    }

    /// Numbers not counted as missing because the agent announced it
    /// skipped them.
    pub fn excused(&self) -> u64 {
        self.excused
    }

    /// Highest sequence number seen.
    pub fn max(&self) -> Option<u64> {
        self.max
    }

    /// Whether a number between `lo` and `hi` (both excluded) is missing.
    pub fn missing_between(&self, lo: u64, hi: u64) -> bool {
        self.missing.range(..hi).next_back().is_some_and(|(_, &end)| end > lo)
    }

    /// Numbers below the highest not seen yet.
    pub fn missing(&self) -> u64 {
        self.missing.iter().map(|(s, e)| e - s + 1).sum()
    }
}

/// Take `seq` out of the ranges of `map` (start -> end, inclusive,
/// disjoint); whether it was in one.
fn take(map: &mut BTreeMap<u64, u64>, seq: u64) -> bool {
    let Some((&start, &end)) = map.range(..=seq).next_back().filter(|&(_, &end)| seq <= end) else {
        return false;
    };
    map.remove(&start);
    if start < seq {
        map.insert(start, seq - 1);
    }
    if seq < end {
        map.insert(seq + 1, end);
    }
    true
}

/// Remove `range` from the ranges of `map`; the pieces removed, lowest first.
fn remove_range(map: &mut BTreeMap<u64, u64>, range: SeqRange) -> Vec<(u64, u64)> {
    let meets: Vec<(u64, u64)> = map
        .range(..=range.to)
        .rev()
        .take_while(|&(_, &end)| end >= range.from)
        .map(|(&s, &e)| (s, e))
        .collect();
    let mut removed = Vec::with_capacity(meets.len());
    for (start, end) in meets.into_iter().rev() {
        map.remove(&start);
        if start < range.from {
            map.insert(start, range.from - 1);
        }
        if end > range.to {
            map.insert(range.to + 1, end);
        }
        removed.push((start.max(range.from), end.min(range.to)));
    }
    removed
}

/// The parts of `gap` outside every range of `skips`, lowest first.
fn without(gap: SeqRange, skips: &VecDeque<SeqRange>) -> Vec<(u64, u64)> {
    let mut parts = vec![(gap.from, gap.to)];
    for s in skips {
        parts = parts
            .into_iter()
            .flat_map(|(a, b)| {
                if s.to < a || s.from > b {
                    return vec![(a, b)];
                }
                let mut keep = Vec::new();
                if a < s.from {
                    keep.push((a, s.from - 1));
                }
                if s.to < b {
                    keep.push((s.to + 1, b));
                }
                keep
            })
            .collect();
    }
    parts
}

/// How live state reads what agents send (the `[ingest]` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateSettings {
    /// Window over which an asset's output rate is computed.
    pub rate_window: Duration,
    /// A counter lower than the last good reading is a reset only when it
    /// is at most this share of it (0 < f < 1); any other dip is a glitch.
    pub counter_reset_fraction: f64,
    /// A registered asset's output step is implausible when larger than its
    /// rated capacity over the time since the last good reading (at least
    /// [`MIN_PLAUSIBLE_ELAPSED_SECS`]) times this (>= 1).
    pub implausible_step_factor: f64,
}

impl StateSettings {
    /// 1 %: a counter at 100000 that reads 1000 or less has restarted.
    pub const DEFAULT_COUNTER_RESET_FRACTION: f64 = 0.01;
    /// Ten times the rated capacity: far above any real line or feeder
    /// running fast, far below a forged or misread counter.
    pub const DEFAULT_IMPLAUSIBLE_STEP_FACTOR: f64 = 10.0;

    /// `rate_window`, and the default reset fraction and step factor.
    pub fn new(rate_window: Duration) -> StateSettings {
        StateSettings {
            rate_window,
            counter_reset_fraction: Self::DEFAULT_COUNTER_RESET_FRACTION,
            implausible_step_factor: Self::DEFAULT_IMPLAUSIBLE_STEP_FACTOR,
        }
    }
}

/// The interval of an asset's history between its samples on either side
/// of a gap in its agent's `seq`: samples may be missing there, and may
/// still come, resent (see the module docs). Recorded only for a plain
/// interval (forward in time, not over time covered before a clock step,
/// counters at both ends continuing or none at either).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GapInterval {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The last good counter reading at each end (`None`: no counter).
    pub from_counter: Option<f64>,
    pub to_counter: Option<f64>,
    /// The output, state and load the interval gave the history.
    pub output: f64,
    pub state: Option<AssetState>,
    pub load_kw: Option<f64>,
    /// The `seq` of the envelopes at its ends: a fill lies between them.
    pub seq_from: u64,
    pub seq_to: u64,
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
    /// Server-clock time the last message with its samples was received (a
    /// duplicate is not counted). A gateway sending its backlog keeps it
    /// current while the asset's own watermark is still behind: that is how
    /// the projection tells an asset that is behind but delivering from one
    /// that is silent.
    pub last_message: Option<DateTime<Utc>>,
    /// Time of the last applied sample: the next interval of history starts
    /// here. It goes back when the agent's clock steps back, so the samples
    /// after the step continue from it.
    pub last_ts: Option<DateTime<Utc>>,
    /// Newest sample time applied: the asset's own watermark. It never goes
    /// back, so what was decided by it stays decided after a clock step: a
    /// bucket closed for the asset stays closed, and its data stays current
    /// while it keeps reporting. The history's minutes up to it are covered
    /// by the samples that brought it there, so time re-covered after a step
    /// adds output to them, not state seconds.
    pub newest_ts: Option<DateTime<Utc>>,
    /// Earliest sample time applied (the history starts there).
    pub first_ts: Option<DateTime<Utc>>,
    pub state: Option<AssetState>,
    pub state_since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// Last good raw output counter (a glitch or an implausible step does
    /// not replace it).
    pub output_counter: Option<f64>,
    /// Sample time of the last good reading (the latest one at that
    /// value): the next step is judged over the time since.
    pub output_counter_ts: Option<DateTime<Utc>>,
    /// Output since this aggregator first saw the asset, counter resets included.
    pub output_total: f64,
    pub counter_resets: u64,
    /// Counter readings below the last good one but not near zero: skipped
    /// for output.
    pub counter_glitches: u64,
    /// Readings whose step from the last good one exceeds what the rated
    /// capacity could make (by the factor): skipped for output.
    pub implausible_steps: u64,
    /// Times a counter that jumped and stayed at its new level was taken as
    /// the new base (no output for the jump).
    pub counter_rebases: u64,
    /// Implausible readings in a row at one new level, not yet enough for
    /// a rebase.
    pub pending_rebase: Option<PendingRebase>,
    pub load_kw: Option<f64>,
    pub samples: u64,
    /// Samples older than the last applied, from a late fill of a `seq` gap
    /// or out of order in their envelope (ignored for live state).
    pub late_samples: u64,
    /// The `seq` of the envelope that brought the last sample applied in
    /// order (not a fill).
    pub last_seq: Option<u64>,
    /// Intervals spanning a gap of the agent's `seq`, oldest first.
    pub(crate) gaps: VecDeque<GapInterval>,
    pub(crate) window: VecDeque<(DateTime<Utc>, f64)>,
    /// Per-minute history in event time (for balances).
    pub history: History,
    /// Its recent `down` stops, each noted when it ends: what a stop under
    /// way is projected to last ([`crate::stops`]).
    pub stops: StopLog,
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
            last_message: None,
            last_ts: None,
            newest_ts: None,
            first_ts: None,
            state: None,
            state_since: None,
            reason: None,
            output_counter: None,
            output_counter_ts: None,
            output_total: 0.0,
            counter_resets: 0,
            counter_glitches: 0,
            implausible_steps: 0,
            counter_rebases: 0,
            pending_rebase: None,
            load_kw: None,
            samples: 0,
            late_samples: 0,
            last_seq: None,
            gaps: VecDeque::new(),
            window: VecDeque::new(),
            history: History::default(),
            stops: StopLog::default(),
        }
    }

    /// Output per hour over the rate window (pieces/h, or kWh/h = mean kW).
    /// Whether `agent` may report this asset: one its registration names,
    /// or, if it names none, the agent that owns it (the first heard, or
    /// the one an admin moved it to).
    pub fn may_report(&self, agent: &AgentId) -> bool {
        match self.registration.as_ref().filter(|r| !r.agents.is_empty()) {
            Some(r) => r.agents.contains(agent),
            None => self.agent.as_ref().is_none_or(|owner| owner == agent),
        }
    }

    pub fn rate_per_hour(&self) -> Option<f64> {
        let (t0, v0) = self.window.front()?;
        let (t1, v1) = self.window.back()?;
        let secs = (*t1 - *t0).num_milliseconds() as f64 / 1000.0;
        (secs >= 1.0).then(|| (v1 - v0) / secs * 3600.0)
    }

    /// Apply one sample, widening `touched` by the history minutes it
    /// changed. `may_step`: if the sample is older than the last one, the
    /// agent's clock stepped back (else it is late). A `down` stop it ends
    /// is noted in [`AssetLive::stops`], which keeps `stop_window` of them.
    /// `gap`: the `seq` of the envelopes before and with this sample when
    /// numbers between them are missing: the interval up to it is
    /// remembered as a [`GapInterval`].
    fn apply(
        &mut self,
        s: &Sample,
        settings: &StateSettings,
        stop_window: Duration,
        may_step: bool,
        gap: Option<(u64, u64)>,
        touched: &mut Option<MinuteSpan>,
    ) -> SampleOutcome {
        let step_back = match self.last_ts {
            Some(last) if s.ts < last && !may_step => {
                self.late_samples += 1;
                return SampleOutcome::Late;
            }
            Some(last) if s.ts < last => Some(last - s.ts),
            _ => None,
        };
        self.samples += 1;
        let (prev_counter, prev_state, prev_load) = (self.output_counter, self.state, self.load_kw);
        let prev_ts = self.last_ts.replace(s.ts);
        let covered_to = self.newest_ts;
        if covered_to.is_none_or(|n| s.ts > n) {
            self.newest_ts = Some(s.ts);
        }
        if self.first_ts.is_none_or(|f| s.ts < f) {
            self.first_ts = Some(s.ts);
        }
        if step_back.is_some() {
            // The window's points are on the clock before the step: the rate
            // starts again from this sample.
            self.window.clear();
        }
        let mut counter = CounterReading::Continued;
        let mut delta = 0.0;
        if let Some(out) = s.output {
            (counter, delta) = self.read_counter(out, s.ts, settings);
            self.output_total += delta;
            self.window.push_back((s.ts, self.output_total));
            let horizon = s.ts - settings.rate_window;
            while self.window.len() > MAX_WINDOW_POINTS
                || self.window.front().is_some_and(|(t, _)| *t < horizon)
            {
                self.window.pop_front();
            }
        }
        if let Some(prev_ts) = prev_ts {
            self.attribute(prev_ts, s.ts, covered_to, delta, touched);
        }
        // A plain interval over a gap of the seq: remembered for a fill.
        let ends = match (prev_counter, s.output, counter) {
            (Some(c), Some(o), CounterReading::Continued) => Some((Some(c), Some(o))),
            (Some(c), None, _) => Some((Some(c), Some(c))),
            (None, None, _) => Some((None, None)),
            _ => None,
        };
        if let (Some((seq_from, seq_to)), Some(from), Some((from_counter, to_counter))) = (gap, prev_ts, ends)
        {
            if from < s.ts && step_back.is_none() && covered_to.is_none_or(|c| c <= from) {
                self.gaps.push_back(GapInterval {
                    from,
                    to: s.ts,
                    from_counter,
                    to_counter,
                    output: delta,
                    state: prev_state,
                    load_kw: prev_load,
                    seq_from,
                    seq_to,
                });
                if self.gaps.len() > MAX_GAP_INTERVALS {
                    self.gaps.pop_front();
                }
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
                if let (Some(AssetState::Down), Some(since)) = (self.state, self.state_since) {
                    // Its length in event time; none after a clock step
                    // back to before it began.
                    let secs = (s.ts - since).num_milliseconds() as f64 / 1000.0;
                    if secs > 0.0 {
                        self.stops
                            .record(Stop { reason: self.reason.clone(), start: since, secs }, stop_window);
                    }
                }
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
        SampleOutcome::Applied { counter, changed, step_back }
    }

    /// Fill in the samples of a late fill (envelope `seq`) if they all lie
    /// inside one remembered gap interval, in time order, with counters
    /// between its ends; `false` (nothing changed) if they do not.
    fn fill(&mut self, seq: u64, samples: &[Sample], touched: &mut Option<MinuteSpan>) -> bool {
        let Some(i) = self.gaps.iter().position(|g| {
            g.seq_from < seq
                && seq < g.seq_to
                && samples.windows(2).all(|w| w[0].ts <= w[1].ts)
                && samples.iter().all(|s| g.from < s.ts && s.ts < g.to)
                && fits_counters(g, samples)
        }) else {
            return false;
        };
        let g = self.gaps[i];
        if let Some(span) = self.history.unattribute(g.from, g.to, g.output, g.state, g.load_kw) {
            MinuteSpan::extend(touched, span);
        }
        let (mut at, mut counter, mut state, mut load) = (g.from, g.from_counter, g.state, g.load_kw);
        for s in samples {
            let delta = match (counter, s.output) {
                (Some(c), Some(o)) => o - c,
                _ => 0.0,
            };
            if let Some(span) = self.history.attribute(at, s.ts, delta, state, load) {
                MinuteSpan::extend(touched, span);
            }
            if let Some(kw) = s.load_kw {
                MinuteSpan::extend(touched, self.history.note_load(s.ts, kw));
            }
            MinuteSpan::extend(touched, self.history.note_sample(s.ts));
            self.samples += 1;
            at = s.ts;
            counter = s.output.filter(|_| counter.is_some()).or(counter);
            state = s.state.or(state);
            load = s.load_kw.or(load);
        }
        let rest = match (counter, g.to_counter) {
            (Some(c), Some(t)) => t - c,
            _ => 0.0,
        };
        if let Some(span) = self.history.attribute(at, g.to, rest, state, load) {
            MinuteSpan::extend(touched, span);
        }
        self.gaps[i] =
            GapInterval { from: at, from_counter: counter, output: rest, state, load_kw: load, ..g };
        true
    }

    /// Read an output counter at `ts` against the last good reading: what
    /// it was, and the output it adds.
    fn read_counter(
        &mut self,
        out: f64,
        ts: DateTime<Utc>,
        settings: &StateSettings,
    ) -> (CounterReading, f64) {
        let Some(prev) = self.output_counter else {
            self.take_counter(out, ts);
            return (CounterReading::Continued, 0.0);
        };
        let (reading, step) = if out >= prev {
            (CounterReading::Continued, out - prev)
        } else if out <= settings.counter_reset_fraction * prev {
            // Near zero: the counter restarted from zero.
            (CounterReading::Reset, out)
        } else {
            // Jitter or a stale read: the next reading continues from the
            // last good one.
            self.pending_rebase = None;
            self.counter_glitches += 1;
            return (CounterReading::Glitch, 0.0);
        };
        let since = self.output_counter_ts.unwrap_or(ts);
        if self.plausible(step, since, ts, settings) {
            self.pending_rebase = None;
            if reading == CounterReading::Reset {
                self.counter_resets += 1;
            }
            self.take_counter(out, ts);
            return (reading, step);
        }
        // More than the asset could have made: skipped, unless the counter
        // has stayed at this new level for long enough to be believed.
        let pending = self
            .pending_rebase
            .filter(|p| out >= p.level && self.plausible(out - p.level, p.ts, ts, settings));
        match pending {
            Some(p) if p.readings + 1 >= REBASE_AFTER => {
                self.pending_rebase = None;
                self.counter_rebases += 1;
                self.take_counter(out, ts);
                // What it made at the new level since the first reading
                // there; nothing for the jump.
                (CounterReading::Rebase, out - p.first)
            }
            Some(p) => {
                self.pending_rebase = Some(PendingRebase { level: out, ts, readings: p.readings + 1, ..p });
                self.implausible_steps += 1;
                (CounterReading::Implausible, 0.0)
            }
            None => {
                self.pending_rebase = Some(PendingRebase { first: out, level: out, ts, readings: 1 });
                self.implausible_steps += 1;
                (CounterReading::Implausible, 0.0)
            }
        }
    }

    /// Take `out` at `ts` as the last good reading.
    fn take_counter(&mut self, out: f64, ts: DateTime<Utc>) {
        self.output_counter = Some(out);
        self.output_counter_ts = Some(ts);
    }

    /// Whether the asset could make `step` between `since` and `ts`: at most
    /// its rated capacity times the factor over that time, taken as at least
    /// [`MIN_PLAUSIBLE_ELAPSED_SECS`]. Always, for an asset without a rated
    /// capacity (unregistered).
    fn plausible(
        &self,
        step: f64,
        since: DateTime<Utc>,
        ts: DateTime<Utc>,
        settings: &StateSettings,
    ) -> bool {
        let Some(rated) = self.registration.as_ref().map(|r| r.rated_capacity).filter(|r| *r > 0.0) else {
            return true;
        };
        let secs = ((ts - since).num_milliseconds() as f64 / 1000.0).max(MIN_PLAUSIBLE_ELAPSED_SECS as f64);
        step <= rated * secs / 3600.0 * settings.implausible_step_factor
    }

    /// Attribute the interval `[from, to)` since the previous sample to the
    /// history: it belongs to the previous state and load, and `output` is
    /// spread over it. After a clock step back (`to` before `from`) the
    /// output goes to the minute of `to`, the sample's own time on the
    /// corrected clock, and no time is attributed. The part of an interval
    /// before `covered_to` (the newest sample before this one) is in the
    /// history already, from the samples before the step: it gets its share
    /// of the output but no state seconds, so no minute counts them twice.
    fn attribute(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        covered_to: Option<DateTime<Utc>>,
        output: f64,
        touched: &mut Option<MinuteSpan>,
    ) {
        let (state, load) = (self.state, self.load_kw);
        let Some(split) = covered_to.filter(|c| from < *c && from < to).map(|c| c.min(to)) else {
            if let Some(span) = self.history.attribute(from, to, output, state, load) {
                MinuteSpan::extend(touched, span);
            }
            return;
        };
        let (a, c, b) = (from.timestamp_millis(), split.timestamp_millis(), to.timestamp_millis());
        let covered_output = output * (c - a) as f64 / (b - a) as f64;
        // Minute by minute, as an instant in each (output only).
        let mut t = a;
        while t < c {
            let end = ((t.div_euclid(60_000) + 1) * 60_000).min(c);
            let at = DateTime::from_timestamp_millis(t).expect("between two sample times");
            let share = covered_output * (end - t) as f64 / (c - a) as f64;
            if let Some(span) = self.history.attribute(at, at, share, None, None) {
                MinuteSpan::extend(touched, span);
            }
            t = end;
        }
        if split < to {
            if let Some(span) = self.history.attribute(split, to, output - covered_output, state, load) {
                MinuteSpan::extend(touched, span);
            }
        }
    }
}

/// Whether the counters of `samples` lie between the ends of `g`, in order
/// (an interval without counters takes samples without output only).
fn fits_counters(g: &GapInterval, samples: &[Sample]) -> bool {
    let (Some(mut c), Some(to)) = (g.from_counter, g.to_counter) else {
        return samples.iter().all(|s| s.output.is_none());
    };
    samples.iter().filter_map(|s| s.output).all(|o| {
        let ok = c <= o && o <= to;
        c = o;
        ok
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleOutcome {
    /// Applied; `changed`: the state changed; `step_back`: how far the
    /// agent's clock stepped back before it.
    Applied {
        counter: CounterReading,
        changed: bool,
        step_back: Option<Duration>,
    },
    Late,
}

/// What a sample's output counter was, against the last good reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CounterReading {
    /// Higher or the same, or no counter.
    Continued,
    /// Lower and near zero: restarted.
    Reset,
    /// Lower, not near zero: skipped.
    Glitch,
    /// A step more than the asset could make: skipped.
    Implausible,
    /// The last of [`REBASE_AFTER`] readings in a row at a new level: the
    /// new base.
    Rebase,
}

/// Readings in a row at a new counter level, each a plausible step from the
/// one before, that the last good reading is too far from: after
/// [`REBASE_AFTER`] of them the level is the new base.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingRebase {
    /// The first reading at the new level.
    pub first: f64,
    /// The latest reading there, and its time.
    pub level: f64,
    pub ts: DateTime<Utc>,
    /// Readings at the level so far.
    pub readings: u32,
}

/// Why [`LiveState::move_asset`] did not move an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveError {
    /// Neither registered nor heard from.
    Unknown,
    /// Its registration names the agents allowed to report it (these).
    Configured(Vec<AgentId>),
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
    /// Times the agent's clock stepped back (NTP correcting it), seen as
    /// samples older than their asset's last one in an envelope with the
    /// agent's next new `seq`. Each of its assets sees the same step; it
    /// counts once.
    pub clock_steps: u64,
    /// The largest of those steps, seconds.
    pub largest_clock_step_secs: f64,
    /// The latest step: an asset's step that overlaps it is the same one.
    pub last_clock_step: Option<ClockStep>,
    /// Times its numbering started afresh ([`SeqOutcome::NewEpoch`]).
    pub seq_epochs: u64,
    /// Messages that filled a gap ([`SeqOutcome::LateFill`]): a resend
    /// request being answered shows here.
    pub seq_late_fills: u64,
}

/// A step back of an agent's clock, as its assets' sample times show it:
/// from the last sample before it back to the first one after it (widened
/// by each asset that sees the same step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockStep {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl AgentLive {
    /// Note that one of the agent's assets went back from `from` to `to`;
    /// true if that is a step not seen before.
    fn note_clock_step(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let secs = (from - to).num_milliseconds() as f64 / 1000.0;
        self.largest_clock_step_secs = self.largest_clock_step_secs.max(secs);
        match &mut self.last_clock_step {
            Some(last) if to <= last.from && last.to <= from => {
                last.from = last.from.max(from);
                last.to = last.to.min(to);
                false
            }
            _ => {
                self.last_clock_step = Some(ClockStep { from, to });
                self.clock_steps += 1;
                true
            }
        }
    }
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
    /// Sample `index` is older than its asset's last one, in a late fill of
    /// a `seq` gap or out of order in its envelope: real data with its own
    /// time, but not for live state or history.
    Late { index: usize },
    /// Sample `index` is older than its asset's last one, in a late fill of
    /// a `seq` gap, and lies in the interval over that gap: filled into the
    /// history (not live state), see the module docs.
    Filled { index: usize },
    /// Sample `index` brought an output counter lower than the last, near
    /// zero: taken as a counter reset.
    CounterReset { index: usize },
    /// Sample `index` brought an output counter lower than the last good
    /// one but not near zero: skipped for output.
    CounterGlitch { index: usize },
    /// Sample `index` brought an output counter step larger than its
    /// registered asset could make in the time since the last good reading
    /// (by `ingest.implausible_step_factor`): skipped for output.
    ImplausibleStep { index: usize },
    /// Sample `index` was the last of [`REBASE_AFTER`] readings in a row at
    /// a new level too far from the last good one: the counter's new base
    /// (no output for the jump).
    CounterRebase { index: usize },
    /// Sample `index` is `back_ms` older than its asset's last one, in an
    /// envelope with its agent's next `seq`: the agent's clock stepped
    /// back. Applied, not late.
    ClockStep { index: usize, back_ms: i64 },
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
    pub counter_glitches: u64,
    /// Readings skipped as a step larger than the asset could make.
    pub implausible_steps: u64,
    /// Counters taken at a new level after a jump ([`LiveEvent::CounterRebase`]).
    pub counter_rebases: u64,
    pub late_samples: u64,
    /// Samples of a late fill filled into the history of the gap they lie in.
    pub filled_samples: u64,
    /// Steps back of the agent's clock not seen before (by another of its
    /// assets): the agent's `clock_steps` grew by this.
    pub clock_steps: u64,
    pub new_unregistered_asset: bool,
    /// Refused after decoding: `not_owner` (the agent may not report this
    /// asset) or `unregistered_limit` (a new agent or asset beyond
    /// [`LiveState::with_max_unregistered`]). Nothing of it was applied; the
    /// `seq` of an agent already known is taken, so it is not asked for again.
    pub refused: Option<RejectReason>,
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
    settings: StateSettings,
    /// Largest `seq` jump still taken as the same numbering.
    max_seq_jump: u64,
    /// How long an asset's ended stops are kept ([`AssetLive::stops`]).
    stop_window: Duration,
    /// Latest sample time seen from any asset: "now" in event time.
    pub(crate) watermark: Option<DateTime<Utc>>,
    /// History read back from the store for assets not registered, handed
    /// to each when it reports again.
    pub(crate) restored: BTreeMap<(SiteId, AssetId), History>,
    /// [`AssetIx`] -> ids, [`AgentIx`] -> id.
    asset_ids: Vec<(SiteId, AssetId)>,
    agent_ids: Vec<AgentId>,
    /// Agents a registration names (assets' `agents`, broker logins), and
    /// those first heard with a registered asset.
    known_agents: HashSet<AgentId>,
    /// Most agents no registration names, and most unregistered assets, kept.
    max_unregistered: usize,
    /// Agents and assets held that no registration names.
    unregistered_agents: usize,
    unregistered_assets: usize,
    /// An agent that reports no registered asset and that no registration
    /// names gets no `offline` alert once silent this long.
    unregistered_expiry: Duration,
}

/// Default of [`LiveState::with_unregistered_expiry`]: one hour.
pub const DEFAULT_UNREGISTERED_EXPIRY_SECS: i64 = 3600;

impl LiveState {
    /// Live state of the `registered` assets with the default settings but
    /// for the rate window.
    pub fn new(registered: &[AssetConfig], rate_window: Duration) -> LiveState {
        LiveState::with_settings(registered, StateSettings::new(rate_window))
    }

    /// Live state of the `registered` assets, reading samples by `settings`.
    pub fn with_settings(registered: &[AssetConfig], settings: StateSettings) -> LiveState {
        let mut st = LiveState {
            assets: BTreeMap::new(),
            agents: BTreeMap::new(),
            settings,
            max_seq_jump: DEFAULT_MAX_SEQ_JUMP,
            stop_window: Duration::hours(DEFAULT_STOP_WINDOW_HOURS),
            watermark: None,
            restored: BTreeMap::new(),
            asset_ids: Vec::new(),
            agent_ids: Vec::new(),
            known_agents: registered.iter().flat_map(|a| a.agents.iter().cloned()).collect(),
            max_unregistered: usize::MAX,
            unregistered_agents: 0,
            unregistered_assets: 0,
            unregistered_expiry: Duration::seconds(DEFAULT_UNREGISTERED_EXPIRY_SECS),
        };
        for a in registered {
            if st.asset(&a.site, &a.id).is_none() {
                st.insert_asset(&a.site, &a.id, Some(a.clone()));
            }
        }
        st
    }

    /// Keep at most `max` agents that no registration names, and at most
    /// `max` unregistered assets: telemetry (or a status) that would add
    /// one more is refused as `unregistered_limit`.
    pub fn with_max_unregistered(mut self, max: usize) -> LiveState {
        self.max_unregistered = max;
        self
    }

    /// Agents named elsewhere (the embedded broker's logins) count as
    /// registered: not capped, and their `offline` alerts do not expire.
    pub fn with_known_agents(mut self, agents: impl IntoIterator<Item = AgentId>) -> LiveState {
        self.known_agents.extend(agents);
        self
    }

    /// See [`DEFAULT_UNREGISTERED_EXPIRY_SECS`].
    pub fn with_unregistered_expiry(mut self, expiry: Duration) -> LiveState {
        self.unregistered_expiry = expiry;
        self
    }

    /// How long a never-registered agent's `offline` alert holds.
    pub fn unregistered_expiry(&self) -> Duration {
        self.unregistered_expiry
    }

    /// Whether a registration names `agent`.
    pub fn is_known_agent(&self, agent: &AgentId) -> bool {
        self.known_agents.contains(agent)
    }

    /// Unregistered agents and assets held now.
    pub fn unregistered(&self) -> (usize, usize) {
        (self.unregistered_agents, self.unregistered_assets)
    }

    /// Whether a status of `agent` would be refused as `unregistered_limit`.
    pub fn refuses_agent(&self, agent: &AgentId) -> bool {
        !self.agents.contains_key(agent)
            && !self.known_agents.contains(agent)
            && self.unregistered_agents >= self.max_unregistered
    }

    /// Move `asset` to `agent`: from now on only `agent` may report it.
    /// Only for an asset whose registration names no agents (those are
    /// moved in the config). Returns the agent that owned it.
    pub fn move_asset(
        &mut self,
        site: &SiteId,
        asset: &AssetId,
        agent: AgentId,
    ) -> Result<Option<AgentId>, MoveError> {
        let a = self.asset_mut(site, asset).ok_or(MoveError::Unknown)?;
        if let Some(r) = a.registration.as_ref().filter(|r| !r.agents.is_empty()) {
            return Err(MoveError::Configured(r.agents.clone()));
        }
        Ok(a.agent.replace(agent))
    }

    /// Take a `seq` more than `max_jump` away from an agent's highest as a
    /// new numbering ([`SeqOutcome::NewEpoch`]); [`DEFAULT_MAX_SEQ_JUMP`]
    /// otherwise.
    pub fn with_max_seq_jump(mut self, max_jump: u64) -> LiveState {
        self.max_seq_jump = max_jump;
        self
    }

    /// Keep each asset's stops for `window` after they end (the projection
    /// reads them over its availability window, so at least that long);
    /// [`DEFAULT_STOP_WINDOW_HOURS`] otherwise.
    pub fn with_stop_window(mut self, window: Duration) -> LiveState {
        self.stop_window = window;
        self
    }

    pub(crate) fn insert_asset(&mut self, site: &SiteId, asset: &AssetId, registration: Option<AssetConfig>) {
        if registration.is_none() {
            self.unregistered_assets += 1;
        }
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

    pub(crate) fn asset_mut(&mut self, site: &SiteId, asset: &AssetId) -> Option<&mut AssetLive> {
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

    pub(crate) fn agent_mut(&mut self, agent: &AgentId, site: &SiteId) -> &mut AgentLive {
        // Known agents (every message but the first) without cloning the id.
        if self.agents.contains_key(agent) {
            return self.agents.get_mut(agent).expect("just found");
        }
        let ix = AgentIx(self.agent_ids.len() as u32);
        if !self.known_agents.contains(agent) {
            self.unregistered_agents += 1;
        }
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
            clock_steps: 0,
            largest_clock_step_secs: 0.0,
            last_clock_step: None,
            seq_epochs: 0,
            seq_late_fills: 0,
        })
    }

    /// Apply a telemetry message received at `now` (wall clock, only used
    /// for "last heard"); what it changed is in the outcome's `events`.
    pub fn apply_telemetry(&mut self, t: &Telemetry, now: DateTime<Utc>) -> TelemetryOutcome {
        let mut out = TelemetryOutcome::default();
        let env = &t.envelope;
        let max_seq_jump = self.max_seq_jump;
        // Refusals: a new agent or asset beyond the cap, or an asset this
        // agent may not report. Nothing is kept of a new agent refused.
        // An agent that reports a registered asset it may report is the
        // plant's, named or not: not capped.
        let agent_held = self.agents.contains_key(&env.agent);
        let target = self.asset(&t.site, &t.asset);
        let registered_target = target.is_some_and(|a| a.registration.is_some());
        let refused = match target {
            Some(a) if !a.may_report(&env.agent) => Some(RejectReason::NotOwner),
            None if self.unregistered_assets >= self.max_unregistered => {
                Some(RejectReason::UnregisteredLimit)
            }
            _ if !registered_target && self.refuses_agent(&env.agent) => {
                Some(RejectReason::UnregisteredLimit)
            }
            _ => None,
        };
        if refused.is_some() && !agent_held {
            out.refused = refused;
            return out;
        }
        if registered_target && !agent_held && !self.known_agents.contains(&env.agent) {
            self.known_agents.insert(env.agent.clone());
        }
        let agent = self.agent_mut(&env.agent, &t.site);
        agent.last_message = Some(now);
        out.agent = Some(agent.ix);
        // Only an envelope with a new number can bring a clock step: a late
        // fill was made before what it follows.
        let mut ahead = false;
        match agent.seq.observe(env.seq, max_seq_jump) {
            SeqOutcome::Duplicate => {
                agent.duplicates += 1;
                out.duplicate = true;
                return out;
            }
            SeqOutcome::Ahead { skipped } => {
                out.seq_skipped = skipped;
                ahead = true;
            }
            SeqOutcome::LateFill => {
                agent.seq_late_fills += 1;
                out.late_fill = true;
            }
            SeqOutcome::NewEpoch { previous } => {
                agent.seq_epochs += 1;
                out.seq_epoch = Some(previous);
            }
            SeqOutcome::First => {}
        }
        if refused.is_some() {
            // The number is taken (no gap asked for); nothing else is.
            out.refused = refused;
            return out;
        }
        agent.messages += 1;
        if agent.online.is_none() {
            agent.online = Some(true);
            out.agent_came_online = true;
        }
        let settings = self.settings;
        let stop_window = self.stop_window;
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
        asset.last_message = Some(now);
        if asset.agent.as_ref() != Some(&env.agent) {
            asset.agent = Some(env.agent.clone());
        }
        let edge_before = asset.alert_edge_inputs();
        let mut touched = None;
        if out.late_fill && asset.fill(env.seq, &env.samples, &mut touched) {
            let n = env.samples.len();
            out.samples += n as u64;
            out.filled_samples += n as u64;
            out.events.extend((0..n).map(|index| LiveEvent::Filled { index }));
            out.minutes = touched;
            out.history_minutes = asset.history.len();
            return out;
        }
        // The first sample's interval spans numbers still missing: remember it.
        let gap = asset
            .last_seq
            .filter(|_| ahead)
            .filter(|&p| self.agents.get(&env.agent).is_some_and(|g| g.seq.missing_between(p, env.seq)))
            .map(|p| (p, env.seq));
        if !out.late_fill {
            asset.last_seq = Some(env.seq);
        }
        // Newest sample time after each index, built if a sample is behind.
        let mut later: Option<Vec<Option<DateTime<Utc>>>> = None;
        for (index, s) in env.samples.iter().enumerate() {
            out.samples += 1;
            let last = asset.last_ts;
            // Behind the last sample in an envelope ahead in seq: a clock
            // step, unless a later sample here is back at or past the last
            // time (then it is only out of order).
            let may_step = ahead
                && last.is_some_and(|last| {
                    s.ts < last && {
                        let later = later.get_or_insert_with(|| newest_after(&env.samples));
                        later[index].is_none_or(|t| t < last)
                    }
                });
            let gap = gap.filter(|_| index == 0);
            match asset.apply(s, &settings, stop_window, may_step, gap, &mut touched) {
                SampleOutcome::Applied { counter, changed, step_back } => {
                    if let (Some(back), Some(from)) = (step_back, last) {
                        out.events.push(LiveEvent::ClockStep { index, back_ms: back.num_milliseconds() });
                        let agent = self.agents.get_mut(&env.agent).expect("noted above");
                        if agent.note_clock_step(from, s.ts) {
                            out.clock_steps += 1;
                        }
                    }
                    match counter {
                        CounterReading::Continued => {}
                        CounterReading::Reset => {
                            out.counter_resets += 1;
                            out.events.push(LiveEvent::CounterReset { index });
                        }
                        CounterReading::Glitch => {
                            out.counter_glitches += 1;
                            out.events.push(LiveEvent::CounterGlitch { index });
                        }
                        CounterReading::Implausible => {
                            out.implausible_steps += 1;
                            out.events.push(LiveEvent::ImplausibleStep { index });
                        }
                        CounterReading::Rebase => {
                            out.counter_rebases += 1;
                            out.events.push(LiveEvent::CounterRebase { index });
                        }
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
        // The asset's newest time, not its last: a clock step back does not
        // move event time back.
        if let Some(newest) = asset.newest_ts {
            if self.watermark.is_none_or(|w| newest > w) {
                self.watermark = Some(newest);
            }
        }
        out
    }

    /// Apply an agent status (birth or last will). Returns the previous
    /// online flag.
    pub fn apply_status(&mut self, m: &StatusMessage, now: DateTime<Utc>) -> Option<bool> {
        if self.refuses_agent(&m.agent) {
            return None;
        }
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
        if let Some(skipped) = m.status.seq_skipped {
            agent.seq.excuse(skipped);
        }
        agent.last_message = Some(now);
        before
    }

    /// Give up on the numbers of `range` still missing from `agent`: they
    /// were asked for and not resent. Returns how many are reported lost.
    pub fn declare_lost(&mut self, agent: &AgentId, range: SeqRange) -> u64 {
        self.agents.get_mut(agent).map_or(0, |g| g.seq.declare_lost(range))
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

    /// The assets in (site, asset) order that come after `after` (the last
    /// one of the previous page), of `site` only when it is given. A page
    /// starts where the previous one ended (a map range, not a walk from
    /// the first asset), and one site is one map entry.
    pub fn assets_after<'a>(
        &'a self,
        site: Option<&'a SiteId>,
        after: Option<&'a (SiteId, AssetId)>,
    ) -> impl Iterator<Item = &'a AssetLive> + 'a {
        let from = match (site, after.map(|(s, _)| s)) {
            (Some(f), Some(s)) => Bound::Included(f.max(s)),
            (Some(f), None) | (None, Some(f)) => Bound::Included(f),
            (None, None) => Bound::Unbounded,
        };
        self.assets
            .range::<SiteId, _>((from, Bound::Unbounded))
            .take_while(move |(s, _)| site.is_none_or(|f| f == *s))
            .flat_map(move |(s, map)| {
                let lo = match after {
                    Some((after_site, after_asset)) if after_site == s => Bound::Excluded(after_asset),
                    _ => Bound::Unbounded,
                };
                map.range::<AssetId, _>((lo, Bound::Unbounded)).map(|(_, a)| a)
            })
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentLive> {
        self.agents.values()
    }

    pub fn agent(&self, id: &AgentId) -> Option<&AgentLive> {
        self.agents.get(id)
    }
}

/// For each sample, the newest time among the samples after it.
fn newest_after(samples: &[Sample]) -> Vec<Option<DateTime<Utc>>> {
    let mut out = vec![None; samples.len()];
    let mut newest: Option<DateTime<Utc>> = None;
    for (i, s) in samples.iter().enumerate().rev() {
        out[i] = newest;
        newest = Some(newest.map_or(s.ts, |n| n.max(s.ts)));
    }
    out
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
    pub counter_glitches: u64,
    /// Readings skipped as a step larger than the rated capacity could
    /// make, and times a counter that jumped was taken at its new level.
    pub implausible_steps: u64,
    pub counter_rebases: u64,
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
    /// Numbers below `last_seq` not received yet (asked for again).
    pub seq_missing: u64,
    /// Numbers asked for and not resent: reported lost. A lost number that
    /// arrives after all leaves this count.
    pub seq_lost: u64,
    /// The lost ranges (the highest 32), inclusive.
    pub lost_ranges: Vec<SeqRange>,
    /// Numbers the agent announced it skipped (a block reserved before a
    /// crash): neither missing nor lost.
    pub seq_skipped_announced: u64,
    /// Messages that filled a gap (late, or resent).
    pub seq_late_fills: u64,
    /// Times the agent's numbering started afresh (a jump of `seq` beyond
    /// `ingest.max_seq_jump`, up or down).
    pub seq_epochs: u64,
    pub messages: u64,
    pub duplicates: u64,
    /// Times the agent's clock stepped back (each step once, however many
    /// of its assets saw it), and the largest step in seconds.
    pub clock_steps: u64,
    pub largest_clock_step_secs: f64,
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
            rate_window_secs: self.settings.rate_window.num_seconds(),
            load_kw: a.load_kw,
            samples: a.samples,
            late_samples: a.late_samples,
            counter_resets: a.counter_resets,
            counter_glitches: a.counter_glitches,
            implausible_steps: a.implausible_steps,
            counter_rebases: a.counter_rebases,
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
            seq_lost: g.seq.lost(),
            lost_ranges: g.seq.lost_ranges().collect(),
            seq_skipped_announced: g.seq.excused(),
            seq_late_fills: g.seq_late_fills,
            seq_epochs: g.seq_epochs,
            messages: g.messages,
            duplicates: g.duplicates,
            clock_steps: g.clock_steps,
            largest_clock_step_secs: g.largest_clock_step_secs,
        }
    }
}

#[cfg(test)]
mod tests;
