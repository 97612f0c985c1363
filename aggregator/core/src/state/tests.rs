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

fn range(from: u64, to: u64) -> SeqRange {
    SeqRange { from, to }
}

#[test]
fn announced_skips_are_neither_missing_nor_counted_as_gaps() {
    let mut t = SeqTracker::default();
    t.observe(10, DEFAULT_MAX_SEQ_JUMP);
    // Announced before the gap appears (the status comes before the envelopes).
    assert_eq!(t.excuse(range(12, 14)), 0);
    assert_eq!(t.observe(20, DEFAULT_MAX_SEQ_JUMP), SeqOutcome::Ahead { skipped: 6 });
    assert_eq!(t.missing_ranges().collect::<Vec<_>>(), [range(11, 11), range(15, 19)]);
    // ...or after it: taken out of what is missing.
    assert_eq!(t.excuse(range(15, 16)), 2);
    assert_eq!(t.excuse(range(15, 16)), 0, "again (a retained status read again): nothing more");
    assert_eq!((t.missing(), t.excused()), (4, 5));
    assert_eq!(t.observe(13, DEFAULT_MAX_SEQ_JUMP), SeqOutcome::Duplicate, "never used, never new");
    for i in 0..10 {
        t.excuse(range(100 + i, 100 + i));
    }
    assert_eq!(t.announced.len(), MAX_ANNOUNCED, "bounded");
}

#[test]
fn lost_ranges_are_counted_bounded_and_a_late_arrival_is_still_taken() {
    let mut t = SeqTracker::default();
    t.observe(1, DEFAULT_MAX_SEQ_JUMP);
    t.observe(10, DEFAULT_MAX_SEQ_JUMP); // 2..=9 missing
    assert_eq!(t.observe(3, DEFAULT_MAX_SEQ_JUMP), SeqOutcome::LateFill);
    assert_eq!(t.declare_lost(range(0, 100)), 7, "only what is missing");
    assert_eq!((t.missing(), t.lost()), (0, 7));
    assert_eq!(t.lost_ranges().collect::<Vec<_>>(), [range(2, 2), range(4, 9)]);
    assert_eq!(t.observe(5, DEFAULT_MAX_SEQ_JUMP), SeqOutcome::LateFill, "lost, then resent after all");
    assert_eq!(t.observe(5, DEFAULT_MAX_SEQ_JUMP), SeqOutcome::Duplicate);
    assert_eq!(t.lost(), 6);
    assert_eq!(t.lost_ranges().collect::<Vec<_>>(), [range(2, 2), range(4, 4), range(6, 9)]);
    assert_eq!(t.declare_lost(range(4, 4)), 0, "lost already");
    let mut t = SeqTracker::default();
    for i in 0..100u64 {
        t.observe(i * 3, DEFAULT_MAX_SEQ_JUMP);
    }
    for r in t.missing_ranges().collect::<Vec<_>>() {
        t.declare_lost(r);
    }
    assert_eq!((t.lost.len(), t.lost(), t.missing()), (MAX_LOST_RANGES, 198, 0), "ranges bounded, count not");
}

#[test]
fn a_status_with_skipped_numbers_excuses_them_and_the_view_shows_losses() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 100, vec![out(0, 1.0)]), t0());
    let agent = AgentId::parse("gw").unwrap();
    let status = |skipped| StatusMessage {
        site: SiteId::parse("s").unwrap(),
        agent: agent.clone(),
        status: AgentStatus {
            v: 1,
            online: true,
            ts: None,
            software: None,
            health: None,
            seq_skipped: skipped,
        },
    };
    st.apply_status(&status(Some(range(101, 130))), t0());
    let o = st.apply_telemetry(&tel("a", 140, vec![out(10, 2.0)]), t0());
    assert_eq!(o.seq_skipped, 9, "131..=139; the announced block is no gap");
    assert_eq!(st.declare_lost(&agent, range(131, 135)), 5);
    assert!(st.apply_telemetry(&tel("a", 133, vec![out(5, 1.5)]), t0()).late_fill);
    let v = st.agent_view(st.agent(&agent).unwrap());
    assert_eq!((v.seq_missing, v.seq_lost, v.seq_skipped_announced, v.seq_late_fills), (4, 4, 30, 1));
    assert_eq!(v.lost_ranges, [range(131, 132), range(134, 135)]);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["lost_ranges"][0], serde_json::json!({"from": 131, "to": 132}));
    assert_eq!(st.declare_lost(&AgentId::parse("nobody").unwrap(), range(1, 2)), 0);
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
    // 100 -> 110 (+10), reset to 1 (+1), 1 -> 6 (+5)
    let o = st
        .apply_telemetry(&tel("a", 1, vec![out(0, 100.0), out(10, 110.0), out(20, 1.0), out(30, 6.0)]), t0());
    assert_eq!(o.counter_resets, 1);
    let a = st.assets().next().unwrap();
    assert_eq!(a.output_total, 16.0);
    assert_eq!(a.output_counter, Some(6.0));
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
fn each_down_stop_is_noted_when_it_ends_in_event_time() {
    use crate::stops::Stop;
    use AssetState::{Down, Idle, Running};
    let at = |s: i64| t0() + Duration::seconds(s);
    // One sample every 10 s over [from, to).
    let span = |from: i64, to: i64, state: AssetState, reason: Option<&str>| -> Vec<Sample> {
        (from..to)
            .step_by(10)
            .map(|s| Sample { state: Some(state), reason: reason.map(str::to_string), ..Sample::at(at(s)) })
            .collect()
    };
    // Down 40 s for a jam; running; down 90 s, the reason given only after
    // 20 s; idle (ends it as well); down, still.
    let mut s = span(0, 100, Running, None);
    s.extend(span(100, 140, Down, Some("jam")));
    s.extend(span(140, 300, Running, None));
    s.extend(span(300, 320, Down, None));
    s.extend(span(320, 390, Down, Some("motor")));
    s.extend(span(390, 500, Idle, None));
    s.extend(span(500, 560, Down, Some("jam")));
    // One sample per message, as live; and all in one, as a backfill.
    let mut live = LiveState::new(&[reg("l1")], Duration::minutes(5));
    for (i, x) in s.iter().enumerate() {
        live.apply_telemetry(&tel("l1", i as u64 + 1, vec![x.clone()]), at(560));
    }
    let mut backfill = LiveState::new(&[reg("l1")], Duration::minutes(5));
    backfill.apply_telemetry(&tel("l1", 1, s), at(560));
    let stop =
        |reason: &str, start: i64, secs: f64| Stop { reason: Some(reason.into()), start: at(start), secs };
    for st in [&live, &backfill] {
        let a = st.assets().next().unwrap();
        assert_eq!(
            a.stops.iter().cloned().collect::<Vec<_>>(),
            [stop("jam", 100, 40.0), stop("motor", 300, 90.0)]
        );
        assert_eq!(
            (a.state, a.state_since),
            (Some(Down), Some(at(500))),
            "the stop under way is not noted yet"
        );
    }
    // Kept for the stop window after they end (the availability window).
    let mut short = LiveState::new(&[reg("l1")], Duration::minutes(5)).with_stop_window(Duration::minutes(5));
    let mut s = span(0, 20, Down, Some("jam"));
    s.extend(span(20, 400, Running, None));
    s.extend(span(400, 420, Down, Some("jam")));
    s.extend(span(420, 430, Running, None));
    short.apply_telemetry(&tel("l1", 1, s), at(430));
    let a = short.assets().next().unwrap();
    assert_eq!(
        a.stops.iter().map(|s| s.start).collect::<Vec<_>>(),
        [at(400)],
        "the first ended 6 min before"
    );
}

