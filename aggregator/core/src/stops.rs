//! An asset's recent stops, and the repair time they suggest for the stop
//! under way. Pure: event time only.
//!
//! Live state records every `down` stop of an asset when it ends (the
//! asset reports another state): its reason, start and length in event
//! time ([`StopLog`], at most [`MAX_STOPS`], pruned by the availability
//! window). The projection asks [`expected_return`] when an asset is down
//! now, and projects it back at the returned time instead of at zero for
//! the rest of the bucket.
//!
//! # The repair-time rule
//!
//! An asset down since `T` with reason `R`, at event time `now`
//! (`elapsed = now − T`), over the stops that ended in the last `window`:
//!
//! 1. Its stops with reason `R` (a stop without a reason matches stops
//!    without one); if it has none, all its stops.
//! 2. Of those, the ones that lasted at least `elapsed`: a stop already
//!    down 6 min is no longer like the 2-minute ones. Expected back at
//!    `T + median(their lengths)` (the mean of the two middle ones for an
//!    even count), never before `now`. At `elapsed` 0 that is the median of
//!    all of them.
//! 3. None lasted that long: it is longer than anything in its history,
//!    so nothing is known: zero for the rest of the bucket.
//! 4. No stops in the window: the group's `default_repair_minutes` if set
//!    and not yet exceeded (back at `T + default`), else zero for the rest
//!    of the bucket, as before this rule.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Most stops remembered per asset (40 micro-stops a shift are 120 a day).
pub const MAX_STOPS: usize = 256;

/// One `down` stop that has ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// The reason the asset last gave while down.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it went down (event time).
    pub start: DateTime<Utc>,
    /// How long it stayed down, seconds of event time.
    pub secs: f64,
}

impl Stop {
    /// When it reported another state.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::milliseconds((self.secs * 1000.0).round() as i64)
    }
}

/// An asset's recent stops, oldest first: at most [`MAX_STOPS`], none that
/// ended more than the window before the newest one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StopLog {
    stops: VecDeque<Stop>,
}

impl StopLog {
    /// A log of `stops` (read back after a restart), the newest
    /// [`MAX_STOPS`] of them.
    pub fn from_stops(stops: Vec<Stop>) -> StopLog {
        let mut log = StopLog { stops: stops.into() };
        while log.stops.len() > MAX_STOPS {
            log.stops.pop_front();
        }
        log
    }

    /// Note a stop that has just ended; forget those that ended more than
    /// `keep` before it, and the oldest beyond [`MAX_STOPS`].
    pub fn record(&mut self, stop: Stop, keep: Duration) {
        let horizon = stop.end() - keep;
        self.stops.push_back(stop);
        while self.stops.len() > MAX_STOPS || self.stops.front().is_some_and(|s| s.end() < horizon) {
            self.stops.pop_front();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Stop> {
        self.stops.iter()
    }

    pub fn len(&self) -> usize {
        self.stops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }
}

/// Which step of the rule gave an asset's expected return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnRule {
    /// The median of its stops with the same reason.
    ReasonMedian,
    /// The median of all its stops (none with this reason).
    AllStopsMedian,
    /// The group's `default_repair_minutes` (no stops in the window).
    Default,
    /// Down longer than every stop it was compared with, or than the
    /// default: zero for the rest of the bucket.
    Exceeded,
    /// No stops in the window and no default: zero for the rest of the
    /// bucket.
    NoHistory,
}

/// How a down asset's return was projected: what a planner needs to judge
/// the assumption (`return_basis` in balances and alerts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnBasis {
    pub rule: ReturnRule,
    /// The stop's reason.
    pub reason: Option<String>,
    /// When it went down.
    pub down_since: DateTime<Utc>,
    /// How many stops the median was taken over (0 without one).
    pub stops: usize,
    /// The stop length assumed, seconds (none: unknown, zero for the rest).
    pub repair_secs: Option<f64>,
    /// The assumption in words: "median of 7 jam stops in the last 8 h: 7 min".
    pub text: String,
}

/// A down asset's expected return: `at` none when it is projected at zero
/// for the rest of the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Return {
    pub at: Option<DateTime<Utc>>,
    pub basis: ReturnBasis,
}

