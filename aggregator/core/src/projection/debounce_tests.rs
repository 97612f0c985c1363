//! The gap debounce against live state built from real samples: one line
//! (1 piece/s while running) over an 8-hour shift, each message evaluated
//! as the alert task would (`conditions_in` -> `apply_scoped`), event time
//! from the samples. `alert_after_secs` is the default 120. A stop is
//! projected back after the median of the line's earlier stops
//! ([`crate::stops`]): only a stop without history, or one that outlasts
//! its history, projects zero for the rest of the bucket.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration};
use throughline_shared::{AssetState, Sample};

use super::*;
use crate::alert::book::AlertBook;
use crate::alert::AlertChange;
use crate::testkit::{reg, t0, tel};

/// Seconds between samples.
const STEP: i64 = 10;
/// The shift: one bucket of 8 h from [`t0`].
const SHIFT: i64 = 8 * 3600;
use AssetState::{Down, Running};

fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

/// Samples of line `a` every [`STEP`] s: 15 minutes running before the
/// shift (so it has a rate), then `segments` of (seconds, state) from
/// [`t0`], then one running sample closing the last segment.
fn samples(segments: &[(i64, AssetState)]) -> Vec<Sample> {
    let mut states = Vec::new();
    let mut ts = -900;
    states.extend((0..90).map(|i| (ts + i * STEP, Running)));
    ts = 0;
    for &(secs, state) in segments {
        states.extend((0..secs / STEP).map(|i| (ts + i * STEP, state)));
        ts += secs;
    }
    states.push((ts, Running));
    let mut output = 0.0;
    let mut prev: Option<(i64, AssetState)> = None;
    states
        .into_iter()
        .map(|(s, state)| {
            if let Some((p, Running)) = prev {
                output += (s - p) as f64;
            }
            prev = Some((s, state));
            Sample {
                output: Some(output),
                state: Some(state),
                reason: (state == Down).then(|| "jam".into()),
                ..Sample::at(at(s))
            }
        })
        .collect()
}

/// What the book did over one delivery.
#[derive(Debug, Default)]
struct Outcome {
    /// Schedule alerts opened: (key, event time when opened).
    opened: Vec<(String, Option<DateTime<Utc>>)>,
    /// Their summaries when opened.
    summaries: Vec<String>,
    /// Keys of schedule alerts unresolved at the end.
    unresolved: BTreeSet<String>,
    debounced: usize,
}

/// Deliver `samples` in messages of `per_message` samples, each evaluated
/// once it is applied, against a shift bucket of `demand` pieces.
fn deliver(samples: &[Sample], per_message: usize, demand: f64) -> Outcome {
    deliver_evaluating_from(samples, per_message, demand, -SHIFT)
}

/// [`deliver`], evaluating only the messages that end at or after `from`
/// (seconds after [`t0`]): the history before it is only applied.
fn deliver_evaluating_from(samples: &[Sample], per_message: usize, demand: f64, from: i64) -> Outcome {
    let assets = vec![reg("l1")];
    let group = GroupConfig::with_defaults("g", AssetKind::Line);
    assert_eq!(group.alert_after_secs, 120);
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    let p = Planner::new(&assets, vec![group], windows);
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let forecasts = vec![ForecastRow {
        group: "g".into(),
        start: at(0),
        end: at(SHIFT),
        demand,
        unit: Unit::Pieces,
        uplift_pct: 0.0,
    }];
    let groups = BTreeSet::from(["g".to_string()]);
    let keys = p.scope_keys(&groups);
    let mut book = AlertBook::default();
    let mut out = Outcome::default();
    for (seq, chunk) in samples.chunks(per_message).enumerate() {
        let now = chunk.last().unwrap().ts;
        st.apply_telemetry(&tel("l1", seq as u64 + 1, chunk.to_vec()), now);
        if now - t0() < Duration::seconds(from) {
            continue;
        }
        let conditions = p.conditions_in(&st, &forecasts, &book, now, Scope::Groups(&groups));
        let ch = book.apply_scoped(conditions, now, |k| keys.contains(k), |a| can_judge(&st, a));
        out.debounced += ch.debounced.get(&AlertKind::Schedule).copied().unwrap_or(0);
        for e in ch.events.iter().filter(|e| e.alert.kind == AlertKind::Schedule) {
            if e.event == AlertChange::Opened {
                out.opened.push((e.alert.key.to_string(), e.alert.event_time));
                out.summaries.push(e.alert.summary.clone());
            }
        }
    }
    out.unresolved =
        book.unresolved().filter(|a| a.kind == AlertKind::Schedule).map(|a| a.key.to_string()).collect();
    out
}

