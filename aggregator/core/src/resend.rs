//! Asking agents again for envelopes a broker lost, and giving up on what
//! they no longer have. Pure: the caller passes the time and publishes the
//! requests; the planner only decides.
//!
//! A broker that crashes before it saved its state (Mosquitto between two
//! autosaves) loses the messages it held for the aggregator, including
//! some it had already acknowledged to an agent. The aggregator sees them
//! as a gap in the agent's `seq` ([`crate::state::SeqTracker`]); each
//! [`ResendPlanner::plan`] goes through every agent's missing ranges and
//! says which to ask for on `throughline/v1/{site}/{agent}/resend`:
//!
//! - a range not asked for yet is asked for at once;
//! - a range asked for is asked again after [`ResendSettings::interval`],
//!   at most [`ResendSettings::attempts`] times, and an interval after the
//!   last request it is reported lost ([`Plan::lost`]; the caller moves it
//!   to the agent's lost ranges);
//! - while an agent is answering (a late fill since the last plan), the
//!   ranges it was asked for wait instead, their count of requests back at
//!   one: a large range resent in parts is not given up half-way;
//! - while an agent is offline nothing is asked and nothing given up (a
//!   request would not reach it: agents keep no broker session); nor while
//!   the caller holds the agent ([`ResendPlanner::plan_holding`]: it refused
//!   envelopes of the agent as ahead of its clock, whose kept copies would
//!   be refused again until their sample times are within the tolerance,
//!   see [`crate::notice`]); a range asked for waits an interval after
//!   either ends;
//! - at most [`ResendSettings::max_per_plan`] requests per plan, all
//!   agents together; a range that finds no room waits for a later plan
//!   without counting as asked.
//!
//! A range that is split by a fill keeps its count of requests in both
//! parts. When the broker lost the aggregator's own session
//! ([`ResendPlanner::session_lost`]), the next plan also asks every online
//! agent once for everything after its highest number (no `to`): the
//! messages lost at the end of a stream show no gap until the agent sends
//! again, and an agent that stopped sends no more.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use throughline_shared::message::SeqRange;
use throughline_shared::{AgentId, SiteId};

use crate::state::LiveState;

/// How often and how long agents are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendSettings {
    /// Between two requests for one range, and after the last before it is
    /// reported lost.
    pub interval: Duration,
    /// Requests for one range before it is reported lost.
    pub attempts: u32,
    /// Most requests in one plan, over all agents.
    pub max_per_plan: usize,
}

impl ResendSettings {
    /// 10 s: longer than an agent takes to resend a keep window's worth
    /// (10,000 envelopes at a few hundred a second), short enough that a
    /// loss is reported within a minute.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_ATTEMPTS: u32 = 3;
    /// A quarter of the ingest client's request channel, shared with acks.
    pub const DEFAULT_MAX_PER_PLAN: usize = 64;
}

impl Default for ResendSettings {
    fn default() -> Self {
        ResendSettings {
            interval: Self::DEFAULT_INTERVAL,
            attempts: Self::DEFAULT_ATTEMPTS,
            max_per_plan: Self::DEFAULT_MAX_PER_PLAN,
        }
    }
}

/// One resend request to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub site: SiteId,
    pub agent: AgentId,
    pub from: u64,
    /// `None`: everything from `from` on.
    pub to: Option<u64>,
}

/// A range to report lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub agent: AgentId,
    pub range: SeqRange,
}

/// What one plan decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub requests: Vec<Request>,
    pub lost: Vec<Lost>,
}

/// A range asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ask {
    range: SeqRange,
    attempts: u32,
    last: Instant,
}

/// One agent's ranges asked for, lowest first, and its late fills when
/// they were last looked at.
#[derive(Debug, Default)]
struct AgentAsks {
    late_fills: u64,
    asks: Vec<Ask>,
}

