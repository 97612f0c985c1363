//! The live-event tick: pushes the dashboard's changed assets and agents
//! every [`TICK`] (ingest only notes which changed, so no work per message
//! goes to clients) and the overview when due. See [`crate::service::feed`].

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::service::feed::{overview_at, OVERVIEW_EVERY, TICK};
use crate::service::Services;

/// Push changed assets and agents every [`TICK`], the overview when due,
/// until `token` is cancelled.
pub async fn run(shared: Arc<Services>, token: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_overview: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        let listening = shared.feed.listening();
        let overview_due = listening
            && (shared.feed.take_overview_due()
                || last_overview.is_none_or(|t| t.elapsed() >= OVERVIEW_EVERY));
        let forecasts = overview_due.then(|| shared.forecasts.all());
        // Nobody to tell: the changes are forgotten without building views.
        let ((assets, agents), overview) = shared
            .live
            .take_touched(listening, |state| forecasts.as_deref().map(|f| overview_at(&shared, state, f)));
        if !listening {
            continue;
        }
        if !assets.is_empty() {
            shared.feed.send("assets", json!({ "assets": assets }).to_string());
        }
        if !agents.is_empty() {
            shared.feed.send("agents", json!({ "agents": agents }).to_string());
        }
        if let Some(o) = overview {
            last_overview = Some(Instant::now());
            shared.feed.send("overview", o.to_string());
        }
    }
    shared.feed.close();
}
