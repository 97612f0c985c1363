use std::ops::RangeInclusive;

use super::*;

fn small(when_full: WhenFull) -> SpoolConfig {
    SpoolConfig {
        max_bytes: 16 * 1024,
        segment_bytes: 4096,
        when_full,
        fsync: FsyncPolicy::Batch,
        fsync_interval_ms: 1000,
        keep_delivered: 0,
    }
}

fn keeping(n: u64) -> SpoolConfig {
    SpoolConfig { keep_delivered: n, ..small(WhenFull::DropOldest) }
}

fn seqs(s: &mut Spool, range: RangeInclusive<u64>) -> Vec<u64> {
    s.delivered_in(range, usize::MAX, |_| false).unwrap().iter().map(|k| k.seq).collect()
}

fn payload(i: u64) -> Vec<u8> {
    format!("{{\"v\":1,\"agent\":\"gw-1\",\"seq\":{i},\"samples\":[{{\"ts\":\"2026-11-23T00:00:00.000Z\",\"output\":{i}}}]}}")
        .into_bytes()
}

fn drain(spool: &mut Spool) -> Vec<Record> {
    let mut out = Vec::new();
    while let Some(r) = spool.next_unsent().unwrap() {
        out.push(r);
    }
    out
}

fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.id).collect()
}

#[test]
fn records_come_back_in_order_and_leave_after_ack() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    for i in 0..100 {
        assert_eq!(s.append("t/a", &payload(i)).unwrap(), Appended::Stored(i));
    }
    let sent = drain(&mut s);
    assert_eq!(ids(&sent), (0..100).collect::<Vec<_>>());
    assert_eq!(sent[7].topic, "t/a");
    assert_eq!(sent[7].payload, payload(7));
    assert_eq!(s.in_flight(), 100);
    let segments_before = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert!(segments_before > 1, "100 records of ~120 bytes span several 4 KiB segments");
    for r in &sent {
        s.ack(r.id);
    }
    assert_eq!(s.unacked(), 0);
    let segments_after = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert_eq!(segments_after, 1, "delivered segments are deleted; the one being written stays");
    s.close().unwrap();
    let left = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert_eq!(left, 0, "nothing left to send: empty on disk");
}

#[test]
fn rewind_sends_unacknowledged_records_again_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    for i in 0..10 {
        s.append("t/a", &payload(i)).unwrap();
    }
    drain(&mut s);
    s.ack(0);
    s.ack(1);
    s.ack(3); // out of order: not sent again
    s.rewind();
    assert_eq!(ids(&drain(&mut s)), vec![2, 4, 5, 6, 7, 8, 9]);
    for id in [2, 4, 5, 6, 7, 8, 9] {
        s.ack(id);
    }
    assert_eq!(s.unacked(), 0);
}

#[test]
fn reopen_keeps_what_was_not_acknowledged_and_skips_what_was() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
        for i in 0..50 {
            s.append("t/a", &payload(i)).unwrap();
        }
        for r in drain(&mut s).iter().take(20) {
            s.ack(r.id);
        }
        s.close().unwrap();
    }
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    assert_eq!(s.unacked(), 30);
    assert_eq!(ids(&drain(&mut s)), (20..50).collect::<Vec<_>>());
    assert_eq!(s.append("t/a", &payload(50)).unwrap(), Appended::Stored(50), "ids keep increasing");
}

#[test]
fn a_crash_without_close_loses_nothing_appended() {
    let dir = tempfile::tempdir().unwrap();
    let mut s =
        Spool::open(dir.path(), SpoolConfig { fsync: FsyncPolicy::Interval, ..small(WhenFull::DropOldest) })
            .unwrap();
    for i in 0..30 {
        s.append("t/a", &payload(i)).unwrap();
    }
    std::mem::forget(s); // no close, no sync: like SIGKILL
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    assert_eq!(ids(&drain(&mut s)), (0..30).collect::<Vec<_>>());
}

