//! Notices to agents whose messages are refused for their sample times
//! (`future_timestamp`, `past_timestamp`: the agent's clock is off). Pure:
//! the caller passes the times and publishes what [`NoticeBoard::due`]
//! returns on `throughline/v1/{site}/{agent}/notice` (QoS 1, retained).
//!
//! - A refusal sets the agent's notice: its reason, how many messages were
//!   refused since when, and what the latest refusal said. A refusal for
//!   another reason starts a new notice.
//! - A notice is published at once, then again while refusals go on, at
//!   most once per agent per [`NoticeSettings::every`].
//! - Once a message of the agent was accepted after its latest refusal and
//!   [`NoticeSettings::clear_after`] passed without another refusal, the
//!   notice is cleared (an empty retained payload) and forgotten.
//! - Memory is bounded: at most [`NoticeSettings::max_agents`] agents hold
//!   a notice; a refusal of another agent finds no room (it is still
//!   counted and logged by the caller) until one is cleared.
//!
//! Envelopes refused for a future time are not lost for good: the agent
//! keeps delivered envelopes for resend requests, and their numbers show
//! as a gap once its corrected clock is accepted again. The board says,
//! through [`NoticeBoard::holds_resends`], until when such a gap must not
//! be asked for (the kept copies would be refused again) nor given up: the
//! server time at which the latest sample refused as ahead lies within the
//! tolerance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use throughline_shared::message::Notice;
use throughline_shared::{AgentId, RejectReason, SiteId, PROTOCOL_VERSION};

/// How often notices go out and when they are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeSettings {
    /// Least time between two publications of one agent's notice.
    pub every: Duration,
    /// Time without a refusal (and with a message accepted) before a
    /// notice is cleared.
    pub clear_after: Duration,
    /// Most agents holding a notice (and a resend hold) at once.
    pub max_agents: usize,
}

impl Default for NoticeSettings {
    fn default() -> Self {
        NoticeSettings {
            every: Duration::from_secs(10),
            clear_after: Duration::from_secs(30),
            max_agents: 1024,
        }
    }
}

/// What to publish on one agent's notice topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeOut {
    /// Publish this notice, retained.
    Set { site: SiteId, agent: AgentId, notice: Notice },
    /// Clear the retained notice (an empty payload).
    Clear { site: SiteId, agent: AgentId },
}

#[derive(Debug)]
struct Entry {
    site: SiteId,
    reason: RejectReason,
    count: u64,
    since: DateTime<Utc>,
    last: DateTime<Utc>,
    detail: String,
    last_refused: Instant,
    /// When it was last published (`None`: not yet).
    published: Option<Instant>,
    /// Changed since it was last published.
    dirty: bool,
    /// A message was accepted after the latest refusal.
    accepted: bool,
}

/// The agents' notices (see the module docs).
#[derive(Debug, Default)]
pub struct NoticeBoard {
    settings: NoticeSettings,
    agents: BTreeMap<AgentId, Entry>,
    /// Per agent, the server time from which the envelopes it had refused
    /// as ahead are accepted.
    holds: BTreeMap<AgentId, DateTime<Utc>>,
}

impl NoticeBoard {
    pub fn new(settings: NoticeSettings) -> NoticeBoard {
        NoticeBoard { settings, agents: BTreeMap::new(), holds: BTreeMap::new() }
    }

