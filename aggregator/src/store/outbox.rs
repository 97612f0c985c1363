//! The notification outbox: every alert change for every receiver, kept
//! until delivered, delivered in order.

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
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(receiver, delivered_ms, next_ms);
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
    /// Queue a notification for a receiver.
    pub fn enqueue(&self, receiver: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO outbox (receiver, body, created_ms, next_ms) VALUES (?1, ?2, ?3, ?3)",
                params![receiver, body, ms(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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
            s.enqueue("hook", "one", now).unwrap();
            s.enqueue("hook", "two", now).unwrap();
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
}
