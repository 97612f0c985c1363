use super::*;
use chrono::Duration;
use throughline_shared::{AgentId, AgentStatus, AssetState, Sample, SiteId};

use crate::model::{AssetConfig, AssetKind};
use crate::rollup::PendingMinutes;
use crate::state::{LiveEvent, LiveState};
use crate::testkit::{out, reg, t0, tel};

#[test]
fn take_touched_returns_each_change_once() {
    let mut st = LiveState::new(&[reg("a"), reg("b"), reg("c")], Duration::minutes(5));
    let mut touched = Touched::default();
    let apply = |st: &mut LiveState, touched: &mut Touched, t: Telemetry| {
        let out = st.apply_telemetry(&t, t0());
        touched.note_telemetry(&out);
    };
    let (assets, agents) = touched.take(&st);
    assert!(assets.is_empty() && agents.is_empty(), "nothing changed yet");

    apply(&mut st, &mut touched, tel("a", 1, vec![out(0, 1.0)]));
    apply(&mut st, &mut touched, tel("c", 2, vec![out(1, 1.0)]));
    let (assets, agents) = touched.take(&st);
    let names: Vec<_> = assets.iter().map(|a| a.asset.to_string()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].messages, 2);
    let (assets, agents) = touched.take(&st);
    assert!(assets.is_empty() && agents.is_empty(), "taken already");
    apply(&mut st, &mut touched, tel("b", 3, vec![out(2, 1.0)]));
    touched.clear();
    let (assets, agents) = touched.take(&st);
    assert!(assets.is_empty() && agents.is_empty(), "cleared");

    // A duplicate changes no asset (only the agent's duplicate count).
    apply(&mut st, &mut touched, tel("a", 1, vec![out(0, 1.0)]));
    let (assets, agents) = touched.take(&st);
    assert!(assets.is_empty());
    assert_eq!(agents[0].duplicates, 1);

    // The agent going offline changes the views of the assets it reports.
    let will = StatusMessage {
        site: SiteId::parse("s").unwrap(),
        agent: AgentId::parse("gw").unwrap(),
        status: AgentStatus {
            v: 1,
            online: false,
            ts: None,
            software: None,
            health: None,
            seq_skipped: None,
        },
    };
    let before = st.apply_status(&will, t0());
    touched.note_status(&st, &will, before);
    let (assets, _) = touched.take(&st);
    let names: Vec<_> = assets.iter().map(|a| (a.asset.to_string(), a.agent_online)).collect();
    let want = ["a", "b", "c"].map(|a| (a.to_string(), Some(false)));
    assert_eq!(names, want);
}

#[test]
fn alert_edges_are_state_changes_and_feeder_loads_crossing_the_rating() {
    let feeder =
        AssetConfig { kind: AssetKind::Feeder, rated_capacity: 100.0, group: "f".into(), ..reg("fd") };
    let mut st = LiveState::new(&[reg("a"), feeder], Duration::minutes(5));
    let mut edges = EdgeGroups::default();
    let edge = |st: &mut LiveState, edges: &mut EdgeGroups, t: Telemetry| {
        let out = st.apply_telemetry(&t, t0());
        edges.note(st, &t, &out)
    };
    let state = |secs, s: AssetState| Sample { state: Some(s), ..Sample::at(t0() + Duration::seconds(secs)) };
    let load = |secs, kw: f64| Sample { load_kw: Some(kw), ..Sample::at(t0() + Duration::seconds(secs)) };

    assert!(edge(&mut st, &mut edges, tel("a", 1, vec![state(0, AssetState::Running)])));
    assert!(!edge(&mut st, &mut edges, tel("a", 2, vec![out(1, 5.0)])), "output alone");
    assert!(!edge(&mut st, &mut edges, tel("a", 3, vec![state(2, AssetState::Running)])));
    assert!(edge(&mut st, &mut edges, tel("a", 4, vec![state(3, AssetState::Down)])));
    assert!(!edge(&mut st, &mut edges, tel("fd", 5, vec![load(0, 90.0)])));
    assert!(!edge(&mut st, &mut edges, tel("fd", 6, vec![load(1, 100.0)])), "at the rating");
    assert!(edge(&mut st, &mut edges, tel("fd", 7, vec![load(2, 150.0)])), "above it");
    assert!(!edge(&mut st, &mut edges, tel("fd", 8, vec![load(3, 160.0)])));
    assert!(edge(&mut st, &mut edges, tel("fd", 9, vec![load(4, 50.0)])), "back below");
    let groups: Vec<_> = edges.take().into_iter().collect();
    assert_eq!(groups, ["f", "g"]);
    assert!(edges.take().is_empty());
    // A duplicate is no edge.
    assert!(!edge(&mut st, &mut edges, tel("fd", 9, vec![load(4, 500.0)])));
}

