//! Alert vocabulary: what an alert is about, where it is in its lifecycle,
//! what changed, and the key that deduplicates it. [`AlertKey`] is the one
//! place keys are built and read back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A line group projected to miss its bucket.
    Schedule,
    /// A feeder group over its rated capacity or short of forecast energy.
    Dispatch,
    /// An asset down longer than the threshold.
    Downtime,
    /// An agent gone (last will) or silent.
    Offline,
    /// A closed bucket whose actual differs from its forecast.
    ForecastDeviation,
}

impl AlertKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [AlertKind; 5] = [
        AlertKind::Schedule,
        AlertKind::Dispatch,
        AlertKind::Downtime,
        AlertKind::Offline,
        AlertKind::ForecastDeviation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Schedule => "schedule",
            AlertKind::Dispatch => "dispatch",
            AlertKind::Downtime => "downtime",
            AlertKind::Offline => "offline",
            AlertKind::ForecastDeviation => "forecast_deviation",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        [AlertStatus::Open, AlertStatus::Acknowledged, AlertStatus::Resolved]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What happened to an alert: the `event` of an alert event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    Opened,
    Acknowledged,
    Resolved,
}

impl AlertChange {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertChange::Opened => "opened",
            AlertChange::Acknowledged => "acknowledged",
            AlertChange::Resolved => "resolved",
        }
    }
}

/// The deduplication key of an alert: one unresolved alert per key.
///
/// Spelled `schedule:<group>:<bucket start, unix s>` (also `dispatch`,
/// `forecast_deviation`), `downtime:<site>:<asset>`, `offline:<agent>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKey {
    /// A gap or deviation alert of one bucket of one group.
    Bucket { kind: AlertKind, group: String, start: i64 },
    /// An asset down too long.
    Downtime { site: String, asset: String },
    /// An agent gone or silent.
    Offline { agent: String },
}

impl AlertKey {
    /// The kind of alert this key belongs to.
    pub fn kind(&self) -> AlertKind {
        match self {
            AlertKey::Bucket { kind, .. } => *kind,
            AlertKey::Downtime { .. } => AlertKind::Downtime,
            AlertKey::Offline { .. } => AlertKind::Offline,
        }
    }

    /// The group of a bucket alert.
    pub fn group(&self) -> Option<&str> {
        match self {
            AlertKey::Bucket { group, .. } => Some(group),
            _ => None,
        }
    }
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertKey::Bucket { kind, group, start } => write!(f, "{}:{group}:{start}", kind.as_str()),
            AlertKey::Downtime { site, asset } => write!(f, "downtime:{site}:{asset}"),
            AlertKey::Offline { agent } => write!(f, "offline:{agent}"),
        }
    }
}

/// Why a string is not an alert key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert key {key:?}: {reason}")]
pub struct AlertKeyError {
    pub key: String,
    pub reason: &'static str,
}

impl FromStr for AlertKey {
    type Err = AlertKeyError;

    fn from_str(s: &str) -> Result<AlertKey, AlertKeyError> {
        let err = |reason| AlertKeyError { key: s.to_string(), reason };
        let (kind, rest) = s.split_once(':').ok_or_else(|| err("expected <kind>:…"))?;
        let kind = AlertKind::parse(kind).ok_or_else(|| err("unknown alert kind"))?;
        let nonempty = |p: &str, what| if p.is_empty() { Err(err(what)) } else { Ok(p.to_string()) };
        match kind {
            AlertKind::Offline => Ok(AlertKey::Offline { agent: nonempty(rest, "empty agent")? }),
            AlertKind::Downtime => {
                let (site, asset) =
                    rest.split_once(':').ok_or_else(|| err("expected downtime:<site>:<asset>"))?;
                Ok(AlertKey::Downtime {
                    site: nonempty(site, "empty site")?,
                    asset: nonempty(asset, "empty asset")?,
                })
            }
            _ => {
                let (group, start) =
                    rest.rsplit_once(':').ok_or_else(|| err("expected <kind>:<group>:<start>"))?;
                let start =
                    start.parse().map_err(|_| err("bucket start is not a whole number of seconds"))?;
                Ok(AlertKey::Bucket { kind, group: nonempty(group, "empty group")?, start })
            }
        }
    }
}

impl Serialize for AlertKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AlertKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AlertKey, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_as_before_and_read_back() {
        let cases = [
            (
                AlertKey::Bucket {
                    kind: AlertKind::Schedule,
                    group: "family-a".into(),
                    start: 1_700_000_000,
                },
                "schedule:family-a:1700000000",
            ),
            (
                AlertKey::Bucket { kind: AlertKind::ForecastDeviation, group: "north".into(), start: -60 },
                "forecast_deviation:north:-60",
            ),
            (
                AlertKey::Downtime { site: "plant-1".into(), asset: "press-2".into() },
                "downtime:plant-1:press-2",
            ),
            (AlertKey::Offline { agent: "gw-1".into() }, "offline:gw-1"),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<AlertKey>().unwrap(), key);
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<AlertKey>(&json).unwrap(), key);
        }
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        for bad in [
            "",
            "schedule",
            "nonsense:g:1",
            "schedule:g:soon",
            "schedule::1",
            "downtime:site",
            "offline:",
            "dispatch:g",
        ] {
            let e = bad.parse::<AlertKey>().unwrap_err();
            assert_eq!(e.key, bad);
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn kind_and_group_come_from_the_key() {
        let k: AlertKey = "dispatch:north:0".parse().unwrap();
        assert_eq!((k.kind(), k.group()), (AlertKind::Dispatch, Some("north")));
        let k: AlertKey = "downtime:s:a".parse().unwrap();
        assert_eq!((k.kind(), k.group()), (AlertKind::Downtime, None));
        assert!(AlertKind::ALL.iter().all(|k| AlertKind::parse(k.as_str()) == Some(*k)));
    }
}
