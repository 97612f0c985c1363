//! The alert book: one unresolved alert per key, lifecycle open ->
//! acknowledged -> resolved. Pure: the book changes its own memory and
//! returns every change; the caller stores the changed alerts (before it
//! publishes their events) and reads the book back from the store at start.
//!
//! - A condition with no unresolved alert opens one, once it has held for
//!   its [`Hold`](super::Hold) in event time (`schedule`/`dispatch`: the group's
//!   `alert_after_secs`; see [`super::debounce`]). One that clears before
//!   opens nothing and is counted in [`Changes::debounced`]; an open alert
//!   is not debounced (hysteresis keeps it).
//! - An unresolved alert whose condition is gone resolves by itself (except
//!   `forecast_deviation`, which describes a closed bucket and waits for a
//!   planner).
//! - A planner's resolve while the condition still holds suppresses that key
//!   until the condition clears once, so a resolved alert does not reopen
//!   the next second.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::debounce::Pending;
use super::{Alert, AlertChange, AlertEvent, AlertKey, AlertKind, AlertStatus, Condition, Mark};

/// Who resolves alerts whose condition has cleared.
pub const AUTO: &str = "throughline";

/// What one evaluation changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Opened and resolved alerts, in order; each alert to store, then send.
    pub events: Vec<AlertEvent>,
    /// Unresolved alerts whose numbers changed: to store, not an event.
    pub updated: Vec<Alert>,
    /// Conditions that cleared before they had held long enough to open an
    /// alert, by kind: to count, not to store.
    pub debounced: BTreeMap<AlertKind, usize>,
}

impl Changes {
    /// Every alert to write, in the order the book changed them.
    pub fn to_store(&self) -> impl Iterator<Item = &Alert> {
        self.updated.iter().chain(self.events.iter().map(|e| &e.alert))
    }
}

/// Unresolved alerts by key.
#[derive(Debug)]
pub struct AlertBook {
    unresolved: HashMap<AlertKey, Alert>,
    suppressed: HashSet<AlertKey>,
    /// Keys of closed-bucket alerts already raised once: never again.
    done_once: HashSet<AlertKey>,
    /// Conditions seen but not yet held for their [`Hold`](super::Hold) (memory only).
    pending: Pending,
    /// Id of the next alert opened.
    next_id: i64,
}

impl Default for AlertBook {
    fn default() -> AlertBook {
        AlertBook::restore(Vec::new(), Vec::new(), 1)
    }
}

impl AlertBook {
    /// The book as stored: the unresolved alerts, the keys of every
    /// closed-bucket alert ever raised, and the first free alert id.
    pub fn restore(
        unresolved: impl IntoIterator<Item = Alert>,
        raised_once: impl IntoIterator<Item = AlertKey>,
        next_id: i64,
    ) -> AlertBook {
        AlertBook {
            unresolved: unresolved.into_iter().map(|a| (a.key.clone(), a)).collect(),
            suppressed: HashSet::new(),
            done_once: raised_once.into_iter().collect(),
            pending: Pending::default(),
            next_id: next_id.max(1),
        }
    }

    /// Whether an unresolved alert holds `key` (for hysteresis).
    pub fn is_open(&self, key: &AlertKey) -> bool {
        self.unresolved.contains_key(key)
    }

    /// When the condition of `key` was first seen, while it waits for its
    /// [`Hold`](super::Hold) to pass.
    pub fn pending_since(&self, key: &AlertKey) -> Option<DateTime<Utc>> {
        self.pending.first_seen(key)
    }

    /// How many conditions wait for their [`Hold`](super::Hold) to pass.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Unresolved alerts.
    pub fn unresolved(&self) -> impl Iterator<Item = &Alert> {
        self.unresolved.values()
    }

    /// Apply the conditions of one evaluation: an unresolved alert whose key
    /// is absent from `conditions` is cleared.
    pub fn apply(&mut self, conditions: Vec<Condition>, now: DateTime<Utc>) -> Changes {
        self.apply_scoped(conditions, now, |_| true, |_| true)
    }

