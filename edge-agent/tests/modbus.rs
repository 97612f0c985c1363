//! The `modbus-tcp` source against a Modbus TCP server run by the test
//! (tokio-modbus), on 127.0.0.1 only: register maps to samples, counter
//! wrap-around, and a dead or silent device next to a good one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use throughline_edge_agent::source::{spawn_all, Health, Reading, Sink, SourceHealth, SourceStats};
use throughline_edge_agent::AgentConfig;
use throughline_shared::AssetState;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const HOLDING: bool = false;
const INPUT: bool = true;

/// Registers of the test server by (unit id, input table?, address); the
/// test changes them while the agent polls. A register not set is an
/// "illegal data address".
#[derive(Debug, Clone, Default)]
struct Bank(Arc<Mutex<Registers>>);

/// Register value by (unit id, input table?, address).
type Registers = HashMap<(u8, bool, u16), u16>;

impl Bank {
    fn set(&self, unit: u8, input: bool, address: u16, words: &[u16]) {
        let mut regs = self.0.lock().unwrap();
        for (i, w) in words.iter().enumerate() {
            regs.insert((unit, input, address + i as u16), *w);
        }
    }

    fn read(&self, unit: u8, input: bool, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        let regs = self.0.lock().unwrap();
        (address..address + count)
            .map(|a| regs.get(&(unit, input, a)).copied().ok_or(ExceptionCode::IllegalDataAddress))
            .collect()
    }
}

