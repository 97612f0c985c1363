use super::*;
use crate::stops::ReturnRule;
use chrono::{Duration, TimeZone};

fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap() + Duration::hours(h)
}

fn lines() -> GroupConfig {
    GroupConfig::with_defaults("family-a", AssetKind::Line)
}

fn feeders() -> GroupConfig {
    GroupConfig::with_defaults("region-north", AssetKind::Feeder)
}

fn fc(group: &str, start: i64, end: i64, demand: f64, uplift: f64, unit: Unit) -> ForecastRow {
    ForecastRow { group: group.into(), start: t(start), end: t(end), demand, unit, uplift_pct: uplift }
}

fn line(id: &str, state: AssetState, made: f64, rate: Option<f64>, availability: f64) -> AssetPlan {
    AssetPlan {
        site: SiteId::parse("s").unwrap(),
        asset: AssetId::parse(id).unwrap(),
        rated: 100.0,
        state: Some(state),
        as_of: None,
        made,
        rate_running: rate,
        availability,
        load_kw: None,
        peak_kw: None,
        expected_return: None,
        return_basis: None,
    }
}

/// [`line`] down since `since` and expected back at `back` (hours).
fn back_at(mut plan: AssetPlan, since: i64, back: Option<f64>) -> AssetPlan {
    let at = |h: f64| t(0) + Duration::milliseconds((h * 3_600_000.0) as i64);
    plan.expected_return = back.map(at);
    plan.return_basis = Some(ReturnBasis {
        rule: if back.is_some() { ReturnRule::ReasonMedian } else { ReturnRule::NoHistory },
        reason: Some("jam".into()),
        down_since: t(since),
        stops: 3,
        repair_secs: back.map(|b| (b - since as f64) * 3600.0),
        text: "median of 3 jam stops in the last 8 h: 1 h".into(),
    });
    plan
}

fn feeder(id: &str, rated: f64, load: f64, peak: f64, made: f64) -> AssetPlan {
    AssetPlan {
        site: SiteId::parse("s").unwrap(),
        asset: AssetId::parse(id).unwrap(),
        rated,
        state: Some(AssetState::Running),
        as_of: None,
        made,
        rate_running: None,
        availability: 1.0,
        load_kw: Some(load),
        peak_kw: Some(peak),
        expected_return: None,
        return_basis: None,
    }
}

struct Case {
    name: &'static str,
    forecast: ForecastRow,
    assets: Vec<AssetPlan>,
    now: DateTime<Utc>,
    supply: f64,
    gap: f64,
    status: Status,
    phase: Phase,
}