    /// [`AlertBook::apply`] for an evaluation that looked only at the alert
    /// keys for which `in_scope(key)` holds (alerts and suppressions outside
    /// it are left as they are), with `judged(alert)` telling whether it had
    /// the data to clear `alert` (after a restart, an asset nobody has heard
    /// from yet cannot clear its downtime alert).
    pub fn apply_scoped(
        &mut self,
        conditions: Vec<Condition>,
        now: DateTime<Utc>,
        in_scope: impl Fn(&AlertKey) -> bool,
        judged: impl Fn(&Alert) -> bool,
    ) -> Changes {
        let mut changes = Changes::default();
        let active: HashSet<AlertKey> = conditions.iter().map(|c| c.key.clone()).collect();
        self.suppressed.retain(|k| !in_scope(k) || active.contains(k));
        changes.debounced = self.pending.sweep(&in_scope, &active);
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
                    changes.updated.push(a.clone());
                }
                continue;
            }
            if self.suppressed.contains(&c.key) || self.done_once.contains(&c.key) {
                self.pending.forget(&c.key);
                continue;
            }
            // Event time, so a backfill waits as long as live data does.
            if !self.pending.held(&c.key, c.hold, c.event_time.unwrap_or(now)) {
                continue;
            }
            let a = Alert {
                id: self.next_id,
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
            self.next_id += 1;
            if a.kind == AlertKind::ForecastDeviation {
                self.done_once.insert(a.key.clone());
            }
            changes.events.push(AlertEvent { v: 1, event: AlertChange::Opened, alert: a.clone() });
            self.unresolved.insert(c.key, a);
        }
        let cleared: Vec<AlertKey> = self
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
                changes.events.push(AlertEvent { v: 1, event: AlertChange::Resolved, alert: a });
            }
        }
        changes
    }

    /// A planner acknowledges unresolved alert `id`; None if no unresolved
    /// alert has that id.
    pub fn acknowledge(
        &mut self,
        id: i64,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Option<AlertEvent> {
        self.mark(id, AlertStatus::Acknowledged, Mark { by: by.into(), at: now, note })
    }

    /// A planner resolves unresolved alert `id`; if its condition still
    /// holds, the key is suppressed until the condition clears. None if no
    /// unresolved alert has that id.
    pub fn resolve(
        &mut self,
        id: i64,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Option<AlertEvent> {
        self.mark(id, AlertStatus::Resolved, Mark { by: by.into(), at: now, note })
    }

    fn mark(&mut self, id: i64, status: AlertStatus, mark: Mark) -> Option<AlertEvent> {
        let key = self.unresolved.values().find(|a| a.id == id)?.key.clone();
        let event =
            if status == AlertStatus::Resolved { AlertChange::Resolved } else { AlertChange::Acknowledged };
        let alert = if status == AlertStatus::Resolved {
            let mut a = self.unresolved.remove(&key)?;
            self.suppressed.insert(key);
            a.status = status;
            a.updated_at = mark.at;
            a.resolved = Some(mark);
            a
        } else {
            let a = self.unresolved.get_mut(&key)?;
            a.status = status;
            a.updated_at = mark.at;
            a.acknowledged = Some(mark);
            a.clone()
        };
        Some(AlertEvent { v: 1, event, alert })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> AlertKey {
        k.parse().unwrap()
    }

    fn cond(k: &str, kind: AlertKind) -> Condition {
        let c = Condition::new(key(k), "short", "act");
        assert_eq!(c.kind, kind);
        Condition { site: Some("s".into()), group: Some("g".into()), value: 10.0, threshold: 5.0, ..c }
    }

    /// What a store would read back: unresolved alerts, deviation keys, next id.
    fn reload(stored: &HashMap<i64, Alert>) -> AlertBook {
        let unresolved = stored.values().filter(|a| a.status != AlertStatus::Resolved).cloned();
        let once = stored.values().filter(|a| a.kind == AlertKind::ForecastDeviation).map(|a| a.key.clone());
        let next = stored.keys().max().map_or(1, |m| m + 1);
        AlertBook::restore(unresolved.collect::<Vec<_>>(), once.collect::<Vec<_>>(), next)
    }

    fn store(stored: &mut HashMap<i64, Alert>, c: &Changes) {
        for a in c.to_store() {
            stored.insert(a.id, a.clone());
        }
    }

    #[test]
    fn lifecycle_dedup_and_restart() {
        let mut stored = HashMap::new();
        let now = Utc::now();
        let mut book = AlertBook::default();
        let ch = book.apply(vec![cond("schedule:g:1", AlertKind::Schedule)], now);
        store(&mut stored, &ch);
        assert_eq!(ch.events.len(), 1);
        assert_eq!(ch.events[0].event, AlertChange::Opened);
        let id = ch.events[0].alert.id;
        assert!(id > 0);
        // Same condition again: no new alert.
        assert!(book.apply(vec![cond("schedule:g:1", AlertKind::Schedule)], now).events.is_empty());
        let ack = book.acknowledge(id, "alice", Some("on it".into()), now).unwrap();
        assert_eq!(ack.alert.status, AlertStatus::Acknowledged);
        stored.insert(id, ack.alert);

        // Restart: the acknowledged alert is still there and still deduplicates.
        let mut book = reload(&stored);
        assert!(book.is_open(&key("schedule:g:1")));
        assert!(book.apply(vec![cond("schedule:g:1", AlertKind::Schedule)], now).events.is_empty());
        // Condition gone: resolved by itself, keeping the acknowledgement.
        let ch = book.apply(vec![], now);
        assert_eq!((ch.events.len(), ch.events[0].event), (1, AlertChange::Resolved));
        assert_eq!(ch.events[0].alert.acknowledged.as_ref().unwrap().by, "alice");
        store(&mut stored, &ch);
        assert!(book.acknowledge(id, "bob", None, now).is_none());
        // A new alert after a restart takes a fresh id.
        let mut book = reload(&stored);
        let ch = book.apply(vec![cond("schedule:g:2", AlertKind::Schedule)], now);
        assert!(ch.events[0].alert.id > id);
    }

    #[test]
    fn changed_numbers_are_stored_without_an_event() {
        let now = Utc::now();
        let mut book = AlertBook::default();
        book.apply(vec![cond("schedule:g:1", AlertKind::Schedule)], now);
        let mut c = cond("schedule:g:1", AlertKind::Schedule);
        c.summary = "shorter".into();
        let ch = book.apply(vec![c], now);
        assert!(ch.events.is_empty());
        assert_eq!(ch.updated.len(), 1);
        assert_eq!(ch.updated[0].summary, "shorter");
    }

    #[test]
    fn manual_resolve_suppresses_until_cleared() {
        let now = Utc::now();
        let mut book = AlertBook::default();
        let c = || vec![cond("downtime:s:a", AlertKind::Downtime)];
        let id = book.apply(c(), now).events[0].alert.id;
        book.resolve(id, "bob", None, now).unwrap();
        assert!(book.apply(c(), now).events.is_empty(), "still down: stays resolved");
        assert!(book.apply(vec![], now).events.is_empty());
        let again = book.apply(c(), now).events;
        assert_eq!(again.len(), 1, "a new stop after it cleared is a new alert");
        assert_ne!(again[0].alert.id, id);
    }

    #[test]
    fn closed_bucket_deviation_is_raised_once_ever() {
        let mut stored = HashMap::new();
        let now = Utc::now();
        let mut book = AlertBook::default();
        let c = || vec![cond("forecast_deviation:g:1", AlertKind::ForecastDeviation)];
        let ch = book.apply(c(), now);
        store(&mut stored, &ch);
        let id = ch.events[0].alert.id;
        assert!(book.apply(vec![], now).events.is_empty(), "not auto-resolved");
        let r = book.resolve(id, "carol", None, now).unwrap();
        stored.insert(id, r.alert);
        let mut book = reload(&stored);
        assert!(book.apply(c(), now).events.is_empty());
    }

    /// A gap condition of `group` seen at `secs` (event time), to hold 120 s.
    fn held(group: &str, secs: i64) -> Condition {
        let c = cond(&format!("schedule:{group}:0"), AlertKind::Schedule);
        let t = t(secs);
        Condition { event_time: Some(t), hold: super::super::Hold::after(120), ..c }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_held_condition_opens_after_its_hold_and_a_short_one_is_counted() {
        let mut book = AlertBook::default();
        // g1 holds from 0 s; g2 flaps (0-60 s, then from 70 s).
        let timeline =
            [(0, true), (60, true), (65, false), (70, true), (119, true), (120, true), (190, true)];
        let mut opened = Vec::new();
        let mut debounced = 0;
        for (secs, g2) in timeline {
            let mut cs = vec![held("g1", secs)];
            if g2 {
                cs.push(held("g2", secs));
            }
            let ch = book.apply(cs, t(secs));
            debounced += ch.debounced.get(&AlertKind::Schedule).copied().unwrap_or(0);
            opened.extend(ch.events.iter().map(|e| (e.alert.key.to_string(), e.alert.event_time)));
        }
        assert_eq!(
            opened,
            [("schedule:g1:0".to_string(), Some(t(120))), ("schedule:g2:0".to_string(), Some(t(190)))]
        );
        assert_eq!((debounced, book.pending()), (1, 0));
        // An open alert is not debounced again: gone for one evaluation, it
        // resolves (hysteresis is the rule's business), not waits.
        let ch = book.apply(vec![held("g2", 200)], t(200));
        assert_eq!((ch.events.len(), ch.debounced.len()), (1, 0), "g1 resolved, nothing counted");
    }

    #[test]
    fn scoped_evaluations_keep_each_pending_condition_as_one_evaluation_does() {
        // The same timeline, evaluated as one evaluation of both groups or
        // one scoped evaluation per group (as the alert task's edges do).
        let timeline: Vec<(i64, Vec<&str>)> = vec![
            (0, vec!["a"]),
            (50, vec!["a", "b"]),
            (100, vec!["b"]),
            (130, vec!["b"]),
            (170, vec!["a", "b"]),
            (290, vec!["a"]),
        ];
        let run = |scoped: bool| {
            let mut book = AlertBook::default();
            let mut opened = Vec::new();
            let mut debounced = 0;
            for (secs, on) in &timeline {
                let conditions: Vec<Condition> = on.iter().map(|g| held(g, *secs)).collect();
                let changes = if scoped {
                    ["a", "b"]
                        .into_iter()
                        .map(|g| {
                            let mine =
                                conditions.iter().filter(|c| c.key.group() == Some(g)).cloned().collect();
                            book.apply_scoped(mine, t(*secs), |k| k.group() == Some(g), |_| true)
                        })
                        .collect()
                } else {
                    vec![book.apply(conditions, t(*secs))]
                };
                for ch in changes {
                    debounced += ch.debounced.values().sum::<usize>();
                    opened.extend(
                        ch.events.into_iter().map(|e| (e.event, e.alert.key.to_string(), e.alert.event_time)),
                    );
                }
            }
            (opened, debounced, book.pending())
        };
        let whole = run(false);
        assert_eq!(whole, run(true));
        // a: 0-50 (cleared at 100, counted), again from 170, opens at 290;
        // b: from 50, opens at 170.
        assert_eq!(
            whole.0,
            [
                (AlertChange::Opened, "schedule:b:0".to_string(), Some(t(170))),
                (AlertChange::Opened, "schedule:a:0".to_string(), Some(t(290))),
                (AlertChange::Resolved, "schedule:b:0".to_string(), Some(t(170))),
            ]
        );
        assert_eq!((whole.1, whole.2), (1, 0));
    }

    #[test]
    fn a_suppressed_key_keeps_nothing_pending() {
        let mut book = AlertBook::default();
        let id = book.apply(vec![held("g", 0)], t(0)).events.len();
        assert_eq!((id, book.pending()), (0, 1));
        let opened = book.apply(vec![held("g", 120)], t(120)).events;
        book.resolve(opened[0].alert.id, "bob", None, t(121)).unwrap();
        assert!(book.apply(vec![held("g", 130)], t(130)).events.is_empty());
        assert_eq!(book.pending(), 0, "a planner's resolve is not a condition waiting to open");
        // Cleared once, then back: it waits its 120 s again.
        assert!(book.apply(vec![], t(140)).debounced.is_empty());
        assert!(book.apply(vec![held("g", 150)], t(150)).events.is_empty());
        assert_eq!(book.pending_since(&key("schedule:g:0")), Some(t(150)));
    }

    #[test]
    fn a_scoped_evaluation_leaves_other_alerts_and_suppressions_alone() {
        let now = Utc::now();
        let mut book = AlertBook::default();
        let both =
            || vec![cond("schedule:g1:1", AlertKind::Schedule), cond("downtime:s:b", AlertKind::Downtime)];
        let opened = book.apply(both(), now).events;
        assert_eq!(opened.len(), 2);
        let down_id = opened.iter().find(|e| e.alert.key == key("downtime:s:b")).unwrap().alert.id;
        book.resolve(down_id, "bob", None, now).unwrap();

        // Group g1 alone is evaluated and its gap is gone: only its alert
        // clears; the downtime suppression outside the scope stays.
        let g1 = |k: &AlertKey| k.group() == Some("g1");
        let ev = book.apply_scoped(vec![], now, g1, |_| true).events;
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].event, ev[0].alert.key.to_string().as_str()),
            (AlertChange::Resolved, "schedule:g1:1")
        );
        assert!(
            book.apply(vec![cond("downtime:s:b", AlertKind::Downtime)], now).events.is_empty(),
            "the manual resolve still holds: a scoped evaluation did not drop it"
        );

        // A scoped evaluation opens what it finds in its scope.
        let ev = book.apply_scoped(vec![cond("schedule:g1:2", AlertKind::Schedule)], now, g1, |_| true);
        assert_eq!(ev.events[0].event, AlertChange::Opened);
    }
}
