use super::*;
use chrono::{Duration, TimeZone};
use throughline_shared::codec::Telemetry;
use throughline_shared::{AgentId, AssetState, Envelope, Sample};

use crate::model::{AssetConfig, AssetKind};
use crate::rollup::{buckets, HistoryBucket, Layout, MinuteRows, PendingMinutes, StateSeconds, MAX_POINTS};
use crate::state::{AssetLive, LiveState};

/// Live state with the rollup writer's list of pending minutes, as the
/// live-state handle keeps them.
struct Plant {
    state: LiveState,
    pending: PendingMinutes,
}

impl Plant {
    fn new(registered: &[AssetConfig]) -> Plant {
        Plant {
            state: LiveState::new(registered, Duration::minutes(5)),
            pending: PendingMinutes::new(Duration::hours(48)),
        }
    }
    fn take_dirty_minutes(&mut self) -> Vec<MinuteRows> {
        self.pending.take(&self.state)
    }
    fn set_history_keep(&mut self, keep: Duration) {
        self.pending = PendingMinutes::new(keep);
    }
    fn asset(&self, site: &SiteId, asset: &AssetId) -> Option<&AssetLive> {
        self.state.asset(site, asset)
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
}

fn t(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

fn site() -> SiteId {
    SiteId::parse("s").unwrap()
}

fn line() -> AssetId {
    AssetId::parse("line-1").unwrap()
}

fn reg() -> AssetConfig {
    AssetConfig {
        site: site(),
        id: line(),
        kind: AssetKind::Line,
        group: "g".into(),
        rated_capacity: 3600.0,
        name: None,
        agents: Vec::new(),
    }
}

fn sample(secs: i64, output: f64, state: Option<AssetState>, load_kw: Option<f64>) -> Sample {
    Sample { output: Some(output), state, load_kw, ..Sample::at(t(secs)) }
}

fn send(live: &mut Plant, asset: &str, seq: u64, samples: Vec<Sample>) {
    let tel = Telemetry {
        site: site(),
        asset: AssetId::parse(asset).unwrap(),
        envelope: Envelope { v: 1, agent: AgentId::parse("gw").unwrap(), seq, samples },
    };
    let out = live.state.apply_telemetry(&tel, t(3600));
    live.pending.note(&mut live.state, &out);
}

/// The scenario of these tests, for line-1 (08:00 = second 0):
/// - 0..60 running; load 10 kW then 20 kW from 30 s; 60 pieces;
/// - 60..90 down, 90..120 setup (load 0 from 90 s);
/// - 120..180 running, 60 pieces;
/// - silence from 180 s to 1200 s (08:20), a gap: the last 600 s count as
///   running, the 420 s before have no data (no minutes); no output.
fn scenario(live: &mut Plant) {
    use AssetState::*;
    send(
        live,
        "line-1",
        1,
        vec![
            sample(0, 0.0, Some(Running), Some(10.0)),
            sample(30, 30.0, Some(Running), Some(20.0)),
            sample(60, 60.0, Some(Down), None),
            sample(90, 60.0, Some(Setup), Some(0.0)),
            sample(120, 60.0, Some(Running), None),
            sample(180, 120.0, None, None),
            sample(1200, 120.0, None, None),
        ],
    );
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("throughline.db")).unwrap();
    (dir, store)
}

fn query(store: &Store, from: i64, to: i64, points: u32) -> Vec<HistoryBucket> {
    let layout = Layout::new(t(from), t(to), points).unwrap();
    let totals = store.rollup_buckets(&site(), &line(), layout.from, layout.to, layout.step).unwrap();
    buckets(&layout, &totals)
}

#[test]
fn layout_cuts_whole_minutes_and_caps_the_points() {
    let base = t0().timestamp();
    // 08:00:30 .. 08:10:00 in at most 4 buckets: 10 minutes, 3 each, the last 1.
    let l = Layout::new(t(30), t(600), 4).unwrap();
    assert_eq!((l.from, l.to, l.step, l.len()), (base, base + 600, 180, 4));
    assert_eq!(l.bucket(0), (base, base + 180));
    assert_eq!(l.bucket(3), (base + 540, base + 600));
    // More points than minutes: one bucket a minute.
    let l = Layout::new(t(0), t(600), 2000).unwrap();
    assert_eq!((l.step, l.len()), (60, 10));
    // A `to` inside a minute (even by a millisecond) takes the whole minute.
    let l = Layout::new(t(0), t(600) + Duration::milliseconds(1), 2000).unwrap();
    assert_eq!((l.to, l.len()), (base + 660, 11));
    let l = Layout::new(t(0), t(1), 5).unwrap();
    assert_eq!((l.to, l.step, l.len()), (base + 60, 60, 1));
    // Never more buckets than points, over any range.
    for (minutes, points) in [(1, 1), (7, 3), (1440, 200), (1441, 200), (129_600, 2000), (100, 99)] {
        let l = Layout::new(t(0), t(minutes * 60), points).unwrap();
        assert!(l.len() <= points as usize && !l.is_empty(), "{minutes} min, {points} points: {l:?}");
        assert_eq!(l.bucket(l.len() - 1).1, l.to, "the last bucket ends at `to`");
    }
    assert!(Layout::new(t(0), t(0), 10).unwrap_err().contains("before"));
    assert!(Layout::new(t(60), t(0), 10).is_err());
    assert!(Layout::new(t(0), t(60), 0).unwrap_err().contains("points"));
    assert!(Layout::new(t(0), t(60), MAX_POINTS + 1).unwrap_err().contains("2000"));
}

#[test]
fn minutes_hold_output_state_seconds_load_and_samples() {
    let mut live = Plant::new(&[reg()]);
    scenario(&mut live);
    let a = live.asset(&site(), &line()).unwrap();
    let m: Vec<_> = a.history.minutes().map(|(s, m)| (s - t0().timestamp(), *m)).collect();
    let (m0, m1, m2, m3) = (m[0].1, m[1].1, m[2].1, m[3].1);
    assert_eq!(
        (m0.output, m0.running_s, m0.load_kws, m0.load_s, m0.load_max_kw, m0.samples),
        (60.0, 60.0, 900.0, 60.0, 20.0, 2)
    );
    assert_eq!(
        (m1.down_s, m1.setup_s, m1.load_kws, m1.load_max_kw, m1.samples),
        (30.0, 30.0, 600.0, 20.0, 2)
    );
    assert_eq!((m2.output, m2.running_s, m2.load_kws, m2.load_s), (60.0, 60.0, 0.0, 60.0));
    assert_eq!((m3.unknown_s, m3.running_s, m3.load_s, m3.samples), (0.0, 0.0, 0.0, 1));
    // Minutes 4..9 hold nothing, 10..19 running (the last 600 s of the silence).
    assert!(m.iter().all(|(s, _)| !(240..600).contains(s)), "{m:?}");
    assert_eq!(m.iter().find(|(s, _)| *s == 600).unwrap().1.running_s, 60.0);
    assert_eq!(m.len(), 15);
    for (start, slot) in &m {
        let covered = slot.covered_s();
        assert!(covered <= 60.0, "minute {start}: {covered} s covered");
        assert_eq!(slot.unknown_s, 0.0, "minute {start}: every state is known");
        if *start < 180 || (600..1200).contains(start) {
            assert_eq!(covered, 60.0, "minute {start}: {slot:?}");
        }
    }
}

#[test]
fn downsampled_buckets_sum_their_minutes() {
    let (_dir, store) = store();
    let mut live = Plant::new(&[reg()]);
    scenario(&mut live);
    store.write_rollups(&live.take_dirty_minutes()).unwrap();

    // 08:00..08:06 in 2 buckets of 3 minutes.
    let b = query(&store, 0, 360, 2);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].start, b[0].end, b[1].end), (t(0), t(180), t(360)));
    assert_eq!(b[0].output, Some(120.0));
    assert_eq!(
        b[0].seconds,
        StateSeconds { running: 120.0, idle: 0.0, setup: 30.0, maintenance: 0.0, down: 30.0, unknown: 0.0 }
    );
    assert_eq!(b[0].covered_seconds, 180.0);
    assert_eq!(b[0].rate_per_hour, Some(2400.0), "120 pieces in 180 s covered");
    // (10 x 30 + 20 x 30 + 20 x 30 + 0 x 30 + 0 x 60) / 180 s
    assert_eq!(b[0].load_mean_kw, Some(8.333333));
    assert_eq!(b[0].load_max_kw, Some(20.0));
    assert_eq!(b[0].samples, 5);
    // 08:03..08:06: the 08:03 sample, then the gap without data.
    assert_eq!((b[1].output, b[1].rate_per_hour), (Some(0.0), None));
    assert_eq!((b[1].seconds.unknown, b[1].covered_seconds), (0.0, 0.0));
    assert_eq!((b[1].load_mean_kw, b[1].load_max_kw, b[1].samples), (None, None, 1));

    // 08:00..08:21 in at most 5 buckets: 5 minutes each, the last one 1.
    let b = query(&store, 0, 1260, 5);
    let edges: Vec<_> = b.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(
        edges,
        vec![(t(0), t(300)), (t(300), t(600)), (t(600), t(900)), (t(900), t(1200)), (t(1200), t(1260))]
    );
    assert_eq!(b.iter().filter_map(|b| b.output).sum::<f64>(), 120.0);
    assert_eq!((b[2].seconds.running, b[2].seconds.unknown), (300.0, 0.0));
    assert_eq!((b[1].output, b[1].covered_seconds), (None, 0.0), "the gap has no data");
    assert_eq!(b[0].seconds.unknown, 0.0);
    // The last bucket holds only the 08:20 sample: no covered time, no rate.
    assert_eq!(
        (b[4].output, b[4].covered_seconds, b[4].rate_per_hour, b[4].samples),
        (Some(0.0), 0.0, None, 1)
    );
    for x in &b {
        let s = x.seconds;
        let sum = s.running + s.idle + s.setup + s.maintenance + s.down + s.unknown;
        assert!((sum - x.covered_seconds).abs() < 1e-6, "{x:?}");
        assert!(x.covered_seconds <= (x.end - x.start).num_seconds() as f64, "{x:?}");
    }

    // Partial coverage: 07:58..08:02 per minute; the minutes before the
    // data are empty buckets (nulls), not zeros.
    let b = query(&store, -120, 120, 2000);
    assert_eq!(b.len(), 4);
    assert_eq!((b[0].output, b[0].rate_per_hour, b[0].covered_seconds, b[0].samples), (None, None, 0.0, 0));
    assert_eq!((b[2].output, b[3].output), (Some(60.0), Some(0.0)));
    // Partly covered bucket: rate over the covered time only.
    let b = query(&store, 0, 600, 1);
    assert_eq!((b[0].output, b[0].covered_seconds), (Some(120.0), 180.0));
    assert_eq!(b[0].rate_per_hour, Some(2400.0));
}

