//! Whether what ingest acknowledges is durable: the journal's position in
//! the store and the last failure of either, for `/healthz`, the log and
//! the ingest task (which stops acknowledging while the journal cannot be
//! written: the broker then holds the backlog).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a failure that goes on is logged again.
const LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Problem {
    what: Option<String>,
    logged: Option<Instant>,
}

impl Problem {
    /// Record a failure; `true` when it should be logged (the first, then
    /// once a minute).
    fn fail(&mut self, what: String) -> bool {
        self.what = Some(what);
        let due = self.logged.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            self.logged = Some(Instant::now());
        }
        due
    }

    /// Clear it; `true` if there was one.
    fn clear(&mut self) -> bool {
        self.logged = None;
        self.what.take().is_some()
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Durability {
    /// Journal records with a lower id are held by the store (written by
    /// the checkpoint, read by the journal to delete old segments).
    pub released: Arc<AtomicU64>,
    journal: Mutex<Problem>,
    store: Mutex<Problem>,
}

impl Durability {
    /// The journal could not be written; `true` when to log it.
    pub fn journal_failed(&self, e: &impl std::fmt::Display) -> bool {
        self.journal.lock().expect("durability lock").fail(e.to_string())
    }

    /// The journal is written again; `true` if it had failed.
    pub fn journal_ok(&self) -> bool {
        self.journal.lock().expect("durability lock").clear()
    }

    /// A checkpoint could not be committed; `true` when to log it.
    pub fn store_failed(&self, e: &impl std::fmt::Display) -> bool {
        self.store.lock().expect("durability lock").fail(e.to_string())
    }

    /// A checkpoint was committed; `true` if one had failed before.
    pub fn store_ok(&self) -> bool {
        self.store.lock().expect("durability lock").clear()
    }

    /// What is failing now, for `/healthz`: (journal, store).
    pub fn problems(&self) -> (Option<String>, Option<String>) {
        (
            self.journal.lock().expect("durability lock").what.clone(),
            self.store.lock().expect("durability lock").what.clone(),
        )
    }
}
