//! The ingest connection in either MQTT version, behind one small surface:
//! MQTT 3.1.1 to the embedded broker (rumqttd's own payload limit keeps
//! larger messages out) and by default to an external one; MQTT 5 to an
//! external broker with `mqtt.protocol = "5"`, so that the broker can be
//! told the largest packet ingest takes.
//!
//! # Why MQTT 5 for an external broker
//! rumqttc reads a packet whole, and refuses one above its
//! `max_incoming_packet` at the fixed header, before its packet id is
//! known: the connection ends, nothing can be acknowledged, and with a
//! persistent session the broker sends the same message again after every
//! reconnect (one 10 MB message stopped all ingest). A bigger limit only
//! moves the line, at the cost of holding each such message in memory.
//! MQTT 5 lets the client say its Maximum Packet Size in CONNECT; the
//! broker then discards a larger message for this client "as if it had
//! completed sending" it (MQTT 5, 3.1.2.11.4). Messages between the
//! payload limit and the packet limit still arrive and are counted
//! `oversize` by the decoder.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet as Packet5, Publish as Publish5};
use rumqttc::{Event, Packet, Publish, QoS, SubscribeFilter};
use throughline_shared::mqtt::{explain, qos_v5, ClientSettings};

/// Which MQTT version the connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V311 => "3.1.1",
            Protocol::V5 => "5",
        }
    }
}

/// A publish received, in either version: what ingest reads, and what its
/// acknowledgement needs (QoS and packet id).
#[derive(Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pkid: u16,
}

/// What the connection reports, as far as ingest cares.
#[derive(Debug)]
pub enum LinkEvent {
    Message(Message),
    ConnAck {
        session_present: bool,
    },
    SubAck,
    /// Our DISCONNECT went out (the clean end).
    Disconnected,
    Other,
}

/// The requesting half (cheap to clone; shared with alert publishing).
#[derive(Debug, Clone)]
pub enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The event-loop half.
pub enum Events {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Events::V311(_) => "Events::V311",
            Events::V5(_) => "Events::V5",
        })
    }
}

/// Build the client in `protocol`.
pub fn build(settings: &ClientSettings<'_>, protocol: Protocol) -> (Client, Events) {
    match protocol {
        Protocol::V311 => {
            let (c, e) = settings.build();
            (Client::V311(c), Events::V311(Box::new(e)))
        }
        Protocol::V5 => {
            let (c, e) = settings.build_v5();
            (Client::V5(c), Events::V5(Box::new(e)))
        }
    }
}