/// Which ranges to ask for when (see the module docs). Holds state only for
/// agents with missing ranges, one entry per range asked for.
#[derive(Debug)]
pub struct ResendPlanner {
    settings: ResendSettings,
    agents: BTreeMap<AgentId, AgentAsks>,
    probe: bool,
}

impl ResendPlanner {
    pub fn new(settings: ResendSettings) -> ResendPlanner {
        ResendPlanner { settings, agents: BTreeMap::new(), probe: false }
    }

    /// The broker kept no session for the aggregator: what it held is gone.
    pub fn session_lost(&mut self) {
        self.probe = true;
    }

    /// The requests due at `now`, and the ranges to give up.
    pub fn plan(&mut self, state: &LiveState, now: Instant) -> Plan {
        self.plan_holding(state, now, |_| false)
    }

    /// [`ResendPlanner::plan`], with the agents for which `hold` is true
    /// treated as offline: nothing asked of them, nothing given up.
    pub fn plan_holding(&mut self, state: &LiveState, now: Instant, hold: impl Fn(&AgentId) -> bool) -> Plan {
        let ResendSettings { interval, attempts, max_per_plan } = self.settings;
        let mut plan = Plan::default();
        let mut budget = max_per_plan;
        let probe = std::mem::take(&mut self.probe);
        for g in state.agents() {
            let online = g.online != Some(false) && !hold(&g.agent);
            if let (true, true, Some(max)) = (probe, online, g.seq.max()) {
                if let (Some(from), true) = (max.checked_add(1), budget > 0) {
                    budget -= 1;
                    plan.requests.push(Request {
                        site: g.site.clone(),
                        agent: g.agent.clone(),
                        from,
                        to: None,
                    });
                }
            }
            if g.seq.missing_ranges().next().is_none() {
                self.agents.remove(&g.agent);
                continue;
            }
            let entry = self.agents.entry(g.agent.clone()).or_default();
            let answering = g.seq_late_fills != entry.late_fills;
            entry.late_fills = g.seq_late_fills;
            let before = std::mem::take(&mut entry.asks);
            let mut first = 0;
            for range in g.seq.missing_ranges() {
                // The asks this range was part of (both lists are sorted and
                // each is disjoint; an ask may cover several ranges now).
                while first < before.len() && before[first].range.to < range.from {
                    first += 1;
                }
                let asked = before[first..].iter().take_while(|a| a.range.from <= range.to).fold(
                    None,
                    |acc: Option<Ask>, a| {
                        Some(acc.map_or(Ask { range, ..*a }, |b| Ask {
                            range,
                            attempts: b.attempts.max(a.attempts),
                            last: b.last.max(a.last),
                        }))
                    },
                );
                let ask = match asked {
                    // Away, or answering: the wait starts again.
                    Some(a) if !online || answering => {
                        let attempts = if answering { a.attempts.min(1) } else { a.attempts };
                        Some(Ask { last: now, attempts, ..a })
                    }
                    None if !online => None,
                    None if budget > 0 => {
                        budget -= 1;
                        plan.requests.push(request(g.site.clone(), g.agent.clone(), range));
                        Some(Ask { range, attempts: 1, last: now })
                    }
                    None => None,
                    Some(a) if now.saturating_duration_since(a.last) < interval => Some(a),
                    Some(a) if a.attempts >= attempts => {
                        plan.lost.push(Lost { agent: g.agent.clone(), range });
                        None
                    }
                    Some(a) if budget > 0 => {
                        budget -= 1;
                        plan.requests.push(request(g.site.clone(), g.agent.clone(), range));
                        Some(Ask { attempts: a.attempts + 1, last: now, ..a })
                    }
                    Some(a) => Some(a),
                };
                entry.asks.extend(ask);
            }
        }
        plan
    }
}

