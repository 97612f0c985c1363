//! The history flusher: writes the minutes changed in live state every
//! `history.flush_secs` and prunes old rows every hour (both at once at
//! start). See [`crate::service::history`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::service::history::{flush, prune};
use crate::service::Services;

/// How often old rollups are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Flush and prune until cancelled. The last flush, after ingest has
/// stopped, is the caller's ([`flush`]).
pub async fn run(shared: Arc<Services>, token: CancellationToken) {
    let mut flush_tick = tokio::time::interval(shared.rollups.every);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = flush_tick.tick() => {
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || flush(&s)).await {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(rows = n, "history flushed"),
                    Ok(Ok(_)) => {}
                    // Logged by the flush, once a minute while it goes on.
                    Ok(Err(_)) => {}
                    Err(e) => tracing::error!(error = %e, "history flush task failed"),
                }
            }
            _ = prune_tick.tick() => {
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || prune(&s, Utc::now())).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "old history pruned"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "history prune failed"),
                    Err(e) => tracing::error!(error = %e, "history prune task failed"),
                }
            }
        }
    }
}
