//! Per-asset history in one-minute slots of event time: output, seconds in
//! each state, load. Updated incrementally by each sample (the interval since
//! the previous sample is attributed to the previous state and load, the
//! output increase spread over it), queried by the balance engine for "output
//! made in this bucket", "rate while running" and "availability".
//!
//! Memory is bounded: slots older than the retention are dropped, except
//! those the caller says are not written yet. Every change returns the
//! [`MinuteSpan`] it touched, so whoever writes the slots knows which.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughline_shared::AssetState;

/// Longest interval between two samples whose time is attributed to the
/// earlier sample's state and load; beyond it the asset's state is unknown
/// (the agent was silent) and only the output increase is spread.
pub const MAX_ATTRIBUTION_SECS: f64 = 600.0;

/// One minute of one asset.
///
/// The state seconds (running, idle, setup, maintenance, down, unknown) add
/// up to the time covered by intervals between two samples: `unknown` is
/// time without a known state (before the first state, or beyond
/// [`MAX_ATTRIBUTION_SECS`] of silence).
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Minute {
    pub output: f64,
    pub running_s: f64,
    pub idle_s: f64,
    pub setup_s: f64,
    pub maintenance_s: f64,
    pub down_s: f64,
    pub unknown_s: f64,
    /// Highest load seen in the minute, kW.
    pub load_max_kw: f64,
    /// Integral of load over the minute, kW x s (mean = this / load_s).
    pub load_kws: f64,
    pub load_s: f64,
    /// Samples stamped in this minute.
    pub samples: u32,
    /// Part of the minute with data, seconds since the minute's start
    /// (output is spread over this span, not the whole minute).
    pub covered_from: f64,
    pub covered_to: f64,
}

impl Minute {
    /// Seconds covered by intervals between samples (all state seconds).
    pub fn covered_s(&self) -> f64 {
        self.running_s + self.idle_s + self.setup_s + self.maintenance_s + self.down_s + self.unknown_s
    }

    /// An empty slot, before any data (the covered span is set by the first).
    fn empty() -> Minute {
        Minute { covered_from: 60.0, ..Minute::default() }
    }
}

/// The minute slots of one asset.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Minute number (epoch seconds / 60) -> slot.
    slots: BTreeMap<i64, Minute>,
}

/// The minutes a change touched, as epoch seconds of the first and last
/// minute's start (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteSpan {
    pub first: i64,
    pub last: i64,
}

impl MinuteSpan {
    fn at(minute: i64) -> MinuteSpan {
        MinuteSpan { first: minute * 60, last: minute * 60 }
    }

    /// The span covering both.
    pub fn join(self, other: MinuteSpan) -> MinuteSpan {
        MinuteSpan { first: self.first.min(other.first), last: self.last.max(other.last) }
    }

    /// Join `other` into `span`.
    pub fn extend(span: &mut Option<MinuteSpan>, other: MinuteSpan) {
        *span = Some(span.map_or(other, |s| s.join(other)));
    }

