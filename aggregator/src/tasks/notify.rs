//! Delivery of alert events to planners' systems from the durable outbox.
//! Each receiver has its own queue in the store and its own task; a
//! receiver that is down holds its queue (in order) and is retried with
//! exponential backoff (1 s doubling to 5 min) — it never slows ingest or
//! alerting, and a restart loses nothing. Delivery is at-least-once: each
//! request carries `X-Throughline-Delivery` (the outbox id) so a receiver
//! can drop a repeat after a crash mid-request.
//!
//! Redirects are not followed (the client is built with
//! `redirect::Policy::none()`): a signed event goes only to the configured
//! URL. A 3xx answer is a failed delivery, retried like any other, and its
//! `Location` is logged so the operator can fix the URL.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::service::delivery::{sign, Receiver, ReceiverKind};
use crate::service::Services;

/// Deliver `receiver`'s queue until `token` is cancelled. `wake` is notified
/// when something is queued.
pub async fn run(receiver: Receiver, http: reqwest::Client, shared: Arc<Services>, token: CancellationToken) {
    let store = shared.store.clone();
    loop {
        let next = match store.next_due(&receiver.name, Utc::now()) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(receiver = %receiver.name, error = %e, "outbox read failed");
                None
            }
        };
        let item = match next {
            Some((item, true)) => item,
            // Nothing due: wait for new work, or re-check within a second
            // (a backoff may have expired).
            _ => {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = shared.alerts.queued() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        let mut req = http
            .post(match &receiver.kind {
                ReceiverKind::Webhook { url, .. } | ReceiverKind::Alertmanager { url } => url.as_str(),
            })
            .header("content-type", "application/json")
            .header("x-throughline-delivery", item.id.to_string())
            .timeout(Duration::from_secs(10));
        if let ReceiverKind::Webhook { secret, .. } = &receiver.kind {
            req = req
                .header("x-throughline-signature", format!("sha256={}", sign(secret, item.body.as_bytes())));
        }
        let outcome = tokio::select! {
            _ = token.cancelled() => return,
            r = req.body(item.body.clone()).send() => r,
        };
        let result = match outcome {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) if resp.status().is_redirection() => Err(redirect_refused(&resp)),
            Ok(resp) => Err(format!("HTTP {}", resp.status())),
            Err(e) => Err(e.without_url().to_string()),
        };
        match result {
            Ok(()) => {
                shared.metrics.notifications_delivered.inc();
                if let Err(e) = store.mark_delivered(item.id, Utc::now()) {
                    tracing::error!(receiver = %receiver.name, error = %e, "outbox update failed");
                }
                if let Ok(depth) = store.outbox_depth() {
                    shared.metrics.outbox_depth.set(depth.iter().map(|(_, n)| n).sum());
                }
            }
            Err(err) => {
                shared.metrics.notification_failures.inc();
                let backoff = Duration::from_secs(1u64 << item.attempts.clamp(0, 9) as u32)
                    .min(Duration::from_secs(300));
                if item.attempts < 3 || item.attempts % 10 == 0 {
                    tracing::warn!(receiver = %receiver.name, id = item.id, attempts = item.attempts + 1, error = %err, retry_in_s = backoff.as_secs(), "alert delivery failed");
                }
                let next = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
                if let Err(e) = store.mark_failed(item.id, next, &err) {
                    tracing::error!(receiver = %receiver.name, error = %e, "outbox update failed");
                }
            }
        }
    }
}

/// The failure of a 3xx answer, naming the `Location` it asked for (cut to
/// 200 characters, shown escaped: it is the receiver's text).
fn redirect_refused(resp: &reqwest::Response) -> String {
    let location =
        resp.headers().get(reqwest::header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()));
    match location {
        Some(l) => {
            let cut: String = l.chars().take(200).collect();
            format!(
                "HTTP {}: redirect to {cut:?} not followed (set the webhook's url to where it should go)",
                resp.status()
            )
        }
        None => format!("HTTP {}: redirect without a Location, not followed", resp.status()),
    }
}
