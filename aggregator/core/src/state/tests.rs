use super::*;
use throughline_shared::AgentStatus;

use crate::testkit::{out, reg, t0, tel};

#[test]
fn seq_tracker_table() {
    use SeqOutcome::*;
    // (seq, expected outcome) in arrival order
    let cases: &[(u64, SeqOutcome)] = &[
        (10, First),
        (11, Ahead { skipped: 0 }),
        (11, Duplicate),
        (15, Ahead { skipped: 3 }), // 12, 13, 14 missing
        (13, LateFill),
        (13, Duplicate),
        (12, LateFill),
        (14, LateFill),
        (14, Duplicate),
        (9, Duplicate), // below the first seen: treated as a repeat
        (16, Ahead { skipped: 0 }),
        (1_000_016, Ahead { skipped: 999_999 }), // a jump of exactly the default window: still a gap
        (500_000, LateFill),
    ];
    let mut t = SeqTracker::default();
    for (i, (seq, want)) in cases.iter().enumerate() {
        assert_eq!(t.observe(*seq, DEFAULT_MAX_SEQ_JUMP), *want, "case {i}: seq {seq}");
    }
    assert_eq!(t.max(), Some(1_000_016));
    assert_eq!(t.missing(), 999_998);
}

#[test]
fn seq_tracker_memory_is_bounded() {
    let mut t = SeqTracker::default();
    for i in 0..(MAX_MISSING_RANGES as u64 + 10) {
        t.observe(i * 2, DEFAULT_MAX_SEQ_JUMP);
    }
    assert_eq!(t.missing.len(), MAX_MISSING_RANGES);
    // The oldest gaps are forgotten and count as repeats.
    assert_eq!(t.observe(1, DEFAULT_MAX_SEQ_JUMP), SeqOutcome::Duplicate);
}

#[test]
fn seq_jumps_beyond_the_window_start_a_new_epoch() {
    use SeqOutcome::*;
    const W: u64 = 1000;
    // (seq, expected outcome, highest and missing after it) in arrival order
    let cases: &[(u64, SeqOutcome, u64, u64)] = &[
        (10, First, 10, 0),
        (1010, Ahead { skipped: 999 }, 1010, 999), // a jump of exactly the window: a gap
        (u64::MAX, NewEpoch { previous: 1010 }, u64::MAX, 0), // not 1.8e19 missing
        (1011, NewEpoch { previous: u64::MAX }, 1011, 0), // back: the same agent, still not missing
        (1011, Duplicate, 1011, 0),
        (1013, Ahead { skipped: 1 }, 1013, 1),
        (1012, LateFill, 1013, 0),
        (13, Duplicate, 1013, 0),                 // the window below: a repeat
        (12, NewEpoch { previous: 1013 }, 12, 0), // further: a numbering from 1 again
        (13, Ahead { skipped: 0 }, 13, 0),        // ...which goes on normally
        (5, Duplicate, 13, 0),
        (3013, NewEpoch { previous: 13 }, 3013, 0), // a lost state file: numbering from the clock
        (3513, Ahead { skipped: 499 }, 3513, 499),
        (4013, Ahead { skipped: 499 }, 4013, 998),
        (3014, LateFill, 4013, 997), // a missing number far below is still new
        (3013, Duplicate, 4013, 997),
        (2012, NewEpoch { previous: 4013 }, 2012, 0), // more than the window below, not missing
    ];
    let mut t = SeqTracker::default();
    for (i, &(seq, want, max, missing)) in cases.iter().enumerate() {
        assert_eq!(t.observe(seq, W), want, "case {i}: seq {seq}");
        assert_eq!((t.max(), t.missing()), (Some(max), missing), "case {i}: seq {seq}");
    }
    // The window is the caller's: with the default, a jump of a million is a gap.
    let mut t = SeqTracker::default();
    t.observe(0, DEFAULT_MAX_SEQ_JUMP);
    assert_eq!(t.observe(1_000_000, DEFAULT_MAX_SEQ_JUMP), Ahead { skipped: 999_999 });
    assert_eq!(t.observe(2_000_001, DEFAULT_MAX_SEQ_JUMP), NewEpoch { previous: 1_000_000 });
}

