//! The shipped broker set-up (`deploy/mosquitto`) with a real Mosquitto:
//! certificates from `make-certs.sh`, users and ACL from `add-agent.sh`,
//! `throughline.conf` with only its ports, paths, persistence location and
//! run-as user changed. The real `edge-agent` connects over TLS with a client
//! certificate and a password; the ACL keeps every agent to its own topics,
//! lets only the aggregator write resend requests and each agent read its own.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use throughline_edge_agent::publish::tls::{client_config, TlsFiles};
use throughline_tests::*;

const SITE: &str = "plant-t";
const AGGREGATOR: &str = "throughline-aggregator";
const AGGREGATOR_PASSWORD: &str = "reader-secret-1";

/// Mosquitto and the tools the scripts use (skip or CI failure as usual).
fn tools() -> Option<PathBuf> {
    require_tools(&["mosquitto", "mosquitto_passwd", "openssl"], "mosquitto openssl").map(|mut v| v.remove(0))
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto")
}

/// Run one of the shipped scripts; fail with its output if it fails.
fn script(name: &str, args: &[&str]) {
    let out = Command::new(deploy_dir().join(name)).args(args).output().expect(name);
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mosquitto running the shipped config in a temporary directory.
#[derive(Debug)]
struct Broker {
    proc: Proc,
    /// The TLS listener (8883 in the shipped file).
    tls_port: u16,
    /// The loopback plain listener (1883 in the shipped file).
    local_port: u16,
    log: PathBuf,
}

impl Broker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Rewrite the shipped config for `dir`: the listeners' ports (bound to
/// 127.0.0.1), `/etc/mosquitto/` and the persistence location into `dir`, and
/// the user it runs as. Every rewritten line must be found, so a change to the
/// shipped file cannot silently leave the test on something else.
fn rewrite_conf(shipped: &str, dir: &Path, tls_port: u16, local_port: u16, user: &str) -> String {
    let etc = format!("{}/", dir.display());
    let data = format!("{}/", dir.join("data").display());
    let mut hits = [0; 4];
    let mut out = String::new();
    for line in shipped.lines() {
        let line = match line.trim() {
            "listener 8883" => {
                hits[0] += 1;
                format!("listener {tls_port} 127.0.0.1")
            }
            "listener 1883 127.0.0.1" => {
                hits[1] += 1;
                format!("listener {local_port} 127.0.0.1")
            }
            "user mosquitto" => {
                hits[2] += 1;
                format!("user {user}")
            }
            l if l.starts_with("persistence_location ") => {
                hits[3] += 1;
                format!("persistence_location {data}")
            }
            l if l.starts_with('#') => line.to_string(),
            _ => line.replace("/etc/mosquitto/", &etc),
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(hits, [1; 4], "throughline.conf changed: update this test's rewrite ({hits:?})");
    out
}

/// Certificates, users, ACL and config as an engineer makes them with the
/// shipped scripts, then `mosquitto -c` on free ports.
fn start_broker(mosquitto: &Path, dir: &Path) -> Broker {
    let d = |p: &str| dir.join(p).to_str().unwrap().to_string();
    script("make-certs.sh", &[&d("certs"), "--host", "localhost", "--client", AGGREGATOR]);
    std::fs::copy(deploy_dir().join("throughline.acl"), dir.join("throughline.acl")).unwrap();
    let (acl, passwd, certs) = (d("throughline.acl"), d("throughline.passwd"), d("certs"));
    for agent in ["gw-a", "gw-b"] {
        let out = d(agent);
        script(
            "add-agent.sh",
            &[SITE, agent, "--acl", &acl, "--passwd", &passwd, "--certs", &certs, "--out", &out],
        );
    }
    let status = Command::new(find_tool("mosquitto_passwd").unwrap())
        .args(["-b", &d("throughline.passwd"), AGGREGATOR, AGGREGATOR_PASSWORD])
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_passwd for {AGGREGATOR}");

    let (tls_port, local_port) = (free_port(), free_port());
    let user = Command::new("id").arg("-un").output().unwrap();
    let user = String::from_utf8(user.stdout).unwrap().trim().to_string();
    let shipped = std::fs::read_to_string(deploy_dir().join("throughline.conf")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, rewrite_conf(&shipped, dir, tls_port, local_port, &user)).unwrap();

    let log = dir.join("mosquitto.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(mosquitto)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start mosquitto");
    let mut broker = Broker { proc: Proc { child, name: "mosquitto".into() }, tls_port, local_port, log };
    let start = Instant::now();
    for port in [tls_port, local_port] {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = broker.proc.child.try_wait().unwrap() {
                panic!("mosquitto exited ({status}) before listening:\n{}", broker.log());
            }
            assert!(start.elapsed() < DEADLINE, "mosquitto not listening on {port}:\n{}", broker.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    broker
}

/// MQTT options for a TLS connection to the broker, with an optional client
/// certificate (PEM files) and optional username and password.
fn tls_options(
    port: u16,
    ca: &Path,
    cert: Option<(PathBuf, PathBuf)>,
    login: Option<(&str, &str)>,
) -> MqttOptions {
    let (cert_file, key_file) = match &cert {
        Some((c, k)) => (Some(c.as_path()), Some(k.as_path())),
        None => (None, None),
    };
    let tls = client_config(TlsFiles { ca_file: ca, cert_file, key_file }).unwrap();
    let mut o = MqttOptions::new(unique("acl"), "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    o
}

/// The client certificate and key of `name`, as make-certs.sh issued them.
fn cert_of(certs: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    Some((certs.join(format!("clients/{name}.pem")), certs.join(format!("clients/{name}.key"))))
}

/// The first answer to a connection attempt: the CONNACK, or the error.
async fn first_event(opts: MqttOptions) -> Result<Event, ConnectionError> {
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    tokio::time::timeout(DEADLINE, eventloop.poll()).await.expect("no answer from the broker")
}

/// Messages a subscriber has received, in order.
#[derive(Debug, Default)]
struct Seen {
    subscribed: bool,
    messages: Vec<(String, serde_json::Value)>,
    /// Why the connection ended, if it did.
    lost: Option<String>,
}

impl Seen {
    fn under(&self, prefix: &str) -> Vec<String> {
        self.messages.iter().filter(|(t, _)| t.starts_with(prefix)).map(|(t, v)| format!("{t} {v}")).collect()
    }

    /// For failure messages: the topics seen, and a lost connection.
    fn describe(&self) -> String {
        let topics: Vec<&str> = self.messages.iter().map(|(t, _)| t.as_str()).collect();
        format!("topics seen {topics:?}, connection lost: {:?}", self.lost)
    }
}

/// Drive a client's event loop in the background, recording what arrives.
fn record(mut eventloop: EventLoop) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => s.lock().unwrap().subscribed = true,
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                    s.lock().unwrap().messages.push((p.topic, v));
                }
                Ok(_) => {}
                Err(e) => {
                    s.lock().unwrap().lost = Some(e.to_string());
                    return;
                }
            }
        }
    });
    seen
}