    /// The minute starts (epoch seconds) of the span, oldest first.
    pub fn starts(self) -> impl Iterator<Item = i64> {
        (self.first.div_euclid(60)..=self.last.div_euclid(60)).map(|m| m * 60)
    }
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl History {
    /// Attribute `[from, to)`: `output` spread evenly; state and load time
    /// only for the last `MAX_ATTRIBUTION_SECS` of it. Returns the minutes
    /// changed.
    pub fn attribute(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        output: f64,
        state: Option<AssetState>,
        load_kw: Option<f64>,
    ) -> Option<MinuteSpan> {
        let (a, b) = (secs(from), secs(to));
        if b <= a {
            if output > 0.0 {
                let (slot, minute) = self.slot(b);
                slot.output += output;
                return Some(minute);
            }
            return None;
        }
        let mut touched = None;
        let span = b - a;
        let known_from = (b - MAX_ATTRIBUTION_SECS).max(a);
        let mut t = a;
        while t < b {
            let minute = (t / 60.0).floor();
            let end = ((minute + 1.0) * 60.0).min(b);
            let piece = end - t;
            MinuteSpan::extend(&mut touched, MinuteSpan::at(minute as i64));
            let slot = self.slots.entry(minute as i64).or_insert_with(Minute::empty);
            slot.output += output * piece / span;
            slot.covered_from = slot.covered_from.min(t - minute * 60.0);
            slot.covered_to = slot.covered_to.max(end - minute * 60.0);
            let known = (end - t.max(known_from)).max(0.0);
            slot.unknown_s += piece - known;
            if known > 0.0 {
                match state {
                    Some(AssetState::Running) => slot.running_s += known,
                    Some(AssetState::Idle) => slot.idle_s += known,
                    Some(AssetState::Setup) => slot.setup_s += known,
                    Some(AssetState::Maintenance) => slot.maintenance_s += known,
                    Some(AssetState::Down) => slot.down_s += known,
                    None => slot.unknown_s += known,
                }
                if let Some(kw) = load_kw {
                    slot.load_kws += kw * known;
                    slot.load_s += known;
                    slot.load_max_kw = slot.load_max_kw.max(kw);
                }
            }
            t = end;
        }
        touched
    }

    /// Note a load reading at an instant (for the minute's maximum).
    pub fn note_load(&mut self, at: DateTime<Utc>, kw: f64) -> MinuteSpan {
        let (slot, minute) = self.slot(secs(at));
        slot.load_max_kw = slot.load_max_kw.max(kw);
        minute
    }

    /// Count a sample stamped at `at`.
    pub fn note_sample(&mut self, at: DateTime<Utc>) -> MinuteSpan {
        let (slot, minute) = self.slot(secs(at));
        slot.samples += 1;
        minute
    }

    fn slot(&mut self, t: f64) -> (&mut Minute, MinuteSpan) {
        let minute = (t / 60.0).floor();
        let at = t - minute * 60.0;
        let slot = self.slots.entry(minute as i64).or_insert_with(Minute::empty);
        slot.covered_from = slot.covered_from.min(at);
        slot.covered_to = slot.covered_to.max(at);
        (slot, MinuteSpan::at(minute as i64))
    }

    /// Drop slots before `before`, except those for which `pending(minute
    /// start in epoch seconds)` holds (not yet written: they go at a later
    /// prune).
    pub fn prune(&mut self, before: DateTime<Utc>, pending: impl Fn(i64) -> bool) {
        let keep = (secs(before) / 60.0).floor() as i64;
        let mut dropped = std::mem::take(&mut self.slots);
        self.slots = dropped.split_off(&keep);
        for (m, slot) in dropped {
            if pending(m * 60) {
                self.slots.insert(m, slot);
            }
        }
    }

    /// The slot of the minute starting at `start` (epoch seconds).
    pub fn minute(&self, start: i64) -> Option<&Minute> {
        self.slots.get(&start.div_euclid(60))
    }

    /// Put back slots read from the store (minute start in epoch seconds,
    /// slot); a minute already held is kept as it is.
    pub fn restore(&mut self, rows: impl IntoIterator<Item = (i64, Minute)>) {
        for (start, slot) in rows {
            self.slots.entry(start.div_euclid(60)).or_insert(slot);
        }
    }

    /// Every slot, as (minute start in epoch seconds, slot), oldest first.
    pub fn minutes(&self) -> impl Iterator<Item = (i64, &Minute)> {
        self.slots.iter().map(|(m, s)| (m * 60, s))
    }

    /// Sum `f(minute)` over `[a, b)`, counting a partly overlapped minute by
    /// its share of the minute's covered span.
    fn sum(&self, a: DateTime<Utc>, b: DateTime<Utc>, f: impl Fn(&Minute) -> f64) -> f64 {
        let (a, b) = (secs(a), secs(b));
        if b <= a {
            return 0.0;
        }
        let first = (a / 60.0).floor() as i64;
        let last = (b / 60.0).ceil() as i64;
        self.slots
            .range(first..last)
            .map(|(m, slot)| {
                let base = *m as f64 * 60.0;
                let (from, to) = (base + slot.covered_from, base + slot.covered_to);
                if a <= from && to <= b {
                    return f(slot);
                }
                let covered = to - from;
                if covered <= 0.0 {
                    // An instant: inside or outside.
                    return if from >= a && from < b { f(slot) } else { 0.0 };
                }
                let overlap = to.min(b) - from.max(a);
                f(slot) * (overlap / covered).clamp(0.0, 1.0)
            })
            .sum()
    }

    /// Output made in `[a, b)`.
    pub fn output_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
        self.sum(a, b, |m| m.output)
    }

