//! The projection against live state built from real messages: what each
//! asset contributes to a bucket, the conditions an evaluation finds, and
//! which alert keys a scope covers.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use throughline_shared::codec::Telemetry;
use throughline_shared::{AgentId, AssetId, AssetState, Envelope, Sample, SiteId};

use super::*;
use crate::alert::book::AlertBook;
use crate::alert::AlertDetails;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::minutes(min)
}

fn asset(id: &str, kind: AssetKind, group: &str, rated: f64) -> AssetConfig {
    AssetConfig {
        site: SiteId::parse("s").unwrap(),
        id: AssetId::parse(id).unwrap(),
        kind,
        group: group.into(),
        rated_capacity: rated,
        name: None,
        agents: Vec::new(),
    }
}

fn planner() -> (Planner, Vec<AssetConfig>) {
    let assets = vec![
        asset("l1", AssetKind::Line, "fam", 120.0),
        asset("l2", AssetKind::Line, "fam", 120.0),
        asset("f1", AssetKind::Feeder, "north", 100.0),
    ];
    let groups = vec![
        GroupConfig::with_defaults("fam", AssetKind::Line),
        GroupConfig::with_defaults("north", AssetKind::Feeder),
    ];
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    (Planner::new(&assets, groups, windows), assets)
}

/// One sample a minute from `from` to `to` (inclusive), `per_min` more
/// output each minute, in `state`.
fn run(
    st: &mut LiveState,
    id: &str,
    seq: &mut u64,
    minutes: std::ops::RangeInclusive<i64>,
    per_min: f64,
    state: AssetState,
    load: Option<f64>,
) {
    let to = *minutes.end();
    let samples = minutes
        .map(|m| Sample {
            output: Some(m as f64 * per_min),
            state: Some(state),
            load_kw: load,
            reason: (state == AssetState::Down).then(|| "jam".to_string()),
            ..Sample::at(t(m))
        })
        .collect();
    *seq += 1;
    let tel = Telemetry {
        site: SiteId::parse("s").unwrap(),
        asset: AssetId::parse(id).unwrap(),
        envelope: Envelope { v: 1, agent: AgentId::parse("gw").unwrap(), seq: *seq, samples },
    };
    st.apply_telemetry(&tel, t(to));
}

fn bucket(group: &str, unit: Unit, from: i64, to: i64, demand: f64) -> ForecastRow {
    ForecastRow { group: group.into(), start: t(from), end: t(to), demand, unit, uplift_pct: 0.0 }
}

#[test]
fn plans_take_made_rate_and_availability_from_history() {
    let (p, assets) = planner();
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let mut seq = 0;
    // l1 runs at 2/min (120/h) for an hour; l2 runs 30 min, then is down.
    run(&mut st, "l1", &mut seq, 0..=60, 2.0, AssetState::Running, None);
    run(&mut st, "l2", &mut seq, 0..=30, 2.0, AssetState::Running, None);
    run(&mut st, "l2", &mut seq, 31..=60, 0.0, AssetState::Down, None);
    let plans = p.plans(&st, "fam", t(0), t(120), t(60), t(60));
    assert_eq!(plans.len(), 2);
    let (l1, l2) = (&plans[0], &plans[1]);
    assert!((l1.made - 120.0).abs() < 1e-6, "{l1:?}");
    assert!((l1.rate_running.unwrap() - 120.0).abs() < 1e-6, "{l1:?}");
    assert!((l1.availability - 1.0).abs() < 1e-9);
    assert_eq!(l2.state, Some(AssetState::Down));
    assert!((l2.availability - 0.5).abs() < 0.02, "half the hour down: {l2:?}");
    // Ten minutes without a sample is stale: no state, no promise.
    let later = p.plans(&st, "fam", t(0), t(120), t(71), t(71));
    assert_eq!((later[0].state, later[0].load_kw), (None, None));
    // The group's rate: l1 at 120/h; l2 is down and adds nothing.
    assert!((p.group_rate(&st, "fam", t(0)) - 120.0).abs() < 1e-6);
}

