//! What planners' systems receive for each alert event: signed webhooks
//! and Prometheus Alertmanager. Every event is queued for every receiver in
//! the durable outbox ([`enqueue`]); each receiver's task
//! (`crate::tasks::notify`) delivers its queue.

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::alert::AlertEvent;
use crate::store::{Store, StoreError};

/// A configured receiver (built from `[[webhooks]]` and `[alertmanager]` by
/// `crate::config::alerts`).
#[derive(Clone)]
pub struct Receiver {
    /// Queue name in the outbox (`webhook:NAME` or `alertmanager`).
    pub name: String,
    pub kind: ReceiverKind,
    /// Undelivered events kept for it (`outbox.max_pending`); beyond, its
    /// oldest go.
    pub max_pending: u64,
}

#[derive(Clone)]
#[allow(missing_debug_implementations)] // Debug would print the secret; Receiver's Debug shows the URL.
pub enum ReceiverKind {
    Webhook { url: String, secret: Vec<u8> },
    Alertmanager { url: String },
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match &self.kind {
            ReceiverKind::Webhook { url, .. } | ReceiverKind::Alertmanager { url } => url,
        };
        f.debug_struct("Receiver").field("name", &self.name).field("url", url).finish_non_exhaustive()
    }
}

/// HMAC-SHA256 of `body` with `secret`, hex.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The body a receiver gets for one event.
pub fn body_for(kind: &ReceiverKind, event: &AlertEvent) -> String {
    match kind {
        ReceiverKind::Webhook { .. } => serde_json::to_string(event).expect("event serializes"),
        ReceiverKind::Alertmanager { .. } => {
            let a = &event.alert;
            let mut labels = serde_json::Map::new();
            labels.insert("alertname".into(), format!("throughline_{}", a.kind.as_str()).into());
            labels.insert("key".into(), a.key.to_string().into());
            for (k, v) in [("site", &a.site), ("group", &a.group), ("asset", &a.asset), ("agent", &a.agent)] {
                if let Some(v) = v {
                    labels.insert(k.into(), v.clone().into());
                }
            }
            let mut alert = serde_json::json!({
                "labels": labels,
                "annotations": { "summary": a.summary, "action": a.action, "status": a.status.as_str(), "id": a.id.to_string() },
                "startsAt": a.opened_at,
            });
            // Alertmanager resolves a firing alert it has not heard about
            // for its resolve_timeout; an open alert therefore carries an
            // end a week ahead, a resolved one its resolution time.
            let ends = a.resolved.as_ref().map(|r| r.at).unwrap_or(a.updated_at + chrono::Duration::days(7));
            alert["endsAt"] = serde_json::json!(ends);
            serde_json::Value::Array(vec![alert]).to_string()
        }
    }
}

/// Queue `events` for every receiver, in one transaction. Returns, per
/// receiver whose queue was full, how many of its oldest undelivered events
/// were dropped to make room.
pub fn enqueue(
    store: &Store,
    receivers: &[Receiver],
    events: &[AlertEvent],
) -> Result<Vec<(String, u64)>, StoreError> {
    let items: Vec<(&str, String, u64)> = events
        .iter()
        .flat_map(|e| receivers.iter().map(move |r| (r.name.as_str(), body_for(&r.kind, e), r.max_pending)))
        .collect();
    if items.is_empty() {
        return Ok(Vec::new());
    }
    store.enqueue(&items, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertChange, AlertDetails, AlertKind, AlertStatus, Mark};

    fn event(resolved: bool) -> AlertEvent {
        let now = Utc::now();
        AlertEvent {
            v: 1,
            event: if resolved { AlertChange::Resolved } else { AlertChange::Opened },
            alert: Alert {
                id: 7,
                key: "downtime:s:press-2".parse().unwrap(),
                kind: AlertKind::Downtime,
                status: if resolved { AlertStatus::Resolved } else { AlertStatus::Open },
                site: Some("s".into()),
                group: Some("family-a".into()),
                asset: Some("press-2".into()),
                agent: None,
                bucket_start: None,
                bucket_end: None,
                value: 20.0,
                threshold: 15.0,
                summary: "press-2 has been down for 20 min".into(),
                action: "Send maintenance".into(),
                details: AlertDetails::None,
                opened_at: now,
                event_time: None,
                updated_at: now,
                acknowledged: None,
                resolved: resolved.then(|| Mark { by: "throughline".into(), at: now, note: None }),
            },
        }
    }

    #[test]
    fn alertmanager_payload_opens_and_ends_by_labels() {
        let am = ReceiverKind::Alertmanager { url: "http://x/api/v2/alerts".into() };
        let open: serde_json::Value = serde_json::from_str(&body_for(&am, &event(false))).unwrap();
        let a = &open[0];
        assert_eq!(a["labels"]["alertname"], "throughline_downtime");
        assert_eq!(a["labels"]["asset"], "press-2");
        assert_eq!(a["labels"]["key"], "downtime:s:press-2");
        let ends: chrono::DateTime<Utc> = a["endsAt"].as_str().unwrap().parse().unwrap();
        assert!(ends > Utc::now() + chrono::Duration::days(6), "an open alert keeps firing");
        assert_eq!(a["annotations"]["action"], "Send maintenance");
        let done: serde_json::Value = serde_json::from_str(&body_for(&am, &event(true))).unwrap();
        assert_eq!(done[0]["labels"], a["labels"], "same labels, so Alertmanager resolves the same alert");
        assert!(done[0]["endsAt"].is_string());
        let hook = ReceiverKind::Webhook { url: "http://x".into(), secret: b"k".to_vec() };
        let e = event(true);
        let body: AlertEvent = serde_json::from_str(&body_for(&hook, &e)).unwrap();
        assert_eq!(body, e, "a webhook gets the event itself");
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
