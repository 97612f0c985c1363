//! The dashboard's live feed: one broadcast channel of serialized frames
//! (assets, agents, overview, alert events) for every connected page, and
//! the views a page starts from (the plant overview, the snapshot). The
//! frames are sent by the live-event tick (`crate::tasks::live_tick`) and
//! by [`super::Services::publish`]; `GET /api/v1/events` relays them.
//!
//! The channel holds [`CHANNEL_CAPACITY`] frames. A client that falls that
//! far behind loses the oldest frames (the channel drops the oldest); it is
//! then sent a fresh snapshot instead, which is counted in
//! `throughline_sse_resyncs_total`. Nothing is queued per client beyond that.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Services;
use crate::model::{ForecastRow, Unit};
use crate::state::LiveState;

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
pub struct Feed {
    tx: broadcast::Sender<Arc<Frame>>,
    /// Set by a forecast import or an alert event: recompute the overview at the next tick.
    overview_due: AtomicBool,
    /// Cancelled at shutdown: open event streams end, so that the HTTP
    /// server's graceful stop is not held up by them.
    closed: CancellationToken,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    pub fn new() -> Feed {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Feed { tx, overview_due: AtomicBool::new(true), closed: CancellationToken::new() }
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

    /// Cancelled when the feed closes.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// A new client's receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }

    /// Whether a new overview is due (and clear the flag).
    pub fn take_overview_due(&self) -> bool {
        self.overview_due.swap(false, Ordering::Relaxed)
    }
}

/// One group's current and next bucket, without per-asset detail.
pub fn overview_at(shared: &Services, state: &LiveState, forecasts: &[ForecastRow]) -> Value {
    let now = state.watermark().unwrap_or_else(Utc::now);
    let mut ahead: BTreeMap<&str, Vec<&ForecastRow>> = BTreeMap::new();
    for f in forecasts.iter().filter(|f| f.end > now) {
        ahead.entry(f.group.as_str()).or_default().push(f);
    }
    let planner = shared.live.planner();
    let groups: Vec<Value> = planner
        .groups
        .iter()
        .map(|g| {
            let mut rows = ahead.remove(g.id.as_str()).unwrap_or_default();
            rows.sort_by_key(|f| f.start);
            rows.truncate(2);
            let buckets: Vec<Value> = planner
                .group_balances(state, &g.id, rows, now, Utc::now())
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
                planner.group_assets(&g.id).iter().map(|a| format!("{}/{}", a.site, a.id)).collect();
            json!({
                "id": g.id,
                "name": g.name,
                "kind": g.kind,
                "unit": Unit::of(g.kind),
                "shortfall_pct": g.shortfall_pct,
                "assets": assets,
                "buckets": buckets,
            })
        })
        .collect();
    json!({ "event_time": state.watermark(), "computed_at": Utc::now(), "groups": groups })
}

/// The plant overview now.
pub fn overview(shared: &Services) -> Value {
    let forecasts = shared.forecasts.all();
    shared.live.read(|state| overview_at(shared, state, &forecasts))
}

/// Everything a page needs to draw itself.
pub fn snapshot(shared: &Services) -> Value {
    let forecasts = shared.forecasts.all();
    let (assets, agents, overview) = shared.live.read(|state| {
        let assets: Vec<_> = state.assets().map(|a| state.asset_view(a)).collect();
        let agents: Vec<_> = state.agents().map(|g| state.agent_view(g)).collect();
        let overview = overview_at(shared, state, &forecasts);
        (serde_json::to_value(assets), serde_json::to_value(agents), overview)
    });
    let alerts: Vec<Value> =
        shared.alerts.unresolved().iter().filter_map(|a| serde_json::to_value(a).ok()).collect();
    json!({
        "server_time": Utc::now(),
        "assets": assets.unwrap_or_default(),
        "agents": agents.unwrap_or_default(),
        "alerts": alerts,
        "overview": overview,
    })
}
