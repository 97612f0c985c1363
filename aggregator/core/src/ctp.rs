//! Capable-to-promise (pure): sales asks "can we deliver `quantity` by `due`?",
//! and the answer holds the order against live capacity and demand already
//! promised.
//!
//! # Model
//!
//! - From `now`, a capacity group produces at a constant projected rate
//!   `rate_per_hour` (units per hour; the caller derives it from live capacity).
//!   Capacity before `now` is gone.
//! - Demand already promised (forecast buckets with their effective demand, and
//!   reservations) is a list of [`DemandBucket`]s. Each consumes its quantity
//!   uniformly over `[start, end)`: its demand rate is `quantity / hours`.
//!   Buckets may overlap (a reservation inside a forecast bucket); their demand
//!   rates add up. A bucket partly in the past only consumes its remaining part,
//!   at the same rate (demand rate x remaining hours).
//! - The free rate at time `t` is `max(0, rate_per_hour - sum of the demand
//!   rates of the buckets containing t)`: free rate is never negative, so an
//!   over-committed stretch neither yields capacity nor borrows it from
//!   elsewhere.
//! - The earliest completion time `T` for `quantity` is the smallest `T >= now`
//!   with `integral of the free rate over [now, T] >= quantity`. The search
//!   stops at `horizon`: capacity beyond it is not planned, so an order that
//!   needs it is not achievable, and `available_by_due` counts free capacity
//!   only up to `min(due, horizon)`.
//!
//! Free rate is piecewise constant between the boundary times (`now`, every
//! bucket edge after `now`, `due`, `horizon`), so the search walks those
//! segments, accumulating free capacity, and solves linearly for `T` inside the
//! segment where the running total reaches `quantity`. Times are millisecond
//! precision (as [`hours_between`]); quantities are not rounded.
//!
//! Degenerate inputs never panic: buckets with `end <= start`, or a quantity
//! that is NaN or not positive, are ignored (an infinite bucket quantity blocks
//! its interval); a rate that is not a positive finite number means no
//! capacity; a NaN order quantity is never achievable; `quantity <= 0` is
//! always feasible at `now`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::model::hours_between;

/// Demand already promised on a capacity group: `quantity` units consumed
/// uniformly over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemandBucket {
    /// Start of the bucket (inclusive).
    pub start: DateTime<Utc>,
    /// End of the bucket (exclusive).
    pub end: DateTime<Utc>,
    /// Units consumed over the bucket (effective demand, or a reservation).
    pub quantity: f64,
}

/// A capable-to-promise question for one capacity group.
#[derive(Debug, Clone)]
pub struct CtpInput {
    /// The present: capacity before it is gone.
    pub now: DateTime<Utc>,
    /// Projected production rate from `now` on, units per hour.
    pub rate_per_hour: f64,
    /// Demand already promised (forecasts and reservations); may overlap.
    pub demand: Vec<DemandBucket>,
    /// Units the order asks for.
    pub quantity: f64,
    /// When the order must be complete.
    pub due: DateTime<Utc>,
    /// End of the search: capacity beyond it is not planned.
    pub horizon: DateTime<Utc>,
}

/// One stretch of time the order would use, with how much it takes there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consumed {
    /// Start of the stretch.
    pub start: DateTime<Utc>,
    /// End of the stretch.
    pub end: DateTime<Utc>,
    /// Units of the order produced in the stretch.
    pub quantity: f64,
}

/// The answer to a [`CtpInput`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CtpAnswer {
    /// Complete by `due`.
    pub feasible: bool,
    /// Earliest completion time, None if not achievable before the horizon.
    pub earliest: Option<DateTime<Utc>>,
    /// Free capacity between now and due (what could be promised by due),
    /// counted up to the horizon at most.
    pub available_by_due: f64,
    /// The stretches the order would consume, in time order: split at every
    /// bucket edge and at `now`, covering [now, earliest]; stretches with zero
    /// free capacity omitted; quantities sum to `quantity` (when achievable).
    /// Empty when the quantity is not positive or not achievable.
    pub consumed: Vec<Consumed>,
}

