//! Projection: the plant's groups and their registered assets, and from
//! live state each asset's view of a bucket (made so far, rate while
//! running, availability, load, and for a down asset when it is expected
//! back, from its repair history: [`crate::stops`]), the balances of every
//! bucket, and the alert conditions true now. Pure: event time comes from
//! live state, the wall clock from the caller.
//!
//! # Each asset at its own event time
//!
//! The plant's event time `now` is the newest sample of any asset. An
//! asset's own view is taken *as of* its own watermark, `min(now,
//! newest_ts)`: its rate and availability over the windows ending there,
//! its expected return from a stop from there, and in a bucket under way
//! its remaining output over `max(start, as_of) .. end`. What it made
//! covers up to its watermark, so the time between its watermark and `now`
//! is projected by it, not lost: a gateway sending its backlog while
//! another site is live leaves the group's projection as it would be live.
//!
//! An asset is *behind* when its watermark is more than `STALE_SECS` (600
//! s) older than `now`. Behind and still delivering (a message for it
//! received within as long by the server clock) it is projected as above.
//! Behind and silent by the server clock too, its state and load count as
//! unknown and it projects nothing (what it made still counts). An asset
//! not behind is never silent, so balances freeze rather than empty when
//! every gateway stops at once.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use throughline_shared::{AgentId, AssetId, SiteId};

use crate::alert::book::AlertBook;
use crate::alert::{rules, Alert, AlertKey, AlertKind, Condition};
use crate::balance::{balance, AssetPlan, BucketBalance, Phase};
use crate::model::{AssetConfig, AssetKind, ForecastRow, GroupConfig, Unit};
use crate::state::{AssetLive, LiveState};
use crate::stops::{self, Return};

pub mod cache;

/// An asset whose newest sample is older than this (event time) and from
/// which nothing has been received for as long (server clock) is silent:
/// it projects nothing, no data, no promise. Behind by more than this but
/// still delivering, it is projected from its own watermark.
const STALE_SECS: i64 = 600;
/// Gap alerts look at buckets starting up to this far ahead.
const LOOKAHEAD_HOURS: i64 = 24;

/// The windows live capacity is projected over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// An asset's rate while running is measured over this window.
    pub rate: Duration,
    /// Its availability (running / (running + down)) over this one, and
    /// the repair time of a stop under way from its stops in it.
    pub availability: Duration,
    /// How far back closed buckets are judged (the history kept in memory).
    pub history: Duration,
}

/// What an asset made in a range, from the stored per-minute history: the
/// part of a bucket older than what live state keeps in memory (a month's
/// bucket, a quarter's). Implemented by the aggregator over its store; the
/// core only asks.
pub trait StoredOutput: Send + Sync + std::fmt::Debug {
    /// Output of `asset` over the minutes starting in `[from, to)`; `None`
    /// if it cannot be read now (then the plan counts what memory holds).
    fn output_between(
        &self,
        site: &SiteId,
        asset: &AssetId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Option<f64>;
}

/// Groups, their registered assets and the projection windows.
#[derive(Debug, Clone)]
pub struct Planner {
    pub groups: Vec<GroupConfig>,
    /// Group id -> index in `groups` (a plant has hundreds of groups).
    group_index: HashMap<String, usize>,
    assets: HashMap<String, Vec<AssetConfig>>,
    windows: Windows,
    /// Where `made` older than the in-memory history comes from.
    stored: Option<std::sync::Arc<dyn StoredOutput>>,
}

/// What an asset's projection takes from live state at event time `now`,
/// the same for every bucket: computed once per group evaluation, not once
/// per (asset, bucket). Rate, availability and return are as of `as_of`.
#[derive(Debug, Clone)]
struct LiveInputs<'a> {
    live: Option<&'a AssetLive>,
    /// The asset's own event time, `min(now, newest_ts)`.
    as_of: Option<DateTime<Utc>>,
    state: Option<throughline_shared::AssetState>,
    rate_running: Option<f64>,
    availability: f64,
    load_kw: Option<f64>,
    /// Down (with current data): when it is expected back.
    back: Option<Return>,
}

impl Planner {
    /// `groups` must name every group an asset serves.
    pub fn new(assets: &[AssetConfig], groups: Vec<GroupConfig>, windows: Windows) -> Planner {
        let mut by_group: HashMap<String, Vec<AssetConfig>> = HashMap::new();
        for a in assets {
            by_group.entry(a.group.clone()).or_default().push(a.clone());
        }
        let group_index = groups.iter().enumerate().map(|(i, g)| (g.id.clone(), i)).collect();
        Planner { groups, group_index, assets: by_group, windows, stored: None }
    }

