//! The control-room dashboard: one page and its script and style, embedded
//! in the binary (plant networks are often air-gapped: no CDN, no build
//! step). The page reads the same API as everyone else and listens to
//! `/api/v1/events`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

const INDEX: &str = include_str!("../../assets/index.html");
const FILES: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../assets/app.css")),
];

/// Revalidate on every load: an upgraded aggregator serves its own page.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), CACHE], INDEX).into_response()
}

pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, ctype, body) = FILES.iter().find(|(name, _, _)| *name == file).ok_or_else(|| {
        let name: String = file.chars().take(100).collect();
        ApiError::NotFound(format!("no dashboard file `{name}`; the files are app.js and app.css"))
    })?;
    Ok(([(header::CONTENT_TYPE, *ctype), CACHE], *body).into_response())
}