#[test]
fn a_down_line_gives_downtime_and_schedule_conditions_with_typed_keys() {
    let (p, assets) = planner();
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let mut seq = 0;
    run(&mut st, "l1", &mut seq, 0..=60, 2.0, AssetState::Running, None);
    run(&mut st, "l2", &mut seq, 0..=30, 2.0, AssetState::Running, None);
    run(&mut st, "l2", &mut seq, 31..=60, 0.0, AssetState::Down, None);
    run(&mut st, "f1", &mut seq, 0..=60, 1.0, AssetState::Running, Some(150.0));
    // Demand: everything both lines could make in two hours.
    let forecasts =
        vec![bucket("fam", Unit::Pieces, 0, 120, 480.0), bucket("north", Unit::KWh, 0, 120, 100.0)];
    let book = AlertBook::default();
    let groups = BTreeSet::from(["fam".to_string(), "north".to_string()]);
    let conds = p.conditions_in(&st, &forecasts, &book, t(60), Scope::Groups(&groups));
    let keys: BTreeSet<String> = conds.iter().map(|c| c.key.to_string()).collect();
    let start = t(0).timestamp();
    assert_eq!(
        keys,
        BTreeSet::from([
            format!("schedule:fam:{start}"),
            format!("dispatch:north:{start}"),
            "downtime:s:l2".to_string(),
        ]),
        "{conds:#?}"
    );
    let down = conds.iter().find(|c| c.kind == AlertKind::Downtime).unwrap();
    assert!(
        matches!(down.details, AlertDetails::Downtime { minutes, .. } if (minutes - 29.0).abs() < 1.1),
        "{:?}",
        down.details
    );
    // The agents' scope is the offline rule only: the agent is current.
    assert!(p.conditions_in(&st, &forecasts, &book, t(60), Scope::Agents).is_empty());
    // Silent for longer than the group's offline_secs: offline.
    let offline = p.conditions_in(&st, &forecasts, &book, t(60) + Duration::minutes(30), Scope::Agents);
    assert_eq!(offline.iter().map(|c| c.key.to_string()).collect::<Vec<_>>(), ["offline:gw"]);
}

#[test]
fn scopes_and_coverage_follow_the_configured_plant() {
    let (p, _) = planner();
    let key = |s: &str| s.parse::<AlertKey>().unwrap();
    let fam = p.scope_keys(&BTreeSet::from(["fam".to_string()]));
    assert!(fam.contains(&key("schedule:fam:1")) && fam.contains(&key("forecast_deviation:fam:7")));
    assert!(fam.contains(&key("downtime:s:l1")) && fam.contains(&key("downtime:s:l2")));
    assert!(!fam.contains(&key("downtime:s:f1")) && !fam.contains(&key("dispatch:north:1")));
    assert!(!fam.contains(&key("offline:gw")));
    assert!(!fam.contains(&key("schedule:family:1")), "a group whose name starts the same is another group");
    assert!(p.covers(&key("dispatch:north:1")) && p.covers(&key("downtime:s:f1")));
    assert!(
        !p.covers(&key("schedule:gone:1"))
            && !p.covers(&key("downtime:s:gone"))
            && !p.covers(&key("offline:gw"))
    );
}

#[test]
fn an_alert_is_judged_only_with_the_data_to_clear_it() {
    let (p, assets) = planner();
    let _ = p;
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let alert = |key: &str, kind, asset: Option<&str>, agent: Option<&str>| Alert {
        id: 1,
        key: key.parse().unwrap(),
        kind,
        status: crate::model::AlertStatus::Open,
        site: Some("s".into()),
        group: None,
        asset: asset.map(Into::into),
        agent: agent.map(Into::into),
        bucket_start: None,
        bucket_end: None,
        value: 0.0,
        threshold: 0.0,
        summary: String::new(),
        action: String::new(),
        details: AlertDetails::None,
        opened_at: t(0),
        event_time: None,
        updated_at: t(0),
        acknowledged: None,
        resolved: None,
    };
    let down = alert("downtime:s:l1", AlertKind::Downtime, Some("l1"), None);
    let gap = alert("schedule:fam:0", AlertKind::Schedule, None, None);
    let gone = alert("offline:gw", AlertKind::Offline, None, Some("gw"));
    // After a restart nothing has been heard: nothing can be cleared.
    assert!(!can_judge(&st, &down) && !can_judge(&st, &gap) && !can_judge(&st, &gone));
    let mut seq = 0;
    run(&mut st, "l1", &mut seq, 0..=1, 1.0, AssetState::Running, None);
    assert!(can_judge(&st, &down) && can_judge(&st, &gap) && can_judge(&st, &gone));
    let dev = alert("forecast_deviation:fam:0", AlertKind::ForecastDeviation, None, None);
    assert!(!can_judge(&st, &dev), "a closed bucket's deviation waits for a planner");
}

