//! The embedded MQTT broker (rumqttd), for zero set-up use: one aggregator
//! process is the whole server side. Production plants can point the
//! aggregator at their own broker instead (`--broker`).
//!
//! Two ways to run it:
//! - **open** (no `[[mqtt.agents]]` logins): rumqttd itself listens on
//!   `mqtt.listen`, which must then be a loopback address; anyone who can
//!   connect there may publish as any agent. For the demo and tests.
//! - **with logins**: rumqttd listens on a loopback port of its own and
//!   accepts only a secret made at each start; [`front`] listens on
//!   `mqtt.listen`, checks each agent's login and every topic it publishes
//!   or subscribes to ([`acl`], the shipped Mosquitto ACL's rights), caps
//!   connections per source address and their rate, and passes the rest
//!   on. The aggregator's own client connects to rumqttd directly with the
//!   secret.
//!
//! rumqttd keeps nothing on disk and cannot stop; it runs on its own threads
//! until the process exits.

pub mod acl;
pub mod front;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::metrics::BrokerMetrics;

/// Largest payload the embedded broker forwards. Above the aggregator's own
/// limit, so oversize messages reach ingest and are counted rather than
/// dropped silently by the broker.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Size of one in-memory segment of rumqttd's per-filter commit log.
pub const SEGMENT_BYTES: usize = 16 * 1024 * 1024;
/// Segments kept per filter (the oldest is dropped when one more is needed).
pub const SEGMENT_COUNT: usize = 4;

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

/// Where the aggregator's own client reaches the embedded broker.
#[derive(Debug, Clone)]
pub struct Started {
    /// rumqttd's own address: `listen` when open, a loopback port behind
    /// the front otherwise.
    pub broker: SocketAddr,
    /// The secret rumqttd accepts (with logins only).
    pub password: Option<String>,
}

/// How the embedded broker is guarded.
#[derive(Debug)]
pub struct Guard {
    pub logins: acl::Logins,
    pub limits: front::FrontLimits,
}

/// rumqttd's total connection cap (and the front's).
pub const MAX_CONNECTIONS: usize = 10_000;

/// Start the embedded broker on `listen` and wait until it accepts
/// connections: open, or behind the front with `guard`. Call from within
/// the tokio runtime (the front runs on it).
pub fn start(listen: SocketAddr, guard: Option<Guard>, metrics: &BrokerMetrics) -> Result<Started, Error> {
    check_free(
        listen,
        "MQTT",
        &format!(
            " (is another MQTT broker such as Mosquitto running?). Choose another port with \
             --mqtt-listen 127.0.0.1:{}, or use the running broker with --broker mqtt://{listen}",
            if listen.port() == 1883 { 1884 } else { listen.port().wrapping_add(1).max(1024) }
        ),
    )?;
    let Some(guard) = guard else {
        run_rumqttd(listen, None)?;
        tracing::warn!(%listen, "embedded MQTT broker listening without logins (loopback only): any local client may publish as any agent; set [[mqtt.agents]] logins for more");
        return Ok(Started { broker: listen, password: None });
    };
    // The front's listener first, so that a taken address fails the start.
    let outer = std::net::TcpListener::bind(listen).map_err(Error::Io)?;
    outer.set_nonblocking(true).map_err(Error::Io)?;
    let outer = tokio::net::TcpListener::from_std(outer).map_err(Error::Io)?;
    let secret = secret()?;
    // rumqttd cannot bind port 0 and say which port it got: take a free
    // one and let it go just before rumqttd binds it.
    let inner = {
        let probe = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).map_err(Error::Io)?;
        probe.local_addr().map_err(Error::Io)?
    };
    run_rumqttd(inner, Some(secret.clone()))?;
    for label in front::Refusal::LABELS {
        let _ = metrics.refused.get_or_create(&crate::metrics::ReasonLabel { reason: label });
    }
    for label in front::DENIED_LABELS {
        let _ = metrics.denied.get_or_create(&crate::metrics::ReasonLabel { reason: label });
    }
    let logins = guard.logins.len();
    let front = std::sync::Arc::new(front::Front {
        logins: guard.logins,
        upstream: inner,
        upstream_password: secret.clone(),
        admission: front::Admission::new(guard.limits),
        metrics: metrics.clone(),
    });
    tokio::spawn(front::run(outer, front));
    tracing::info!(%listen, logins, "embedded MQTT broker listening: agents log in, each writes only its own topics");
    Ok(Started { broker: inner, password: Some(secret) })
}

/// A new random secret, 32 bytes in hex.
fn secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Broker(format!("no random secret: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Run rumqttd on `listen` on its own thread; with `secret`, only a
/// CONNECT carrying it as the password is accepted.
fn run_rumqttd(listen: SocketAddr, secret: Option<String>) -> Result<(), Error> {
    let mut connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if let Some(secret) = secret {
        let secret = std::sync::Arc::new(secret);
        connections.set_auth_handler(move |_client, _user, password: String| {
            let ok: bool = subtle::ConstantTimeEq::ct_eq(password.as_bytes(), secret.as_bytes()).into();
            async move { ok }
        });
    }
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let router = rumqttd::RouterConfig {
        max_connections: MAX_CONNECTIONS,
        max_outgoing_packet_count: 200,
        // What rumqttd keeps in memory per subscription filter: at most
        // SEGMENT_COUNT segments of SEGMENT_BYTES (64 MiB); before, 10 of
        // 100 MiB let the process grow towards 1 GiB under a flood. A
        // subscriber more than that behind loses the oldest segment; for
        // ingest that is a seq gap, asked for again from the agents' kept
        // envelopes (the resend protocol).
        max_segment_size: SEGMENT_BYTES,
        max_segment_count: SEGMENT_COUNT,
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
    tracing::debug!(%listen, "rumqttd listening");
    Ok(())
}
