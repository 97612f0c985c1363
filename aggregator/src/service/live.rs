//! The live-state handle: live state and the bookkeeping of those who act
//! on its changes (dashboard, alert edges, rollup writer), behind one lock.
//! Every method takes the lock for its own work only; notifications (the
//! alert task's wake-up, the time-series sink's points) are sent after it
//! is released.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use throughline_shared::codec::{StatusMessage, Telemetry};
use tokio::sync::Notify;

use crate::balance::BucketBalance;
use crate::fanout::{EdgeGroups, Touched};
use crate::model::ForecastRow;
use crate::projection::Planner;
use crate::resend::{Lost, Plan, ResendPlanner};
use crate::rollup::PendingMinutes;
use crate::sink::influx::{self, InfluxSink};
use crate::snapshot::Dirty;
use crate::state::{AgentView, AssetView, LiveState, TelemetryOutcome};
use crate::store::Checkpoint;

struct Inner {
    state: LiveState,
    touched: Touched,
    edges: EdgeGroups,
    pending: PendingMinutes,
    /// Assets and agents changed since the last checkpoint.
    dirty: Dirty,
    /// The id after the last journal record applied.
    journal_next: Option<u64>,
}

/// Live state of every asset and agent (see the module docs).
pub struct Live {
    inner: Mutex<Inner>,
    planner: Planner,
    /// Woken after a message with an alert edge (a state change, a feeder
    /// load crossing its rating): the affected groups are evaluated at once.
    edge: Notify,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("groups", &self.planner.groups.len()).finish_non_exhaustive()
    }
}

impl Live {
    /// `state` as restored at start; `keep` is the history kept in memory
    /// per asset.
    pub fn new(state: LiveState, planner: Planner, keep: Duration) -> Live {
        Live {
            inner: Mutex::new(Inner {
                state,
                touched: Touched::default(),
                edges: EdgeGroups::default(),
                pending: PendingMinutes::new(keep),
                dirty: Dirty::default(),
                journal_next: None,
            }),
            planner,
            edge: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("live-state lock poisoned")
    }

    /// The plant's groups and assets.
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// Apply one telemetry message (received at `now`, wall clock): every
    /// consumer gets what it changed; `sink` its points.
    pub fn apply_telemetry(
        &self,
        t: &Telemetry,
        now: DateTime<Utc>,
        sink: Option<&InfluxSink>,
    ) -> TelemetryOutcome {
        let (out, points, edge) = {
            let mut g = self.lock();
            let inner = &mut *g;
            let out = inner.state.apply_telemetry(t, now);
            inner.touched.note_telemetry(&out);
            inner.dirty.note_telemetry(&out);
            if out.duplicate || out.refused.is_some() {
                return out;
            }
            let edge = inner.edges.note(&inner.state, t, &out);
            inner.pending.note(&mut inner.state, &out);
            let points = sink.map(|_| influx::points(t, &out, &inner.state));
            (out, points, edge)
        };
        if let (Some(sink), Some(points)) = (sink, points) {
            sink.push(points);
        }
        if edge {
            self.edge.notify_one();
        }
        out
    }

    /// Apply an agent's status; returns its online flag before.
    pub fn apply_status(&self, m: &StatusMessage, now: DateTime<Utc>) -> Option<bool> {
        let mut g = self.lock();
        let inner = &mut *g;
        let before = inner.state.apply_status(m, now);
        inner.touched.note_status(&inner.state, m, before);
        if let Some(g) = inner.state.agent(&m.agent) {
            inner.dirty.note_agent(g.ix);
        }
        before
    }

    /// Move `asset` to `agent` (only it may report the asset from now on);
    /// kept by the next checkpoint. The agent that owned it.
    pub fn move_asset(
        &self,
        site: &throughline_shared::SiteId,
        asset: &throughline_shared::AssetId,
        agent: throughline_shared::AgentId,
    ) -> Result<Option<throughline_shared::AgentId>, crate::state::MoveError> {
        let mut g = self.lock();
        let inner = &mut *g;
        let before = inner.state.move_asset(site, asset, agent)?;
        if let Some(ix) = inner.state.ix_of(site, asset) {
            inner.dirty.note_asset(ix);
            inner.touched.note_asset(ix);
        }
        Ok(before)
    }

    /// The resend requests due at `now` and the ranges to give up, by
    /// `planner` (owned by ingest) from every agent's missing ranges.
    /// The agents for which `hold` is true are neither asked nor given up
    /// ([`ResendPlanner::plan_holding`]).
    pub fn plan_resends(
        &self,
        planner: &mut ResendPlanner,
        now: std::time::Instant,
        hold: impl Fn(&throughline_shared::AgentId) -> bool,
    ) -> Plan {
        planner.plan_holding(&self.lock().state, now, hold)
    }

    /// Report `lost` ranges lost; how many numbers each one was (what was
    /// still missing of it). The agents' views and checkpoints change.
    pub fn declare_lost(&self, lost: &[Lost]) -> Vec<u64> {
        let mut g = self.lock();
        let inner = &mut *g;
        lost.iter()
            .map(|l| {
                let n = inner.state.declare_lost(&l.agent, l.range);
                if let Some(agent) = inner.state.agent(&l.agent) {
                    inner.dirty.note_agent(agent.ix);
                    inner.touched.note_agent(agent.ix);
                }
                n
            })
            .collect()
    }

    /// Read live state under the lock. Keep `f` short: ingest waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&LiveState) -> R) -> R {
        f(&self.lock().state)
    }

