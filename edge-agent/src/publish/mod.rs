//! From readings to envelopes: batching per asset (pure, no I/O). The MQTT
//! link that sends the spooled envelopes is [`crate::link`].

/// The MQTT link moved to [`crate::link`]; these paths stay for callers
/// outside this crate that still name them (`tests/e2e/acl.rs`).
pub use crate::link::{mqtt, tls};

use std::time::Duration;

use throughline_shared::{AssetState, Sample};
use tokio::time::Instant;

/// Groups each asset's samples into batches: a batch is ready when it holds
/// `max_samples`, when its oldest sample has waited `max_delay`, or at once
/// when the asset's state changes (a line going down is news now).
#[derive(Debug)]
pub struct Batcher {
    max_samples: usize,
    max_delay: Duration,
    assets: Vec<AssetBatch>,
}

#[derive(Debug, Default)]
struct AssetBatch {
    samples: Vec<Sample>,
    first_at: Option<Instant>,
    last_state: Option<AssetState>,
}

/// A batch ready to publish: asset index and its samples in order.
pub type Batch = (usize, Vec<Sample>);

impl Batcher {
    pub fn new(assets: usize, max_samples: usize, max_delay: Duration) -> Batcher {
        Batcher { max_samples, max_delay, assets: (0..assets).map(|_| AssetBatch::default()).collect() }
    }

    /// Change the longest wait (e.g. longer while the broker is away, so the
    /// spool holds fuller envelopes and replays faster).
    pub fn set_max_delay(&mut self, max_delay: Duration) {
        self.max_delay = max_delay;
    }

    /// Add a sample; returns the asset's batch if it is now ready.
    pub fn push(&mut self, asset: usize, sample: Sample, now: Instant) -> Option<Batch> {
        let b = &mut self.assets[asset];
        let changed = sample.state.is_some() && sample.state != b.last_state && b.last_state.is_some();
        if sample.state.is_some() {
            b.last_state = sample.state;
        }
        b.first_at.get_or_insert(now);
        b.samples.push(sample);
        if changed || b.samples.len() >= self.max_samples {
            b.first_at = None;
            return Some((asset, std::mem::take(&mut b.samples)));
        }
        None
    }

    /// When the oldest waiting batch becomes due, if any is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.assets.iter().filter_map(|b| b.first_at).min().map(|t| t + self.max_delay)
    }

    /// Batches whose delay has run out.
    pub fn due(&mut self, now: Instant) -> Vec<Batch> {
        let max_delay = self.max_delay;
        self.take_where(|b| b.first_at.is_some_and(|t| t + max_delay <= now))
    }

    /// Everything still waiting (shutdown).
    pub fn drain(&mut self) -> Vec<Batch> {
        self.take_where(|b| !b.samples.is_empty())
    }

    /// Samples waiting in batches.
    pub fn waiting(&self) -> usize {
        self.assets.iter().map(|b| b.samples.len()).sum()
    }

    fn take_where(&mut self, pred: impl Fn(&AssetBatch) -> bool) -> Vec<Batch> {
        let mut out = Vec::new();
        for (i, b) in self.assets.iter_mut().enumerate() {
            if pred(b) && !b.samples.is_empty() {
                b.first_at = None;
                out.push((i, std::mem::take(&mut b.samples)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn s(state: AssetState) -> Sample {
        Sample { state: Some(state), output: Some(1.0), ..Sample::at(Utc::now()) }
    }

    #[test]
    fn batches_by_size_delay_and_state_change() {
        let t0 = Instant::now();
        let mut b = Batcher::new(2, 3, Duration::from_secs(1));
        assert!(b.push(0, s(AssetState::Running), t0).is_none());
        assert!(b.push(0, s(AssetState::Running), t0).is_none());
        let (a, full) = b.push(0, s(AssetState::Running), t0).unwrap();
        assert_eq!((a, full.len()), (0, 3));

        assert!(b.push(1, s(AssetState::Running), t0).is_none());
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(b.due(t0 + Duration::from_millis(999)).is_empty());
        let due = b.due(t0 + Duration::from_secs(1));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, 1);
        assert_eq!(b.next_deadline(), None);

        // The state change goes out at once, with what was waiting before it.
        assert!(b.push(0, s(AssetState::Running), t0).is_none());
        let (_, batch) = b.push(0, s(AssetState::Down), t0).expect("state change flushes");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].state, Some(AssetState::Down));
        assert_eq!(b.waiting(), 0);

        b.push(1, s(AssetState::Running), t0);
        assert_eq!(b.drain().len(), 1);
        assert_eq!(b.waiting(), 0);
    }
}
