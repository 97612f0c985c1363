//! Planning endpoints: forecasts, balance, alerts, capable-to-promise.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Planner, Reader};
use super::body::{self, BodyError, MAX_SMALL_BODY};
use super::error::ApiError;
use crate::forecast::parse_time;
use crate::metrics::ReasonLabel;
use crate::model::{AlertKind, AlertStatus, ReservationStatus};
use crate::service::auth::Role;
use crate::service::planning::{ForecastFormat, PromiseRequest};
use crate::service::Services;

fn time_param(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.as_deref()
        .map(|s| parse_time(s).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}"))))
        .transpose()
}

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    group: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// `all` lists every version of each bucket.
    versions: Option<String>,
}

pub async fn list_forecasts(
    State(s): State<Arc<Services>>,
    _: Reader,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let all = match q.versions.as_deref() {
        None | Some("current") => false,
        Some("all") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("`versions` is `current` or `all`, not `{other}`")))
        }
    };
    let rows =
        s.store.forecasts(q.group.as_deref(), time_param("from", &q.from)?, time_param("to", &q.to)?, all)?;
    Ok(Json(json!({ "forecasts": rows })))
}

/// `POST /api/v1/forecasts`: CSV (`text/csv`) or JSON, all or nothing.
/// The token is checked first (the `Planner` extractor), then the content
/// type; then the body is read as it streams in, up to
/// `http.max_import_bytes` within `http.body_timeout_secs`, one import at
/// a time; parsing and storing run on a blocking thread, so the runtime
/// (ingest, `/healthz`) goes on meanwhile.
pub async fn import_forecasts(
    State(s): State<Arc<Services>>,
    Planner(actor): Planner,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = if ctype.starts_with("text/csv") {
        ForecastFormat::Csv
    } else if ctype.starts_with("application/json") {
        ForecastFormat::Json
    } else {
        return Err(ApiError::BadRequest(format!(
            "Content-Type must be text/csv or application/json, not `{}`",
            ctype.chars().take(100).collect::<String>()
        )));
    };
    let _one_at_a_time = s.import_gate.acquire().await.map_err(|e| ApiError::Internal(Box::new(e)))?;
    let bytes = match body::read(&headers, body, s.http.max_import_bytes, s.http.body_timeout).await {
        Ok(b) => b,
        Err(e) => {
            s.metrics.forecast_imports_cut.get_or_create(&ReasonLabel { reason: e.label() }).inc();
            tracing::warn!(by = %actor.name, reason = e.label(), "forecast import not read");
            return Err(match e {
                BodyError::TooLarge { max } => ApiError::TooLarge(format!(
                    "the forecast file is larger than http.max_import_bytes ({max} bytes); split it or raise the limit"
                )),
                other => other.into(),
            });
        }
    };
    let shared = s.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::BadRequest(format!("the body is not UTF-8 text (at byte {})", e.valid_up_to()))
        })?;
        shared.import_forecasts(text, format, &actor).map_err(ApiError::from)
    })
    .await??;
    Ok(Json(serde_json::to_value(summary).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
pub struct BalanceQuery {
    group: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub async fn balance(
    State(s): State<Arc<Services>>,
    _: Reader,
    Query(q): Query<BalanceQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(g) = &q.group {
        if s.live.planner().group(g).is_none() {
            return Err(ApiError::NotFound(format!("no capacity group `{g}`")));
        }
    }
    let (from, to) = (time_param("from", &q.from)?, time_param("to", &q.to)?);
    let (event_time, balances) = s.live.balances(&s.forecasts.all(), q.group.as_deref(), from, to);
    Ok(Json(json!({ "event_time": event_time, "balances": balances })))
}

#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    status: Option<String>,
    kind: Option<String>,
    group: Option<String>,
    limit: Option<usize>,
}

pub async fn list_alerts(
    State(s): State<Arc<Services>>,
    _: Reader,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|st| {
            AlertStatus::parse(st).ok_or_else(|| {
                ApiError::BadRequest(format!("`status` is open, acknowledged or resolved, not `{st}`"))
            })
        })
        .transpose()?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            AlertKind::parse(k).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`kind` is schedule, dispatch, downtime, offline or forecast_deviation, not `{k}`"
                ))
            })
        })
        .transpose()?;
    let rows = s.alerts.list(status, kind, q.group.as_deref(), q.limit.unwrap_or(500).min(5000))?;
    let alerts: Vec<Value> =
        rows.into_iter().filter_map(|(_, body)| serde_json::from_str(&body).ok()).collect();
    Ok(Json(json!({ "alerts": alerts })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    note: Option<String>,
}

fn note_of(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    let b: NoteBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body must be JSON like {{\"note\": \"...\"}}: {e}")))?;
    if let Some(n) = &b.note {
        capped("note", n, MAX_NOTE_CHARS)?;
    }
    Ok(b.note)
}