fn newest_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn a_torn_tail_is_cut_counted_and_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
        for i in 0..10 {
            s.append("t/a", &payload(i)).unwrap();
        }
    }
    // A record cut short by a power loss: header and half a body.
    let seg = newest_segment(dir.path());
    let mut rec = Vec::new();
    encode(&mut rec, 10, "t/a", &payload(10));
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&rec[..rec.len() / 2]).unwrap();
    drop(f);
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    assert_eq!(s.health().corrupt, 1);
    assert_eq!(s.append("t/a", &payload(99)).unwrap(), Appended::Stored(10));
    let got = drain(&mut s);
    assert_eq!(ids(&got), (0..=10).collect::<Vec<_>>());
    assert_eq!(got[10].payload, payload(99), "the new record follows the last good one");
}

#[test]
fn a_corrupt_record_in_the_middle_is_skipped_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
        for i in 0..5 {
            s.append("t/a", &payload(i)).unwrap();
        }
    }
    let seg = newest_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let one = bytes.len() / 5;
    bytes[2 * one + HEADER + 10] ^= 0xff; // flip a bit inside record 2's body
    std::fs::write(&seg, &bytes).unwrap();
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    assert_eq!(s.health().corrupt, 1);
    assert_eq!(ids(&drain(&mut s)), vec![0, 1, 3, 4]);
    assert_eq!(s.unacked(), 4);
}

#[test]
fn full_spool_drops_the_oldest_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small(WhenFull::DropOldest)).unwrap();
    let n = 1000;
    for i in 0..n {
        assert!(matches!(s.append("t/a", &payload(i)).unwrap(), Appended::Stored(_)));
    }
    let h = s.health();
    assert!(h.bytes <= 16 * 1024, "{h:?}");
    assert!(h.dropped > 0);
    let kept = ids(&drain(&mut s));
    assert_eq!(h.dropped + kept.len() as u64, n, "every record is either kept or counted as dropped");
    assert_eq!(kept, ((n - kept.len() as u64)..n).collect::<Vec<_>>(), "the newest survive, in order");
}

#[test]
fn full_spool_refuses_new_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), small(WhenFull::RefuseNew)).unwrap();
    let n = 1000;
    let mut stored = 0;
    for i in 0..n {
        if let Appended::Stored(_) = s.append("t/a", &payload(i)).unwrap() {
            stored += 1;
        }
    }
    let h = s.health();
    assert_eq!(h.refused + stored, n);
    assert_eq!(h.dropped, 0);
    assert_eq!(ids(&drain(&mut s)), (0..stored).collect::<Vec<_>>(), "the oldest are kept");
    // Once delivered, there is room again.
    for id in 0..stored {
        s.ack(id);
    }
    assert!(matches!(s.append("t/a", &payload(n)).unwrap(), Appended::Stored(_)));
}

#[test]
fn bad_settings_are_named() {
    let c = SpoolConfig { max_bytes: 1000, segment_bytes: 1000, ..SpoolConfig::default() };
    let p = c.problems().join("\n");
    assert!(p.contains("spool.segment_bytes") && p.contains("spool.max_bytes"), "{p}");
}

