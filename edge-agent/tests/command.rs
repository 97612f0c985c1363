//! The `command` source end to end: real programs (`/bin/sh` scripts) started
//! through `spawn_all`, their readings taken from the source queue.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use throughline_edge_agent::source::{spawn_all, Health, Reading, Sink, SourceHealth, SourceStats};
use throughline_edge_agent::AgentConfig;
use throughline_shared::AssetState;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const DEADLINE: Duration = Duration::from_secs(10);

/// Agent config with the given `[[assets]]` entries.
fn config(assets: &str) -> AgentConfig {
    let text =
        format!("agent = \"gw-test\"\nsite = \"plant\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n{assets}");
    AgentConfig::from_toml(&text, Path::new("test.toml")).unwrap()
}

/// One command asset running `script` with `/bin/sh -c`, plus `extra` source keys.
fn sh_asset(id: &str, script: &str, extra: &str) -> String {
    format!(
        "[[assets]]\nid = \"{id}\"\n[assets.source]\ntype = \"command\"\nprogram = \"/bin/sh\"\n\
         args = [\"-c\", '''{script}''']\n{extra}\n"
    )
}

struct Running {
    rx: mpsc::Receiver<Reading>,
    token: CancellationToken,
    tracker: TaskTracker,
    health: Arc<Health>,
    deadline: Instant,
}

fn start(config: &AgentConfig) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let token = CancellationToken::new();
    let sink = Sink::new(tx, Arc::new(SourceStats::default()), token.clone());
    let health = Arc::new(Health::default());
    let tracker = TaskTracker::new();
    spawn_all(config, &sink, &health, &tracker);
    Running { rx, token, tracker, health, deadline: Instant::now() + DEADLINE }
}

impl Running {
    async fn reading(&mut self) -> Reading {
        timeout_at(self.deadline, self.rx.recv())
            .await
            .expect("a reading before the deadline")
            .expect("queue open")
    }

    /// Wait until the health of `name` satisfies `ok`; returns it.
    async fn health_until(&self, name: &str, ok: impl Fn(&SourceHealth) -> bool) -> SourceHealth {
        loop {
            let current = self.health.snapshot().into_iter().find(|h| h.name == name);
            if let Some(h) = current.filter(|h| ok(h)) {
                return h;
            }
            assert!(
                Instant::now() < self.deadline,
                "health of {name} not as expected in time: {:?}",
                self.health.snapshot()
            );
            // A changed health wakes us; counted repeats do not, hence the recheck.
            let _ = tokio::time::timeout(Duration::from_millis(50), self.health.changed()).await;
        }
    }

    async fn stop(self) {
        self.token.cancel();
        self.tracker.close();
        timeout_at(self.deadline, self.tracker.wait()).await.expect("sources stop in time");
    }
}

/// The process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn periodic_mode_runs_the_program_again_and_again() {
    // Each run prints one reading with its own process id as the output.
    let script = r#"echo "{\"output\":$$,\"state\":\"running\",\"load_kw\":1.5}""#;
    let c = config(&sh_asset("press-1", script, "interval_ms = 100"));
    let mut agent = start(&c);
    let started = chrono::Utc::now();
    let mut outputs = Vec::new();
    for _ in 0..3 {
        let r = agent.reading().await;
        assert_eq!(r.asset, 0);
        assert_eq!((r.sample.state, r.sample.load_kw), (Some(AssetState::Running), Some(1.5)));
        assert!(r.sample.ts >= started - chrono::Duration::seconds(1), "stamped now: {}", r.sample.ts);
        outputs.push(r.sample.output.unwrap());
    }
    outputs.dedup();
    assert_eq!(outputs.len(), 3, "three runs, three processes: {outputs:?}");
    assert!(agent.health_until("command:press-1", |h| h.ok).await.errors == 0);
    agent.stop().await;
}

#[tokio::test]
async fn long_running_bad_line_is_reported_and_the_rest_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // Good, bad, then (once the test has seen the error) good again, with
    // a `ts` of its own: a day old (older than 30 days would be refused).
    let script = r#"echo '{"output":1,"state":"running"}'
