//! Wiring between live state, forecasts and the pure engines: builds each
//! asset's view of a bucket from its history, computes balances, evaluates
//! the alert rules, and runs the periodic evaluation task.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use throughline_shared::{SiteId, Topic};
use tokio_util::sync::CancellationToken;

use crate::alerts::{book::AlertBook, rules, AlertEvent, Condition};
use crate::balance::{balance, AssetPlan, BucketBalance};
use crate::config::{AssetConfig, Config, GroupConfig, PlanningConfig};
use crate::domain::ForecastRow;
use crate::metrics::KindLabel;
use crate::state::{AssetLive, LiveState};
use crate::Shared;

pub mod cache;

/// An asset whose last sample is older than this (event time) projects
/// nothing: no data, no promise.
const STALE_SECS: i64 = 600;
/// Gap alerts look at buckets starting up to this far ahead.
const LOOKAHEAD_HOURS: i64 = 24;

/// Groups, their registered assets and the planning settings.
#[derive(Debug, Clone)]
pub struct Planner {
    pub groups: Vec<GroupConfig>,
    /// Group id -> index in `groups` (a plant has hundreds of groups).
    group_index: HashMap<String, usize>,
    assets: HashMap<String, Vec<AssetConfig>>,
    planning: PlanningConfig,
}

/// What an asset's projection takes from live state at event time `now`,
/// the same for every bucket: computed once per group evaluation, not once
/// per (asset, bucket).
#[derive(Debug, Clone, Copy)]
struct LiveInputs<'a> {
    live: Option<&'a AssetLive>,
    state: Option<throughline_shared::AssetState>,
    rate_running: Option<f64>,
    availability: f64,
    load_kw: Option<f64>,
}

impl Planner {
    pub fn new(config: &Config) -> Planner {
        let mut assets: HashMap<String, Vec<AssetConfig>> = HashMap::new();
        for a in &config.assets {
            assets.entry(a.group.clone()).or_default().push(a.clone());
        }
        let groups = config.all_groups();
        let group_index = groups.iter().enumerate().map(|(i, g)| (g.id.clone(), i)).collect();
        Planner { groups, group_index, assets, planning: config.planning.clone() }
    }

    pub fn group(&self, id: &str) -> Option<&GroupConfig> {
        self.group_index.get(id).map(|&i| &self.groups[i])
    }

    /// The registered assets of a group.
    pub fn group_assets(&self, group: &str) -> &[AssetConfig] {
        self.assets.get(group).map(Vec::as_slice).unwrap_or_default()
    }

    /// Group id -> kind, for forecast validation.
    pub fn group_kinds(&self) -> HashMap<String, crate::config::AssetKind> {
        self.groups.iter().map(|g| (g.id.clone(), g.kind)).collect()
    }

    /// The site a group's alerts are published under (its first asset's).
    pub fn group_site(&self, group: &str) -> Option<SiteId> {
        self.assets.get(group).and_then(|a| a.first()).map(|a| a.site.clone())
    }

    /// Each asset of `group` as the balance engine sees bucket `[start, end)`
    /// at event time `now`.
    pub fn plans(
        &self,
        state: &LiveState,
        group: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<AssetPlan> {
        let inputs = self.live_inputs(state, group, now);
        self.plans_with(group, &inputs, start, end, now)
    }

    /// The bucket-independent part of each asset's plan of `group` at `now`.
    fn live_inputs<'a>(&self, state: &'a LiveState, group: &str, now: DateTime<Utc>) -> Vec<LiveInputs<'a>> {
        let rate_window = chrono::Duration::minutes(self.planning.rate_window_minutes as i64);
        let avail_window = chrono::Duration::hours(self.planning.availability_window_hours as i64);
        self.group_assets(group)
            .iter()
            .map(|cfg| {
                let live = state.asset(&cfg.site, &cfg.id);
                let fresh =
                    live.and_then(|a| a.last_ts).is_some_and(|t| (now - t).num_seconds() <= STALE_SECS);
                match live {
                    Some(a) => {
                        let h = &a.history;
                        let running_s = h.running_between(now - rate_window, now);
                        let rate_running = (running_s >= 60.0)
                            .then(|| h.output_between(now - rate_window, now) / (running_s / 3600.0));
                        let run = h.running_between(now - avail_window, now);
                        let down = h.down_between(now - avail_window, now);
                        let availability = if run + down > 0.0 { run / (run + down) } else { 1.0 };
                        LiveInputs {
                            live,
                            state: if fresh { a.state } else { None },
                            rate_running,
                            availability,
                            load_kw: if fresh { a.load_kw } else { None },
                        }
                    }
                    None => LiveInputs {
                        live: None,
                        state: None,
                        rate_running: None,
                        availability: 1.0,
                        load_kw: None,
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
                made: match i.live {
                    Some(a) if until > start => a.history.output_between(start, until),
                    _ => 0.0,
                },
                rate_running: i.rate_running,
                availability: i.availability,
                load_kw: i.load_kw,
                peak_kw: match i.live {
                    Some(a) if until > start => a.history.peak_load_between(start, until),
                    _ => None,
                },
            })
            .collect()
    }

    /// Balances of `forecasts` (all of group `group`) at event time `now`:
    /// one group's share of [`Planner::balances`], and the unit an
    /// incremental update recomputes ([`cache::GroupBalances`]).
    pub fn group_balances<'f>(
        &self,
        state: &LiveState,
        group: &str,
        forecasts: impl IntoIterator<Item = &'f ForecastRow>,
        now: DateTime<Utc>,
    ) -> Vec<BucketBalance> {
        let Some(g) = self.group(group) else { return Vec::new() };
        let inputs = self.live_inputs(state, group, now);
        forecasts
            .into_iter()
            .map(|f| balance(g, f, &self.plans_with(group, &inputs, f.start, f.end, now), now))
            .collect()
    }

