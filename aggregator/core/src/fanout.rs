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

use std::collections::{BTreeMap, BTreeSet};

use throughline_shared::codec::{StatusMessage, Telemetry};
use throughline_shared::{AgentId, AssetId, SiteId};

use crate::state::{AgentView, AssetView, LiveState, TelemetryOutcome};

/// Asset and agent views changed since they were last taken.
#[derive(Debug, Default)]
pub struct Touched {
    /// Site -> assets: looked up by borrowed ids, copied only when new.
    assets: BTreeMap<SiteId, BTreeSet<AssetId>>,
    agents: BTreeSet<AgentId>,
}

impl Touched {
    /// A telemetry message changed its agent's view and, unless it was a
    /// duplicate, its asset's.
    pub fn note_telemetry(&mut self, t: &Telemetry, out: &TelemetryOutcome) {
        if !self.agents.contains(&t.envelope.agent) {
            self.agents.insert(t.envelope.agent.clone());
        }
        if !out.duplicate {
            self.note_asset(&t.site, &t.asset);
        }
    }

    fn note_asset(&mut self, site: &SiteId, asset: &AssetId) {
        match self.assets.get_mut(site) {
            Some(set) if set.contains(asset) => {}
            Some(set) => {
                set.insert(asset.clone());
            }
            None => {
                self.assets.insert(site.clone(), BTreeSet::from([asset.clone()]));
            }
        }
    }

    /// A status message changed its agent's view, and when the agent's
    /// online flag changed (`before` is the flag before it), the views of
    /// the assets it reports (they show whether their agent is online).
    pub fn note_status(&mut self, state: &LiveState, m: &StatusMessage, before: Option<bool>) {
        self.agents.insert(m.agent.clone());
        if before != Some(m.status.online) {
            for a in state.assets_of(&m.agent) {
                self.note_asset(&a.site, &a.asset);
            }
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty() && self.agents.is_empty()
    }

    /// Forget what changed (no client to tell).
    pub fn clear(&mut self) {
        self.assets.clear();
        self.agents.clear();
    }

    /// The views changed since the last call, in (site, asset) and agent
    /// order, each once.
    pub fn take(&mut self, state: &LiveState) -> (Vec<AssetView>, Vec<AgentView>) {
        let assets = std::mem::take(&mut self.assets)
            .iter()
            .flat_map(|(s, set)| set.iter().filter_map(move |a| state.asset(s, a)))
            .map(|a| state.asset_view(a))
            .collect();
        let agents = std::mem::take(&mut self.agents)
            .iter()
            .filter_map(|g| state.agent(g))
            .map(|g| state.agent_view(g))
            .collect();
        (assets, agents)
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