    /// Read `made` older than an asset's in-memory history from `stored`.
    pub fn with_stored(mut self, stored: std::sync::Arc<dyn StoredOutput>) -> Planner {
        self.stored = Some(stored);
        self
    }

    /// What `cfg` made in `[start, until)`: the minutes before its first one
    /// in memory from the store, the rest from memory (without a store,
    /// memory alone).
    fn made(
        &self,
        cfg: &AssetConfig,
        history: Option<&crate::history::History>,
        start: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> f64 {
        if until <= start {
            return 0.0;
        }
        let first =
            history.and_then(|h| h.minutes().next()).and_then(|(m, _)| DateTime::from_timestamp(m, 0));
        let memory = |from: DateTime<Utc>| history.map_or(0.0, |h| h.output_between(from, until));
        match (&self.stored, first) {
            (Some(st), Some(first)) if start < first => {
                let older = st.output_between(&cfg.site, &cfg.id, start, first.min(until)).unwrap_or(0.0);
                older + if until > first { memory(first) } else { 0.0 }
            }
            (Some(st), None) => st.output_between(&cfg.site, &cfg.id, start, until).unwrap_or(0.0),
            _ => memory(start),
        }
    }

    pub fn group(&self, id: &str) -> Option<&GroupConfig> {
        self.group_index.get(id).map(|&i| &self.groups[i])
    }

    /// The registered assets of a group.
    pub fn group_assets(&self, group: &str) -> &[AssetConfig] {
        self.assets.get(group).map(Vec::as_slice).unwrap_or_default()
    }

    /// Group id -> kind, for forecast validation.
    pub fn group_kinds(&self) -> HashMap<String, AssetKind> {
        self.groups.iter().map(|g| (g.id.clone(), g.kind)).collect()
    }

    /// The site a group's alerts are published under (its first asset's).
    pub fn group_site(&self, group: &str) -> Option<SiteId> {
        self.assets.get(group).and_then(|a| a.first()).map(|a| a.site.clone())
    }

    /// Each asset of `group` as the balance engine sees bucket `[start, end)`
    /// at event time `now`, silence judged by the server clock `wall_now`.
    pub fn plans(
        &self,
        state: &LiveState,
        group: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        wall_now: DateTime<Utc>,
    ) -> Vec<AssetPlan> {
        let inputs = self.live_inputs(state, group, now, wall_now);
        self.plans_with(group, &inputs, start, end, now)
    }

    /// The bucket-independent part of each asset's plan of `group` at `now`:
    /// each asset as of its own watermark, nothing from a silent one.
    fn live_inputs<'a>(
        &self,
        state: &'a LiveState,
        group: &str,
        now: DateTime<Utc>,
        wall_now: DateTime<Utc>,
    ) -> Vec<LiveInputs<'a>> {
        let rate_window = self.windows.rate;
        let avail_window = self.windows.availability;
        let default_repair = self
            .group(group)
            .and_then(|g| g.default_repair_minutes)
            .map(|m| Duration::milliseconds((m * 60_000.0).round() as i64));
        self.group_assets(group)
            .iter()
            .map(|cfg| {
                let live = state.asset(&cfg.site, &cfg.id);
                match live {
                    Some(a) => {
                        let fresh = !silent(state, a, now, wall_now);
                        let as_of = a.newest_ts.map(|t| t.min(now));
                        // The windows end at the asset's own time: one that is
                        // behind has no data between it and `now`.
                        let at = as_of.unwrap_or(now);
                        let h = &a.history;
                        let running_s = h.running_between(at - rate_window, at);
                        let rate_running = (running_s >= 60.0)
                            .then(|| h.output_between(at - rate_window, at) / (running_s / 3600.0));
                        let run = h.running_between(at - avail_window, at);
                        let down = h.down_between(at - avail_window, at);
                        let availability = if run + down > 0.0 { run / (run + down) } else { 1.0 };
                        let back = a
                            .state_since
                            .filter(|_| fresh && a.state == Some(throughline_shared::AssetState::Down))
                            .map(|since| {
                                stops::expected_return(
                                    &a.stops,
                                    a.reason.as_deref(),
                                    since,
                                    at,
                                    avail_window,
                                    default_repair,
                                )
                            });
                        LiveInputs {
                            live,
                            as_of,
                            state: if fresh { a.state } else { None },
                            rate_running,
                            availability,
                            load_kw: if fresh { a.load_kw } else { None },
                            back,
                        }
                    }
                    None => LiveInputs {
                        live: None,
                        as_of: None,
                        state: None,
                        rate_running: None,
                        availability: 1.0,
                        load_kw: None,
                        back: None,
                    },
                }
            })
            .collect()
    }

    /// Plans of bucket `[start, end)` from the group's [`LiveInputs`] (in
    /// the order of [`Planner::group_assets`]).
    fn plans_with(
        &self,
        group: &str,
        inputs: &[LiveInputs<'_>],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<AssetPlan> {
        let until = now.min(end);
        self.group_assets(group)
            .iter()
            .zip(inputs)
            .map(|(cfg, i)| AssetPlan {
                site: cfg.site.clone(),
                asset: cfg.id.clone(),
                rated: cfg.rated_capacity,
                state: i.state,
                as_of: i.as_of,
                made: self.made(cfg, i.live.map(|a| &a.history), start, until),
                rate_running: i.rate_running,
                availability: i.availability,
                load_kw: i.load_kw,
                peak_kw: match i.live {
                    Some(a) if until > start => a.history.peak_load_between(start, until),
                    _ => None,
                },
                expected_return: i.back.as_ref().and_then(|r| r.at),
                return_basis: i.back.as_ref().map(|r| r.basis.clone()),
            })
            .collect()
    }

    /// Balances of `forecasts` (all of group `group`) at event time `now`
    /// (server clock `wall_now`): one group's share of
    /// [`Planner::balances`], and the unit an incremental update recomputes
    /// ([`cache::GroupBalances`]).
    pub fn group_balances<'f>(
        &self,
        state: &LiveState,
        group: &str,
        forecasts: impl IntoIterator<Item = &'f ForecastRow>,
        now: DateTime<Utc>,
        wall_now: DateTime<Utc>,
    ) -> Vec<BucketBalance> {
        let Some(g) = self.group(group) else { return Vec::new() };
        let inputs = self.live_inputs(state, group, now, wall_now);
        forecasts
            .into_iter()
            .map(|f| balance(g, f, &self.plans_with(group, &inputs, f.start, f.end, now), now))
            .collect()
    }

    /// Balances of the forecast buckets of `group` (all groups if None)
    /// overlapping `[from, to)`, at the latest event time (`wall_now`, the
    /// server clock, before any sample arrived; it also judges silence).
    pub fn balances(
        &self,
        state: &LiveState,
        forecasts: &[ForecastRow],
        group: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        wall_now: DateTime<Utc>,
    ) -> Vec<BucketBalance> {
        let now = state.watermark().unwrap_or(wall_now);
        // Each group's live inputs once, whatever the number of its buckets.
        let mut inputs: HashMap<&str, Vec<LiveInputs<'_>>> = HashMap::new();
        forecasts
            .iter()
            .filter(|f| group.is_none_or(|g| f.group == g))
            .filter(|f| from.is_none_or(|t| f.end > t) && to.is_none_or(|t| f.start < t))
            .filter_map(|f| {
                let g = self.group(&f.group)?;
                let inputs = inputs
                    .entry(f.group.as_str())
                    .or_insert_with(|| self.live_inputs(state, &f.group, now, wall_now));
                Some(balance(g, f, &self.plans_with(&f.group, inputs, f.start, f.end, now), now))
            })
            .collect()
    }

    /// The group's projected rate from now on (units/h): what running assets
    /// make, scaled by availability, at the latest event time (`wall_now`,
    /// the server clock, before any sample arrived; it also judges silence).
    pub fn group_rate(&self, state: &LiveState, group: &str, wall_now: DateTime<Utc>) -> f64 {
        let now = state.watermark().unwrap_or(wall_now);
        let Some(g) = self.group(group) else { return 0.0 };
        let probe = ForecastRow {
            group: group.into(),
            start: now,
            end: now + Duration::hours(1),
            demand: 0.0,
            unit: Unit::of(g.kind),
            uplift_pct: 0.0,
        };
        let b = balance(g, &probe, &self.plans(state, group, probe.start, probe.end, now, wall_now), now);
        match g.kind {
            AssetKind::Line => b.group_rate,
            // A feeder group's "rate" for promises is its spare capacity.
            AssetKind::Feeder => b.spare_rate,
        }
    }

    /// Every alert condition true now among the rules in `scope`;
    /// `forecasts` are those of the groups in scope.
    pub fn conditions_in(
        &self,
        state: &LiveState,
        forecasts: &[ForecastRow],
        book: &AlertBook,
        wall_now: DateTime<Utc>,
        scope: Scope,
    ) -> Vec<Condition> {
        let mut out = Vec::new();
        let groups = match scope {
            Scope::Groups(g) => Some(g),
            _ => None,
        };
        if let (Some(now), Some(groups)) = (state.watermark(), groups) {
            let keep = self.windows.history;
            let horizon = now + Duration::hours(LOOKAHEAD_HOURS);
            let balances = self.balances(state, forecasts, None, Some(now - keep), Some(horizon), wall_now);
            // Gap alerts look at the bucket under way and the next one of
            // each group: a stop projected at zero is so for every later
            // bucket too, and one alert per stop is enough to act on.
            let mut next_future: HashMap<&str, DateTime<Utc>> = HashMap::new();
            for b in balances.iter().filter(|b| b.phase == Phase::Future) {
                let e = next_future.entry(b.group.as_str()).or_insert(b.start);
                *e = (*e).min(b.start);
            }
            let next_future: HashMap<String, DateTime<Utc>> =
                next_future.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            for b in &balances {
                let b = b.clone();
                let Some(g) = self.group(&b.group) else { continue };
                let watched = match b.phase {
                    Phase::Open => true,
                    Phase::Future => next_future.get(&b.group) == Some(&b.start),
                    Phase::Closed => false,
                };
                let site = self.group_site(&g.id).map(|s| s.to_string());
                let kind = match g.kind {
                    AssetKind::Line => AlertKind::Schedule,
                    AssetKind::Feeder => AlertKind::Dispatch,
                };
                let key = AlertKey::Bucket { kind, group: b.group.clone(), start: b.start.timestamp() };
                if watched || book.is_open(&key) {
                    if let Some(mut c) = rules::gap(&b, g, site.as_deref(), book.is_open(&key)) {
                        c.hold.since = self.latest_stop(state, &g.id, now, wall_now);
                        out.push(c);
                    }
                }
                let observed_from = self
                    .assets
                    .get(&g.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| state.asset(&a.site, &a.id).and_then(|l| l.first_ts))
                    .max();
                // A closed bucket is judged only once every asset's own data
                // has reached its end: a group whose backfill is still
                // arriving, or closed incomplete, has no deviation to report.
                let complete =
                    b.phase == Phase::Closed && self.closing(state, g, b.end, wall_now) == Closing::Complete;
                if let Some(c) =
                    complete.then(|| rules::deviation(&b, g, site.as_deref(), observed_from)).flatten()
                {
                    out.push(c);
                }
            }
            for g in self.groups.iter().filter(|g| groups.contains(&g.id)) {
                let tolerance = Duration::seconds(g.offline_secs.max(120) as i64);
                for cfg in self.assets.get(&g.id).into_iter().flatten() {
                    let Some(a) = state.asset(&cfg.site, &cfg.id) else { continue };
                    let current =
                        a.newest_ts.is_some_and(|t| now - t <= tolerance && wall_now - t <= tolerance);
                    let key = AlertKey::Downtime { site: a.site.to_string(), asset: a.asset.to_string() };
                    let loss = Some(a.rate_per_hour().filter(|r| *r > 0.0).unwrap_or(cfg.rated_capacity));
                    if let Some(c) = rules::downtime(a, g, loss, now, current, book.is_open(&key)) {
                        out.push(c);
                    }
                }
            }
        }
        // No agent's threshold is below the least of the groups' (and 120 s
        // for an agent without registered assets): an agent heard within it
        // and not said offline is current, and costs nothing more.
        let least = self.groups.iter().map(|g| g.offline_secs).min().unwrap_or(120).min(120);
        let least = Duration::seconds(least as i64);
        let candidate = |g: &&crate::state::AgentLive| {
            g.online == Some(false) || g.last_message.is_some_and(|t| wall_now - t > least)
        };
        let agents_scope = matches!(scope, Scope::Agents);
        // Each candidate's assets, in one pass over the plant (not one per agent).
        let mut by_agent: HashMap<&AgentId, Vec<&AssetLive>> = HashMap::new();
        if agents_scope && state.agents().any(|g| candidate(&g)) {
            for a in state.assets() {
                if let Some(g) = &a.agent {
                    by_agent.entry(g).or_default().push(a);
                }
            }
        }
        let expiry = state.unregistered_expiry();
        for agent in state.agents().filter(|_| agents_scope).filter(candidate) {
            let assets = by_agent.remove(&agent.agent).unwrap_or_default();
            // An agent no registration names, reporting no registered asset,
            // long silent: its offline alert expires (a flood of made-up ids
            // does not keep thousands open for ever).
            let registered =
                state.is_known_agent(&agent.agent) || assets.iter().any(|a| a.registration.is_some());
            if !registered && agent.last_message.is_none_or(|t| wall_now - t > expiry) {
                continue;
            }
            let offline_secs = assets
                .iter()
                .filter_map(|a| a.registration.as_ref())
                .filter_map(|r| self.group(&r.group))
                .map(|g| g.offline_secs)
                .min()
                .unwrap_or(120);
            let names = || assets.iter().map(|a| a.asset.to_string()).collect();
            if let Some(c) = rules::offline(agent, Duration::seconds(offline_secs as i64), wall_now, names) {
                out.push(c);
            }
        }
        out
    }
}

