//! Alert rules: pure functions from balances and live state to conditions.
//! Each takes whether an alert with its key is open, for hysteresis: a
//! condition opens above its threshold but stays until the value falls
//! `hysteresis_pct` points below it.

use chrono::{DateTime, Duration, Utc};

use super::{AlertDetails, AlertKey, AlertKind, Condition, Hold};
use crate::balance::{BucketBalance, Phase};
use crate::model::hours_between;
use crate::model::{AssetKind, GroupConfig};
use crate::state::{AgentLive, AssetLive};

fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time of day, with its date when not on the day of `now`.
fn clock(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M UTC").to_string()
    } else {
        hhmm(t)
    }
}

/// Down assets named in a gap alert's summary with their projected return.
const SUMMARY_DOWN_ASSETS: usize = 5;

/// What the projection assumed for each down asset of the bucket, as a
/// sentence for the summary ("" when none is down): "Assumes press-2 down
/// (jam) since 10:02 UTC, expected back 10:09 UTC (median of 7 jam stops
/// in the last 8 h: 7 min)."
fn return_assumptions(b: &BucketBalance) -> String {
    let said: Vec<String> = b
        .assets
        .iter()
        .filter(|a| a.state == Some(throughline_shared::AssetState::Down))
        .filter_map(|a| {
            let basis = a.return_basis.as_ref()?;
            let reason = basis.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            let back = match a.expected_return {
                Some(t) => format!("expected back {} ({})", clock(t, b.now), basis.text),
                None => basis.text.clone(),
            };
            Some(format!("{} down{reason} since {}, {back}", a.asset, clock(basis.down_since, b.now)))
        })
        .collect();
    if said.is_empty() {
        return String::new();
    }
    let more = said.len().saturating_sub(SUMMARY_DOWN_ASSETS);
    let mut text = format!(" Assumes {}", said[..said.len() - more].join("; "));
    if more > 0 {
        text += &format!("; and {more} more down");
    }
    text + "."
}