#[test]
fn line_balance_table() {
    let u = Unit::Pieces;
    let cases = vec![
        Case {
            name: "on track: 2 lines at 100/h, 4 h into an 8 h bucket, 800 made, 800 more to come",
            forecast: fc("family-a", 0, 8, 1600.0, 0.0, u),
            assets: vec![
                line("a", AssetState::Running, 400.0, Some(100.0), 1.0),
                line("b", AssetState::Running, 400.0, Some(100.0), 1.0),
            ],
            now: t(4),
            supply: 1600.0,
            gap: 0.0,
            status: Status::Ok,
            phase: Phase::Open,
        },
        Case {
            name: "uplift 25 % on 1600 makes 2000 demand: 400 short (20 %)",
            forecast: fc("family-a", 0, 8, 1600.0, 25.0, u),
            assets: vec![
                line("a", AssetState::Running, 400.0, Some(100.0), 1.0),
                line("b", AssetState::Running, 400.0, Some(100.0), 1.0),
            ],
            now: t(4),
            supply: 1600.0,
            gap: 400.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "a down line projects zero until it runs again",
            forecast: fc("family-a", 0, 8, 1600.0, 0.0, u),
            assets: vec![
                line("a", AssetState::Running, 400.0, Some(100.0), 1.0),
                line("b", AssetState::Down, 300.0, Some(100.0), 1.0),
            ],
            now: t(4),
            supply: 1100.0,
            gap: 500.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "a down line expected back in 1 h makes its rate for the 3 h after",
            forecast: fc("family-a", 0, 8, 1600.0, 0.0, u),
            assets: vec![
                line("a", AssetState::Running, 400.0, Some(100.0), 1.0),
                back_at(line("b", AssetState::Down, 300.0, Some(100.0), 1.0), 4, Some(5.0)),
            ],
            now: t(4),
            supply: 1400.0,
            gap: 200.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "expected back: its availability scales it as a running line's",
            forecast: fc("family-a", 0, 8, 800.0, 0.0, u),
            assets: vec![back_at(line("b", AssetState::Down, 400.0, Some(100.0), 0.5), 4, Some(6.0))],
            now: t(4),
            supply: 500.0,
            gap: 300.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "expected back after the bucket's end: nothing in it",
            forecast: fc("family-a", 0, 8, 800.0, 0.0, u),
            assets: vec![back_at(line("b", AssetState::Down, 400.0, None, 1.0), 4, Some(9.0))],
            now: t(4),
            supply: 400.0,
            gap: 400.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "expected back before the next bucket: all of it, at rated without a rate",
            forecast: fc("family-a", 8, 16, 800.0, 0.0, u),
            assets: vec![back_at(line("b", AssetState::Down, 400.0, None, 1.0), 4, Some(5.0))],
            now: t(4),
            supply: 800.0,
            gap: 0.0,
            status: Status::Ok,
            phase: Phase::Future,
        },
        Case {
            name: "no expected return: zero for the rest, as before",
            forecast: fc("family-a", 0, 8, 800.0, 0.0, u),
            assets: vec![back_at(line("b", AssetState::Down, 400.0, Some(100.0), 1.0), 4, None)],
            now: t(4),
            supply: 400.0,
            gap: 400.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "measured availability scales the projection",
            forecast: fc("family-a", 0, 8, 1000.0, 0.0, u),
            assets: vec![line("a", AssetState::Running, 400.0, Some(100.0), 0.5)],
            now: t(4),
            supply: 600.0,
            gap: 400.0,
            status: Status::Short,
            phase: Phase::Open,
        },
        Case {
            name: "no rate measured yet: rated capacity is the rate",
            forecast: fc("family-a", 0, 8, 800.0, 0.0, u),
            assets: vec![line("a", AssetState::Running, 0.0, None, 1.0)],
            now: t(0),
            supply: 800.0,
            gap: 0.0,
            status: Status::Ok,
            phase: Phase::Open,
        },
        Case {
            name: "slightly behind but within the 5 % threshold: at risk",
            forecast: fc("family-a", 0, 8, 820.0, 0.0, u),
            assets: vec![line("a", AssetState::Running, 400.0, Some(100.0), 1.0)],
            now: t(4),
            supply: 800.0,
            gap: 20.0,
            status: Status::AtRisk,
            phase: Phase::Open,
        },
        Case {
            name: "future bucket: nothing made yet counts, whole bucket projected",
            forecast: fc("family-a", 8, 16, 800.0, 0.0, u),
            assets: vec![line("a", AssetState::Running, 999.0, Some(100.0), 1.0)],
            now: t(4),
            supply: 800.0,
            gap: 0.0,
            status: Status::Ok,
            phase: Phase::Future,
        },
        Case {
            name: "bucket edge: at its end the bucket is closed, only what was made counts",
            forecast: fc("family-a", 0, 8, 800.0, 0.0, u),
            assets: vec![line("a", AssetState::Running, 700.0, Some(100.0), 1.0)],
            now: t(8),
            supply: 700.0,
            gap: 100.0,
            status: Status::Short,
            phase: Phase::Closed,
        },
        Case {
            name: "bucket edge: at its start the bucket is open with its full length ahead",
            forecast: fc("family-a", 8, 16, 800.0, 0.0, u),
            assets: vec![line("a", AssetState::Running, 0.0, Some(100.0), 1.0)],
            now: t(8),
            supply: 800.0,
            gap: 0.0,
            status: Status::Ok,
            phase: Phase::Open,
        },
        Case {
            name: "zero demand is never short",
            forecast: fc("family-a", 0, 8, 0.0, 0.0, u),
            assets: vec![line("a", AssetState::Down, 0.0, None, 1.0)],
            now: t(4),
            supply: 0.0,
            gap: 0.0,
            status: Status::Ok,
            phase: Phase::Open,
        },
    ];
    for c in cases {
        let b = balance(&lines(), &c.forecast, &c.assets, c.now);
        for (a, plan) in b.assets.iter().zip(&c.assets) {
            assert_eq!(
                (&a.expected_return, &a.return_basis),
                (&plan.expected_return, &plan.return_basis),
                "{}: the assumption is in the balance",
                c.name
            );
        }
        assert!((b.supply - c.supply).abs() < 1e-9, "{}: supply {} != {}", c.name, b.supply, c.supply);
        assert!((b.gap - c.gap).abs() < 1e-9, "{}: gap {} != {}", c.name, b.gap, c.gap);
        assert_eq!(b.status, c.status, "{}", c.name);
        assert_eq!(b.phase, c.phase, "{}", c.name);
    }
}