    /// Wait for a message with an alert edge.
    pub async fn edge(&self) {
        self.edge.notified().await
    }

    /// The groups with an alert edge since the last call.
    pub fn take_edge_groups(&self) -> BTreeSet<String> {
        self.lock().edges.take()
    }

    /// The asset and agent views changed since the last call, and `then`
    /// computed on the same state; without a client to tell (`build`
    /// false), the changes are forgotten without building views.
    pub fn take_touched<R>(
        &self,
        build: bool,
        then: impl FnOnce(&LiveState) -> R,
    ) -> ((Vec<AssetView>, Vec<AgentView>), R) {
        let mut g = self.lock();
        let inner = &mut *g;
        let views = if build {
            inner.touched.take(&inner.state)
        } else {
            inner.touched.clear();
            (Vec::new(), Vec::new())
        };
        (views, then(&inner.state))
    }

    /// Journal record `id` has been applied (call after the message's
    /// apply: a checkpoint taken in between holds the message without its
    /// id, and a replay from there finds it a duplicate).
    pub fn journaled(&self, id: u64) {
        self.lock().journal_next = Some(id + 1);
    }

    /// What changed since the last call, as one consistent cut: the history
    /// minutes, the assets' and agents' state (copies) and the journal
    /// position they correspond to.
    pub fn take_checkpoint(&self) -> Checkpoint {
        let g = &mut *self.lock();
        Checkpoint {
            rows: g.pending.take(&g.state),
            state: g.dirty.take(&g.state),
            journal_next: g.journal_next,
        }
    }

    /// Put back a checkpoint whose write failed: taken again next time.
    pub fn put_back_checkpoint(&self, cp: &Checkpoint) {
        let g = &mut *self.lock();
        g.pending.put_back(&g.state, &cp.rows);
        g.dirty.put_back(&g.state, &cp.state);
    }

    /// Balances of `forecasts` of `group` (all if None) overlapping
    /// `[from, to)`, with the event time they were computed at.
    pub fn balances(
        &self,
        forecasts: &[ForecastRow],
        group: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> (Option<DateTime<Utc>>, Vec<BucketBalance>) {
        self.read(|st| (st.watermark(), self.planner.balances(st, forecasts, group, from, to, Utc::now())))
    }
}