    /// Balances of the forecast buckets of `group` (all groups if None)
    /// overlapping `[from, to)`, at the latest event time.
    pub fn balances(
        &self,
        state: &LiveState,
        forecasts: &[ForecastRow],
        group: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<BucketBalance> {
        let now = state.watermark().unwrap_or_else(Utc::now);
        // Each group's live inputs once, whatever the number of its buckets.
        let mut inputs: HashMap<&str, Vec<LiveInputs<'_>>> = HashMap::new();
        forecasts
            .iter()
            .filter(|f| group.is_none_or(|g| f.group == g))
            .filter(|f| from.is_none_or(|t| f.end > t) && to.is_none_or(|t| f.start < t))
            .filter_map(|f| {
                let g = self.group(&f.group)?;
                let inputs =
                    inputs.entry(f.group.as_str()).or_insert_with(|| self.live_inputs(state, &f.group, now));
                Some(balance(g, f, &self.plans_with(&f.group, inputs, f.start, f.end, now), now))
            })
            .collect()
    }

    /// The group's projected rate from now on (units/h): what running assets
    /// make, scaled by availability.
    pub fn group_rate(&self, state: &LiveState, group: &str) -> f64 {
        let now = state.watermark().unwrap_or_else(Utc::now);
        let Some(g) = self.group(group) else { return 0.0 };
        let probe = ForecastRow {
            group: group.into(),
            start: now,
            end: now + chrono::Duration::hours(1),
            demand: 0.0,
            unit: crate::domain::Unit::of(g.kind),
            uplift_pct: 0.0,
        };
        let b = balance(g, &probe, &self.plans(state, group, probe.start, probe.end, now), now);
        match g.kind {
            crate::config::AssetKind::Line => b.group_rate,
            // A feeder group's "rate" for promises is its spare capacity.
            crate::config::AssetKind::Feeder => b.spare_rate,
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
            let keep = chrono::Duration::hours(self.planning.history_hours as i64);
            let horizon = now + chrono::Duration::hours(LOOKAHEAD_HOURS);
            let balances = self.balances(state, forecasts, None, Some(now - keep), Some(horizon));
            // Gap alerts look at the bucket under way and the next one of
            // each group: a stop projects zero for every later bucket too,
            // and one alert per stop is enough to act on.
            let mut next_future: HashMap<&str, DateTime<Utc>> = HashMap::new();
            for b in balances.iter().filter(|b| b.phase == crate::balance::Phase::Future) {
                let e = next_future.entry(b.group.as_str()).or_insert(b.start);
                *e = (*e).min(b.start);
            }
            let next_future: HashMap<String, DateTime<Utc>> =
                next_future.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            for b in &balances {
                let b = b.clone();
                let Some(g) = self.group(&b.group) else { continue };
                let watched = match b.phase {
                    crate::balance::Phase::Open => true,
                    crate::balance::Phase::Future => next_future.get(&b.group) == Some(&b.start),
                    crate::balance::Phase::Closed => false,
                };
                let site = self.group_site(&g.id).map(|s| s.to_string());
                let kind = match g.kind {
                    crate::config::AssetKind::Line => "schedule",
                    crate::config::AssetKind::Feeder => "dispatch",
                };
                let key = format!("{kind}:{}:{}", b.group, b.start.timestamp());
                if watched || book.is_open(&key) {
                    if let Some(c) = rules::gap(&b, g, site.as_deref(), book.is_open(&key)) {
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
                if let Some(c) = rules::deviation(&b, g, site.as_deref(), observed_from) {
                    out.push(c);
                }
            }
            for g in self.groups.iter().filter(|g| groups.contains(&g.id)) {
                let tolerance = chrono::Duration::seconds(g.offline_secs.max(120) as i64);
                for cfg in self.assets.get(&g.id).into_iter().flatten() {
                    let Some(a) = state.asset(&cfg.site, &cfg.id) else { continue };
                    let current =
                        a.last_ts.is_some_and(|t| now - t <= tolerance && wall_now - t <= tolerance);
                    let key = format!("downtime:{}:{}", a.site, a.asset);
                    let loss = Some(a.rate_per_hour().filter(|r| *r > 0.0).unwrap_or(cfg.rated_capacity));
                    if let Some(c) = rules::downtime(a, g, loss, now, current, book.is_open(&key)) {
                        out.push(c);
                    }
                }
            }
        }
        for agent in state.agents().filter(|_| matches!(scope, Scope::Agents)) {
            let assets: Vec<&AssetLive> =
                state.assets().filter(|a| a.agent.as_ref() == Some(&agent.agent)).collect();
            let offline_secs = assets
                .iter()
                .filter_map(|a| a.registration.as_ref())
                .filter_map(|r| self.group(&r.group))
                .map(|g| g.offline_secs)
                .min()
                .unwrap_or(120);
            let names: Vec<String> = assets.iter().map(|a| a.asset.to_string()).collect();
            if let Some(c) =
                rules::offline(agent, chrono::Duration::seconds(offline_secs as i64), wall_now, &names)
            {
                out.push(c);
            }
        }
        out
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

/// Evaluate alerts every `planning.evaluate_every_ms` until cancelled, and
/// at once for the groups of an asset whose state changed or whose load
/// crossed its rating (ingest wakes `shared.alert_wake`); publish each
/// change on `throughline/v1/{site}/alerts` and queue it for the receivers.
///
/// The periodic pass goes group by group, taking the live-state lock for
/// one group at a time, so ingest never waits for more than one group's
/// balances; between groups it yields and first evaluates any group with
/// an edge, so an edge waits for one group, not for the whole pass.
pub async fn run_alerts(
    shared: Arc<Shared>,
    mqtt: Option<rumqttc::AsyncClient>,
    every: Duration,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_version = None;
    loop {
        let full = tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => true,
            _ = shared.alert_wake.notified() => false,
        };
        if !full {
            evaluate_edges(&shared, mqtt.as_ref());
            continue;
        }
        // Forecasts may also arrive through `aggregator import-forecast`
        // (another process): read them again when the file changed.
        let version = shared.store.data_version().ok();
        if version.is_none() || version != seen_version {
            shared.reload_forecasts();
            seen_version = version;
        }
        let mut by_group: HashMap<String, Vec<ForecastRow>> = HashMap::new();
        for f in shared.forecasts.read().expect("forecast lock").iter() {
            by_group.entry(f.group.clone()).or_default().push(f.clone());
        }
        for g in &shared.planner.groups {
            if token.is_cancelled() {
                return;
            }
            evaluate_edges(&shared, mqtt.as_ref());
            let one = BTreeSet::from([g.id.clone()]);
            let forecasts = by_group.get(&g.id).map_or(&[][..], Vec::as_slice);
            let events = evaluate(&shared, forecasts, Scope::Groups(&one));
            publish(&shared, mqtt.as_ref(), &events);
            tokio::task::yield_now().await;
        }
        let events = evaluate(&shared, &[], Scope::Agents);
        publish(&shared, mqtt.as_ref(), &events);
        shared.metrics.alert_evaluations.inc();
    }
}

/// Evaluate the groups with an alert edge since the last call, if any.
fn evaluate_edges(shared: &Shared, mqtt: Option<&rumqttc::AsyncClient>) {
    let groups = shared.state.lock().expect("state lock poisoned").take_edge_groups();
    if groups.is_empty() {
        return;
    }
    let forecasts: Vec<ForecastRow> = shared
        .forecasts
        .read()
        .expect("forecast lock")
        .iter()
        .filter(|f| groups.contains(&f.group))
        .cloned()
        .collect();
    let events = evaluate(shared, &forecasts, Scope::Groups(&groups));
    shared.metrics.alert_edge_evaluations.inc();
    publish(shared, mqtt, &events);
}

/// One evaluation of `scope` against the alert book, under the live-state
/// and book locks; the alert events it caused.
fn evaluate(shared: &Shared, forecasts: &[ForecastRow], scope: Scope) -> Vec<AlertEvent> {
    let state = shared.state.lock().expect("state lock poisoned");
    let mut book = shared.book.lock().expect("book lock");
    let conditions = shared.planner.conditions_in(&state, forecasts, &book, Utc::now(), scope);
    let judged = |a: &crate::alerts::Alert| can_judge(&state, a);
    let applied = match scope {
        Scope::Groups(groups) => {
            let keys = shared.planner.scope_keys(groups);
            book.apply_scoped(&shared.store, conditions, Utc::now(), |k| keys.contains(k), judged)
        }
        Scope::Agents => {
            let rest = |k: &str| k.starts_with("offline:") || !shared.planner.covers(k);
            book.apply_scoped(&shared.store, conditions, Utc::now(), rest, judged)
        }
    };
    shared.metrics.alerts_unresolved.set(book.unresolved().count() as i64);
    applied.unwrap_or_else(|e| {
        tracing::error!(error = %e, "alert evaluation could not be stored");
        Vec::new()
    })
}

impl Planner {
    /// Whether `key` is the key of a gap, deviation or downtime alert of a
    /// configured group or registered asset.
    pub fn covers(&self, key: &str) -> bool {
        let mut parts = key.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("schedule" | "dispatch" | "forecast_deviation"), Some(g), Some(_)) => {
                self.group(g).is_some()
            }
            (Some("downtime"), Some(site), Some(asset)) => {
                self.assets.values().flatten().any(|a| a.site.as_ref() == site && a.id.as_ref() == asset)
            }
            _ => false,
        }
    }

    /// Which alert keys the gap, deviation and downtime rules give for
    /// `groups` (what a scoped evaluation may open or clear).
    pub fn scope_keys(&self, groups: &BTreeSet<String>) -> KeyScope {
        let mut scope = KeyScope::default();
        for g in groups {
            for kind in ["schedule", "dispatch", "forecast_deviation"] {
                scope.prefixes.push(format!("{kind}:{g}:"));
            }
            for a in self.group_assets(g) {
                scope.exact.insert(format!("downtime:{}:{}", a.site, a.id));
            }
        }
        scope
    }
}

/// Alert keys by prefix (gap alerts of a group, any bucket) or exactly.
#[derive(Debug, Default)]
pub struct KeyScope {
    prefixes: Vec<String>,
    exact: std::collections::HashSet<String>,
}

impl KeyScope {
    pub fn contains(&self, key: &str) -> bool {
        self.exact.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
}

/// Whether live state holds what is needed to say an alert's condition is
/// gone (after a restart it may not, yet).
fn can_judge(state: &LiveState, a: &crate::alerts::Alert) -> bool {
    use crate::alerts::AlertKind;
    match a.kind {
        AlertKind::Downtime => a
            .site
            .as_deref()
            .zip(a.asset.as_deref())
            .and_then(|(s, x)| {
                Some(
                    state
                        .asset(&SiteId::parse(s).ok()?, &throughline_shared::AssetId::parse(x).ok()?)?
                        .last_ts,
                )
            })
            .flatten()
            .is_some(),
        AlertKind::Offline => a
            .agent
            .as_deref()
            .and_then(|g| throughline_shared::AgentId::parse(g).ok())
            .is_some_and(|g| state.agent(&g).is_some()),
        AlertKind::Schedule | AlertKind::Dispatch => state.watermark().is_some(),
        AlertKind::ForecastDeviation => false,
    }
}

/// Publish alert events on MQTT and queue them for every receiver.
pub fn publish(shared: &Shared, mqtt: Option<&rumqttc::AsyncClient>, events: &[AlertEvent]) {
    if events.is_empty() {
        return;
    }
    for e in events {
        let kind = KindLabel { kind: e.alert.kind.as_str() };
        match e.event.as_str() {
            "opened" => shared.metrics.alerts_opened.get_or_create(&kind).inc(),
            "resolved" => shared.metrics.alerts_resolved.get_or_create(&kind).inc(),
            _ => 0,
        };
        let site = e.alert.site.as_deref().and_then(|s| SiteId::parse(s).ok());
        let sent = match (mqtt, site) {
            (Some(client), Some(site)) => {
                let body = serde_json::to_vec(e).expect("event serializes");
                client.try_publish(Topic::alerts(&site), rumqttc::QoS::AtLeastOnce, false, body).is_ok()
            }
            _ => false,
        };
        if sent {
            shared.metrics.alert_events_published.inc();
        } else {
            shared.metrics.alert_events_not_published.inc();
        }
        if shared.live.listening() {
            shared.live.send("alert", serde_json::to_string(e).expect("event serializes"));
        }
    }
    // The page's group view should agree with the alert it just got.
    shared.live.overview_changed();
    if let Err(e) = crate::alerts::notify::enqueue(&shared.store, &shared.receivers, events) {
        tracing::error!(error = %e, "alert events could not be queued for delivery");
    }
    shared.outbox_wake.notify_waiters();
    if let Ok(depth) = shared.store.outbox_depth() {
        shared.metrics.outbox_depth.set(depth.iter().map(|(_, n)| n).sum());
    }
}
