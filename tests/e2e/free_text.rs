//! Free text has a cap on the real binary: a 200,000-character `software`
//! in an agent status is kept cut to 200 characters and counted; an alert
//! note over 2,000 characters and a quote reference over 200 are refused
//! with a 422 that names the field, and text at the cap is taken.

use serde_json::json;
use throughline_tests::*;

#[tokio::test]
async fn a_long_software_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_plant_config(dir.path(), "plant-t", "");
    let (agg, mqtt) = start_plant_on_free_port(dir.path(), &config);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();
    let client = raw_client(mqtt, &unique("text"));
    let status = json!({"v": 1, "online": true, "software": "v".repeat(200_000)}).to_string();
    client
        .publish("throughline/v1/plant-t/gw-t/status", rumqttc::QoS::AtLeastOnce, true, status)
        .await
        .unwrap();
    let agent = wait_for("gw-t's status taken", || async {
        let v = get_json(&format!("{http}/api/v1/agents")).await;
        let a = v["agents"].as_array().unwrap().iter().find(|a| a["agent"] == "gw-t").cloned();
        a.filter(|a| a["online"] == true).ok_or_else(|| v.to_string())
    })
    .await;
    let sw = agent["software"].as_str().unwrap();
    assert_eq!(sw.chars().count(), 200, "{sw}");
    assert!(sw.starts_with("vvvv") && sw.ends_with('…'), "{sw}");
    let m = get_text(&format!("{http}/metrics")).await;
    assert_eq!(metric(&m, "throughline_status_fields_cut_total"), Some(1.0));

    // A short one is kept whole and not counted.
    let status = json!({"v": 1, "online": true, "software": "edge-agent 0.1.0"}).to_string();
    client
        .publish("throughline/v1/plant-t/gw-t/status", rumqttc::QoS::AtLeastOnce, true, status)
        .await
        .unwrap();
    wait_for("the short software taken", || async {
        let v = get_json(&format!("{http}/api/v1/agents")).await;
        let a = v["agents"].as_array().unwrap().iter().find(|a| a["agent"] == "gw-t").cloned();
        a.filter(|a| a["software"] == "edge-agent 0.1.0").ok_or_else(|| v.to_string())
    })
    .await;
    let m = get_text(&format!("{http}/metrics")).await;
    assert_eq!(metric(&m, "throughline_status_fields_cut_total"), Some(1.0));
}

#[tokio::test]
async fn a_long_note_or_reference_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_plant_config(dir.path(), "plant-u", "");
    let (agg, _mqtt) = start_plant_on_free_port(dir.path(), &config);
    let http = agg.http.clone();
    let json_type = "application/json";

    for action in ["ack", "resolve"] {
        let url = format!("{http}/api/v1/alerts/1/{action}");
        let body = json!({"note": "n".repeat(2001)}).to_string();
        let (code, v) = post(&url, json_type, Some(TOKEN), body).await;
        assert_eq!(code, 422, "{action}: {v}");
        assert_eq!(v["errors"][0]["field"], "note", "{v}");
        assert!(v["error"].as_str().unwrap().contains("`note` is 2001 characters"), "{v}");
        // At the cap: past the check (there is no alert 1).
        let body = json!({"note": "é".repeat(2000)}).to_string();
        let (code, v) = post(&url, json_type, Some(TOKEN), body).await;
        assert_eq!(code, 404, "{action}: {v}");
    }

    let due = (chrono::Utc::now() + chrono::Duration::hours(24)).to_rfc3339();
    let quote = |reference: String| {
        json!({"group": "family-a", "quantity": 10, "due": due, "mode": "quote", "reference": reference})
            .to_string()
    };
    let url = format!("{http}/api/v1/promise");
    let (code, v) = post(&url, json_type, Some(TOKEN), quote("r".repeat(201))).await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errors"][0]["field"], "reference", "{v}");
    assert!(v["error"].as_str().unwrap().contains("at most 200"), "{v}");
    let (code, v) = post(&url, json_type, Some(TOKEN), quote("r".repeat(200))).await;
    assert_ne!(code, 422, "a reference at the cap is taken: {v}");
    assert_ne!(v["errors"][0]["field"], "reference", "{v}");
    // The cap is checked after the token: a viewer is told it may not quote.
    let (code, v) = post(&url, json_type, Some("viewer-token"), quote("r".repeat(201))).await;
    assert_eq!(code, 403, "{v}");
}
