//! Live updates for the dashboard: server-sent events at `GET /api/v1/events`,
//! fed by one broadcast channel.
//!
//! A client first gets a `snapshot` (assets, agents, unresolved alerts, the
//! plant overview), then changes as they happen:
//! - `assets` / `agents`: the views that changed, coalesced every
//!   [`TICK`] (ingest only sets a flag per asset, so no work per message
//!   goes to clients);
//! - `overview`: each group's current and next forecast bucket, recomputed
//!   at most once per [`OVERVIEW_EVERY`] while somebody listens, and at
//!   the next tick after a forecast import or an alert event;
//! - `alert`: every alert event (opened, updated, acknowledged, resolved),
//!   as published on MQTT;
//! - `ping`: every [`PING_EVERY`], so a page can tell a quiet plant from a
//!   dead link and say when its data is stale.
//!
//! The channel holds [`CHANNEL_CAPACITY`] frames. A client that falls that
//! far behind loses the oldest frames (the channel drops the oldest); it is
//! then sent a fresh snapshot instead, which is counted in
//! `throughline_sse_resyncs_total`. Nothing is queued per client beyond that.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
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
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use crate::domain::ForecastRow;
use crate::state::LiveState;
use crate::Shared;

/// How often changed assets and agents are pushed.
pub const TICK: Duration = Duration::from_millis(200);
/// The overview is recomputed at most this often (sooner after an import).
pub const OVERVIEW_EVERY: Duration = Duration::from_secs(1);
/// A `ping` event this often.
pub const PING_EVERY: Duration = Duration::from_secs(5);
/// Frames held for slow clients before the oldest are dropped.
pub const CHANNEL_CAPACITY: usize = 256;

/// One event, serialized once for all clients.
#[derive(Debug)]
pub struct Frame {
    pub event: &'static str,
    pub data: String,
}

/// The broadcast side of the live updates.
#[derive(Debug)]
pub struct Live {
    tx: broadcast::Sender<Arc<Frame>>,
    /// Set by a forecast import or an alert event: recompute the overview at the next tick.
    overview_due: AtomicBool,
    /// Cancelled at shutdown: open event streams end, so that the HTTP
    /// server's graceful stop is not held up by them.
    closed: CancellationToken,
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

impl Live {
    pub fn new() -> Live {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Live { tx, overview_due: AtomicBool::new(true), closed: CancellationToken::new() }
    }

    /// Send `data` as event `event` to every client (nothing if none).
    pub fn send(&self, event: &'static str, data: String) {
        let _ = self.tx.send(Arc::new(Frame { event, data }));
    }

    /// Whether any client listens.
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Forecasts or alerts changed: push a new overview at the next tick.
    pub fn overview_changed(&self) {
        self.overview_due.store(true, Ordering::Relaxed);
    }

    /// End every open event stream (at shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }
}

/// One group's current and next bucket, without per-asset detail.
fn overview_at(shared: &Shared, state: &LiveState, forecasts: &[ForecastRow]) -> Value {
    let now = state.watermark().unwrap_or_else(Utc::now);
    let mut ahead: BTreeMap<&str, Vec<&ForecastRow>> = BTreeMap::new();
    for f in forecasts.iter().filter(|f| f.end > now) {
        ahead.entry(f.group.as_str()).or_default().push(f);
    }
    let groups: Vec<Value> = shared
        .planner
        .groups
        .iter()
        .map(|g| {
            let mut rows = ahead.remove(g.id.as_str()).unwrap_or_default();
            rows.sort_by_key(|f| f.start);
            rows.truncate(2);
            let buckets: Vec<Value> = shared
                .planner
                .group_balances(state, &g.id, rows, now)
                .into_iter()
                .map(|mut b| {
                    // Per-asset detail is in the asset views and /api/v1/balance.
                    b.assets = Vec::new();
                    let mut v = serde_json::to_value(b).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("assets");
                    }
                    v
                })
                .collect();
            let assets: Vec<String> =
                shared.planner.group_assets(&g.id).iter().map(|a| format!("{}/{}", a.site, a.id)).collect();
            json!({
                "id": g.id,
                "name": g.name,
                "kind": g.kind,
                "unit": crate::domain::Unit::of(g.kind),
                "shortfall_pct": g.shortfall_pct,
                "assets": assets,
                "buckets": buckets,
            })
        })
        .collect();
    json!({ "event_time": state.watermark(), "computed_at": Utc::now(), "groups": groups })
}

