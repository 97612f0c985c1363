//! Per-asset history in one-minute slots of event time: output, seconds in
//! each state, load. Updated incrementally by each sample (the interval since
//! the previous sample is attributed to the previous state and load, the
//! output increase spread over it), queried by the balance engine for "output
//! made in this bucket", "rate while running" and "availability".
//!
//! # Gaps
//! An interval longer than [`MAX_ATTRIBUTION_SECS`] is a gap: only its last
//! `MAX_ATTRIBUTION_SECS` are filled (with the earlier state and load, and
//! the whole output increase of the interval); the time before stays
//! without slots, "no data", like the time before an asset's first sample.
//! So one sample costs at most 11 slots whatever the time since the one
//! before: an agent whose clock said 1970 and then the right time, or one
//! silent for a year, makes a handful of minutes, not a row per minute.
//! The output is not lost, and it lands where a clock that jumped forward
//! (the usual cause of a long gap) produced it: just before the new sample.
//! For an asset that really produced through the silence, the minutes
//! before the new sample show the whole increase, so their rate reads high.
//!
//! Memory is bounded: slots older than the retention are dropped, except
//! those the caller says are not written yet. Every change returns the
//! [`MinuteSpan`] it touched, so whoever writes the slots knows which.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughline_shared::AssetState;

/// Longest interval between two samples attributed whole to the earlier
/// sample's state and load, its output increase spread over it; a longer
/// one is a gap of which only the last `MAX_ATTRIBUTION_SECS` are filled
/// (see the module docs).
pub const MAX_ATTRIBUTION_SECS: f64 = 600.0;

