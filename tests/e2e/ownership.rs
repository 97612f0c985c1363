//! Who may report an asset, and what a flood of made-up agents costs: the
//! real aggregator with its embedded broker, raw MQTT clients on loopback.
//!
//! - An asset belongs to the agents its `[[assets]]` entry names, or else to
//!   the first agent heard until an admin moves it (`PUT .../owner`);
//!   anything else is refused as `not_owner`, counted.
//! - 20,000 QoS 1 messages from one client, each from a new 64-character
//!   agent for a new asset: at most `ingest.max_unregistered` of each are
//!   kept, the rest refused as `unregistered_limit`; `/healthz` and a
//!   genuine agent's message stay prompt; no thousands of alerts.

use std::time::{Duration, Instant};

use serde_json::json;
use throughline_tests::*;

const SITE: &str = "plant-o";
const ADMIN: &str = "admin-secret-token";

fn sample(secs_ago: i64, output: f64) -> serde_json::Value {
    let ts = chrono::Utc::now() - chrono::Duration::seconds(secs_ago);
    json!([{"ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "output": output, "state": "running"}])
}

async fn rejected(http: &str, reason: &str) -> f64 {
    let m = get_text(&format!("{http}/metrics")).await;
    metric(&m, &format!("throughline_rejected_messages_total{{reason=\"{reason}\"}}")).unwrap_or(-1.0)
}

async fn asset_view(http: &str, asset: &str) -> serde_json::Value {
    get_json(&format!("{http}/api/v1/assets/{SITE}/{asset}")).await
}

async fn put_owner(http: &str, asset: &str, token: &str, agent: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .put(format!("{http}/api/v1/assets/{SITE}/{asset}/owner"))
        .bearer_auth(token)
        .json(&json!({ "agent": agent }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_agent_reports_only_the_assets_it_owns_until_an_admin_moves_one() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[[assets]]
site = "{SITE}"
id = "press-9"
kind = "line"
group = "family-a"
rated_capacity = 36000
agents = ["gw-a", "gw-a-spare"]

[[auth.tokens]]
name = "ops-admin"
role = "admin"
token = "{ADMIN}"
"#
    );
    let cfg = write_plant_config(dir.path(), SITE, &extra);
    let (agg, port) = start_plant_on_free_port(dir.path(), &cfg);
    let http = agg.http.clone();
    agg.wait_mqtt_connected().await;
    let client = raw_client(port, &unique("own"));

    // gw-a is heard first for line-1 (named by no agent): it owns it.
    publish_telemetry(&client, SITE, "gw-a", "line-1", 1, sample(2, 100.0)).await;
    publish_telemetry(&client, SITE, "gw-a", "press-9", 2, sample(2, 50.0)).await;
    wait_for("gw-a's line-1 and press-9", || async {
        let (l, p) = (asset_view(&http, "line-1").await, asset_view(&http, "press-9").await);
        if l["output_counter"] == 100.0 && p["output_counter"] == 50.0 {
            Ok(())
        } else {
            Err(format!("{l} {p}"))
        }
    })
    .await;
    // gw-b's forged readings (ahead in time, absurd outputs) for both are
    // refused; the standby named for press-9 is taken.
    publish_telemetry(&client, SITE, "gw-b", "line-1", 1, sample(-290, 1e9)).await;
    publish_telemetry(&client, SITE, "gw-b", "press-9", 2, sample(-290, 1e9)).await;
    publish_telemetry(&client, SITE, "gw-a-spare", "press-9", 1, sample(1, 60.0)).await;
    wait_for("gw-b refused twice", || async {
        match rejected(&http, "not_owner").await {
            2.0 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    wait_for("the standby's press-9 reading", || async {
        let p = asset_view(&http, "press-9").await;
        if p["output_counter"] == 60.0 {
            Ok(())
        } else {
            Err(p.to_string())
        }
    })
    .await;
    let l = asset_view(&http, "line-1").await;
    assert_eq!((l["output_counter"].clone(), l["agent"].clone()), (json!(100.0), json!("gw-a")), "{l}");

    // Replacing line-1's gateway by gw-b: one API call, admin only.
    let (status, body) = put_owner(&http, "line-1", TOKEN, "gw-b").await;
    assert_eq!(status, 403, "a planner token moved it: {body}");
    let (status, body) = put_owner(&http, "line-1", ADMIN, "gw-b").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["agent"].clone(), body["previous"].clone()), (json!("gw-b"), json!("gw-a")));
    publish_telemetry(&client, SITE, "gw-b", "line-1", 2, sample(1, 200.0)).await;
    publish_telemetry(&client, SITE, "gw-a", "line-1", 3, sample(0, 999.0)).await;
    wait_for("gw-b's line-1 reading taken, gw-a's refused", || async {
        let (l, n) = (asset_view(&http, "line-1").await, rejected(&http, "not_owner").await);
        if l["output_counter"] == 200.0 && n == 3.0 {
            Ok(())
        } else {
            Err(format!("{l} not_owner={n}"))
        }
    })
    .await;
    // An asset whose entry names its agents is moved in the config.
    let (status, body) = put_owner(&http, "press-9", ADMIN, "gw-b").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("change `agents` of its [[assets]] entry"), "{body}");
}

/// The resident set of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// One `/healthz`, timed.
async fn healthz_secs(http: &str) -> f64 {
    let started = Instant::now();
    let h = get_json(&format!("{http}/healthz")).await;
    assert_eq!(h["status"], "ok", "{h}");
    started.elapsed().as_secs_f64()
}

#[tokio::test]
async fn a_flood_of_made_up_agents_is_capped_and_the_plant_stays_prompt() {
    const FLOOD: usize = 20_000;
    const CAP: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_plant_config(dir.path(), SITE, &format!("\n[ingest]\nmax_unregistered = {CAP}\n"));
    let (agg, port) = start_plant_on_free_port(dir.path(), &cfg);
    let http = agg.http.clone();
    agg.wait_mqtt_connected().await;
    let genuine = raw_client(port, &unique("genuine"));
    publish_telemetry(&genuine, SITE, "gw-real", "line-1", 1, sample(1, 10.0)).await;
    wait_for("the genuine agent's first reading", || async {
        let l = asset_view(&http, "line-1").await;
        if l["output_counter"] == 10.0 {
            Ok(())
        } else {
            Err(l.to_string())
        }
    })
    .await;
    let rss_before = rss_mib(agg.proc.pid());

    // /healthz polled throughout the flood, its slowest answer kept.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (http, stop) = (http.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut slowest, mut polls) = (0.0f64, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                slowest = slowest.max(healthz_secs(&http).await);
                polls += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (slowest, polls)
        })
    };
    let flood = raw_client(port, &unique("flood"));
    let started = Instant::now();
    for i in 0..FLOOD {
        // 64 characters each, all different.
        let agent = format!("fake-agent-{i:053}");
        let asset = format!("fake-asset-{i:053}");
        let body = json!({"v": 1, "agent": agent, "seq": 1, "samples": sample(0, 1.0)}).to_string();
        flood
            .publish(
                format!("throughline/v1/{SITE}/{agent}/{asset}/telemetry"),
                rumqttc::QoS::AtLeastOnce,
                false,
                body,
            )
            .await
            .unwrap();
    }
    let sent = started.elapsed();
    // The genuine agent's next reading, right behind the flood.
    let genuine_at = Instant::now();
    publish_telemetry(&genuine, SITE, "gw-real", "line-1", 2, sample(0, 20.0)).await;
    wait_until("the genuine reading behind the flood", 120, || async {
        let l = asset_view(&http, "line-1").await;
        if l["output_counter"] == 20.0 {
            Ok(())
        } else {
            Err(l.to_string())
        }
    })
    .await;
    let genuine_secs = genuine_at.elapsed().as_secs_f64();
    let refused = (FLOOD - CAP) as f64;
    wait_until("every flood message handled", 120, || async {
        match rejected(&http, "unregistered_limit").await {
            n if n == refused => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    let handled = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (slowest_healthz, polls) = poller.await.unwrap();
    let rss_after = rss_mib(agg.proc.pid());
    let m = get_text(&format!("{http}/metrics")).await;
    let kept = metric(&m, "throughline_unregistered_assets").unwrap_or(-1.0);
    let agents = get_json(&format!("{http}/api/v1/agents")).await["agents"].as_array().unwrap().len();
    let alerts = get_json(&format!("{http}/api/v1/alerts")).await["alerts"].as_array().unwrap().len();
    eprintln!(
        "flood: {FLOOD} messages sent in {:.2} s, handled in {:.2} s; /healthz slowest {:.3} s over {polls} polls; \
         genuine reading visible after {genuine_secs:.2} s; kept {kept} unregistered assets and {agents} agents; \
         {alerts} alerts; RSS {rss_before:.0} -> {rss_after:.0} MiB",
        sent.as_secs_f64(),
        handled.as_secs_f64(),
        slowest_healthz
    );
    assert_eq!(kept, CAP as f64, "unregistered assets kept");
    assert_eq!(agents, CAP + 1, "the cap's agents and the genuine one");
    assert!(alerts <= CAP, "{alerts} alerts");
    // Generous bounds for a debug build on a shared machine.
    assert!(slowest_healthz < 2.0, "/healthz took {slowest_healthz:.2} s during the flood");
    assert!(genuine_secs < 30.0, "the genuine reading took {genuine_secs:.1} s");
    assert!(rss_after - rss_before < 300.0, "RSS grew {rss_before:.0} -> {rss_after:.0} MiB");
}
