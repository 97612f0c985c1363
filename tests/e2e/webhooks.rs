//! Webhook receivers that misbehave, end to end through the real aggregator:
//! a receiver that redirects gets no event sent elsewhere, a receiver that
//! never takes its events holds at most `outbox.max_pending` of them, and a
//! receiver URL that does not parse is refused at config load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use throughline_tests::*;

fn rfc(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A receiver on `port` that answers every POST to `/hook` with
/// `307 Location: {to}` (keeping each body), and a would-be thief on
/// `thief_port` that counts whatever reaches it.
async fn start_redirecting_receiver(
    port: u16,
    to: String,
    bodies: Arc<Mutex<Vec<String>>>,
    thief_port: u16,
    stolen: Arc<AtomicUsize>,
) {
    use axum::routing::{any, post};
    let hook = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let bodies = bodies.clone();
            let to = to.clone();
            async move {
                bodies.lock().unwrap().push(body);
                (axum::http::StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, to)], "")
            }
        }),
    );
    let thief = axum::Router::new().fallback(any(move || {
        let stolen = stolen.clone();
        async move {
            stolen.fetch_add(1, Ordering::SeqCst);
            "thanks"
        }
    }));
    for (port, app) in [(port, hook), (thief_port, thief)] {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
}

#[tokio::test]
async fn a_redirecting_webhook_sends_nothing_elsewhere_and_a_full_outbox_drops_its_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-redirect";
    let (hook_port, thief_port) = (free_port(), free_port());
    let steal = format!("http://127.0.0.1:{thief_port}/steal");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let stolen = Arc::new(AtomicUsize::new(0));
    start_redirecting_receiver(hook_port, steal.clone(), bodies.clone(), thief_port, stolen.clone()).await;
    let extra = format!(
        "\n[outbox]\nmax_pending = 1\n\n[[webhooks]]\nname = \"planners\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"hook-secret\"\n"
    );
    let config = write_plant_config(dir.path(), site, &extra);
    let mqtt = free_port();
    let log = dir.path().join("aggregator.log");
    let data = dir.path().join("data");
    let agg = start_aggregator_logged(
        &[
            "--config",
            config.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            &format!("127.0.0.1:{mqtt}"),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &log,
    );
    let mut agg = agg;
    agg.wait_mqtt_connected().await;

    // line-2 down (an `opened` event), then running (a `resolved` one): two
    // events for a receiver that keeps one.
    let client = raw_client(mqtt, "redirect-test");
    let now = Utc::now();
    publish_telemetry(
        &client,
        site,
        "gw-r",
        "line-2",
        1,
        json!([
        {"ts": rfc(now - Duration::seconds(10)), "state": "down", "reason": "jam"},
        {"ts": rfc(now), "state": "down", "reason": "jam"}]),
    )
    .await;
    let alert = wait_for("the downtime alert", || async {
        let open = alerts_of(&agg.http, "downtime").await;
        open.into_iter().find(|a| a["asset"] == "line-2").ok_or_else(|| "not yet".to_string())
    })
    .await;
    publish_telemetry(
        &client,
        site,
        "gw-r",
        "line-2",
        2,
        json!([
        {"ts": rfc(Utc::now()), "state": "running", "output": 1}]),
    )
    .await;
    let metrics_url = format!("{}/metrics", agg.http);
    let dropped_series = "throughline_outbox_dropped_total{receiver=\"webhook:planners\"}";
    // The receiver is asked at least twice (the first attempt and a retry
    // after the 1 s backoff); the opened event is dropped for the newer one.
    let m = wait_for("two redirected attempts, one event dropped, one waiting", || async {
        let m = get_text(&metrics_url).await;
        let failures = metric(&m, "throughline_notification_failures_total").unwrap_or(0.0);
        let dropped = metric(&m, dropped_series);
        let depth = metric(&m, "throughline_outbox_depth");
        let asked = bodies.lock().unwrap().len();
        let last_resolved = bodies
            .lock()
            .unwrap()
            .last()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .is_some_and(|e| e["event"] == "resolved" && e["alert"]["id"] == alert["id"]);
        if failures >= 2.0 && asked >= 2 && dropped == Some(1.0) && depth == Some(1.0) && last_resolved {
            Ok(m)
        } else {
            Err(format!("failures {failures}, asked {asked}, dropped {dropped:?}, depth {depth:?}, last resolved {last_resolved}"))
        }
    })
    .await;
    assert_eq!(metric(&m, "throughline_notifications_delivered_total"), Some(0.0), "a 307 is not a delivery");
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "the signed body followed the redirect");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("redirect to \"{steal}\" not followed")),
        "the Location is logged: {text}"
    );
    assert!(text.contains("outbox full for this receiver"), "the drop is logged: {text}");
    client.disconnect().await.unwrap();
    agg.proc.stop();
}

#[test]
fn a_receiver_url_that_does_not_parse_is_refused_at_config_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        "[[webhooks]]\nname = \"erp\"\nurl = \"http://a b/\"\nsecret = \"k\"\n\
         [[webhooks]]\nname = \"mes\"\nurl = \"http://mes.plant.local/hook\"\nsecret = \"k2\"\n\
         [alertmanager]\nurl = \"http://\"\n\
         [outbox]\nmax_pending = 0\n",
    )
    .unwrap();
    let err = aggregator_check_fails(&config);
    assert!(err.contains("webhooks[0].url: not a URL (invalid international domain name)"), "{err}");
    assert!(!err.contains("webhooks[1]"), "a good URL is not reported: {err}");
    assert!(err.contains("alertmanager.url: not a URL (empty host)"), "{err}");
    assert!(err.contains("outbox.max_pending: must be at least 1"), "{err}");
}
