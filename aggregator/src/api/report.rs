//! `GET /api/v1/reports/forecast-accuracy?from=&to=&group=&format=`: every
//! closed forecast bucket against its stored actual, per group, as JSON or
//! (`format=csv`, or `Accept: text/csv`) as CSV for a spreadsheet.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use super::auth::Reader;
use super::error::ApiError;
use super::history::range;
use crate::service::report::{AccuracyReport, AccuracyRequest};
use crate::service::Services;

/// Range when the request names none: the last 31 days.
const DEFAULT_RANGE: chrono::Duration = chrono::Duration::days(31);

/// The CSV columns, one line per bucket.
const COLUMNS: [&str; 14] = [
    "group",
    "kind",
    "unit",
    "start",
    "end",
    "forecast",
    "uplift_pct",
    "effective_demand",
    "actual",
    "difference",
    "deviation_pct",
    "over_threshold",
    "complete",
    "missing",
];

#[derive(Debug, Deserialize)]
pub struct AccuracyQuery {
    from: Option<String>,
    to: Option<String>,
    group: Option<String>,
    /// `json` or `csv`; without it the Accept header decides.
    format: Option<String>,
}

/// CSV when `format=csv`, or without `format` when Accept names `text/csv`.
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!("`format` is json or csv, not `{other}`"))),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|m| m.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("text/csv"))),
    }
}

pub async fn forecast_accuracy(
    State(s): State<Arc<Services>>,
    _: Reader,
    headers: HeaderMap,
    Query(q): Query<AccuracyQuery>,
) -> Result<Response, ApiError> {
    let csv = wants_csv(q.format.as_deref(), &headers)?;
    let (from, to) = range(&q.from, &q.to, DEFAULT_RANGE)?;
    let req = AccuracyRequest { group: q.group, from, to };
    let shared = s.clone();
    let report = tokio::task::spawn_blocking(move || shared.forecast_accuracy(&req)).await??;
    if !csv {
        return Ok(Json(report).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"forecast-accuracy.csv\""),
        ],
        to_csv(&report).map_err(|e| ApiError::Internal(Box::new(e)))?,
    )
        .into_response())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A header line and one line per bucket; numbers with `.` decimals, no
/// exponent (Rust's `Display`), an empty field for a missing percentage,
/// `missing` as `site/asset` joined by spaces.
fn to_csv(report: &AccuracyReport) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for r in report.groups.iter().flat_map(|g| &g.buckets) {
        w.write_record([
            r.group.clone(),
            serde_plain(&r.kind),
            r.unit.as_str().to_string(),
            time(r.start),
            time(r.end),
            r.forecast.to_string(),
            r.uplift_pct.to_string(),
            r.effective_demand.to_string(),
            r.actual.to_string(),
            r.difference.to_string(),
            r.deviation_pct.map(|d| d.to_string()).unwrap_or_default(),
            r.over_threshold.to_string(),
            r.complete.to_string(),
            r.missing.join(" "),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of strings is UTF-8"))
}

/// A unit-like enum's serde name (`line`, `feeder`).
fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accuracy::{AccuracyRow, AccuracyTotals};
    use crate::model::{AssetKind, ForecastRow, GroupConfig, Unit};
    use crate::service::report::GroupAccuracy;

    #[test]
    fn csv_has_a_header_and_plain_numbers() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let g = GroupConfig::with_defaults("region-north", AssetKind::Feeder);
        let f = |demand| ForecastRow {
            group: g.id.clone(),
            start: t("2026-01-01T00:00:00Z"),
            end: t("2026-02-01T00:00:00Z"),
            demand,
            unit: Unit::KWh,
            uplift_pct: 12.5,
        };
        let rows = vec![
            AccuracyRow::new(&g, &f(40_000.0), 47_250.5, Vec::new()),
            AccuracyRow::new(&g, &f(0.0), 5.0, vec!["north/f-1".into(), "north/f-2".into()]),
        ];
        let report = AccuracyReport {
            now: t("2026-03-01T00:00:00Z"),
            from: t("2026-01-01T00:00:00Z"),
            to: t("2026-03-01T00:00:00Z"),
            groups: vec![GroupAccuracy {
                group: g.id.clone(),
                kind: g.kind,
                unit: Unit::KWh,
                deviation_threshold_pct: 10.0,
                totals: AccuracyTotals::of(&rows),
                buckets: rows,
            }],
        };
        let text = to_csv(&report).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "region-north,feeder,kWh,2026-01-01T00:00:00Z,2026-02-01T00:00:00Z,40000,12.5,45000,47250.5,2250.5,5.001111,false,true,"
        );
        assert_eq!(
            lines[2],
            "region-north,feeder,kWh,2026-01-01T00:00:00Z,2026-02-01T00:00:00Z,0,12.5,0,5,5,,false,false,north/f-1 north/f-2"
        );
    }

    #[test]
    fn csv_is_asked_for_by_format_or_accept() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            h
        };
        assert!(wants_csv(Some("csv"), &HeaderMap::new()).unwrap());
        assert!(!wants_csv(Some("json"), &accept("text/csv")).unwrap());
        assert!(wants_csv(None, &accept("application/json;q=0.5, text/csv; charset=utf-8")).unwrap());
        assert!(!wants_csv(None, &accept("*/*")).unwrap());
        assert!(matches!(wants_csv(Some("xlsx"), &HeaderMap::new()), Err(ApiError::BadRequest(_))));
    }
}
