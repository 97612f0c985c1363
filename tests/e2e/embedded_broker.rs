//! The embedded broker with `[[mqtt.agents]]` logins: the real aggregator
//! and edge agent over loopback. An agent with its login publishes; a client
//! without one, with a wrong password or another agent's password cannot
//! connect; an enrolled agent cannot write another agent's telemetry or
//! status, `alerts`, resend requests, cannot subscribe to `#`, and cannot
//! take over the aggregator's client id. Each refusal is counted in
//! `/metrics`. Connections per source address and their rate are capped.
//! Without logins the embedded broker refuses a non-loopback listen address.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use throughline_tests::*;

const SITE: &str = "plant-e";
const PW_A: &str = "gw-a-password-1";
const PW_B: &str = "gw-b-password-2";

/// A plant config with logins for gw-a (password in a file) and gw-b
/// (inline), plus `extra` lines under `[mqtt]`'s agents.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let pw_file = dir.join("gw-a.password");
    std::fs::write(&pw_file, format!("{PW_A}\n")).unwrap();
    write_plant_config(
        dir,
        SITE,
        &format!(
            r#"
[[mqtt.agents]]
id = "gw-a"
site = "{SITE}"
password_file = "{}"

[[mqtt.agents]]
id = "gw-b"
site = "{SITE}"
password = "{PW_B}"
{extra}"#,
            pw_file.display()
        ),
    )
}

fn opts(port: u16, id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    o
}

/// The first answer to a connection attempt.
async fn first_event(o: MqttOptions) -> Result<Event, ConnectionError> {
    let (_c, mut el) = AsyncClient::new(o, 10);
    tokio::time::timeout(DEADLINE, el.poll()).await.expect("no answer from the broker")
}

/// Connect (CONNACK awaited); the client and a task that ends with the
/// connection's end.
async fn connect(o: MqttOptions) -> (AsyncClient, tokio::task::JoinHandle<String>) {
    let (client, mut el) = AsyncClient::new(o, 100);
    match tokio::time::timeout(DEADLINE, el.poll()).await.expect("no CONNACK") {
        Ok(Event::Incoming(Packet::ConnAck(_))) => {}
        other => panic!("connection refused: {other:?}"),
    }
    let end = tokio::spawn(async move {
        loop {
            if let Err(e) = el.poll().await {
                return e.to_string();
            }
        }
    });
    (client, end)
}

/// Wait until the connection behind `end` is closed by the broker.
async fn closed(what: &str, end: tokio::task::JoinHandle<String>) {
    match tokio::time::timeout(DEADLINE, end).await {
        Ok(Ok(_)) => {}
        _ => panic!("{what}: the broker kept the connection open"),
    }
}

fn envelope(agent: &str, seq: u64) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        r#"{{"v":1,"agent":"{agent}","seq":{seq},"samples":[{{"ts":"{ts}","output":{seq},"state":"running"}}]}}"#
    )
}

async fn metrics(http: &str) -> String {
    get_text(&format!("{http}/metrics")).await
}

async fn asset_agent(http: &str, asset: &str) -> Option<String> {
    let v = get_json(&format!("{http}/api/v1/assets")).await;
    v["assets"].as_array()?.iter().find(|a| a["asset"] == asset).map(|a| a["agent"].to_string())
}