#[test]
fn late_data_rewrites_its_minutes_and_nothing_else() {
    let (_dir, store) = store();
    let mut live = Plant::new(&[reg()]);
    scenario(&mut live);
    let first = live.take_dirty_minutes();
    assert_eq!(store.write_rollups(&first).unwrap(), 15, "08:00 .. 08:03, 08:10 .. 08:20");
    assert!(live.take_dirty_minutes().is_empty(), "taken once");
    // 08:25, 60 more pieces: spread over 08:20..08:25, so the 08:20 row
    // (written already) changes and four new minutes appear.
    send(&mut live, "line-1", 2, vec![sample(1500, 180.0, Some(AssetState::Running), None)]);
    let dirty = live.take_dirty_minutes();
    let starts: Vec<i64> = dirty[0].2.iter().map(|(s, _)| s - t0().timestamp()).collect();
    assert_eq!(starts, vec![1200, 1260, 1320, 1380, 1440, 1500]);
    assert_eq!(store.write_rollups(&dirty).unwrap(), 6);
    let rows = store.rollup_minutes("s", "line-1", 0).unwrap();
    assert_eq!(rows.len(), 20);
    let m20 = rows.iter().find(|(s, _)| *s == t(1200).timestamp()).unwrap().1;
    assert_eq!((m20.output, m20.samples), (12.0, 1), "replaced whole, not added to");
    let b = query(&store, 0, 1560, 1);
    assert_eq!(b[0].output, Some(180.0));
}

