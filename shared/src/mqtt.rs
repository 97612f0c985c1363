//! One MQTT client builder for both binaries (feature `mqtt`, the only part
//! of this crate that links rumqttc and tokio).
//!
//! [`ClientSettings`] names every option either binary sets; each field is
//! required, so a caller states its keep-alive, session, packet limits and
//! request capacity instead of inheriting a default by accident. What is
//! not a field stays at rumqttc's default. Both binaries also get the same
//! network options: `TCP_NODELAY` (telemetry is small and latency matters
//! more than packet count) and a [`CONNECTION_TIMEOUT_SECS`] connect timeout.

use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, TlsConfiguration, Transport};

use crate::broker::BrokerUrl;

/// Longest wait for the TCP (and TLS) connection to the broker, in seconds.
pub const CONNECTION_TIMEOUT_SECS: u64 = 10;

/// Incoming QoS 1 messages the broker may have in flight towards an MQTT 5
/// client ([`ClientSettings::options_v5`]).
pub const RECEIVE_MAXIMUM: u16 = 20;

/// What a client is built from. The password never reaches `Debug` output.
#[derive(Clone)]
pub struct ClientSettings<'a> {
    pub broker: &'a BrokerUrl,
    pub client_id: &'a str,
    /// With a username, the password (an absent one is sent as empty).
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub keep_alive: Duration,
    /// `false`: a persistent session (the broker keeps subscriptions and
    /// queued QoS 1 messages while the client is away).
    pub clean_session: bool,
    /// Largest packet accepted from the broker, in bytes.
    pub max_incoming_packet: usize,
    /// Largest publish sent, in bytes.
    pub max_outgoing_packet: usize,
    /// Outgoing QoS 1 publishes rumqttc keeps in flight; `None`: its default.
    pub inflight: Option<u16>,
    /// Requests that may wait for the event loop (the bounded channel
    /// between [`AsyncClient`] and [`EventLoop`]).
    pub request_capacity: usize,
    pub last_will: Option<LastWill>,
    /// `true`: incoming QoS 1 messages are acknowledged by the caller
    /// (`AsyncClient::ack`), once what they carry is durable; `false`: on
    /// receipt.
    pub manual_acks: bool,
    /// TLS for `mqtts://`; `None`: plain TCP.
    pub tls: Option<TlsConfiguration>,
}

impl std::fmt::Debug for ClientSettings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("broker", &self.broker)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("request_capacity", &self.request_capacity)
            .field("manual_acks", &self.manual_acks)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientSettings<'_> {
    /// The rumqttc options these settings make.
    pub fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(self.client_id, &self.broker.host, self.broker.port);
        o.set_keep_alive(self.keep_alive);
        o.set_clean_session(self.clean_session);
        if let Some(n) = self.inflight {
            o.set_inflight(n);
        }
        o.set_max_packet_size(self.max_incoming_packet, self.max_outgoing_packet);
        if let Some(will) = &self.last_will {
            o.set_last_will(will.clone());
        }
        o.set_manual_acks(self.manual_acks);
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(tls.clone()));
        }
        if let Some(user) = self.username {
            o.set_credentials(user, self.password.unwrap_or_default());
        }
        o
    }

    /// The same settings as MQTT 5 options. `max_incoming_packet` is also
    /// sent to the broker as the CONNECT's Maximum Packet Size, so a broker
    /// drops a larger message for this client instead of sending it (MQTT 5,
    /// 3.1.2.11.4; what rumqttc cannot read would otherwise end the
    /// connection and come again after every reconnect). A persistent
    /// session asks for a session that does not expire
    /// (`0xFFFFFFFF`): with MQTT 5 a session expiry of 0, the default, ends
    /// the session at every disconnect.
    pub fn options_v5(&self) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(self.client_id, &self.broker.host, self.broker.port);
        o.set_keep_alive(self.keep_alive);
        o.set_clean_start(self.clean_session);
        if !self.clean_session {
            o.set_session_expiry_interval(Some(u32::MAX));
        }
        if let Some(n) = self.inflight {
            o.set_outgoing_inflight_upper_limit(n);
        }
        o.set_max_packet_size(Some(u32::try_from(self.max_incoming_packet).unwrap_or(u32::MAX)));
        // Without a Receive Maximum the broker may keep 65,535 QoS 1
        // messages in flight towards us (Mosquitto does): a catch-up then
        // queues the PINGRESP behind megabytes of publishes, the keep-alive
        // fails and everything comes again. 20 is what Mosquitto allows a
        // 3.1.1 client (max_inflight_messages).
        o.set_receive_maximum(Some(RECEIVE_MAXIMUM));
        if let Some(will) = &self.last_will {
            let will = rumqttc::v5::mqttbytes::v5::LastWill::new(
                will.topic.clone(),
                will.message.to_vec(),
                qos_v5(will.qos),
                will.retain,
                None,
            );
            o.set_last_will(will);
        }
        o.set_manual_acks(self.manual_acks);
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(tls.clone()));
        }
        if let Some(user) = self.username {
            o.set_credentials(user, self.password.unwrap_or_default());
        }
        o.set_connection_timeout(CONNECTION_TIMEOUT_SECS);
        let mut net = o.network_options();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(CONNECTION_TIMEOUT_SECS);
        o.set_network_options(net);
        o
    }

    /// Build an MQTT 5 client and its event loop (nothing is connected yet).
    pub fn build_v5(&self) -> (rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
        rumqttc::v5::AsyncClient::new(self.options_v5(), self.request_capacity)
    }

    /// Build the client and its event loop (nothing is connected yet).
    pub fn build(&self) -> (AsyncClient, EventLoop) {
        let (client, mut eventloop) = AsyncClient::new(self.options(), self.request_capacity);
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(CONNECTION_TIMEOUT_SECS);
        eventloop.set_network_options(net);
        (client, eventloop)
    }
}

