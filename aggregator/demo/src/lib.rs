//! `throughline-demo`: the aggregator with its embedded broker plus three
//! simulated edge agents (the real edge-agent code, in-process) for a small
//! plant: four lines in two product families, three feeders in two regions,
//! one line going down with a reason partway through.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use throughline_edge_agent::config::{
    AgentConfig, AssetConfig as AgentAsset, Episode, MqttConfig, PublishConfig, SimProfile, SimulatorConfig,
    SourceConfig,
};
use throughline_shared::{AgentId, AssetId, AssetState, SiteId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use throughline_aggregator::config::{AssetConfig, AssetKind, Config};
use throughline_aggregator::model::ForecastRow;
use throughline_aggregator::{App, Error};

/// The demo's site.
pub const SITE: &str = "demo-plant";
/// When the demo's failing line goes down, and for how long (seconds).
pub const DOWN_AT_S: u64 = 30;
pub const DOWN_FOR_S: u64 = 90;

struct DemoAsset {
    id: &'static str,
    name: &'static str,
    kind: AssetKind,
    group: &'static str,
    rated: f64,
    agent: &'static str,
    episodes: Vec<Episode>,
}

fn plant() -> Vec<DemoAsset> {
    let line = |id, name, group, rated, agent, episodes| DemoAsset {
        id,
        name,
        kind: AssetKind::Line,
        group,
        rated,
        agent,
        episodes,
    };
    let feeder = |id, name, group, rated, agent| DemoAsset {
        id,
        name,
        kind: AssetKind::Feeder,
        group,
        rated,
        agent,
        episodes: vec![],
    };
    vec![
        line("press-1", "Press line 1", "family-a", 1200.0, "gw-presses", vec![]),
        line(
            "press-2",
            "Press line 2",
            "family-a",
            1200.0,
            "gw-presses",
            vec![Episode {
                start_s: DOWN_AT_S,
                duration_s: DOWN_FOR_S,
                state: Some(AssetState::Down),
                reason: Some("jam".into()),
                slowdown_pct: None,
            }],
        ),
        line("assembly-1", "Assembly 1", "family-b", 600.0, "gw-assembly", vec![]),
        line(
            "assembly-2",
            "Assembly 2",
            "family-b",
            600.0,
            "gw-assembly",
            vec![Episode {
                start_s: 60,
                duration_s: 120,
                state: None,
                reason: None,
                slowdown_pct: Some(40.0),
            }],
        ),
        feeder("feeder-n1", "Feeder North 1", "region-north", 800.0, "gw-substation"),
        feeder("feeder-n2", "Feeder North 2", "region-north", 800.0, "gw-substation"),
        feeder("feeder-s1", "Feeder South 1", "region-south", 1200.0, "gw-substation"),
    ]
}

/// The demo's planner token (printed in the banner; the demo listens on
/// loopback only unless told otherwise).
pub const DEMO_TOKEN: &str = "demo-planner";

/// The aggregator config of the demo plant, on top of `base` (listen
/// addresses and data dir from the command line).
pub fn config(mut base: Config) -> Config {
    base.auth.tokens.push(throughline_aggregator::config::TokenConfig {
        name: "demo planner".into(),
        role: throughline_aggregator::config::Role::Planner,
        token: Some(DEMO_TOKEN.into()),
        token_file: None,
        token_env: None,
    });
    for (id, kind) in [
        ("family-a", AssetKind::Line),
        ("family-b", AssetKind::Line),
        ("region-north", AssetKind::Feeder),
        ("region-south", AssetKind::Feeder),
    ] {
        let mut g = throughline_aggregator::config::GroupConfig::with_defaults(id, kind);
        g.downtime_minutes = 1.0;
        g.offline_secs = 30;
        // press-2's 90 s stop must outlast the debounce to raise its
        // schedule alert (the default 120 s would hide it).
        g.alert_after_secs = 30;
        base.groups.push(g);
    }
    base.assets = plant()
        .into_iter()
        .map(|a| AssetConfig {
            site: SiteId::parse(SITE).expect("valid id"),
            id: AssetId::parse(a.id).expect("valid id"),
            kind: a.kind,
            group: a.group.into(),
            rated_capacity: a.rated,
            name: Some(a.name.into()),
            agents: Vec::new(),
        })
        .collect();
    base
}

/// Edge agent configs of the demo plant, publishing to `broker_url`.
pub fn agents(broker_url: &str, state_root: &Path) -> Vec<AgentConfig> {
    let mut by_agent: Vec<(&'static str, Vec<AgentAsset>)> = Vec::new();
    for (i, a) in plant().into_iter().enumerate() {
        let source = match a.kind {
            AssetKind::Line => SimulatorConfig {
                profile: SimProfile::Line,
                seed: 100 + i as u64,
                interval_ms: 1000,
                rate_per_hour: a.rated * 0.95,
                running_load_kw: Some(a.rated / 20.0),
                base_kw: 0.0,
                peak_kw: 0.0,
                period_s: 600,
                jitter_pct: 3.0,
                start_output: 10_000.0 * (i + 1) as f64,
                episodes: a.episodes,
            },
            AssetKind::Feeder => SimulatorConfig {
                profile: SimProfile::Feeder,
                seed: 100 + i as u64,
                interval_ms: 1000,
                rate_per_hour: 0.0,
                running_load_kw: None,
                base_kw: a.rated * 0.35,
                peak_kw: a.rated * 0.9,
                period_s: 600,
                jitter_pct: 2.0,
                start_output: 50_000.0,
                episodes: a.episodes,
            },
        };
        let asset = AgentAsset {
            id: AssetId::parse(a.id).expect("valid id"),
            sample_interval_ms: None,
            load_deadband_kw: None,
            source: SourceConfig::Simulator(source),
        };
        match by_agent.iter_mut().find(|(g, _)| *g == a.agent) {
            Some((_, list)) => list.push(asset),
            None => by_agent.push((a.agent, vec![asset])),
        }
    }
    by_agent
        .into_iter()
        .map(|(agent, assets)| AgentConfig {
            agent: AgentId::parse(agent).expect("valid id"),
            site: SiteId::parse(SITE).expect("valid id"),
            state_dir: state_root.join(agent),
            mqtt: MqttConfig { reconnect_max_secs: 5, ..MqttConfig::plain(broker_url) },
            publish: PublishConfig::default(),
            devices: Vec::new(),
            spool: Default::default(),
            assets,
        })
        .collect()
}

/// Forecast buckets of 10 minutes for the next hour: about what the plant
/// makes when everything runs, so a stop shows up as a schedule alert.
pub fn forecasts(now: chrono::DateTime<chrono::Utc>) -> Vec<ForecastRow> {
    use throughline_aggregator::model::Unit;
    let start = chrono::DateTime::from_timestamp(now.timestamp() - now.timestamp() % 60, 0).unwrap_or(now);
    let mut rows = Vec::new();
    for i in 0..6 {
        let (s, e) =
            (start + chrono::Duration::minutes(10 * i), start + chrono::Duration::minutes(10 * (i + 1)));
        for (group, demand, unit, uplift) in [
            ("family-a", 2.0_f64 * 1140.0 / 6.0 * 0.97, Unit::Pieces, 0.0),
            ("family-b", 2.0 * 570.0 / 6.0, Unit::Pieces, 3.0),
            ("region-north", 1000.0 / 6.0, Unit::KWh, 0.0),
            ("region-south", 750.0 / 6.0, Unit::KWh, 0.0),
        ] {
            rows.push(ForecastRow {
                group: group.into(),
                start: s,
                end: e,
                demand: demand.round(),
                unit,
                uplift_pct: uplift,
            });
        }
    }
    rows
}

/// `addr` if nothing listens there, else another free port on the same
/// address (said on stderr, with the flag that picks one).
pub fn free_or_other(addr: SocketAddr, what: &str, flag: &str) -> std::io::Result<SocketAddr> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(addr),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // The port is free again once the probe is dropped; another
            // program could take it in between, and the start then fails
            // with the usual advice.
            let other = std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))?.local_addr()?;
            eprintln!(
                "throughline-demo: {addr} is taken (another {what} server is running there); \
                 the demo's {what} listens on {other} instead ({flag} chooses the address)"
            );
            Ok(other)
        }
        Err(e) => Err(e),
    }
}