    /// Agents holding a notice.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// A message of `agent` was refused for `reason` at server time `now`
    /// (`at` on the monotonic clock); `ts` is the sample time refused and
    /// `max_future` the tolerance ahead. Other reasons are ignored. Whether
    /// the agent holds a notice now (`false`: no room).
    #[allow(clippy::too_many_arguments)]
    pub fn refused(
        &mut self,
        site: &SiteId,
        agent: &AgentId,
        reason: RejectReason,
        detail: &str,
        ts: Option<DateTime<Utc>>,
        max_future: chrono::Duration,
        now: DateTime<Utc>,
        at: Instant,
    ) -> bool {
        if !matches!(reason, RejectReason::FutureTimestamp | RejectReason::PastTimestamp) {
            return false;
        }
        let room = self.agents.len() < self.settings.max_agents;
        if reason == RejectReason::FutureTimestamp {
            if let Some(valid) = ts.and_then(|ts| ts.checked_sub_signed(max_future)) {
                if let Some(hold) = self.holds.get_mut(agent) {
                    *hold = (*hold).max(valid);
                } else {
                    self.holds.retain(|_, h| *h > now);
                    if self.holds.len() < self.settings.max_agents {
                        self.holds.insert(agent.clone(), valid);
                    }
                }
            }
        }
        let detail: String = detail.chars().take(512).collect();
        match self.agents.get_mut(agent) {
            Some(e) if e.reason == reason => {
                e.count += 1;
                e.last = now;
                e.detail = detail;
                e.last_refused = at;
                e.dirty = true;
                e.accepted = false;
            }
            Some(e) => {
                *e = Entry { published: e.published, ..new_entry(site, reason, detail, now, at) };
            }
            None if room => {
                self.agents.insert(agent.clone(), new_entry(site, reason, detail, now, at));
            }
            None => return false,
        }
        true
    }

    /// A message of `agent` was accepted.
    pub fn accepted(&mut self, agent: &AgentId) {
        if let Some(e) = self.agents.get_mut(agent) {
            e.accepted = true;
        }
    }

    /// Whether a gap in `agent`'s numbers must wait at server time `now`:
    /// it refused envelopes as ahead whose kept copies would still be.
    pub fn holds_resends(&self, agent: &AgentId, now: DateTime<Utc>) -> bool {
        self.holds.get(agent).is_some_and(|h| *h > now)
    }

    /// What to publish at `at`.
    pub fn due(&mut self, at: Instant) -> Vec<NoticeOut> {
        let NoticeSettings { every, clear_after, .. } = self.settings;
        let mut out = Vec::new();
        self.agents.retain(|agent, e| {
            let quiet = at.saturating_duration_since(e.last_refused) >= clear_after;
            if e.accepted && quiet {
                if e.published.is_some() {
                    out.push(NoticeOut::Clear { site: e.site.clone(), agent: agent.clone() });
                }
                return false;
            }
            let may = e.published.is_none_or(|p| at.saturating_duration_since(p) >= every);
            if e.dirty && may {
                e.dirty = false;
                e.published = Some(at);
                out.push(NoticeOut::Set {
                    site: e.site.clone(),
                    agent: agent.clone(),
                    notice: Notice {
                        v: PROTOCOL_VERSION,
                        reason: e.reason.label().to_string(),
                        count: e.count,
                        since: e.since,
                        last: e.last,
                        detail: e.detail.clone(),
                    },
                });
            }
            true
        });
        out
    }
}