#[test]
fn late_fills_do_not_rewind_live_state() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 5, vec![out(1, 10.0)]), t0());
    st.apply_telemetry(&tel("a", 7, vec![out(10, 50.0)]), t0());
    let o = st.apply_telemetry(&tel("a", 6, vec![out(5, 40.0)]), t0());
    assert!(o.late_fill);
    assert_eq!((o.late_samples, o.filled_samples), (0, 1));
    let a = st.assets().next().unwrap();
    assert_eq!((a.output_counter, a.last_ts), (Some(50.0), Some(t0() + Duration::seconds(10))));
    assert_eq!((a.counter_resets, a.output_total), (0, 40.0));
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
        status: AgentStatus {
            v: 1,
            online: false,
            ts: None,
            software: None,
            health: None,
            seq_skipped: None,
        },
    };
    assert_eq!(st.apply_status(&will, t0()), Some(true));
    assert_eq!(st.agent(&agent).unwrap().online, Some(false));
    let view = st.asset_view(st.assets().next().unwrap());
    assert_eq!(view.agent_online, Some(false));
}

#[test]
fn bucket_output_across_a_counter_reset() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    // 08:00 10000, 08:10 10060 (+60), 08:20 reset to 30 (+30), 08:30 90 (+60).
    let samples = vec![out(0, 10000.0), out(600, 10060.0), out(1200, 30.0), out(1800, 90.0)];
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

