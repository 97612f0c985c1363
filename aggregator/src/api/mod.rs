//! HTTP API: `fn router(shared) -> Router`, so tests can call it with
//! `oneshot` or serve it on port 0.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod history;
pub mod live;
pub mod planning;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use throughline_shared::{AssetId, SiteId};

use crate::Shared;
use error::ApiError;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/assets", get(assets))
        .route("/api/v1/assets/{site}/{asset}", get(asset))
        .route("/api/v1/assets/{site}/{asset}/history", get(history::asset_history))
        .route("/api/v1/groups/{group}/history", get(history::group_history))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/events", get(live::events))
        .route("/api/v1/overview", get(live::get_overview))
        .route("/api/v1/forecasts", get(planning::list_forecasts).post(planning::import_forecasts))
        .route("/api/v1/balance", get(planning::balance))
        .route("/api/v1/alerts", get(planning::list_alerts))
        .route("/api/v1/alerts/{id}/{action}", post(planning::alert_action))
        .route("/api/v1/promise", post(planning::promise))
        .route("/api/v1/reservations/{id}/{action}", post(planning::reservation_action))
        .fallback(|| async {
            ApiError::NotFound(
                "no such endpoint; see / (the dashboard), /api/v1/assets, /api/v1/agents, /metrics, /healthz"
                    .into(),
            )
        })
        .with_state(shared)
}

async fn healthz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "mqtt_connected": s.mqtt_connected.load(Ordering::Relaxed),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(),
    )
}

async fn assets(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    s.auth.read(&headers)?;
    let st = s.state.lock().expect("state lock poisoned");
    let list: Vec<_> = st.assets().map(|a| st.asset_view(a)).collect();
    Ok(Json(json!({ "assets": list })))
}

async fn asset(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((site, asset)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    s.auth.read(&headers)?;
    let site = SiteId::parse(site).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let asset = AssetId::parse(asset).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let st = s.state.lock().expect("state lock poisoned");
    let a = st.asset(&site, &asset).ok_or_else(|| {
        ApiError::NotFound(format!("no asset `{asset}` at site `{site}` has been registered or heard from"))
    })?;
    Ok(Json(st.asset_view(a)))
}

async fn agents(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    s.auth.read(&headers)?;
    let st = s.state.lock().expect("state lock poisoned");
    let list: Vec<_> = st.agents().map(|g| st.agent_view(g)).collect();
    Ok(Json(json!({ "agents": list })))
}
