//! The forecast handle: the buckets in force, a cache of the store shared
//! by the alert task, the API and the dashboard. Readers get the whole list
//! as one `Arc`, so nobody holds the lock while they work.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use crate::model::ForecastRow;
use crate::store::Store;

/// Forecast buckets in force.
#[derive(Debug)]
pub struct Forecasts {
    rows: RwLock<Arc<Vec<ForecastRow>>>,
    store: Arc<Store>,
    /// The store's `data_version` when last read.
    seen: std::sync::Mutex<Option<i64>>,
}

impl Forecasts {
    /// Empty until [`Forecasts::reload`].
    pub fn new(store: Arc<Store>) -> Forecasts {
        Forecasts { rows: RwLock::new(Arc::new(Vec::new())), store, seen: std::sync::Mutex::new(None) }
    }

    /// Every bucket in force.
    pub fn all(&self) -> Arc<Vec<ForecastRow>> {
        self.rows.read().expect("forecast lock").clone()
    }

    /// The buckets of `groups`.
    pub fn of_groups(&self, groups: &BTreeSet<String>) -> Vec<ForecastRow> {
        self.all().iter().filter(|f| groups.contains(&f.group)).cloned().collect()
    }

    /// The buckets per group.
    pub fn by_group(&self) -> HashMap<String, Vec<ForecastRow>> {
        let mut by_group: HashMap<String, Vec<ForecastRow>> = HashMap::new();
        for f in self.all().iter() {
            by_group.entry(f.group.clone()).or_default().push(f.clone());
        }
        by_group
    }

    /// Read the buckets in force from the store again (after an import).
    pub fn reload(&self) {
        match self.store.forecasts(None, None, None, false) {
            Ok(rows) => {
                *self.rows.write().expect("forecast lock") =
                    Arc::new(rows.into_iter().map(|f| f.row).collect())
            }
            Err(e) => tracing::error!(error = %e, "forecasts could not be read"),
        }
    }

    /// Reload if another process (`aggregator import-forecast`) committed to
    /// the store since the last call, or the version cannot be read.
    pub fn reload_if_changed(&self) {
        let version = self.store.data_version().ok();
        let mut seen = self.seen.lock().expect("forecast version lock");
        if version.is_none() || version != *seen {
            self.reload();
            *seen = version;
        }
    }
}
