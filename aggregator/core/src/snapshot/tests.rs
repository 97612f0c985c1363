use chrono::Duration;
use throughline_shared::{AssetState, Sample};

use super::*;
use crate::testkit::{out, reg, t0, tel};

fn envelopes() -> Vec<throughline_shared::codec::Telemetry> {
    (0..40u64)
        .map(|i| {
            let secs = i as i64 * 7;
            let mut s = out(secs, 1000.0 + i as f64 * 3.0);
            s.state = Some(if (10..14).contains(&i) { AssetState::Down } else { AssetState::Running });
            tel(if i % 2 == 0 { "l1" } else { "l2" }, i, vec![s])
        })
        .collect()
}

/// A fresh state from `before`'s snapshot and stored history, as a restart does.
fn restarted(before: &LiveState) -> LiveState {
    let mut dirty = Dirty::default();
    dirty.all(before);
    let rows = dirty.take(before);
    let mut after = LiveState::new(&[reg("l1"), reg("l2")], Duration::minutes(5));
    for a in before.assets() {
        let minutes: Vec<_> = a.history.minutes().map(|(m, s)| (m, *s)).collect();
        after.restore_history(&a.site, &a.asset, minutes);
    }
    for a in rows.assets {
        after.restore_asset(a);
    }
    for g in rows.agents {
        after.restore_agent(g);
    }
    after
}

#[test]
fn a_restart_in_the_middle_gives_the_state_of_a_run_without_one() {
    let env = envelopes();
    let mut straight = LiveState::new(&[reg("l1"), reg("l2")], Duration::minutes(5));
    for t in &env {
        straight.apply_telemetry(t, t0());
    }
    let mut first = LiveState::new(&[reg("l1"), reg("l2")], Duration::minutes(5));
    for t in &env[..23] {
        first.apply_telemetry(t, t0());
    }
    let mut second = restarted(&first);
    // When each asset was last heard (server clock) comes back: a backfill
    // under way stays "behind but delivering" across the restart.
    let heard = |st: &LiveState| st.assets().map(|a| a.last_message).collect::<Vec<_>>();
    assert_eq!(heard(&second), heard(&first));
    assert!(heard(&second).iter().all(Option::is_some));
    // The broker redelivers what it had not seen acknowledged: recognised.
    for t in &env[20..23] {
        assert!(second.apply_telemetry(t, t0()).duplicate, "seq {} redelivered", t.envelope.seq);
    }
    for t in &env[23..] {
        let o = second.apply_telemetry(t, t0());
        assert!(!o.duplicate && o.seq_skipped == 0, "{o:?}");
    }
    for (a, b) in straight.assets().zip(second.assets()) {
        assert_eq!(a.output_total, b.output_total, "{}: the interval across the restart counts", a.asset);
        assert_eq!((a.last_ts, a.state, a.state_since), (b.last_ts, b.state, b.state_since));
        let ma: Vec<_> = a.history.minutes().collect();
        let mb: Vec<_> = b.history.minutes().collect();
        assert_eq!(ma, mb, "{}: the same minutes", a.asset);
        assert_eq!(a.rate_per_hour(), b.rate_per_hour());
    }
    let (ga, gb) = (straight.agents().next().unwrap(), second.agents().next().unwrap());
    assert_eq!((ga.seq.max(), ga.seq.missing()), (gb.seq.max(), gb.seq.missing()));
    assert_eq!(gb.duplicates, 3);
    assert_eq!(straight.watermark(), second.watermark());
}

#[test]
fn without_the_snapshot_the_restart_loses_the_interval_and_takes_redeliveries_as_new() {
    // The failure the snapshot prevents, shown on the same data.
    let env = envelopes();
    let mut first = LiveState::new(&[reg("l1"), reg("l2")], Duration::minutes(5));
    for t in &env[..23] {
        first.apply_telemetry(t, t0());
    }
    let mut blank = LiveState::new(&[reg("l1"), reg("l2")], Duration::minutes(5));
    assert!(!blank.apply_telemetry(&env[22], t0()).duplicate);
}

