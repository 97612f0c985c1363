//! The alert book: one unresolved alert per key, lifecycle open ->
//! acknowledged -> resolved, persisted in the store; every change becomes an
//! [`AlertEvent`].
//!
//! - A condition with no unresolved alert opens one.
//! - An unresolved alert whose condition is gone resolves by itself (except
//!   `forecast_deviation`, which describes a closed bucket and waits for a
//!   planner).
//! - A planner's resolve while the condition still holds suppresses that key
//!   until the condition clears once, so a resolved alert does not reopen
//!   the next second.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{Alert, AlertEvent, AlertKind, AlertStatus, Condition, Mark};
use crate::store::{Store, StoreError};

/// Who resolves alerts whose condition has cleared.
pub const AUTO: &str = "throughline";

/// Why an acknowledge or resolve was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("no alert {0}")]
    NotFound(i64),
    #[error("alert {0} is already resolved")]
    AlreadyResolved(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Unresolved alerts by key, backed by the store.
#[derive(Debug, Default)]
pub struct AlertBook {
    unresolved: HashMap<String, Alert>,
    suppressed: HashSet<String>,
    /// Keys of closed-bucket alerts already raised once: never again.
    done_once: HashSet<String>,
}

impl AlertBook {
    /// Load unresolved alerts (and the closed-bucket keys already raised).
    pub fn load(store: &Store) -> Result<AlertBook, StoreError> {
        let mut book = AlertBook::default();
        for (_, body) in store.unresolved_alerts()? {
            if let Ok(a) = serde_json::from_str::<Alert>(&body) {
                book.unresolved.insert(a.key.clone(), a);
            }
        }
        for (_, body) in store.alerts(None, Some(AlertKind::ForecastDeviation.as_str()), None, 100_000)? {
            if let Ok(a) = serde_json::from_str::<Alert>(&body) {
                book.done_once.insert(a.key);
            }
        }
        Ok(book)
    }

    /// Whether an unresolved alert holds `key` (for hysteresis).
    pub fn is_open(&self, key: &str) -> bool {
        self.unresolved.contains_key(key)
    }

    /// Unresolved alerts.
    pub fn unresolved(&self) -> impl Iterator<Item = &Alert> {
        self.unresolved.values()
    }

    fn save(store: &Store, a: &mut Alert) -> Result<(), StoreError> {
        let id = store.save_alert(
            (a.id > 0).then_some(a.id),
            &a.key,
            a.kind.as_str(),
            a.status.as_str(),
            a.group.as_deref(),
            &*a,
        )?;
        if a.id <= 0 {
            a.id = id;
            // Store the id inside the body too.
            store.save_alert(
                Some(id),
                &a.key,
                a.kind.as_str(),
                a.status.as_str(),
                a.group.as_deref(),
                &*a,
            )?;
        }
        Ok(())
    }

    /// Apply the conditions of one evaluation: an unresolved alert whose key
    /// is absent from `conditions` is cleared — if the evaluation could judge
    /// it at all (after a restart, an asset nobody has heard from yet cannot
    /// clear its downtime alert).
    pub fn apply(
        &mut self,
        store: &Store,
        conditions: Vec<Condition>,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        self.apply_scoped(store, conditions, now, |_| true, |_| true)
    }

    /// [`AlertBook::apply`] for an evaluation that looked only at the alert
    /// keys for which `in_scope(key)` holds (alerts and suppressions outside
    /// it are left as they are), with `judged(alert)` telling whether it had
    /// the data to clear `alert`.
    pub fn apply_scoped(
        &mut self,
        store: &Store,
        conditions: Vec<Condition>,
        now: DateTime<Utc>,
        in_scope: impl Fn(&str) -> bool,
        judged: impl Fn(&Alert) -> bool,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        let mut events = Vec::new();
        let active: HashSet<String> = conditions.iter().map(|c| c.key.clone()).collect();
        self.suppressed.retain(|k| !in_scope(k) || active.contains(k));
        for c in conditions {
            if let Some(a) = self.unresolved.get_mut(&c.key) {
                // Keep the numbers current; not an event.
                let changed = a.summary != c.summary;
                a.value = c.value;
                a.summary = c.summary;
                a.action = c.action;
                a.details = c.details;
                a.event_time = c.event_time.or(a.event_time);
                if changed {
                    a.updated_at = now;
                    Self::save(store, a)?;
                }
                continue;
            }
            if self.suppressed.contains(&c.key) || self.done_once.contains(&c.key) {
                continue;
            }
            let mut a = Alert {
                id: 0,
                key: c.key.clone(),
                kind: c.kind,
                status: AlertStatus::Open,
                site: c.site,
                group: c.group,
                asset: c.asset,
                agent: c.agent,
                bucket_start: c.bucket_start,
                bucket_end: c.bucket_end,
                value: c.value,
                threshold: c.threshold,
                summary: c.summary,
                action: c.action,
                details: c.details,
                opened_at: now,
                event_time: c.event_time,
                updated_at: now,
                acknowledged: None,
                resolved: None,
            };
            Self::save(store, &mut a)?;
            if a.kind == AlertKind::ForecastDeviation {
                self.done_once.insert(a.key.clone());
            }
            tracing::info!(id = a.id, kind = a.kind.as_str(), key = %a.key, summary = %a.summary, "alert opened");
            events.push(AlertEvent { v: 1, event: "opened".into(), alert: a.clone() });
            self.unresolved.insert(c.key, a);
        }
        let cleared: Vec<String> = self
            .unresolved
            .iter()
            .filter(|(k, a)| {
                in_scope(k) && !active.contains(*k) && a.kind != AlertKind::ForecastDeviation && judged(a)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in cleared {
            if let Some(mut a) = self.unresolved.remove(&k) {
                a.status = AlertStatus::Resolved;
                a.resolved = Some(Mark { by: AUTO.into(), at: now, note: Some("condition cleared".into()) });
                a.updated_at = now;
                Self::save(store, &mut a)?;
                tracing::info!(id = a.id, kind = a.kind.as_str(), key = %a.key, "alert resolved (condition cleared)");
                events.push(AlertEvent { v: 1, event: "resolved".into(), alert: a });
            }
        }
        Ok(events)
    }

    fn find(&mut self, store: &Store, id: i64) -> Result<Alert, BookError> {
        if let Some(a) = self.unresolved.values().find(|a| a.id == id) {
            return Ok(a.clone());
        }
        Err(match store.alert_status(id)? {
            Some(_) => BookError::AlreadyResolved(id),
            None => BookError::NotFound(id),
        })
    }

    /// A planner acknowledges an alert.
    pub fn acknowledge(
        &mut self,
        store: &Store,
        id: i64,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<AlertEvent, BookError> {
        self.mark(store, id, AlertStatus::Acknowledged, Mark { by: by.into(), at: now, note })
    }

    /// A planner resolves an alert; if its condition still holds, the key is
    /// suppressed until the condition clears.
    pub fn resolve(
        &mut self,
        store: &Store,
        id: i64,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<AlertEvent, BookError> {
        self.mark(store, id, AlertStatus::Resolved, Mark { by: by.into(), at: now, note })
    }

    fn mark(
        &mut self,
        store: &Store,
        id: i64,
        status: AlertStatus,
        mark: Mark,
    ) -> Result<AlertEvent, BookError> {
        let mut a = self.find(store, id)?;
        let (by, event) = (mark.by.clone(), status.as_str());
        a.status = status;
        a.updated_at = mark.at;
        if status == AlertStatus::Resolved {
            a.resolved = Some(mark);
            self.unresolved.remove(&a.key);
            self.suppressed.insert(a.key.clone());
        } else {
            a.acknowledged = Some(mark);
        }
        Self::save(store, &mut a)?;
        if status != AlertStatus::Resolved {
            self.unresolved.insert(a.key.clone(), a.clone());
        }
        tracing::info!(id, by, event, "alert changed by a planner");
        Ok(AlertEvent { v: 1, event: event.into(), alert: a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(key: &str, kind: AlertKind) -> Condition {
        Condition {
            key: key.into(),
            kind,
            site: Some("s".into()),
            group: Some("g".into()),
            asset: None,
            agent: None,
            bucket_start: None,
            bucket_end: None,
            value: 10.0,
            threshold: 5.0,
            summary: "short".into(),
            action: "act".into(),
            details: serde_json::Value::Null,
            event_time: None,
        }
    }

    #[test]
    fn lifecycle_dedup_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let now = Utc::now();
        let mut book = AlertBook::load(&store).unwrap();
        let ev = book.apply(&store, vec![cond("schedule:g:1", AlertKind::Schedule)], now).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, "opened");
        let id = ev[0].alert.id;
        assert!(id > 0);
        // Same condition again: no new alert.
        assert!(book.apply(&store, vec![cond("schedule:g:1", AlertKind::Schedule)], now).unwrap().is_empty());
        let ack = book.acknowledge(&store, id, "alice", Some("on it".into()), now).unwrap();
        assert_eq!(ack.alert.status, AlertStatus::Acknowledged);

        // Restart: the acknowledged alert is still there and still deduplicates.
        let mut book = AlertBook::load(&store).unwrap();
        assert!(book.is_open("schedule:g:1"));
        assert!(book.apply(&store, vec![cond("schedule:g:1", AlertKind::Schedule)], now).unwrap().is_empty());
        // Condition gone: resolved by itself, keeping the acknowledgement.
        let ev = book.apply(&store, vec![], now).unwrap();
        assert_eq!((ev.len(), ev[0].event.as_str()), (1, "resolved"));
        assert_eq!(ev[0].alert.acknowledged.as_ref().unwrap().by, "alice");
        assert!(matches!(book.acknowledge(&store, id, "bob", None, now), Err(BookError::AlreadyResolved(_))));
        assert!(matches!(book.acknowledge(&store, 999, "bob", None, now), Err(BookError::NotFound(999))));
    }

    #[test]
    fn manual_resolve_suppresses_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let now = Utc::now();
        let mut book = AlertBook::default();
        let c = || vec![cond("downtime:s:a", AlertKind::Downtime)];
        let id = book.apply(&store, c(), now).unwrap()[0].alert.id;
        book.resolve(&store, id, "bob", None, now).unwrap();
        assert!(book.apply(&store, c(), now).unwrap().is_empty(), "still down: stays resolved");
        assert!(book.apply(&store, vec![], now).unwrap().is_empty());
        let again = book.apply(&store, c(), now).unwrap();
        assert_eq!(again.len(), 1, "a new stop after it cleared is a new alert");
        assert_ne!(again[0].alert.id, id);
    }

    #[test]
    fn closed_bucket_deviation_is_raised_once_ever() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let now = Utc::now();
        let mut book = AlertBook::default();
        let c = || vec![cond("forecast_deviation:g:1", AlertKind::ForecastDeviation)];
        let id = book.apply(&store, c(), now).unwrap()[0].alert.id;
        assert!(book.apply(&store, vec![], now).unwrap().is_empty(), "not auto-resolved");
        book.resolve(&store, id, "carol", None, now).unwrap();
        let mut book = AlertBook::load(&store).unwrap();
        assert!(book.apply(&store, c(), now).unwrap().is_empty());
    }

    #[test]
    fn a_scoped_evaluation_leaves_other_alerts_and_suppressions_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let now = Utc::now();
        let mut book = AlertBook::default();
        let both =
            || vec![cond("schedule:g1:1", AlertKind::Schedule), cond("downtime:s:b", AlertKind::Downtime)];
        let opened = book.apply(&store, both(), now).unwrap();
        assert_eq!(opened.len(), 2);
        let down_id = opened.iter().find(|e| e.alert.key == "downtime:s:b").unwrap().alert.id;
        book.resolve(&store, down_id, "bob", None, now).unwrap();

        // Group g1 alone is evaluated and its gap is gone: only its alert
        // clears; the downtime suppression outside the scope stays.
        let g1 = |k: &str| k.starts_with("schedule:g1:");
        let ev = book.apply_scoped(&store, vec![], now, g1, |_| true).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].event.as_str(), ev[0].alert.key.as_str()), ("resolved", "schedule:g1:1"));
        assert!(
            book.apply(&store, vec![cond("downtime:s:b", AlertKind::Downtime)], now).unwrap().is_empty(),
            "the manual resolve still holds: a scoped evaluation did not drop it"
        );

        // A scoped evaluation opens what it finds in its scope.
        let ev =
            book.apply_scoped(&store, vec![cond("schedule:g1:2", AlertKind::Schedule)], now, g1, |_| true);
        assert_eq!(ev.unwrap()[0].event, "opened");
    }
}
