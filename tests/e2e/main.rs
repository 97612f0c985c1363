//! End-to-end tests: the real `edge-agent` and `aggregator` binaries talking
//! through the embedded broker or a real Mosquitto, observed over HTTP.

mod acl;
mod agent_lifecycle;
mod assets_pages;
mod backfill;
mod broker_crash;
mod clock;
mod dashboard;
mod device_strings;
mod embedded_broker;
mod free_text;
mod fuzz;
mod history;
mod http_limits;
mod influx;
mod ingest_counters;
mod ownership;
mod pipeline;
mod planning;
mod poison;
mod report;
mod restart;
mod spool;
mod webhooks;