impl Planner {
    /// When the latest stop of the group's assets began, if any of them is
    /// down (and not silent) at event time `now`: how long a gap that stop
    /// caused is known to have held, whenever it is first evaluated. An
    /// asset's stop is known to have held up to its own watermark, so one
    /// that is behind counts from its start moved on by how far behind it
    /// is: down 2 min as of its own time is 2 min, whatever `now` says.
    fn latest_stop(
        &self,
        state: &LiveState,
        group: &str,
        now: DateTime<Utc>,
        wall_now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.group_assets(group)
            .iter()
            .filter_map(|cfg| state.asset(&cfg.site, &cfg.id))
            .filter(|a| a.state == Some(throughline_shared::AssetState::Down))
            .filter(|a| !silent(state, a, now, wall_now))
            .filter_map(|a| {
                let behind = a.newest_ts.map_or(Duration::zero(), |t| (now - t).max(Duration::zero()));
                a.state_since.map(|since| since + behind)
            })
            .max()
    }

    /// The earliest server-clock time after `wall_now` at which an asset of
    /// `group` that is behind at event time `now` but still delivering turns
    /// silent if nothing more arrives for it: when the group's balances
    /// change without a sample or a move of event time
    /// ([`cache::GroupBalances`]).
    pub(crate) fn silent_after(
        &self,
        state: &LiveState,
        group: &str,
        now: DateTime<Utc>,
        wall_now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let stale = Duration::seconds(STALE_SECS);
        self.group_assets(group)
            .iter()
            .filter_map(|cfg| state.asset(&cfg.site, &cfg.id))
            .filter(|a| a.newest_ts.is_some_and(|t| now - t > stale))
            .filter_map(|a| heard(state, a))
            .map(|h| h + stale)
            .filter(|due| *due >= wall_now)
            .min()
    }
}