/// Connect with `opts`, wait for the CONNACK, and drive the client in the
/// background; returns it and what it receives.
async fn connect(opts: MqttOptions) -> (AsyncClient, Arc<Mutex<Seen>>) {
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    match tokio::time::timeout(DEADLINE, eventloop.poll()).await.expect("no CONNACK") {
        Ok(Event::Incoming(Packet::ConnAck(_))) => {}
        other => panic!("connection refused: {other:?}"),
    }
    (client, record(eventloop))
}

/// A running edge agent whose log lines are kept (and echoed to stderr).
#[derive(Debug)]
struct Agent {
    proc: Proc,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let mut child = Command::new(bin("edge-agent"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edge-agent");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                l.lock().unwrap().push(line);
            }
        });
        Agent { proc: Proc { child, name: format!("edge-agent {}", config.display()) }, lines }
    }

    async fn wait_line(&self, what: &str, needle: &str) -> String {
        wait_for(what, || async {
            let lines = self.lines.lock().unwrap();
            lines
                .iter()
                .find(|l| l.contains(needle))
                .cloned()
                .ok_or_else(|| format!("{} log lines", lines.len()))
        })
        .await
    }

    /// SIGTERM, a clean exit with everything acknowledged by the broker,
    /// and the number of envelopes it published.
    async fn stop(mut self) -> u64 {
        self.proc.stop();
        let line = self.wait_line("the agent's clean-stop line", "edge agent stopped").await;
        let lines = self.lines.lock().unwrap();
        let unacked = lines.iter().find(|l| l.contains("WARN") && l.contains("acknowledge"));
        assert!(unacked.is_none(), "the broker did not acknowledge everything: {unacked:?}");
        let n = line.split_once("envelopes=").and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok())
        });
        n.unwrap_or_else(|| panic!("no envelope count in: {line}"))
    }
}