#[test]
fn suggested_numbers_for_lines() {
    // 500 short, group makes 100/h (one line running): 5 extra hours; the
    // running line at 80/h has 20/h spare, the idle one its full 100/h.
    let b = balance(
        &lines(),
        &fc("family-a", 0, 8, 1400.0, 0.0, Unit::Pieces),
        &[
            line("a", AssetState::Running, 400.0, Some(80.0), 1.0),
            line("b", AssetState::Idle, 0.0, None, 1.0),
            line("c", AssetState::Down, 300.0, Some(100.0), 1.0),
        ],
        t(4),
    );
    assert!((b.made - 700.0).abs() < 1e-9);
    assert!((b.supply - 1020.0).abs() < 1e-9);
    assert!((b.gap - 380.0).abs() < 1e-9);
    assert!((b.group_rate - 80.0).abs() < 1e-9);
    assert!((b.extra_hours.unwrap() - 4.75).abs() < 1e-9);
    assert!((b.spare_rate - 120.0).abs() < 1e-9);
    assert!((b.gap_pct - 380.0 / 1400.0 * 100.0).abs() < 1e-9);

    // c expected back in 2 h: 200 more in the 2 h after, not in the group's
    // rate now (extra hours are at what runs now), and no spare.
    let b = balance(
        &lines(),
        &fc("family-a", 0, 8, 1400.0, 0.0, Unit::Pieces),
        &[
            line("a", AssetState::Running, 400.0, Some(80.0), 1.0),
            back_at(line("c", AssetState::Down, 300.0, Some(100.0), 1.0), 4, Some(6.0)),
        ],
        t(4),
    );
    assert!((b.supply - 1220.0).abs() < 1e-9, "{b:?}");
    assert!((b.group_rate - 80.0).abs() < 1e-9);
    assert!((b.spare_rate - 20.0).abs() < 1e-9);
    let c = &b.assets[1];
    assert!((c.rate - 100.0).abs() < 1e-9 && (c.projected - 200.0).abs() < 1e-9, "{c:?}");
}

#[test]
fn feeders_energy_and_peak_against_rated() {
    let f = |demand| fc("region-north", 0, 10, demand, 0.0, Unit::KWh);
    // Two feeders rated 500 kW each, 5 h in, 3000 kWh delivered, loads 300+300.
    let within = [feeder("n1", 500.0, 300.0, 350.0, 1500.0), feeder("n2", 500.0, 300.0, 320.0, 1500.0)];
    let b = balance(&feeders(), &f(6000.0), &within, t(5));
    assert!((b.made - 3000.0).abs() < 1e-9);
    assert!((b.projected - 6000.0).abs() < 1e-9, "current load carried on: {}", b.projected);
    assert!((b.supply - 8000.0).abs() < 1e-9, "rated capacity for the rest: {}", b.supply);
    assert_eq!(b.load_kw, Some(600.0));
    assert_eq!(b.peak_load_kw, Some(670.0));
    assert_eq!(b.status, Status::Ok);
    assert_eq!(b.overload_kw, 0.0);

    // Forecast above what rated capacity can deliver: short on energy.
    let b = balance(&feeders(), &f(9000.0), &within, t(5));
    assert!((b.gap - 1000.0).abs() < 1e-9);
    assert_eq!(b.status, Status::Short);

    // Loaded above rating right now: short whatever the forecast says.
    let over = [feeder("n1", 500.0, 650.0, 650.0, 1500.0), feeder("n2", 500.0, 400.0, 400.0, 1500.0)];
    let b = balance(&feeders(), &f(1000.0), &over, t(5));
    assert_eq!(b.status, Status::Short);
    assert!((b.overload_kw - 50.0).abs() < 1e-9);

    // A feeder down for maintenance adds no capacity.
    let mut down = within.clone();
    down[1].state = Some(AssetState::Maintenance);
    let b = balance(&feeders(), &f(6000.0), &down, t(5));
    assert!((b.supply - 5500.0).abs() < 1e-9, "{}", b.supply);

    // A feeder down and expected back in 2 h adds its rating for the 3 h
    // after; its load still counts in `projected` for all 5.
    down[1].state = Some(AssetState::Down);
    let down = [down[0].clone(), back_at(down[1].clone(), 5, Some(7.0))];
    let b = balance(&feeders(), &f(6000.0), &down, t(5));
    assert!((b.supply - 7000.0).abs() < 1e-9, "{}", b.supply);
    assert!((b.projected - 6000.0).abs() < 1e-9, "{}", b.projected);
}
