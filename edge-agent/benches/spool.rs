//! Spool benchmark: append and replay rates of a one-hour backlog of 10
//! assets at 1 Hz, against the disk's ceiling measured in the same run.
//!
//! ```sh
//! cargo bench -p throughline-edge-agent --bench spool
//! BENCH_RUNS=9 BENCH_DIR=/var/tmp cargo bench -p throughline-edge-agent --bench spool
//! ```
//!
//! Two backlogs, both 36,000 samples of real protocol JSON (see
//! `support/backlog.rs`): 3,600 envelopes of 10 samples (the agent during an
//! outage) and 36,000 envelopes of 1 sample (an online agent). For each,
//! every run measures in fresh temporary directories:
//!
//! - `append fsync=interval`: `Spool::append` of every envelope with
//!   `sync_if_due` after each (as the agent's loop does) and one `sync` at the
//!   end; baseline: one `write_all` of topic and payload per envelope to a
//!   plain file, one `sync_data` at the end.
//! - `append fsync=batch`: the same with a sync per envelope; baseline:
//!   `write_all` and `sync_data` per envelope.
//! - `open (scan)`: `Spool::open` of the spool just written (every record's
//!   checksum is verified); `replay`: `next_unsent` and `ack` of every record
//!   with at most 64 in flight, as the MQTT link does; baseline for both:
//!   `std::fs::read` of the plain file (no framing, no checksums).
//!
//! Reads come from the page cache (the files were just written). Baseline and
//! spool alternate within each run, so both see the same machine noise.
//! Medians and min-max over `BENCH_RUNS` runs (default 5).

#[path = "support/backlog.rs"]
mod backlog;

use std::collections::VecDeque;
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use throughline_edge_agent::link::mqtt::MAX_IN_FLIGHT;
use throughline_edge_agent::spool::{Appended, FsyncPolicy, Spool, SpoolConfig};

use backlog::{Record, Shape};

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let parent = std::env::var_os("BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    // `cargo bench` passes `--bench`; a name filter selects backlogs ("10" or "1").
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();

    println!("spool benchmark: {runs} runs, temporary directories under {}", parent.display());
    println!(
        "backlog: 10 assets x 3600 s at 1 Hz = 36,000 samples; medians (min-max); \
         'vs base' = spool rate / baseline rate in the same runs"
    );
    for per_envelope in [10, 1] {
        if !filter.is_empty() && !filter.iter().any(|f| *f == per_envelope.to_string()) {
            continue;
        }
        let records = backlog::generate(&Shape::hour(10, per_envelope));
        bench_backlog(&records, per_envelope, runs, &parent);
    }
}

/// Timings of one kind of measurement over the runs.
#[derive(Debug, Default)]
struct Series(Vec<Duration>);

impl Series {
    fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        }
    }
    fn min(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }
    fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Results {
    base_write: Series,
    append_interval: Series,
    base_write_sync: Series,
    append_batch: Series,
    base_read: Series,
    open: Series,
    replay: Series,
    open_replay: Series,
}

fn bench_backlog(records: &[Record], per_envelope: usize, runs: usize, parent: &Path) {
    let samples: usize = records.iter().map(|r| r.samples).sum();
    let bytes: usize = records.iter().map(|r| r.topic.len() + r.payload.len()).sum();
    let mut r = Results::default();
    for _ in 0..runs {
        let plain = tempfile::tempdir_in(parent).expect("temp dir");
        let file = plain.path().join("plain");
        r.base_write.0.push(plain_write(&file, records, false));
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        let spool_dir = dir.path().join("spool");
        r.append_interval.0.push(spool_append(&spool_dir, records, FsyncPolicy::Interval));

        let plain_sync = tempfile::tempdir_in(parent).expect("temp dir");
        r.base_write_sync.0.push(plain_write(&plain_sync.path().join("plain"), records, true));
        drop(plain_sync);
        let batch = tempfile::tempdir_in(parent).expect("temp dir");
        r.append_batch.0.push(spool_append(&batch.path().join("spool"), records, FsyncPolicy::Batch));
        drop(batch);

        r.base_read.0.push(plain_read(&file, bytes));
        let (open, replay) = spool_replay(&spool_dir, records);
        r.open.0.push(open);
        r.replay.0.push(replay);
        r.open_replay.0.push(open + replay);
    }

    println!();
    println!(
        "{} envelopes of {per_envelope} sample(s): {samples} samples, {:.2} MB of topic+payload \
         (payload {:.0} B/envelope on average)",
        records.len(),
        bytes as f64 / 1e6,
        records.iter().map(|r| r.payload.len()).sum::<usize>() as f64 / records.len() as f64
    );
    println!(
        "{:<34} {:>10} {:>19} {:>13} {:>8} {:>8}",
        "case", "median ms", "min-max ms", "samples/s", "MB/s", "vs base"
    );
    let row = |name: &str, s: &Series, base: Option<&Series>| {
        let secs = s.median().as_secs_f64();
        let vs = base.map_or(String::new(), |b| format!("{:.2}", b.median().as_secs_f64() / secs));
        println!(
            "{:<34} {:>10.1} {:>19} {:>13.0} {:>8.1} {:>8}",
            name,
            secs * 1e3,
            format!("{:.1}-{:.1}", s.min().as_secs_f64() * 1e3, s.max().as_secs_f64() * 1e3),
            samples as f64 / secs,
            bytes as f64 / secs / 1e6,
            vs
        );
    };
    row("baseline write_all, 1 sync", &r.base_write, None);
    row("spool append, fsync=interval", &r.append_interval, Some(&r.base_write));
    row("baseline write_all+sync each", &r.base_write_sync, None);
    row("spool append, fsync=batch", &r.append_batch, Some(&r.base_write_sync));
    row("baseline read (fs::read)", &r.base_read, None);
    row("spool open (scan)", &r.open, Some(&r.base_read));
    row("spool replay (next_unsent+ack)", &r.replay, Some(&r.base_read));
    row("spool open + replay", &r.open_replay, Some(&r.base_read));
}