impl tokio_modbus::server::Service for Bank {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: SlaveRequest<'static>) -> Self::Future {
        std::future::ready(match req.request {
            Request::ReadHoldingRegisters(a, n) => {
                self.read(req.slave, HOLDING, a, n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(a, n) => {
                self.read(req.slave, INPUT, a, n).map(Response::ReadInputRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// Serve `bank` on `listener` until the returned task is aborted.
fn serve(listener: TcpListener, bank: Bank) -> JoinHandle<()> {
    tokio::spawn(async move {
        let server = Server::new(listener);
        let on_connected = |stream, addr| {
            let bank = bank.clone();
            async move { accept_tcp_connection(stream, addr, move |_| Ok(Some(bank.clone()))) }
        };
        let _ = server.serve(&on_connected, |_| {}).await;
    })
}

/// A device that accepts connections and never answers.
fn silent(listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    })
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// The config's sources, running: readings arrive on `rx`.
struct Agent {
    rx: mpsc::Receiver<Reading>,
    health: Arc<Health>,
    token: CancellationToken,
    tracker: TaskTracker,
}

fn start(config_toml: &str) -> Agent {
    let config = AgentConfig::from_toml(config_toml, Path::new("test.toml")).unwrap();
    let (tx, rx) = mpsc::channel(256);
    let token = CancellationToken::new();
    let health = Arc::new(Health::default());
    let tracker = TaskTracker::new();
    spawn_all(&config, &Sink::new(tx, Arc::new(SourceStats::default()), token.clone()), &health, &tracker);
    Agent { rx, health, token, tracker }
}

impl Agent {
    /// The next reading of asset `asset` that satisfies `pred`, within 10 s.
    async fn wait_for(&mut self, asset: usize, what: &str, pred: impl Fn(&Reading) -> bool) -> Reading {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = None;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) if r.asset == asset && pred(&r) => return r,
                Ok(Some(r)) if r.asset == asset => last = Some(r),
                Ok(Some(_)) => {}
                Ok(None) => panic!("sources stopped while waiting for {what}"),
                Err(_) => panic!("no reading of asset {asset} with {what} within 10 s; last: {last:?}"),
            }
        }
    }

    fn health(&self, name: &str) -> Option<SourceHealth> {
        self.health.snapshot().into_iter().find(|h| h.name == name)
    }

    /// Stop the sources; they must all be gone within a second.
    async fn stop(self) {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(1), self.tracker.wait())
            .await
            .expect("sources stop within a second");
    }
}

fn output(r: &Reading) -> f64 {
    r.sample.output.expect("output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_become_counters_states_reasons_and_load() {
    let (l, port) = listener().await;
    let bank = Bank::default();
    // line-1: 32-bit counter, low word first: 0x0001_0002 = 65538.
    bank.set(1, HOLDING, 0, &[0x0002, 0x0001]);
    bank.set(1, HOLDING, 10, &[1, 0]);
    // line-2: 16-bit counter about to wrap.
    bank.set(1, INPUT, 20, &[65530]);
    // feeder-1 behind the same gateway as unit 2: 64-bit Wh counter, load in 0.1 kW.
    bank.set(2, HOLDING, 0, &[0, 0, 0, 12_345]);
    bank.set(2, INPUT, 5, &[1234]);
    let server = serve(l, bank.clone());
    let mut agent = start(&format!(
        r#"
agent = "gw-test"
site = "plant"
[mqtt]
url = "mqtt://127.0.0.1:1883"

[[devices]]
id = "plc-1"
host = "127.0.0.1"
port = {port}
poll_ms = 50
timeout_ms = 2000

[[assets]]
id = "line-1"
[assets.source]
type = "modbus-tcp"
device = "plc-1"
output = {{ address = 0, words = 2, word_order = "low-first" }}
state = {{ address = 10, map = {{ "0" = "down", "1" = "running", "2" = "setup" }} }}
reason = {{ address = 11, map = {{ "3" = "jam", "4" = "no-material" }} }}

[[assets]]
id = "line-2"
[assets.source]
type = "modbus-tcp"
device = "plc-1"
output = {{ address = 20, table = "input" }}

[[assets]]
id = "feeder-1"
[assets.source]
type = "modbus-tcp"
device = "plc-1"
unit_id = 2
output = {{ address = 0, words = 4, scale = 0.001 }}
load = {{ address = 5, table = "input", scale = 0.1, offset = 2.5 }}
"#
    ));

    let r = agent.wait_for(0, "a first reading", |_| true).await;
    assert_eq!(r.sample.output, Some(65538.0), "low word first: {r:?}");
    assert_eq!(
        (r.sample.state, r.sample.reason.as_deref(), r.sample.load_kw),
        (Some(AssetState::Running), None, None)
    );

    let r = agent.wait_for(2, "a first reading", |_| true).await;
    assert_eq!((r.sample.output, r.sample.load_kw), (Some(12.345), Some(125.9)), "{r:?}");
    assert_eq!((r.sample.state, r.sample.reason), (None, None));

    // A 16-bit counter wrapping 65530 -> 5 counted 11 on, not reset.
    agent.wait_for(1, "output 65530", |r| output(r) == 65530.0).await;
    bank.set(1, INPUT, 20, &[5]);
    let r = agent.wait_for(1, "the wrapped counter", |r| output(r) != 65530.0).await;
    assert_eq!(output(&r), 65541.0, "65530 + 11");
    bank.set(1, INPUT, 20, &[9]);
    agent.wait_for(1, "output 65545", |r| output(r) == 65545.0).await;
    // A small drop is a real reset.
    bank.set(1, INPUT, 20, &[2]);
    let r = agent.wait_for(1, "the reset counter", |r| output(r) != 65545.0).await;
    assert_eq!(output(&r), 2.0);

    // State and reason maps follow the registers.
    bank.set(1, HOLDING, 10, &[0, 3]);
    let r = agent.wait_for(0, "state down", |r| r.sample.state == Some(AssetState::Down)).await;
    assert_eq!(r.sample.reason.as_deref(), Some("jam"));
    bank.set(1, HOLDING, 11, &[9]);
    let r = agent.wait_for(0, "reason changed", |r| r.sample.reason.as_deref() != Some("jam")).await;
    assert_eq!((r.sample.state, r.sample.reason.as_deref()), (Some(AssetState::Down), Some("code-9")));
    bank.set(1, HOLDING, 10, &[2, 4]);
    let r = agent.wait_for(0, "state setup", |r| r.sample.state == Some(AssetState::Setup)).await;
    assert_eq!(r.sample.reason.as_deref(), Some("no-material"));
    bank.set(1, HOLDING, 10, &[1]);
    let r = agent.wait_for(0, "running again", |r| r.sample.state == Some(AssetState::Running)).await;
    assert_eq!(r.sample.reason, None, "no reason while running");
    let h = agent.health("modbus:plc-1").expect("device health");
    assert!(h.ok && h.error.is_none(), "{h:?}");

    // A value the state map does not name: no state in the reading, an error in the status.
    bank.set(1, HOLDING, 10, &[7]);
    let r = agent.wait_for(0, "no state", |r| r.sample.state.is_none()).await;
    assert_eq!(r.sample.output, Some(65538.0), "the rest of the reading still goes out");
    let h = agent.health("modbus:plc-1").unwrap();
    assert!(!h.ok, "{h:?}");
    assert!(h.error.as_deref().unwrap().contains("assets[0].source.state: value 7"), "{h:?}");

    // A register the device does not have fails that asset only, not the connection.
    bank.0.lock().unwrap().remove(&(2, INPUT, 5));
    bank.set(1, HOLDING, 10, &[1]);
    agent.wait_for(0, "running again", |r| r.sample.state == Some(AssetState::Running)).await;
    let h = agent.health("modbus:plc-1").unwrap();
    let e = h.error.unwrap_or_default();
    assert!(e.contains("assets[2].source: reading input registers 5..=5 of unit 2"), "{e}");
    agent.wait_for(1, "line-2 still read", |_| true).await;

    agent.stop().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_silent_device_does_not_hold_up_a_good_one_and_reconnects() {
    let (good, good_port) = listener().await;
    let bank = Bank::default();
    bank.set(1, HOLDING, 0, &[1]);
    let _good = serve(good, bank.clone());
    // A port nobody listens on (for now).
    let (dead, dead_port) = listener().await;
    drop(dead);
    let (quiet, quiet_port) = listener().await;
    let _quiet = silent(quiet);

    let device = |id: &str, port: u16, timeout_ms: u64| {
        format!(
            "[[devices]]\nid = \"{id}\"\nhost = \"127.0.0.1\"\nport = {port}\npoll_ms = 50\ntimeout_ms = {timeout_ms}\n"
        )
    };
    let asset = |id: &str, device: &str| {
        format!(
            "[[assets]]\nid = \"{id}\"\n[assets.source]\ntype = \"modbus-tcp\"\ndevice = \"{device}\"\n\
             state = {{ address = 0, map = {{ \"1\" = \"running\" }} }}\n"
        )
    };
    let mut agent = start(&format!(
        "agent = \"gw-test\"\nsite = \"plant\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n{}{}{}{}{}{}",
        device("good", good_port, 2000),
        device("dead", dead_port, 2000),
        device("quiet", quiet_port, 2000),
        asset("good-line", "good"),
        asset("dead-line", "dead"),
        asset("quiet-line", "quiet"),
    ));

    // The good device publishes at its poll rate while the dead one fails
    // at once and the silent one after its 2 s timeout. A gap in the good
    // readings as long as that timeout would mean one device held up another.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_good = None;
    let mut max_gap = Duration::ZERO;
    let mut good_readings = 0;
    let mut restarted = None;
    let mut dead_readings = 0;
    loop {
        let reading = tokio::time::timeout_at(deadline, agent.rx.recv()).await;
        let Ok(Some(r)) = reading else {
            panic!(
                "not done within 10 s: {good_readings} good readings, {dead_readings} of the dead device, health {:?}",
                agent.health.snapshot()
            );
        };
        match r.asset {
            0 => {
                let now = Instant::now();
                if let Some(before) = last_good.replace(now) {
                    max_gap = max_gap.max(now - before);
                }
                good_readings += 1;
            }
            1 => {
                assert!(restarted.is_some(), "a reading of the dead device before it was started: {r:?}");
                dead_readings += 1;
            }
            _ => panic!("a reading of the silent device: {r:?}"),
        }
        let dead = agent.health("modbus:dead");
        if restarted.is_none() {
            if let Some(h) = dead.filter(|h| !h.ok) {
                assert!(h
                    .error
                    .as_deref()
                    .unwrap()
                    .starts_with(&format!("connect to 127.0.0.1:{dead_port}: ")));
                assert!(agent.health("modbus:good").is_some_and(|h| h.ok));
                // The dead device comes back.
                let (l, port) = (TcpListener::bind(("127.0.0.1", dead_port)).await.unwrap(), dead_port);
                assert_eq!(l.local_addr().unwrap().port(), port);
                restarted = Some(serve(l, bank.clone()));
            }
        }
        let quiet = agent.health("modbus:quiet");
        let quiet_failed = quiet.as_ref().is_some_and(|h| {
            !h.ok && h.error.as_deref().is_some_and(|e| e.contains("no answer within 2000 ms"))
        });
        let recovered = restarted.is_some() && dead_readings > 0 && agent.health("modbus:dead").unwrap().ok;
        if quiet_failed && recovered && good_readings >= 20 {
            break;
        }
    }
    assert!(max_gap < Duration::from_millis(1000), "good device held up for {max_gap:?}");
    assert!(agent.health("modbus:good").unwrap().ok);
    let quiet = agent.health("modbus:quiet").unwrap();
    assert!(quiet.errors >= 1, "{quiet:?}");

    // Stopping does not wait for the silent device's timeout.
    agent.stop().await;
}

#[test]
fn config_errors_name_device_and_register_keys() {
    let bad = r#"
agent = "gw-test"
site = "plant"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[devices]]
id = "plc-1"
host = "127.0.0.1"
poll_ms = 5
[[assets]]
id = "line-1"
[assets.source]
type = "modbus-tcp"
device = "plc-2"
output = { address = 0, words = 3 }
state = { address = 1, map = { "1" = "runing" } }
"#;
    let e = AgentConfig::from_toml(bad, Path::new("bad.toml")).unwrap_err().to_string();
    for expected in [
        "devices[0].poll_ms: must be 50..=3600000",
        "assets[0].source.device: no [[devices]] entry has id `plc-2`",
        "assets[0].source.output.words: must be 1, 2 or 4",
        "assets[0].source.state.map.\"1\": `runing` is not a state",
    ] {
        assert!(e.contains(expected), "`{expected}` missing in:\n{e}");
    }
}
