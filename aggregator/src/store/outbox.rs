//! The notification outbox: every alert change for every receiver, kept
//! until delivered, delivered in order. Each receiver's queue of undelivered
//! notifications is bounded (`outbox.max_pending`): when a new one would
//! exceed it, the receiver's oldest undelivered ones are dropped (and
//! counted by the caller), so a receiver that is down for weeks costs a
//! bounded amount of disk and still gets the latest changes first.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{ms, Store, StoreError};

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    last_error TEXT
);
DROP INDEX IF EXISTS outbox_due;
-- A receiver's undelivered rows in id order (the index's entries end with
-- the rowid): the head of a queue and its trimming are index range scans.
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox(receiver, delivered_ms);
"#;

/// A notification waiting for (or done with) delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub receiver: String,
    pub body: String,
    pub attempts: i64,
}

impl Store {
    /// Queue notifications (receiver, body, bound) in one transaction. Then,
    /// for each receiver named, its oldest undelivered rows beyond its bound
    /// (at least 1) are deleted. Returns how many each receiver lost that
    /// way (receivers that lost none are left out).
    pub fn enqueue(
        &self,
        items: &[(&str, String, u64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut bounds: Vec<(&str, u64)> = Vec::new();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO outbox (receiver, body, created_ms, next_ms) VALUES (?1, ?2, ?3, ?3)",
                )
                .map_err(|e| self.err(e))?;
            for (receiver, body, max) in items {
                insert.execute(params![receiver, body, ms(now)]).map_err(|e| self.err(e))?;
                if !bounds.iter().any(|(r, _)| r == receiver) {
                    bounds.push((receiver, *max));
                }
            }
        }
        let mut dropped = Vec::new();
        for (receiver, max) in bounds {
            // The newest row that falls outside the bound, if any.
            let cut: Option<i64> = tx
                .query_row(
                    "SELECT id FROM outbox WHERE receiver = ?1 AND delivered_ms IS NULL
                     ORDER BY id DESC LIMIT 1 OFFSET ?2",
                    params![receiver, max.max(1) as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(cut) = cut {
                let n = tx
                    .execute(
                        "DELETE FROM outbox WHERE receiver = ?1 AND delivered_ms IS NULL AND id <= ?2",
                        params![receiver, cut],
                    )
                    .map_err(|e| self.err(e))?;
                dropped.push((receiver.to_string(), n as u64));
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(dropped)
    }

    /// The oldest undelivered notification of `receiver`, if it is due.
    /// Delivery is in order: a later one waits for the one before it.
    pub fn next_due(
        &self,
        receiver: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(OutboxItem, bool)>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT id, receiver, body, attempts, next_ms FROM outbox WHERE receiver = ?1 AND delivered_ms IS NULL
             ORDER BY id LIMIT 1",
            params![receiver],
            |r| {
                let next: i64 = r.get(4)?;
                Ok((
                    OutboxItem { id: r.get(0)?, receiver: r.get(1)?, body: r.get(2)?, attempts: r.get(3)? },
                    next <= ms(now),
                ))
            },
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Mark a notification delivered; delivered rows older than a week go.
    pub fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE outbox SET delivered_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, ms(now)],
        )
        .map_err(|e| self.err(e))?;
        conn.execute(
            "DELETE FROM outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1",
            params![ms(now - chrono::Duration::days(7))],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn mark_failed(&self, id: i64, next: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id, ms(next), error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Undelivered notifications per receiver.
    pub fn outbox_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT receiver, COUNT(*) FROM outbox WHERE delivered_ms IS NULL GROUP BY receiver",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn outbox_is_ordered_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let now = Utc::now();
        {
            let s = Store::open(&path).unwrap();
            s.enqueue(&[("hook", "one".into(), 10), ("hook", "two".into(), 10)], now).unwrap();
            let (first, due) = s.next_due("hook", now).unwrap().unwrap();
            assert!(due && first.body == "one");
            s.mark_failed(first.id, now + Duration::seconds(5), "connection refused").unwrap();
            let (again, due) = s.next_due("hook", now).unwrap().unwrap();
            assert!(!due && again.body == "one", "a failed item blocks the ones behind it until retried");
        }
        let s = Store::open(&path).unwrap();
        let (first, due) = s.next_due("hook", now + Duration::seconds(6)).unwrap().unwrap();
        assert!(due && first.body == "one" && first.attempts == 1);
        s.mark_delivered(first.id, now).unwrap();
        assert_eq!(s.next_due("hook", now).unwrap().unwrap().0.body, "two");
        assert_eq!(s.outbox_depth().unwrap(), vec![("hook".to_string(), 1)]);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_undelivered_and_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        let now = Utc::now();
        let dropped = s
            .enqueue(&[("down", "1".into(), 3), ("down", "2".into(), 3), ("up", "a".into(), 3)], now)
            .unwrap();
        assert!(dropped.is_empty(), "within the bound: {dropped:?}");
        // "up" delivers its one row; delivered rows do not count.
        let (a, _) = s.next_due("up", now).unwrap().unwrap();
        s.mark_delivered(a.id, now).unwrap();
        let batch: Vec<(&str, String, u64)> = (3..=7)
            .map(|i| ("down", i.to_string(), 3))
            .chain([("up", "b".into(), 3), ("up", "c".into(), 3), ("up", "d".into(), 3)])
            .collect();
        let dropped = s.enqueue(&batch, now).unwrap();
        assert_eq!(dropped, vec![("down".to_string(), 4)], "7 queued, 3 kept; up holds 3 of 3");
        let (head, _) = s.next_due("down", now).unwrap().unwrap();
        assert_eq!(head.body, "5", "the oldest went first");
        let mut depth = s.outbox_depth().unwrap();
        depth.sort();
        assert_eq!(depth, vec![("down".to_string(), 3), ("up".to_string(), 3)]);
        let dropped = s.enqueue(&[("down", "8".into(), 1)], now).unwrap();
        assert_eq!(dropped, vec![("down".to_string(), 3)]);
        assert_eq!(s.next_due("down", now).unwrap().unwrap().0.body, "8");
    }
}