/// Longest alert note (`ack`, `resolve`), in characters: a shift
/// handover, not a file. Notes live in every later view of the alert.
pub const MAX_NOTE_CHARS: usize = 2000;

/// Longest quote reference (an order or customer number), in characters.
pub const MAX_REFERENCE_CHARS: usize = 200;

/// Free text a planner sends is refused above its cap (422 naming the
/// field), not cut: the planner is there to shorten it, and a cut note or
/// order number would be stored as if it were what they meant.
fn capped(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n <= max {
        return Ok(());
    }
    let message = format!("`{field}` is {n} characters long; at most {max} are taken");
    Err(ApiError::Unprocessable(message.clone(), json!([{ "field": field, "message": message }]), 1))
}

/// `POST /api/v1/alerts/{id}/{ack|resolve}` with an optional note.
pub async fn alert_action(
    State(s): State<Arc<Services>>,
    Planner(actor): Planner,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = body::read(&headers, body, MAX_SMALL_BODY, s.http.body_timeout).await?;
    let note = note_of(&body)?;
    let event = match action.as_str() {
        "ack" => s.alerts.acknowledge(id, &actor.name, note)?,
        "resolve" => s.alerts.resolve(id, &actor.name, note)?,
        other => return Err(ApiError::NotFound(format!("no alert action `{other}`; use ack or resolve"))),
    };
    s.publish(std::slice::from_ref(&event));
    Ok(Json(serde_json::to_value(&event.alert).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromiseBody {
    group: String,
    quantity: f64,
    due: String,
    /// `inquiry` (default) or `quote`.
    mode: Option<String>,
    /// For quotes: the order or customer reference.
    reference: Option<String>,
}

/// `POST /api/v1/promise`: can the group deliver `quantity` by `due`? An
/// inquiry is a read; a quote reserves capacity and needs a planner, so
/// this handler asks for the role its body names.
pub async fn promise(
    State(s): State<Arc<Services>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = body::read(&headers, body, MAX_SMALL_BODY, s.http.body_timeout).await?;
    let req: PromiseBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"group\", \"quantity\", \"due\", \"mode\": \"inquiry\"|\"quote\", \"reference\"}}: {e}"
        ))
    })?;
    let quote = match req.mode.as_deref() {
        None | Some("inquiry") => false,
        Some("quote") => true,
        Some(m) => return Err(ApiError::BadRequest(format!("`mode` is inquiry or quote, not `{m}`"))),
    };
    let actor = if quote { Some(s.auth.write(&headers, Role::Planner)?) } else { s.auth.read(&headers)? };
    if let Some(r) = &req.reference {
        capped("reference", r, MAX_REFERENCE_CHARS)?;
    }
    let request = PromiseRequest {
        group: req.group,
        quantity: req.quantity,
        due: req.due,
        quote,
        reference: req.reference,
    };
    let answer = s.promise(&request, actor.as_ref())?;
    Ok(Json(serde_json::to_value(answer).unwrap_or_default()))
}

/// `POST /api/v1/reservations/{id}/{confirm|release}`.
pub async fn reservation_action(
    State(s): State<Arc<Services>>,
    _: Planner,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    let status = match action.as_str() {
        "confirm" => ReservationStatus::Confirmed,
        "release" => ReservationStatus::Released,
        other => return Err(ApiError::NotFound(format!("no action `{other}`; use confirm or release"))),
    };
    match s.store.set_reservation_status(id, status)? {
        None => Err(ApiError::NotFound(format!("no reservation {id}"))),
        Some(r) if r.status != status => Err(ApiError::Conflict(format!(
            "reservation {id} is already {}; it cannot become {}",
            r.status.as_str(),
            status.as_str()
        ))),
        Some(r) => Ok(Json(serde_json::to_value(r).unwrap_or_default())),
    }
}