/// A sample of `asset` from agent `agent` at minute `m` of event time,
/// received at `heard` (server clock).
fn feed(st: &mut LiveState, agent: &str, asset: &str, seq: u64, m: i64, kwh: f64, heard: DateTime<Utc>) {
    let s = Sample {
        output: Some(kwh),
        load_kw: Some(60.0),
        state: Some(AssetState::Running),
        ..Sample::at(t(m))
    };
    let tel = Telemetry {
        site: SiteId::parse("s").unwrap(),
        asset: AssetId::parse(asset).unwrap(),
        envelope: Envelope { v: 1, agent: AgentId::parse(agent).unwrap(), seq, samples: vec![s] },
    };
    st.apply_telemetry(&tel, heard);
}

/// Two feeders of one region on two gateways; one sends live, the other's
/// backlog is still arriving while a line elsewhere moves the plant's
/// event time past the bucket's end.
#[test]
fn a_bucket_closes_for_a_group_only_when_every_asset_has_reached_its_end() {
    let assets = vec![
        asset("f1", AssetKind::Feeder, "north", 100.0),
        asset("f2", AssetKind::Feeder, "north", 100.0),
        asset("l1", AssetKind::Line, "fam", 120.0),
    ];
    let north =
        GroupConfig { close_grace_secs: 600, ..GroupConfig::with_defaults("north", AssetKind::Feeder) };
    let groups = vec![north.clone(), GroupConfig::with_defaults("fam", AssetKind::Line)];
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    let p = Planner::new(&assets, groups, windows);
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let wall = t(200);
    // The bucket 0..60 min: both feeders deliver 1 kWh a minute, 120 in all
    // against a forecast of 100 (+20 %). f2's gateway is still sending its
    // backlog: it has reached minute 10 (70 made so far: −30 %).
    for m in 0..=70 {
        feed(&mut st, "gw-1", "f1", m as u64 + 1, m, m as f64, wall);
    }
    for m in 0..=10 {
        feed(&mut st, "gw-2", "f2", m as u64 + 1, m, m as f64, wall);
    }
    for m in 0..=90 {
        feed(&mut st, "gw-3", "l1", m as u64 + 1, m, 2.0 * m as f64, wall);
    }
    let forecasts = vec![bucket("north", Unit::KWh, 0, 60, 100.0)];
    let book = AlertBook::default();
    let scope = BTreeSet::from(["north".to_string()]);
    let deviations = |st: &LiveState, wall| {
        p.conditions_in(st, &forecasts, &book, wall, Scope::Groups(&scope))
            .into_iter()
            .filter(|c| c.kind == AlertKind::ForecastDeviation)
            .collect::<Vec<_>>()
    };
    assert_eq!(p.closing(&st, &north, t(60), wall), Closing::Waiting { behind: vec!["s/f2".into()] });
    assert!(deviations(&st, wall).is_empty(), "f2 is behind: made so far (70) is not the bucket's actual");

    // Silent past the grace while behind: closed incomplete, judged by nobody.
    let later = wall + Duration::seconds(601);
    assert_eq!(p.closing(&st, &north, t(60), later), Closing::Incomplete { missing: vec!["s/f2".into()] });
    assert!(deviations(&st, later).is_empty());

    // The backlog arrives past the end: judged on all of it.
    for m in 11..=61 {
        feed(&mut st, "gw-2", "f2", m as u64 + 1, m, m as f64, later);
    }
    assert_eq!(p.closing(&st, &north, t(60), later), Closing::Complete);
    let dev = deviations(&st, later);
    assert_eq!(dev.len(), 1, "{dev:#?}");
    assert!((dev[0].value - 20.0).abs() < 0.5, "120 made against 100: {}", dev[0].summary);
}

