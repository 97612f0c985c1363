//! Each asset projected at its own event time: two lines of one group on
//! two gateways, one live, the other behind (its gateway sending its
//! backlog, or silent). Both make 2 pieces a minute (120/h) while running,
//! rated 150/h; one sample a minute; an 8-hour bucket from minute 0.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use throughline_shared::codec::Telemetry;
use throughline_shared::{AgentId, AssetId, AssetState, Envelope, Sample, SiteId};

use super::*;
use crate::alert::book::AlertBook;
use crate::alert::AlertChange;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::minutes(min)
}

/// The bucket: 8 h from minute 0.
const END: i64 = 480;

fn planner() -> (Planner, Vec<AssetConfig>) {
    let line = |id: &str| AssetConfig {
        site: SiteId::parse("s").unwrap(),
        id: AssetId::parse(id).unwrap(),
        kind: AssetKind::Line,
        group: "fam".into(),
        rated_capacity: 150.0,
        name: None,
        agents: Vec::new(),
    };
    let assets = vec![line("l1"), line("l2")];
    let group = GroupConfig {
        default_repair_minutes: Some(10.0),
        ..GroupConfig::with_defaults("fam", AssetKind::Line)
    };
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    (Planner::new(&assets, vec![group], windows), assets)
}

fn bucket(demand: f64) -> ForecastRow {
    ForecastRow { group: "fam".into(), start: t(0), end: t(END), demand, unit: Unit::Pieces, uplift_pct: 0.0 }
}

/// A line's series from minute `from`: one sample a minute, down in the
/// minutes of `stop` (from, to), running otherwise; the counter rises by 2
/// over each minute that began running.
fn series(from: i64, to: i64, stop: Option<(i64, i64)>) -> Vec<Sample> {
    let down = |m: i64| stop.is_some_and(|(a, b)| (a..b).contains(&m));
    let mut output = 0.0;
    (from..=to)
        .map(|m| {
            if m > from && !down(m - 1) {
                output += 2.0;
            }
            let state = if down(m) { AssetState::Down } else { AssetState::Running };
            Sample {
                output: Some(output),
                state: Some(state),
                reason: down(m).then(|| "jam".to_string()),
                ..Sample::at(t(m))
            }
        })
        .collect()
}

/// Send `samples` of line `id` (gateway `gw-{id}`) as envelope `seq`,
/// received at minute `heard` of the server clock.
fn send(st: &mut LiveState, id: &str, seq: u64, samples: Vec<Sample>, heard: i64) {
    let tel = Telemetry {
        site: SiteId::parse("s").unwrap(),
        asset: AssetId::parse(id).unwrap(),
        envelope: Envelope { v: 1, agent: AgentId::parse(format!("gw-{id}")).unwrap(), seq, samples },
    };
    st.apply_telemetry(&tel, t(heard));
}