/// Demand the line covers with room to spare (80 % of a full shift).
const COVERED: f64 = 0.8 * SHIFT as f64;
/// Demand it cannot make even without a stop (110 %).
const SHORT: f64 = 1.1 * SHIFT as f64;

fn key() -> String {
    format!("schedule:g:{}", t0().timestamp())
}

/// Running until `from`, down for each `(secs, state)` after, running to
/// the end of the shift.
fn shift_with(from: i64, middle: &[(i64, AssetState)]) -> Vec<Sample> {
    let mut segments = vec![(from, Running)];
    segments.extend_from_slice(middle);
    let used: i64 = segments.iter().map(|s| s.0).sum();
    segments.push((SHIFT - 600 - used, Running));
    samples(&segments)
}

/// `n` stops of 20 s, one every 12 minutes.
fn micro_stop_segments(n: usize) -> Vec<(i64, AssetState)> {
    (0..n).flat_map(|_| [(680, Running), (20, Down)]).collect()
}

/// 40 stops of 20 s, one every 12 minutes, over the first 8 h less 10 min.
fn micro_stops() -> Vec<Sample> {
    samples(&micro_stop_segments(40))
}

/// 20 micro-stops, a stop of 15 minutes (at 14600 s), 15 micro-stops.
fn micro_stops_and_a_long_one() -> Vec<Sample> {
    let mut segments = micro_stop_segments(20);
    segments.extend([(600, Running), (900, Down)]);
    segments.extend(micro_stop_segments(15));
    samples(&segments)
}

/// (case, samples, demand, alerts opened at (s after t0), debounced, what
/// the opened alerts' summaries say)
type Case = (&'static str, Vec<Sample>, f64, Vec<i64>, usize, &'static str);

#[test]
fn a_stop_opens_an_alert_only_once_it_has_held_for_alert_after_secs() {
    let cases: Vec<Case> = vec![
        ("no stop", shift_with(3600, &[]), COVERED, vec![], 0, ""),
        // Without history a stop projects zero: a condition, debounced.
        ("a 60 s stop, no history", shift_with(3600, &[(60, Down)]), COVERED, vec![], 1, ""),
        ("a 110 s stop, no history", shift_with(3600, &[(110, Down)]), COVERED, vec![], 1, ""),
        (
            "a 200 s stop without history opens at first seen + 120 s, projected at zero",
            shift_with(3600, &[(200, Down)]),
            COVERED,
            vec![3720],
            0,
            "Assumes l1 down (jam) since 09:00 UTC, no repair history: projected at zero for the rest of the bucket.",
        ),
        // Each later 100 s jam is expected back after the 100 s of those
        // before: not even a condition.
        (
            "five 100 s jams: only the first, without history, is a condition",
            shift_with(3600, &[(100, Down), (600, Running)].repeat(5)),
            COVERED,
            vec![],
            1,
            "",
        ),
        (
            "on 60 s, off, on 70 s: the second is back by the first's length until it ends",
            shift_with(3600, &[(60, Down), (30, Running), (70, Down)]),
            COVERED,
            vec![],
            1,
            "",
        ),
        (
            "on 60 s, off, on 100 s: past 60 s the second projects zero and waits from its own start",
            shift_with(3600, &[(60, Down), (30, Running), (100, Down)]),
            COVERED,
            vec![],
            2,
            "",
        ),
        (
            "40 micro-stops of 20 s while the line covers demand: only the first is a condition",
            micro_stops(),
            COVERED,
            vec![],
            1,
            "",
        ),
        // The 15-minute stop outlasts the 20 micro-stops before it after
        // 20 s: zero for the rest, one alert 120 s after it began, resolved
        // when the line runs; the micro-stops after it are back in 20 s.
        (
            "micro-stops and a 15-minute stop: one alert, naming the assumption",
            micro_stops_and_a_long_one(),
            COVERED,
            vec![14_600 + 120],
            1,
            "Assumes l1 down (jam) since 12:03 UTC, down longer than any of its 20 jam stops in the last 8 h: projected at zero for the rest of the bucket.",
        ),
    ];
    for (case, s, demand, opened_at, debounced, says) in cases {
        let out = deliver(&s, 1, demand);
        let want: Vec<(String, Option<DateTime<Utc>>)> =
            opened_at.iter().map(|&secs| (key(), Some(at(secs)))).collect();
        assert_eq!(out.opened, want, "{case}: {out:?}");
        assert_eq!(out.debounced, debounced, "{case}: {out:?}");
        assert!(out.summaries.iter().all(|s| s.ends_with(says)), "{case}: {:?}", out.summaries);
        assert!(out.unresolved.is_empty(), "{case}: resolved once the line runs: {out:?}");
    }
}

