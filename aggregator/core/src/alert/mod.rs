//! Alerts for planners: rules turn balances and live state into
//! [`Condition`]s; the [`book::AlertBook`] keeps each alert's lifecycle
//! (open -> acknowledged -> resolved), deduplicated by [`AlertKey`] with
//! hysteresis and a debounce ([`debounce`]) for gap alerts, and returns
//! every change for the caller to store and deliver.

pub mod book;
pub mod debounce;
pub mod rules;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::balance::BucketBalance;
pub use crate::model::{AlertChange, AlertKey, AlertKind, AlertStatus};
pub use debounce::Hold;

/// The numbers behind an alert, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AlertDetails {
    /// Gap and deviation alerts: the bucket's balance, its asset list cut
    /// to what a planner acts on, and how many assets it had in all.
    Bucket {
        #[serde(flatten)]
        balance: Box<BucketBalance>,
        assets_total: usize,
    },
    /// Downtime alerts.
    Downtime { since: DateTime<Utc>, reason: Option<String>, minutes: f64, rate_loss_per_hour: Option<f64> },
    /// Offline alerts.
    Offline { last_message: Option<DateTime<Utc>>, online: Option<bool>, assets: Vec<String> },
    /// No numbers (`null`).
    None,
}

/// A condition a rule found true now; the book turns it into an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// Deduplication key: one unresolved alert per key.
    pub key: AlertKey,
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
    pub details: AlertDetails,
    /// Event time at which the condition was seen.
    pub event_time: Option<DateTime<Utc>>,
    /// How long it must hold (event time) before an alert opens.
    pub hold: Hold,
}

impl Condition {
    /// A condition of `key` with its words only: no place, numbers or
    /// details yet (the caller sets what it knows).
    pub fn new(key: AlertKey, summary: impl Into<String>, action: impl Into<String>) -> Condition {
        Condition {
            kind: key.kind(),
            key,
            site: None,
            group: None,
            asset: None,
            agent: None,
            bucket_start: None,
            bucket_end: None,
            value: 0.0,
            threshold: 0.0,
            summary: summary.into(),
            action: action.into(),
            details: AlertDetails::None,
            event_time: None,
            hold: Hold::NONE,
        }
    }
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
    pub key: AlertKey,
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
    pub details: AlertDetails,
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
    pub event: AlertChange,
    pub alert: Alert,
}
