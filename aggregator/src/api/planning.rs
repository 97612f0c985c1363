//! Planning endpoints: forecasts, balance, alerts, capable-to-promise.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::alerts::book::BookError;
use crate::alerts::{AlertKind, AlertStatus};
use crate::config::Role;
use crate::ctp::{capable_to_promise, CtpInput, DemandBucket};
use crate::forecast::parse_time;
use crate::store::Reservation;
use crate::Shared;

fn time_param(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.as_deref()
        .map(|s| parse_time(s).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}"))))
        .transpose()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
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
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    s.auth.read(&headers)?;
    let all = match q.versions.as_deref() {
        None | Some("current") => false,
        Some("all") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("`versions` is `current` or `all`, not `{other}`")))
        }
    };
    let rows = s
        .store
        .forecasts(q.group.as_deref(), time_param("from", &q.from)?, time_param("to", &q.to)?, all)
        .map_err(internal)?;
    Ok(Json(json!({ "forecasts": rows })))
}

/// `POST /api/v1/forecasts`: CSV (`text/csv`) or JSON, all or nothing.
pub async fn import_forecasts(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let actor = s.auth.write(&headers, Role::Planner)?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))?;
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kinds = s.planner.group_kinds();
    let (parsed, source) = if ctype.starts_with("text/csv") {
        (crate::forecast::parse_csv(text, &kinds), "csv")
    } else if ctype.starts_with("application/json") {
        (crate::forecast::parse_json(text, &kinds), "json")
    } else {
        return Err(ApiError::BadRequest(format!(
            "Content-Type must be text/csv or application/json, not `{ctype}`"
        )));
    };
    let rows = match parsed {
        Ok(rows) => rows,
        Err(errors) => {
            s.metrics.forecast_imports_refused.inc();
            tracing::warn!(by = %actor.name, errors = errors.len(), "forecast import refused");
            return Err(ApiError::Unprocessable(
                format!("forecast refused, nothing imported: {} error(s)", errors.len()),
                serde_json::to_value(&errors).unwrap_or_default(),
            ));
        }
    };
    let summary = s.store.import_forecasts(&rows, source, &actor.name, Utc::now()).map_err(internal)?;
    s.metrics.forecast_rows_imported.inc_by(rows.len() as u64);
    s.reload_forecasts();
    s.live.overview_changed();
    tracing::info!(by = %actor.name, rows = summary.rows, replaced = summary.replaced, "forecast imported");
    Ok(Json(serde_json::to_value(summary).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
pub struct BalanceQuery {
    group: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub async fn balance(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<BalanceQuery>,
) -> Result<Json<Value>, ApiError> {
    s.auth.read(&headers)?;
    if let Some(g) = &q.group {
        if s.planner.group(g).is_none() {
            return Err(ApiError::NotFound(format!("no capacity group `{g}`")));
        }
    }
    let (from, to) = (time_param("from", &q.from)?, time_param("to", &q.to)?);
    let forecasts = s.forecasts.read().expect("forecast lock").clone();
    let state = s.state.lock().expect("state lock poisoned");
    let balances = s.planner.balances(&state, &forecasts, q.group.as_deref(), from, to);
    Ok(Json(json!({ "event_time": state.watermark(), "balances": balances })))
}

#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    status: Option<String>,
    kind: Option<String>,
    group: Option<String>,
    limit: Option<usize>,
}

pub async fn list_alerts(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, ApiError> {
    s.auth.read(&headers)?;
    if let Some(st) = &q.status {
        if ![AlertStatus::Open, AlertStatus::Acknowledged, AlertStatus::Resolved]
            .iter()
            .any(|x| x.as_str() == st)
        {
            return Err(ApiError::BadRequest(format!(
                "`status` is open, acknowledged or resolved, not `{st}`"
            )));
        }
    }
    if let Some(k) = &q.kind {
        if AlertKind::parse(k).is_none() {
            return Err(ApiError::BadRequest(format!(
                "`kind` is schedule, dispatch, downtime, offline or forecast_deviation, not `{k}`"
            )));
        }
    }
    let rows = s
        .store
        .alerts(q.status.as_deref(), q.kind.as_deref(), q.group.as_deref(), q.limit.unwrap_or(500).min(5000))
        .map_err(internal)?;
    let alerts: Vec<Value> =
        rows.into_iter().filter_map(|(_, body)| serde_json::from_str(&body).ok()).collect();
    Ok(Json(json!({ "alerts": alerts })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    note: Option<String>,
}

fn note_of(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    let b: NoteBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body must be JSON like {{\"note\": \"...\"}}: {e}")))?;
    Ok(b.note)
}

fn book_error(e: BookError) -> ApiError {
    match e {
        BookError::NotFound(id) => ApiError::NotFound(format!("no alert {id}")),
        BookError::AlreadyResolved(id) => ApiError::Conflict(format!("alert {id} is already resolved")),
        BookError::Store(e) => internal(e),
    }
}

/// `POST /api/v1/alerts/{id}/{ack|resolve}` with an optional note.
pub async fn alert_action(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let actor = s.auth.write(&headers, Role::Planner)?;
    let note = note_of(&body)?;
    let now = Utc::now();
    let event = {
        let mut book = s.book.lock().expect("book lock");
        match action.as_str() {
            "ack" => book.acknowledge(&s.store, id, &actor.name, note, now),
            "resolve" => book.resolve(&s.store, id, &actor.name, note, now),
            other => {
                return Err(ApiError::NotFound(format!("no alert action `{other}`; use ack or resolve")))
            }
        }
        .map_err(book_error)?
    };
    crate::planner::publish(&s, s.mqtt.get(), std::slice::from_ref(&event));
    Ok(Json(serde_json::to_value(&event.alert).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromiseRequest {
    group: String,
    quantity: f64,
    due: String,
    /// `inquiry` (default) or `quote`.
    mode: Option<String>,
    /// For quotes: the order or customer reference.
    reference: Option<String>,
}

/// `POST /api/v1/promise`: can the group deliver `quantity` by `due`?
pub async fn promise(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: PromiseRequest = serde_json::from_slice(&body).map_err(|e| {
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
    let group = s
        .planner
        .group(&req.group)
        .ok_or_else(|| ApiError::NotFound(format!("no capacity group `{}`", req.group)))?;
    if !(req.quantity.is_finite() && req.quantity > 0.0) {
        return Err(ApiError::BadRequest("`quantity` must be a number > 0".into()));
    }
    let due = parse_time(&req.due).map_err(|e| ApiError::BadRequest(format!("`due`: {e}")))?;
    let forecasts = s.forecasts.read().expect("forecast lock").clone();
    let (now, rate, mut demand) = {
        let state = s.state.lock().expect("state lock poisoned");
        let now = state.watermark().unwrap_or_else(Utc::now);
        let rate = s.planner.group_rate(&state, &group.id);
        // What forecast demand still needs from now on: an open bucket's
        // demand less what is already made, over the time it has left.
        let balances = s.planner.balances(&state, &forecasts, Some(&group.id), Some(now), None);
        let demand: Vec<DemandBucket> = balances
            .iter()
            .map(|b| DemandBucket {
                start: b.start.max(now),
                end: b.end,
                quantity: match group.kind {
                    crate::config::AssetKind::Line => (b.effective_demand - b.made).max(0.0),
                    // Feeders promise spare capacity: forecast energy is not
                    // drawn from it again.
                    crate::config::AssetKind::Feeder => 0.0,
                },
            })
            .filter(|d| d.end > d.start && d.quantity > 0.0)
            .collect();
        (now, rate, demand)
    };
    let reservations = s.store.active_reservations(&group.id, Utc::now()).map_err(internal)?;
    demand.extend(reservations.iter().flat_map(|r| r.consumes.iter().cloned()));
    let horizon = now + chrono::Duration::days(366);
    let answer = capable_to_promise(&CtpInput {
        now,
        rate_per_hour: rate,
        demand,
        quantity: req.quantity,
        due,
        horizon,
    });
    let mut out = json!({
        "group": group.id,
        "unit": crate::domain::Unit::of(group.kind),
        "quantity": req.quantity,
        "due": due,
        "mode": if quote { "quote" } else { "inquiry" },
        "event_time": now,
        "rate_per_hour": rate,
        "reservations_counted": reservations.len(),
        "answer": answer,
    });
    if quote {
        let actor = actor.expect("quotes are writes");
        if !answer.feasible {
            let when = answer.earliest.map_or("not within a year at its current rate".to_string(), |t| {
                format!("the earliest is {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            });
            return Err(ApiError::Conflict(format!(
                "nothing reserved: {} cannot make {} by {}; {when}. Quote with a later due time.",
                group.id,
                req.quantity,
                due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let created = Utc::now();
        let r = Reservation {
            id: 0,
            group: group.id.clone(),
            quantity: req.quantity,
            consumes: answer
                .consumed
                .iter()
                .map(|c| DemandBucket { start: c.start, end: c.end, quantity: c.quantity })
                .collect(),
            created_at: created,
            expires_at: created + chrono::Duration::hours(s.quote_valid_hours as i64),
            status: "held".into(),
            reference: req.reference.clone(),
            created_by: actor.name.clone(),
        };
        let id = s.store.insert_reservation(&r).map_err(internal)?;
        tracing::info!(id, group = %r.group, quantity = r.quantity, by = %actor.name, "capacity reserved");
        out["reservation"] = serde_json::to_value(Reservation { id, ..r }).unwrap_or_default();
    }
    Ok(Json(out))
}

/// `POST /api/v1/reservations/{id}/{confirm|release}`.
pub async fn reservation_action(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    s.auth.write(&headers, Role::Planner)?;
    let status = match action.as_str() {
        "confirm" => "confirmed",
        "release" => "released",
        other => return Err(ApiError::NotFound(format!("no action `{other}`; use confirm or release"))),
    };
    let r = s.store.set_reservation_status(id, status).map_err(internal)?;
    match r {
        None => Err(ApiError::NotFound(format!("no reservation {id}"))),
        Some(r) if r.status != status => Err(ApiError::Conflict(format!(
            "reservation {id} is already {}; it cannot become {status}",
            r.status
        ))),
        Some(r) => Ok(Json(serde_json::to_value(r).unwrap_or_default())),
    }
}