/// Five jams of 4, 5, 5, 5 and 6 minutes in the first hours of the shift,
/// then, at 7200 s, one of `last` seconds.
fn five_minute_jams_then(last: i64) -> Vec<Sample> {
    let mut segments = Vec::new();
    for jam in [240, 300, 300, 300, 360] {
        segments.extend([(900, Running), (jam, Down)]);
    }
    let used: i64 = segments.iter().map(|s| s.0).sum();
    segments.extend([(7200 - used, Running), (last, Down), (600, Running)]);
    samples(&segments)
}

/// Demand the line covers with its jams, not with a stop projected at zero
/// for the rest of the shift.
const COVERED_WITH_JAMS: f64 = 0.7 * SHIFT as f64;

#[test]
fn a_stop_is_projected_back_after_the_median_of_the_lines_own_stops() {
    // The history is applied; the jam at 7200 s is evaluated as it goes.
    // (case, its length, opened at (s after it began), what the alert says)
    let cases: [(&str, i64, Vec<i64>, &str); 3] = [
        ("a 4-minute jam is back at 5 min: nothing opens (zero would at 120 s)", 240, vec![], ""),
        ("a 6-minute jam: back by the longest, at 6 min", 360, vec![], ""),
        (
            "a 10-minute jam outlasts every jam after 6 min and opens at once",
            600,
            vec![370],
            "down longer than any of its 5 jam stops in the last 8 h: projected at zero for the rest of the bucket.",
        ),
    ];
    for (case, last, opened_at, says) in cases {
        let out = deliver_evaluating_from(&five_minute_jams_then(last), 1, COVERED_WITH_JAMS, 7200);
        let want: Vec<(String, Option<DateTime<Utc>>)> =
            opened_at.iter().map(|&secs| (key(), Some(at(7200 + secs)))).collect();
        assert_eq!(out.opened, want, "{case}: {out:?}");
        assert_eq!(out.debounced, 0, "{case}: {out:?}");
        assert!(out.summaries.iter().all(|s| s.ends_with(says)), "{case}: {:?}", out.summaries);
    }
}