/// One `write_all` of topic and payload per envelope; `sync_each`: a
/// `sync_data` after each, else one at the end.
fn plain_write(path: &Path, records: &[Record], sync_each: bool) -> Duration {
    let started = Instant::now();
    let mut f = File::create(path).expect("create");
    let mut buf = Vec::new();
    for r in records {
        buf.clear();
        buf.extend_from_slice(r.topic.as_bytes());
        buf.extend_from_slice(&r.payload);
        f.write_all(&buf).expect("write");
        if sync_each {
            f.sync_data().expect("sync");
        }
    }
    if !sync_each {
        f.sync_data().expect("sync");
    }
    started.elapsed()
}

fn plain_read(path: &Path, bytes: usize) -> Duration {
    let started = Instant::now();
    let data = std::fs::read(path).expect("read");
    let elapsed = started.elapsed();
    assert_eq!(black_box(data).len(), bytes);
    elapsed
}

fn config(fsync: FsyncPolicy) -> SpoolConfig {
    SpoolConfig { fsync, ..SpoolConfig::default() }
}

/// Append every record and sync; the spool is closed (not timed) with its records kept.
fn spool_append(dir: &Path, records: &[Record], fsync: FsyncPolicy) -> Duration {
    let started = Instant::now();
    let mut spool = Spool::open(dir, config(fsync)).expect("open");
    for r in records {
        let stored = spool.append(&r.topic, &r.payload).expect("append");
        assert!(matches!(stored, Appended::Stored(_)));
        spool.sync_if_due().expect("sync");
    }
    spool.sync().expect("sync");
    let elapsed = started.elapsed();
    assert_eq!(spool.unacked(), records.len() as u64);
    spool.close().expect("close");
    elapsed
}

/// Open the spool in `dir` and take every record out as the MQTT link does
/// (at most 64 in flight, acknowledged oldest first). Returns the time to
/// open and the time to replay; checks every payload came back in order.
fn spool_replay(dir: &Path, records: &[Record]) -> (Duration, Duration) {
    let started = Instant::now();
    let mut spool = Spool::open(dir, config(FsyncPolicy::Interval)).expect("open");
    let opened = started.elapsed();
    let started = Instant::now();
    let mut inflight = VecDeque::with_capacity(MAX_IN_FLIGHT);
    let mut replayed = Vec::with_capacity(records.len());
    loop {
        while inflight.len() < MAX_IN_FLIGHT {
            match spool.next_unsent().expect("read") {
                Some(r) => {
                    inflight.push_back(r.id);
                    replayed.push((r.topic, r.payload));
                }
                None => break,
            }
        }
        let Some(id) = inflight.pop_front() else { break };
        spool.ack(id);
    }
    let replay = started.elapsed();
    assert_eq!(spool.unacked(), 0);
    assert_eq!(replayed.len(), records.len());
    for (got, want) in replayed.iter().zip(records) {
        assert!(got.0 == want.topic && got.1 == want.payload, "replayed record differs");
    }
    spool.close().expect("close");
    (opened, replay)
}