/// Output counters as gateways deliver them: what each pattern adds, and
/// whether a dip is taken as a reset (near zero) or a glitch (skipped).
#[test]
fn counter_dips_table() {
    struct Case {
        name: &'static str,
        readings: &'static [f64],
        added: f64,
        resets: u64,
        glitches: u64,
        counter: f64,
    }
    let cases = [
        Case {
            name: "16-bit register wraps: near zero, a reset",
            readings: &[65520.0, 65530.0, 4.0, 10.0],
            added: 10.0 + 4.0 + 6.0,
            resets: 1,
            glitches: 0,
            counter: 10.0,
        },
        Case {
            name: "32-bit register wraps",
            readings: &[4_294_967_000.0, 4_294_967_290.0, 7.0],
            added: 290.0 + 7.0,
            resets: 1,
            glitches: 0,
            counter: 7.0,
        },
        Case {
            name: "PLC restart: to zero, then counting again",
            readings: &[12_340.0, 12_345.0, 0.0, 3.0],
            added: 5.0 + 0.0 + 3.0,
            resets: 1,
            glitches: 0,
            counter: 3.0,
        },
        Case {
            name: "float jitter: the low reading is skipped",
            readings: &[100_000.0, 100_001.0, 100_000.5, 100_002.0],
            added: 2.0,
            resets: 0,
            glitches: 1,
            counter: 100_002.0,
        },
        Case {
            name: "a register read twice: the same value, nothing added, no glitch",
            readings: &[500.0, 500.0, 501.0, 501.0],
            added: 1.0,
            resets: 0,
            glitches: 0,
            counter: 501.0,
        },
        Case {
            name: "a stale lower reading between good ones",
            readings: &[1000.0, 1010.0, 990.0, 1020.0, 1030.0],
            added: 30.0,
            resets: 0,
            glitches: 1,
            counter: 1030.0,
        },
        Case {
            name: "two stale readings in a row: each skipped, both against the last good one",
            readings: &[1000.0, 1010.0, 990.0, 1005.0, 1020.0],
            added: 20.0,
            resets: 0,
            glitches: 2,
            counter: 1020.0,
        },
        Case {
            name: "exactly 1 % of the last reading is a reset",
            readings: &[1000.0, 10.0, 15.0],
            added: 10.0 + 5.0,
            resets: 1,
            glitches: 0,
            counter: 15.0,
        },
        Case {
            name: "just above 1 % is a glitch",
            readings: &[1000.0, 10.5, 1001.0],
            added: 1.0,
            resets: 0,
            glitches: 1,
            counter: 1001.0,
        },
    ];
    for c in cases {
        let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
        let mut o = TelemetryOutcome::default();
        let mut events = Vec::new();
        for (i, v) in c.readings.iter().enumerate() {
            let m = st.apply_telemetry(&tel("a", i as u64 + 1, vec![out(i as i64 * 10, *v)]), t0());
            o.counter_resets += m.counter_resets;
            o.counter_glitches += m.counter_glitches;
            events.extend(m.events);
        }
        let a = st.assets().next().unwrap();
        assert!((a.output_total - c.added).abs() < 1e-9, "{}: added {}", c.name, a.output_total);
        let in_history = a.history.output_between(t0(), t0() + Duration::hours(1));
        assert!((in_history - c.added).abs() < 1e-6, "{}: history {in_history}", c.name);
        assert_eq!((a.counter_resets, a.counter_glitches), (c.resets, c.glitches), "{}", c.name);
        assert_eq!((o.counter_resets, o.counter_glitches), (c.resets, c.glitches), "{}", c.name);
        let glitch_events = events.iter().filter(|e| matches!(e, LiveEvent::CounterGlitch { .. })).count();
        assert_eq!(glitch_events as u64, c.glitches, "{}: {events:?}", c.name);
        assert_eq!(a.output_counter, Some(c.counter), "{}", c.name);
        let view = st.asset_view(a);
        assert_eq!((view.counter_resets, view.counter_glitches), (c.resets, c.glitches), "{}", c.name);
    }
}

#[test]
fn a_glitch_still_applies_the_samples_state_and_load() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    st.apply_telemetry(&tel("a", 1, vec![out(0, 2000.0)]), t0());
    let low = Sample {
        output: Some(1999.0),
        state: Some(AssetState::Down),
        load_kw: Some(3.0),
        ..Sample::at(t0() + Duration::seconds(10))
    };
    let o = st.apply_telemetry(&tel("a", 2, vec![low]), t0());
    assert_eq!(
        o.events,
        [
            LiveEvent::CounterGlitch { index: 0 },
            LiveEvent::StateChanged { index: 0, state: AssetState::Down }
        ]
    );
    let a = st.assets().next().unwrap();
    assert_eq!((a.state, a.load_kw, a.output_counter), (Some(AssetState::Down), Some(3.0), Some(2000.0)));
    assert_eq!((a.samples, a.last_ts), (2, Some(t0() + Duration::seconds(10))));
}

#[test]
fn the_reset_fraction_comes_from_the_settings() {
    let settings =
        StateSettings { counter_reset_fraction: 0.5, ..StateSettings::new(Duration::seconds(300)) };
    let mut st = LiveState::with_settings(&[reg("a")], settings);
    // 400 is 40 % of 1000: a reset at 50 %, a glitch at the default 1 %.
    for (i, v) in [1000.0, 400.0, 410.0].into_iter().enumerate() {
        st.apply_telemetry(&tel("a", i as u64 + 1, vec![out(i as i64 * 10, v)]), t0());
    }
    let a = st.assets().next().unwrap();
    assert_eq!((a.counter_resets, a.counter_glitches, a.output_total), (1, 0, 410.0));
}