#[test]
fn delivered_records_are_kept_for_the_window_across_a_restart_and_never_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), keeping(40)).unwrap();
    for i in 0..100 {
        s.append("t/a", &payload(1000 + i)).unwrap();
    }
    for r in drain(&mut s) {
        s.ack(r.id);
    }
    assert_eq!(s.unacked(), 0);
    let kept = s.kept();
    // About 30 records fit in a 4 KiB segment: whole segments stay.
    assert!((40..100).contains(&kept), "at least the window, in whole segments: {kept}");
    assert_eq!(s.health().kept, kept);
    let before = seqs(&mut s, 0..=u64::MAX);
    assert_eq!(before, ((1100 - kept)..1100).collect::<Vec<_>>(), "the newest, oldest first");
    s.close().unwrap();

    let mut s = Spool::open(dir.path(), keeping(40)).unwrap();
    assert_eq!((s.unacked(), s.kept()), (0, kept), "kept below the cursor");
    assert!(drain(&mut s).is_empty(), "kept records are not sent on their own");
    assert_eq!(s.newest_seq(), Some(1099));
    assert_eq!(seqs(&mut s, 1090..=1095), (1090..=1095).collect::<Vec<_>>());
    let k = s.delivered_in(1095..=1095, 8, |_| false).unwrap();
    let r = s.read_kept(&k[0]).unwrap().unwrap();
    assert_eq!((r.topic.as_str(), r.payload), ("t/a", payload(1095)));
    assert_eq!(s.append("t/a", &payload(1100)).unwrap(), Appended::Stored(100), "ids go on");
    assert_eq!(ids(&drain(&mut s)), vec![100]);
}

#[test]
fn only_acknowledged_records_are_found_for_a_resend_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), keeping(1000)).unwrap();
    for i in 0..20 {
        s.append("t/a", &payload(i)).unwrap();
    }
    let sent = drain(&mut s);
    for r in &sent[..10] {
        s.ack(r.id);
    }
    s.ack(12); // out of order
    assert_eq!(seqs(&mut s, 0..=u64::MAX), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12], "in flight: not found");
    s.rewind(); // 10, 11, 13.. go again; 12 was acknowledged ahead
    assert_eq!(seqs(&mut s, 5..=15), [5, 6, 7, 8, 9, 12]);
    let limited = s.delivered_in(0..=100, 3, |q| q == 1).unwrap();
    assert_eq!(limited.iter().map(|k| k.seq).collect::<Vec<_>>(), [0, 2, 3], "skip and limit");
    assert_eq!(ids(&drain(&mut s)), [10, 11, 13, 14, 15, 16, 17, 18, 19]);
}

#[test]
fn kept_records_make_room_before_anything_is_dropped_or_refused() {
    for when_full in [WhenFull::DropOldest, WhenFull::RefuseNew] {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Spool::open(dir.path(), SpoolConfig { keep_delivered: 100_000, ..small(when_full) }).unwrap();
        for i in 0..1000 {
            assert!(matches!(s.append("t/a", &payload(i)).unwrap(), Appended::Stored(_)), "{when_full:?}");
            for r in drain(&mut s) {
                s.ack(r.id);
            }
        }
        let h = s.health();
        assert_eq!((h.dropped, h.refused, h.records), (0, 0, 0), "{when_full:?}: {h:?}");
        assert!(h.bytes <= 16 * 1024 && h.kept > 50, "bounded by max_bytes: {h:?}");
        assert_eq!(seqs(&mut s, 0..=999).last(), Some(&999));
    }
}

#[test]
fn a_segment_dropped_since_makes_a_found_record_unreadable_not_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), keeping(10)).unwrap();
    for i in 0..40 {
        s.append("t/a", &payload(i)).unwrap();
    }
    for r in drain(&mut s) {
        s.ack(r.id);
    }
    let first = s.delivered_in(0..=u64::MAX, 1, |_| false).unwrap()[0];
    for i in 40..200 {
        s.append("t/a", &payload(i)).unwrap();
        for r in drain(&mut s) {
            s.ack(r.id);
        }
    }
    assert_eq!(s.read_kept(&first).unwrap(), None);
}

#[test]
fn the_seq_is_read_from_the_envelope_json() {
    assert_eq!(envelope_seq(&payload(18231)), Some(18231));
    assert_eq!(envelope_seq(br#"{"v":1,"seq": 7}"#), Some(7));
    assert_eq!(envelope_seq(br#"{"v":1,"samples":[{"reason":"\"seq\":5"}],"seq":9}"#), Some(9));
    assert_eq!(envelope_seq(b"{}"), None);
    assert_eq!(envelope_seq(br#"{"seq":99999999999999999999}"#), None, "overflow");
}
