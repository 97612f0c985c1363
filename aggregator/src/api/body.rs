//! Request bodies read under a size and a time limit, as they stream in
//! (never buffered whole by the framework first). Handlers check the
//! caller's token before they call [`read`], so a client without one costs
//! no body at all.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

use super::error::ApiError;

/// Limit of the small JSON bodies (alert notes, promise questions).
pub const MAX_SMALL_BODY: usize = 64 * 1024;

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Over `max` bytes (413).
    TooLarge { max: usize },
    /// Not all there within the time limit (408).
    Timeout { secs: u64 },
    /// The client went away or sent broken framing.
    Broken(String),
}

impl BodyError {
    /// The metric label of a refusal.
    pub fn label(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "too_large",
            BodyError::Timeout { .. } => "body_timeout",
            BodyError::Broken(_) => "broken",
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        match e {
            BodyError::TooLarge { max } => {
                ApiError::TooLarge(format!("the body is larger than the limit of {max} bytes"))
            }
            BodyError::Timeout { secs } => ApiError::Timeout(format!(
                "the body did not arrive within {secs} s (http.body_timeout_secs); send it faster or raise the limit"
            )),
            BodyError::Broken(m) => ApiError::BadRequest(format!("the body could not be read: {m}")),
        }
    }
}

/// Read `body` whole: at most `max` bytes, within `timeout`. A declared
/// `Content-Length` over `max` is refused before a byte is kept. Past the
/// limit, the rest is read and dropped (up to the deadline: memory stays
/// bounded, time too) so that a client still sending sees the answer
/// rather than a reset connection; a client that asked
/// `Expect: 100-continue` is answered at once and sends nothing.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > max as u64) {
        if !expects_continue {
            drain(&mut stream, deadline).await;
        }
        return Err(BodyError::TooLarge { max });
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(BodyError::Timeout { secs: timeout.as_secs() }),
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(next)) => next,
        };
        let chunk = next.map_err(|e| BodyError::Broken(e.to_string()))?;
        if out.len() + chunk.len() > max {
            drop(out);
            drain(&mut stream, deadline).await;
            return Err(BodyError::TooLarge { max });
        }
        out.extend_from_slice(&chunk);
    }
}

/// Read and drop what the client still sends, up to the deadline.
async fn drain(stream: &mut axum::body::BodyDataStream, deadline: tokio::time::Instant) {
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, stream.next()).await {}
}