#[test]
fn a_failed_write_leaves_the_minutes_dirty() {
    let mut live = Plant::new(&[reg()]);
    scenario(&mut live);
    let dirty = live.take_dirty_minutes();
    live.pending.put_back(&live.state, &dirty);
    assert_eq!(live.take_dirty_minutes(), dirty);
}

#[test]
fn pruning_memory_keeps_minutes_not_yet_written() {
    let mut live = Plant::new(&[reg()]);
    live.set_history_keep(Duration::hours(2));
    // Three hours of samples five minutes apart in one message: 180 minutes
    // of output, more than the 2 h kept in memory; the older ones must
    // still be written.
    let samples =
        (0..=36).map(|i| sample(i * 300, i as f64 * 5.0, Some(AssetState::Running), None)).collect();
    send(&mut live, "line-1", 2, samples);
    send(&mut live, "line-1", 3, vec![sample(3 * 3600 + 60, 181.0, Some(AssetState::Running), None)]);
    let rows = live.take_dirty_minutes();
    let total: f64 = rows[0].2.iter().map(|(_, m)| m.output).sum();
    assert!((total - 181.0).abs() < 1e-9, "{total}");
    assert_eq!(rows[0].2.len(), 182);
    // Written, they go at the next prune.
    send(&mut live, "line-1", 4, vec![sample(3 * 3600 + 120, 182.0, Some(AssetState::Running), None)]);
    assert!(live.asset(&site(), &line()).unwrap().history.len() <= 2 * 60 + 2);
}

