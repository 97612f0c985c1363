//! The in-flight window of the MQTT link: which QoS 1 publishes are out,
//! which spool record each packet id carries, how many may be out at once.
//!
//! Pure bookkeeping in the style of rumqttc's `state.rs`: no tokio, no
//! rumqttc, no network. The link tells the window what happened
//! ([`Window::fill`] handed records to the client, [`Window::written`] saw
//! a packet id go out, [`Window::ack`] got a PUBACK, [`Window::rewind`]
//! reconnected) and the window keeps the spool's records in step: a PUBACK
//! acknowledges its record in the spool, a rewind makes the spool send
//! everything that was in flight again, from the oldest, in order.
//!
//! A publish has no packet id until rumqttc writes it, so records handed to
//! the client wait in `queued` (in the order handed) and take the packet
//! ids of the `Outgoing::Publish` events in that order; rumqttc writes
//! requests in the order it receives them. Status messages share the window
//! (they are QoS 1 too) but carry no record, and so do envelopes published
//! again for a resend request (their records were acknowledged before).

use std::collections::{HashMap, VecDeque};

use super::resend::Resends;
use crate::spool::{Record, Spool, SpoolError};

/// What one QoS 1 publish in the window carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The spool record with this id.
    Record(u64),
    /// A status message (not in the spool).
    Status,
    /// A delivered envelope published again for a resend request.
    Resend,
}

/// The publishes handed to the client and not yet acknowledged.
#[derive(Debug)]
pub struct Window {
    max: usize,
    /// Handed to the client, packet id not known yet, oldest first.
    queued: VecDeque<Slot>,
    /// Written to the network, by packet id, until acknowledged.
    by_pkid: HashMap<u16, Slot>,
}

impl Window {
    /// A window of at most `max` publishes in flight.
    pub fn new(max: usize) -> Window {
        Window { max, queued: VecDeque::new(), by_pkid: HashMap::new() }
    }

    /// Publishes in flight (handed to the client and not acknowledged).
    pub fn len(&self) -> usize {
        self.queued.len() + self.by_pkid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Another publish fits.
    pub fn has_room(&self) -> bool {
        self.len() < self.max
    }

    /// A status message was handed to the client.
    pub fn status_queued(&mut self) {
        self.queued.push_back(Slot::Status);
    }

    /// Hand the spool's next records to `publish` while the window has room;
    /// `publish` returns `false` when the client did not take the record
    /// (it stays in flight in the spool and goes again after the next
    /// rewind), which stops the filling.
    pub fn fill(
        &mut self,
        spool: &mut Spool,
        mut publish: impl FnMut(Record) -> bool,
    ) -> Result<(), SpoolError> {
        while self.has_room() {
            let Some(record) = spool.next_unsent()? else { break };
            let id = record.id;
            if !publish(record) {
                break;
            }
            self.queued.push_back(Slot::Record(id));
        }
        Ok(())
    }

    /// Hand envelopes queued for a resend request to `publish` while the
    /// window has room (before [`Window::fill`]: they are older); `false`
    /// from `publish` stops the filling and the envelope is not sent (the
    /// aggregator asks again).
    pub fn fill_resends(
        &mut self,
        spool: &mut Spool,
        resends: &mut Resends,
        mut publish: impl FnMut(Record) -> bool,
    ) -> Result<(), SpoolError> {
        while self.has_room() {
            let Some(record) = resends.next(spool)? else { break };
            if !publish(record) {
                break;
            }
            self.queued.push_back(Slot::Resend);
        }
        Ok(())
    }

    /// rumqttc wrote a QoS 1 publish with packet id `pkid`. A packet id
    /// already in flight is a retransmission, not a new publish.
    pub fn written(&mut self, pkid: u16) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_pkid.entry(pkid) {
            if let Some(entry) = self.queued.pop_front() {
                slot.insert(entry);
            }
        }
    }

    /// The broker acknowledged `pkid`: its record leaves the spool. Returns
    /// what it carried; `None` for a packet id not in flight (a duplicate
    /// PUBACK, or one from before a rewind).
    pub fn ack(&mut self, pkid: u16, spool: &mut Spool) -> Option<Slot> {
        let slot = self.by_pkid.remove(&pkid)?;
        if let Slot::Record(id) = slot {
            spool.ack(id);
        }
        Some(slot)
    }

