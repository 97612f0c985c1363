//! Time-series sinks: accepted telemetry copied to an external database.
//! A sink never slows ingest: ingest hands it points without waiting, the
//! sink's own task writes them, and a bounded buffer with a stated policy
//! absorbs an outage of the database.
//!
//! - [`influx`]: any server speaking the InfluxDB v2 write API (InfluxDB 2
//!   and 3, VictoriaMetrics). Schema in docs/timeseries.md.

pub mod influx;