/// One minute of one asset.
///
/// The state seconds (running, idle, setup, maintenance, down, unknown) add
/// up to the time covered by intervals between two samples: `unknown` is
/// time without a known state (before the first state). A gap longer than
/// [`MAX_ATTRIBUTION_SECS`] covers only its last `MAX_ATTRIBUTION_SECS`.
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
/// minute's start (inclusive). The minutes between need not all have been
/// changed, nor exist: a message with samples a year apart spans a year but
/// changes a few minutes at each end. Walk the slots inside a span
/// ([`History::starts_within`]), never each minute of it.
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
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl History {
    /// Attribute `[from, to)` to `state` and `load_kw`, `output` spread
    /// evenly over it; of a longer interval than [`MAX_ATTRIBUTION_SECS`]
    /// only the last `MAX_ATTRIBUTION_SECS`, with all of `output` (at most
    /// 11 minutes, whatever the length). Returns the minutes changed.
    pub fn attribute(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        output: f64,
        state: Option<AssetState>,
        load_kw: Option<f64>,
    ) -> Option<MinuteSpan> {
        self.attribute_signed(from, to, output, state, load_kw, 1.0)
    }

    /// Take back exactly what [`History::attribute`] with the same
    /// arguments added (output, state seconds, load integral; not the
    /// covered span nor the highest load, which only widen): a resent
    /// sample then splits the interval it lies in. Returns the minutes
    /// changed.
    pub fn unattribute(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        output: f64,
        state: Option<AssetState>,
        load_kw: Option<f64>,
    ) -> Option<MinuteSpan> {
        self.attribute_signed(from, to, output, state, load_kw, -1.0)
    }

    fn attribute_signed(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        output: f64,
        state: Option<AssetState>,
        load_kw: Option<f64>,
        sign: f64,
    ) -> Option<MinuteSpan> {
        let output = output * sign;
        let (a, b) = (secs(from), secs(to));
        if b <= a {
            if output != 0.0 {
                let (slot, minute) = self.slot(b);
                slot.output += output;
                return Some(minute);
            }
            return None;
        }
        let mut touched = None;
        // A gap: the time before its last MAX_ATTRIBUTION_SECS has no data.
        let a = a.max(b - MAX_ATTRIBUTION_SECS);
        let span = b - a;
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
            let piece = piece * sign;
            match state {
                Some(AssetState::Running) => slot.running_s += piece,
                Some(AssetState::Idle) => slot.idle_s += piece,
                Some(AssetState::Setup) => slot.setup_s += piece,
                Some(AssetState::Maintenance) => slot.maintenance_s += piece,
                Some(AssetState::Down) => slot.down_s += piece,
                None => slot.unknown_s += piece,
            }
            if let Some(kw) = load_kw {
                slot.load_kws += kw * piece;
                slot.load_s += piece;
                if sign > 0.0 {
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

    /// The minute starts (epoch seconds) of the slots inside `span`, oldest
    /// first: as many as there are slots, however long the span.
    pub fn starts_within(&self, span: MinuteSpan) -> impl Iterator<Item = i64> + '_ {
        self.slots.range(span.first.div_euclid(60)..=span.last.div_euclid(60)).map(|(m, _)| m * 60)
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
    fn a_long_gap_fills_only_its_last_ten_minutes() {
        let mut h = History::default();
        let span = h.attribute(t(0, 0), t(60, 0), 600.0, Some(AssetState::Running), Some(5.0)).unwrap();
        assert_eq!((span.first, span.last), (t(50, 0).timestamp(), t(59, 0).timestamp()));
        assert_eq!(h.len(), 10, "08:50 .. 08:59, nothing before");
        assert!((h.output_between(t(0, 0), t(60, 0)) - 600.0).abs() < 1e-6, "no output lost");
        assert!((h.output_between(t(50, 0), t(60, 0)) - 600.0).abs() < 1e-6, "all of it at the end");
        assert!((h.running_between(t(0, 0), t(60, 0)) - MAX_ATTRIBUTION_SECS).abs() < 1e-6);
        let unknown: f64 = h.minutes().map(|(_, m)| m.unknown_s).sum();
        assert_eq!(unknown, 0.0, "the gap is no data, not unknown seconds");
        assert!(h.minute(t(49, 0).timestamp()).is_none());
        let loaded: f64 = h.minutes().map(|(_, m)| m.load_s).sum();
        assert!((loaded - MAX_ATTRIBUTION_SECS).abs() < 1e-6);
        // Not aligned to minutes: the last 600 s touch 11 of them.
        let mut h = History::default();
        h.attribute(t(0, 0), t(60, 30), 60.0, None, None);
        assert_eq!(h.len(), 11);
        assert!((h.output_between(t(0, 0), t(61, 0)) - 60.0).abs() < 1e-9);
        let unknown: f64 = h.minutes().map(|(_, m)| m.unknown_s).sum();
        assert!((unknown - MAX_ATTRIBUTION_SECS).abs() < 1e-9, "no state yet: unknown, 600 s only");
        // Up to the limit the whole interval counts, as before.
        let mut h = History::default();
        h.attribute(t(0, 0), t(10, 0), 10.0, Some(AssetState::Down), None);
        assert_eq!(h.len(), 10);
        assert!((h.down_between(t(0, 0), t(10, 0)) - 600.0).abs() < 1e-9);
        assert!((h.output_between(t(0, 0), t(1, 0)) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_cost_of_a_sample_does_not_grow_with_the_gap() {
        let now = t(0, 0);
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        for (from, what) in [
            (epoch, "1970"),
            (now - Duration::days(365), "a year"),
            (now - Duration::days(2), "two days"),
            (now - Duration::minutes(11), "eleven minutes"),
        ] {
            let mut h = History::default();
            h.note_sample(from);
            let started = std::time::Instant::now();
            let span = h.attribute(from, now, 1234.0, Some(AssetState::Running), Some(3.0)).unwrap();
            h.note_sample(now);
            let took = started.elapsed();
            assert!(h.len() <= 12, "{what}: {} minutes", h.len());
            assert!(h.starts_within(span).count() <= 11, "{what}");
            assert!(took < std::time::Duration::from_secs(1), "{what}: {took:?}");
            assert!((h.output_between(from, now + Duration::minutes(1)) - 1234.0).abs() < 1e-6, "{what}");
            assert!((h.running_between(from, now) - MAX_ATTRIBUTION_SECS).abs() < 1e-6, "{what}");
        }
        // A span from 1970 to now over two slots walks two slots.
        let mut h = History::default();
        let a = h.note_sample(epoch);
        let b = h.note_sample(now);
        assert_eq!(h.starts_within(a.join(b)).collect::<Vec<_>>(), [0, now.timestamp()]);
    }

    #[test]
    fn prune_keeps_memory_bounded() {
        let mut h = History::default();
        for m in 0..100 {
            let span = h.attribute(t(m, 0), t(m + 1, 0), 1.0, Some(AssetState::Running), None).unwrap();
            assert_eq!((span.first, span.last), (t(m, 0).timestamp(), t(m, 0).timestamp()));
        }
        let span = h.attribute(t(100, 30), t(103, 0), 3.0, None, None).unwrap();
        assert_eq!(h.starts_within(span).collect::<Vec<_>>(), [100, 101, 102].map(|m| t(m, 0).timestamp()));
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
