//! HTTP API: `fn router(services) -> Router`, so tests can call it with
//! `oneshot` or serve it on port 0. Handlers are thin: they parse the
//! request, call a service (`crate::service`) and shape the answer; who may
//! call them is said by their extractors ([`auth::Reader`],
//! [`auth::Planner`]); every error converts to [`error::ApiError`] with `?`.

pub mod assets;
pub mod auth;
pub mod body;
pub mod dashboard;
pub mod error;
pub mod history;
pub mod live;
pub mod owner;
pub mod planning;
pub mod report;
pub mod server;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use throughline_shared::{AssetId, SiteId};

use crate::service::Services;
use auth::Reader;
use error::ApiError;

pub fn router(shared: Arc<Services>) -> Router {
    let routes = Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/assets", get(assets::list))
        .route("/api/v1/assets/{site}/{asset}", get(asset))
        .route("/api/v1/assets/{site}/{asset}/history", get(history::asset_history))
        .route("/api/v1/assets/{site}/{asset}/owner", put(owner::move_owner))
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
        .route("/api/v1/reports/forecast-accuracy", get(report::forecast_accuracy))
        .fallback(|| async {
            ApiError::NotFound(
                "no such endpoint; see / (the dashboard), /api/v1/assets, /api/v1/agents, /metrics, /healthz"
                    .into(),
            )
        })
        .with_state(shared);
    // Around the whole router, so that what it adds (the `Allow` of a 405)
    // is there when the error is reshaped.
    Router::new().fallback_service(routes).layer(axum::middleware::map_response(json_errors))
}

/// Every error in the one shape ([`ApiError`]): the answers axum makes
/// itself (405 with an empty body, 400 from a path or query that does not
/// parse, 413, 415 ...) are plain text; their text becomes the message.
async fn json_errors(res: axum::response::Response) -> axum::response::Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).map(str::to_string);
    let message = match (status, allow) {
        (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) => {
            format!("method not allowed here; this endpoint takes {allow}")
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut out = ApiError::Status(status, message).into_response();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (k, v) in parts.headers.iter() {
        out.headers_mut().insert(k, v.clone());
    }
    out
}

/// `ok` (200), or `degraded` (503) while the journal or the store cannot
/// be written, with what fails.
async fn healthz(State(s): State<Arc<Services>>) -> impl IntoResponse {
    let (journal, store) = s.durability.problems();
    let degraded = journal.is_some() || store.is_some();
    let mut body = json!({
        "status": if degraded { "degraded" } else { "ok" },
        "mqtt_connected": s.link.is_connected(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(d) = s.link.last_disconnect() {
        body["mqtt_last_disconnect"] = json!(d);
    }
    if let Some(j) = journal {
        body["journal"] = json!(j);
    }
    if let Some(st) = store {
        body["store"] = json!(st);
    }
    let code = if degraded { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body))
}

async fn metrics(State(s): State<Arc<Services>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(),
    )
}

async fn asset(
    State(s): State<Arc<Services>>,
    _: Reader,
    Path((site, asset)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let site = SiteId::parse(site).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let asset = AssetId::parse(asset).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let view = s.live.read(|st| st.asset(&site, &asset).map(|a| st.asset_view(a)));
    let view = view.ok_or_else(|| {
        ApiError::NotFound(format!("no asset `{asset}` at site `{site}` has been registered or heard from"))
    })?;
    Ok(Json(view))
}

async fn agents(State(s): State<Arc<Services>>, _: Reader) -> impl IntoResponse {
    let list: Vec<_> = s.live.read(|st| st.agents().map(|g| st.agent_view(g)).collect());
    Json(json!({ "agents": list }))
}
