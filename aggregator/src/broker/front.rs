//! The embedded broker's front door when logins are configured: our own TCP
//! listener in front of rumqttd, because rumqttd can check a password
//! (`ConnectionSettings::external_auth`) but has no hook to check a topic
//! per client, and caps only its total connections.
//!
//! Per connection, in this order:
//! 1. admission: at most `max_per_address` open connections and a CONNECT
//!    rate of `connects_per_sec` (burst `connect_burst`) per source
//!    address, `max_connections` in all; beyond that the socket is closed
//!    at once (counted by reason);
//! 2. the CONNECT within `connect_timeout`: username and password checked
//!    against [`Logins`]; refused with CONNACK 4 (bad login) or 5 (a last
//!    will the login may not write), counted;
//! 3. the CONNECT is passed on to rumqttd (on a loopback port of its own)
//!    with the client id set to the username, as Mosquitto's
//!    `use_username_as_clientid`, so no client can take over another's
//!    session, and the password replaced by the secret rumqttd accepts;
//! 4. then every packet from the client is framed and checked before it
//!    is passed on: a PUBLISH outside the login's own topics, or a
//!    SUBSCRIBE to anything but its own resend and notice topics, closes
//!    the connection (counted, logged at most now and then). What rumqttd
//!    sends back is copied unchanged.
//!
//! Mosquitto drops a refused publish silently and answers a refused
//! subscribe with a failure code; closing the connection instead makes a
//! misconfigured device visible at once (its log shows the disconnects).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Login, Packet};
use rumqttc::mqttbytes::{check, Error as FrameError};
use throughline_shared::throttle::FailureLog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::acl::{LoginRefusal, Logins, Rights};
use crate::metrics::BrokerMetrics;

/// Limits of the front door.
#[derive(Debug, Clone)]
pub struct FrontLimits {
    /// Open connections from one source address.
    pub max_per_address: usize,
    /// New connections per second from one source address (sustained).
    pub connects_per_sec: f64,
    /// New connections from one source address in a burst.
    pub connect_burst: f64,
    /// Open connections in all (rumqttd's `max_connections`).
    pub max_connections: usize,
    /// Source addresses remembered for the limits above; an address with
    /// no open connection and a full allowance is forgotten first.
    pub max_addresses: usize,
    /// Time a client has to send its CONNECT.
    pub connect_timeout: Duration,
    /// Largest packet passed on; a larger one closes the connection.
    pub max_packet: usize,
}

/// Why a connection was closed at the door (metrics labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerAddressCap,
    ConnectRate,
    TotalCap,
    TooManyAddresses,
    ConnectTimeout,
    NotConnect,
    Login(LoginRefusal),
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerAddressCap => "per_address_cap",
            Refusal::ConnectRate => "connect_rate",
            Refusal::TotalCap => "total_cap",
            Refusal::TooManyAddresses => "too_many_addresses",
            Refusal::ConnectTimeout => "connect_timeout",
            Refusal::NotConnect => "not_connect",
            Refusal::Login(l) => l.label(),
        }
    }

    /// Every label, so the metric shows zeros from the start.
    pub const LABELS: [&'static str; 9] = [
        "per_address_cap",
        "connect_rate",
        "total_cap",
        "too_many_addresses",
        "connect_timeout",
        "not_connect",
        "no_login",
        "bad_login",
        "will_denied",
    ];
}

/// Why an admitted connection was closed for what it sent (metrics labels).
pub const DENIED_LABELS: [&str; 4] = ["publish", "subscribe", "oversize", "protocol"];

#[derive(Debug)]
struct Entry {
    open: usize,
    tokens: f64,
    at: Instant,
}

/// Per-address admission: open connections and a token bucket of CONNECTs.
/// Pure apart from its lock; the caller passes the time.
#[derive(Debug)]
pub struct Admission {
    limits: FrontLimits,
    state: Mutex<(HashMap<IpAddr, Entry>, usize)>,
}

/// An admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut st = self.admission.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 -= 1;
        if let Some(e) = st.0.get_mut(&self.ip) {
            e.open -= 1;
        }
    }
}

impl Admission {
    pub fn new(limits: FrontLimits) -> Arc<Admission> {
        Arc::new(Admission { limits, state: Mutex::new((HashMap::new(), 0)) })
    }

