//! Counters and gauges served at `/metrics` (OpenMetrics text, which
//! Prometheus scrapes). Counter names end in `_total` on the wire.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use throughline_shared::RejectReason;

use crate::model::AlertKind;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// An outbox queue: `webhook:NAME` or `alertmanager`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabel {
    pub receiver: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    pub site: String,
    pub agent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AssetLabels {
    pub site: String,
    pub asset: String,
}

/// Every metric of the aggregator.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub messages: Counter,
    pub samples: Counter,
    pub rejected: Family<ReasonLabel, Counter>,
    pub duplicates: Counter,
    pub seq_gaps: Counter,
    pub seq_late_fills: Counter,
    pub seq_epochs: Counter,
    /// Sequence numbers asked for again and not resent: reported lost.
    pub seq_lost: Counter,
    /// Resend requests published to agents.
    pub resend_requests: Counter,
    pub counter_resets: Counter,
    /// Counter readings that dipped but not to near zero, by asset.
    pub counter_glitches: Family<AssetLabels, Counter>,
    /// Counter readings skipped as a step larger than the rated capacity
    /// could make, by asset.
    pub implausible_steps: Family<AssetLabels, Counter>,
    /// Counters taken at a new level after a jump, by asset.
    pub counter_rebases: Family<AssetLabels, Counter>,
    pub late_samples: Counter,
    /// Samples of late fills filled into the history of their gap.
    pub filled_samples: Counter,
    /// Samples applied behind their asset's last one after the agent's
    /// clock stepped back, by agent.
    pub clock_steps: Family<AgentLabels, Counter>,
    pub history_rows_written: Counter,
    pub history_flushes: Counter,
    pub history_flush_failures: Counter,
    pub history_flush_seconds: Histogram,
    pub history_rows_pruned: Counter,
    pub status_messages: Counter,
    /// Free-text fields of agent statuses cut to their caps.
    pub status_fields_cut: Counter,
    pub agent_online: Family<AgentLabels, Gauge>,
    pub unregistered_assets: Gauge,
    pub mqtt_connected: Gauge,
    pub mqtt_reconnects: Counter,
    pub journal_appends: Counter,
    pub journal_failures: Counter,
    /// Messages not acknowledged because the journal could not take them.
    pub messages_held: Counter,
    pub journal_replayed: Counter,
    pub alerts_opened: Family<KindLabel, Counter>,
    pub alerts_resolved: Family<KindLabel, Counter>,
    pub alerts_unresolved: Gauge,
    /// `schedule`/`dispatch` conditions that cleared before they had held
    /// for `alert_after_secs`, by kind.
    pub alert_conditions_debounced: Family<KindLabel, Counter>,
    pub alert_evaluations: Counter,
    pub alert_edge_evaluations: Counter,
    pub alert_events_published: Counter,
    pub alert_events_not_published: Counter,
    pub notifications_delivered: Counter,
    pub notification_failures: Counter,
    pub outbox_depth: Gauge,
    /// Undelivered events dropped, oldest first, because their receiver's
    /// queue held `outbox.max_pending`.
    pub outbox_dropped: Family<ReceiverLabel, Counter>,
    pub forecast_rows_imported: Counter,
    pub forecast_imports_refused: Counter,
    pub sse_clients: Gauge,
    pub sse_resyncs: Counter,
    /// Forecast imports refused before parsing: too large, too slow, busy.
    pub forecast_imports_cut: Family<ReasonLabel, Counter>,
    /// HTTP connections open now.
    pub http_connections: Gauge,
    /// Connections closed at accept because `http.max_connections` were open.
    pub http_connections_refused: Counter,
    /// Connections closed by a limit: `header_timeout`, `idle_timeout`.
    pub http_connections_closed: Family<ReasonLabel, Counter>,
    /// Failed accepts (e.g. out of file descriptors).
    pub http_accept_errors: Counter,
    pub influx: InfluxMetrics,
    pub broker: BrokerMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            messages: Counter::default(),
            samples: Counter::default(),
            rejected: Family::default(),
            duplicates: Counter::default(),
            seq_gaps: Counter::default(),
            seq_late_fills: Counter::default(),
            seq_epochs: Counter::default(),
            seq_lost: Counter::default(),
            resend_requests: Counter::default(),
            counter_resets: Counter::default(),
            counter_glitches: Family::default(),
            implausible_steps: Family::default(),
            counter_rebases: Family::default(),
            late_samples: Counter::default(),
            filled_samples: Counter::default(),
            clock_steps: Family::default(),
            history_rows_written: Counter::default(),
            history_flushes: Counter::default(),
            history_flush_failures: Counter::default(),
            // 1 ms .. about 16 s.
            history_flush_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 8)),
            history_rows_pruned: Counter::default(),
            status_messages: Counter::default(),
            status_fields_cut: Counter::default(),
            agent_online: Family::default(),
            unregistered_assets: Gauge::default(),
            mqtt_connected: Gauge::default(),
            mqtt_reconnects: Counter::default(),
            journal_appends: Counter::default(),
            journal_failures: Counter::default(),
            messages_held: Counter::default(),
            journal_replayed: Counter::default(),
            alerts_opened: Family::default(),
            alerts_resolved: Family::default(),
            alerts_unresolved: Gauge::default(),
            alert_conditions_debounced: Family::default(),
            alert_evaluations: Counter::default(),
            alert_edge_evaluations: Counter::default(),
            alert_events_published: Counter::default(),
            alert_events_not_published: Counter::default(),
            notifications_delivered: Counter::default(),
            notification_failures: Counter::default(),
            outbox_depth: Gauge::default(),
            outbox_dropped: Family::default(),
            forecast_rows_imported: Counter::default(),
            forecast_imports_refused: Counter::default(),
            sse_clients: Gauge::default(),
            sse_resyncs: Counter::default(),
            forecast_imports_cut: Family::default(),
            http_connections: Gauge::default(),
            http_connections_refused: Counter::default(),
            http_connections_closed: Family::default(),
            http_accept_errors: Counter::default(),
            influx: InfluxMetrics::default(),
            broker: BrokerMetrics::default(),
        };
        r.register(
            "throughline_messages_ingested",
            "Telemetry messages accepted (duplicates excluded)",
            m.messages.clone(),
        );
        r.register(
            "throughline_samples_ingested",
            "Samples in accepted telemetry messages",
            m.samples.clone(),
        );
        r.register("throughline_rejected_messages", "Messages refused, by reason", m.rejected.clone());
        r.register(
            "throughline_duplicate_messages",
            "Repeats of an (agent, seq) already seen, dropped",
            m.duplicates.clone(),
        );
        r.register(
            "throughline_seq_gaps",
            "Sequence numbers skipped by agents (not received when a later one was)",
            m.seq_gaps.clone(),
        );
        r.register(
            "throughline_seq_late_fills",
            "Messages that arrived after a later sequence number, filling a gap",
            m.seq_late_fills.clone(),
        );
        r.register(
            "throughline_seq_epochs",
            "Agents' sequence numbers that jumped beyond ingest.max_seq_jump: a new numbering, nothing counted missing",
            m.seq_epochs.clone(),
        );
        r.register(
            "throughline_seq_lost",
            "Sequence numbers missing after ingest.resend_attempts resend requests to their agent: reported lost (the agent's lost_ranges)",
            m.seq_lost.clone(),
        );
        r.register(
            "throughline_resend_requests",
            "Requests to agents to resend a missing seq range (throughline/v1/{site}/{agent}/resend)",
            m.resend_requests.clone(),
        );
        r.register(
            "throughline_counter_resets",
            "Output counters that went down to near zero (ingest.counter_reset_fraction of the last reading): a restart from zero",
            m.counter_resets.clone(),
        );
        r.register(
            "throughline_counter_glitches",
            "Output counter readings below the last good one but not near zero (jitter, a stale read): no output counted, by asset",
            m.counter_glitches.clone(),
        );
        r.register(
            "throughline_implausible_steps",
            "Output counter steps above ingest.implausible_step_factor times what the registered asset's rated capacity makes in the time since the last good reading: no output counted, by asset",
            m.implausible_steps.clone(),
        );
        r.register(
            "throughline_counter_rebases",
            "Output counters that jumped and stayed at the new level for several readings: taken as the new base, no output counted for the jump, by asset",
            m.counter_rebases.clone(),
        );
        r.register(
            "throughline_late_samples",
            "Samples older than their asset's last one, from a late fill of a seq gap or out of order in their envelope: not applied to live state",
            m.late_samples.clone(),
        );
        r.register(
            "throughline_filled_samples",
            "Samples of a late fill of a seq gap (a resent envelope) that lie in the interval over the gap: filled into the history, not live state",
            m.filled_samples.clone(),
        );
        r.register(
            "throughline_clock_steps",
            "Samples older than their asset's last one in an agent's next envelope: its clock stepped back; applied, by agent",
            m.clock_steps.clone(),
        );
        r.register(
            "throughline_history_rows_written",
            "Per-minute history rows written (inserted or updated) to the store",
            m.history_rows_written.clone(),
        );
        r.register(
            "throughline_history_flushes",
            "History flushes that wrote rows (one transaction each)",
            m.history_flushes.clone(),
        );
        r.register(
            "throughline_history_flush_failures",
            "History flushes that failed (their rows are retried)",
            m.history_flush_failures.clone(),
        );
        r.register(
            "throughline_history_flush_seconds",
            "Time to write one history flush",
            m.history_flush_seconds.clone(),
        );
        r.register(
            "throughline_history_rows_pruned",
            "History rows deleted for being older than history.retention_days",
            m.history_rows_pruned.clone(),
        );
        r.register(
            "throughline_status_messages",
            "Agent status messages (birth and last will)",
            m.status_messages.clone(),
        );
        r.register(
            "throughline_status_fields_cut",
            "Free-text fields of agent statuses cut to their caps (software, health source name and error: 200 characters; sources: 64)",
            m.status_fields_cut.clone(),
        );
        r.register(
            "throughline_agent_online",
            "1 while the agent's status says online",
            m.agent_online.clone(),
        );
        r.register(
            "throughline_unregistered_assets",
            "Assets reporting telemetry without being registered",
            m.unregistered_assets.clone(),
        );
        r.register(
            "throughline_mqtt_connected",
            "1 while the aggregator is connected to the broker",
            m.mqtt_connected.clone(),
        );
        r.register(
            "throughline_mqtt_reconnects",
            "Times the connection to the broker was lost or could not be made",
            m.mqtt_reconnects.clone(),
        );
        r.register(
            "throughline_journal_appends",
            "Messages written to the ingest journal before being acknowledged",
            m.journal_appends.clone(),
        );
        r.register(
            "throughline_journal_failures",
            "Failed journal writes or syncs (disk full, read-only)",
            m.journal_failures.clone(),
        );
        r.register(
            "throughline_messages_held",
            "Messages left unacknowledged for the broker to resend, because the journal could not take them",
            m.messages_held.clone(),
        );
        r.register(
            "throughline_journal_replayed",
            "Journal records replayed at start (received after the last checkpoint)",
            m.journal_replayed.clone(),
        );
        r.register("throughline_alerts_opened", "Alerts opened, by kind", m.alerts_opened.clone());
        r.register("throughline_alerts_resolved", "Alerts resolved, by kind", m.alerts_resolved.clone());
        r.register(
            "throughline_alerts_unresolved",
            "Alerts open or acknowledged now",
            m.alerts_unresolved.clone(),
        );
        r.register(
            "throughline_alert_conditions_debounced",
            "Schedule and dispatch conditions that cleared before they had held for their group's alert_after_secs (event time), by kind: counted, not alerted",
            m.alert_conditions_debounced.clone(),
        );
        for kind in [AlertKind::Schedule, AlertKind::Dispatch] {
            let _ = m.alert_conditions_debounced.get_or_create(&KindLabel { kind: kind.as_str() });
        }
        r.register(
            "throughline_alert_evaluations",
            "Alert evaluations completed",
            m.alert_evaluations.clone(),
        );
        r.register(
            "throughline_alert_edge_evaluations",
            "Alert evaluations of single groups, run at once when an asset's state changed or a feeder's load crossed its rating",
            m.alert_edge_evaluations.clone(),
        );
        r.register(
            "throughline_alert_events_published",
            "Alert events published on MQTT",
            m.alert_events_published.clone(),
        );
        r.register(
            "throughline_alert_events_not_published",
            "Alert events not published on MQTT (client queue full or no site); still delivered from the outbox",
            m.alert_events_not_published.clone(),
        );
        r.register(
            "throughline_sse_clients",
            "Dashboard pages (event streams) connected now",
            m.sse_clients.clone(),
        );
        r.register(
            "throughline_sse_resyncs",
            "Event stream clients that fell more than the channel's capacity behind and were sent a fresh snapshot",
            m.sse_resyncs.clone(),
        );
        r.register(
            "throughline_notifications_delivered",
            "Outbox deliveries acknowledged by receivers",
            m.notifications_delivered.clone(),
        );
        r.register(
            "throughline_notification_failures",
            "Outbox delivery attempts that failed (retried)",
            m.notification_failures.clone(),
        );
        r.register("throughline_outbox_depth", "Notifications waiting for delivery", m.outbox_depth.clone());
        r.register(
            "throughline_outbox_dropped",
            "Undelivered notifications dropped, oldest first, because their receiver's queue was full (outbox.max_pending)",
            m.outbox_dropped.clone(),
        );
        r.register(
            "throughline_forecast_rows_imported",
            "Forecast rows imported",
            m.forecast_rows_imported.clone(),
        );
        r.register(
            "throughline_forecast_imports_refused",
            "Forecast imports refused for errors",
            m.forecast_imports_refused.clone(),
        );
        r.register(
            "throughline_forecast_imports_cut",
            "Forecast imports refused before parsing, by reason (too_large, body_timeout)",
            m.forecast_imports_cut.clone(),
        );
        r.register("throughline_http_connections", "HTTP connections open", m.http_connections.clone());
        r.register(
            "throughline_http_connections_refused",
            "HTTP connections closed at accept: http.max_connections were open",
            m.http_connections_refused.clone(),
        );
        r.register(
            "throughline_http_connections_closed",
            "HTTP connections closed by a limit, by reason (header_timeout, idle_timeout)",
            m.http_connections_closed.clone(),
        );
        r.register(
            "throughline_http_accept_errors",
            "HTTP accepts that failed (e.g. out of file descriptors)",
            m.http_accept_errors.clone(),
        );
        for reason in ["too_large", "body_timeout"] {
            let _ = m.forecast_imports_cut.get_or_create(&ReasonLabel { reason });
        }
        for reason in ["header_timeout", "idle_timeout"] {
            let _ = m.http_connections_closed.get_or_create(&ReasonLabel { reason });
        }
        for reason in RejectReason::ALL {
            let _ = m.rejected.get_or_create(&ReasonLabel { reason: reason.label() });
        }
        m.influx.register(&mut r);
        m.broker.register(&mut r);
        Metrics { registry: r, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The embedded broker's front door (`broker::front`, used when the
/// embedded broker has logins): registered always, zero otherwise.
#[derive(Debug, Clone, Default)]
pub struct BrokerMetrics {
    /// Connections closed before they were let in, by reason.
    pub refused: Family<ReasonLabel, Counter>,
    /// Logged-in connections closed for a packet their login may not send,
    /// by what it was (`publish`, `subscribe`, `oversize`, `protocol`).
    pub denied: Family<ReasonLabel, Counter>,
    /// Connections open through the front door now.
    pub connections: Gauge,
}

impl BrokerMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "throughline_broker_connections_refused",
            "Connections to the embedded broker closed before they were let in, by reason (per_address_cap, connect_rate, total_cap, too_many_addresses, connect_timeout, not_connect, no_login, bad_login, will_denied)",
            self.refused.clone(),
        );
        r.register(
            "throughline_broker_packets_denied",
            "Connections to the embedded broker closed for a packet the login may not send, by what (publish, subscribe, oversize, protocol)",
            self.denied.clone(),
        );
        r.register(
            "throughline_broker_connections",
            "Connections open through the embedded broker's front door",
            self.connections.clone(),
        );
    }
}

