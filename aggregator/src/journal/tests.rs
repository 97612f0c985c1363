use super::*;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_764_000_000_000 + ms).unwrap()
}

type Seen = Vec<(u64, DateTime<Utc>, String, Vec<u8>)>;

fn open(dir: &Path, from: u64) -> (Journal, Replayed, Seen) {
    let mut seen = Vec::new();
    let (j, r) = Journal::open(dir, Duration::from_secs(1), from, Arc::new(AtomicU64::new(0)), |e| {
        seen.push((e.id, e.received, e.topic.to_string(), e.payload.to_vec()))
    })
    .unwrap();
    (j, r, seen)
}

#[test]
fn records_come_back_in_order_with_their_receive_time_and_ids_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, r, seen) = open(dir.path(), 0);
    assert_eq!((r, seen.len()), (Replayed::default(), 0));
    for i in 0..5 {
        assert_eq!(j.append("t/a", format!("m{i}").as_bytes(), at(i)).unwrap(), i as u64);
    }
    drop(j); // no sync: a crash of the process keeps what was written
    let (mut j, r, seen) = open(dir.path(), 2);
    assert_eq!(r, Replayed { records: 3, skipped: 2, corrupt: 0 });
    let ids: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(ids, [2, 3, 4]);
    assert_eq!((seen[0].1, seen[0].2.as_str(), seen[0].3.as_slice()), (at(2), "t/a", b"m2".as_slice()));
    assert_eq!(j.append("t/b", b"x", at(9)).unwrap(), 5, "ids go on after a restart");
    j.probe().unwrap();
    drop(j);
    let (_, r, seen) = open(dir.path(), 0);
    assert_eq!(r.records, 6, "the probe record is not replayed");
    assert_eq!(seen.last().unwrap().2, "t/b");
}

#[test]
fn a_torn_tail_and_a_flipped_bit_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _, _) = open(dir.path(), 0);
    for i in 0..4 {
        j.append("t/a", b"payload", at(i)).unwrap();
    }
    let seg = j.segments.back().unwrap().path.clone();
    drop(j);
    let mut bytes = std::fs::read(&seg).unwrap();
    let one = bytes.len() / 4;
    bytes[one + 30] ^= 0xff; // inside record 1
    bytes.truncate(bytes.len() - 3); // record 3 torn
    std::fs::write(&seg, &bytes).unwrap();
    let (mut j, r, seen) = open(dir.path(), 0);
    assert_eq!(r, Replayed { records: 2, skipped: 0, corrupt: 2 });
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 2]);
    // New records follow in a new segment, with ids after the last good one.
    assert_eq!(j.append("t/a", b"next", at(5)).unwrap(), 3);
}

#[test]
fn checkpointed_segments_are_deleted_but_never_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let released = Arc::new(AtomicU64::new(0));
    let (mut j, _) = Journal::open(dir.path(), Duration::from_secs(1), 0, released.clone(), |_| {}).unwrap();
    j.segment_bytes = 200;
    for i in 0..20 {
        j.append("t/a", &[b'x'; 100], at(i)).unwrap();
    }
    let before = j.segment_count();
    assert!(before >= 10, "{before} segments");
    released.store(10, Ordering::Relaxed);
    j.append("t/a", b"y", at(30)).unwrap();
    let first = j.segments.front().unwrap().first;
    assert!((8..=10).contains(&first), "segments before the checkpoint went; first left {first}");
    released.store(u64::MAX, Ordering::Relaxed);
    j.append("t/a", b"z", at(31)).unwrap();
    assert_eq!(j.segment_count(), 1);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 1, "deleted on disk too");
    drop(j);
    // Reopened from a checkpoint past everything: nothing replayed, old files go.
    let (j, r, _) = open(dir.path(), 22);
    assert_eq!(r.records, 0);
    assert_eq!(j.next_id(), 22);
}

#[test]
fn a_batch_is_one_write_with_consecutive_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _, _) = open(dir.path(), 0);
    j.append("t/a", b"one", at(0)).unwrap();
    let first = j.append_many(&[("t/a", b"two"), ("t/b", b"three"), ("t/c", b"four")], at(1)).unwrap();
    assert_eq!((first, j.next_id()), (1, 4));
    drop(j);
    let (_, r, seen) = open(dir.path(), 0);
    assert_eq!(r.records, 4);
    let got: Vec<(u64, &str, &[u8])> = seen.iter().map(|s| (s.0, s.2.as_str(), s.3.as_slice())).collect();
    assert_eq!(got, [(0, "t/a", &b"one"[..]), (1, "t/a", b"two"), (2, "t/b", b"three"), (3, "t/c", b"four")]);
}

#[test]
fn syncs_run_in_the_background_and_a_clean_sync_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) =
        Journal::open(dir.path(), Duration::ZERO, 0, Arc::new(AtomicU64::new(0)), |_| {}).unwrap();
    j.append("t/a", b"x", at(0)).unwrap();
    assert!(j.sync_deadline().is_some(), "unsynced data has a deadline");
    j.sync_if_due().unwrap();
    assert!(j.sync_deadline().is_none(), "handed to the sync thread");
    j.append("t/a", b"y", at(1)).unwrap();
    j.sync().unwrap();
    assert!(j.sync_deadline().is_none());
}
