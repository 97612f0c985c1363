//! The bookkeeping of those who act on live-state changes, fed by what
//! [`LiveState::apply_telemetry`] and [`LiveState::apply_status`] return, so
//! live state itself keeps no flags for them:
//!
//! - [`Touched`]: which asset and agent views the dashboard must send again;
//! - [`EdgeGroups`]: which groups the alert task must evaluate at once
//!   (an asset's state changed, or a feeder's load crossed its rating);
//! - [`crate::rollup::PendingMinutes`]: which history minutes the rollup
//!   writer must write.
//!
//! The time-series sink reads the same events for state changes and late
//! samples.

use std::collections::BTreeSet;

use throughline_shared::codec::{StatusMessage, Telemetry};

use crate::state::{
    AgentIx, AgentLive, AgentView, AssetIx, AssetLive, AssetView, LiveState, TelemetryOutcome,
};

/// Asset and agent views changed since they were last taken.
#[derive(Debug, Default)]
pub struct Touched {
    assets: BTreeSet<AssetIx>,
    agents: BTreeSet<AgentIx>,
}

impl Touched {
    /// A telemetry message changed its agent's view and, unless it was a
    /// duplicate, its asset's.
    pub fn note_telemetry(&mut self, out: &TelemetryOutcome) {
        if let Some(g) = out.agent {
            self.agents.insert(g);
        }
        if let (false, Some(a)) = (out.duplicate, out.asset) {
            self.assets.insert(a);
        }
    }

    /// A status message changed its agent's view, and when the agent's
    /// online flag changed (`before` is the flag before it), the views of
    /// the assets it reports (they show whether their agent is online).
    pub fn note_status(&mut self, state: &LiveState, m: &StatusMessage, before: Option<bool>) {
        if let Some(g) = state.agent(&m.agent) {
            self.agents.insert(g.ix);
        }
        if before != Some(m.status.online) {
            self.assets.extend(state.assets_of(&m.agent).map(|a| a.ix));
        }
    }

    /// An agent's view changed otherwise (its lost ranges).
    pub fn note_agent(&mut self, ix: AgentIx) {
        self.agents.insert(ix);
    }

    /// An asset's view changed otherwise (moved to another agent).
    pub fn note_asset(&mut self, ix: AssetIx) {
        self.assets.insert(ix);
    }

    /// Forget what changed (no client to tell).
    pub fn clear(&mut self) {
        self.assets.clear();
        self.agents.clear();
    }

    /// The views changed since the last call, in (site, asset) and agent
    /// order, each once.
    pub fn take(&mut self, state: &LiveState) -> (Vec<AssetView>, Vec<AgentView>) {
        let mut assets: Vec<&AssetLive> =
            std::mem::take(&mut self.assets).into_iter().filter_map(|ix| state.asset_at(ix)).collect();
        assets.sort_by(|x, y| (&x.site, &x.asset).cmp(&(&y.site, &y.asset)));
        let mut agents: Vec<&AgentLive> =
            std::mem::take(&mut self.agents).into_iter().filter_map(|ix| state.agent_at(ix)).collect();
        agents.sort_by(|x, y| x.agent.cmp(&y.agent));
        (
            assets.into_iter().map(|a| state.asset_view(a)).collect(),
            agents.into_iter().map(|g| state.agent_view(g)).collect(),
        )
    }
}

/// Groups with an alert edge since they were last taken.
#[derive(Debug, Default)]
pub struct EdgeGroups {
    groups: BTreeSet<String>,
}

impl EdgeGroups {
    /// Note the group of a registered asset whose message was an alert edge;
    /// true if it was one.
    pub fn note(&mut self, state: &LiveState, t: &Telemetry, out: &TelemetryOutcome) -> bool {
        if !out.alert_edge {
            return false;
        }
        if let Some(r) = state.asset(&t.site, &t.asset).and_then(|a| a.registration.as_ref()) {
            if !self.groups.contains(&r.group) {
                self.groups.insert(r.group.clone());
            }
        }
        true
    }

    /// The groups noted since the last call.
    pub fn take(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.groups)
    }
}

#[cfg(test)]
mod tests;
