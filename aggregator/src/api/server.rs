//! The HTTP server: hyper's HTTP/1.1 connection driver under the limits of
//! `[http]` (`crate::config::HttpLimits`), which `axum::serve` does not
//! offer. What one client can cost is bounded:
//!
//! - connections: at most `max_connections` are served; one more is closed
//!   as soon as it is accepted (`throughline_http_connections_refused_total`),
//!   so idle sockets cannot use up the file descriptors that `/healthz`
//!   and the agents' broker need;
//! - headers: a request's headers must arrive within `header_timeout`,
//!   counted from the connection's start or the end of the previous
//!   response (hyper's header-read timer; a slowloris client is closed),
//!   and fit in [`MAX_HEAD_BYTES`] (431 beyond);
//! - silence: a connection with no byte either way for `idle_timeout`
//!   while no request is being answered is closed;
//! - bodies: read by the handlers with their own size and time limits
//!   (`super::body`).
//!
//! Each closing by a limit is counted by reason in
//! `throughline_http_connections_closed_total`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::{Metrics, ReasonLabel};
use crate::service::{HttpLimits, Services};

/// Largest request head (request line and headers) a connection buffers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serve `app` on `listener` until `stop`; then ask every connection to
/// finish its request and close, and return once all have (the caller
/// bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shared: Arc<Services>,
    stop: CancellationToken,
) {
    let metrics = &shared.metrics;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little so the
                // loop does not spin, and say so once a minute.
                metrics.http_accept_errors.inc();
                if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "HTTP accept failed (logged once a minute)");
                    last_accept_error = Some(Instant::now());
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.http_connections_refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, shared, stop) = (app.clone(), shared.clone(), stop.clone());
        connections.spawn(async move {
            let metrics = &shared.metrics;
            metrics.http_connections.inc();
            serve_connection(stream, app, limits, metrics, stop).await;
            metrics.http_connections.dec();
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
}

/// What a connection has been doing, for its idle timer.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last byte read or written.
    last_ms: AtomicU64,
    /// Requests being answered.
    busy: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// When the connection has been silent for `limit` with no request in
    /// hand, if it is not busy.
    fn idle_deadline(&self, limit: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + limit
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: HttpLimits,
    metrics: &Metrics,
    stop: CancellationToken,
) {
    let activity =
        Arc::new(Activity { start: Instant::now(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) });
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let seen = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (app, seen) = (app.clone(), seen.clone());
        async move {
            seen.busy.fetch_add(1, Ordering::Relaxed);
            let answer = app.oneshot(req.map(Body::new)).await;
            seen.busy.fetch_sub(1, Ordering::Relaxed);
            seen.touch();
            answer
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let idle_at = activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        metrics.http_connections_closed.get_or_create(&ReasonLabel { reason: "header_timeout" }).inc();
                    } else {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                return;
            }
            _ = stop.cancelled(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = tokio::time::sleep_until(idle_at.into()) => {
                let busy = activity.busy.load(Ordering::Relaxed) > 0;
                if !busy && activity.idle_deadline(limits.idle_timeout) <= Instant::now() {
                    metrics.http_connections_closed.get_or_create(&ReasonLabel { reason: "idle_timeout" }).inc();
                    return; // dropping the connection closes the socket
                }
                if busy {
                    activity.touch();
                }
            }
        }
    }
}

/// A socket that notes each byte read or written in its [`Activity`].
struct Watched {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