    /// Admit one new connection from `ip` at `now`, or say why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Refusal> {
        let l = &self.limits;
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (map, total) = &mut *guard;
        if *total >= l.max_connections {
            return Err(Refusal::TotalCap);
        }
        if !map.contains_key(&ip) && map.len() >= l.max_addresses {
            // Forget addresses that have nothing open and a full allowance.
            let refill = Duration::from_secs_f64(l.connect_burst / l.connects_per_sec.max(f64::MIN_POSITIVE));
            map.retain(|_, e| e.open > 0 || now.duration_since(e.at) < refill);
            if map.len() >= l.max_addresses {
                return Err(Refusal::TooManyAddresses);
            }
        }
        let e = map.entry(ip).or_insert(Entry { open: 0, tokens: l.connect_burst, at: now });
        let elapsed = now.saturating_duration_since(e.at).as_secs_f64();
        e.tokens = (e.tokens + elapsed * l.connects_per_sec).min(l.connect_burst);
        e.at = now;
        if e.open >= l.max_per_address {
            return Err(Refusal::PerAddressCap);
        }
        if e.tokens < 1.0 {
            return Err(Refusal::ConnectRate);
        }
        e.tokens -= 1.0;
        e.open += 1;
        *total += 1;
        Ok(Admitted { admission: self.clone(), ip })
    }
}

/// Everything a connection needs.
#[derive(Debug)]
pub struct Front {
    pub logins: Logins,
    /// Where rumqttd listens (loopback).
    pub upstream: SocketAddr,
    /// The password rumqttd accepts, put into every CONNECT passed on.
    pub upstream_password: String,
    pub admission: Arc<Admission>,
    pub metrics: BrokerMetrics,
}

/// Accept connections on `listener` until the process ends.
pub async fn run(listener: TcpListener, front: Arc<Front>) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, typically: wait a little, do not spin.
                tracing::warn!(error = %e, "embedded broker: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match front.admission.admit(peer.ip(), Instant::now()) {
            Ok(a) => a,
            Err(r) => {
                front.refused(r, peer);
                drop(socket);
                continue;
            }
        };
        let front = front.clone();
        tokio::spawn(async move {
            front.metrics.connections.inc();
            if let Err(r) = serve(socket, peer, &front).await {
                front.refused(r, peer);
            }
            front.metrics.connections.dec();
            drop(admitted);
        });
    }
}

impl Front {
    fn refused(&self, r: Refusal, peer: SocketAddr) {
        let c = self.metrics.refused.get_or_create(&crate::metrics::ReasonLabel { reason: r.label() });
        c.inc();
        if FailureLog::connection().logs(c.get()) {
            tracing::warn!(%peer, reason = r.label(), refused = c.get(), "embedded broker: connection refused");
        }
    }

    fn denied(&self, what: &'static str, rights: &Rights, topic: &str, peer: SocketAddr) {
        let c = self.metrics.denied.get_or_create(&crate::metrics::ReasonLabel { reason: what });
        c.inc();
        if FailureLog::connection().logs(c.get()) {
            tracing::warn!(
                %peer,
                agent = rights.agent(),
                what,
                topic,
                denied = c.get(),
                "embedded broker: not allowed for this login; connection closed"
            );
        }
    }
}

/// Read into `buf` until it holds one whole packet; its length.
async fn read_frame(socket: &mut TcpStream, buf: &mut BytesMut, max: usize) -> Result<usize, ()> {
    loop {
        match check(buf.iter(), max) {
            Ok(h) => return Ok(h.frame_length()),
            Err(FrameError::InsufficientBytes(_)) => {
                buf.reserve(4096);
                if socket.read_buf(buf).await.map_err(|_| ())? == 0 {
                    return Err(());
                }
            }
            Err(_) => return Err(()),
        }
    }
}

/// Answer a CONNECT with a refusal.
async fn refuse(client: &mut TcpStream, code: ConnectReturnCode) {
    let mut out = BytesMut::new();
    if ConnAck::new(code, false).write(&mut out).is_ok() {
        let _ = client.write_all(&out).await;
    }
}