/// At minute 240 (4 h left), l1 live since minute 0. l2's own watermark
/// `240 - lag`, its last `down` minutes down, its data received at minute
/// `heard` of the server clock. Demand: all both lines make in the bucket,
/// 2 × 120/h × 8 h = 1920.
///
/// Projected from the plant's clock (the 4 h left), l2's output between its
/// watermark and minute 240 is counted by nobody: 5 min behind, 470 made +
/// 120/h × 4 h = 950, the group 10 short (5 min of l2); 2 h behind, 240 +
/// 480 = 720, 240 short (2 h of l2). Worse, the old staleness rule (watermark
/// more than 10 min behind) counted a line 2 h behind as making nothing at
/// all: 1200, 720 short (37.5 %, a `schedule` alert). From its own
/// watermark l2 has 4 h + lag left: 470 + 120/h × 4.083 h = 960, as live.
#[test]
fn a_line_behind_is_projected_from_its_own_watermark() {
    struct Case {
        name: &'static str,
        lag: i64,
        down: i64,
        heard: i64,
        /// l2: state, made, own hours left, projected rest, expected return (minute).
        state: Option<AssetState>,
        made: f64,
        hours_left: f64,
        projected: f64,
        back: Option<i64>,
        /// The group: projected; and the gap were l2 projected over the
        /// plant's 4 h left instead of its own.
        group: f64,
        gap_on_plant_clock: f64,
    }
    let running = Some(AssetState::Running);
    let cases = [
        Case {
            name: "both live",
            lag: 0,
            down: 0,
            heard: 240,
            state: running,
            made: 480.0,
            hours_left: 4.0,
            projected: 480.0,
            back: None,
            group: 1920.0,
            gap_on_plant_clock: 0.0,
        },
        Case {
            name: "5 min behind",
            lag: 5,
            down: 0,
            heard: 240,
            state: running,
            made: 470.0,
            hours_left: 245.0 / 60.0,
            projected: 490.0,
            back: None,
            group: 1920.0,
            gap_on_plant_clock: 10.0,
        },
        Case {
            name: "2 h behind, its gateway sending the backlog now",
            lag: 120,
            down: 0,
            heard: 240,
            state: running,
            made: 240.0,
            hours_left: 6.0,
            projected: 720.0,
            back: None,
            group: 1920.0,
            gap_on_plant_clock: 240.0,
        },
        Case {
            // Nothing received for 2 h by the server clock either: silent,
            // it projects nothing; what it made counts.
            name: "2 h behind and silent",
            lag: 120,
            down: 0,
            heard: 120,
            state: None,
            made: 240.0,
            hours_left: 6.0,
            projected: 0.0,
            back: None,
            group: 1200.0,
            gap_on_plant_clock: 720.0,
        },
        Case {
            // Down for the last 2 min of its data (since minute 118), no
            // stops before: back after the group's default 10 min, at
            // minute 128 of its own time (at minute 240 it would have been
            // down 122 min, past the default: zero for the rest). From then
            // 120/h × availability 118/120 for (480 - 128) min.
            name: "2 h behind, down 2 min as of its watermark",
            lag: 120,
            down: 2,
            heard: 240,
            state: Some(AssetState::Down),
            made: 236.0,
            hours_left: 6.0,
            projected: 118.0 * 352.0 / 60.0,
            back: Some(128),
            group: 960.0 + 236.0 + 118.0 * 352.0 / 60.0,
            gap_on_plant_clock: 1920.0 - (960.0 + 236.0 + 118.0 * 4.0),
        },
    ];
    let (p, assets) = planner();
    for c in cases {
        let mut st = LiveState::new(&assets, Duration::seconds(300));
        send(&mut st, "l1", 1, series(0, 240, None), 240);
        let to = 240 - c.lag;
        send(&mut st, "l2", 1, series(0, to, (c.down > 0).then_some((to - c.down, to + 1))), c.heard);
        assert_eq!(st.watermark(), Some(t(240)));
        let b = p.balances(&st, &[bucket(1920.0)], None, None, None, t(240)).remove(0);
        let name = c.name;
        assert_eq!(b.hours_left, 4.0, "{name}: the balance's hours left are the plant's");
        let (l1, l2) = (&b.assets[0], &b.assets[1]);
        assert_eq!(
            (l1.as_of, l1.hours_left, l1.made, l1.projected),
            (Some(t(240)), 4.0, 480.0, 480.0),
            "{name}"
        );
        assert_eq!(l2.as_of, Some(t(to)), "{name}");
        assert_eq!(l2.state, c.state, "{name}");
        assert!((l2.made - c.made).abs() < 1e-9, "{name}: made {}", l2.made);
        assert!((l2.hours_left - c.hours_left).abs() < 1e-9, "{name}: hours left {}", l2.hours_left);
        assert!((l2.projected - c.projected).abs() < 1e-6, "{name}: projected {} ({l2:?})", l2.projected);
        assert_eq!(l2.expected_return, c.back.map(t), "{name}");
        assert!((b.projected - c.group).abs() < 1e-6, "{name}: group projected {}", b.projected);
        // Its rate is taken at its own watermark: 120/h, not a rate window
        // ending at minute 240 with nothing in it (the rated 150/h).
        let plans = p.plans(&st, "fam", t(0), t(END), t(240), t(240));
        assert_eq!(plans[1].rate_running.map(|r| (r * 1e6).round() / 1e6), Some(120.0), "{name}");
        let on_plant_clock: f64 = b.assets.iter().map(|a| a.made + a.rate * b.hours_left).sum();
        assert!(
            (1920.0 - on_plant_clock - c.gap_on_plant_clock).abs() < 1e-6,
            "{name}: on the plant's clock {on_plant_clock}"
        );
    }
}

