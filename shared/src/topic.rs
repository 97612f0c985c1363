//! MQTT topics of protocol v1. Everything an agent publishes lies under
//! `throughline/v1/{site}/{agent}/`, so a broker ACL can confine each agent to
//! its own topics. Two topics there are the aggregator's (the agent only
//! reads them): `.../resend`, on which it asks the agent for envelopes a
//! broker lost, and `.../notice`, a retained notice that the agent's
//! messages are refused for their sample times.

use crate::ids::{AgentId, AssetId, IdError, SiteId};

/// First two levels of every protocol v1 topic.
pub const PREFIX: &str = "throughline/v1";
/// Subscription filter for every agent's telemetry.
pub const TELEMETRY_FILTER: &str = "throughline/v1/+/+/+/telemetry";
/// Subscription filter for every agent's status (birth and last will).
pub const STATUS_FILTER: &str = "throughline/v1/+/+/status";

/// A parsed protocol v1 topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `throughline/v1/{site}/{agent}/{asset}/telemetry`
    Telemetry { site: SiteId, agent: AgentId, asset: AssetId },
    /// `throughline/v1/{site}/{agent}/status`
    Status { site: SiteId, agent: AgentId },
    /// `throughline/v1/{site}/{agent}/resend` (written by the aggregator)
    Resend { site: SiteId, agent: AgentId },
    /// `throughline/v1/{site}/{agent}/notice` (written by the aggregator)
    Notice { site: SiteId, agent: AgentId },
    /// `throughline/v1/{site}/alerts`
    Alerts { site: SiteId },
}

/// Why a topic is not a protocol v1 topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic `{0}` is not a throughline/v1 topic")]
    Unknown(String),
    #[error("topic `{topic}`: {source}")]
    BadId { topic: String, source: IdError },
}

impl Topic {
    /// Telemetry topic of one asset.
    pub fn telemetry(site: &SiteId, agent: &AgentId, asset: &AssetId) -> String {
        format!("{PREFIX}/{site}/{agent}/{asset}/telemetry")
    }

    /// Status topic of one agent (retained; birth and last will).
    pub fn status(site: &SiteId, agent: &AgentId) -> String {
        format!("{PREFIX}/{site}/{agent}/status")
    }

    /// Resend-request topic of one agent: the aggregator publishes, the
    /// agent subscribes (QoS 1, not retained).
    pub fn resend(site: &SiteId, agent: &AgentId) -> String {
        format!("{PREFIX}/{site}/{agent}/resend")
    }

    /// Notice topic of one agent: the aggregator publishes (QoS 1,
    /// retained; an empty payload clears it), the agent subscribes.
    pub fn notice(site: &SiteId, agent: &AgentId) -> String {
        format!("{PREFIX}/{site}/{agent}/notice")
    }

    /// Alerts topic of one site.
    pub fn alerts(site: &SiteId) -> String {
        format!("{PREFIX}/{site}/alerts")
    }

    /// Parse a topic, validating every id in it.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let unknown = || TopicError::Unknown(topic.chars().take(200).collect());
        let rest = topic.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('/')).ok_or_else(unknown)?;
        // Up to five levels, one more than the longest topic (so that longer
        // ones are refused), without collecting them: no allocation here.
        let mut it = rest.split('/');
        let levels: [Option<&str>; 5] = std::array::from_fn(|_| it.next());
        let bad = |source| TopicError::BadId { topic: topic.chars().take(200).collect(), source };
        match levels {
            [Some(site), Some(agent), Some(asset), Some("telemetry"), None] => Ok(Topic::Telemetry {
                site: SiteId::parse(site).map_err(bad)?,
                agent: AgentId::parse(agent).map_err(bad)?,
                asset: AssetId::parse(asset).map_err(bad)?,
            }),
            [Some(site), Some(agent), Some("status"), None, _] => Ok(Topic::Status {
                site: SiteId::parse(site).map_err(bad)?,
                agent: AgentId::parse(agent).map_err(bad)?,
            }),
            [Some(site), Some(agent), Some("resend"), None, _] => Ok(Topic::Resend {
                site: SiteId::parse(site).map_err(bad)?,
                agent: AgentId::parse(agent).map_err(bad)?,
            }),
            [Some(site), Some(agent), Some("notice"), None, _] => Ok(Topic::Notice {
                site: SiteId::parse(site).map_err(bad)?,
                agent: AgentId::parse(agent).map_err(bad)?,
            }),
            [Some(site), Some("alerts"), None, _, _] => {
                Ok(Topic::Alerts { site: SiteId::parse(site).map_err(bad)? })
            }
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_topic() {
        let site = SiteId::parse("plant-a").unwrap();
        let agent = AgentId::parse("gw-01").unwrap();
        let asset = AssetId::parse("press-1").unwrap();
        let t = Topic::telemetry(&site, &agent, &asset);
        assert_eq!(t, "throughline/v1/plant-a/gw-01/press-1/telemetry");
        assert_eq!(
            Topic::parse(&t).unwrap(),
            Topic::Telemetry { site: site.clone(), agent: agent.clone(), asset }
        );
        let s = Topic::status(&site, &agent);
        assert_eq!(Topic::parse(&s).unwrap(), Topic::Status { site: site.clone(), agent: agent.clone() });
        let r = Topic::resend(&site, &agent);
        assert_eq!(r, "throughline/v1/plant-a/gw-01/resend");
        assert_eq!(Topic::parse(&r).unwrap(), Topic::Resend { site: site.clone(), agent: agent.clone() });
        let n = Topic::notice(&site, &agent);
        assert_eq!(n, "throughline/v1/plant-a/gw-01/notice");
        assert_eq!(Topic::parse(&n).unwrap(), Topic::Notice { site: site.clone(), agent });
        assert_eq!(Topic::parse(&Topic::alerts(&site)).unwrap(), Topic::Alerts { site });
    }

    #[test]
    fn refuses_other_topics_and_bad_ids() {
        for t in ["throughline/v2/a/b/c/telemetry", "x/v1/a/b/status", "throughline/v1/a/b/c/d", ""] {
            assert!(matches!(Topic::parse(t), Err(TopicError::Unknown(_))), "{t}");
        }
        assert!(matches!(Topic::parse("throughline/v1/a/b c/x/telemetry"), Err(TopicError::BadId { .. })));
        assert!(matches!(Topic::parse("throughline/v1//b/status"), Err(TopicError::BadId { .. })));
        assert!(matches!(Topic::parse("throughline/v1/a/b/resend/x"), Err(TopicError::Unknown(_))));
        // An asset may be called `resend`: its telemetry is one level deeper.
        assert!(matches!(Topic::parse("throughline/v1/a/b/resend/telemetry"), Ok(Topic::Telemetry { .. })));
    }
}