async fn serve(mut client: TcpStream, peer: SocketAddr, front: &Front) -> Result<(), Refusal> {
    let _ = client.set_nodelay(true);
    let limits = &front.admission.limits;
    let mut buf = BytesMut::with_capacity(4096);
    let len = match tokio::time::timeout(limits.connect_timeout, read_frame(&mut client, &mut buf, 64 * 1024))
        .await
    {
        Err(_) => return Err(Refusal::ConnectTimeout),
        Ok(Err(())) => return Err(Refusal::NotConnect),
        Ok(Ok(len)) => len,
    };
    let mut first = buf.split_to(len);
    let Ok(Packet::Connect(mut connect)) = Packet::read(&mut first, 64 * 1024) else {
        return Err(Refusal::NotConnect);
    };
    let Some(login) = connect.login.take() else {
        refuse(&mut client, ConnectReturnCode::NotAuthorized).await;
        return Err(Refusal::Login(LoginRefusal::NoLogin));
    };
    let rights = match front.logins.check(&login.username, &login.password) {
        Ok(r) => r,
        Err(e) => {
            refuse(&mut client, ConnectReturnCode::BadUserNamePassword).await;
            return Err(Refusal::Login(e));
        }
    };
    if connect.last_will.as_ref().is_some_and(|w| !rights.may_publish(&w.topic)) {
        refuse(&mut client, ConnectReturnCode::NotAuthorized).await;
        return Err(Refusal::Login(LoginRefusal::WillDenied));
    }
    connect.client_id = rights.agent().to_string();
    connect.login = Some(Login::new(rights.agent(), front.upstream_password.as_str()));
    let mut upstream = match TcpStream::connect(front.upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "embedded broker: the broker behind the front does not answer");
            refuse(&mut client, ConnectReturnCode::ServiceUnavailable).await;
            return Ok(());
        }
    };
    let _ = upstream.set_nodelay(true);
    let mut out = BytesMut::new();
    if Packet::Connect(connect).write(&mut out, 64 * 1024).is_err() || upstream.write_all(&out).await.is_err()
    {
        return Ok(());
    }
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let (mut cl_rd, mut cl_wr) = client.into_split();
    let down = async move {
        let _ = tokio::io::copy(&mut up_rd, &mut cl_wr).await;
        let _ = cl_wr.shutdown().await;
    };
    let checked = rights.clone();
    let up = async move {
        let end = relay(&mut cl_rd, &mut up_wr, &mut buf, limits.max_packet, &checked).await;
        let _ = up_wr.shutdown().await;
        end
    };
    let end = tokio::select! {
        _ = down => None,
        end = up => end,
    };
    if let Some((what, topic)) = end {
        front.denied(what, &rights, &topic, peer);
    }
    Ok(())
}

