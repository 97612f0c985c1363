//! Capacity reservations made by capable-to-promise quotes.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{ms, Store, StoreError};
use crate::model::ReservationStatus;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    group_id TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
"#;

/// A capacity reservation made by a capable-to-promise quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: i64,
    pub group: String,
    pub quantity: f64,
    /// The stretches of time whose capacity it holds, with quantities.
    pub consumes: Vec<crate::ctp::DemandBucket>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: ReservationStatus,
    pub reference: Option<String>,
    pub created_by: String,
}

impl Store {
    /// Store a new reservation; returns its id.
    pub fn insert_reservation(&self, r: &Reservation) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO reservations (group_id, status, expires_ms, body) VALUES (?1, ?2, ?3, '{}')",
            params![r.group, r.status.as_str(), ms(r.expires_at)],
        )
        .map_err(|e| self.err(e))?;
        let id = conn.last_insert_rowid();
        let body = serde_json::to_string(&Reservation { id, ..r.clone() }).expect("reservation serializes");
        conn.execute("UPDATE reservations SET body = ?2 WHERE id = ?1", params![id, body])
            .map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Reservations of `group` still holding capacity at `now`: held and not
    /// expired. A confirmed order leaves the reservations (it belongs in the
    /// next forecast import); a released one frees its capacity.
    pub fn active_reservations(
        &self,
        group: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Reservation>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT body FROM reservations WHERE group_id = ?1 AND status = ?3 AND expires_ms > ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![group, ms(now), ReservationStatus::Held.as_str()], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let bodies = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok(bodies.iter().filter_map(|b| serde_json::from_str(b).ok()).collect())
    }

    /// Set a held reservation's status (confirmed, released); None if unknown.
    /// Confirmed and released are final: reported without a change.
    pub fn set_reservation_status(
        &self,
        id: i64,
        status: ReservationStatus,
    ) -> Result<Option<Reservation>, StoreError> {
        let conn = self.lock();
        let body: Option<String> = conn
            .query_row("SELECT body FROM reservations WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(mut r) = body.and_then(|b| serde_json::from_str::<Reservation>(&b).ok()) else {
            return Ok(None);
        };
        if r.status != ReservationStatus::Held {
            // Confirmed and released are final; report without changing.
            return Ok(Some(r));
        }
        r.status = status;
        let body = serde_json::to_string(&r).expect("reservation serializes");
        conn.execute(
            "UPDATE reservations SET status = ?2, body = ?3 WHERE id = ?1",
            params![id, status.as_str(), body],
        )
        .map_err(|e| self.err(e))?;
        Ok(Some(r))
    }
}