fn new_entry(site: &SiteId, reason: RejectReason, detail: String, now: DateTime<Utc>, at: Instant) -> Entry {
    Entry {
        site: site.clone(),
        reason,
        count: 1,
        since: now,
        last: now,
        detail,
        last_refused: at,
        published: None,
        dirty: true,
        accepted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(agent: &str) -> (SiteId, AgentId) {
        (SiteId::parse("s").unwrap(), AgentId::parse(agent).unwrap())
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-23T08:00:00Z".parse().unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    const AHEAD: RejectReason = RejectReason::FutureTimestamp;

    #[test]
    fn a_notice_goes_out_at_once_at_most_every_ten_seconds_and_is_cleared_once_accepted() {
        let mut b = NoticeBoard::new(NoticeSettings::default());
        let (site, gw) = ids("gw");
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let refuse = |b: &mut NoticeBoard, s: u64| {
            b.refused(&site, &gw, AHEAD, "600 s ahead", None, secs(300), t0() + secs(s as i64), at(s))
        };
        assert!(refuse(&mut b, 0));
        let first = b.due(at(0));
        let [NoticeOut::Set { notice, .. }] = &first[..] else { panic!("{first:?}") };
        assert_eq!((notice.reason.as_str(), notice.count, notice.since), ("future_timestamp", 1, t0()));
        assert!(b.due(at(1)).is_empty(), "nothing new");
        for s in 1..=9 {
            refuse(&mut b, s);
            assert!(b.due(at(s)).is_empty(), "within ten seconds: {s}");
        }
        let again = b.due(at(10));
        let [NoticeOut::Set { notice, .. }] = &again[..] else { panic!("{again:?}") };
        assert_eq!((notice.count, notice.last), (10, t0() + secs(9)));
        // Accepted again, then quiet: cleared after `clear_after`.
        b.accepted(&gw);
        assert!(b.due(at(38)).is_empty(), "not yet quiet for 30 s");
        assert_eq!(b.due(at(39)), [NoticeOut::Clear { site: site.clone(), agent: gw.clone() }]);
        assert!(b.is_empty());
        assert!(b.due(at(100)).is_empty(), "cleared once");
    }

    #[test]
    fn a_refusal_after_an_acceptance_keeps_the_notice_and_quiet_without_acceptance_keeps_it() {
        let mut b = NoticeBoard::new(NoticeSettings::default());
        let (site, gw) = ids("gw");
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        b.refused(&site, &gw, AHEAD, "x", None, secs(300), t0(), at(0));
        b.due(at(0));
        b.accepted(&gw);
        b.refused(&site, &gw, AHEAD, "x", None, secs(300), t0(), at(5));
        assert!(b.due(at(100)).iter().all(|o| matches!(o, NoticeOut::Set { .. })), "refused last: kept");
        assert!(b.due(at(1000)).is_empty());
        assert_eq!(b.len(), 1, "no message accepted since: the notice stays");
        // Another reason is another notice.
        b.refused(&site, &gw, RejectReason::PastTimestamp, "1970", None, secs(300), t0(), at(1001));
        let [NoticeOut::Set { notice, .. }] = &b.due(at(1001))[..] else { panic!() };
        assert_eq!((notice.reason.as_str(), notice.count), ("past_timestamp", 1));
        // Other reasons are not notices.
        let (_, other) = ids("gw-2");
        assert!(!b.refused(&site, &other, RejectReason::BadJson, "x", None, secs(300), t0(), at(0)));
    }

    #[test]
    fn memory_is_bounded() {
        let mut b = NoticeBoard::new(NoticeSettings { max_agents: 2, ..NoticeSettings::default() });
        let t = Instant::now();
        let ahead = Some(t0() + secs(600));
        for (i, room) in [(0, true), (1, true), (2, false)] {
            let (site, gw) = ids(&format!("gw-{i}"));
            assert_eq!(b.refused(&site, &gw, AHEAD, "x", ahead, secs(300), t0(), t), room);
        }
        assert_eq!(b.due(t).len(), 2);
        assert_eq!((b.agents.len(), b.holds.len()), (2, 2));
        assert!(!b.holds_resends(&ids("gw-2").1, t0()), "no room for a hold either");
    }

    #[test]
    fn a_gap_of_envelopes_refused_as_ahead_waits_until_their_times_are_within_the_tolerance() {
        let mut b = NoticeBoard::new(NoticeSettings::default());
        let (site, gw) = ids("gw");
        let t = Instant::now();
        // A clock 10 min fast: samples 600 s ahead, 300 s tolerated.
        b.refused(&site, &gw, AHEAD, "x", Some(t0() + secs(600)), secs(300), t0(), t);
        b.refused(&site, &gw, AHEAD, "x", Some(t0() + secs(640)), secs(300), t0() + secs(40), t);
        assert!(b.holds_resends(&gw, t0() + secs(339)));
        assert!(!b.holds_resends(&gw, t0() + secs(340)), "the latest refused is 300 s ahead then");
        assert!(!b.holds_resends(&ids("other").1, t0()));
        // Past refusals never become valid: no hold.
        let (_, old) = ids("gw-old");
        b.refused(
            &site,
            &old,
            RejectReason::PastTimestamp,
            "x",
            Some(t0() - secs(1e8 as i64)),
            secs(300),
            t0(),
            t,
        );
        assert!(!b.holds_resends(&old, t0()));
    }
}