#[test]
fn a_gap_still_missing_stays_missing_and_an_unregistered_asset_comes_back() {
    let mut st = LiveState::new(&[reg("l1")], Duration::minutes(5));
    st.apply_telemetry(&tel("l1", 1, vec![out(0, 5.0)]), t0());
    st.apply_telemetry(&tel("l1", 5, vec![out(10, 9.0)]), t0());
    st.apply_telemetry(&tel("stray", 6, vec![Sample { load_kw: Some(3.0), ..Sample::at(t0()) }]), t0());
    let mut back = restarted(&st);
    assert_eq!(back.agents().next().unwrap().seq.missing(), 3);
    assert!(
        back.asset_view(back.assets().find(|a| a.asset.as_str() == "stray").unwrap()).load_kw == Some(3.0)
    );
    // A late fill of the gap is new, not a duplicate.
    let o = back.apply_telemetry(&tel("l1", 3, vec![out(5, 7.0)]), t0());
    assert!(o.late_fill && !o.duplicate);
}

#[test]
fn lost_ranges_announced_skips_and_late_fills_survive_a_restart() {
    let mut st = LiveState::new(&[reg("l1")], Duration::minutes(5));
    let agent = throughline_shared::AgentId::parse("gw").unwrap();
    st.apply_telemetry(&tel("l1", 1, vec![out(0, 5.0)]), t0());
    st.apply_telemetry(&tel("l1", 20, vec![out(10, 9.0)]), t0()); // 2..=19 missing
    assert_eq!(st.declare_lost(&agent, SeqRange { from: 2, to: 9 }), 8);
    st.apply_telemetry(&tel("l1", 15, vec![out(5, 7.0)]), t0());
    let site = throughline_shared::SiteId::parse("s").unwrap();
    st.agent_mut(&agent, &site).seq.excuse(SeqRange { from: 30, to: 40 });
    let mut back = restarted(&st);
    let (a, b) = (st.agent_view(st.agents().next().unwrap()), back.agent_view(back.agents().next().unwrap()));
    assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
    assert_eq!((b.seq_lost, b.seq_missing, b.seq_late_fills), (8, 9, 1));
    // The announcement still keeps its block out of a later gap.
    assert_eq!(back.apply_telemetry(&tel("l1", 45, vec![out(20, 9.0)]), t0()).seq_skipped, 4 + 9);
    // A lost number arriving after the restart is still taken (late: seq 15
    // filled the start of the interval over its gap already).
    let o = back.apply_telemetry(&tel("l1", 3, vec![out(1, 5.0)]), t0());
    assert!(o.late_fill && o.late_samples == 1, "{o:?}");
    // The rest of that interval, remembered across the restart, takes 17.
    let o = back.apply_telemetry(&tel("l1", 17, vec![out(7, 8.0)]), t0());
    assert!(o.late_fill && o.filled_samples == 1, "{o:?}");
}

#[test]
fn the_rate_window_is_thinned_keeping_both_ends() {
    let pts: Vec<(i64, f64)> = (0..1000).map(|i| (i, i as f64)).collect();
    let t = thin(pts.iter().copied(), WINDOW_POINTS);
    assert_eq!(t.len(), WINDOW_POINTS);
    assert_eq!((t[0], t[WINDOW_POINTS - 1]), ((0, 0.0), (999, 999.0)));
    assert_eq!(thin(pts[..5].iter().copied(), WINDOW_POINTS).len(), 5);
}

#[test]
fn snapshots_round_trip_through_json() {
    let mut st = LiveState::new(&[reg("l1")], Duration::minutes(5));
    for t in envelopes().iter().filter(|t| t.asset.as_str() == "l1") {
        st.apply_telemetry(t, t0());
    }
    let mut d = Dirty::default();
    d.all(&st);
    let rows = d.take(&st);
    assert!(d.is_empty());
    let json = serde_json::to_string(&rows.assets).unwrap();
    let back: Vec<AssetSnapshot> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rows.assets);
    let json = serde_json::to_string(&rows.agents).unwrap();
    let back: Vec<AgentSnapshot> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rows.agents);
}