/// A gateway's clock 3 min fast, corrected by NTP just before the bucket's
/// end by the true clock, after it by the fast one: the bucket stays closed
/// for the asset (its last sample is back before the end now, its newest
/// is not), the samples after the step count, and its data stays current.
#[test]
fn a_clock_step_back_does_not_reopen_a_closed_bucket() {
    let assets = vec![asset("f1", AssetKind::Feeder, "north", 100.0)];
    let north = GroupConfig::with_defaults("north", AssetKind::Feeder);
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    let p = Planner::new(&assets, vec![north.clone()], windows);
    let mut st = LiveState::new(&assets, Duration::seconds(300));
    let wall = t(60);
    // 1 kWh a minute; stamped 3 min ahead up to true minute 57 (60 on the
    // fast clock), then on the true clock.
    for m in 0..=57 {
        feed(&mut st, "gw-1", "f1", m as u64 + 1, m + 3, m as f64, wall);
    }
    assert_eq!(p.closing(&st, &north, t(60), wall), Closing::Complete);
    for m in 58..=59 {
        feed(&mut st, "gw-1", "f1", m as u64 + 1, m, m as f64, wall);
    }
    let a = st.asset(&SiteId::parse("s").unwrap(), &AssetId::parse("f1").unwrap()).unwrap();
    assert_eq!((a.last_ts, a.newest_ts, a.late_samples), (Some(t(59)), Some(t(60)), 0));
    assert_eq!(st.watermark(), Some(t(60)), "event time does not go back");
    assert_eq!(p.closing(&st, &north, t(60), wall), Closing::Complete, "closed stays closed");
    // Every kWh is in the history, in the bucket (the two after the step
    // too: stamped before its end).
    assert!((a.history.output_between(t(0), t(120)) - 59.0).abs() < 1e-6);
    assert!((a.history.output_between(t(0), t(60)) - 59.0).abs() < 1e-6);
    // The asset is current at event time.
    let plans = p.plans(&st, "north", t(60), t(120), t(60), wall);
    assert_eq!(plans[0].state, Some(AssetState::Running));
}