echo 'this is not json'
while [ ! -e "$GO_FILE" ]; do sleep 0.02; done
echo '{"ts":"'"$TS"'","output":3,"state":"down","reason":"jam"}'
exec sleep 1000"#;
    let ts =
        (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let extra = format!(
        "mode = \"long-running\"\nworking_dir = \"{}\"\nenv = {{ GO_FILE = \"go\", TS = \"{ts}\" }}",
        dir.path().display()
    );
    let c = config(&sh_asset("press-1", script, &extra));
    let mut agent = start(&c);

    let first = agent.reading().await;
    assert_eq!((first.asset, first.sample.output), (0, Some(1.0)));
    let h = agent.health_until("command:press-1", |h| !h.ok).await;
    let error = h.error.unwrap();
    assert!(error.starts_with("line 2: ") && error.contains("not a JSON object"), "{error}");

    std::fs::write(dir.path().join("go"), "").unwrap();
    let second = agent.reading().await;
    assert_eq!(second.sample.output, Some(3.0));
    assert_eq!(second.sample.reason.as_deref(), Some("jam"));
    assert_eq!(second.sample.ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), ts);
    let h = agent.health_until("command:press-1", |h| h.ok).await;
    assert_eq!(h.errors, 1, "the one bad line");
    assert!(agent.rx.try_recv().is_err(), "nothing else arrived");
    agent.stop().await;
}

#[tokio::test]
async fn missing_program_is_a_health_error() {
    let c = config(
        "[[assets]]\nid = \"ghost\"\n[assets.source]\ntype = \"command\"\n\
         program = \"/nonexistent/throughline-no-such-program\"\ninterval_ms = 100\n",
    );
    let mut agent = start(&c);
    let h = agent.health_until("command:ghost", |h| !h.ok).await;
    let error = h.error.unwrap();
    assert!(error.contains("cannot start `/nonexistent/throughline-no-such-program`"), "{error}");
    assert!(agent.rx.try_recv().is_err(), "no readings");
    agent.stop().await;
}

#[tokio::test]
async fn timeout_failed_exit_and_long_lines_are_health_errors() {
    let assets = [
        sh_asset("slow", "echo starting >&2; sleep 1000", "timeout_ms = 200\ninterval_ms = 100"),
        sh_asset("fails", "echo first >&2; echo 'boom: no device' >&2; exit 3", "interval_ms = 100"),
        sh_asset("quits", "echo '{\"output\":5}'", "mode = \"long-running\"\nrestart_delay_ms = 100"),
        sh_asset("wordy", r"head -c 100000 /dev/zero | tr '\0' x; echo", "interval_ms = 100"),
    ]
    .concat();
    let mut agent = start(&config(&assets));
    let slow = agent.health_until("command:slow", |h| !h.ok).await.error.unwrap();
    assert_eq!(slow, "timed out after 200 ms; killed (stderr: starting)");
    let fails = agent.health_until("command:fails", |h| !h.ok).await.error.unwrap();
    assert_eq!(fails, "exited with status 3 (stderr: boom: no device)");
    let quits = agent.health_until("command:quits", |h| !h.ok).await.error.unwrap();
    assert_eq!(quits, "exited with status 0", "a long-running program is not meant to exit");
    // ...and it is started again.
    agent.health_until("command:quits", |h| h.errors >= 2).await;
    assert_eq!(agent.reading().await.asset, 2);
    let wordy = agent.health_until("command:wordy", |h| !h.ok).await.error.unwrap();
    assert_eq!(wordy, "line 1: longer than 65536 bytes");
    agent.stop().await;
}

#[tokio::test]
async fn stopping_kills_the_program_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo $$ > pids
sleep 1000 &
echo $! >> pids
echo '{"output":1}'
wait"#;
    let extra = format!("mode = \"long-running\"\nworking_dir = \"{}\"", dir.path().display());
    let c = config(&sh_asset("press-1", script, &extra));
    let mut agent = start(&c);
    agent.reading().await;
    let pids: Vec<u32> = std::fs::read_to_string(dir.path().join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.iter().all(|&p| alive(p)), "script and its sleep run: {pids:?}");

    let deadline = agent.deadline;
    agent.stop().await;
    assert!(!alive(pids[0]), "the program itself is killed and reaped by the time the source returned");
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