/// The plant overview now.
pub fn overview(shared: &Shared) -> Value {
    let forecasts = shared.forecasts.read().expect("forecast lock").clone();
    let state = shared.state.lock().expect("state lock poisoned");
    overview_at(shared, &state, &forecasts)
}

/// Everything a page needs to draw itself.
pub fn snapshot(shared: &Shared) -> Value {
    let forecasts = shared.forecasts.read().expect("forecast lock").clone();
    let (assets, agents, overview) = {
        let state = shared.state.lock().expect("state lock poisoned");
        let assets: Vec<_> = state.assets().map(|a| state.asset_view(a)).collect();
        let agents: Vec<_> = state.agents().map(|g| state.agent_view(g)).collect();
        let overview = overview_at(shared, &state, &forecasts);
        (serde_json::to_value(assets), serde_json::to_value(agents), overview)
    };
    let alerts: Vec<Value> = {
        let book = shared.book.lock().expect("book lock");
        book.unresolved().filter_map(|a| serde_json::to_value(a).ok()).collect()
    };
    json!({
        "server_time": Utc::now(),
        "assets": assets.unwrap_or_default(),
        "agents": agents.unwrap_or_default(),
        "alerts": alerts,
        "overview": overview,
    })
}

/// `GET /api/v1/overview`: each group's current and next bucket.
pub async fn get_overview(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    s.auth.read(&headers)?;
    Ok(Json(overview(&s)))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// The read token, for clients that cannot set headers (EventSource).
    token: Option<String>,
}

/// `GET /api/v1/events`: server-sent events (see the module docs).
pub async fn events(
    State(s): State<Arc<Shared>>,
    mut headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(t) = q.token.filter(|_| !headers.contains_key(axum::http::header::AUTHORIZATION)) {
        let value = axum::http::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| ApiError::BadRequest("`token` holds characters a token cannot have".into()))?;
        headers.insert(axum::http::header::AUTHORIZATION, value);
    }
    s.auth.read(&headers)?;
    let rx = s.live.tx.subscribe();
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
    shared: Arc<Shared>,
    rx: broadcast::Receiver<Arc<Frame>>,
    first: bool,
    next_ping: Instant,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.metrics.sse_clients.dec();
    }
}

fn snapshot_event(shared: &Shared) -> Event {
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
            _ = self.shared.live.closed.cancelled() => None,
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

/// Push changed assets and agents every [`TICK`], the overview when due,
/// until `token` is cancelled.
pub async fn run(shared: Arc<Shared>, token: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_overview: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        let listening = shared.live.listening();
        let overview_due = listening
            && (shared.live.overview_due.swap(false, Ordering::Relaxed)
                || last_overview.is_none_or(|t| t.elapsed() >= OVERVIEW_EVERY));
        let forecasts = overview_due.then(|| shared.forecasts.read().expect("forecast lock").clone());
        let (assets, agents, overview) = {
            let mut state = shared.state.lock().expect("state lock poisoned");
            let (assets, agents) = if listening {
                state.take_touched()
            } else {
                // Nobody to tell: clear the flags without building views.
                state.clear_touched();
                (Vec::new(), Vec::new())
            };
            let overview = forecasts.as_deref().map(|f| overview_at(&shared, &state, f));
            (assets, agents, overview)
        };
        if !listening {
            continue;
        }
        if !assets.is_empty() {
            shared.live.send("assets", json!({ "assets": assets }).to_string());
        }
        if !agents.is_empty() {
            shared.live.send("agents", json!({ "agents": agents }).to_string());
        }
        if let Some(o) = overview {
            last_overview = Some(Instant::now());
            shared.live.send("overview", o.to_string());
        }
    }
    shared.live.close();
}