/// The same data set gives the same `forecast_deviation` alerts whether it
/// arrives live, as one backfill per gateway one after another, or as four
/// backfills interleaved at different speeds.
#[test]
fn deviation_alerts_do_not_depend_on_how_the_data_arrives() {
    // Two regions of two feeders, one gateway each; hourly buckets over six
    // hours. north-2 runs at half its rate in hours 2 and 3, south-1 stops
    // delivering energy in hour 4: real deviations in some buckets.
    let ids = ["n1", "n2", "s1", "s2"];
    let group = |id: &str| if id.starts_with('n') { "north" } else { "south" };
    let assets: Vec<AssetConfig> =
        ids.iter().map(|id| asset(id, AssetKind::Feeder, group(id), 100.0)).collect();
    let groups = vec![
        GroupConfig::with_defaults("north", AssetKind::Feeder),
        GroupConfig::with_defaults("south", AssetKind::Feeder),
    ];
    let windows = Windows {
        rate: Duration::minutes(15),
        availability: Duration::hours(8),
        history: Duration::hours(48),
    };
    let p = Planner::new(&assets, groups, windows);
    let forecasts: Vec<ForecastRow> = ["north", "south"]
        .iter()
        .flat_map(|g| (0..6).map(move |h| bucket(g, Unit::KWh, h * 60, (h + 1) * 60, 120.0)))
        .collect();
    let per_minute = |id: &str, m: i64| match (id, m / 60) {
        ("n2", 2 | 3) => 0.5,
        ("s1", 4) => 0.0,
        _ => 1.0,
    };
    // Each asset's series: (minute, counter), one sample a minute to 6 h + 1 min.
    let series = |id: &str| {
        let mut total = 0.0;
        (0..=361)
            .map(|m| {
                let v = (m, total);
                total += per_minute(id, m);
                v
            })
            .collect::<Vec<(i64, f64)>>()
    };
    let wall = t(400);
    let run = |order: Vec<(usize, usize)>| {
        let mut st = LiveState::new(&assets, Duration::seconds(300));
        let mut book = AlertBook::default();
        let all = BTreeSet::from(["north".to_string(), "south".to_string()]);
        let mut seq = [0u64; 4];
        let mut opened = BTreeSet::new();
        let data: Vec<Vec<(i64, f64)>> = ids.iter().map(|id| series(id)).collect();
        for (i, k) in order {
            let (m, v) = data[i][k];
            seq[i] += 1;
            feed(&mut st, &format!("gw-{}", ids[i]), ids[i], seq[i], m, v, wall);
            let conds = p.conditions_in(&st, &forecasts, &book, wall, Scope::Groups(&all));
            for e in book.apply(conds, wall).events {
                if e.alert.kind == AlertKind::ForecastDeviation {
                    opened.insert((e.alert.key.to_string(), (e.alert.value * 10.0).round() as i64));
                }
            }
        }
        opened
    };
    let n = series("n1").len();
    // Live: minute by minute, every gateway in turn.
    let live: Vec<(usize, usize)> = (0..n).flat_map(|k| (0..4).map(move |i| (i, k))).collect();
    // One backfill after another.
    let one_by_one: Vec<(usize, usize)> = (0..4).flat_map(|i| (0..n).map(move |k| (i, k))).collect();
    // Interleaved: gateway i sends i + 1 samples per turn, the slowest last.
    let mut interleaved = Vec::new();
    let mut next = [0usize; 4];
    while next.iter().any(|k| *k < n) {
        for i in (0..4).rev() {
            for _ in 0..=i {
                if next[i] < n {
                    interleaved.push((i, next[i]));
                    next[i] += 1;
                }
            }
        }
    }
    let want = run(live);
    let keys: Vec<&str> = want.iter().map(|(k, _)| k.as_str()).collect();
    let start = |h: i64| t(h * 60).timestamp();
    assert_eq!(
        keys,
        [
            format!("forecast_deviation:north:{}", start(2)),
            format!("forecast_deviation:north:{}", start(3)),
            format!("forecast_deviation:south:{}", start(4)),
        ],
        "{want:?}"
    );
    assert_eq!(run(one_by_one), want, "one backfill after another");
    assert_eq!(run(interleaved), want, "four backfills at different speeds");
}

#[test]
fn offline_alerts_of_never_registered_agents_expire() {
    let (p, assets) = planner();
    let mut st = LiveState::new(&assets, Duration::seconds(300)).with_unregistered_expiry(Duration::hours(1));
    let mut seq = 0;
    // gw reports a registered line; made-up agents report made-up assets.
    run(&mut st, "l1", &mut seq, 0..=1, 2.0, AssetState::Running, None);
    for i in 0..3 {
        let tel = Telemetry {
            site: SiteId::parse("s").unwrap(),
            asset: AssetId::parse(format!("fake-{i}")).unwrap(),
            envelope: Envelope {
                v: 1,
                agent: AgentId::parse(format!("fake-gw-{i}")).unwrap(),
                seq: 1,
                samples: vec![Sample { output: Some(1.0), ..Sample::at(t(1)) }],
            },
        };
        st.apply_telemetry(&tel, t(1));
    }
    let book = AlertBook::default();
    let keys = |now| {
        let c = p.conditions_in(&st, &[], &book, now, Scope::Agents);
        c.iter().map(|c| c.key.to_string()).collect::<BTreeSet<_>>()
    };
    // Silent 30 min: all offline.
    assert_eq!(keys(t(31)).len(), 4);
    // Silent past the expiry: only the agent of a registered asset.
    assert_eq!(keys(t(62)), BTreeSet::from(["offline:gw".to_string()]));
}
