use chrono::{Duration, TimeZone};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

fn stop(reason: Option<&str>, start: i64, secs: f64) -> Stop {
    Stop { reason: reason.map(str::to_string), start: at(start), secs }
}

/// A log of stops of `(reason, length in s)`, one an hour up to an hour
/// before [`t0`] + 10 h, so all end in the last 8 h at `at(36_000)`.
fn log(stops: &[(Option<&str>, f64)]) -> StopLog {
    let mut log = StopLog::default();
    for (i, (reason, secs)) in stops.iter().enumerate() {
        log.record(stop(*reason, 3 * 3600 + i as i64 * 600, *secs), Duration::hours(8));
    }
    log
}

const NOW: i64 = 36_000;
const JAM: Option<&str> = Some("jam");

/// (case, history, reason, down for s at NOW, default min, expected back
/// after its start (s; none: zero for the rest), rule, stops, text)
type Case = (
    &'static str,
    Vec<(Option<&'static str>, f64)>,
    Option<&'static str>,
    i64,
    Option<i64>,
    Option<i64>,
    ReturnRule,
    usize,
    &'static str,
);

#[test]
fn the_repair_time_rule_table() {
    let jams = vec![(JAM, 240.0), (JAM, 300.0), (JAM, 300.0), (JAM, 300.0), (JAM, 360.0)];
    let mixed = vec![(JAM, 60.0), (Some("motor"), 3600.0), (JAM, 120.0), (None, 600.0), (JAM, 90.0)];
    let cases: Vec<Case> = vec![
        (
            "5-minute jams: back 5 min after it went down",
            jams.clone(),
            JAM,
            30,
            None,
            Some(300),
            ReturnRule::ReasonMedian,
            5,
            "median of 5 jam stops in the last 8 h: 5 min",
        ),
        (
            "only the stops of its reason count",
            mixed.clone(),
            JAM,
            10,
            None,
            Some(90),
            ReturnRule::ReasonMedian,
            3,
            "median of 3 jam stops in the last 8 h: 90 s",
        ),
        (
            "a stop without a reason is compared with those without one",
            mixed.clone(),
            None,
            10,
            None,
            Some(600),
            ReturnRule::ReasonMedian,
            1,
            "median of 1 stop without a reason in the last 8 h: 10 min",
        ),
        (
            "a reason never seen: the median of all its stops",
            mixed.clone(),
            Some("tool"),
            10,
            None,
            Some(120),
            ReturnRule::AllStopsMedian,
            5,
            "median of 5 stops in the last 8 h (none for tool): 2 min",
        ),
        (
            "down longer than the median: the median of the stops at least that long",
            jams.clone(),
            JAM,
            330,
            None,
            Some(360),
            ReturnRule::ReasonMedian,
            1,
            "median of the 1 of 5 jam stops in the last 8 h that lasted at least 5.5 min: 6 min",
        ),
        (
            "exactly as long as the longest: back now",
            jams.clone(),
            JAM,
            360,
            None,
            Some(360),
            ReturnRule::ReasonMedian,
            1,
            "median of the 1 of 5 jam stops in the last 8 h that lasted at least 6 min: 6 min",
        ),
        (
            "longer than every stop of its reason: unknown, not another reason's",
            mixed.clone(),
            JAM,
            150,
            None,
            None,
            ReturnRule::Exceeded,
            0,
            "down longer than any of its 3 jam stops in the last 8 h: projected at zero for the rest of the bucket",
        ),
        (
            "no history, no default: zero for the rest of the bucket",
            vec![],
            JAM,
            30,
            None,
            None,
            ReturnRule::NoHistory,
            0,
            "no repair history: projected at zero for the rest of the bucket",
        ),
        (
            "no history: the group's default",
            vec![],
            JAM,
            30,
            Some(10),
            Some(600),
            ReturnRule::Default,
            0,
            "no repair history: the group's default repair time, 10 min",
        ),
        (
            "no history, the default exceeded: zero",
            vec![],
            JAM,
            700,
            Some(10),
            None,
            ReturnRule::Exceeded,
            0,
            "no repair history and down longer than the default repair time (10 min): projected at zero for the rest of the bucket",
        ),
        (
            "history wins over the default",
            jams.clone(),
            JAM,
            30,
            Some(60),
            Some(300),
            ReturnRule::ReasonMedian,
            5,
            "median of 5 jam stops in the last 8 h: 5 min",
        ),
        (
            "an even count: the mean of the middle two",
            vec![(JAM, 60.0), (JAM, 120.0), (JAM, 180.0), (JAM, 600.0)],
            JAM,
            0,
            None,
            Some(150),
            ReturnRule::ReasonMedian,
            4,
            "median of 4 jam stops in the last 8 h: 2.5 min",
        ),
    ];
    for (case, history, reason, down_for, default, back, rule, stops, text) in cases {
        let since = at(NOW - down_for);
        let r = expected_return(
            &log(&history),
            reason,
            since,
            at(NOW),
            Duration::hours(8),
            default.map(Duration::minutes),
        );
        assert_eq!(r.at, back.map(|s| since + Duration::seconds(s)), "{case}: {r:?}");
        assert_eq!((r.basis.rule, r.basis.stops, r.basis.text.as_str()), (rule, stops, text), "{case}");
        assert_eq!(
            (r.basis.reason.as_deref(), r.basis.down_since),
            (reason, since),
            "{case}: the stop is named"
        );
        assert_eq!(r.basis.repair_secs.is_some(), back.is_some(), "{case}");
    }
}

#[test]
fn only_stops_that_ended_in_the_window_count() {
    let mut stops = StopLog::default();
    // A 2-minute jam 9 h ago and a 10-minute one 1 h ago.
    stops.record(stop(JAM, NOW - 9 * 3600, 120.0), Duration::hours(24));
    stops.record(stop(JAM, NOW - 3600, 600.0), Duration::hours(24));
    let since = at(NOW);
    let r = expected_return(&stops, JAM, since, at(NOW), Duration::hours(8), None);
    assert_eq!(r.at, Some(since + Duration::minutes(10)), "{r:?}");
    assert_eq!(r.basis.stops, 1);
}

#[test]
fn the_log_keeps_at_most_max_stops_and_only_the_window() {
    let mut stops = StopLog::default();
    for i in 0..1000 {
        stops.record(stop(JAM, i * 10, 5.0), Duration::hours(8));
    }
    assert_eq!(stops.len(), MAX_STOPS);
    assert_eq!(stops.iter().next().unwrap().start, at((1000 - MAX_STOPS as i64) * 10), "the newest kept");
    // A stop 9 h later leaves only itself within 8 h.
    stops.record(stop(JAM, 10_000 + 9 * 3600, 60.0), Duration::hours(8));
    assert_eq!(stops.len(), 1);
    assert_eq!(StopLog::from_stops(vec![stop(None, 0, 1.0); 300]).len(), MAX_STOPS);
}