/// Pass the client's packets on, checking each; returns why it stopped
/// if a packet was refused (what, and the topic or filter).
async fn relay(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    buf: &mut BytesMut,
    max_packet: usize,
    rights: &Rights,
) -> Option<(&'static str, String)> {
    loop {
        // Check every whole packet in the buffer, then pass them on at once.
        let mut ok = 0;
        let refused = loop {
            match check(buf[ok..].iter(), max_packet) {
                Ok(h) => {
                    let frame = &buf[ok..ok + h.frame_length()];
                    if let Err(why) = allowed(frame, rights) {
                        break Some(why);
                    }
                    ok += h.frame_length();
                }
                Err(FrameError::InsufficientBytes(_)) => break None,
                Err(FrameError::PayloadSizeLimitExceeded(_)) => break Some(("oversize", String::new())),
                Err(_) => break Some(("protocol", String::new())),
            }
        };
        if ok > 0 {
            if wr.write_all(&buf[..ok]).await.is_err() {
                return None;
            }
            buf.advance(ok);
        }
        if refused.is_some() {
            return refused;
        }
        buf.reserve(16 * 1024);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Whether one packet (fixed header included) may pass.
fn allowed(frame: &[u8], rights: &Rights) -> Result<(), (&'static str, String)> {
    match frame[0] >> 4 {
        // PUBLISH: the topic is the first field after the fixed header.
        3 => {
            let topic = publish_topic(frame).ok_or(("protocol", String::new()))?;
            if rights.may_publish(topic) {
                Ok(())
            } else {
                Err(("publish", topic.to_string()))
            }
        }
        // SUBSCRIBE: every filter must be allowed.
        8 => match Packet::read(&mut BytesMut::from(frame), frame.len()) {
            Ok(Packet::Subscribe(s)) => match s.filters.iter().find(|f| !rights.may_subscribe(&f.path)) {
                None => Ok(()),
                Some(f) => Err(("subscribe", f.path.clone())),
            },
            _ => Err(("protocol", String::new())),
        },
        // A second CONNECT is a protocol violation.
        1 => Err(("protocol", String::new())),
        _ => Ok(()),
    }
}

/// The topic of a PUBLISH frame, if it is well formed.
fn publish_topic(frame: &[u8]) -> Option<&str> {
    // Fixed header: one byte, then 1-4 bytes of remaining length.
    let header = 1 + frame[1..].iter().take(4).position(|b| b & 0x80 == 0)? + 1;
    let len = u16::from_be_bytes([*frame.get(header)?, *frame.get(header + 1)?]) as usize;
    std::str::from_utf8(frame.get(header + 2..header + 2 + len)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::Publish;
    use rumqttc::QoS;

    fn limits() -> FrontLimits {
        FrontLimits {
            max_per_address: 3,
            connects_per_sec: 2.0,
            connect_burst: 4.0,
            max_connections: 5,
            max_addresses: 2,
            connect_timeout: Duration::from_secs(1),
            max_packet: 1024,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn one_address_gets_its_cap_and_its_rate_not_more() {
        let a = Admission::new(limits());
        let t0 = Instant::now();
        let held: Vec<_> = (0..3).map(|_| a.admit(ip(1), t0).unwrap()).collect();
        assert_eq!(a.admit(ip(1), t0).unwrap_err(), Refusal::PerAddressCap);
        // Another address is not held up by the first.
        let other = a.admit(ip(2), t0).unwrap();
        drop(held);
        // Burst of 4: one token left after three, none after four.
        let fourth = a.admit(ip(1), t0).unwrap();
        drop(fourth);
        assert_eq!(a.admit(ip(1), t0).unwrap_err(), Refusal::ConnectRate);
        // Half a second later one more (2 per second).
        drop(a.admit(ip(1), t0 + Duration::from_millis(500)).unwrap());
        assert_eq!(a.admit(ip(1), t0 + Duration::from_millis(500)).unwrap_err(), Refusal::ConnectRate);
        drop(other);
    }

    #[test]
    fn the_total_and_the_remembered_addresses_are_bounded() {
        let a = Admission::new(limits());
        let t0 = Instant::now();
        let _one = a.admit(ip(1), t0).unwrap();
        let _two = a.admit(ip(2), t0).unwrap();
        // Two addresses remembered, both with a connection open: a third is refused.
        assert_eq!(a.admit(ip(3), t0).unwrap_err(), Refusal::TooManyAddresses);
        drop(_two);
        // ip 2 has nothing open, but its allowance refills only after 2 s.
        assert_eq!(a.admit(ip(3), t0).unwrap_err(), Refusal::TooManyAddresses);
        let _three = a.admit(ip(3), t0 + Duration::from_secs(3)).unwrap();
        let more: Vec<_> = (0..2).map(|_| a.admit(ip(1), t0 + Duration::from_secs(3)).unwrap()).collect();
        let _fifth = a.admit(ip(3), t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(a.admit(ip(3), t0 + Duration::from_secs(3)).unwrap_err(), Refusal::TotalCap);
        drop(more);
    }

    #[test]
    fn the_topic_of_a_publish_frame_is_read_for_any_length_field() {
        for payload_len in [0usize, 100, 200, 20_000, 3_000_000] {
            let mut p =
                Publish::new("throughline/v1/s/gw/a/telemetry", QoS::AtLeastOnce, vec![b'x'; payload_len]);
            p.pkid = 7;
            let mut out = BytesMut::new();
            Packet::Publish(p).write(&mut out, usize::MAX).unwrap();
            assert_eq!(publish_topic(&out), Some("throughline/v1/s/gw/a/telemetry"), "{payload_len}");
        }
        assert_eq!(publish_topic(&[0x30, 0x01, 0x00]), None, "truncated");
    }
}