/// Counter steps against what the asset's rated capacity could make: a
/// line rated 3600 pieces/h, a feeder rated 500 kW (kWh), an unregistered
/// asset; the default factor of 10, judged over at least 60 s.
#[test]
fn implausible_steps_table() {
    #[derive(Clone, Copy)]
    enum Asset {
        Line,
        Feeder,
        Unregistered,
    }
    struct Case {
        name: &'static str,
        asset: Asset,
        /// (seconds after t0, counter)
        readings: &'static [(i64, f64)],
        added: f64,
        implausible: u64,
        rebases: u64,
        counter: f64,
    }
    let cases = [
        Case {
            name: "a forged 1e12 between good ones: skipped, the next continues from the last good",
            asset: Asset::Line,
            readings: &[(0, 1000.0), (10, 1010.0), (20, 1e12), (30, 1030.0), (40, 1040.0)],
            added: 40.0,
            implausible: 1,
            rebases: 0,
            counter: 1040.0,
        },
        Case {
            name: "a real fast line at 9x its rating, a reading a minute: all of it",
            asset: Asset::Line,
            readings: &[(0, 0.0), (60, 540.0), (120, 1080.0), (180, 1620.0)],
            added: 1620.0,
            implausible: 0,
            rebases: 0,
            counter: 1620.0,
        },
        Case {
            name: "10x the rating over an hour is the most, just over it is skipped",
            asset: Asset::Line,
            readings: &[(0, 0.0), (3600, 36_000.0), (7200, 72_001.0), (10_800, 72_000.0)],
            added: 72_000.0,
            implausible: 1,
            rebases: 0,
            counter: 72_000.0,
        },
        Case {
            name: "readings a second apart are judged over 60 s: 600 pieces pass, 601 do not",
            asset: Asset::Line,
            readings: &[(0, 0.0), (1, 600.0), (2, 1201.0), (3, 1200.0)],
            added: 1200.0,
            implausible: 1,
            rebases: 0,
            counter: 1200.0,
        },
        Case {
            name: "judged over the time since the last good reading, not the last sample",
            asset: Asset::Line,
            readings: &[(0, 1000.0), (3000, 990.0), (3600, 31_000.0)],
            added: 30_000.0,
            implausible: 0,
            rebases: 0,
            counter: 31_000.0,
        },
        Case {
            name:
                "a counter that really jumped (a replaced PLC) and stays there: the third reading is the base",
            asset: Asset::Line,
            readings: &[
                (0, 1000.0),
                (10, 1010.0),
                (20, 5_000_000.0),
                (30, 5_000_010.0),
                (40, 5_000_020.0),
                (50, 5_000_030.0),
            ],
            // 10 before the jump, 20 made at the new level, 10 after: none for the jump.
            added: 40.0,
            implausible: 2,
            rebases: 1,
            counter: 5_000_030.0,
        },
        Case {
            name: "the same forged value twice, then good again: no rebase",
            asset: Asset::Line,
            readings: &[(0, 1000.0), (10, 1e12), (20, 1e12), (30, 1020.0)],
            added: 20.0,
            implausible: 2,
            rebases: 0,
            counter: 1020.0,
        },
        Case {
            name: "forged values all over the place never make a level",
            asset: Asset::Line,
            readings: &[(0, 1000.0), (10, 1e12), (20, 3e12), (30, 2e12), (40, 4e12), (50, 1050.0)],
            added: 50.0,
            implausible: 4,
            rebases: 0,
            counter: 1050.0,
        },
        Case {
            name: "a forged first reading: the real counter, too large a reset from it, becomes the base",
            asset: Asset::Line,
            readings: &[(0, 1e12), (10, 1000.0), (20, 1010.0), (30, 1020.0), (40, 1030.0)],
            added: 20.0 + 10.0,
            implausible: 2,
            rebases: 1,
            counter: 1030.0,
        },
        Case {
            name: "a feeder: kWh against its kW rating, 9x in an hour passes, 10.002x does not",
            asset: Asset::Feeder,
            readings: &[(0, 0.0), (3600, 4500.0), (7200, 9501.0), (10_800, 9000.0)],
            added: 9000.0,
            implausible: 1,
            rebases: 0,
            counter: 9000.0,
        },
        Case {
            name: "a feeder: 100 kWh in a minute is more than 10x 500 kW",
            asset: Asset::Feeder,
            readings: &[(0, 0.0), (60, 80.0), (120, 180.0), (180, 160.0)],
            added: 160.0,
            implausible: 1,
            rebases: 0,
            counter: 160.0,
        },
        Case {
            name: "an unregistered asset has no rated capacity: unchecked",
            asset: Asset::Unregistered,
            readings: &[(0, 1000.0), (10, 1e12), (20, 1e12 + 10.0)],
            added: 1e12 + 10.0 - 1000.0,
            implausible: 0,
            rebases: 0,
            counter: 1e12 + 10.0,
        },
    ];
    for c in cases {
        let registered = match c.asset {
            Asset::Line => vec![reg("a")],
            Asset::Feeder => vec![AssetConfig { kind: AssetKind::Feeder, rated_capacity: 500.0, ..reg("a") }],
            Asset::Unregistered => vec![],
        };
        let mut st = LiveState::new(&registered, Duration::seconds(300));
        let mut o = TelemetryOutcome::default();
        let mut events = Vec::new();
        for (i, (secs, v)) in c.readings.iter().enumerate() {
            let m = st.apply_telemetry(&tel("a", i as u64 + 1, vec![out(*secs, *v)]), t0());
            o.implausible_steps += m.implausible_steps;
            o.counter_rebases += m.counter_rebases;
            events.extend(m.events);
        }
        let a = st.assets().next().unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1.0);
        assert!(close(a.output_total, c.added), "{}: added {}", c.name, a.output_total);
        let in_history = a.history.output_between(t0(), t0() + Duration::hours(4));
        assert!(close(in_history, c.added), "{}: history {in_history}", c.name);
        assert_eq!((a.implausible_steps, a.counter_rebases), (c.implausible, c.rebases), "{}", c.name);
        assert_eq!((o.implausible_steps, o.counter_rebases), (c.implausible, c.rebases), "{}", c.name);
        let count = |f: fn(&LiveEvent) -> bool| events.iter().filter(|e| f(e)).count() as u64;
        assert_eq!(count(|e| matches!(e, LiveEvent::ImplausibleStep { .. })), c.implausible, "{}", c.name);
        assert_eq!(count(|e| matches!(e, LiveEvent::CounterRebase { .. })), c.rebases, "{}", c.name);
        assert_eq!(a.output_counter, Some(c.counter), "{}", c.name);
        assert_eq!(a.pending_rebase, None, "{}: nothing left waiting", c.name);
        let view = st.asset_view(a);
        assert_eq!((view.implausible_steps, view.counter_rebases), (c.implausible, c.rebases), "{}", c.name);
    }
}