/// Run the demo until `token` is cancelled.
pub async fn run(base: Config, token: CancellationToken) -> Result<(), Error> {
    let data_dir: PathBuf = base.data_dir.clone();
    let app = App::build(config(base), "demo").await?;
    let shared = app.shared();
    shared.store.import_forecasts(&forecasts(chrono::Utc::now()), "demo", "demo", chrono::Utc::now())?;
    shared.forecasts.reload();
    let http = app.http_addr();
    let broker = app.broker_url().clone();
    let tracker = TaskTracker::new();
    for agent in agents(&broker.to_string(), &data_dir.join("agents")) {
        let token = token.child_token();
        tracker.spawn(async move {
            let name = agent.agent.clone();
            if let Err(e) = throughline_edge_agent::run(agent, Path::new("demo"), token).await {
                tracing::error!(agent = %name, error = %e, "demo agent stopped");
            }
        });
    }
    println!(
        "\nThroughline demo is running: site `{SITE}`, 4 lines (family-a, family-b), 3 feeders (region-north, region-south).\n\
         \n  Dashboard:           http://{http}/   (open it in a browser)\
         \n  Assets (live state): http://{http}/api/v1/assets\
         \n  One asset:           http://{http}/api/v1/assets/{SITE}/press-2\
         \n  Agents:              http://{http}/api/v1/agents\
         \n  Balance (forecast vs capacity): http://{http}/api/v1/balance?group=family-a\
         \n  Alerts:              http://{http}/api/v1/alerts?status=open\
         \n  Can we make 500 more pieces of family-a within the hour?\
         \n    curl -s -X POST http://{http}/api/v1/promise -H 'content-type: application/json' \\\
         \n      -d '{{\"group\":\"family-a\",\"quantity\":500,\"due\":\"{due}\"}}'\
         \n  Planner token for writes (ack, resolve, import, quote): {DEMO_TOKEN}\
         \n  Metrics:             http://{http}/metrics\
         \n  MQTT broker:         {broker} (embedded); watch it with\
         \n                       mosquitto_sub -h {} -p {} -t 'throughline/v1/#' -v\
         \n\nWhat to expect: samples every second from 3 simulated gateways. About {DOWN_AT_S} s in,\
         \npress-2 goes `down` with reason `jam` for {DOWN_FOR_S} s, then runs again; from 60 s on,\
         \nassembly-2 runs 40 % slow for 2 minutes; feeder loads follow a 10-minute daily curve.\
         \nThe forecast (10-minute buckets for the next hour) expects everything running, so\
         \npress-2's stop raises a `downtime` alert, and a `schedule` alert with the extra hours\
         \nneeded once it has lasted 30 s (the demo's `alert_after_secs`).\
         \nData and agent state: {}\nPress Ctrl-C to stop.\n",
        broker.host,
        broker.port,
        data_dir.display(),
        due = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    // Stop the sources first: agents flush to the broker while ingest is
    // still running, then the aggregator stops.
    let app_token = CancellationToken::new();
    let server = tokio::spawn(app.run(app_token.clone()));
    token.cancelled().await;
    tracker.close();
    tracker.wait().await;
    app_token.cancel();
    server.await?
}
