//! Alerts for planners: rules (pure) turn balances and live state into
//! conditions; the book keeps each alert's lifecycle (open -> acknowledged ->
//! resolved), deduplicated by key with hysteresis; the notifier delivers
//! every change from a durable outbox.

pub mod book;
pub mod notify;
pub mod rules;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        [
            AlertKind::Schedule,
            AlertKind::Dispatch,
            AlertKind::Downtime,
            AlertKind::Offline,
            AlertKind::ForecastDeviation,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
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
}

/// A condition a rule found true now; the book turns it into an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// Deduplication key: one unresolved alert per key.
    pub key: String,
    pub kind: AlertKind,
    pub site: Option<String>,
    pub group: Option<String>,
    pub asset: Option<String>,
    pub agent: Option<String>,
    pub bucket_start: Option<DateTime<Utc>>,
    pub bucket_end: Option<DateTime<Utc>>,
    /// The measured value the threshold applies to, and the threshold.
    pub value: f64,
    pub threshold: f64,
    /// What is wrong, in plain words and numbers.
    pub summary: String,
    /// What a planner can do about it, in plain words and numbers.
    pub action: String,
    /// The numbers behind it.
    pub details: serde_json::Value,
    /// Event time at which the condition was seen.
    pub event_time: Option<DateTime<Utc>>,
}

/// Who did something to an alert, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

/// An alert as stored, served and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub key: String,
    pub kind: AlertKind,
    pub status: AlertStatus,
    pub site: Option<String>,
    pub group: Option<String>,
    pub asset: Option<String>,
    pub agent: Option<String>,
    pub bucket_start: Option<DateTime<Utc>>,
    pub bucket_end: Option<DateTime<Utc>>,
    pub value: f64,
    pub threshold: f64,
    pub summary: String,
    pub action: String,
    pub details: serde_json::Value,
    pub opened_at: DateTime<Utc>,
    pub event_time: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged: Option<Mark>,
    pub resolved: Option<Mark>,
}

/// One change of one alert, as published and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub v: u32,
    /// `opened`, `acknowledged` or `resolved`.
    pub event: String,
    pub alert: Alert,
}