#[tokio::test]
async fn embedded_broker_logins_keep_each_agent_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (agg, port) = start_plant_on_free_port(dir.path(), &cfg);
    let http = agg.http.clone();
    agg.wait_mqtt_connected().await;

    // The real agent with its login (password file) publishes.
    let agent_cfg = write_agent_config(
        dir.path(),
        "gw-a",
        SITE,
        &format!("mqtt://127.0.0.1:{port}"),
        &[SimLine { id: "line-1", rate_per_hour: 36000.0, stop: None }],
    );
    let text = std::fs::read_to_string(&agent_cfg).unwrap();
    let pw_file = dir.path().join("gw-a.password");
    let text = text.replacen(
        "[mqtt]\n",
        &format!("[mqtt]\nusername = \"gw-a\"\npassword_file = \"{}\"\n", pw_file.display()),
        1,
    );
    std::fs::write(&agent_cfg, text).unwrap();
    let mut agent = start_agent(&agent_cfg);
    wait_for("gw-a's line-1 at the aggregator", || async {
        match asset_agent(&http, "line-1").await {
            Some(a) if a == "\"gw-a\"" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Refused at the door: no login, a wrong password, gw-b's password for gw-a.
    for (what, login) in [
        ("no login", None),
        ("a wrong password", Some(("gw-a", "nope"))),
        ("gw-b's password", Some(("gw-a", PW_B))),
    ] {
        match first_event(opts(port, &unique("x"), login)).await {
            Err(ConnectionError::ConnectionRefused(_)) => {}
            other => panic!("{what}: expected a refused CONNACK, got {other:?}"),
        }
    }

    // gw-b is enrolled, and its own telemetry is taken...
    let (b, _end) = connect(opts(port, "anything", Some(("gw-b", PW_B)))).await;
    b.publish(
        format!("throughline/v1/{SITE}/gw-b/b-line/telemetry"),
        QoS::AtLeastOnce,
        false,
        envelope("gw-b", 1),
    )
    .await
    .unwrap();
    wait_for("gw-b's own telemetry", || async {
        asset_agent(&http, "b-line").await.ok_or_else(|| "not yet".to_string())
    })
    .await;

    // ...but each of these closes its connection and is counted.
    let forged_status = r#"{"v":1,"online":false}"#.to_string();
    let attempts: [(&str, &str, String); 5] = [
        ("publish", "throughline/v1/plant-e/gw-a/forged-1/telemetry", envelope("gw-a", 999_999)),
        ("publish", "throughline/v1/plant-e/gw-a/status", forged_status),
        ("publish", "throughline/v1/plant-e/alerts", r#"{"forged":true}"#.into()),
        ("publish", "throughline/v1/plant-e/gw-a/resend", r#"{"v":1,"from":1}"#.into()),
        ("subscribe", "#", String::new()),
    ];
    for (action, topic, payload) in &attempts {
        let (c, end) = connect(opts(port, &unique("b"), Some(("gw-b", PW_B)))).await;
        if *action == "publish" {
            c.publish(*topic, QoS::AtLeastOnce, false, payload.clone()).await.unwrap();
        } else {
            c.subscribe(*topic, QoS::AtLeastOnce).await.unwrap();
        }
        closed(&format!("gw-b: {action} {topic}"), end).await;
    }

    // No takeover: gw-b asking for the aggregator's client id gets its own.
    let reconnects = metric(&metrics(&http).await, "throughline_mqtt_reconnects_total").unwrap_or(0.0);
    let (usurper, _end) = connect(opts(port, "throughline-aggregator", Some(("gw-b", PW_B)))).await;
    usurper
        .publish(
            format!("throughline/v1/{SITE}/gw-b/b-line-2/telemetry"),
            QoS::AtLeastOnce,
            false,
            envelope("gw-b", 2),
        )
        .await
        .unwrap();
    wait_for("gw-b's telemetry after the takeover attempt", || async {
        asset_agent(&http, "b-line-2").await.ok_or_else(|| "not yet".to_string())
    })
    .await;
    let m = metrics(&http).await;
    assert_eq!(
        metric(&m, "throughline_mqtt_reconnects_total").unwrap_or(0.0),
        reconnects,
        "ingest was kicked"
    );
    assert_eq!(get_json(&format!("{http}/healthz")).await["mqtt_connected"], true);

    // Nothing forged arrived: gw-a is online, no forged asset, no alert from it.
    assert_eq!(asset_agent(&http, "forged-1").await, None, "forged telemetry for gw-a was taken");
    let agents = get_json(&format!("{http}/api/v1/agents")).await;
    let a = agents["agents"].as_array().unwrap().iter().find(|a| a["agent"] == "gw-a").cloned().unwrap();
    assert_eq!(a["online"], true, "gw-b's login set gw-a offline: {a}");
    for (series, want) in [
        ("throughline_broker_connections_refused_total{reason=\"no_login\"}", 1.0),
        ("throughline_broker_connections_refused_total{reason=\"bad_login\"}", 2.0),
        ("throughline_broker_packets_denied_total{reason=\"publish\"}", 4.0),
        ("throughline_broker_packets_denied_total{reason=\"subscribe\"}", 1.0),
    ] {
        assert_eq!(metric(&m, series), Some(want), "{series}");
    }
    agent.stop();
}

#[tokio::test]
async fn embedded_broker_caps_connections_and_connects_per_address() {
    let dir = tempfile::tempdir().unwrap();
    // 3 open per address; bursts of 4 new ones, then one per 100 s.
    let cfg = config(dir.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let limits = "[mqtt]\nmax_connections_per_address = 3\nconnect_burst_per_address = 4\nconnects_per_address_per_sec = 0.01\n\n";
    std::fs::write(&cfg, format!("{text}\n{limits}")).unwrap();
    let (agg, port) = start_plant_on_free_port(dir.path(), &cfg);
    let http = agg.http.clone();
    agg.wait_mqtt_connected().await;

    // Whether the broker closes a raw TCP connection at once (EOF) rather
    // than holding it open for its CONNECT.
    let shut_at_once = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 1];
        matches!(s.read(&mut b), Ok(0))
    };
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let mut fourth = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(shut_at_once(&mut fourth), "a fourth open connection from one address was let in");
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut b = [0u8; 1];
        assert!(s.read(&mut b).is_err(), "one of the first three was closed");
    }
    // Three of the burst of four are used: one more login, then the rate refuses.
    wait_for("the three connections given back", || async {
        let m = metrics(&http).await;
        match metric(&m, "throughline_broker_connections") {
            Some(0.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    match first_event(opts(port, "x", Some(("gw-b", PW_B)))).await {
        Ok(Event::Incoming(Packet::ConnAck(_))) => {}
        other => panic!("the last of the burst: {other:?}"),
    }
    let mut over = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(shut_at_once(&mut over), "a connection beyond the rate was let in");
    // Another source address has its own allowance.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let other = other.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
    let mut other = other.into_std().unwrap();
    other.set_nonblocking(false).unwrap();
    assert!(!shut_at_once(&mut other), "another address was refused");
    let m = metrics(&http).await;
    for (reason, want) in [("per_address_cap", 1.0), ("connect_rate", 1.0)] {
        let series = format!("throughline_broker_connections_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &series), Some(want), "{series}");
    }
}

#[test]
fn an_open_embedded_broker_refuses_a_non_loopback_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("aggregator"))
        .args([
            "check",
            "--mqtt-listen",
            "0.0.0.0:1883",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(err.contains("mqtt.listen: 0.0.0.0:1883 is not a loopback address"), "{err}");
    assert!(err.contains("[[mqtt.agents]]"), "{err}");
}
