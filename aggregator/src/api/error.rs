//! HTTP errors, mapped to JSON in one place: `{"error": "..."}` with a
//! message that says what to fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    Conflict(String),
    /// Input refused with a list of located problems.
    Unprocessable(String, serde_json::Value),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, errors) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, None),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m, None),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m, None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m, None),
            ApiError::Unprocessable(m, errors) => (StatusCode::UNPROCESSABLE_ENTITY, m, Some(errors)),
            ApiError::Internal(detail) => {
                // Details stay in the server log.
                tracing::error!(error = %detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the aggregator log".to_string(),
                    None,
                )
            }
        };
        let mut body = serde_json::json!({ "error": message });
        if let Some(e) = errors {
            body["errors"] = e;
        }
        (status, Json(body)).into_response()
    }
}