#[test]
fn store_round_trip_restore_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("throughline.db");
    let mut live = Plant::new(&[reg()]);
    scenario(&mut live);
    send(&mut live, "other", 10, vec![sample(0, 5.0, None, None), sample(60, 9.0, None, None)]);
    let dirty = live.take_dirty_minutes();
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.write_rollups(&dirty).unwrap(), 15 + 2);
    }
    // Reopened (a restart): every minute comes back exactly.
    let store = Store::open(&path).unwrap();
    let back = store.rollup_minutes("s", "line-1", 0).unwrap();
    let before: Vec<_> =
        live.asset(&site(), &line()).unwrap().history.minutes().map(|(s, m)| (s, *m)).collect();
    assert_eq!(back, before);
    assert!(store.has_rollups(&site(), &line()).unwrap());
    assert!(!store.has_rollups(&site(), &AssetId::parse("nope").unwrap()).unwrap());

    // Restore into a fresh live state: the registered asset at once, the
    // unregistered one when it reports again.
    let mut fresh = Plant::new(&[reg()]);
    assert_eq!(restore(&store, &mut fresh.state, Duration::hours(48)).unwrap(), 17);
    let h = &fresh.asset(&site(), &line()).unwrap().history;
    assert_eq!(h.output_between(t(0), t(1260)), 120.0);
    assert_eq!(h.running_between(t(0), t(1260)), 720.0);
    assert!(fresh.take_dirty_minutes().is_empty(), "restored minutes are clean");
    assert!(fresh.asset(&site(), &AssetId::parse("other").unwrap()).is_none());
    send(&mut fresh, "other", 11, vec![sample(120, 12.0, None, None)]);
    let other = fresh.asset(&site(), &AssetId::parse("other").unwrap()).unwrap();
    assert_eq!(other.history.output_between(t(0), t(180)), 4.0);
    // A restore window shorter than the data: only the newest minutes.
    let mut short = Plant::new(&[reg()]);
    restore(&store, &mut short.state, Duration::minutes(5)).unwrap();
    assert_eq!(short.asset(&site(), &line()).unwrap().history.len(), 6, "08:15 .. 08:20");

    // Retention: rows before the cutoff go, the rest stay.
    assert_eq!(store.prune_rollups(t(600).timestamp()).unwrap(), 4 + 2);
    assert_eq!(store.rollup_minutes("s", "line-1", 0).unwrap().len(), 11);
    assert_eq!(store.prune_rollups(t(600).timestamp()).unwrap(), 0);
    // Its hours outlive the minutes, until their own retention.
    let other = AssetId::parse("other").unwrap();
    assert!(store.has_rollups(&site(), &other).unwrap());
    assert_eq!(
        store.rollup_totals(&site(), &other, t0().timestamp(), t(3600).timestamp()).unwrap().output,
        4.0
    );
    store.prune_hourly_rollups(t(3600).timestamp()).unwrap();
    assert!(!store.has_rollups(&site(), &other).unwrap());
}