#[test]
fn an_implausible_step_still_applies_the_samples_state_and_its_rate_is_untouched() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    st.apply_telemetry(&tel("a", 1, vec![out(0, 100.0), out(10, 110.0)]), t0());
    let forged = Sample {
        output: Some(1e12),
        state: Some(AssetState::Down),
        ..Sample::at(t0() + Duration::seconds(20))
    };
    let o = st.apply_telemetry(&tel("a", 2, vec![forged, out(30, 130.0)]), t0());
    assert_eq!(
        o.events,
        [
            LiveEvent::ImplausibleStep { index: 0 },
            LiveEvent::StateChanged { index: 0, state: AssetState::Down }
        ]
    );
    assert_eq!((o.implausible_steps, o.counter_glitches, o.counter_resets), (1, 0, 0));
    let a = st.assets().next().unwrap();
    assert_eq!((a.state, a.output_counter, a.output_total), (Some(AssetState::Down), Some(130.0), 30.0));
    // 30 pieces in 30 s: 3600/h, not 1e12's worth.
    assert_eq!(a.rate_per_hour(), Some(3600.0));
}

#[test]
fn the_step_factor_comes_from_the_settings() {
    let settings =
        StateSettings { implausible_step_factor: 1.0, ..StateSettings::new(Duration::seconds(300)) };
    let mut st = LiveState::with_settings(&[reg("a")], settings);
    // Twice the rating over an hour: past a factor of 1, within the default 10.
    for (i, (secs, v)) in [(0, 0.0), (3600, 7200.0), (7200, 3600.0)].into_iter().enumerate() {
        st.apply_telemetry(&tel("a", i as u64 + 1, vec![out(secs, v)]), t0());
    }
    let a = st.assets().next().unwrap();
    assert_eq!((a.implausible_steps, a.output_total, a.output_counter), (1, 3600.0, Some(3600.0)));
}

/// One piece a second; a sample every 10 s, three to an envelope. The
/// agent's clock runs 4 min fast until NTP corrects it at 10 min (true
/// time); the line stops for a minute at 11:40 and at 15:00. Every piece
/// is counted, each stop is seen when it happens, no minute holds more
/// than 60 s.
#[test]
fn a_clock_stepping_back_loses_nothing() {
    let mut st = LiveState::new(&[reg("a")], Duration::seconds(300));
    let fast = Duration::minutes(4);
    let stamp =
        |true_s: i64| t0() + Duration::seconds(true_s) + if true_s < 600 { fast } else { Duration::zero() };
    let stops = [700..760, 900..960];
    let pieces =
        |true_s: i64| true_s - stops.iter().map(|r| (true_s.min(r.end) - r.start).max(0)).sum::<i64>();
    let state = |true_s: i64| match stops.iter().any(|r| r.contains(&true_s)) {
        true => AssetState::Down,
        false => AssetState::Running,
    };
    let reading = |true_s: i64| Sample {
        output: Some(pieces(true_s) as f64),
        state: Some(state(true_s)),
        ..Sample::at(stamp(true_s))
    };
    let times: Vec<i64> = (0..=120).map(|i| i * 10).collect();
    let mut steps = Vec::new();
    let mut newest = stamp(0);
    for (seq, chunk) in times.chunks(3).enumerate() {
        let o =
            st.apply_telemetry(&tel("a", seq as u64 + 1, chunk.iter().map(|s| reading(*s)).collect()), t0());
        assert_eq!(o.late_samples, 0, "envelope {seq}: {:?}", o.events);
        steps.extend(o.events.iter().filter(|e| matches!(e, LiveEvent::ClockStep { .. })).copied());
        let last = *chunk.last().unwrap();
        newest = chunk.iter().map(|s| stamp(*s)).fold(newest, DateTime::max);
        let a = st.assets().next().unwrap();
        // Live state follows the true course all along, the stop included.
        assert_eq!(a.output_total, pieces(last) as f64, "at {last} s");
        assert_eq!(a.state, Some(state(last)), "at {last} s");
        // Event time never goes back.
        assert_eq!(st.watermark(), Some(newest), "at {last} s");
        assert_eq!(a.newest_ts, Some(newest), "at {last} s");
    }
    // The step: from 09:50 on the fast clock (13:50) to 10:00.
    assert_eq!(steps, [LiveEvent::ClockStep { index: 0, back_ms: 230_000 }]);
    let agent = st.agent(&AgentId::parse("gw").unwrap()).unwrap();
    assert_eq!((agent.clock_steps, agent.largest_clock_step_secs), (1, 230.0));
    let view = st.agent_view(agent);
    assert_eq!((view.clock_steps, view.largest_clock_step_secs), (1, 230.0));

    let a = st.assets().next().unwrap();
    let truth = pieces(1200) as f64;
    assert_eq!(a.output_total, truth);
    let h = &a.history;
    let all = (t0(), t0() + Duration::hours(1));
    assert!((h.output_between(all.0, all.1) - truth).abs() < 1e-6, "{}", h.output_between(all.0, all.1));
    assert_eq!(a.last_ts, Some(stamp(1200)));
    assert_eq!(a.newest_ts, Some(stamp(1200)));
    assert_eq!(a.first_ts, Some(stamp(0)));
    // The time from 10:00 to 13:50 came twice (fast, then corrected): its
    // state seconds count once.
    for (start, m) in h.minutes() {
        assert!(m.covered_s() <= 60.0 + 1e-6, "minute {start}: {m:?}");
    }
    // 08:04 to 08:20: the fast clock's 08:04-08:13:50, then the corrected
    // 08:10-08:20 (of which 08:13:50-08:20 is new).
    let covered = (stamp(1200) - stamp(0)).num_seconds() as f64;
    let state_s = h.running_between(all.0, all.1) + h.down_between(all.0, all.1);
    assert!((state_s - covered).abs() < 1e-6, "{state_s} s of state over {covered} s");
    // The first stop fell in the time the fast clock had covered already
    // (running, then): its minutes keep those seconds and gain its output.
    // The second is past it: its minute counts it.
    assert!((h.down_between(all.0, all.1) - 60.0).abs() < 1e-6);
    assert!((h.down_between(stamp(900), stamp(960)) - 60.0).abs() < 1e-6);
    // The rate started again after the step: over the last 5 min, 240
    // pieces (the second stop took one minute).
    assert!((a.rate_per_hour().unwrap() - 2880.0).abs() < 1e-6, "{:?}", a.rate_per_hour());
}