fn request(site: SiteId, agent: AgentId, range: SeqRange) -> Request {
    Request { site, agent, from: range.from, to: Some(range.to) }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as Span;
    use throughline_shared::codec::StatusMessage;
    use throughline_shared::AgentStatus;

    use super::*;
    use crate::testkit::{out, t0, tel};

    fn settings() -> ResendSettings {
        ResendSettings { interval: Duration::from_secs(10), attempts: 3, max_per_plan: 64 }
    }

    fn gw() -> AgentId {
        AgentId::parse("gw").unwrap()
    }

    fn range(from: u64, to: u64) -> SeqRange {
        SeqRange { from, to }
    }

    /// Live state of agent `gw` having seen `seqs`.
    fn seen(seqs: &[u64]) -> LiveState {
        let mut st = LiveState::new(&[], Span::minutes(5));
        for &q in seqs {
            st.apply_telemetry(&tel("a", q, vec![out(q as i64, q as f64)]), t0());
        }
        st
    }

    fn asked(p: &Plan) -> Vec<(u64, Option<u64>)> {
        p.requests.iter().map(|r| (r.from, r.to)).collect()
    }

    fn status(st: &mut LiveState, online: bool) {
        let m = StatusMessage {
            site: SiteId::parse("s").unwrap(),
            agent: gw(),
            status: AgentStatus { v: 1, online, ts: None, software: None, health: None, seq_skipped: None },
        };
        st.apply_status(&m, t0());
    }

    #[test]
    fn a_gap_is_asked_for_at_once_again_after_the_interval_and_then_given_up() {
        let st = seen(&[1, 5, 6, 9]);
        let mut p = ResendPlanner::new(settings());
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let first = p.plan(&st, at(0));
        assert_eq!(asked(&first), [(2, Some(4)), (7, Some(8))]);
        assert_eq!(first.requests[0].site.as_str(), "s");
        assert!(p.plan(&st, at(9)).requests.is_empty(), "one request per range per interval");
        assert_eq!(asked(&p.plan(&st, at(10))), [(2, Some(4)), (7, Some(8))]);
        assert_eq!(asked(&p.plan(&st, at(20))), [(2, Some(4)), (7, Some(8))], "the third");
        assert_eq!(p.plan(&st, at(29)), Plan::default());
        let gave_up = p.plan(&st, at(30));
        assert!(gave_up.requests.is_empty());
        assert_eq!(
            gave_up.lost,
            [Lost { agent: gw(), range: range(2, 4) }, Lost { agent: gw(), range: range(7, 8) }]
        );
    }

    #[test]
    fn an_agent_answering_is_waited_for_and_a_split_range_keeps_its_count() {
        let mut st = seen(&[1, 100]);
        let mut p = ResendPlanner::new(settings());
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        assert_eq!(asked(&p.plan(&st, at(0))), [(2, Some(99))]);
        assert_eq!(asked(&p.plan(&st, at(10))), [(2, Some(99))]);
        // Part of it arrives: the agent is answering.
        st.apply_telemetry(&tel("a", 50, vec![out(50, 50.0)]), t0());
        assert_eq!(p.plan(&st, at(20)), Plan::default(), "answering: no third request, no loss");
        // Quiet again: asked again an interval later, each part on its own.
        assert!(p.plan(&st, at(29)).requests.is_empty());
        assert_eq!(asked(&p.plan(&st, at(30))), [(2, Some(49)), (51, Some(99))]);
        assert_eq!(asked(&p.plan(&st, at(40))), [(2, Some(49)), (51, Some(99))]);
        let lost = p.plan(&st, at(50)).lost;
        assert_eq!(lost.iter().map(|l| l.range).collect::<Vec<_>>(), [range(2, 49), range(51, 99)]);
    }

    #[test]
    fn nothing_is_asked_or_given_up_while_the_agent_is_offline() {
        let mut st = seen(&[1, 3]);
        let mut p = ResendPlanner::new(settings());
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        assert_eq!(asked(&p.plan(&st, at(0))), [(2, Some(2))]);
        status(&mut st, false);
        for s in [10, 20, 30, 100] {
            assert_eq!(p.plan(&st, at(s)), Plan::default(), "at {s} s");
        }
        status(&mut st, true);
        assert!(p.plan(&st, at(105)).requests.is_empty(), "the interval starts again on return");
        assert_eq!(asked(&p.plan(&st, at(110))), [(2, Some(2))]);
        assert_eq!(asked(&p.plan(&st, at(120))), [(2, Some(2))]);
        assert_eq!(p.plan(&st, at(130)).lost.len(), 1, "three requests while online, then lost");
        // A gap that appears while the agent is offline waits for it too.
        let mut st = seen(&[1, 3]);
        status(&mut st, false);
        let mut p = ResendPlanner::new(settings());
        assert_eq!(p.plan(&st, at(0)), Plan::default());
    }

    #[test]
    fn requests_per_plan_are_bounded_and_the_rest_wait_their_turn() {
        let seqs: Vec<u64> = (0..200).map(|i| i * 2).collect();
        let st = seen(&seqs); // 199 gaps of one
        let mut p = ResendPlanner::new(ResendSettings { max_per_plan: 64, ..settings() });
        let t = Instant::now();
        let mut seen_ranges = std::collections::BTreeSet::new();
        for tick in 0..4 {
            let plan = p.plan(&st, t + Duration::from_secs(tick));
            assert!(plan.requests.len() <= 64, "tick {tick}: {}", plan.requests.len());
            assert!(plan.lost.is_empty());
            seen_ranges.extend(plan.requests.iter().map(|r| r.from));
        }
        assert_eq!(seen_ranges.len(), 199, "every gap asked for within four plans");
    }

    #[test]
    fn a_lost_session_asks_every_online_agent_once_for_what_follows_its_highest() {
        let st = seen(&[7]);
        let mut p = ResendPlanner::new(settings());
        let t = Instant::now();
        assert_eq!(p.plan(&st, t), Plan::default());
        p.session_lost();
        assert_eq!(asked(&p.plan(&st, t)), [(8, None)]);
        assert_eq!(p.plan(&st, t + Duration::from_secs(60)), Plan::default(), "once");
        let mut st = seen(&[7]);
        status(&mut st, false);
        p.session_lost();
        assert_eq!(p.plan(&st, t), Plan::default(), "not an offline agent");
    }

    #[test]
    fn a_held_agent_is_neither_asked_nor_given_up_and_is_asked_once_released() {
        let st = seen(&[1, 5]);
        let mut p = ResendPlanner::new(settings());
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        for s in [0, 10, 20, 30, 300] {
            assert_eq!(p.plan_holding(&st, at(s), |_| true), Plan::default(), "held at {s} s");
        }
        assert_eq!(asked(&p.plan_holding(&st, at(301), |_| false)), [(2, Some(4))], "asked at once");
        assert_eq!(asked(&p.plan(&st, at(311))), [(2, Some(4))]);
        assert_eq!(asked(&p.plan(&st, at(321))), [(2, Some(4))]);
        assert_eq!(p.plan(&st, at(331)).lost.len(), 1, "then lost, as any gap");
        // Asked before the hold: the interval starts again when it ends.
        let mut p = ResendPlanner::new(settings());
        assert_eq!(asked(&p.plan(&st, at(0))), [(2, Some(4))]);
        assert_eq!(p.plan_holding(&st, at(100), |_| true), Plan::default());
        assert!(p.plan(&st, at(105)).requests.is_empty());
        assert_eq!(asked(&p.plan(&st, at(110))), [(2, Some(4))]);
    }

    #[test]
    fn a_filled_gap_leaves_nothing_behind() {
        let mut st = seen(&[1, 4]);
        let mut p = ResendPlanner::new(settings());
        let t = Instant::now();
        p.plan(&st, t);
        st.apply_telemetry(&tel("a", 2, vec![out(2, 2.0)]), t0());
        st.apply_telemetry(&tel("a", 3, vec![out(3, 3.0)]), t0());
        assert_eq!(p.plan(&st, t + Duration::from_secs(100)), Plan::default());
        assert!(p.agents.is_empty());
    }
}
