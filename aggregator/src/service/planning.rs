//! Planning use cases behind the HTTP API (and the command line): importing
//! a forecast, and answering "can we deliver N by D?" — as an inquiry, or
//! as a quote that reserves the capacity it uses.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::Services;
use crate::ctp::{capable_to_promise, CtpAnswer, CtpInput, DemandBucket};
use crate::forecast::Refusal;
use crate::model::{AssetKind, ReservationStatus, Unit};
use crate::service::auth::Actor;
use crate::store::{ImportSummary, Reservation, StoreError};

/// The formats a forecast file comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForecastFormat {
    Csv,
    Json,
}

impl ForecastFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ForecastFormat::Csv => "csv",
            ForecastFormat::Json => "json",
        }
    }
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportRefused {
    /// The file's first problems, located, and how many there were.
    #[error("forecast refused, nothing imported: {} error(s){}", .0.total(), listed(.0))]
    Invalid(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// "; the first N are listed" when not every problem is.
fn listed(r: &Refusal) -> String {
    if r.len() < r.total() {
        format!("; the first {} are listed", r.len())
    } else {
        String::new()
    }
}

/// A promise question.
#[derive(Debug, Clone)]
pub struct PromiseRequest {
    pub group: String,
    pub quantity: f64,
    /// RFC 3339 or a plain date, as the caller gave it.
    pub due: String,
    /// A quote (reserves capacity) rather than an inquiry.
    pub quote: bool,
    /// For quotes: the order or customer reference.
    pub reference: Option<String>,
}

/// Why a promise was not given.
#[derive(Debug, thiserror::Error)]
pub enum PromiseError {
    #[error("no capacity group `{0}`")]
    NoGroup(String),
    #[error("`quantity` must be a number > 0")]
    Quantity,
    #[error("`due`: {0}")]
    Due(String),
    /// A quote that cannot be met: nothing reserved.
    #[error("{0}")]
    Infeasible(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer to a promise question.
#[derive(Debug, Clone, Serialize)]
pub struct Promise {
    pub group: String,
    pub unit: Unit,
    pub quantity: f64,
    pub due: DateTime<Utc>,
    /// `inquiry` or `quote`.
    pub mode: &'static str,
    /// Event time the answer was computed at.
    pub event_time: DateTime<Utc>,
    pub rate_per_hour: f64,
    pub reservations_counted: usize,
    pub answer: CtpAnswer,
    /// For a quote: the capacity now held for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
}

impl Services {
    /// Validate and store a forecast file, all or nothing; the buckets in
    /// force are read again and the dashboard told. Blocking (a big file
    /// takes seconds): call it off the async runtime.
    pub fn import_forecasts(
        &self,
        text: &str,
        format: ForecastFormat,
        actor: &Actor,
    ) -> Result<ImportSummary, ImportRefused> {
        let kinds = self.live.planner().group_kinds();
        let parsed = match format {
            ForecastFormat::Csv => crate::forecast::parse_csv(text, &kinds),
            ForecastFormat::Json => crate::forecast::parse_json(text, &kinds),
        };
        let rows = parsed.map_err(|errors| {
            self.metrics.forecast_imports_refused.inc();
            tracing::warn!(by = %actor.name, errors = errors.total(), "forecast import refused");
            ImportRefused::Invalid(errors)
        })?;
        let summary = self.store.import_forecasts(&rows, format.as_str(), &actor.name, Utc::now())?;
        self.metrics.forecast_rows_imported.inc_by(rows.len() as u64);
        self.forecasts.reload();
        self.feed.overview_changed();
        tracing::info!(by = %actor.name, rows = summary.rows, replaced = summary.replaced, "forecast imported");
        Ok(summary)
    }

    /// Can `req.group` deliver `req.quantity` by `req.due`, on top of the
    /// forecast demand still open and the capacity quotes hold? A quote
    /// (`actor` given) that can be met reserves what it uses.
    pub fn promise(&self, req: &PromiseRequest, actor: Option<&Actor>) -> Result<Promise, PromiseError> {
        let group =
            self.live.planner().group(&req.group).ok_or_else(|| PromiseError::NoGroup(req.group.clone()))?;
        if !(req.quantity.is_finite() && req.quantity > 0.0) {
            return Err(PromiseError::Quantity);
        }
        let due = crate::forecast::parse_time(&req.due).map_err(PromiseError::Due)?;
        let forecasts = self.forecasts.all();
        let planner = self.live.planner();
        let (now, rate, mut demand) = self.live.read(|state| {
            let wall_now = Utc::now();
            let now = state.watermark().unwrap_or(wall_now);
            let rate = planner.group_rate(state, &group.id, wall_now);
            // What forecast demand still needs from now on: an open bucket's
            // demand less what is already made, over the time it has left.
            let balances = planner.balances(state, &forecasts, Some(&group.id), Some(now), None, wall_now);
            let demand: Vec<DemandBucket> = balances
                .iter()
                .map(|b| DemandBucket {
                    start: b.start.max(now),
                    end: b.end,
                    quantity: match group.kind {
                        AssetKind::Line => (b.effective_demand - b.made).max(0.0),
                        // Feeders promise spare capacity: forecast energy is not
                        // drawn from it again.
                        AssetKind::Feeder => 0.0,
                    },
                })
                .filter(|d| d.end > d.start && d.quantity > 0.0)
                .collect();
            (now, rate, demand)
        });
        let reservations = self.store.active_reservations(&group.id, Utc::now())?;
        demand.extend(reservations.iter().flat_map(|r| r.consumes.iter().cloned()));
        let horizon = now + chrono::Duration::days(366);
        let answer = capable_to_promise(&CtpInput {
            now,
            rate_per_hour: rate,
            demand,
            quantity: req.quantity,
            due,
            horizon,
        });
        let mut out = Promise {
            group: group.id.clone(),
            unit: Unit::of(group.kind),
            quantity: req.quantity,
            due,
            mode: if req.quote { "quote" } else { "inquiry" },
            event_time: now,
            rate_per_hour: rate,
            reservations_counted: reservations.len(),
            answer,
            reservation: None,
        };
        let Some(actor) = actor.filter(|_| req.quote) else { return Ok(out) };
        if !out.answer.feasible {
            let when = out.answer.earliest.map_or("not within a year at its current rate".to_string(), |t| {
                format!("the earliest is {}", t.to_rfc3339_opts(SecondsFormat::Secs, true))
            });
            return Err(PromiseError::Infeasible(format!(
                "nothing reserved: {} cannot make {} by {}; {when}. Quote with a later due time.",
                group.id,
                req.quantity,
                due.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        let created = Utc::now();
        let r = Reservation {
            id: 0,
            group: group.id.clone(),
            quantity: req.quantity,
            consumes: out
                .answer
                .consumed
                .iter()
                .map(|c| DemandBucket { start: c.start, end: c.end, quantity: c.quantity })
                .collect(),
            created_at: created,
            expires_at: created + chrono::Duration::hours(self.quote_valid_hours as i64),
            status: ReservationStatus::Held,
            reference: req.reference.clone(),
            created_by: actor.name.clone(),
        };
        let id = self.store.insert_reservation(&r)?;
        tracing::info!(id, group = %r.group, quantity = r.quantity, by = %actor.name, "capacity reserved");
        out.reservation = Some(Reservation { id, ..r });
        Ok(out)
    }
}
