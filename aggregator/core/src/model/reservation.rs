//! Capacity reservations made by capable-to-promise quotes.

use serde::{Deserialize, Serialize};

/// Where a reservation is in its life: held by a quote until it expires,
/// confirmed by an accepted order, or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Held,
    Confirmed,
    Released,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Confirmed => "confirmed",
            ReservationStatus::Released => "released",
        }
    }
}
