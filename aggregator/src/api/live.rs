//! Live updates for the dashboard: server-sent events at `GET /api/v1/events`,
//! relaying the feed's broadcast channel (`crate::service::feed`).
//!
//! A client first gets a `snapshot` (assets, agents, unresolved alerts, the
//! plant overview), then changes as they happen:
//! - `assets` / `agents`: the views that changed, coalesced every
//!   [`TICK`];
//! - `overview`: each group's current and next forecast bucket, recomputed
//!   at most once per [`OVERVIEW_EVERY`] while somebody listens, and at
//!   the next tick after a forecast import or an alert event;
//! - `alert`: every alert event (opened, updated, acknowledged, resolved),
//!   as published on MQTT;
//! - `ping`: every [`PING_EVERY`], so a page can tell a quiet plant from a
//!   dead link and say when its data is stale.
//!
//! A client that falls more than the channel's capacity behind is sent a
//! fresh snapshot instead of the frames it lost.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::auth::Reader;
use super::error::ApiError;
pub use crate::service::feed::{overview, snapshot, Frame, OVERVIEW_EVERY, PING_EVERY, TICK};
use crate::service::Services;

/// `GET /api/v1/overview`: each group's current and next bucket.
pub async fn get_overview(State(s): State<Arc<Services>>, _: Reader) -> Json<Value> {
    Json(overview(&s))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// The read token, for clients that cannot set headers (EventSource).
    token: Option<String>,
}

/// `GET /api/v1/events`: server-sent events (see the module docs).
pub async fn events(
    State(s): State<Arc<Services>>,
    mut headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(t) = q.token.filter(|_| !headers.contains_key(axum::http::header::AUTHORIZATION)) {
        let value = axum::http::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| ApiError::BadRequest("`token` holds characters a token cannot have".into()))?;
        headers.insert(axum::http::header::AUTHORIZATION, value);
    }
    s.auth.read(&headers)?;
    let rx = s.feed.subscribe();
    s.metrics.sse_clients.inc();
    let client = Client { shared: s.clone(), rx, first: true, next_ping: Instant::now() + PING_EVERY };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        let frame = c.next().await?;
        Some((Ok::<_, Infallible>(frame), c))
    });
    Ok(Sse::new(stream))
}

/// One connected page.
struct Client {
    shared: Arc<Services>,
    rx: broadcast::Receiver<Arc<Frame>>,
    first: bool,
    next_ping: Instant,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.metrics.sse_clients.dec();
    }
}

fn snapshot_event(shared: &Services) -> Event {
    Event::default().event("snapshot").data(snapshot(shared).to_string())
}

impl Client {
    /// The next event, or None when the aggregator stops.
    async fn next(&mut self) -> Option<Event> {
        if std::mem::take(&mut self.first) {
            return Some(snapshot_event(&self.shared).retry(Duration::from_secs(2)));
        }
        let ping = tokio::time::sleep_until(self.next_ping.into());
        tokio::select! {
            _ = self.shared.feed.closed().cancelled() => None,
            _ = ping => {
                self.next_ping = Instant::now() + PING_EVERY;
                Some(Event::default().event("ping").data(json!({ "server_time": Utc::now() }).to_string()))
            }
            r = self.rx.recv() => match r {
                Ok(f) => Some(Event::default().event(f.event).data(&f.data)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event stream client fell behind; sending a snapshot");
                    self.shared.metrics.sse_resyncs.inc();
                    Some(snapshot_event(&self.shared))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }
}