/// When a message for asset `a` was last received (server clock): its own,
/// or for a snapshot written before that was kept, its agent's.
fn heard(state: &LiveState, a: &AssetLive) -> Option<DateTime<Utc>> {
    a.last_message.or_else(|| a.agent.as_ref().and_then(|g| state.agent(g)).and_then(|g| g.last_message))
}

/// Whether asset `a` projects nothing at event time `now`: never heard
/// from, or its watermark more than [`STALE_SECS`] behind `now` *and*
/// nothing received for it for more than [`STALE_SECS`] by the server clock
/// `wall_now`. Behind but delivering (a backfill) is not silent, and
/// neither is an asset whose watermark is current, however long ago it was
/// heard: with every gateway silent, event time stands still.
fn silent(state: &LiveState, a: &AssetLive, now: DateTime<Utc>, wall_now: DateTime<Utc>) -> bool {
    let stale = Duration::seconds(STALE_SECS);
    match a.newest_ts {
        None => true,
        Some(t) if now - t <= stale => false,
        Some(_) => heard(state, a).is_none_or(|h| wall_now - h > stale),
    }
}

/// Whether a bucket that has ended in event time is closed for its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// Some asset's samples have not reached the end yet, and it has not
    /// been silent for the group's `close_grace_secs`: wait.
    Waiting { behind: Vec<String> },
    /// Every asset's samples have reached the end.
    Complete,
    /// Closed without these assets (`site/asset`): silent past the grace
    /// while behind. Nobody judges it.
    Incomplete { missing: Vec<String> },
}