/// One message with a state change, a late sample, a counter reset and a
/// feeder crossing its rating reaches every consumer once, each with what
/// it needs and nothing derived twice.
#[test]
fn one_message_fans_out_to_every_consumer() {
    let feeder =
        AssetConfig { kind: AssetKind::Feeder, rated_capacity: 100.0, group: "f".into(), ..reg("fd") };
    let mut st = LiveState::new(&[feeder], Duration::minutes(5));
    let (mut touched, mut edges, mut pending) =
        (Touched::default(), EdgeGroups::default(), PendingMinutes::new(Duration::hours(48)));
    let s = |secs: i64| Sample::at(t0() + Duration::seconds(secs));
    let first = tel(
        "fd",
        1,
        vec![Sample { output: Some(100.0), load_kw: Some(50.0), state: Some(AssetState::Running), ..s(0) }],
    );
    let o = st.apply_telemetry(&first, t0());
    touched.note_telemetry(&o);
    edges.note(&st, &first, &o);
    pending.note(&mut st, &o);
    assert_eq!(edges.take().into_iter().collect::<Vec<_>>(), ["f"], "first state is an edge");
    let _ = touched.take(&st);
    let _ = pending.take(&st);

    let msg = tel(
        "fd",
        2,
        vec![
            Sample { output: Some(110.0), load_kw: Some(150.0), ..s(60) },
            // Near zero: a reset.
            Sample { output: Some(1.0), state: Some(AssetState::Down), ..s(90) },
            // Behind, with a later sample past it: out of order, late.
            Sample { output: Some(6.0), ..s(30) },
            Sample { output: Some(7.0), load_kw: Some(20.0), ..s(150) },
        ],
    );
    let o = st.apply_telemetry(&msg, t0());
    assert_eq!(
        o.events,
        vec![
            LiveEvent::CounterReset { index: 1 },
            LiveEvent::StateChanged { index: 1, state: AssetState::Down },
            LiveEvent::Late { index: 2 },
        ],
        "back below its rating by the end: no crossing; the state change is one"
    );
    assert_eq!(
        o.minutes,
        Some(crate::history::MinuteSpan {
            first: t0().timestamp(),
            last: (t0() + Duration::minutes(2)).timestamp()
        })
    );
    assert!(o.alert_edge, "the state changed");
    assert_eq!((o.samples, o.late_samples, o.counter_resets), (4, 1, 1));

    touched.note_telemetry(&o);
    let (assets, agents) = touched.take(&st);
    assert_eq!((assets.len(), agents.len()), (1, 1));
    assert!(edges.note(&st, &msg, &o));
    assert_eq!(edges.take().into_iter().collect::<Vec<_>>(), ["f"]);
    pending.note(&mut st, &o);
    let rows = pending.take(&st);
    let starts: Vec<i64> = rows[0].2.iter().map(|(m, _)| *m).collect();
    assert_eq!(starts, [0, 1, 2].map(|m| (t0() + Duration::minutes(m)).timestamp()));
    assert!(pending.is_empty());

    // A load crossing alone is an edge and says which way.
    let up = tel("fd", 3, vec![Sample { load_kw: Some(180.0), ..s(160) }]);
    let o = st.apply_telemetry(&up, t0());
    assert!(o.events.contains(&LiveEvent::LoadCrossed { above: true }), "{:?}", o.events);
    assert!(edges.note(&st, &up, &o));

    // A duplicate reaches nobody but the agent's view.
    let o = st.apply_telemetry(&up, t0());
    assert!(o.duplicate && o.events.is_empty());
    touched.note_telemetry(&o);
    let (assets, agents) = touched.take(&st);
    assert_eq!((assets.len(), agents.len()), (0, 1));
    assert!(!edges.note(&st, &up, &o));
}

#[test]
fn a_failed_write_is_put_back_and_pending_minutes_survive_pruning() {
    let mut st = LiveState::new(&[reg("a")], Duration::minutes(5));
    let mut pending = PendingMinutes::new(Duration::hours(1));
    // Three hours, one sample a minute: memory is pruned to the last hour
    // plus an hour of slack, but nothing is lost before it is written.
    for m in 0..180 {
        let t = tel("a", m as u64 + 1, vec![out(m * 60, m as f64)]);
        let o = st.apply_telemetry(&t, t0());
        pending.note(&mut st, &o);
    }
    let rows = pending.take(&st);
    assert_eq!(rows[0].2.len(), 180, "every minute is written once");
    pending.put_back(&st, &rows);
    assert_eq!(pending.take(&st), rows, "a failed write is retried whole");
    let t = tel("a", 1000, vec![out(180 * 60, 180.0)]);
    let o = st.apply_telemetry(&t, t0());
    pending.note(&mut st, &o);
    let h = &st.asset(&t.site, &t.asset).unwrap().history;
    assert!(h.len() <= 61, "written minutes older than an hour are dropped: {}", h.len());
}

#[test]
fn a_1970_sample_then_a_current_one_costs_a_few_minutes() {
    let epoch = Sample {
        output: Some(1000.0),
        state: Some(AssetState::Running),
        ..Sample::at(chrono::DateTime::UNIX_EPOCH)
    };
    // In two messages, and both in one (the message then spans 57 years).
    for (seq, messages) in [
        (1, vec![vec![epoch.clone()], vec![out(0, 1003.0)]]),
        (10, vec![vec![epoch.clone(), out(0, 1003.0)]]),
    ] {
        let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
        let mut pending = PendingMinutes::new(Duration::hours(48));
        let started = std::time::Instant::now();
        for (i, samples) in messages.into_iter().enumerate() {
            let o = st.apply_telemetry(&tel("a", seq + i as u64, samples), t0());
            pending.note(&mut st, &o);
        }
        let rows = pending.take(&st);
        let took = started.elapsed();
        let a = st.assets().next().unwrap();
        assert!(a.history.len() <= 12, "{} minutes", a.history.len());
        assert_eq!(rows[0].2.len(), a.history.len(), "each minute written once, none made up");
        assert_eq!(a.output_total, 3.0);
        let written: f64 = rows[0].2.iter().map(|(_, m)| m.output).sum();
        assert!((written - 3.0).abs() < 1e-9, "{written}");
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    }
}