    /// Seconds running in `[a, b)`.
    pub fn running_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
        self.sum(a, b, |m| m.running_s)
    }

    /// Seconds down (unplanned) in `[a, b)`.
    pub fn down_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
        self.sum(a, b, |m| m.down_s)
    }

    /// Highest load in `[a, b)` (whole minutes touched).
    pub fn peak_load_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Option<f64> {
        let first = (secs(a) / 60.0).floor() as i64;
        let last = (secs(b) / 60.0).ceil() as i64;
        self.slots.range(first..last).map(|(_, m)| m.load_max_kw).filter(|kw| *kw > 0.0).reduce(f64::max)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(min: i64, sec: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::minutes(min) + Duration::seconds(sec)
    }

    #[test]
    fn spreads_output_and_state_over_minutes() {
        let mut h = History::default();
        // 90 s running from 08:00:30 to 08:02:00, 90 pieces.
        h.attribute(t(0, 30), t(2, 0), 90.0, Some(AssetState::Running), Some(10.0));
        assert!((h.output_between(t(0, 0), t(1, 0)) - 30.0).abs() < 1e-9);
        assert!((h.output_between(t(1, 0), t(2, 0)) - 60.0).abs() < 1e-9);
        assert!((h.output_between(t(0, 0), t(10, 0)) - 90.0).abs() < 1e-9);
        // A bucket edge inside a minute counts the overlapping share.
        assert!((h.output_between(t(1, 30), t(2, 0)) - 30.0).abs() < 1e-9);
        // Only the covered part of a minute counts: 08:00:30-08:01:00 holds
        // all of minute 0's 30 pieces.
        assert!((h.output_between(t(0, 30), t(0, 45)) - 15.0).abs() < 1e-9);
        assert!((h.output_between(t(0, 0), t(0, 30)) - 0.0).abs() < 1e-9);
        assert!((h.running_between(t(0, 0), t(5, 0)) - 90.0).abs() < 1e-9);
        assert_eq!(h.peak_load_between(t(0, 0), t(5, 0)), Some(10.0));
        h.attribute(t(2, 0), t(3, 0), 0.0, Some(AssetState::Down), None);
        assert!((h.down_between(t(0, 0), t(5, 0)) - 60.0).abs() < 1e-9);
    }

    #[test]
    fn long_silence_attributes_output_but_not_state() {
        let mut h = History::default();
        h.attribute(t(0, 0), t(60, 0), 600.0, Some(AssetState::Running), None);
        assert!((h.output_between(t(0, 0), t(60, 0)) - 600.0).abs() < 1e-6);
        assert!((h.running_between(t(0, 0), t(60, 0)) - MAX_ATTRIBUTION_SECS).abs() < 1e-6);
    }

    #[test]
    fn prune_keeps_memory_bounded() {
        let mut h = History::default();
        for m in 0..100 {
            let span = h.attribute(t(m, 0), t(m + 1, 0), 1.0, Some(AssetState::Running), None).unwrap();
            assert_eq!((span.first, span.last), (t(m, 0).timestamp(), t(m, 0).timestamp()));
        }
        let span = h.attribute(t(100, 30), t(103, 0), 3.0, None, None).unwrap();
        assert_eq!(span.starts().collect::<Vec<_>>(), [100, 101, 102].map(|m| t(m, 0).timestamp()));
        // Minutes not yet written stay.
        h.prune(t(90, 0), |_| true);
        assert_eq!(h.len(), 103);
        h.prune(t(90, 0), |start| start == t(5, 0).timestamp());
        assert_eq!(h.len(), 14, "the one pending minute stays");
        h.prune(t(90, 0), |_| false);
        assert_eq!(h.len(), 13);
        assert!((h.output_between(t(0, 0), t(200, 0)) - 13.0).abs() < 1e-9);
    }
}
