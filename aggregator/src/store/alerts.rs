//! Alerts as stored: the whole alert as JSON plus the columns it is looked
//! up by. The alert book assigns ids; the store keeps what it is given.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::alert::Alert;
use crate::model::{AlertKey, AlertKind, AlertStatus};

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    group_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, key);
"#;

impl Store {
    /// Insert or update alert `a.id`.
    pub fn save_alert(&self, a: &Alert) -> Result<(), StoreError> {
        let body = serde_json::to_string(a).expect("alert serializes");
        self.lock()
            .execute(
                "INSERT INTO alerts (id, key, kind, status, group_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET key = ?2, kind = ?3, status = ?4, group_id = ?5, body = ?6",
                params![a.id, a.key.to_string(), a.kind.as_str(), a.status.as_str(), a.group, body],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Alert bodies (JSON) by optional status/kind/group, newest first.
    pub fn alerts(
        &self,
        status: Option<AlertStatus>,
        kind: Option<AlertKind>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, body FROM alerts WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)
                 AND (?3 IS NULL OR group_id = ?3) ORDER BY id DESC LIMIT ?4",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![status.map(AlertStatus::as_str), kind.map(AlertKind::as_str), group, limit as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The status of alert `id`, if it exists.
    pub fn alert_status(&self, id: i64) -> Result<Option<AlertStatus>, StoreError> {
        let status: Option<String> = self
            .lock()
            .query_row("SELECT status FROM alerts WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(status.map(|s| AlertStatus::parse(&s).unwrap_or(AlertStatus::Open)))
    }

    /// Alerts not resolved yet, oldest first. A body that no longer reads
    /// as an alert is left out and counted in the second value.
    pub fn unresolved_alerts(&self) -> Result<(Vec<Alert>, usize), StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT body FROM alerts WHERE status != 'resolved' ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let bodies = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        let alerts: Vec<Alert> = bodies.iter().filter_map(|b| serde_json::from_str(b).ok()).collect();
        let unreadable = bodies.len() - alerts.len();
        Ok((alerts, unreadable))
    }

    /// The keys of every alert of `kind` ever stored.
    pub fn alert_keys(&self, kind: AlertKind) -> Result<Vec<AlertKey>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT key FROM alerts WHERE kind = ?1").map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map(params![kind.as_str()], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let keys = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok(keys.iter().filter_map(|k| k.parse().ok()).collect())
    }

    /// The id the next new alert takes: one past the highest stored.
    pub fn next_alert_id(&self) -> Result<i64, StoreError> {
        let max: Option<i64> =
            self.lock().query_row("SELECT MAX(id) FROM alerts", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(max.unwrap_or(0) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::book::AlertBook;
    use crate::alert::{AlertDetails, Condition};
    use chrono::Utc;

    fn cond(key: &str) -> Condition {
        let details = AlertDetails::Downtime {
            since: Utc::now(),
            reason: None,
            minutes: 20.0,
            rate_loss_per_hour: None,
        };
        Condition { group: Some("g".into()), details, ..Condition::new(key.parse().unwrap(), "short", "act") }
    }

    #[test]
    fn the_book_survives_a_reopen_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let now = Utc::now();
        let id = {
            let store = Store::open(&path).unwrap();
            let mut book = AlertBook::default();
            let ch = book.apply(vec![cond("downtime:s:a"), cond("forecast_deviation:g:1")], now);
            for a in ch.to_store() {
                store.save_alert(a).unwrap();
            }
            let dev = ch.events.iter().find(|e| e.alert.kind == AlertKind::ForecastDeviation).unwrap();
            let r = book.resolve(dev.alert.id, "carol", None, now).unwrap();
            store.save_alert(&r.alert).unwrap();
            ch.events[0].alert.id
        };
        let store = Store::open(&path).unwrap();
        let (open, unreadable) = store.unresolved_alerts().unwrap();
        assert_eq!((open.len(), unreadable), (1, 0));
        assert_eq!((open[0].id, open[0].key.to_string().as_str()), (id, "downtime:s:a"));
        assert!(matches!(open[0].details, AlertDetails::Downtime { minutes, .. } if minutes == 20.0));
        assert_eq!(store.alert_keys(AlertKind::ForecastDeviation).unwrap().len(), 1);
        assert_eq!(store.next_alert_id().unwrap(), 3);
        assert_eq!(store.alert_status(id).unwrap(), Some(AlertStatus::Open));
        assert_eq!(store.alert_status(99).unwrap(), None);
        let resolved = store.alerts(Some(AlertStatus::Resolved), None, None, 10).unwrap();
        assert_eq!(resolved.len(), 1);
    }
}