#[test]
fn a_late_fill_inside_its_gap_is_filled_in_and_one_outside_is_late() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 1, vec![out(0, 10.0)]), t0());
    // seq 2 lost for now; 3 arrives.
    st.apply_telemetry(&tel("a", 3, vec![out(20, 30.0)]), t0());
    let o = st.apply_telemetry(&tel("a", 2, vec![out(10, 20.0)]), t0());
    assert!(o.late_fill);
    assert_eq!((o.late_samples, o.filled_samples, o.clock_steps), (0, 1, 0));
    assert_eq!(o.events, [LiveEvent::Filled { index: 0 }]);
    let a = st.assets().next().unwrap();
    assert_eq!((a.last_ts, a.output_total, a.samples), (Some(t0() + Duration::seconds(20)), 20.0, 3));
    assert_eq!(st.agent(&AgentId::parse("gw").unwrap()).unwrap().clock_steps, 0);

    // Outside the interval over the gap (after its end), or with a counter
    // beyond its ends: late, as before.
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 1, vec![out(0, 10.0)]), t0());
    st.apply_telemetry(&tel("a", 4, vec![out(20, 30.0)]), t0());
    st.apply_telemetry(&tel("a", 5, vec![out(30, 40.0)]), t0());
    let o = st.apply_telemetry(&tel("a", 2, vec![out(25, 35.0)]), t0());
    assert_eq!((o.late_samples, o.filled_samples), (1, 0), "after the gap's end");
    let o = st.apply_telemetry(&tel("a", 3, vec![out(10, 31.0)]), t0());
    assert_eq!((o.late_samples, o.filled_samples), (1, 0), "a counter above the gap's end");
    assert_eq!(o.events, [LiveEvent::Late { index: 0 }]);
}

#[test]
fn resent_envelopes_give_the_gap_its_own_states_and_output() {
    let mut st = LiveState::new(&[], Duration::seconds(300));
    let run = |secs, v| Sample { state: Some(AssetState::Running), ..out(secs, v) };
    let down = |secs, v| Sample { state: Some(AssetState::Down), ..out(secs, v) };
    st.apply_telemetry(&tel("a", 1, vec![run(0, 0.0)]), t0());
    // 2, 3 and 4 are lost by the broker; 5 comes four minutes on.
    st.apply_telemetry(&tel("a", 5, vec![run(240, 240.0)]), t0());
    let h = &st.assets().next().unwrap().history;
    let (from, to) = (t0(), t0() + Duration::minutes(4));
    assert_eq!((h.down_between(from, to), h.running_between(from, to)), (0.0, 240.0), "unknown yet");
    // Resent, oldest first: the line was down in minute 1.
    for (seq, sample) in [(2, down(60, 60.0)), (3, run(120, 60.0)), (4, run(180, 120.0))] {
        let o = st.apply_telemetry(&tel("a", seq, vec![sample]), t0());
        assert_eq!((o.filled_samples, o.late_samples), (1, 0), "seq {seq}");
        assert!(o.minutes.is_some());
    }
    let a = st.assets().next().unwrap();
    let h = &a.history;
    assert!((h.down_between(from, to) - 60.0).abs() < 1e-9, "{}", h.down_between(from, to));
    assert!((h.running_between(from, to) - 180.0).abs() < 1e-9);
    let minute = |m: i64| *h.minute(t0().timestamp() + 60 * m).unwrap();
    let outputs: Vec<f64> = (0..4).map(|m| (minute(m).output * 1e6).round() / 1e6).collect();
    assert_eq!(outputs, [60.0, 0.0, 60.0, 120.0], "each minute its own output");
    assert_eq!((0..4).map(|m| minute(m).samples).sum::<u32>(), 4, "the resent samples are counted");
    // Live state is the newest sample's; the total is what the counters say.
    assert_eq!((a.samples, a.late_samples, a.output_total), (5, 0, 240.0));
    assert_eq!((a.state, a.last_ts, a.output_counter), (Some(AssetState::Running), Some(to), Some(240.0)));
    assert_eq!(a.state_since, Some(t0()), "a stop in the past changes no live state");
}