#[test]
fn an_assets_stops_survive_a_restart() {
    // Each line is down once for 28 s (envelopes 10 to 13, 7 s apart).
    let env = envelopes();
    let mut st = LiveState::new(&[reg("l1"), reg("l2")], Duration::minutes(5));
    for t in &env {
        st.apply_telemetry(t, t0());
    }
    let stops = |st: &LiveState, id: &str| {
        let a = st.assets().find(|a| a.asset.as_str() == id).unwrap();
        a.stops.iter().cloned().collect::<Vec<_>>()
    };
    let back = restarted(&st);
    for id in ["l1", "l2"] {
        let before = stops(&st, id);
        assert_eq!(before.iter().map(|s| s.secs).collect::<Vec<_>>(), [28.0], "{id}");
        assert_eq!(stops(&back, id), before, "{id}");
    }
    // A snapshot written before stops were kept reads as none.
    let mut d = Dirty::default();
    d.all(&st);
    let mut json = serde_json::to_value(&d.take(&st).assets[0]).unwrap();
    json.as_object_mut().unwrap().remove("stops");
    let old: AssetSnapshot = serde_json::from_value(json).unwrap();
    assert!(old.stops.is_empty());
}

#[test]
fn a_counter_jump_being_confirmed_and_the_step_counts_survive_a_restart() {
    // 1000 at 0 s; a forged reading, then the counter jumps to 5e6 and stays.
    let readings = [(0, 1000.0), (10, 1e12), (20, 5e6), (30, 5e6 + 10.0), (40, 5e6 + 20.0), (50, 5e6 + 30.0)];
    let envelope = |i: usize| tel("l1", i as u64 + 1, vec![out(readings[i].0, readings[i].1)]);
    let mut straight = LiveState::new(&[reg("l1")], Duration::minutes(5));
    for i in 0..readings.len() {
        straight.apply_telemetry(&envelope(i), t0());
    }
    let mut first = LiveState::new(&[reg("l1")], Duration::minutes(5));
    for i in 0..4 {
        first.apply_telemetry(&envelope(i), t0());
    }
    let waiting = first.assets().next().unwrap().pending_rebase;
    assert_eq!(waiting.map(|p| (p.first, p.level, p.readings)), Some((5e6, 5e6 + 10.0, 2)));
    let mut second = restarted(&first);
    assert_eq!(second.assets().next().unwrap().pending_rebase, waiting);
    let o = second.apply_telemetry(&envelope(4), t0());
    assert_eq!(
        o.events,
        [crate::state::LiveEvent::CounterRebase { index: 0 }],
        "the third reading at the level"
    );
    second.apply_telemetry(&envelope(5), t0());
    let (a, b) = (straight.assets().next().unwrap(), second.assets().next().unwrap());
    assert_eq!((a.implausible_steps, a.counter_rebases, a.output_total), (3, 1, 30.0));
    assert_eq!(
        (b.implausible_steps, b.counter_rebases, b.output_total, b.output_counter, b.output_counter_ts),
        (a.implausible_steps, a.counter_rebases, a.output_total, a.output_counter, a.output_counter_ts)
    );
}

#[test]
fn a_step_after_a_restart_is_judged_over_the_time_since_the_last_good_reading() {
    let mut st = LiveState::new(&[reg("l1")], Duration::minutes(5));
    // A good reading, then a state-only sample an hour later.
    st.apply_telemetry(&tel("l1", 1, vec![out(0, 1000.0)]), t0());
    let idle = Sample { state: Some(AssetState::Idle), ..Sample::at(t0() + Duration::hours(1)) };
    st.apply_telemetry(&tel("l1", 2, vec![idle]), t0());
    let mut back = restarted(&st);
    assert_eq!(back.assets().next().unwrap().output_counter_ts, Some(t0()));
    // 30000 pieces in the hour and a minute since: within 10 x 3600/h.
    let o = back.apply_telemetry(&tel("l1", 3, vec![out(3660, 31_000.0)]), t0());
    assert_eq!((o.implausible_steps, back.assets().next().unwrap().output_total), (0, 30_000.0));
    // A snapshot written before the time was kept takes the last sample's.
    let mut d = Dirty::default();
    d.all(&st);
    let mut json = serde_json::to_value(&d.take(&st).assets[0]).unwrap();
    for key in ["output_counter_ts", "implausible_steps", "counter_rebases", "pending_rebase"] {
        json.as_object_mut().unwrap().remove(key).unwrap();
    }
    let old: AssetSnapshot = serde_json::from_value(json).unwrap();
    let mut st = LiveState::new(&[reg("l1")], Duration::minutes(5));
    st.restore_asset(old);
    let a = st.assets().next().unwrap();
    assert_eq!(
        (a.output_counter_ts, a.implausible_steps, a.pending_rebase),
        (Some(t0() + Duration::hours(1)), 0, None)
    );
}
