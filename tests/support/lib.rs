//! Helpers for the end-to-end tests: start the real `aggregator` and
//! `edge-agent` binaries, find free ports, poll HTTP with deadlines, and
//! decide whether a real-broker test runs or skips.
//!
//! The binaries are the ones `cargo test --workspace` builds next to this
//! test executable (`target/<profile>/`).

pub mod fuzz;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any single condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Path of one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run the tests with `cargo test --workspace` so the binaries are built",
        path.display()
    );
    path
}

/// A port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.name);
    }

    /// Wait for the process to exit, failing the test after `DEADLINE`.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "{} did not exit within {DEADLINE:?}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait: a clean stop must exit 0.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit();
        assert!(status.success(), "{} exited with {status} after SIGTERM", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running aggregator and its HTTP base URL.
#[derive(Debug)]
pub struct Aggregator {
    pub proc: Proc,
    pub http: String,
}

/// Start the aggregator with `args` and wait for its "listening" line.
pub fn start_aggregator(args: &[&str]) -> Aggregator {
    start_aggregator_env(args, &[])
}

/// [`start_aggregator`] with extra environment variables (secrets read
/// through `*_env` keys).
pub fn start_aggregator_env(args: &[&str], env: &[(&str, &str)]) -> Aggregator {
    try_start_aggregator_env(args, env).expect("aggregator printed no `listening` line")
}

/// [`start_aggregator`], `None` if it exits without listening (e.g. a port
/// another test took between [`free_port`] and the bind).
pub fn try_start_aggregator(args: &[&str]) -> Option<Aggregator> {
    try_start_aggregator_env(args, &[])
}

fn try_start_aggregator_env(args: &[&str], env: &[(&str, &str)]) -> Option<Aggregator> {
    try_start_aggregator_to(args, env, Stdio::inherit())
}

/// [`start_aggregator`] with its log (stderr) written to `log`.
pub fn start_aggregator_logged(args: &[&str], log: &Path) -> Aggregator {
    let file = std::fs::File::create(log).unwrap();
    try_start_aggregator_to(args, &[], Stdio::from(file)).expect("aggregator printed no `listening` line")
}

fn try_start_aggregator_to(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Option<Aggregator> {
    let mut child = Command::new(bin("aggregator"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start aggregator");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("listening http=") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let proc = Proc { child, name: "aggregator".into() };
    rx.recv_timeout(DEADLINE).ok().map(|http| Aggregator { proc, http })
}

/// [`start_plant`] on a free port for the embedded broker, trying another
/// if a concurrent test takes it first; returns it and the port.
pub fn start_plant_on_free_port(dir: &Path, config: &Path) -> (Aggregator, u16) {
    for _ in 0..5 {
        let mqtt = free_port();
        let listen = format!("127.0.0.1:{mqtt}");
        let data = dir.join("data");
        let args = [
            "--config",
            config.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        if let Some(agg) = try_start_aggregator(&args) {
            return (agg, mqtt);
        }
    }
    panic!("the aggregator could not start on any of 5 free ports");
}

/// Start an aggregator with its embedded broker on a free port, data in
/// `dir`; returns it and the broker port.
pub fn start_embedded_aggregator(dir: &Path) -> (Aggregator, u16) {
    let mqtt = free_port();
    let agg = start_aggregator(&[
        "--http-listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        &format!("127.0.0.1:{mqtt}"),
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ]);
    (agg, mqtt)
}

impl Aggregator {
    /// Wait until the aggregator reports its broker subscription is up.
    pub async fn wait_mqtt_connected(&self) {
        let url = format!("{}/healthz", self.http);
        wait_for("aggregator subscribed at the broker", || async {
            let h = get_json(&url).await;
            if h["mqtt_connected"] == true {
                Ok(())
            } else {
                Err(h.to_string())
            }
        })
        .await
    }
}

/// Start an edge agent with a config file.
pub fn start_agent(config: &Path) -> Proc {
    let child = Command::new(bin("edge-agent"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start edge-agent");
    Proc { child, name: format!("edge-agent {}", config.display()) }
}

/// One simulated line for an agent config.
#[derive(Debug)]
pub struct SimLine<'a> {
    pub id: &'a str,
    pub rate_per_hour: f64,
    /// `(start_s, duration_s, state, reason)` of a stop.
    pub stop: Option<(u64, u64, &'a str, &'a str)>,
}

/// Write an edge agent config publishing every 100 ms.
pub fn write_agent_config(dir: &Path, agent: &str, site: &str, broker: &str, lines: &[SimLine]) -> PathBuf {
    let mut toml = format!(
        "agent = \"{agent}\"\nsite = \"{site}\"\nstate_dir = \"{}\"\n\n[mqtt]\nurl = \"{broker}\"\nkeep_alive_secs = 5\nreconnect_max_secs = 1\n\n[publish]\nmax_batch_delay_ms = 100\nmax_batch_samples = 5\n",
        dir.join(format!("state-{agent}")).display()
    );
    for l in lines {
        toml += &format!(
            "\n[[assets]]\nid = \"{}\"\n[assets.source]\ntype = \"simulator\"\nprofile = \"line\"\ninterval_ms = 100\nrate_per_hour = {}\n",
            l.id, l.rate_per_hour
        );
        if let Some((start, dur, state, reason)) = l.stop {
            toml += &format!(
                "[[assets.source.episodes]]\nstart_s = {start}\nduration_s = {dur}\nstate = \"{state}\"\nreason = \"{reason}\"\n"
            );
        }
    }
    let path = dir.join(format!("{agent}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

/// Write an edge agent config with the given `[[assets]]` TOML, publishing
/// every 100 ms.
pub fn write_agent_config_raw(
    dir: &Path,
    agent: &str,
    site: &str,
    broker: &str,
    assets_toml: &str,
) -> PathBuf {
    let toml = format!(
        "agent = \"{agent}\"\nsite = \"{site}\"\nstate_dir = \"{}\"\n\n[mqtt]\nurl = \"{broker}\"\nkeep_alive_secs = 5\nreconnect_max_secs = 1\n\n[publish]\nmax_batch_delay_ms = 100\nmax_batch_samples = 5\n\n{assets_toml}",
        dir.join(format!("state-{agent}")).display()
    );
    let path = dir.join(format!("{agent}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

/// POST a body with a content type and an optional bearer token; returns
/// the status and the JSON answer.
pub async fn post(
    url: &str,
    content_type: &str,
    token: Option<&str>,
    body: String,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(url).header("content-type", content_type).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Alerts of one kind (any status), from the API.
pub async fn alerts_of(http: &str, kind: &str) -> Vec<serde_json::Value> {
    let v = get_json(&format!("{http}/api/v1/alerts?kind={kind}")).await;
    v["alerts"].as_array().cloned().unwrap_or_default()
}

/// A raw MQTT client on `127.0.0.1:port`, its event loop driven in the
/// background (until it disconnects).
pub fn raw_client(port: u16, id: &str) -> rumqttc::AsyncClient {
    let mut opts = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    client
}

/// GET a JSON document.
pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// GET text.
pub async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}")).text().await.unwrap()
}

/// Poll `probe` every 50 ms until it returns `Some`, failing after `DEADLINE`
/// with `what` and the last value seen.
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    poll_until(what, DEADLINE, Duration::from_millis(50), probe).await
}

/// [`wait_for`] with a deadline of `secs` seconds and a poll every 100 ms,
/// for waits on streams longer than [`DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, secs: u64, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    poll_until(what, Duration::from_secs(secs), Duration::from_millis(100), probe).await
}

async fn poll_until<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(start.elapsed() < limit, "timed out waiting for {what}; last seen: {last}");
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// `aggregator check` on `config`, which must fail; its stderr.
pub fn aggregator_check_fails(config: &Path) -> String {
    let out = Command::new(bin("aggregator"))
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "aggregator check accepted {}", config.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Value of one sample line of the metrics text (`name{labels}` exactly).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// The real broker on 127.0.0.1:1883, if it is there. Under `CI` a missing
/// broker fails the test; elsewhere the test is skipped with a message.
pub fn real_broker() -> Option<String> {
    let addr = "127.0.0.1:1883";
    if TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok() {
        return Some(format!("mqtt://{addr}"));
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but no MQTT broker listens on {addr}: start Mosquitto (mosquitto -d -c /etc/mosquitto/mosquitto.conf)");
    }
    eprintln!("SKIPPED: no MQTT broker on {addr} (start Mosquitto to run this test; under CI=true this fails instead)");
    None
}

/// A short unique suffix for ids, topics and client ids of one test run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// `name` on PATH or in the sbin directories (Mosquitto lives in /usr/sbin).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The paths of the programs a test needs, or `None` when one is missing
/// and the test should skip (with a printed reason). Under `CI` a missing
/// program is a failure, never a skip. `apt` names the Debian packages.
pub fn require_tools(names: &[&str], apt: &str) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_tool(n)).collect();
    let missing: Vec<&str> = names.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(n, _)| *n).collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let missing = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {missing} not installed: apt-get install {apt}");
    }
    eprintln!("SKIPPED: {missing} not installed (apt-get install {apt} to run this test; under CI=true this fails instead)");
    None
}

/// The `mosquitto` binary, for tests that start their own broker (to stop
/// and restart it). Missing: a failure under `CI`, else a printed skip.
pub fn mosquitto_bin() -> Option<PathBuf> {
    require_tools(&["mosquitto"], "mosquitto").map(|mut v| v.remove(0))
}

/// A Mosquitto of the test's own on a free loopback port, with persistence
/// in the test's directory so sessions survive a restart.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    bin: PathBuf,
    proc: Option<Proc>,
}

impl Mosquitto {
    /// Start it (`None` when mosquitto is missing and the test should skip),
    /// saving its persistence file every second.
    pub fn start(dir: &Path) -> Option<Mosquitto> {
        Mosquitto::start_with_autosave(dir, 1)
    }

    /// [`Mosquitto::start`] saving its persistence file only every
    /// `autosave_secs` (and at a clean stop): with a long interval, a
    /// [`Mosquitto::kill`] loses the sessions and messages it holds, as a
    /// broker crash between two autosaves does.
    pub fn start_with_autosave(dir: &Path, autosave_secs: u64) -> Option<Mosquitto> {
        let bin = mosquitto_bin()?;
        let port = free_port();
        let data = dir.join("mosquitto-data");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                // `user root`: as root, keep root so the persistence file can be
                // written in the test's private directory (ignored when not root).
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval {autosave_secs}\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\nlog_type warning\n",
                data.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto { port, conf, bin, proc: None };
        m.restart();
        Some(m)
    }

    /// Start it again (after [`Mosquitto::stop`]) on the same port.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "mosquitto already running");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto");
        self.proc = Some(Proc { child, name: format!("mosquitto :{}", self.port) });
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < DEADLINE, "mosquitto did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it with SIGTERM (it saves its persistence file) and wait.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            p.wait_exit();
        }
    }

    /// Kill it with SIGKILL (a crash: nothing is saved) and wait.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            p.wait_exit();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Start an edge agent whose stderr (its log) goes to `log`.
pub fn start_agent_logged(config: &Path, log: &Path) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(bin("edge-agent"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start edge-agent");
    Proc { child, name: format!("edge-agent {}", config.display()) }
}

/// Bytes of spool segments in an agent's spool directory.
pub fn spool_bytes(spool_dir: &Path) -> u64 {
    std::fs::read_dir(spool_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The `victoria-metrics` binary (Debian's package), for the InfluxDB sink
/// tests. Missing: a failure under `CI`, else a printed skip.
pub fn victoria_metrics() -> Option<PathBuf> {
    require_tools(&["victoria-metrics"], "victoria-metrics").map(|mut v| v.remove(0))
}

/// A VictoriaMetrics of the test's own on a free loopback port, data in the
/// test's directory: a server speaking the InfluxDB v2 write API, read back
/// through its export API.
#[derive(Debug)]
pub struct VictoriaMetrics {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    proc: Option<Proc>,
    polls: std::sync::atomic::AtomicU64,
}

impl VictoriaMetrics {
    /// Reserve a port without starting (`None` when the test should skip).
    pub fn new(dir: &Path) -> Option<VictoriaMetrics> {
        let bin = victoria_metrics()?;
        let data = dir.join("victoria-metrics-data");
        std::fs::create_dir_all(&data).unwrap();
        Some(VictoriaMetrics { port: free_port(), data, bin, proc: None, polls: Default::default() })
    }

    /// Reserve a port and start.
    pub fn start(dir: &Path) -> Option<VictoriaMetrics> {
        let mut vm = VictoriaMetrics::new(dir)?;
        vm.run();
        Some(vm)
    }

    /// Start it on its port and wait until it listens.
    pub fn run(&mut self) {
        assert!(self.proc.is_none(), "victoria-metrics already running");
        let child = Command::new(&self.bin)
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start victoria-metrics");
        self.proc = Some(Proc { child, name: format!("victoria-metrics :{}", self.port) });
        let start = Instant::now();
        while !self.healthy() {
            assert!(start.elapsed() < DEADLINE, "victoria-metrics on {} did not become healthy", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `/health` answers 200 (it listens before it is ready).
    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = String::new();
        conn.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok()
            && conn.read_to_string(&mut answer).is_ok()
            && answer.split_whitespace().nth(1) == Some("200")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every series whose name matches `name_regex`, from `/api/v1/export`
    /// (one JSON object per series: `metric`, `values`, `timestamps`).
    /// VictoriaMetrics caches the series found for a selector for a few
    /// seconds, so each call adds a matcher of its own that matches all.
    pub async fn export(&self, name_regex: &str) -> Vec<serde_json::Value> {
        let n = self.polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let selector = format!("{{__name__=~\"{name_regex}\",throughline_poll!=\"{n}\"}}");
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector.as_str())])
            .send()
            .await
            .unwrap_or_else(|e| panic!("export from victoria-metrics: {e}"));
        assert!(resp.status().is_success(), "export: {}", resp.status());
        let text = resp.text().await.unwrap();
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// The planner token of [`write_plant_config`].
pub const TOKEN: &str = "planner-secret-token";

/// The planning tests' plant: lines `line-1`, `line-2` (36,000 pieces/h,
/// group `family-a`: 5 % shortfall, 3 s downtime) and `feeder-1` (500 kW,
/// group `region-north`) at `site`; a planner token [`TOKEN`] named
/// `test-planner` and a viewer token `viewer-token`; alerts evaluated every
/// 200 ms. `extra` is appended as TOML. Returns the config's path.
///
/// Both groups set `alert_after_secs = 0`: these tests look for a gap alert
/// as soon as the gap is there (some with event time standing still), not
/// after the debounce, which [`write_plant_config_debounced`] keeps.
pub fn write_plant_config(dir: &Path, site: &str, extra: &str) -> PathBuf {
    write_plant_config_debounced(dir, site, 0, extra)
}

/// [`write_plant_config`] with `alert_after_secs` of both groups.
pub fn write_plant_config_debounced(dir: &Path, site: &str, alert_after_secs: u64, extra: &str) -> PathBuf {
    let path = dir.join("aggregator.toml");
    std::fs::write(
        &path,
        format!(
            r#"data_dir = "{data}"
[planning]
evaluate_every_ms = 200

[[groups]]
id = "family-a"
kind = "line"
shortfall_pct = 5
downtime_minutes = 0.05
alert_after_secs = {alert_after_secs}

[[groups]]
id = "region-north"
kind = "feeder"
deviation_pct = 10
alert_after_secs = {alert_after_secs}

[[assets]]
site = "{site}"
id = "line-1"
kind = "line"
group = "family-a"
rated_capacity = 36000

[[assets]]
site = "{site}"
id = "line-2"
kind = "line"
group = "family-a"
rated_capacity = 36000

[[assets]]
site = "{site}"
id = "feeder-1"
kind = "feeder"
group = "region-north"
rated_capacity = 500

[[auth.tokens]]
name = "test-planner"
role = "planner"
token = "{TOKEN}"

[[auth.tokens]]
name = "wallboard"
role = "viewer"
token = "viewer-token"
{extra}
"#,
            data = dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Publish one telemetry envelope (`samples` a JSON array) for `asset` as
/// `agent` with `seq`, QoS 1, through `client`.
pub async fn publish_telemetry(
    client: &rumqttc::AsyncClient,
    site: &str,
    agent: &str,
    asset: &str,
    seq: u64,
    samples: serde_json::Value,
) {
    let body = serde_json::json!({"v": 1, "agent": agent, "seq": seq, "samples": samples}).to_string();
    client
        .publish(
            format!("throughline/v1/{site}/{agent}/{asset}/telemetry"),
            rumqttc::QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .unwrap_or_else(|e| panic!("publish for {asset}: {e}"));
}

/// Start the aggregator on a [`write_plant_config`] config with its
/// embedded broker on `mqtt` and its data in `dir/data`.
pub fn start_plant(dir: &Path, config: &Path, mqtt: u16) -> Aggregator {
    start_aggregator(&[
        "--config",
        config.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        &format!("127.0.0.1:{mqtt}"),
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ])
}