/// When an asset down since `since` with `reason` is expected back, at
/// event time `now`, from its `stops` that ended in the last `window`, or
/// `default` without any (the rule in the module docs).
pub fn expected_return(
    stops: &StopLog,
    reason: Option<&str>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    window: Duration,
    default: Option<Duration>,
) -> Return {
    let elapsed = secs(now - since).max(0.0);
    let recent: Vec<&Stop> = stops.iter().filter(|s| s.end() > now - window && s.end() <= now).collect();
    let same: Vec<f64> = recent.iter().filter(|s| s.reason.as_deref() == reason).map(|s| s.secs).collect();
    let (rule, pool) = if !same.is_empty() {
        (ReturnRule::ReasonMedian, same)
    } else {
        (ReturnRule::AllStopsMedian, recent.iter().map(|s| s.secs).collect())
    };
    let in_window = format!("in the last {}", span(secs(window)));
    // "7 jam stops", "1 stop without a reason", "5 stops".
    let what = |n: usize| {
        let s = if n == 1 { "stop" } else { "stops" };
        match (rule, reason) {
            (ReturnRule::ReasonMedian, Some(r)) => format!("{n} {r} {s}"),
            (ReturnRule::ReasonMedian, None) => format!("{n} {s} without a reason"),
            _ => format!("{n} {s}"),
        }
    };
    let basis = |rule, stops, repair_secs, text| ReturnBasis {
        rule,
        reason: reason.map(str::to_string),
        down_since: since,
        stops,
        repair_secs,
        text,
    };
    if pool.is_empty() {
        return match default.map(secs) {
            Some(d) if d >= elapsed => Return {
                at: Some(since + Duration::milliseconds((d * 1000.0).round() as i64)),
                basis: basis(
                    ReturnRule::Default,
                    0,
                    Some(d),
                    format!("no repair history: the group's default repair time, {}", span(d)),
                ),
            },
            Some(d) => Return {
                at: None,
                basis: basis(
                    ReturnRule::Exceeded,
                    0,
                    None,
                    format!(
                        "no repair history and down longer than the default repair time ({}): \
                         projected at zero for the rest of the bucket",
                        span(d)
                    ),
                ),
            },
            None => Return {
                at: None,
                basis: basis(
                    ReturnRule::NoHistory,
                    0,
                    None,
                    "no repair history: projected at zero for the rest of the bucket".into(),
                ),
            },
        };
    }
    let all = pool.len();
    let mut longer: Vec<f64> = pool.into_iter().filter(|d| *d >= elapsed).collect();
    let others = if rule == ReturnRule::AllStopsMedian {
        match reason {
            Some(r) => format!(" (none for {r})"),
            None => " (none without a reason)".to_string(),
        }
    } else {
        String::new()
    };
    let Some(median) = median(&mut longer) else {
        return Return {
            at: None,
            basis: basis(
                ReturnRule::Exceeded,
                0,
                None,
                format!(
                    "down longer than {} {in_window}{others}: projected at zero for the rest of the bucket",
                    if all == 1 {
                        format!("its only {}", what(1))
                    } else {
                        format!("any of its {}", what(all))
                    }
                ),
            ),
        };
    };
    let of = if longer.len() == all {
        format!("median of {} {in_window}{others}", what(all))
    } else {
        format!(
            "median of the {} of {} {in_window}{others} that lasted at least {}",
            longer.len(),
            what(all),
            span(elapsed)
        )
    };
    let at = (since + Duration::milliseconds((median * 1000.0).round() as i64)).max(now);
    Return { at: Some(at), basis: basis(rule, longer.len(), Some(median), format!("{of}: {}", span(median))) }
}

fn secs(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The median of `xs` (reordered), the mean of the middle two for an even
/// count.
fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 })
}

/// A length in words: seconds under 2 min, minutes under 90 min, else
/// hours ("40 s", "5 min", "2.5 min", "8 h").
pub fn span(secs: f64) -> String {
    let (x, unit) = if secs < 120.0 {
        return format!("{secs:.0} s");
    } else if secs < 5400.0 {
        (secs / 60.0, "min")
    } else {
        (secs / 3600.0, "h")
    };
    if (x - x.round()).abs() < 0.05 {
        format!("{x:.0} {unit}")
    } else {
        format!("{x:.1} {unit}")
    }
}

#[cfg(test)]
mod tests;