/// A broker connection error in words an engineer can act on: the likely
/// cause first, then rumqttc's own text. TLS failures otherwise read as
/// `TLS: I/O: invalid peer certificate: UnknownIssuer`; the keys named are
/// the `[mqtt]` keys of both binaries' configs.
pub fn explain(text: &str) -> String {
    let text = text.to_string();
    let has = |needle: &str| text.contains(needle);
    let cause = if has("UnknownIssuer") || has("BadSignature") {
        "the broker's certificate is not signed by the CA in mqtt.ca_file"
    } else if has("NotValidForName") {
        "the broker's certificate is not made for the host name in the broker URL"
    } else if has("CertificateExpired") {
        "the broker refused the client certificate (mqtt.cert_file): it has expired"
    } else if has("Expired") || has("expired") {
        "the broker's certificate has expired (or this machine's clock is wrong)"
    } else if has("NotValidYet") {
        "the broker's certificate is not valid yet (is this machine's clock right?)"
    } else if has("CertificateRequired") || has("BadCertificate") || has("UnknownCA") || has("AccessDenied") {
        "the broker refused the client certificate (mqtt.cert_file/key_file): missing or not from its CA"
    } else if has("InvalidContentType") || has("corrupt message") || has("InvalidMessage") {
        "the broker does not speak TLS on this port (a plain MQTT port? mqtts:// needs the TLS listener)"
    } else if text.starts_with("TLS: I/O:") && (has("reset by peer") || has("eof") || has("EOF")) {
        "the broker closed the connection during the TLS handshake: is this its plain MQTT port \
         (mqtts:// needs the TLS listener, 8883 by default)?"
    } else if has("BadUserNamePassword") || has("NotAuthorized") {
        "the broker refused the username or password"
    } else {
        return text;
    };
    format!("{cause} ({text})")
}

/// The MQTT 5 quality of service of a 3.1.1 one.
pub fn qos_v5(q: rumqttc::QoS) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    match q {
        rumqttc::QoS::AtMostOnce => Q5::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => Q5::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => Q5::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    fn broker() -> BrokerUrl {
        BrokerUrl::parse("mqtt://broker.plant:1884").unwrap()
    }

    fn settings(broker: &BrokerUrl) -> ClientSettings<'_> {
        ClientSettings {
            broker,
            client_id: "gw-1",
            username: None,
            password: None,
            keep_alive: Duration::from_secs(15),
            clean_session: true,
            max_incoming_packet: 1000,
            max_outgoing_packet: 2000,
            inflight: None,
            request_capacity: 7,
            last_will: None,
            manual_acks: false,
            tls: None,
        }
    }

    #[test]
    fn options_carry_every_setting() {
        let b = broker();
        let will = LastWill::new("status/gw-1", "gone", QoS::AtLeastOnce, true);
        let s = ClientSettings {
            username: Some("gw-1"),
            password: Some("hunter2"),
            clean_session: false,
            inflight: Some(80),
            last_will: Some(will.clone()),
            manual_acks: false,
            ..settings(&b)
        };
        let o = s.options();
        assert_eq!(o.broker_address(), ("broker.plant".to_string(), 1884));
        assert_eq!(o.client_id(), "gw-1");
        assert_eq!(o.keep_alive(), Duration::from_secs(15));
        assert!(!o.clean_session());
        assert_eq!(o.inflight(), 80);
        assert_eq!(o.max_packet_size(), 1000);
        assert_eq!(o.last_will(), Some(will));
        let login = o.credentials().unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("gw-1", "hunter2"));
        assert!(matches!(o.transport(), Transport::Tcp));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_stay_where_nothing_is_set_and_the_network_options_are_shared() {
        let b = broker();
        let o = settings(&b).options();
        let plain = MqttOptions::new("gw-1", "broker.plant", 1884);
        assert_eq!(o.inflight(), plain.inflight(), "inflight: None keeps rumqttc's default");
        assert_eq!(o.credentials(), None);
        assert_eq!(o.last_will(), None);
        let with_user = ClientSettings { username: Some("u"), ..settings(&b) }.options();
        assert_eq!(with_user.credentials().unwrap().password, "", "a username alone sends an empty password");
        let (_, eventloop) = settings(&b).build();
        let v5 = ClientSettings { clean_session: false, ..settings(&b) }.options_v5();
        assert_eq!(v5.max_packet_size(), Some(1000), "the broker is told the incoming limit");
        assert_eq!(v5.session_expiry_interval(), Some(u32::MAX), "a persistent session does not expire");
        assert!(!v5.clean_start());
        assert_eq!(v5.receive_maximum(), Some(RECEIVE_MAXIMUM));
        assert_eq!(settings(&b).options_v5().session_expiry_interval(), None);
        assert_eq!(eventloop.network_options.connection_timeout(), CONNECTION_TIMEOUT_SECS);
        assert_eq!(eventloop.mqtt_options.keep_alive(), Duration::from_secs(15));
    }
}