impl Planner {
    /// Whether the bucket of `group` ending at `end` is closed for it, by
    /// each registered asset's own newest sample time (its watermark): an
    /// asset is through when its watermark is at or past `end`; one that is
    /// behind is missing once its agent has been silent for
    /// `close_grace_secs` by the server clock `wall_now` (an asset never
    /// heard from: once `wall_now` is that far past `end`).
    ///
    /// The watermark is [`AssetLive::newest_ts`], which a clock step back
    /// of the agent does not move: a bucket closed for the asset stays
    /// closed. The samples after the step that fall in it still add their
    /// output to its minutes (they are real output, stamped by the
    /// corrected clock); at most the step's length of them, since the step
    /// starts no further back than that.
    pub fn closing(
        &self,
        state: &LiveState,
        group: &GroupConfig,
        end: DateTime<Utc>,
        wall_now: DateTime<Utc>,
    ) -> Closing {
        let grace = Duration::seconds(group.close_grace_secs as i64);
        let (mut behind, mut missing) = (Vec::new(), Vec::new());
        for cfg in self.group_assets(&group.id) {
            let live = state.asset(&cfg.site, &cfg.id);
            if live.and_then(|a| a.newest_ts).is_some_and(|t| t >= end) {
                continue;
            }
            let heard = live
                .and_then(|a| a.agent.as_ref())
                .and_then(|g| state.agent(g))
                .and_then(|g| g.last_message)
                .unwrap_or(end);
            let name = format!("{}/{}", cfg.site, cfg.id);
            if wall_now - heard >= grace {
                missing.push(name);
            } else {
                behind.push(name);
            }
        }
        match (behind.is_empty(), missing.is_empty()) {
            (false, _) => Closing::Waiting { behind },
            (true, true) => Closing::Complete,
            (true, false) => Closing::Incomplete { missing },
        }
    }
}