#[test]
fn a_new_epoch_is_counted_on_the_agent_and_in_the_outcome() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300)).with_max_seq_jump(100);
    let o = st.apply_telemetry(&tel("a", 5, vec![out(0, 1.0)]), t0());
    assert_eq!((o.seq_epoch, o.seq_skipped), (None, 0));
    let o = st.apply_telemetry(&tel("a", u64::MAX, vec![out(1, 2.0)]), t0());
    assert_eq!((o.seq_epoch, o.seq_skipped, o.duplicate, o.samples), (Some(5), 0, false, 1));
    let o = st.apply_telemetry(&tel("a", 6, vec![out(2, 3.0)]), t0());
    assert_eq!(o.seq_epoch, Some(u64::MAX));
    let o = st.apply_telemetry(&tel("a", 8, vec![out(3, 4.0)]), t0());
    assert_eq!((o.seq_epoch, o.seq_skipped), (None, 1));
    let g = st.agents().next().unwrap();
    assert_eq!((g.seq_epochs, g.messages, g.duplicates), (2, 4, 0));
    let v = st.agent_view(g);
    assert_eq!((v.seq_epochs, v.last_seq, v.seq_missing), (2, Some(8), 1));
    assert_eq!(st.assets().next().unwrap().output_total, 3.0, "every message applied");
    // Without the setting, the default window.
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    st.apply_telemetry(&tel("a", 5, vec![out(0, 1.0)]), t0());
    let o = st.apply_telemetry(&tel("a", 5 + DEFAULT_MAX_SEQ_JUMP, vec![out(1, 2.0)]), t0());
    assert_eq!((o.seq_epoch, o.seq_skipped), (None, DEFAULT_MAX_SEQ_JUMP - 1));
}

#[test]
fn duplicates_change_nothing() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    let m = tel("a", 1, vec![out(0, 100.0), out(1, 101.0)]);
    let o = st.apply_telemetry(&m, t0());
    assert_eq!((o.samples, o.duplicate), (2, false));
    let o = st.apply_telemetry(&m, t0());
    assert!(o.duplicate);
    assert_eq!(o.samples, 0);
    let a = st.asset(&m.site, &m.asset).unwrap();
    assert_eq!(a.samples, 2);
    assert_eq!(a.output_total, 1.0);
    assert_eq!(st.agent(&m.envelope.agent).unwrap().duplicates, 1);
}

#[test]
fn counter_reset_is_not_negative_output() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    // 100 -> 110 (+10), reset to 3 (+3), 3 -> 8 (+5)
    let o = st
        .apply_telemetry(&tel("a", 1, vec![out(0, 100.0), out(10, 110.0), out(20, 3.0), out(30, 8.0)]), t0());
    assert_eq!(o.counter_resets, 1);
    let a = st.assets().next().unwrap();
    assert_eq!(a.output_total, 18.0);
    assert_eq!(a.output_counter, Some(8.0));
    assert_eq!(a.counter_resets, 1);
}

#[test]
fn rate_over_the_window_in_event_time() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(60));
    // One piece a second for two minutes: 3600 pieces/h whatever the arrival time.
    let samples: Vec<Sample> = (0..=120).map(|i| out(i, i as f64)).collect();
    st.apply_telemetry(&tel("a", 1, samples), t0() + Duration::days(3));
    let a = st.assets().next().unwrap();
    assert_eq!(a.rate_per_hour(), Some(3600.0));
    // Then stopped for 30 s: half the window without output.
    let samples: Vec<Sample> = (121..=150).map(|i| out(i, 120.0)).collect();
    st.apply_telemetry(&tel("a", 2, samples), t0());
    let rate = st.assets().next().unwrap().rate_per_hour().unwrap();
    assert!((rate - 1800.0).abs() < 61.0, "{rate}");
}

