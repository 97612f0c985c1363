//! The forecast-accuracy report end to end: telemetry with chosen
//! timestamps through the embedded broker, a forecast imported over HTTP,
//! and the report's JSON and CSV read back: one closed bucket complete, one
//! with an asset whose data stops short of its end.

use chrono::Duration;
use serde_json::{json, Value};
use throughline_tests::*;

use crate::history::{
    base, get, import_buckets, publish, range_url, refuses_unknown_group_and_reversed_range, rfc, start,
    write_config,
};

/// GET `url` with an optional Accept header: status, Content-Type, body.
async fn get_with_accept(url: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ctype, resp.text().await.unwrap())
}

#[tokio::test]
async fn forecast_accuracy_report_has_actuals_deviation_completeness_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let site = "plant-accuracy";
    let config = write_config(dir.path(), site);
    let mqtt = free_port();
    let mut agg = start(&config, mqtt);
    agg.wait_mqtt_connected().await;
    let b = base();

    // line-1 makes 60 pieces a minute for six minutes; line-2 30 a minute,
    // but its data stops after three.
    let run = |per_minute: i64, minutes: i64| -> Vec<(i64, Value)> {
        (0..=minutes).map(|m| (m * 60, json!({"output": m * per_minute, "state": "running"}))).collect()
    };
    publish(&agg, mqtt, site, "line-1", 1, b, &run(60, 6)).await;
    publish(&agg, mqtt, site, "line-2", 2, b, &run(30, 3)).await;

    // Two closed buckets (the second with a 25 % campaign) and one that
    // has not ended at the event time (b + 6 min).
    import_buckets(&agg, b, (250, ""), (200, "25")).await;
    let url = range_url(&agg, "/api/v1/reports/forecast-accuracy", b);
    let (status, report) = get(&format!("{url}&group=family-a")).await;
    assert_eq!(status, 200, "{report}");
    let now: chrono::DateTime<chrono::Utc> = report["now"].as_str().unwrap().parse().unwrap();
    assert_eq!(now, b + Duration::minutes(6), "{report}");
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{report}");
    let g = &groups[0];
    assert_eq!((g["group"].as_str(), g["unit"].as_str()), (Some("family-a"), Some("pieces")), "{report}");
    let buckets = g["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "only closed buckets: {report}");
    let pick = |x: &Value| {
        json!({
            "forecast": x["forecast"], "effective_demand": x["effective_demand"], "actual": x["actual"],
            "difference": x["difference"], "deviation_pct": x["deviation_pct"],
            "over_threshold": x["over_threshold"], "complete": x["complete"], "missing": x["missing"],
        })
    };
    // 180 + 90 pieces against 250: +8 %, inside the default 10 %.
    assert_eq!(
        pick(&buckets[0]),
        json!({"forecast": 250.0, "effective_demand": 250.0, "actual": 270.0, "difference": 20.0,
               "deviation_pct": 8.0, "over_threshold": false, "complete": true, "missing": []}),
        "{report}"
    );
    // 180 (line-1 only) against 200 × 1.25: -28 %, and line-2 is missing.
    let line2 = format!("{site}/line-2");
    assert_eq!(
        pick(&buckets[1]),
        json!({"forecast": 200.0, "effective_demand": 250.0, "actual": 180.0, "difference": -70.0,
               "deviation_pct": -28.0, "over_threshold": true, "complete": false, "missing": [line2]}),
        "{report}"
    );
    assert_eq!(
        g["totals"],
        json!({"buckets": 2, "complete_buckets": 1, "mape_pct": 8.0, "bias_pct": 8.0}),
        "{report}"
    );
    // Without `group`: every configured group (this plant has one).
    let (_, all) = get(&url).await;
    assert_eq!(all["groups"], report["groups"], "{all}");

    // CSV, by `format` and by the Accept header: a header and the same numbers.
    let expected = [
        "group,kind,unit,start,end,forecast,uplift_pct,effective_demand,actual,difference,deviation_pct,over_threshold,complete,missing".to_string(),
        format!("family-a,line,pieces,{},{},250,0,250,270,20,8,false,true,", rfc(b), rfc(b + Duration::minutes(3))),
        format!(
            "family-a,line,pieces,{},{},200,25,250,180,-70,-28,true,false,{site}/line-2",
            rfc(b + Duration::minutes(3)),
            rfc(b + Duration::minutes(6))
        ),
    ];
    for (query, accept) in [("&format=csv", None), ("", Some("text/csv"))] {
        let (status, ctype, text) = get_with_accept(&format!("{url}&group=family-a{query}"), accept).await;
        assert_eq!((status, ctype.as_str()), (200, "text/csv; charset=utf-8"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, expected, "{text}");
    }

    // Unknown group, reversed range, unknown format.
    refuses_unknown_group_and_reversed_range(
        &agg,
        "/api/v1/reports/forecast-accuracy?group=family-z",
        "/api/v1/reports/forecast-accuracy",
        b,
    )
    .await;
    let (status, body) = get(&format!("{url}&format=xlsx")).await;
    assert_eq!(status, 400, "{body}");
    agg.proc.stop();
}