/// What one alert evaluation looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The gap, deviation and downtime rules of these groups.
    Groups(&'a BTreeSet<String>),
    /// The offline rule of every agent (and alerts of groups or assets no
    /// longer configured, which then clear).
    Agents,
}

impl Planner {
    /// Whether `key` is the key of a gap, deviation or downtime alert of a
    /// configured group or registered asset.
    pub fn covers(&self, key: &AlertKey) -> bool {
        match key {
            AlertKey::Bucket { group, .. } => self.group(group).is_some(),
            AlertKey::Downtime { site, asset } => {
                self.assets.values().flatten().any(|a| a.site.as_ref() == site && a.id.as_ref() == asset)
            }
            AlertKey::Offline { .. } => false,
        }
    }

    /// Which alert keys the gap, deviation and downtime rules give for
    /// `groups` (what a scoped evaluation may open or clear).
    pub fn scope_keys(&self, groups: &BTreeSet<String>) -> KeyScope {
        let mut scope = KeyScope { groups: groups.clone(), assets: HashSet::new() };
        for g in groups {
            for a in self.group_assets(g) {
                scope.assets.insert((a.site.to_string(), a.id.to_string()));
            }
        }
        scope
    }
}

/// The alert keys of some groups: their gap and deviation alerts (any
/// bucket) and the downtime alerts of their assets.
#[derive(Debug, Default)]
pub struct KeyScope {
    groups: BTreeSet<String>,
    /// (site, asset)
    assets: HashSet<(String, String)>,
}

impl KeyScope {
    pub fn contains(&self, key: &AlertKey) -> bool {
        match key {
            AlertKey::Bucket { group, .. } => self.groups.contains(group),
            AlertKey::Downtime { site, asset } => self.assets.contains(&(site.clone(), asset.clone())),
            AlertKey::Offline { .. } => false,
        }
    }
}

/// Whether live state holds what is needed to say an alert's condition is
/// gone (after a restart it may not, yet).
pub fn can_judge(state: &LiveState, a: &Alert) -> bool {
    match a.kind {
        AlertKind::Downtime => a
            .site
            .as_deref()
            .zip(a.asset.as_deref())
            .and_then(|(s, x)| Some(state.asset(&SiteId::parse(s).ok()?, &AssetId::parse(x).ok()?)?.last_ts))
            .flatten()
            .is_some(),
        AlertKind::Offline => {
            a.agent.as_deref().and_then(|g| AgentId::parse(g).ok()).is_some_and(|g| state.agent(&g).is_some())
        }
        AlertKind::Schedule | AlertKind::Dispatch => state.watermark().is_some(),
        AlertKind::ForecastDeviation => false,
    }
}

#[cfg(test)]
mod as_of_tests;
#[cfg(test)]
mod debounce_tests;
#[cfg(test)]
mod tests;
