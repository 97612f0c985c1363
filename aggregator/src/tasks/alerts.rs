//! The alert task: evaluates alerts every `planning.evaluate_every_ms`, and
//! at once for the groups of an asset whose state changed or whose load
//! crossed its rating (ingest wakes it); each change is published on
//! `throughline/v1/{site}/alerts`, sent to the dashboard and queued for the
//! receivers ([`Services::publish`]).
//!
//! The periodic pass goes group by group, taking the live-state lock for
//! one group at a time, so ingest never waits for more than one group's
//! balances; between groups it yields and first evaluates any group with
//! an edge, so an edge waits for one group, not for the whole pass.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::projection::Scope;
use crate::service::Services;

/// Evaluate until cancelled.
pub async fn run(shared: Arc<Services>, every: Duration, token: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let full = tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => true,
            _ = shared.live.edge() => false,
        };
        if !full {
            evaluate_edges(&shared);
            continue;
        }
        // Forecasts may also arrive through `aggregator import-forecast`
        // (another process): read them again when the file changed.
        shared.forecasts.reload_if_changed();
        let by_group = shared.forecasts.by_group();
        for g in &shared.live.planner().groups {
            if token.is_cancelled() {
                return;
            }
            evaluate_edges(&shared);
            let one = BTreeSet::from([g.id.clone()]);
            let forecasts = by_group.get(&g.id).map_or(&[][..], Vec::as_slice);
            let events = shared.evaluate(forecasts, Scope::Groups(&one));
            shared.publish(&events);
            tokio::task::yield_now().await;
        }
        let events = shared.evaluate(&[], Scope::Agents);
        shared.publish(&events);
        shared.metrics.alert_evaluations.inc();
    }
}

/// Evaluate the groups with an alert edge since the last call, if any.
fn evaluate_edges(shared: &Services) {
    let groups = shared.live.take_edge_groups();
    if groups.is_empty() {
        return;
    }
    let forecasts = shared.forecasts.of_groups(&groups);
    let events = shared.evaluate(&forecasts, Scope::Groups(&groups));
    shared.metrics.alert_edge_evaluations.inc();
    shared.publish(&events);
}
