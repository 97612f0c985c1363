//! The alert handle: the alert book behind its lock, stored on every change
//! before anyone hears of it. Evaluation takes the live-state lock, then
//! the book's (the lock order); the events it returns are published by
//! [`super::Services::publish`] after both are released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use tokio::sync::Notify;

use crate::alert::book::{AlertBook, Changes};
use crate::alert::{Alert, AlertEvent, AlertKind};
use crate::model::{AlertKey, AlertStatus};
use crate::projection::{can_judge, Scope};
use crate::service::live::Live;
use crate::store::{Store, StoreError};

/// Why a planner's acknowledge or resolve was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("no alert {0}")]
    NotFound(i64),
    #[error("alert {0} is already resolved")]
    AlreadyResolved(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// The alert events it caused, stored.
    pub events: Vec<AlertEvent>,
    /// Alerts unresolved after it.
    pub unresolved: usize,
    /// Conditions that cleared before they held for `alert_after_secs`, by
    /// kind (for the metric).
    pub debounced: BTreeMap<AlertKind, usize>,
}

/// The alert book, persisted in the store.
#[derive(Debug)]
pub struct Alerts {
    book: Mutex<AlertBook>,
    store: Arc<Store>,
    /// Notified when events were queued for delivery.
    queued: Notify,
}

impl Alerts {
    /// Read the book back from the store.
    pub fn load(store: Arc<Store>) -> Result<Alerts, StoreError> {
        let (unresolved, unreadable) = store.unresolved_alerts()?;
        if unreadable > 0 {
            tracing::warn!(
                alerts = unreadable,
                "unresolved alerts in the store could not be read; left as they are"
            );
        }
        let raised = store.alert_keys(AlertKind::ForecastDeviation)?;
        let book = AlertBook::restore(unresolved, raised, store.next_alert_id()?);
        Ok(Alerts { book: Mutex::new(book), store, queued: Notify::new() })
    }

    fn lock(&self) -> MutexGuard<'_, AlertBook> {
        self.book.lock().expect("alert book lock poisoned")
    }

    /// Store what the book changed; its events if that worked.
    fn store_changes(&self, changes: Changes) -> Result<Vec<AlertEvent>, StoreError> {
        for a in changes.to_store() {
            self.store.save_alert(a)?;
        }
        for e in &changes.events {
            let a = &e.alert;
            match e.event {
                crate::model::AlertChange::Opened => {
                    tracing::info!(id = a.id, kind = a.kind.as_str(), key = %a.key, summary = ?a.summary, "alert opened")
                }
                _ => {
                    tracing::info!(id = a.id, kind = a.kind.as_str(), key = %a.key, "alert resolved (condition cleared)")
                }
            }
        }
        Ok(changes.events)
    }

    /// One evaluation of `scope` (under the live-state lock, then the
    /// book's): the conditions true now against the book; the alert events
    /// it caused, stored before the locks are released. `forecasts` are
    /// those of the groups in scope.
    pub fn evaluate(&self, live: &Live, forecasts: &[crate::model::ForecastRow], scope: Scope) -> Evaluation {
        let planner = live.planner();
        live.read(|state| {
            let mut book = self.lock();
            let now = Utc::now();
            let conditions = planner.conditions_in(state, forecasts, &book, now, scope);
            let judged = |a: &Alert| can_judge(state, a);
            let mut changes = match scope {
                Scope::Groups(groups) => {
                    let keys = planner.scope_keys(groups);
                    book.apply_scoped(conditions, now, |k| keys.contains(k), judged)
                }
                Scope::Agents => {
                    let rest = |k: &AlertKey| matches!(k, AlertKey::Offline { .. }) || !planner.covers(k);
                    book.apply_scoped(conditions, now, rest, judged)
                }
            };
            for (kind, n) in &changes.debounced {
                tracing::debug!(
                    kind = kind.as_str(),
                    conditions = n,
                    "conditions cleared before alert_after_secs"
                );
            }
            let debounced = std::mem::take(&mut changes.debounced);
            // Stored under the book's lock, so a planner's change to the same
            // alert cannot be overwritten by an older copy.
            let events = self.store_changes(changes).unwrap_or_else(|e| {
                tracing::error!(error = %e, "alert evaluation could not be stored");
                Vec::new()
            });
            Evaluation { events, unresolved: book.unresolved().count(), debounced }
        })
    }

    /// A planner acknowledges alert `id`.
    pub fn acknowledge(&self, id: i64, by: &str, note: Option<String>) -> Result<AlertEvent, AlertsError> {
        self.mark(id, by, |book| book.acknowledge(id, by, note, Utc::now()))
    }

    /// A planner resolves alert `id`.
    pub fn resolve(&self, id: i64, by: &str, note: Option<String>) -> Result<AlertEvent, AlertsError> {
        self.mark(id, by, |book| book.resolve(id, by, note, Utc::now()))
    }

    fn mark(
        &self,
        id: i64,
        by: &str,
        f: impl FnOnce(&mut AlertBook) -> Option<AlertEvent>,
    ) -> Result<AlertEvent, AlertsError> {
        let mut book = self.lock();
        let Some(event) = f(&mut book) else {
            return Err(match self.store.alert_status(id)? {
                Some(_) => AlertsError::AlreadyResolved(id),
                None => AlertsError::NotFound(id),
            });
        };
        self.store.save_alert(&event.alert)?;
        tracing::info!(id, by, event = event.event.as_str(), "alert changed by a planner");
        Ok(event)
    }

    /// The unresolved alerts now (a copy).
    pub fn unresolved(&self) -> Vec<Alert> {
        self.lock().unresolved().cloned().collect()
    }

    /// Stored alert bodies (JSON), newest first.
    pub fn list(
        &self,
        status: Option<AlertStatus>,
        kind: Option<AlertKind>,
        group: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.store.alerts(status, kind, group, limit)
    }

    /// Wait until events are queued for delivery.
    pub async fn queued(&self) {
        self.queued.notified().await
    }

    /// Wake the delivery tasks.
    pub(crate) fn wake_delivery(&self) {
        self.queued.notify_waiters();
    }
}
