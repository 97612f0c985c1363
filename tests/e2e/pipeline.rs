//! edge-agent (simulator) -> broker -> aggregator -> HTTP API.

use serde_json::Value;
use throughline_tests::*;

fn aggregator_config(dir: &std::path::Path, site: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("aggregator.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n{extra}\n[[assets]]\nsite = \"{site}\"\nid = \"press-1\"\nkind = \"line\"\ngroup = \"family-a\"\nrated_capacity = 3600\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Start an agent for `site` against `broker`, wait until the aggregator at
/// `http` shows press-1 down with reason `jam` and press-9 (unregistered)
/// running, then stop the agent and see it go offline.
async fn run_pipeline(dir: &std::path::Path, http: &str, site: &str, agent: &str, broker: &str) {
    let cfg = write_agent_config(
        dir,
        agent,
        site,
        broker,
        &[
            SimLine { id: "press-1", rate_per_hour: 36000.0, stop: Some((1, 600, "down", "jam")) },
            SimLine { id: "press-9", rate_per_hour: 7200.0, stop: None },
        ],
    );
    let mut agent_proc = start_agent(&cfg);
    let url = format!("{http}/api/v1/assets/{site}/press-1");
    let asset: Value = wait_for("press-1 down with reason jam", || async {
        let v = get_json(&url).await;
        if v["state"] == "down" && v["reason"] == "jam" && v["agent_online"] == true {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(asset["registered"], true);
    assert_eq!(asset["kind"], "line");
    assert_eq!(asset["group"], "family-a");
    assert_eq!(asset["agent"], agent);
    // Ran for a second at 10 pieces/s before stopping.
    assert!(asset["output_total"].as_f64().unwrap() >= 5.0, "{asset}");
    assert!(asset["samples"].as_u64().unwrap() >= 10, "{asset}");
    assert!(asset["state_since"].is_string());

    let stranger = get_json(&format!("{http}/api/v1/assets/{site}/press-9")).await;
    assert_eq!(stranger["registered"], false, "{stranger}");
    assert_eq!(stranger["state"], "running", "{stranger}");

    agent_proc.stop();
    let agents_url = format!("{http}/api/v1/agents");
    wait_for("agent marked offline after a clean stop", || async {
        let v = get_json(&agents_url).await;
        let a = v["agents"].as_array().unwrap().iter().find(|a| a["agent"] == agent).cloned();
        match a {
            Some(a) if a["online"] == false => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let asset = get_json(&url).await;
    assert_eq!(asset["agent_online"], false);
}

#[tokio::test]
async fn agent_to_embedded_broker_to_api() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = free_port();
    let site = "plant-e2e";
    let config = aggregator_config(dir.path(), site, "");
    let mut agg = start_aggregator(&[
        "--config",
        config.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        &format!("127.0.0.1:{mqtt}"),
    ]);
    let health = get_json(&format!("{}/healthz", agg.http)).await;
    assert_eq!(health["status"], "ok");
    run_pipeline(dir.path(), &agg.http, site, "gw-e2e", &format!("mqtt://127.0.0.1:{mqtt}")).await;

    let metrics = get_text(&format!("{}/metrics", agg.http)).await;
    assert!(metric(&metrics, "throughline_messages_ingested_total").unwrap() > 0.0, "{metrics}");
    assert_eq!(metric(&metrics, "throughline_duplicate_messages_total"), Some(0.0), "{metrics}");
    assert_eq!(metric(&metrics, "throughline_agent_online{site=\"plant-e2e\",agent=\"gw-e2e\"}"), Some(0.0));
    assert_eq!(metric(&metrics, "throughline_unregistered_assets"), Some(1.0));
    agg.proc.stop();
}

#[tokio::test]
async fn agent_to_real_mosquitto_to_api() {
    let Some(broker) = real_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = unique("plant");
    let agent = unique("gw");
    let client_id = unique("aggregator");
    let config = aggregator_config(
        dir.path(),
        &site,
        &format!("[mqtt]\nclient_id = \"{client_id}\"\npersistent_session = false\n"),
    );
    let mut agg = start_aggregator(&[
        "--config",
        config.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--broker",
        &broker,
    ]);
    agg.wait_mqtt_connected().await;
    run_pipeline(dir.path(), &agg.http, &site, &agent, &broker).await;
    agg.proc.stop();
    clear_retained_status(&site, &agent).await;
}

/// Leave the shared broker as we found it: clear the agent's retained status.
async fn clear_retained_status(site: &str, agent: &str) {
    let (client, mut eventloop) =
        rumqttc::AsyncClient::new(rumqttc::MqttOptions::new(unique("cleanup"), "127.0.0.1", 1883), 10);
    let topic = format!("throughline/v1/{site}/{agent}/status");
    client.publish(topic, rumqttc::QoS::AtLeastOnce, true, Vec::<u8>::new()).await.unwrap();
    client.disconnect().await.unwrap();
    let drive = async {
        while let Ok(ev) = eventloop.poll().await {
            if let rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect) = ev {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), drive).await.expect("cleanup publish");
}