#[test]
fn a_down_line_with_five_minute_jams_is_planned_back_five_minutes_after_it_stopped() {
    let assets = vec![reg("l1")];
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    let p = Planner::new(&assets, vec![GroupConfig::with_defaults("g", AssetKind::Line)], windows);
    // Everything up to `secs` after the jam at 7200 s began.
    let plan_at = |secs: i64| {
        let mut st = LiveState::new(&assets, Duration::seconds(300));
        let s: Vec<Sample> =
            five_minute_jams_then(600).into_iter().filter(|s| s.ts <= at(7200 + secs)).collect();
        st.apply_telemetry(&tel("l1", 1, s), at(7200 + secs));
        let f = ForecastRow {
            group: "g".into(),
            start: at(0),
            end: at(SHIFT),
            demand: COVERED_WITH_JAMS,
            unit: Unit::Pieces,
            uplift_pct: 0.0,
        };
        let b = p.balances(&st, &[f], None, None, None, at(7200 + secs)).remove(0);
        b.assets[0].clone()
    };
    use crate::stops::ReturnRule;
    // (down for, expected back after it began, rule, stops the median is of)
    for (down_for, back, rule, stops) in [
        (60, Some(300), ReturnRule::ReasonMedian, 5),
        (250, Some(300), ReturnRule::ReasonMedian, 4),
        (330, Some(360), ReturnRule::ReasonMedian, 1),
        (370, None, ReturnRule::Exceeded, 0),
    ] {
        let a = plan_at(down_for);
        let basis = a.return_basis.as_ref().expect("down: a basis");
        assert_eq!(a.expected_return, back.map(|s| at(7200 + s)), "down {down_for} s: {a:?}");
        assert_eq!((basis.rule, basis.stops, basis.down_since), (rule, stops, at(7200)), "{a:?}");
        // From its return on it makes its rate while running (1 piece/s)
        // times its availability, for the rest of the shift.
        let hours = back.map_or(0.0, |s| (SHIFT - 7200 - s) as f64 / 3600.0);
        assert!((a.projected - a.rate * hours).abs() < 1e-6, "{a:?}");
        assert!(back.is_none() || (a.rate - 3600.0 * 0.8).abs() < 3600.0 * 0.1, "{a:?}");
    }
}

#[test]
fn micro_stops_open_at_most_one_alert_when_the_line_cannot_cover_demand() {
    let out = deliver(&micro_stops(), 1, SHORT);
    assert_eq!(out.opened.len(), 1, "{out:?}");
    // Short from the first look at the bucket (15 min before it starts,
    // as the next bucket): opened 120 s later and held by hysteresis.
    assert_eq!(out.opened[0], (key(), Some(at(-900 + 120))), "{out:?}");
    assert_eq!(out.unresolved, BTreeSet::from([key()]), "{out:?}");
}

#[test]
fn one_evaluation_or_many_open_the_same_alerts() {
    // Micro-stops and a flap, then a stop still under way when the data
    // ends: live (one message per sample), as a backlog in chunks, or as
    // one backfill evaluated once, the same alert is open at the end.
    let mut segments = vec![(1800, Running)];
    for _ in 0..5 {
        segments.extend([(20, Down), (600, Running)]);
    }
    segments.extend([(60, Down), (30, Running), (70, Down), (600, Running), (300, Down)]);
    let mut s = samples(&segments);
    s.pop(); // the stop has not ended
    let live = deliver(&s, 1, COVERED);
    assert_eq!(live.opened.len(), 1, "{live:?}");
    for per_message in [7, 60, s.len()] {
        let backlog = deliver(&s, per_message, COVERED);
        assert_eq!(
            (backlog.opened.iter().map(|o| &o.0).collect::<Vec<_>>(), &backlog.unresolved),
            (live.opened.iter().map(|o| &o.0).collect::<Vec<_>>(), &live.unresolved),
            "{per_message} samples a message: {backlog:?} vs live {live:?}"
        );
        // Never earlier in event time than live data opened it.
        assert!(backlog.opened[0].1 >= live.opened[0].1, "{backlog:?}");
        // Stops that began and ended inside one message were never seen:
        // fewer, never more, conditions counted.
        assert!(backlog.debounced <= live.debounced, "{backlog:?} vs {live:?}");
    }
    // The first micro-stop (no history yet) and the flap's 60 s (longer
    // than the micro-stops); the 70 s is back by the 60 s until it ends.
    assert_eq!(live.debounced, 2, "{live:?}");
}