fn fmt_qty(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Assets listed in a gap or deviation alert's `details` (more only when
/// more are down); the full list is in `/api/v1/balance`.
pub const DETAIL_ASSETS: usize = 10;

/// The bucket's balance for an alert's `details`, its per-asset list cut to
/// what a planner acts on: every asset that is down and the
/// [`DETAIL_ASSETS`] with the most spare capacity. An alert is held in
/// memory and stored while it is unresolved, and a group may have hundreds
/// of assets. Up to [`DETAIL_ASSETS`] in all unless more are down.
fn bucket_details(b: &BucketBalance) -> AlertDetails {
    let mut picked: Vec<&crate::balance::Contribution> = b.assets.iter().collect();
    let down = |a: &&crate::balance::Contribution| a.state == Some(throughline_shared::AssetState::Down);
    picked.sort_by(|x, y| down(y).cmp(&down(x)).then(y.spare_rate.total_cmp(&x.spare_rate)));
    let keep = picked.iter().filter(|a| down(a)).count().max(DETAIL_ASSETS);
    picked.truncate(keep);
    let assets = picked.into_iter().cloned().collect();
    AlertDetails::Bucket {
        balance: Box::new(BucketBalance { assets, ..b.clone() }),
        assets_total: b.assets.len(),
    }
}

/// `schedule` (lines) or `dispatch` (feeders) for an open or future bucket.
pub fn gap(b: &BucketBalance, g: &GroupConfig, site: Option<&str>, is_open: bool) -> Option<Condition> {
    if b.phase == Phase::Closed || b.effective_demand <= 0.0 && b.kind == AssetKind::Line {
        return None;
    }
    let clear_at = g.shortfall_pct - g.hysteresis_pct;
    let gap_active = b.gap_pct > g.shortfall_pct || (is_open && b.gap_pct > clear_at);
    let unit = b.unit.as_str();
    let window = format!("{} – {}", hhmm(b.start), hhmm(b.end));
    let base = |kind: AlertKind, value: f64, threshold: f64, summary: String, action: String| Condition {
        key: AlertKey::Bucket { kind, group: b.group.clone(), start: b.start.timestamp() },
        kind,
        site: site.map(str::to_string),
        group: Some(b.group.clone()),
        asset: None,
        agent: None,
        bucket_start: Some(b.start),
        bucket_end: Some(b.end),
        value,
        threshold,
        summary,
        action,
        details: bucket_details(b),
        event_time: Some(b.now),
        hold: Hold::after(g.alert_after_secs),
    };
    match b.kind {
        AssetKind::Line => {
            if !gap_active {
                return None;
            }
            let summary = format!(
                "{} is projected {} {unit} ({:.1} %) short of {} for {window}: {} made, {} more expected at the current rate.{}",
                b.group,
                fmt_qty(b.gap),
                b.gap_pct,
                fmt_qty(b.effective_demand),
                fmt_qty(b.made),
                fmt_qty(b.projected - b.made),
                return_assumptions(b),
            );
            let mut options = Vec::new();
            if let Some(h) = b.extra_hours {
                let time =
                    if h < 1.0 { format!("{:.0} min", (h * 60.0).ceil()) } else { format!("{h:.1} h") };
                options.push(format!("add {time} at the current {} {unit}/h", fmt_qty(b.group_rate)));
            }
            let spares: Vec<String> = b
                .assets
                .iter()
                .filter(|a| a.spare_rate > 0.0)
                .map(|a| format!("{} (spare {} {unit}/h)", a.asset, fmt_qty(a.spare_rate)))
                .collect();
            if !spares.is_empty() && b.hours_left > 0.0 {
                let shift = (b.spare_rate * b.hours_left).min(b.gap);
                options.push(format!(
                    "shift up to {} {unit} to {} in the {:.1} h left",
                    fmt_qty(shift),
                    spares.join(", "),
                    b.hours_left
                ));
            }
            let down: Vec<String> = b
                .assets
                .iter()
                .filter(|a| a.state == Some(throughline_shared::AssetState::Down))
                .map(|a| a.asset.to_string())
                .collect();
            if !down.is_empty() {
                options.push(format!("bring {} back up", down.join(", ")));
            }
            if options.is_empty() {
                options.push("move demand to a later bucket or another group".into());
            }
            let mut action = options.join("; or ");
            if let Some(first) = action.get(..1) {
                action = first.to_uppercase() + &action[1..] + ".";
            }
            Some(base(AlertKind::Schedule, b.gap_pct, g.shortfall_pct, summary, action))
        }
        AssetKind::Feeder => {
            let overload = b.overload_kw;
            let load = b.load_kw.unwrap_or(0.0).max(b.peak_load_kw.unwrap_or(0.0));
            let overload_active =
                overload > 0.0 || (is_open && load > b.rated_total * (1.0 - g.hysteresis_pct / 100.0));
            if overload_active && (overload > 0.0 || is_open) {
                let summary = format!(
                    "{} is loaded at {} kW against a rated {} kW ({window}).",
                    b.group,
                    fmt_qty(load),
                    fmt_qty(b.rated_total)
                );
                let action = format!(
                    "Transfer at least {} kW from {} to another feeder or region now, or shed that much load.",
                    fmt_qty(overload.max(0.0)),
                    b.group
                );
                return Some(base(AlertKind::Dispatch, load, b.rated_total, summary, action));
            }
            if !gap_active || b.effective_demand <= 0.0 {
                return None;
            }
            let per_hour = if b.hours_left > 0.0 { b.gap / b.hours_left } else { b.gap };
            let summary = format!(
                "{} forecast needs {} kWh ({:.1} %) more than its rated capacity can deliver for {window}.{}",
                b.group,
                fmt_qty(b.gap),
                b.gap_pct,
                return_assumptions(b),
            );
            let action = format!(
                "Arrange {} kW of transfer or dispatch adjustment for the remaining {:.1} h, or {:.1} h at full rated capacity of another region.",
                fmt_qty(per_hour),
                b.hours_left,
                if b.rated_total > 0.0 { b.gap / b.rated_total } else { 0.0 }
            );
            Some(base(AlertKind::Dispatch, b.gap_pct, g.shortfall_pct, summary, action))
        }
    }
}

/// `forecast_deviation` for a closed bucket the aggregator saw from its
/// start (`observed_from` <= start), when |actual - forecast| / forecast is
/// above the threshold.
pub fn deviation(
    b: &BucketBalance,
    g: &GroupConfig,
    site: Option<&str>,
    observed_from: Option<DateTime<Utc>>,
) -> Option<Condition> {
    if b.phase != Phase::Closed || b.effective_demand <= 0.0 || observed_from.is_none_or(|t| t > b.start) {
        return None;
    }
    let dev = (b.made - b.effective_demand) / b.effective_demand * 100.0;
    if dev.abs() <= g.deviation_pct {
        return None;
    }
    let unit = b.unit.as_str();
    Some(Condition {
        key: AlertKey::Bucket {
            kind: AlertKind::ForecastDeviation,
            group: b.group.clone(),
            start: b.start.timestamp(),
        },
        kind: AlertKind::ForecastDeviation,
        site: site.map(str::to_string),
        group: Some(b.group.clone()),
        asset: None,
        agent: None,
        bucket_start: Some(b.start),
        bucket_end: Some(b.end),
        value: dev.abs(),
        threshold: g.deviation_pct,
        summary: format!(
            "{} made {} {unit} in {} – {} against a forecast of {} ({:+.1} %).",
            b.group,
            fmt_qty(b.made),
            hhmm(b.start),
            hhmm(b.end),
            fmt_qty(b.effective_demand),
            dev
        ),
        action: format!(
            "Review the forecast for buckets like this one: actual was {} {unit} {} plan.",
            fmt_qty((b.made - b.effective_demand).abs()),
            if dev > 0.0 { "above" } else { "below" }
        ),
        details: bucket_details(b),
        event_time: Some(b.now),
        hold: Hold::NONE,
    })
}

/// `downtime`: the asset is down now (its data is current at the latest event
/// time) and has been for longer than the threshold. Data replayed from an
/// edge buffer is not current, so a replayed old stop opens nothing.
pub fn downtime(
    a: &AssetLive,
    g: &GroupConfig,
    group_rate_loss: Option<f64>,
    watermark: DateTime<Utc>,
    current: bool,
    is_open: bool,
) -> Option<Condition> {
    let since = a.state_since?;
    if a.state != Some(throughline_shared::AssetState::Down) || !(current || is_open) {
        return None;
    }
    let minutes = hours_between(since, watermark) * 60.0;
    if minutes <= g.downtime_minutes && !is_open {
        return None;
    }
    let reason = a.reason.clone().unwrap_or_else(|| "no reason given".into());
    let loss = group_rate_loss
        .map(|r| {
            format!(
                " {} loses about {} {}/h while it is down.",
                g.id,
                fmt_qty(r),
                crate::model::Unit::of(g.kind).as_str()
            )
        })
        .unwrap_or_default();
    Some(Condition {
        key: AlertKey::Downtime { site: a.site.to_string(), asset: a.asset.to_string() },
        kind: AlertKind::Downtime,
        site: Some(a.site.to_string()),
        group: Some(g.id.clone()),
        asset: Some(a.asset.to_string()),
        agent: a.agent.as_ref().map(|x| x.to_string()),
        bucket_start: None,
        bucket_end: None,
        value: minutes,
        threshold: g.downtime_minutes,
        summary: format!("{} has been down for {:.0} min (reason: {reason}).{loss}", a.asset, minutes),
        action: format!(
            "Send maintenance to {} (reason `{reason}`); check the schedule of {} for the buckets it affects.",
            a.asset, g.id
        ),
        details: AlertDetails::Downtime { since, reason: a.reason.clone(), minutes, rate_loss_per_hour: group_rate_loss },
        event_time: Some(watermark),
        hold: Hold::NONE,
    })
}

/// `offline`: the agent's last will arrived (or it said goodbye), or it has
/// been silent longer than `offline_after`.
/// `assets` names the agent's assets, asked for only when it is offline.
pub fn offline(
    g: &AgentLive,
    offline_after: Duration,
    wall_now: DateTime<Utc>,
    assets: impl FnOnce() -> Vec<String>,
) -> Option<Condition> {
    let silent_for = g.last_message.map(|t| wall_now - t);
    let by_will = g.online == Some(false);
    let by_silence = silent_for.is_some_and(|d| d > offline_after);
    if !(by_will || by_silence) {
        return None;
    }
    let assets = assets();
    let how = if by_will {
        "its status says offline (last will or shutdown)".to_string()
    } else {
        format!("nothing heard for {} s", silent_for.map(|d| d.num_seconds()).unwrap_or_default())
    };
    Some(Condition {
        key: AlertKey::Offline { agent: g.agent.to_string() },
        kind: AlertKind::Offline,
        site: Some(g.site.to_string()),
        group: None,
        asset: None,
        agent: Some(g.agent.to_string()),
        bucket_start: None,
        bucket_end: None,
        value: silent_for.map(|d| d.num_seconds() as f64).unwrap_or(0.0),
        threshold: offline_after.num_seconds() as f64,
        summary: format!("Agent {} is offline: {how}. Assets without data: {}.", g.agent, assets.join(", ")),
        action: format!(
            "Check the gateway {} (power, network, broker credentials). Its assets count as producing nothing until it is back.",
            g.agent
        ),
        details: AlertDetails::Offline { last_message: g.last_message, online: g.online, assets },
        event_time: None,
        hold: Hold::NONE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::book::AlertBook;
    use crate::alert::AlertChange;
    use crate::balance::{balance, AssetPlan};
    use crate::model::{ForecastRow, Unit};
    use chrono::TimeZone;
    use throughline_shared::{AssetId, AssetState, SiteId};

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::minutes(min)
    }

    /// A one-line group 4 h into an 8 h bucket with 400 made at 100/h:
    /// supply 800; demand chosen to give the wanted gap %.
    fn bucket_with_gap(gap_pct: f64) -> BucketBalance {
        let g = GroupConfig::with_defaults("family-a", AssetKind::Line);
        let demand = 800.0 / (1.0 - gap_pct / 100.0);
        let f = ForecastRow {
            group: g.id.clone(),
            start: t(0),
            end: t(480),
            demand,
            unit: Unit::Pieces,
            uplift_pct: 0.0,
        };
        let a = AssetPlan {
            site: SiteId::parse("s").unwrap(),
            asset: AssetId::parse("a").unwrap(),
            rated: 120.0,
            state: Some(AssetState::Running),
            as_of: None,
            made: 400.0,
            rate_running: Some(100.0),
            availability: 1.0,
            load_kw: None,
            peak_kw: None,
            expected_return: None,
            return_basis: None,
        };
        balance(&g, &f, &[a], t(240))
    }

    #[test]
    fn details_list_the_down_assets_then_the_most_spare_capacity() {
        let g = GroupConfig::with_defaults("family-a", AssetKind::Line);
        let f = ForecastRow {
            group: g.id.clone(),
            start: t(0),
            end: t(480),
            demand: 1_000_000.0,
            unit: Unit::Pieces,
            uplift_pct: 0.0,
        };
        let plans: Vec<AssetPlan> = (0..30)
            .map(|i| AssetPlan {
                site: SiteId::parse("s").unwrap(),
                asset: AssetId::parse(format!("a{i}")).unwrap(),
                rated: 100.0 + i as f64,
                state: Some(if i % 10 == 3 { AssetState::Down } else { AssetState::Running }),
                as_of: None,
                made: 0.0,
                rate_running: Some(100.0),
                availability: 1.0,
                load_kw: None,
                peak_kw: None,
                expected_return: None,
                return_basis: None,
            })
            .collect();
        let b = balance(&g, &f, &plans, t(60));
        let c = gap(&b, &g, Some("s"), false).expect("far short");
        let details = serde_json::to_value(&c.details).unwrap();
        let listed: Vec<&str> =
            details["assets"].as_array().unwrap().iter().map(|a| a["asset"].as_str().unwrap()).collect();
        // a3, a13, a23 are down; then the largest spare rates (rated - 100).
        assert_eq!(listed, ["a3", "a13", "a23", "a29", "a28", "a27", "a26", "a25", "a24", "a22"]);
        assert_eq!(details["assets_total"], 30);
        assert_eq!(details["gap"], serde_json::json!(b.gap), "the bucket's numbers are kept");
        // Stored and read back (a restart), the details are the same.
        let back: AlertDetails = serde_json::from_value(details).unwrap();
        assert_eq!(back, c.details);
    }

    #[test]
    fn schedule_alert_numbers_and_action() {
        let g = GroupConfig::with_defaults("family-a", AssetKind::Line);
        let b = bucket_with_gap(20.0);
        let c = gap(&b, &g, Some("s"), false).expect("20 % short is over the 5 % threshold");
        assert_eq!(c.kind, AlertKind::Schedule);
        assert!((c.value - 20.0).abs() < 1e-9);
        // 200 short at 100/h: 2 extra hours; 20/h spare for 4 h = 80 to shift.
        assert!((b.extra_hours.unwrap() - 2.0).abs() < 1e-9);
        assert!(
            c.action.contains("add 2.0 h at the current 100 pieces/h") || c.action.contains("Add 2.0 h"),
            "{}",
            c.action
        );
        assert!(c.action.contains("shift up to 80.0 pieces to a (spare 20.0 pieces/h)"), "{}", c.action);
        assert!(gap(&bucket_with_gap(4.0), &g, Some("s"), false).is_none());
    }

    #[test]
    fn a_value_hovering_at_the_threshold_opens_one_alert() {
        // Hysteresis alone: every evaluation is at the same event time, so
        // no debounce (alert_after_secs = 0); the debounce has its own tests.
        let g =
            GroupConfig { alert_after_secs: 0, ..GroupConfig::with_defaults("family-a", AssetKind::Line) };
        let mut book = AlertBook::default();
        let mut opened = 0;
        let mut resolved = 0;
        // Threshold 5 %, hysteresis 2 points: hovering between 4 and 6 keeps
        // the one alert; only falling below 3 % resolves it.
        for pct in [4.9, 5.1, 4.95, 5.05, 4.0, 6.0, 3.1, 5.2, 4.99, 2.9, 4.9, 4.97] {
            let b = bucket_with_gap(pct);
            let key = AlertKey::Bucket {
                kind: AlertKind::Schedule,
                group: "family-a".into(),
                start: b.start.timestamp(),
            };
            let conds: Vec<_> = gap(&b, &g, Some("s"), book.is_open(&key)).into_iter().collect();
            for e in book.apply(conds, Utc::now()).events {
                match e.event {
                    AlertChange::Opened => opened += 1,
                    AlertChange::Resolved => resolved += 1,
                    AlertChange::Acknowledged => {}
                }
            }
        }
        assert_eq!((opened, resolved), (1, 1), "one alert for the hovering, resolved once below 3 %");
    }

    #[test]
    fn a_schedule_alert_says_what_it_assumed_for_each_down_asset() {
        use crate::stops::{expected_return, Stop, StopLog};
        let g = GroupConfig::with_defaults("family-a", AssetKind::Line);
        let f = ForecastRow {
            group: g.id.clone(),
            start: t(0),
            end: t(480),
            demand: 2000.0,
            unit: Unit::Pieces,
            uplift_pct: 0.0,
        };
        // press-2: seven jams of 5 to 9 minutes before it went down at
        // 10:02; press-3 down without any history.
        let jams = StopLog::from_stops(
            [5, 6, 7, 7, 7, 8, 9]
                .iter()
                .enumerate()
                .map(|(i, m)| Stop {
                    reason: Some("jam".into()),
                    start: t(i as i64 * 15),
                    secs: *m as f64 * 60.0,
                })
                .collect(),
        );
        let now = t(124);
        let plan = |id: &str, state, made, since: i64, stops: &StopLog| {
            let r = (state == AssetState::Down)
                .then(|| expected_return(stops, Some("jam"), t(since), now, Duration::hours(8), None));
            AssetPlan {
                site: SiteId::parse("s").unwrap(),
                asset: AssetId::parse(id).unwrap(),
                rated: 120.0,
                state: Some(state),
                as_of: None,
                made,
                rate_running: Some(100.0),
                availability: 1.0,
                load_kw: None,
                peak_kw: None,
                expected_return: r.as_ref().and_then(|r| r.at),
                return_basis: r.map(|r| r.basis),
            }
        };
        let plans = [
            plan("press-1", AssetState::Running, 200.0, 0, &StopLog::default()),
            plan("press-2", AssetState::Down, 200.0, 122, &jams),
            plan("press-3", AssetState::Down, 200.0, 100, &StopLog::default()),
        ];
        let b = balance(&g, &f, &plans, now);
        let c = gap(&b, &g, Some("s"), false).expect("short");
        assert!(
            c.summary.ends_with(
                " Assumes press-2 down (jam) since 10:02 UTC, expected back 10:09 UTC \
                 (median of 7 jam stops in the last 8 h: 7 min); press-3 down (jam) since 09:40 UTC, \
                 no repair history: projected at zero for the rest of the bucket."
            ),
            "{}",
            c.summary
        );
        // The same in the details, per asset, as the balance API has it.
        let d = serde_json::to_value(&c.details).unwrap();
        let p2 = d["assets"].as_array().unwrap().iter().find(|a| a["asset"] == "press-2").unwrap();
        assert_eq!(p2["expected_return"], "2026-11-23T10:09:00Z", "{p2}");
        assert_eq!(p2["return_basis"]["rule"], "reason_median", "{p2}");
        assert_eq!(p2["return_basis"]["stops"], 7, "{p2}");
        let p1 = d["assets"].as_array().unwrap().iter().find(|a| a["asset"] == "press-1").unwrap();
        assert!(p1["expected_return"].is_null() && p1["return_basis"].is_null(), "{p1}");
        // Details stored before these fields existed still read.
        let mut old = d.clone();
        for a in old["assets"].as_array_mut().unwrap() {
            let a = a.as_object_mut().unwrap();
            a.remove("expected_return");
            a.remove("return_basis");
        }
        assert!(serde_json::from_value::<AlertDetails>(old).is_ok());
    }

    #[test]
    fn downtime_needs_current_data() {
        let g =
            GroupConfig { downtime_minutes: 15.0, ..GroupConfig::with_defaults("family-a", AssetKind::Line) };
        let mut st = crate::state::LiveState::new(&[], Duration::seconds(300));
        let tel = throughline_shared::codec::Telemetry {
            site: SiteId::parse("s").unwrap(),
            asset: AssetId::parse("a").unwrap(),
            envelope: throughline_shared::Envelope {
                v: 1,
                agent: throughline_shared::AgentId::parse("gw").unwrap(),
                seq: 1,
                samples: (0..=60)
                    .map(|m| throughline_shared::Sample {
                        state: Some(AssetState::Down),
                        reason: Some("jam".into()),
                        ..throughline_shared::Sample::at(t(m))
                    })
                    .collect(),
            },
        };
        st.apply_telemetry(&tel, t(60));
        let a = st.assets().next().unwrap();
        let live = downtime(a, &g, Some(100.0), t(60), true, false).expect("down 60 min, data current");
        assert!(live.summary.contains("60 min") && live.summary.contains("jam"), "{}", live.summary);
        assert!(downtime(a, &g, Some(100.0), t(60), false, false).is_none(), "replayed old stop: no alert");
    }
}