/// The InfluxDB sink's counters (`sink::influx`); registered whether or not
/// the sink is configured, so dashboards and alert rules see zeros.
#[derive(Debug, Clone, Default)]
pub struct InfluxMetrics {
    pub points_written: Counter,
    /// By reason: `buffer_full`, `rejected` (the server refused the batch as
    /// malformed), `shutdown` (still held when the aggregator stopped).
    pub points_dropped: Family<ReasonLabel, Counter>,
    pub write_failures: Counter,
    pub buffer_points: Gauge,
    pub last_success: Gauge,
}

impl InfluxMetrics {
    /// Reasons for dropped points, listed from zero.
    pub const DROP_REASONS: [&'static str; 3] = ["buffer_full", "rejected", "shutdown"];

    pub fn dropped(&self, reason: &'static str) -> Counter {
        self.points_dropped.get_or_create(&ReasonLabel { reason }).clone()
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "throughline_influx_points_written",
            "Points the InfluxDB server acknowledged",
            self.points_written.clone(),
        );
        r.register(
            "throughline_influx_points_dropped",
            "Points given up, by reason (buffer_full: oldest dropped while the server was away)",
            self.points_dropped.clone(),
        );
        r.register(
            "throughline_influx_write_failures",
            "Writes to the InfluxDB server that failed (retried with backoff)",
            self.write_failures.clone(),
        );
        r.register(
            "throughline_influx_buffer_points",
            "Points held for the InfluxDB server (waiting or being written)",
            self.buffer_points.clone(),
        );
        r.register(
            "throughline_influx_last_success_timestamp_seconds",
            "Unix time of the last successful write to the InfluxDB server",
            self.last_success.clone(),
        );
        for reason in Self::DROP_REASONS {
            let _ = self.dropped(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_reason_from_the_start() {
        let m = Metrics::new();
        m.rejected.get_or_create(&ReasonLabel { reason: "bad_json" }).inc();
        let text = m.render();
        assert!(text.contains("throughline_rejected_messages_total{reason=\"bad_json\"} 1"), "{text}");
        assert!(text.contains("throughline_rejected_messages_total{reason=\"oversize\"} 0"), "{text}");
        assert!(text.contains("throughline_messages_ingested_total 0"), "{text}");
    }

    #[test]
    fn glitches_implausible_steps_and_clock_steps_are_labelled() {
        let m = Metrics::new();
        m.counter_glitches.get_or_create(&AssetLabels { site: "s".into(), asset: "a".into() }).inc_by(2);
        m.implausible_steps.get_or_create(&AssetLabels { site: "s".into(), asset: "a".into() }).inc();
        m.counter_rebases.get_or_create(&AssetLabels { site: "s".into(), asset: "b".into() }).inc();
        m.clock_steps.get_or_create(&AgentLabels { site: "s".into(), agent: "gw".into() }).inc();
        let text = m.render();
        assert!(text.contains("throughline_counter_glitches_total{site=\"s\",asset=\"a\"} 2"), "{text}");
        assert!(text.contains("throughline_implausible_steps_total{site=\"s\",asset=\"a\"} 1"), "{text}");
        assert!(text.contains("throughline_counter_rebases_total{site=\"s\",asset=\"b\"} 1"), "{text}");
        assert!(text.contains("throughline_clock_steps_total{site=\"s\",agent=\"gw\"} 1"), "{text}");
    }

    #[test]
    fn influx_metrics_are_listed_from_zero() {
        let text = Metrics::new().render();
        for line in [
            "throughline_influx_points_written_total 0",
            "throughline_influx_points_dropped_total{reason=\"buffer_full\"} 0",
            "throughline_influx_points_dropped_total{reason=\"rejected\"} 0",
            "throughline_influx_points_dropped_total{reason=\"shutdown\"} 0",
            "throughline_influx_write_failures_total 0",
            "throughline_influx_buffer_points 0",
            "throughline_influx_last_success_timestamp_seconds 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }
}