/// An agent config for `agent` logging in with the credentials of `login`,
/// from the bundle add-agent.sh wrote for it (what goes onto the gateway).
fn agent_config(dir: &Path, port: u16, agent: &str, login: &str) -> PathBuf {
    let bundle = dir.join(login);
    let toml = format!(
        r#"agent = "{agent}"
site = "{SITE}"
state_dir = "{state}"

[mqtt]
url = "mqtts://127.0.0.1:{port}"
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
username = "{login}"
password_file = "{password}"
keep_alive_secs = 5
reconnect_max_secs = 1

[publish]
max_batch_delay_ms = 100
max_batch_samples = 5

[[assets]]
id = "line-1"
[assets.source]
type = "simulator"
profile = "line"
interval_ms = 100
rate_per_hour = 3600
"#,
        state = dir.join(format!("state-{agent}-as-{login}")).display(),
        ca = bundle.join("ca.pem").display(),
        cert = bundle.join("agent.pem").display(),
        key = bundle.join("agent.key").display(),
        password = bundle.join("mqtt.password").display(),
    );
    let path = dir.join(format!("{agent}-as-{login}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

/// A valid telemetry envelope of `agent`.
fn envelope(agent: &str, seq: u64) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        r#"{{"v":1,"agent":"{agent}","seq":{seq},"samples":[{{"ts":"{ts}","output":1,"state":"running"}}]}}"#
    )
}

#[tokio::test]
async fn shipped_mosquitto_config_enforces_tls_passwords_and_per_agent_acl() {
    let Some(mosquitto) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut broker = start_broker(&mosquitto, dir);
    let (port, certs) = (broker.tls_port, dir.join("certs"));
    let ca = certs.join("ca.pem");
    let gw_a_password = std::fs::read_to_string(dir.join("gw-a/mqtt.password")).unwrap().trim().to_string();

    // The aggregator's user over TLS with its certificate reads the site.
    // It asks for its usual client id, the one an intruder would take over.
    let mut reader_opts =
        tls_options(port, &ca, cert_of(&certs, AGGREGATOR), Some((AGGREGATOR, AGGREGATOR_PASSWORD)));
    reader_opts.set_client_id(AGGREGATOR.to_string());
    let (reader, seen) = connect(reader_opts).await;
    reader.subscribe(format!("throughline/v1/{SITE}/#"), QoS::AtLeastOnce).await.unwrap();
    wait_for("the reader's subscription", || async {
        if seen.lock().unwrap().subscribed {
            Ok(())
        } else {
            Err(seen.lock().unwrap().describe())
        }
    })
    .await;

    // (a) TLS + client certificate + password + ACL allow: the real agent as
    // gw-a, with the files add-agent.sh made for it, is heard by the reader.
    let agent = Agent::start(&agent_config(dir, port, "gw-a", "gw-a"));
    let telemetry = format!("throughline/v1/{SITE}/gw-a/line-1/telemetry");
    wait_for("gw-a's telemetry at the reader", || async {
        let s = seen.lock().unwrap();
        match s.messages.iter().find(|(t, _)| *t == telemetry) {
            Some((_, v))
                if v["agent"] == "gw-a" && v["samples"].as_array().is_some_and(|a| !a.is_empty()) =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}; {}", s.describe())),
        }
    })
    .await;
    // The aggregator's login may ask gw-a to resend, and gw-a reads it: an
    // envelope it delivered comes a second time (asked again each second,
    // as the aggregator would, until its PUBACK has made it a kept one).
    let first_seq = seen.lock().unwrap().messages.iter().find(|(t, _)| *t == telemetry).unwrap().1["seq"]
        .as_u64()
        .unwrap();
    let copies = || {
        let s = seen.lock().unwrap();
        s.messages.iter().filter(|(t, v)| *t == telemetry && v["seq"] == first_seq).count()
    };
    let resend = format!("throughline/v1/{SITE}/gw-a/resend");
    let request = format!(r#"{{"v":1,"from":{first_seq},"to":{first_seq}}}"#);
    let started = Instant::now();
    while copies() < 2 {
        assert!(
            started.elapsed() < DEADLINE,
            "gw-a did not resend seq {first_seq}: {}",
            seen.lock().unwrap().describe()
        );
        reader.publish(&resend, QoS::AtLeastOnce, false, request.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    agent.wait_line("gw-a logging the resend request", "resend requested").await;
    assert!(agent.stop().await >= 1);
    let status = format!("throughline/v1/{SITE}/gw-a/status");
    wait_for("gw-a's birth and offline status", || async {
        let s = seen.lock().unwrap();
        let online: Vec<_> =
            s.messages.iter().filter(|(t, _)| *t == status).map(|(_, v)| v["online"].clone()).collect();
        if online.first() == Some(&true.into()) && online.last() == Some(&false.into()) {
            Ok(())
        } else {
            Err(format!("{online:?}"))
        }
    })
    .await;

    // (b) The ACL: gw-a's credentials cannot write under gw-b. A client
    // logged in as gw-a publishes on gw-b's topic, then a marker on its own;
    // the broker handles one connection's packets in order, so once the
    // marker has arrived anything allowed before it would have, too.
    let gw_a_opts = tls_options(port, &ca, cert_of(&certs, "gw-a"), Some(("gw-a", &gw_a_password)));
    let (intruder, _) = connect(gw_a_opts).await;
    let forbidden = format!("throughline/v1/{SITE}/gw-b/x/telemetry");
    intruder.publish(&forbidden, QoS::AtLeastOnce, false, envelope("gw-b", 1)).await.unwrap();
    intruder.publish(&forbidden, QoS::AtLeastOnce, true, envelope("gw-b", 2)).await.unwrap();
    // Resend requests are the aggregator's, even on an agent's own topic.
    let forged = r#"{"v":1,"from":424242}"#;
    for agent in ["gw-a", "gw-b"] {
        let topic = format!("throughline/v1/{SITE}/{agent}/resend");
        intruder.publish(topic, QoS::AtLeastOnce, false, forged).await.unwrap();
    }
    let marker = |n: u32| format!("throughline/v1/{SITE}/gw-a/marker-{n}/telemetry");
    intruder.publish(marker(1), QoS::AtLeastOnce, false, envelope("gw-a", 1)).await.unwrap();
    let wait_marker = |n: u32| {
        let seen = seen.clone();
        async move {
            wait_for(&format!("marker {n} at the reader"), || async {
                let s = seen.lock().unwrap();
                if s.messages.iter().any(|(t, _)| *t == marker(n)) {
                    Ok(())
                } else {
                    Err(s.describe())
                }
            })
            .await
        }
    };
    wait_marker(1).await;
    let gw_b = format!("throughline/v1/{SITE}/gw-b/");
    assert_eq!(seen.lock().unwrap().under(&gw_b), Vec::<String>::new(), "gw-a wrote under gw-b");
    let forgeries: Vec<_> =
        seen.lock().unwrap().messages.iter().filter(|(_, v)| v["from"] == 424242).cloned().collect();
    assert_eq!(forgeries, Vec::new(), "an agent's login wrote a resend request");

    // gw-b's login reads its own resend requests, not gw-a's: the
    // aggregator asks gw-a, then gw-b; once gw-b has its own, gw-a's would
    // have come before it.
    let gw_b_password = std::fs::read_to_string(dir.join("gw-b/mqtt.password")).unwrap().trim().to_string();
    let gw_b_opts = tls_options(port, &ca, cert_of(&certs, "gw-b"), Some(("gw-b", &gw_b_password)));
    let (eavesdropper, overheard) = connect(gw_b_opts).await;
    for agent in ["gw-a", "gw-b"] {
        eavesdropper
            .subscribe(format!("throughline/v1/{SITE}/{agent}/resend"), QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    wait_for("gw-b's subscriptions", || async {
        if overheard.lock().unwrap().subscribed {
            Ok(())
        } else {
            Err(overheard.lock().unwrap().describe())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the second SUBACK
    reader.publish(&resend, QoS::AtLeastOnce, false, r#"{"v":1,"from":1,"to":2}"#).await.unwrap();
    let own = format!("throughline/v1/{SITE}/gw-b/resend");
    reader.publish(&own, QoS::AtLeastOnce, false, r#"{"v":1,"from":3,"to":4}"#).await.unwrap();
    wait_for("gw-b's own resend request", || async {
        let s = overheard.lock().unwrap();
        if s.messages.iter().any(|(t, _)| *t == own) {
            Ok(())
        } else {
            Err(s.describe())
        }
    })
    .await;
    assert_eq!(
        overheard.lock().unwrap().under(&resend),
        Vec::<String>::new(),
        "gw-b's login read gw-a's resend requests"
    );

    // The real agent configured as gw-b but logging in as gw-a: TLS and the
    // login succeed, it publishes (and the broker acknowledges) every
    // envelope, and the ACL drops them all, its status included.
    let agent = Agent::start(&agent_config(dir, port, "gw-b", "gw-a"));
    agent.wait_line("the gw-b agent connected with gw-a's login", "connected broker=").await;
    let sent = agent.stop().await;
    assert!(sent >= 1, "the agent published nothing");
    // The agent's connection took over the intruder's (the client id is the
    // username, gw-a, for both): the intruder logs in again for the marker.
    drop(intruder);
    let gw_a_opts = tls_options(port, &ca, cert_of(&certs, "gw-a"), Some(("gw-a", &gw_a_password)));
    let (intruder, _) = connect(gw_a_opts).await;
    intruder.publish(marker(2), QoS::AtLeastOnce, false, envelope("gw-a", 2)).await.unwrap();
    wait_marker(2).await;
    // (The aggregator's own request to gw-b above is the one message there.)
    let written: Vec<String> =
        seen.lock().unwrap().under(&gw_b).into_iter().filter(|m| !m.starts_with(&own)).collect();
    assert_eq!(
        written,
        Vec::<String>::new(),
        "the ACL let gw-a's login write under gw-b ({sent} envelopes sent)"
    );
    assert!(broker.log().contains("u'gw-a'"), "the broker log shows the gw-a logins:\n{}", broker.log());

    // (d) No takeover of the aggregator's session: gw-a's login asking for
    // the client id `throughline-aggregator` gets its own id (its username),
    // and the aggregator's connection stays up. It still receives what is
    // published after the attempt, and its connection was never lost.
    let mut usurper_opts = tls_options(port, &ca, cert_of(&certs, "gw-a"), Some(("gw-a", &gw_a_password)));
    usurper_opts.set_client_id(AGGREGATOR.to_string());
    let (usurper, _) = connect(usurper_opts).await;
    usurper.publish(marker(3), QoS::AtLeastOnce, false, envelope("gw-a", 3)).await.unwrap();
    wait_marker(3).await;
    assert_eq!(seen.lock().unwrap().lost, None, "the aggregator's connection was taken over");
    let kicked = format!("Client {AGGREGATOR} already connected");
    assert!(
        !broker.log().contains(&kicked),
        "the broker closed the aggregator's connection:\n{}",
        broker.log()
    );

    // (c) Refused: no client certificate; a certificate of another CA; a
    // wrong password; no login; and no login on the loopback listener.
    let other = dir.join("other-ca");
    script("make-certs.sh", &[other.to_str().unwrap(), "--host", "localhost", "--client", "gw-a"]);
    let refused = [
        ("no client certificate", tls_options(port, &ca, None, Some(("gw-a", &gw_a_password)))),
        (
            "a client certificate of another CA",
            tls_options(port, &ca, cert_of(&other, "gw-a"), Some(("gw-a", &gw_a_password))),
        ),
        (
            "a wrong password",
            tls_options(port, &ca, cert_of(&certs, "gw-a"), Some(("gw-a", "not-the-password"))),
        ),
        ("gw-b's password for gw-a", {
            let b = std::fs::read_to_string(dir.join("gw-b/mqtt.password")).unwrap();
            tls_options(port, &ca, cert_of(&certs, "gw-a"), Some(("gw-a", b.trim())))
        }),
        ("no username", tls_options(port, &ca, cert_of(&certs, "gw-a"), None)),
        (
            "anonymous on the loopback listener",
            MqttOptions::new(unique("anon"), "127.0.0.1", broker.local_port),
        ),
    ];
    for (what, opts) in refused {
        match first_event(opts).await {
            Err(e) => {
                if what.contains("password") || what.contains("username") || what.contains("anonymous") {
                    assert!(
                        matches!(e, ConnectionError::ConnectionRefused(_)),
                        "{what}: expected a refused CONNACK, got {e}"
                    );
                }
            }
            Ok(event) => panic!("{what}: the broker let it in ({event:?})"),
        }
    }
    // Positive control for the loopback listener: the aggregator's login.
    let mut local = MqttOptions::new(unique("local"), "127.0.0.1", broker.local_port);
    local.set_credentials(AGGREGATOR, AGGREGATOR_PASSWORD);
    assert!(
        matches!(first_event(local).await, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "the aggregator's login on the loopback listener"
    );

    broker.proc.stop();
}

/// The real aggregator's config for the shipped broker at `url`, its state
/// under `dir/name`, with the CA and (optionally) a client certificate.
fn aggregator_tls_config(
    dir: &Path,
    name: &str,
    url: &str,
    ca: &Path,
    cert: Option<(PathBuf, PathBuf)>,
) -> PathBuf {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let cert = match cert {
        Some((c, k)) => format!("cert_file = \"{}\"\nkey_file = \"{}\"\n", c.display(), k.display()),
        None => String::new(),
    };
    let extra = format!(
        "\n[mqtt]\nbroker = \"{url}\"\nusername = \"{AGGREGATOR}\"\npassword = \"{AGGREGATOR_PASSWORD}\"\n\
         ca_file = \"{}\"\n{cert}",
        ca.display()
    );
    write_plant_config(&own, SITE, &extra)
}

/// The aggregator started on `config` with its log in a file beside it.
fn start_logged_aggregator(config: &Path) -> (Aggregator, PathBuf) {
    let log = config.with_extension("log");
    let args = ["--config", config.to_str().unwrap(), "--http-listen", "127.0.0.1:0"];
    (start_aggregator_logged(&args, &log), log)
}

/// A client certificate for `name` from the plant CA in `certs` that
/// expired in 2021 (openssl's `ca` command sets the dates).
fn expired_cert(certs: &Path, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let db = dir.join("expired-ca");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("index.txt"), "").unwrap();
    std::fs::write(db.join("serial"), "1000\n").unwrap();
    let cnf = db.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = plant\n[plant]\ndatabase = {db}/index.txt\nserial = {db}/serial\n\
             new_certs_dir = {db}\ndefault_md = sha256\npolicy = any\nx509_extensions = client\n\
             [any]\ncommonName = supplied\n[client]\nbasicConstraints = CA:FALSE\n\
             keyUsage = digitalSignature\nextendedKeyUsage = clientAuth\n",
            db = db.display()
        ),
    )
    .unwrap();
    let (key, csr, pem) = (db.join("client.key"), db.join("client.csr"), db.join("client.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let p = |p: &Path| p.to_str().unwrap().to_string();
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&key),
        "-subj",
        &format!("/CN={name}"),
        "-out",
        &p(&csr),
    ]);
    run(&[
        "ca",
        "-batch",
        "-config",
        &p(&cnf),
        "-cert",
        &p(&certs.join("ca.pem")),
        "-keyfile",
        &p(&certs.join("ca.key")),
        "-in",
        &p(&csr),
        "-out",
        &p(&pem),
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20210101000000Z",
        "-notext",
    ]);
    (pem, key)
}

/// The aggregator over TLS to the shipped Mosquitto: with its own
/// certificate and login it hears the real agent; a wrong CA, an expired
/// certificate and the plain-text port each give a log line saying what is
/// wrong (the cause, not only "connection failed"), and /healthz says it is
/// not connected.
#[tokio::test]
async fn aggregator_connects_over_tls_and_says_why_when_it_cannot() {
    let Some(mosquitto) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let broker = start_broker(&mosquitto, dir);
    let certs = dir.join("certs");
    let ca = certs.join("ca.pem");
    let url = format!("mqtts://127.0.0.1:{}", broker.tls_port);

    let config = aggregator_tls_config(dir, "good", &url, &ca, cert_of(&certs, AGGREGATOR));
    let (mut agg, _) = start_logged_aggregator(&config);
    agg.wait_mqtt_connected().await;
    let agent = Agent::start(&agent_config(dir, broker.tls_port, "gw-a", "gw-a"));
    let http = agg.http.clone();
    wait_for("gw-a's line-1 at the aggregator over TLS", || async {
        let v = get_json(&format!("{http}/api/v1/assets/{SITE}/line-1")).await;
        if v["last_sample_ts"].is_string() && v["agent"] == "gw-a" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    agent.stop().await;
    agg.proc.stop();

    // A second plant CA: the broker's certificate is not signed by it.
    let other = dir.join("other-certs");
    script("make-certs.sh", &[other.to_str().unwrap(), "--host", "localhost"]);
    let expired = expired_cert(&certs, dir, AGGREGATOR);
    let plain = format!("mqtts://127.0.0.1:{}", broker.local_port);
    for (name, url, ca, cert, want) in [
        (
            "wrong-ca",
            &url,
            other.join("ca.pem"),
            cert_of(&certs, AGGREGATOR),
            "not signed by the CA in mqtt.ca_file",
        ),
        ("expired", &url, ca.clone(), Some(expired), "client certificate (mqtt.cert_file): it has expired"),
        (
            "plain-port",
            &plain,
            ca.clone(),
            cert_of(&certs, AGGREGATOR),
            "during the TLS handshake: is this its plain MQTT port",
        ),
    ] {
        let config = aggregator_tls_config(dir, name, url, &ca, cert);
        let (mut agg, log) = start_logged_aggregator(&config);
        let http = agg.http.clone();
        wait_for(&format!("{name}: the reason in the log"), || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<_> = text.lines().filter(|l| l.contains("broker connection problem")).collect();
            match lines.first() {
                Some(l) if l.contains(want) => Ok(()),
                _ => Err(format!("no \"{want}\" in the connection problem lines: {lines:?}")),
            }
        })
        .await;
        let health = get_json(&format!("{http}/healthz")).await;
        assert_eq!(health["mqtt_connected"], false, "{name}: {health}");
        agg.proc.stop();
    }
}