/// How l2's data reaches the aggregator.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Delivery {
    /// Minute by minute with l1.
    Live,
    /// Two hours late until minute 0, then two minutes of data every minute
    /// until it has caught up (at minute 120), then live.
    Behind,
}

/// Minute of l2's data delivered by plant minute `p`.
fn l2_reached(how: Delivery, p: i64) -> i64 {
    match how {
        Delivery::Live => p,
        Delivery::Behind if p < 0 => p - 120,
        Delivery::Behind => (2 * p - 120).min(p),
    }
}

/// What the evaluations saw.
#[derive(Debug, Default)]
struct Seen {
    /// (plant minute, l2's minute, key, gap %, summary) of every schedule condition.
    conditions: Vec<(i64, i64, String, i64, String)>,
    /// (key, plant minute) of every schedule alert opened.
    opened: Vec<(String, i64)>,
    unresolved: BTreeSet<String>,
}

/// Both lines' data from minute -300 to 470, l2 down in `stop`; from
/// minute -180 on (both heard), every plant minute is evaluated as the
/// alert task does, with the server clock at the plant's minute.
fn deliver(how: Delivery, stop: Option<(i64, i64)>, demand: f64) -> Seen {
    const FROM: i64 = -300;
    const TO: i64 = 470;
    let (p, assets) = planner();
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let (l1, l2) = (series(FROM, TO, None), series(FROM, TO, stop));
    let forecasts = [bucket(demand)];
    let groups = BTreeSet::from(["fam".to_string()]);
    let keys = p.scope_keys(&groups);
    let mut book = AlertBook::default();
    let mut seen = Seen::default();
    let (mut sent, mut seq) = (0usize, 0u64);
    for m in FROM..=TO {
        send(&mut st, "l1", (m - FROM + 1) as u64, vec![l1[(m - FROM) as usize].clone()], m);
        let reached = l2_reached(how, m);
        let upto = (reached - FROM + 1).max(0) as usize;
        if upto > sent {
            seq += 1;
            send(&mut st, "l2", seq, l2[sent..upto].to_vec(), m);
            sent = upto;
        }
        if m < -180 {
            continue;
        }
        let conditions = p.conditions_in(&st, &forecasts, &book, t(m), Scope::Groups(&groups));
        for c in conditions.iter().filter(|c| c.kind == AlertKind::Schedule) {
            let pct = (c.value * 1000.0).round() as i64;
            seen.conditions.push((m, reached, c.key.to_string(), pct, c.summary.clone()));
        }
        let ch = book.apply_scoped(conditions, t(m), |k| keys.contains(k), |a| can_judge(&st, a));
        for e in ch.events.iter().filter(|e| e.alert.kind == AlertKind::Schedule) {
            if e.event == AlertChange::Opened {
                seen.opened.push((e.alert.key.to_string(), m));
            }
        }
    }
    seen.unresolved =
        book.unresolved().filter(|a| a.kind == AlertKind::Schedule).map(|a| a.key.to_string()).collect();
    seen
}

