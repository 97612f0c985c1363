//! Resend requests from the aggregator: which delivered envelopes to
//! publish again. Pure bookkeeping over the spool, like [`super::window`]:
//! no tokio, no rumqttc.
//!
//! A broker that crashes before it saved its state loses what it had
//! acknowledged to the agent but not yet handed to the aggregator. The
//! aggregator sees the gap in `seq` and asks, on the agent's `resend`
//! topic, for the range; [`Resends::request`] finds the envelopes of that
//! range the spool still keeps ([`Spool::delivered_in`]) and queues where
//! they are, at most [`MAX_QUEUED`]; the link publishes them again, ahead
//! of new records, unchanged (same topic, same payload, same `seq`), so
//! the aggregator takes each as a late fill or drops it as a duplicate.
//! What the spool no longer keeps is not answered: the aggregator, after
//! its attempts, reports that range lost.
//!
//! Records not yet acknowledged are not queued: they are on their way
//! already. A request for what is already queued queues nothing twice. The
//! queue is emptied on reconnect (the aggregator asks again for what did
//! not arrive).

use std::collections::{HashSet, VecDeque};

use throughline_shared::message::ResendRequest;

use crate::spool::{Kept, Record, Spool, SpoolError};

/// Most envelopes waiting to be published again: the work one request, or
/// a flood of them, can cause is bounded by it (16 bytes each in memory).
pub const MAX_QUEUED: usize = 10_000;

/// Kept envelopes waiting to be published again, oldest asked first.
#[derive(Debug, Default)]
pub struct Resends {
    queue: VecDeque<Kept>,
    /// The `seq` of each queued envelope.
    queued: HashSet<u64>,
}

impl Resends {
    /// Queue the kept envelopes `request` asks for; returns how many were
    /// queued (0 when the queue is full).
    pub fn request(&mut self, request: &ResendRequest, spool: &mut Spool) -> Result<usize, SpoolError> {
        let room = MAX_QUEUED.saturating_sub(self.queue.len());
        if room == 0 {
            return Ok(0);
        }
        let range = request.from..=request.to.unwrap_or(u64::MAX);
        let found = spool.delivered_in(range, room, |seq| self.queued.contains(&seq))?;
        let n = found.len();
        for k in found {
            self.queued.insert(k.seq);
            self.queue.push_back(k);
        }
        Ok(n)
    }

    /// The next envelope to publish again, read from the spool (one whose
    /// segment has gone since it was queued is passed over).
    pub fn next(&mut self, spool: &mut Spool) -> Result<Option<Record>, SpoolError> {
        while let Some(k) = self.queue.pop_front() {
            self.queued.remove(&k.seq);
            if let Some(r) = spool.read_kept(&k)? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Forget what is queued (a new connection).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued.clear();
    }

    /// Envelopes queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{FsyncPolicy, SpoolConfig};

    fn delivered_spool(dir: &std::path::Path, seqs: std::ops::Range<u64>) -> Spool {
        // No fsync per record: these spools are thrown away.
        let config =
            SpoolConfig { fsync: FsyncPolicy::Interval, fsync_interval_ms: 60_000, ..SpoolConfig::default() };
        let mut spool = Spool::open(dir, config).unwrap();
        for q in seqs {
            spool.append("t/a", format!("{{\"v\":1,\"seq\":{q}}}").as_bytes()).unwrap();
        }
        while let Some(r) = spool.next_unsent().unwrap() {
            spool.ack(r.id);
        }
        spool
    }

    fn seq_of(r: &Record) -> u64 {
        crate::spool::envelope_seq(&r.payload).unwrap()
    }

    #[test]
    fn a_request_queues_what_is_kept_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = delivered_spool(dir.path(), 100..200);
        let mut r = Resends::default();
        let ask = |from, to| ResendRequest { v: 1, from, to };
        assert_eq!(r.request(&ask(150, Some(154)), &mut spool).unwrap(), 5);
        assert_eq!(r.request(&ask(152, Some(156)), &mut spool).unwrap(), 2, "153..154 are queued already");
        assert_eq!(r.request(&ask(300, Some(400)), &mut spool).unwrap(), 0, "nothing kept there");
        assert_eq!(r.request(&ask(50, Some(99)), &mut spool).unwrap(), 0, "before the spool's memory");
        let mut out = Vec::new();
        while let Some(rec) = r.next(&mut spool).unwrap() {
            out.push(seq_of(&rec));
        }
        assert_eq!(out, [150, 151, 152, 153, 154, 155, 156]);
        assert!(r.is_empty());
        assert_eq!(spool.unacked(), 0, "a resend acknowledges and sends nothing in the spool");
        assert!(spool.next_unsent().unwrap().is_none());
    }

    #[test]
    fn an_open_request_and_a_full_queue_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = delivered_spool(dir.path(), 0..(MAX_QUEUED as u64 + 500));
        let mut r = Resends::default();
        let n = r.request(&ResendRequest { v: 1, from: 10, to: None }, &mut spool).unwrap();
        assert_eq!((n, r.len()), (MAX_QUEUED, MAX_QUEUED));
        assert_eq!(r.request(&ResendRequest { v: 1, from: 0, to: Some(5) }, &mut spool).unwrap(), 0);
        assert_eq!(seq_of(&r.next(&mut spool).unwrap().unwrap()), 10, "from the start of the range");
        r.clear();
        assert!(r.next(&mut spool).unwrap().is_none());
    }
}
