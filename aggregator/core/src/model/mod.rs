//! The vocabulary every other part speaks: kinds of asset and units, the
//! plant as configured, forecast buckets, alert keys and statuses,
//! reservation statuses.

mod alert;
mod asset;
mod plan;
mod reservation;

pub use alert::{AlertChange, AlertKey, AlertKeyError, AlertKind, AlertStatus};
pub use asset::{AssetConfig, AssetKind, GroupConfig};
pub use plan::{hours_between, ForecastRow, Unit};
pub use reservation::ReservationStatus;
