//! Queueing alert events for a receiver whose outbox is full: each batch is
//! one transaction, then the receiver's queue is trimmed to
//! `outbox.max_pending` (a range scan of the `outbox_queue` index), and the
//! delivery task's read of the queue's head. Queues of 1,000 and 100,000
//! (the default bound) undelivered events, on a real SQLite file.
//!
//! ```sh
//! cargo bench -p throughline-aggregator --bench outbox
//! ```

use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, BenchmarkId, Criterion};
use throughline_aggregator::store::Store;

/// About the size of a webhook body for one event.
fn body(i: u64) -> String {
    format!("{{\"v\":1,\"event\":\"opened\",\"alert\":{{\"id\":{i},\"summary\":\"{}\"}}}}", "x".repeat(600))
}

fn outbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("outbox");
    g.sample_size(20).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    for max in [1_000u64, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let now = Utc::now();
        let fill: Vec<(&str, String, u64)> = (0..max).map(|i| ("webhook:down", body(i), max)).collect();
        for chunk in fill.chunks(10_000) {
            store.enqueue(chunk, now).unwrap();
        }
        let mut i = max;
        g.bench_with_input(BenchmarkId::new("enqueue_one_into_full", max), &max, |b, _| {
            b.iter(|| {
                i += 1;
                let dropped = store.enqueue(&[("webhook:down", body(i), max)], now).unwrap();
                assert_eq!(dropped, vec![("webhook:down".to_string(), 1)]);
            })
        });
        g.bench_with_input(BenchmarkId::new("next_due", max), &max, |b, _| {
            b.iter(|| black_box(store.next_due("webhook:down", now).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, outbox);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