#[test]
fn each_asset_remembers_its_own_interval_over_the_gap() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 1, vec![out(0, 0.0)]), t0());
    st.apply_telemetry(&tel("b", 2, vec![out(0, 0.0)]), t0());
    // 3 (of a) is lost.
    st.apply_telemetry(&tel("b", 4, vec![out(20, 20.0)]), t0());
    st.apply_telemetry(&tel("a", 5, vec![out(20, 20.0)]), t0());
    let o = st.apply_telemetry(&tel("a", 3, vec![out(10, 5.0), out(15, 6.0)]), t0());
    assert_eq!((o.filled_samples, o.late_samples), (2, 0));
    let a = st.assets().find(|a| a.asset.as_str() == "a").unwrap();
    let m = a.history.minute(t0().timestamp()).unwrap();
    assert!((m.output - 20.0).abs() < 1e-9 && (m.running_s + m.unknown_s - 20.0).abs() < 1e-9, "{m:?}");
    assert_eq!(a.gaps.len(), 1);
    let rest = a.gaps[0];
    assert_eq!((rest.from, rest.from_counter, rest.output), (t0() + Duration::seconds(15), Some(6.0), 14.0));
    let b = st.assets().find(|a| a.asset.as_str() == "b").unwrap();
    assert_eq!(b.gaps.len(), 1, "b's interval spans the gap too, nothing comes for it");
    for i in 0..10u64 {
        // Every new gap is remembered; the oldest are forgotten.
        st.apply_telemetry(&tel("b", 10 + 2 * i, vec![out(30 + i as i64, 30.0 + i as f64)]), t0());
    }
    let b = st.assets().find(|a| a.asset.as_str() == "b").unwrap();
    assert_eq!(b.gaps.len(), MAX_GAP_INTERVALS);
}

#[test]
fn out_of_order_in_one_envelope_is_late_not_a_clock_step() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    st.apply_telemetry(&tel("a", 1, vec![out(0, 10.0), out(10, 20.0)]), t0());
    // 5 s is behind 10 s, but 15 s in the same envelope is past it.
    let o = st.apply_telemetry(&tel("a", 2, vec![out(5, 15.0), out(15, 25.0)]), t0());
    assert_eq!(o.events, [LiveEvent::Late { index: 0 }]);
    assert_eq!((o.late_samples, o.clock_steps), (1, 0));
    let a = st.assets().next().unwrap();
    assert_eq!((a.output_total, a.last_ts), (15.0, Some(t0() + Duration::seconds(15))));
}

#[test]
fn one_clock_step_seen_by_every_asset_counts_once() {
    let mut st = LiveState::new(&[], Duration::seconds(60));
    let mut seq = 0;
    let mut send = |st: &mut LiveState, asset: &str, secs: i64, v: f64| {
        seq += 1;
        st.apply_telemetry(&tel(asset, seq, vec![out(secs, v)]), t0())
    };
    for asset in ["a", "b", "c"] {
        send(&mut st, asset, 300, 100.0);
    }
    send(&mut st, "a", 302, 102.0);
    // NTP steps the clock back by 2 min: each asset sees it.
    let steps: u64 = ["a", "b", "c"].iter().map(|asset| send(&mut st, asset, 185, 105.0).clock_steps).sum();
    assert_eq!(steps, 1);
    let agent = st.agent(&AgentId::parse("gw").unwrap()).unwrap();
    assert_eq!((agent.clock_steps, agent.largest_clock_step_secs), (1, 117.0));
    // Much later, another step: counted.
    for asset in ["a", "b"] {
        send(&mut st, asset, 3600, 200.0);
    }
    assert_eq!(send(&mut st, "a", 3590, 201.0).clock_steps, 1);
    assert_eq!(send(&mut st, "b", 3591, 201.0).clock_steps, 0);
    let agent = st.agent(&AgentId::parse("gw").unwrap()).unwrap();
    assert_eq!((agent.clock_steps, agent.largest_clock_step_secs), (2, 117.0));
    for a in st.assets() {
        assert_eq!(a.late_samples, 0, "{}", a.asset);
    }
}

/// Envelope `seq` of `agent` for `asset` at site `s`, one counter reading.
fn tel_of(agent: &str, asset: &str, seq: u64) -> Telemetry {
    let mut t = tel(asset, seq, vec![out(seq as i64, seq as f64)]);
    t.envelope.agent = AgentId::parse(agent).unwrap();
    t
}

#[test]
fn a_registered_asset_takes_only_the_agents_it_names() {
    let gw = |a: &str| AgentId::parse(a).unwrap();
    let named = AssetConfig { agents: vec![gw("gw-a"), gw("gw-spare")], ..reg("press-1") };
    let mut st = LiveState::new(&[named], Duration::minutes(5));
    assert_eq!(st.apply_telemetry(&tel_of("gw-a", "press-1", 1), t0()).refused, None);
    let forged = st.apply_telemetry(&tel_of("gw-b", "press-1", 1), t0());
    assert_eq!(forged.refused, Some(RejectReason::NotOwner));
    assert_eq!(forged.samples, 0);
    let a = st.asset(&SiteId::parse("s").unwrap(), &AssetId::parse("press-1").unwrap()).unwrap();
    assert_eq!((a.agent.as_ref().map(|g| g.as_str()), a.output_counter), (Some("gw-a"), Some(1.0)));
    // The standby named too is taken; gw-b's number was taken, no gap asked.
    assert_eq!(st.apply_telemetry(&tel_of("gw-spare", "press-1", 7), t0()).refused, None);
    assert_eq!(st.apply_telemetry(&tel_of("gw-b", "press-1", 2), t0()).seq_skipped, 0);
    // Moved in the config only.
    let e = st.move_asset(&SiteId::parse("s").unwrap(), &AssetId::parse("press-1").unwrap(), gw("gw-b"));
    assert_eq!(e, Err(MoveError::Configured(vec![gw("gw-a"), gw("gw-spare")])));
}