/// A usable demand bucket: its edges and demand rate (units per hour).
#[derive(Debug, Clone, Copy)]
struct Load {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    rate: f64,
}

/// Answer "can we deliver `input.quantity` by `input.due`?" under the model in
/// the module documentation.
pub fn capable_to_promise(input: &CtpInput) -> CtpAnswer {
    let now = input.now;
    let horizon = input.horizon;
    let due = input.due;
    let quantity = input.quantity;
    let rate =
        if input.rate_per_hour.is_finite() && input.rate_per_hour > 0.0 { input.rate_per_hour } else { 0.0 };
    // NaN compares false: a NaN quantity is wanted but never reached.
    let trivial = quantity <= 0.0;

    let mut loads: Vec<Load> = input
        .demand
        .iter()
        .filter_map(|b| {
            let hours = hours_between(b.start, b.end);
            let usable = hours > 0.0 && b.quantity > 0.0 && b.end > now && b.start < horizon;
            usable.then(|| Load { start: b.start, end: b.end, rate: b.quantity / hours })
        })
        .collect();
    loads.sort_by_key(|l| l.start);

    let mut edges: Vec<DateTime<Utc>> = Vec::with_capacity(2 * loads.len() + 3);
    if horizon > now {
        edges.push(now);
        edges.push(horizon);
        if due > now && due < horizon {
            edges.push(due);
        }
        for l in &loads {
            if l.start > now {
                edges.push(l.start);
            }
            if l.end < horizon {
                edges.push(l.end);
            }
        }
        edges.sort();
        edges.dedup();
    }

    let mut available_by_due = 0.0;
    let mut earliest = trivial.then_some(now);
    let mut consumed = Vec::new();
    let mut acc = 0.0;
    let mut active: Vec<Load> = Vec::new();
    let mut next = 0;
    for w in edges.windows(2) {
        let (a, b) = (w[0], w[1]);
        // Every bucket edge in (now, horizon) is a boundary, so each bucket
        // covers a segment entirely or not at all.
        let before = active.len();
        active.retain(|l| l.end > a);
        // `a` is a bucket edge if a bucket ends or starts there.
        let mut bucket_edge = active.len() < before;
        while let Some(l) = loads.get(next).filter(|l| l.start <= a) {
            bucket_edge |= l.start == a;
            if l.end > a {
                active.push(*l);
            }
            next += 1;
        }
        // Stretches are split at bucket edges only, not at `due`.
        let merge = a > now && !bucket_edge;
        let demand: f64 = active.iter().map(|l| l.rate).sum();
        let free = (rate - demand).max(0.0);
        let cap = free * hours_between(a, b);
        // `due` is a boundary, so a segment lies wholly before or after it.
        if b <= due {
            available_by_due += cap;
        }
        if earliest.is_none() && cap > 0.0 {
            if acc + cap >= quantity {
                let need = quantity - acc;
                let seg_ms = (b - a).num_milliseconds() as f64;
                let ms = (need / free * 3_600_000.0).round().clamp(0.0, seg_ms);
                let t = TimeDelta::try_milliseconds(ms as i64)
                    .and_then(|d| a.checked_add_signed(d))
                    .map_or(b, |t| t.min(b));
                push_stretch(&mut consumed, Consumed { start: a, end: t, quantity: need }, merge);
                earliest = Some(t);
            } else {
                push_stretch(&mut consumed, Consumed { start: a, end: b, quantity: cap }, merge);
                acc += cap;
            }
        }
        if earliest.is_some() && b >= due {
            break;
        }
    }
    if earliest.is_none() {
        consumed.clear();
    }
    let feasible = trivial || earliest.is_some_and(|t| t <= due);
    CtpAnswer { feasible, earliest, available_by_due, consumed }
}

