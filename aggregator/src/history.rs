//! Per-asset history in one-minute slots of event time: output, seconds in
//! each state, load. Updated incrementally by each sample (the interval since
//! the previous sample is attributed to the previous state and load, the
//! output increase spread over it), queried by the balance engine for "output
//! made in this bucket", "rate while running" and "availability".
//!
//! Memory is bounded: slots older than the retention are dropped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughline_shared::AssetState;

/// Longest interval between two samples whose time is attributed to the
/// earlier sample's state and load; beyond it the asset's state is unknown
/// (the agent was silent) and only the output increase is spread.
pub const MAX_ATTRIBUTION_SECS: f64 = 600.0;

/// One minute of one asset.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Minute {
    pub output: f64,
    pub running_s: f64,
    pub down_s: f64,
    pub planned_s: f64,
    pub idle_s: f64,
    /// Highest load seen in the minute, kW.
    pub load_max_kw: f64,
    /// Integral of load over the minute, kW x s (mean = this / load_s).
    pub load_kws: f64,
    pub load_s: f64,
    /// Part of the minute with data, seconds since the minute's start
    /// (output is spread over this span, not the whole minute).
    pub covered_from: f64,
    pub covered_to: f64,
}

/// The minute slots of one asset.
#[derive(Debug, Default, Clone)]
pub struct History {
    slots: BTreeMap<i64, Minute>,
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl History {
    /// Attribute `[from, to)`: `output` spread evenly; state and load time
    /// only for the last `MAX_ATTRIBUTION_SECS` of it.
    pub fn attribute(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        output: f64,
        state: Option<AssetState>,
        load_kw: Option<f64>,
    ) {
        let (a, b) = (secs(from), secs(to));
        if b <= a {
            if output > 0.0 {
                self.slot(b).output += output;
            }
            return;
        }
        let span = b - a;
        let known_from = (b - MAX_ATTRIBUTION_SECS).max(a);
        let mut t = a;
        while t < b {
            let minute = (t / 60.0).floor();
            let end = ((minute + 1.0) * 60.0).min(b);
            let piece = end - t;
            let slot =
                self.slots.entry(minute as i64).or_insert(Minute { covered_from: 60.0, ..Minute::default() });
            slot.output += output * piece / span;
            slot.covered_from = slot.covered_from.min(t - minute * 60.0);
            slot.covered_to = slot.covered_to.max(end - minute * 60.0);
            let known = end - t.max(known_from);
            if known > 0.0 {
                match state {
                    Some(AssetState::Running) => slot.running_s += known,
                    Some(AssetState::Down) => slot.down_s += known,
                    Some(AssetState::Setup | AssetState::Maintenance) => slot.planned_s += known,
                    Some(AssetState::Idle) => slot.idle_s += known,
                    None => {}
                }
                if let Some(kw) = load_kw {
                    slot.load_kws += kw * known;
                    slot.load_s += known;
                    slot.load_max_kw = slot.load_max_kw.max(kw);
                }
            }
            t = end;
        }
    }

    /// Note a load reading at an instant (for the minute's maximum).
    pub fn note_load(&mut self, at: DateTime<Utc>, kw: f64) {
        let slot = self.slot(secs(at));
        slot.load_max_kw = slot.load_max_kw.max(kw);
    }

    fn slot(&mut self, t: f64) -> &mut Minute {
        let minute = (t / 60.0).floor();
        let at = t - minute * 60.0;
        let slot =
            self.slots.entry(minute as i64).or_insert(Minute { covered_from: 60.0, ..Minute::default() });
        slot.covered_from = slot.covered_from.min(at);
        slot.covered_to = slot.covered_to.max(at);
        slot
    }

    /// Drop slots before `before`.
    pub fn prune(&mut self, before: DateTime<Utc>) {
        let keep = (secs(before) / 60.0).floor() as i64;
        self.slots = self.slots.split_off(&keep);
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
            h.attribute(t(m, 0), t(m + 1, 0), 1.0, Some(AssetState::Running), None);
        }
        h.prune(t(90, 0));
        assert_eq!(h.len(), 10);
        assert!((h.output_between(t(0, 0), t(200, 0)) - 10.0).abs() < 1e-9);
    }
}