#[test]
fn an_asset_no_registration_names_belongs_to_the_first_agent_until_moved() {
    let gw = |a: &str| AgentId::parse(a).unwrap();
    let (s, press) = (SiteId::parse("s").unwrap(), AssetId::parse("press-2").unwrap());
    let mut st = LiveState::new(&[reg("press-1")], Duration::minutes(5));
    for asset in ["press-1", "press-2"] {
        assert_eq!(
            st.apply_telemetry(&tel_of("gw-a", asset, 1 + (asset == "press-2") as u64), t0()).refused,
            None
        );
        assert_eq!(
            st.apply_telemetry(&tel_of("gw-b", asset, 10), t0()).refused,
            Some(RejectReason::NotOwner)
        );
    }
    // A new agent refused is not kept at all.
    assert!(st.agent(&gw("gw-b")).is_none());
    // The admin moves press-2 to gw-b: gw-b's data is taken, gw-a's refused.
    assert_eq!(st.move_asset(&s, &press, gw("gw-b")), Ok(Some(gw("gw-a"))));
    assert_eq!(st.apply_telemetry(&tel_of("gw-b", "press-2", 11), t0()).refused, None);
    assert_eq!(st.apply_telemetry(&tel_of("gw-a", "press-2", 3), t0()).refused, Some(RejectReason::NotOwner));
    assert_eq!(st.move_asset(&s, &AssetId::parse("nope").unwrap(), gw("gw-b")), Err(MoveError::Unknown));
}

#[test]
fn unregistered_agents_and_assets_are_capped() {
    let gw = |a: &str| AgentId::parse(a).unwrap();
    let named = AssetConfig { agents: vec![gw("gw-named")], ..reg("press-1") };
    let mut st = LiveState::new(&[named], Duration::minutes(5)).with_max_unregistered(2);
    for i in 0..2 {
        assert_eq!(
            st.apply_telemetry(&tel_of(&format!("fake-{i}"), &format!("x-{i}"), 1), t0()).refused,
            None
        );
    }
    assert_eq!(st.unregistered(), (2, 2));
    let o = st.apply_telemetry(&tel_of("fake-2", "x-2", 1), t0());
    assert_eq!(o.refused, Some(RejectReason::UnregisteredLimit));
    assert!(st.agent(&gw("fake-2")).is_none());
    // A known agent with a new unregistered asset: refused too, its number taken.
    assert_eq!(
        st.apply_telemetry(&tel_of("fake-0", "x-9", 2), t0()).refused,
        Some(RejectReason::UnregisteredLimit)
    );
    // An agent a registration names, with its registered asset, is not
    // capped; nor is one first heard with a registered asset it may report.
    assert_eq!(st.apply_telemetry(&tel_of("gw-named", "press-1", 1), t0()).refused, None);
    let free = AssetConfig { ..reg("press-2") };
    let mut st2 = LiveState::new(&[free], Duration::minutes(5)).with_max_unregistered(0);
    assert_eq!(st2.apply_telemetry(&tel_of("gw-x", "press-2", 1), t0()).refused, None);
    assert_eq!(
        st2.apply_telemetry(&tel_of("gw-x", "x-1", 2), t0()).refused,
        Some(RejectReason::UnregisteredLimit)
    );
    assert_eq!(st2.unregistered(), (0, 0));
    assert_eq!(st.unregistered(), (2, 2));
    // A status of a new unregistered agent beyond the cap is not kept either.
    let status = StatusMessage {
        site: SiteId::parse("s").unwrap(),
        agent: gw("fake-3"),
        status: AgentStatus {
            v: 1,
            online: false,
            ts: None,
            software: None,
            health: None,
            seq_skipped: None,
        },
    };
    assert!(st.refuses_agent(&gw("fake-3")));
    st.apply_status(&status, t0());
    assert!(st.agent(&gw("fake-3")).is_none());
}

#[test]
fn pages_of_assets_start_after_the_cursor_and_keep_to_the_site() {
    let at = |site: &str, asset: &str| AssetConfig { site: SiteId::parse(site).unwrap(), ..reg(asset) };
    let regs = [at("a", "x"), at("a", "y"), at("b", "x"), at("b", "z"), at("c", "w")];
    let st = LiveState::new(&regs, Duration::seconds(60));
    let names = |it: &mut dyn Iterator<Item = &AssetLive>| -> Vec<String> {
        it.map(|a| format!("{}/{}", a.site, a.asset)).collect()
    };
    assert_eq!(names(&mut st.assets_after(None, None)), ["a/x", "a/y", "b/x", "b/z", "c/w"]);
    let cursor = (SiteId::parse("a").unwrap(), AssetId::parse("y").unwrap());
    assert_eq!(names(&mut st.assets_after(None, Some(&cursor))), ["b/x", "b/z", "c/w"]);
    let b = SiteId::parse("b").unwrap();
    assert_eq!(names(&mut st.assets_after(Some(&b), None)), ["b/x", "b/z"]);
    assert_eq!(names(&mut st.assets_after(Some(&b), Some(&cursor))), ["b/x", "b/z"]);
    let in_b = (b.clone(), AssetId::parse("x").unwrap());
    assert_eq!(names(&mut st.assets_after(Some(&b), Some(&in_b))), ["b/z"]);
    // A cursor past the site: nothing more of it.
    let past = (SiteId::parse("c").unwrap(), AssetId::parse("a").unwrap());
    assert!(names(&mut st.assets_after(Some(&b), Some(&past))).is_empty());
    // A cursor naming an asset that is gone still places the page.
    let gone = (b.clone(), AssetId::parse("y").unwrap());
    assert_eq!(names(&mut st.assets_after(None, Some(&gone))), ["b/z", "c/w"]);
}