#[test]
fn state_since_reason_and_load() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    let run = |s: i64| Sample {
        state: Some(AssetState::Running),
        load_kw: Some(40.0),
        ..Sample::at(t0() + Duration::seconds(s))
    };
    let down = |s: i64| Sample {
        state: Some(AssetState::Down),
        reason: Some("jam".into()),
        load_kw: Some(2.0),
        ..Sample::at(t0() + Duration::seconds(s))
    };
    st.apply_telemetry(&tel("a", 1, vec![run(0), run(1), down(2), down(3)]), t0());
    let a = st.assets().next().unwrap();
    assert_eq!(a.state, Some(AssetState::Down));
    assert_eq!(a.state_since, Some(t0() + Duration::seconds(2)));
    assert_eq!(a.reason.as_deref(), Some("jam"));
    assert_eq!(a.load_kw, Some(2.0));
    st.apply_telemetry(&tel("a", 2, vec![run(4)]), t0());
    let a = st.assets().next().unwrap();
    assert_eq!((a.state, a.reason.as_deref()), (Some(AssetState::Running), None));
    assert_eq!(a.state_since, Some(t0() + Duration::seconds(4)));
}

#[test]
fn late_samples_do_not_rewind_live_state() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 5, vec![out(1, 10.0)]), t0());
    st.apply_telemetry(&tel("a", 7, vec![out(10, 50.0)]), t0());
    let o = st.apply_telemetry(&tel("a", 6, vec![out(5, 40.0)]), t0());
    assert!(o.late_fill);
    assert_eq!(o.late_samples, 1);
    let a = st.assets().next().unwrap();
    assert_eq!((a.output_counter, a.last_ts), (Some(50.0), Some(t0() + Duration::seconds(10))));
    assert_eq!(a.counter_resets, 0);
}

#[test]
fn unregistered_assets_are_kept_and_marked() {
    let mut st = LiveState::new(&[reg("known")], Duration::seconds(60));
    let o = st.apply_telemetry(&tel("stranger", 1, vec![out(0, 1.0)]), t0());
    assert!(o.new_unregistered_asset);
    let views: Vec<AssetView> = st.assets().map(|a| st.asset_view(a)).collect();
    assert_eq!(views.len(), 2);
    let stranger = views.iter().find(|v| v.asset.as_str() == "stranger").unwrap();
    assert!(!stranger.registered);
    assert_eq!(stranger.samples, 1);
    let known = views.iter().find(|v| v.asset.as_str() == "known").unwrap();
    assert!(known.registered && known.samples == 0);
}

#[test]
fn last_will_marks_the_agent_offline() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    let o = st.apply_telemetry(&tel("a", 1, vec![out(0, 1.0)]), t0());
    assert!(o.agent_came_online);
    let agent = AgentId::parse("gw").unwrap();
    let will = StatusMessage {
        site: SiteId::parse("s").unwrap(),
        agent: agent.clone(),
        status: AgentStatus { v: 1, online: false, ts: None, software: None, health: None },
    };
    assert_eq!(st.apply_status(&will, t0()), Some(true));
    assert_eq!(st.agent(&agent).unwrap().online, Some(false));
    let view = st.asset_view(st.assets().next().unwrap());
    assert_eq!(view.agent_online, Some(false));
}

#[test]
fn bucket_output_across_a_counter_reset() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    // 08:00 100, 08:10 160 (+60), 08:20 reset to 30 (+30), 08:30 90 (+60).
    let samples = vec![out(0, 100.0), out(600, 160.0), out(1200, 30.0), out(1800, 90.0)];
    st.apply_telemetry(&tel("a", 1, samples), t0());
    let a = st.assets().next().unwrap();
    assert_eq!(a.counter_resets, 1);
    let h = &a.history;
    assert!((h.output_between(t0(), t0() + Duration::minutes(30)) - 150.0).abs() < 1e-9);
    // Bucket 08:10-08:20 holds the interval that ended in the reset: +30.
    assert!(
        (h.output_between(t0() + Duration::minutes(10), t0() + Duration::minutes(20)) - 30.0).abs() < 1e-9
    );
    assert!(
        (h.output_between(t0() + Duration::minutes(20), t0() + Duration::minutes(30)) - 60.0).abs() < 1e-9
    );
}
