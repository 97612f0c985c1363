//! The embedded MQTT broker (rumqttd), for zero set-up use: one aggregator
//! process is the whole server side. Production plants can point the
//! aggregator at their own broker instead (`--broker`).
//!
//! rumqttd keeps nothing on disk and cannot stop; it runs on its own threads
//! until the process exits.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Largest payload the embedded broker forwards. Above the aggregator's own
/// limit, so oversize messages reach ingest and are counted rather than
/// dropped silently by the broker.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Fail early, with advice, if `addr` is taken.
pub fn check_free(addr: SocketAddr, what: &'static str, hint: &str) -> Result<(), Error> {
    match TcpListener::bind(addr) {
        Ok(l) => {
            drop(l);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(Error::AddrInUse { what, addr, hint: hint.to_string() })
        }
        Err(e) => Err(Error::Io(e)),
    }
}

/// Start the embedded broker on `listen` and wait until it accepts connections.
pub fn start(listen: SocketAddr) -> Result<(), Error> {
    check_free(
        listen,
        "MQTT",
        &format!(
            " (is another MQTT broker such as Mosquitto running?). Choose another port with \
             --mqtt-listen 127.0.0.1:{}, or use the running broker with --broker mqtt://{listen}",
            if listen.port() == 1883 { 1884 } else { listen.port().wrapping_add(1).max(1024) }
        ),
    )?;
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let router = rumqttd::RouterConfig {
        max_connections: 10_000,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let config = rumqttd::Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(Error::Io)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(Error::Broker(format!("did not start listening on {listen} within 10 s")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(%listen, "embedded MQTT broker listening");
    Ok(())
}