impl Client {
    /// Queue a publish; `Err` when the request channel is full (or closed).
    pub fn try_publish(&self, topic: String, qos: QoS, retain: bool, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Client::V311(c) => c.try_publish(topic, qos, retain, payload).map_err(|e| e.to_string()),
            Client::V5(c) => c.try_publish(topic, qos_v5(qos), retain, payload).map_err(|e| e.to_string()),
        }
    }

    /// Queue the acknowledgement of `m`; `false` when the channel is full.
    pub fn try_ack(&self, m: &Message) -> bool {
        match self {
            Client::V311(c) => {
                let mut p = Publish::new("", m.qos, Vec::new());
                p.pkid = m.pkid;
                c.try_ack(&p).is_ok()
            }
            Client::V5(c) => {
                let mut p = Publish5::new("", qos_v5(m.qos), Vec::new(), None);
                p.pkid = m.pkid;
                c.try_ack(&p).is_ok()
            }
        }
    }

    /// One SUBSCRIBE for every filter, QoS 1.
    pub fn try_subscribe_all(&self, filters: &[&str]) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .try_subscribe_many(
                    filters.iter().map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce)),
                )
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|f| Filter::new(f.to_string(), rumqttc::v5::mqttbytes::QoS::AtLeastOnce)),
                )
                .map_err(|e| e.to_string()),
        }
    }

    pub fn try_disconnect(&self) {
        let _ = match self {
            Client::V311(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

impl Events {
    /// The next event; an error is a lost connection (the next poll
    /// reconnects), given as its message with its likely cause first
    /// ([`explain`]).
    pub async fn poll(&mut self) -> Result<LinkEvent, String> {
        match self {
            Events::V311(e) => match e.poll().await.map_err(|e| explain(&e.to_string()))? {
                Event::Incoming(Packet::Publish(p)) => Ok(LinkEvent::Message(Message {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos,
                    pkid: p.pkid,
                })),
                Event::Incoming(Packet::ConnAck(a)) => {
                    Ok(LinkEvent::ConnAck { session_present: a.session_present })
                }
                Event::Incoming(Packet::SubAck(_)) => Ok(LinkEvent::SubAck),
                Event::Outgoing(rumqttc::Outgoing::Disconnect) => Ok(LinkEvent::Disconnected),
                _ => Ok(LinkEvent::Other),
            },
            Events::V5(e) => match e.poll().await.map_err(|e| explain(&e.to_string()))? {
                rumqttc::v5::Event::Incoming(Packet5::Publish(p)) => Ok(LinkEvent::Message(Message {
                    // A topic that is not UTF-8 stays unparseable (refused
                    // `bad_topic`), never silently renamed to a valid one.
                    topic: String::from_utf8(p.topic.to_vec())
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    payload: p.payload,
                    qos: match p.qos {
                        rumqttc::v5::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
                        rumqttc::v5::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
                    },
                    pkid: p.pkid,
                })),
                rumqttc::v5::Event::Incoming(Packet5::ConnAck(a)) => {
                    Ok(LinkEvent::ConnAck { session_present: a.session_present })
                }
                rumqttc::v5::Event::Incoming(Packet5::SubAck(_)) => Ok(LinkEvent::SubAck),
                rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect) => Ok(LinkEvent::Disconnected),
                _ => Ok(LinkEvent::Other),
            },
        }
    }

    /// A message was read: the broker is answering, so the last keep-alive
    /// ping counts as answered (its PINGRESP may wait behind the backlog).
    pub fn broker_answered(&mut self) {
        match self {
            Events::V311(e) => e.state.await_pingresp = false,
            Events::V5(e) => e.state.await_pingresp = false,
        }
    }

    /// Forget the connection: the next poll reconnects, and the broker
    /// sends what was not acknowledged again.
    pub fn clean(&mut self) {
        match self {
            Events::V311(e) => e.clean(),
            Events::V5(e) => e.clean(),
        }
    }

    /// Acknowledge `acks` between two polls. Over 3.1.1 the PUBACKs are
    /// written straight onto the connection and flushed with one write,
    /// bounded by `timeout`: through the request channel they would wait
    /// behind the reads (rumqttc takes one request per turn against up to
    /// ten packets read). rumqttc's MQTT 5 event loop does not lend its
    /// connection, so there they go through the request channel, and what
    /// finds it full is kept for the next turn. Without a connection there
    /// is nothing to acknowledge: the broker sends those messages again.
    pub async fn send_acks(
        &mut self,
        client: &Client,
        acks: &mut Vec<Message>,
        timeout: std::time::Duration,
    ) -> Result<(), String> {
        match self {
            Events::V311(e) => {
                let Some(network) = e.network.as_mut() else {
                    acks.clear();
                    return Ok(());
                };
                let written = async {
                    for m in acks.drain(..) {
                        network.write(Packet::PubAck(rumqttc::PubAck::new(m.pkid))).await?;
                    }
                    network.flush().await
                };
                match tokio::time::timeout(timeout, written).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("the broker did not take them within {} s", timeout.as_secs())),
                }
            }
            Events::V5(_) => {
                acks.retain(|m| !client.try_ack(m));
                Ok(())
            }
        }
    }

    /// Whether events of the last read are still waiting to be handed out.
    pub fn has_buffered(&self) -> bool {
        match self {
            Events::V311(e) => !e.state.events.is_empty(),
            Events::V5(e) => !e.state.events.is_empty(),
        }
    }
}