    /// A new connection on which the broker kept nothing of the old one:
    /// no packet id in flight will be acknowledged now, so the window is
    /// emptied and the spool sends everything unacknowledged again, from
    /// the oldest, in order.
    pub fn rewind(&mut self, spool: &mut Spool) {
        self.queued.clear();
        self.by_pkid.clear();
        spool.rewind();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{FsyncPolicy, SpoolConfig};

    fn spool_with(dir: &std::path::Path, records: u64) -> Spool {
        let config = SpoolConfig { fsync: FsyncPolicy::Batch, ..SpoolConfig::default() };
        let mut spool = Spool::open(dir, config).unwrap();
        for i in 0..records {
            spool.append("t/a", format!("{{\"seq\":{i}}}").as_bytes()).unwrap();
        }
        spool
    }

    /// Fill the window; the ids handed to the client, in order.
    fn fill(w: &mut Window, spool: &mut Spool) -> Vec<u64> {
        let mut sent = Vec::new();
        w.fill(spool, |r| {
            sent.push(r.id);
            true
        })
        .unwrap();
        sent
    }

    #[test]
    fn a_full_window_takes_nothing_more_until_an_ack() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), 10);
        let mut w = Window::new(4);
        w.status_queued();
        assert_eq!(fill(&mut w, &mut spool), vec![0, 1, 2], "the status message takes a place too");
        assert!(!w.has_room());
        assert!(fill(&mut w, &mut spool).is_empty());
        for pkid in 1..=4 {
            w.written(pkid);
        }
        assert_eq!(w.ack(1, &mut spool), Some(Slot::Status));
        assert_eq!(spool.unacked(), 10, "a status PUBACK acknowledges no record");
        assert_eq!(fill(&mut w, &mut spool), vec![3]);
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn acks_out_of_order_remove_their_own_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), 4);
        let mut w = Window::new(8);
        assert_eq!(fill(&mut w, &mut spool), vec![0, 1, 2, 3]);
        for pkid in [10, 11, 12, 13] {
            w.written(pkid);
        }
        assert_eq!(w.ack(12, &mut spool), Some(Slot::Record(2)));
        assert_eq!(w.ack(10, &mut spool), Some(Slot::Record(0)));
        assert_eq!(spool.unacked(), 2);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn duplicate_and_unknown_acks_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), 2);
        let mut w = Window::new(8);
        fill(&mut w, &mut spool);
        w.written(1);
        w.written(1); // a retransmission keeps its record
        w.written(2);
        assert_eq!(w.ack(1, &mut spool), Some(Slot::Record(0)));
        assert_eq!(w.ack(1, &mut spool), None, "duplicate PUBACK");
        assert_eq!(w.ack(99, &mut spool), None, "packet id never written");
        assert_eq!(spool.unacked(), 1);
        assert_eq!(w.ack(2, &mut spool), Some(Slot::Record(1)));
        assert!(w.is_empty());
    }

    #[test]
    fn rewind_after_a_disconnect_resends_in_order_without_the_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), 6);
        let mut w = Window::new(8);
        assert_eq!(fill(&mut w, &mut spool), (0..6).collect::<Vec<_>>());
        // Four written, two still queued in the client when the link drops.
        for pkid in 1..=4 {
            w.written(pkid);
        }
        w.ack(2, &mut spool);
        w.rewind(&mut spool);
        assert!(w.is_empty());
        assert_eq!(w.ack(3, &mut spool), None, "a PUBACK of the old connection is not applied");
        assert_eq!(fill(&mut w, &mut spool), vec![0, 2, 3, 4, 5], "record 1 was acknowledged");
        // Packet ids of the new connection map onto the resent records.
        for pkid in 1..=5 {
            w.written(pkid);
        }
        assert_eq!(w.ack(1, &mut spool), Some(Slot::Record(0)));
        assert_eq!(w.ack(5, &mut spool), Some(Slot::Record(5)));
    }

    #[test]
    fn resends_go_first_and_their_acks_touch_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), 6);
        let mut w = Window::new(4);
        assert_eq!(fill(&mut w, &mut spool), vec![0, 1, 2, 3]);
        for pkid in 1..=4 {
            w.written(pkid);
            w.ack(pkid, &mut spool);
        }
        let mut resends = Resends::default();
        let ask = throughline_shared::message::ResendRequest { v: 1, from: 1, to: Some(2) };
        assert_eq!(resends.request(&ask, &mut spool).unwrap(), 2);
        let mut sent = Vec::new();
        w.fill_resends(&mut spool, &mut resends, |r| {
            sent.push(r.id);
            true
        })
        .unwrap();
        assert_eq!(sent, vec![1, 2], "the delivered records of seq 1 and 2");
        assert_eq!(fill(&mut w, &mut spool), vec![4, 5], "then the new ones, in the room left");
        for pkid in 5..=8 {
            w.written(pkid);
        }
        assert_eq!(w.ack(5, &mut spool), Some(Slot::Resend));
        assert_eq!(spool.unacked(), 2, "records 4 and 5 still wait for theirs");
        assert_eq!(w.ack(7, &mut spool), Some(Slot::Record(4)));
    }

    #[test]
    fn a_refused_publish_stops_filling() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = spool_with(dir.path(), 3);
        let mut w = Window::new(8);
        w.fill(&mut spool, |r| r.id == 0).unwrap();
        assert_eq!(w.len(), 1, "record 1 was not taken and is not in the window");
        w.rewind(&mut spool);
        assert_eq!(fill(&mut w, &mut spool), vec![0, 1, 2], "it goes again after a rewind");
    }
}
