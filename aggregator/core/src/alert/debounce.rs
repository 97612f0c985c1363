//! The debounce of gap alerts: a `schedule` or `dispatch` condition must
//! hold for its group's `alert_after_secs` **in event time** before its
//! alert opens. A stop without repair history, or longer than every stop
//! of it ([`crate::stops`]), projects zero for the rest of the bucket, so
//! such a 20-second jam would otherwise open (and a minute later resolve)
//! an alert.
//!
//! [`Pending`] keeps, per [`AlertKey`], the event time a condition was first
//! seen while no alert held its key. It is pure and bounded: an entry lives
//! only while its condition is seen by the evaluations of its scope, and
//! is dropped (and counted as debounced) by the first evaluation of that
//! scope that no longer sees it. It is memory only: after a restart a
//! pending condition starts again from its next evaluation (or from the
//! stop that caused it, which live state knows once the asset reports).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::{AlertKey, AlertKind};

/// How long a condition must hold before its alert opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    /// Seconds of event time (0: the alert opens at once).
    pub secs: u64,
    /// The event time from which the condition's cause is known to have
    /// held (the start of the stop behind a gap), when the rule knows it: a
    /// backfill evaluated once then opens what the same data opens live.
    pub since: Option<DateTime<Utc>>,
}

impl Hold {
    /// Open at once.
    pub const NONE: Hold = Hold { secs: 0, since: None };

    /// Hold for `secs` seconds of event time, cause unknown.
    pub fn after(secs: u64) -> Hold {
        Hold { secs, since: None }
    }
}

/// Conditions seen but not yet held long enough, by key.
#[derive(Debug, Default)]
pub struct Pending {
    first_seen: HashMap<AlertKey, DateTime<Utc>>,
}

impl Pending {
    /// Note that the condition of `key` holds at event time `at`; whether
    /// it has now held for `hold`. True drops the entry: its alert opens.
    pub fn held(&mut self, key: &AlertKey, hold: Hold, at: DateTime<Utc>) -> bool {
        if hold.secs == 0 {
            self.first_seen.remove(key);
            return true;
        }
        let seen = self.first_seen.get(key).copied().unwrap_or(at);
        let first = hold.since.map_or(seen, |s| s.min(seen));
        if at - first >= Duration::seconds(hold.secs as i64) {
            self.first_seen.remove(key);
            true
        } else {
            self.first_seen.insert(key.clone(), first);
            false
        }
    }

    /// Forget `key` without counting it (its key is suppressed, or an
    /// alert holds it).
    pub fn forget(&mut self, key: &AlertKey) {
        self.first_seen.remove(key);
    }

    /// Drop the entries in scope whose condition is no longer `active`:
    /// conditions that cleared before they opened anything, counted by kind.
    pub fn sweep(
        &mut self,
        in_scope: impl Fn(&AlertKey) -> bool,
        active: &HashSet<AlertKey>,
    ) -> BTreeMap<AlertKind, usize> {
        let mut cleared = BTreeMap::new();
        self.first_seen.retain(|k, _| {
            let keep = !in_scope(k) || active.contains(k);
            if !keep {
                *cleared.entry(k.kind()).or_insert(0) += 1;
            }
            keep
        });
        cleared
    }

    /// When the condition of `key` was first seen, if it is pending.
    pub fn first_seen(&self, key: &AlertKey) -> Option<DateTime<Utc>> {
        self.first_seen.get(key).copied()
    }

    /// How many conditions are pending.
    pub fn len(&self) -> usize {
        self.first_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::seconds(s)
    }

    #[test]
    fn held_counts_from_the_first_sighting_or_the_known_cause() {
        let k: AlertKey = "schedule:g:0".parse().unwrap();
        let mut p = Pending::default();
        assert!(p.held(&k, Hold::NONE, t(0)), "no hold: at once");
        assert!(!p.held(&k, Hold::after(120), t(10)));
        assert_eq!(p.first_seen(&k), Some(t(10)));
        assert!(!p.held(&k, Hold::after(120), t(129)));
        assert!(p.held(&k, Hold::after(120), t(130)));
        assert!(p.is_empty(), "an opened alert leaves nothing pending");
        // A cause known to be older than the first sighting counts from it.
        let since = Hold { secs: 120, since: Some(t(0)) };
        assert!(!p.held(&k, since, t(100)));
        assert_eq!(p.first_seen(&k), Some(t(0)));
        assert!(p.held(&k, since, t(120)));
    }

    #[test]
    fn sweep_drops_only_what_its_scope_no_longer_sees() {
        let (a, b): (AlertKey, AlertKey) = ("schedule:a:0".parse().unwrap(), "dispatch:b:0".parse().unwrap());
        let mut p = Pending::default();
        p.held(&a, Hold::after(60), t(0));
        p.held(&b, Hold::after(60), t(0));
        let only_a = |k: &AlertKey| k.group() == Some("a");
        assert!(p.sweep(only_a, &HashSet::from([a.clone()])).is_empty());
        assert_eq!(p.sweep(only_a, &HashSet::new()), BTreeMap::from([(AlertKind::Schedule, 1)]));
        assert_eq!((p.first_seen(&a), p.first_seen(&b)), (None, Some(t(0))), "b is out of that scope");
    }
}
