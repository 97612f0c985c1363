//! HTTP errors, mapped to JSON in one place: `{"error": "..."}` with a
//! message that says what to fix. The services' errors convert with `?`; an
//! internal error keeps its source for the log, and the client is told only
//! to look there.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::service::alerts::AlertsError;
use crate::service::auth::AuthError;
use crate::service::planning::{ImportRefused, PromiseError};
use crate::service::report::ReportError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    Conflict(String),
    /// A body over its limit (413).
    TooLarge(String),
    /// A body that did not arrive in time (408).
    Timeout(String),
    /// Any other status, with what to do about it (the JSON shape of
    /// errors that axum or the router produce, see `api::json_errors`).
    Status(StatusCode, String),
    /// Input refused with a list of located problems (the first ones) and
    /// how many there were in all.
    Unprocessable(String, serde_json::Value, usize),
    /// A failure of ours; the source goes to the log only.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::Internal(Box::new(e))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(Box::new(e))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Unauthorized(m) => ApiError::Unauthorized(m),
            AuthError::Forbidden(m) => ApiError::Forbidden(m),
        }
    }
}

impl From<AlertsError> for ApiError {
    fn from(e: AlertsError) -> ApiError {
        match e {
            AlertsError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AlertsError::AlreadyResolved(_) => ApiError::Conflict(e.to_string()),
            AlertsError::Store(e) => e.into(),
        }
    }
}

impl From<ImportRefused> for ApiError {
    fn from(e: ImportRefused) -> ApiError {
        match e {
            ImportRefused::Invalid(ref r) => ApiError::Unprocessable(
                e.to_string(),
                serde_json::to_value(r.errors()).unwrap_or_default(),
                r.total(),
            ),
            ImportRefused::Store(e) => e.into(),
        }
    }
}

impl From<PromiseError> for ApiError {
    fn from(e: PromiseError) -> ApiError {
        match e {
            PromiseError::NoGroup(_) => ApiError::NotFound(e.to_string()),
            PromiseError::Quantity | PromiseError::Due(_) => ApiError::BadRequest(e.to_string()),
            PromiseError::Infeasible(m) => ApiError::Conflict(m),
            PromiseError::Store(e) => e.into(),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> ApiError {
        match e {
            ReportError::NoGroup(_) => ApiError::NotFound(e.to_string()),
            ReportError::Store(e) => e.into(),
        }
    }
}

/// The source chain of an error, for the log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, errors) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, None),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m, None),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m, None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m, None),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m, None),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m, None),
            ApiError::Status(code, m) => (code, m, None),
            ApiError::Unprocessable(m, errors, total) => {
                (StatusCode::UNPROCESSABLE_ENTITY, m, Some((errors, total)))
            }
            ApiError::Internal(source) => {
                // Details stay in the server log.
                tracing::error!(error = %chain(source.as_ref()), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the aggregator log".to_string(),
                    None,
                )
            }
        };
        let mut body = serde_json::json!({ "error": message });
        if let Some((e, total)) = errors {
            body["errors"] = e;
            body["errors_total"] = total.into();
        }
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_source_for_the_log_only() {
        let e = ApiError::from(StoreError {
            path: "/data/throughline.db".into(),
            source: rusqlite::Error::InvalidQuery,
        });
        let ApiError::Internal(ref source) = e else { panic!("{e:?}") };
        let logged = chain(source.as_ref());
        assert!(
            logged.contains("/data/throughline.db") && logged.contains("Query is not read-only"),
            "{logged}"
        );
        assert_eq!(e.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
        let e: ApiError = AlertsError::AlreadyResolved(4).into();
        assert!(matches!(&e, ApiError::Conflict(m) if m == "alert 4 is already resolved"), "{e:?}");
        let e: ApiError = AuthError::Forbidden("no".into()).into();
        assert_eq!(e.into_response().status(), StatusCode::FORBIDDEN);
    }
}