/// l2 two hours behind, catching up over the first two hours of the
/// bucket, against l2 live: while it is behind, what opens is what its own
/// data holds (nothing without a stop; a stop's alert once the stop has
/// held 120 s in l2's data, as live), and once it has caught up every
/// evaluation finds the same schedule conditions as live. Demand: 95 % of
/// what both lines make running (1824 of 1920): covered without a stop.
#[test]
fn a_line_behind_raises_what_it_raises_live_once_caught_up() {
    let key = format!("schedule:fam:{}", t(0).timestamp());
    // (case, l2 down from, to (minutes), alerts opened live, behind (plant
    // minute), unresolved at the end)
    type Case = (&'static str, Option<(i64, i64)>, Vec<i64>, Vec<i64>, bool);
    let cases: Vec<Case> = vec![
        // Under the old staleness rule (more than 10 min behind: nothing)
        // the group is 39 to 47 % short until minute 110 while behind, and
        // an alert opens at minute -178.
        ("no stop: nothing, live or behind", None, vec![], vec![], false),
        // No stops before it: expected back after the group's default
        // 10 min, then zero for the rest of the bucket and, held since it
        // began, an alert at once: at l2's minute 71, live at plant minute
        // 71, behind at 96 (when l2's data reaches minute 72; at 95 it is at
        // minute 70, still within the default). Once l2 runs the group is
        // within 3 % (hysteresis) and it resolves.
        ("a 30 min stop while behind", Some((60, 90)), vec![71], vec![96], false),
        // Still down when l2 has caught up (minute 120), short to the end:
        // l2's minute 111, behind at plant minute 116.
        ("a 100 min stop across the catch-up", Some((100, 200)), vec![111], vec![116], true),
    ];
    for (case, stop, live_at, behind_at, open_at_end) in cases {
        let live = deliver(Delivery::Live, stop, 1824.0);
        let behind = deliver(Delivery::Behind, stop, 1824.0);
        let opened = |at: &[i64]| at.iter().map(|m| (key.clone(), *m)).collect::<Vec<_>>();
        assert_eq!(live.opened, opened(&live_at), "{case}: live {live:?}");
        assert_eq!(behind.opened, opened(&behind_at), "{case}: behind {:?}", behind.conditions);
        let unresolved = if open_at_end { BTreeSet::from([key.clone()]) } else { BTreeSet::new() };
        assert_eq!((&live.unresolved, &behind.unresolved), (&unresolved, &unresolved), "{case}");
        // While l2 is behind, no condition before its data holds the stop.
        let stop_from = stop.map_or(i64::MAX, |s| s.0);
        let early: Vec<_> = behind.conditions.iter().filter(|c| c.1 < stop_from).collect();
        assert!(early.is_empty(), "{case}: conditions while merely behind: {early:?}");
        // Caught up at minute 120: from then on the same conditions, with
        // the same numbers and words, as live.
        let after = |s: &Seen| s.conditions.iter().filter(|c| c.0 >= 120).cloned().collect::<Vec<_>>();
        assert_eq!(after(&behind), after(&live), "{case}");
        // While behind, each evaluation finds what live found when l2 was
        // where its data has reached (l1 makes the same 960 either way).
        let own = |s: &Seen, minutes: &BTreeSet<i64>| {
            s.conditions
                .iter()
                .filter(|c| minutes.contains(&c.1))
                .map(|c| (c.1, c.3))
                .collect::<BTreeSet<_>>()
        };
        let reached: BTreeSet<i64> =
            (-180..120).map(|m| l2_reached(Delivery::Behind, m)).filter(|r| *r >= -180).collect();
        let while_behind = Seen {
            conditions: behind.conditions.iter().filter(|c| c.0 < 120).cloned().collect(),
            ..Seen::default()
        };
        assert_eq!(own(&while_behind, &reached), own(&live, &reached), "{case}: in l2's own time");
    }
}