/// Append `s`, or extend the last stretch with it when `merge` and they touch.
fn push_stretch(consumed: &mut Vec<Consumed>, s: Consumed, merge: bool) {
    match consumed.last_mut() {
        Some(last) if merge && last.end == s.start => {
            last.end = s.end;
            last.quantity += s.quantity;
        }
        _ => consumed.push(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, 8, 0, 0).unwrap()
    }

    /// `now() + h` hours.
    fn t(h: f64) -> DateTime<Utc> {
        now() + TimeDelta::milliseconds((h * 3_600_000.0).round() as i64)
    }

    fn bucket(from_h: f64, to_h: f64, quantity: f64) -> DemandBucket {
        DemandBucket { start: t(from_h), end: t(to_h), quantity }
    }

    fn input(rate: f64, demand: Vec<DemandBucket>, quantity: f64, due_h: f64) -> CtpInput {
        CtpInput {
            now: now(),
            rate_per_hour: rate,
            demand,
            quantity,
            due: t(due_h),
            horizon: t(366.0 * 24.0),
        }
    }

    fn stretch(from_h: f64, to_h: f64, quantity: f64) -> Consumed {
        Consumed { start: t(from_h), end: t(to_h), quantity }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn assert_stretches(got: &[Consumed], want: &[Consumed]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.start, g.end), (w.start, w.end), "{got:?} vs {want:?}");
            assert!(close(g.quantity, w.quantity), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn no_demand() {
        let a = capable_to_promise(&input(40.0, vec![], 100.0, 3.0));
        assert!(a.feasible);
        assert_eq!(a.earliest, Some(t(2.5)));
        assert!(close(a.available_by_due, 120.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 2.5, 100.0)]);
    }

    #[test]
    fn forecast_halves_free_rate() {
        // 500 over 10 h = 50/h of 100/h.
        let a = capable_to_promise(&input(100.0, vec![bucket(0.0, 10.0, 500.0)], 200.0, 10.0));
        assert!(a.feasible);
        assert_eq!(a.earliest, Some(t(4.0)));
        assert!(close(a.available_by_due, 500.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 4.0, 200.0)]);
        // Past the bucket the full rate is free again: 500 by 10 h, then 100/h.
        let a = capable_to_promise(&input(100.0, vec![bucket(0.0, 10.0, 500.0)], 700.0, 11.0));
        assert!(!a.feasible);
        assert_eq!(a.earliest, Some(t(12.0)));
        assert!(close(a.available_by_due, 600.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 10.0, 500.0), stretch(10.0, 12.0, 200.0)]);
    }

    #[test]
    fn bucket_taking_all_capacity_is_skipped() {
        let a = capable_to_promise(&input(100.0, vec![bucket(1.0, 3.0, 200.0)], 150.0, 4.0));
        assert!(a.feasible);
        assert_eq!(a.earliest, Some(t(3.5)));
        assert!(close(a.available_by_due, 200.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 1.0, 100.0), stretch(3.0, 3.5, 50.0)]);
        assert!(a.consumed.iter().all(|c| c.end <= t(1.0) || c.start >= t(3.0)));
        // Over-committed (demand 150/h > 100/h): free rate 0, not negative.
        let a = capable_to_promise(&input(100.0, vec![bucket(1.0, 3.0, 300.0)], 150.0, 4.0));
        assert_eq!(a.earliest, Some(t(3.5)));
        assert!(close(a.available_by_due, 200.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 1.0, 100.0), stretch(3.0, 3.5, 50.0)]);
    }

    #[test]
    fn bucket_partly_in_the_past() {
        // 400 over [-2 h, 2 h) = 100/h; only the 200 after now counts.
        let a = capable_to_promise(&input(200.0, vec![bucket(-2.0, 2.0, 400.0)], 300.0, 3.0));
        assert!(a.feasible);
        assert_eq!(a.earliest, Some(t(2.5)));
        assert!(close(a.available_by_due, 400.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 2.0, 200.0), stretch(2.0, 2.5, 100.0)]);
        // Wholly in the past: no effect.
        let a = capable_to_promise(&input(200.0, vec![bucket(-5.0, -1.0, 4000.0)], 300.0, 3.0));
        assert_eq!(a.earliest, Some(t(1.5)));
        assert_stretches(&a.consumed, &[stretch(0.0, 1.5, 300.0)]);
    }

    #[test]
    fn overlapping_buckets_add_up() {
        // Forecast 60/h over 10 h, reservation 40/h over [2 h, 4 h): free 40, 0, 40.
        let demand = vec![bucket(0.0, 10.0, 600.0), bucket(2.0, 4.0, 80.0)];
        let a = capable_to_promise(&input(100.0, demand, 100.0, 5.0));
        assert!(a.feasible);
        assert_eq!(a.earliest, Some(t(4.5)));
        assert!(close(a.available_by_due, 120.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 2.0, 80.0), stretch(4.0, 4.5, 20.0)]);
        // Reservation inside, half the rate: free 40, 20, 40; split at both edges.
        let demand = vec![bucket(2.0, 4.0, 40.0), bucket(0.0, 10.0, 600.0)];
        let a = capable_to_promise(&input(100.0, demand, 150.0, 3.0));
        assert!(!a.feasible);
        assert_eq!(a.earliest, Some(t(4.75)));
        assert!(close(a.available_by_due, 100.0));
        assert_stretches(
            &a.consumed,
            &[stretch(0.0, 2.0, 80.0), stretch(2.0, 4.0, 40.0), stretch(4.0, 4.75, 30.0)],
        );
    }

    #[test]
    fn infeasible_by_due_but_feasible_later() {
        let a = capable_to_promise(&input(10.0, vec![], 100.0, 5.0));
        assert!(!a.feasible);
        assert_eq!(a.earliest, Some(t(10.0)));
        assert!(close(a.available_by_due, 50.0));
        assert_stretches(&a.consumed, &[stretch(0.0, 10.0, 100.0)]);
    }

    #[test]
    fn exactly_available_by_due_is_feasible() {
        let a = capable_to_promise(&input(10.0, vec![bucket(1.0, 2.0, 5.0)], 45.0, 5.0));
        assert!(close(a.available_by_due, 45.0));
        assert!(a.feasible);
        assert_eq!(a.earliest, Some(t(5.0)));
    }

    #[test]
    fn never_feasible_within_horizon() {
        let mut i = input(10.0, vec![], 1000.0, 48.0);
        i.horizon = t(24.0);
        let a = capable_to_promise(&i);
        assert!(!a.feasible);
        assert_eq!(a.earliest, None);
        assert!(a.consumed.is_empty());
        // Free capacity past the horizon is not counted.
        assert!(close(a.available_by_due, 240.0));
        // Zero rate: nothing is ever achievable.
        let a = capable_to_promise(&input(0.0, vec![], 1.0, 48.0));
        assert_eq!((a.feasible, a.earliest, a.available_by_due), (false, None, 0.0));
        assert!(a.consumed.is_empty());
        // All capacity taken until the horizon.
        let a = capable_to_promise(&input(10.0, vec![bucket(0.0, 400.0 * 24.0, 1e9)], 1.0, 48.0));
        assert_eq!((a.feasible, a.earliest, a.available_by_due), (false, None, 0.0));
    }

    #[test]
    fn quantity_zero_or_negative() {
        for q in [0.0, -5.0, f64::NEG_INFINITY] {
            for rate in [0.0, 10.0] {
                let a = capable_to_promise(&input(rate, vec![], q, 5.0));
                assert!(a.feasible);
                assert_eq!(a.earliest, Some(now()));
                assert!(a.consumed.is_empty());
                assert!(close(a.available_by_due, rate * 5.0));
            }
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let far_past = DateTime::<Utc>::MIN_UTC;
        let far_future = DateTime::<Utc>::MAX_UTC;
        let odd_buckets = [
            bucket(5.0, 5.0, 10.0),
            bucket(6.0, 4.0, 10.0),
            bucket(1.0, 2.0, f64::NAN),
            bucket(1.0, 2.0, -50.0),
            bucket(1.0, 2.0, 0.0),
            DemandBucket { start: far_past, end: far_future, quantity: 1.0 },
            DemandBucket { start: far_future, end: far_past, quantity: 1.0 },
        ];
        let times = [far_past, t(-10.0), now(), t(3.0), far_future];
        let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, 1e-300, 7.0, 1e300];
        for &due in &times {
            for &horizon in &times {
                for &rate in &values {
                    for &quantity in &values {
                        for n in [0, 1, odd_buckets.len()] {
                            let i = CtpInput {
                                now: now(),
                                rate_per_hour: rate,
                                demand: odd_buckets[..n].to_vec(),
                                quantity,
                                due,
                                horizon,
                            };
                            let a = capable_to_promise(&i);
                            assert!(a.available_by_due >= 0.0, "{i:?} {a:?}");
                            if let Some(e) = a.earliest {
                                assert!(e >= now(), "{i:?} {a:?}");
                            }
                        }
                    }
                }
            }
        }
        // An infinite bucket blocks its interval.
        let a = capable_to_promise(&input(10.0, vec![bucket(0.0, 2.0, f64::INFINITY)], 5.0, 5.0));
        assert_eq!(a.earliest, Some(t(2.5)));
        // Ignored buckets have no effect.
        let a = capable_to_promise(&input(10.0, odd_buckets[..5].to_vec(), 25.0, 5.0));
        assert_eq!(a.earliest, Some(t(2.5)));
    }

    /// splitmix64: a tiny deterministic PRNG for the random cases.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform integer in [lo, hi].
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
        }

        fn chance(&mut self, p: f64) -> bool {
            self.unit() < p
        }
    }

    /// Brute force result: completion minute (end of the minute in which the
    /// running total reaches the quantity), free capacity before `due` and
    /// within the horizon, and total free capacity up to the horizon.
    struct Brute {
        completion_min: Option<i64>,
        available_by_due: f64,
        total: f64,
    }

    /// Independent simulation: step minute by minute from `now` to the
    /// horizon, free rate taken at each minute's midpoint (all edges are on
    /// whole minutes relative to `now`).
    fn brute_force(i: &CtpInput) -> Brute {
        let minutes = (i.horizon - i.now).num_minutes().max(0);
        let due_min = (i.due - i.now).num_minutes();
        let buckets: Vec<(DateTime<Utc>, DateTime<Utc>, f64)> = i
            .demand
            .iter()
            .filter(|b| b.end > b.start && b.quantity > 0.0)
            .map(|b| {
                let hours = (b.end - b.start).num_minutes() as f64 / 60.0;
                (b.start, b.end, b.quantity / hours)
            })
            .collect();
        let mut out = Brute { completion_min: None, available_by_due: 0.0, total: 0.0 };
        for m in 0..minutes {
            let mid = i.now + TimeDelta::seconds(m * 60 + 30);
            let demand: f64 =
                buckets.iter().filter(|(s, e, _)| *s <= mid && mid < *e).map(|(_, _, r)| r).sum();
            let free = (i.rate_per_hour - demand).max(0.0) / 60.0;
            if m < due_min {
                out.available_by_due += free;
            }
            out.total += free;
            if out.completion_min.is_none() && out.total >= i.quantity {
                out.completion_min = Some(m + 1);
            }
        }
        out
    }

    fn random_case(rng: &mut SplitMix) -> CtpInput {
        let base = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let now = base + TimeDelta::minutes(rng.range(0, 5 * 365 * 24 * 60));
        let at = |m: i64| now + TimeDelta::minutes(m);
        let rate = if rng.chance(0.08) { 0.0 } else { rng.unit() * 500.0 };
        let day = 24 * 60;
        let horizon = if rng.chance(0.8) { at(10 * day) } else { at(rng.range(60, 12 * day)) };
        let scale = rate.max(20.0);
        let n = rng.range(0, 6);
        let demand = (0..n)
            .map(|_| {
                let start = rng.range(-2 * day, 10 * day);
                let len = if rng.chance(0.05) { rng.range(-60, 0) } else { rng.range(1, 3 * day) };
                let quantity =
                    if rng.chance(0.05) { 0.0 } else { len.max(0) as f64 / 60.0 * scale * rng.unit() * 1.3 };
                DemandBucket { start: at(start), end: at(start + len), quantity }
            })
            .collect();
        let quantity = if rng.chance(0.05) { 0.0 } else { rng.unit() * scale * 24.0 * 8.0 };
        let due = at(rng.range(-60, 12 * day));
        CtpInput { now, rate_per_hour: rate, demand, quantity, due, horizon }
    }

    #[test]
    fn matches_brute_force() {
        let mut rng = SplitMix(0x7E11_2025_C7B0_0001);
        let (mut feasible, mut late, mut never, mut borderline) = (0, 0, 0, 0);
        for case in 0..400 {
            let i = random_case(&mut rng);
            let a = capable_to_promise(&i);
            let b = brute_force(&i);
            let ctx = format!("case {case}: {i:?}\n{a:?}");

            let tol = 1e-6 * b.available_by_due.abs() + 1e-6;
            assert!(
                (a.available_by_due - b.available_by_due).abs() <= tol,
                "{ctx}\nbrute {}",
                b.available_by_due
            );

            if i.quantity <= 0.0 {
                assert!(a.feasible && a.earliest == Some(i.now) && a.consumed.is_empty(), "{ctx}");
                continue;
            }
            match (a.earliest, b.completion_min) {
                (Some(e), Some(c)) => {
                    let brute = i.now + TimeDelta::minutes(c);
                    assert!((e - brute).abs() <= TimeDelta::minutes(1), "{ctx}\nbrute minute {c}");
                }
                (None, None) => never += 1,
                _ => {
                    // Only when the quantity is (nearly) exactly what the horizon allows.
                    assert!((b.total - i.quantity).abs() <= 1e-6 * i.quantity, "{ctx}\nbrute {}", b.total);
                }
            }
            match b.completion_min {
                Some(c) if (i.now + TimeDelta::minutes(c) - i.due).abs() <= TimeDelta::minutes(1) => {
                    borderline += 1;
                }
                c => {
                    let brute_feasible = c.is_some_and(|c| i.now + TimeDelta::minutes(c) <= i.due);
                    assert_eq!(a.feasible, brute_feasible, "{ctx}");
                    if a.feasible {
                        feasible += 1;
                    } else if a.earliest.is_some() {
                        late += 1;
                    }
                }
            }

            if let Some(e) = a.earliest {
                let sum: f64 = a.consumed.iter().map(|c| c.quantity).sum();
                assert!((sum - i.quantity).abs() <= 1e-6, "{ctx}");
                let mut prev = i.now;
                for c in &a.consumed {
                    assert!(c.start >= prev && c.end >= c.start && c.quantity > 0.0, "{ctx}");
                    prev = c.end;
                }
                assert_eq!(a.consumed.last().map(|c| c.end), Some(e), "{ctx}");
            } else {
                assert!(a.consumed.is_empty(), "{ctx}");
            }
        }
        // The seed exercises every outcome.
        assert!(feasible >= 40 && late >= 40 && never >= 40, "{feasible} {late} {never} {borderline}");
    }
}
