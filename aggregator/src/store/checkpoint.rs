//! The checkpoint: the live state of every asset and agent (as of the last
//! commit) and the id of the last journal record it holds, written in the
//! same transaction as the per-minute history it matches
//! ([`crate::journal`] explains the scheme). Read back once at start.

use rusqlite::{params, OptionalExtension};

use super::{rollups, Store, StoreError};
use crate::rollup::MinuteRows;
use crate::snapshot::{AgentSnapshot, AssetSnapshot, StateRows};

/// Created by [`Store::open`] with the rest of the schema.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS live_assets (
    site TEXT NOT NULL,
    asset TEXT NOT NULL,
    -- the asset's live state as JSON (crate::snapshot::AssetSnapshot)
    snapshot TEXT NOT NULL,
    PRIMARY KEY (site, asset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_agents (
    agent TEXT PRIMARY KEY,
    -- the agent's live state as JSON (crate::snapshot::AgentSnapshot)
    snapshot TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- journal records with a lower id are in this store
    journal_next INTEGER NOT NULL,
    -- when it was written, ms since the epoch (server clock)
    written_ms INTEGER NOT NULL
);
"#;

/// One checkpoint's content.
#[derive(Debug, Default, Clone)]
pub struct Checkpoint {
    /// History minutes changed since the last checkpoint.
    pub rows: Vec<MinuteRows>,
    /// Assets and agents changed since the last checkpoint.
    pub state: StateRows,
    /// The id after the last journal record applied, if any was.
    pub journal_next: Option<u64>,
}

/// What [`Store::load_checkpoint`] reads back.
#[derive(Debug, Default)]
pub struct Restored {
    pub journal_next: u64,
    pub state: StateRows,
    /// Rows that did not parse (skipped, logged).
    pub unreadable: usize,
}

impl Store {
    /// Write `cp` in one transaction; returns the history rows written.
    pub fn write_checkpoint(&self, cp: &Checkpoint, now_ms: i64) -> Result<usize, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = put_checkpoint(&tx, cp, now_ms).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The last checkpoint's state and journal position (nothing before the
    /// first one).
    pub fn load_checkpoint(&self) -> Result<Restored, StoreError> {
        let conn = self.lock();
        let q = || -> rusqlite::Result<Restored> {
            let mut r = Restored {
                journal_next: conn
                    .query_row("SELECT journal_next FROM checkpoint WHERE id = 1", [], |r| r.get::<_, i64>(0))
                    .optional()?
                    .unwrap_or(0) as u64,
                ..Restored::default()
            };
            let mut stmt = conn.prepare("SELECT snapshot FROM live_assets ORDER BY site, asset")?;
            for json in stmt.query_map([], |r| r.get::<_, String>(0))? {
                match serde_json::from_str::<AssetSnapshot>(&json?) {
                    Ok(a) => r.state.assets.push(a),
                    Err(e) => {
                        r.unreadable += 1;
                        tracing::warn!(error = %e, "a stored asset state does not parse; that asset starts afresh");
                    }
                }
            }
            let mut stmt = conn.prepare("SELECT snapshot FROM live_agents ORDER BY agent")?;
            for json in stmt.query_map([], |r| r.get::<_, String>(0))? {
                match serde_json::from_str::<AgentSnapshot>(&json?) {
                    Ok(g) => r.state.agents.push(g),
                    Err(e) => {
                        r.unreadable += 1;
                        tracing::warn!(error = %e, "a stored agent state does not parse; that agent starts afresh");
                    }
                }
            }
            Ok(r)
        };
        q().map_err(|e| self.err(e))
    }
}

fn put_checkpoint(tx: &rusqlite::Transaction<'_>, cp: &Checkpoint, now_ms: i64) -> rusqlite::Result<usize> {
    let n = rollups::put_rollups(tx, &cp.rows)?;
    let json = |v: Result<String, serde_json::Error>| {
        v.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO live_assets (site, asset, snapshot) VALUES (?1, ?2, ?3)
             ON CONFLICT (site, asset) DO UPDATE SET snapshot = excluded.snapshot",
        )?;
        for a in &cp.state.assets {
            stmt.execute(params![a.site.as_str(), a.asset.as_str(), json(serde_json::to_string(a))?])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO live_agents (agent, snapshot) VALUES (?1, ?2)
             ON CONFLICT (agent) DO UPDATE SET snapshot = excluded.snapshot",
        )?;
        for g in &cp.state.agents {
            stmt.execute(params![g.agent.as_str(), json(serde_json::to_string(g))?])?;
        }
    }
    if let Some(next) = cp.journal_next {
        tx.execute(
            "INSERT INTO checkpoint (id, journal_next, written_ms) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET journal_next = MAX(journal_next, excluded.journal_next),
                written_ms = excluded.written_ms",
            params![next as i64, now_ms],
        )?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use throughline_shared::{AgentId, AssetId, SiteId};

    use super::*;
    use crate::history::Minute;

    fn asset(n: u64) -> AssetSnapshot {
        AssetSnapshot {
            site: SiteId::parse("s").unwrap(),
            asset: AssetId::parse("l1").unwrap(),
            agent: None,
            last_ts: Some(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()),
            newest_ts: None,
            first_ts: None,
            state: None,
            state_since: None,
            reason: None,
            output_counter: Some(n as f64),
            output_counter_ts: None,
            output_total: n as f64,
            counter_resets: 0,
            counter_glitches: 0,
            implausible_steps: 0,
            counter_rebases: 0,
            pending_rebase: None,
            load_kw: None,
            samples: n,
            late_samples: 0,
            window: vec![(1, 2.0)],
            stops: Vec::new(),
        }
    }

    #[test]
    fn a_checkpoint_comes_back_and_its_position_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let r = store.load_checkpoint().unwrap();
        assert_eq!((r.journal_next, r.state.is_empty()), (0, true), "nothing before the first");
        let rows = vec![(
            SiteId::parse("s").unwrap(),
            AssetId::parse("l1").unwrap(),
            vec![(1_764_576_000, Minute { output: 3.0, samples: 2, ..Minute::default() })],
        )];
        let agent = AgentSnapshot {
            agent: AgentId::parse("gw").unwrap(),
            site: SiteId::parse("s").unwrap(),
            online: Some(true),
            software: None,
            last_message: None,
            seq_max: Some(41),
            seq_missing: vec![(3, 5)],
            messages: 39,
            duplicates: 1,
            seq_epochs: 0,
            clock_steps: 0,
            largest_clock_step_secs: 0.0,
            last_clock_step: None,
        };
        let cp = Checkpoint {
            rows,
            state: StateRows { assets: vec![asset(7)], agents: vec![agent.clone()] },
            journal_next: Some(42),
        };
        assert_eq!(store.write_checkpoint(&cp, 0).unwrap(), 1);
        // A later checkpoint replaces the asset; an older position is ignored.
        let later = Checkpoint {
            rows: vec![],
            state: StateRows { assets: vec![asset(9)], agents: vec![] },
            journal_next: Some(40),
        };
        store.write_checkpoint(&later, 1).unwrap();
        let r = store.load_checkpoint().unwrap();
        assert_eq!(r.journal_next, 42);
        assert_eq!(r.state.assets, vec![asset(9)]);
        assert_eq!(r.state.agents, vec![agent]);
        assert_eq!(store.rollup_totals(&cp.rows[0].0, &cp.rows[0].1, 0, i64::MAX).unwrap().output, 3.0);
    }
}
