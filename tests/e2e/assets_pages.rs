//! `GET /api/v1/assets` at plant scale on the real binary: 2,400 registered
//! assets come in bounded pages that, followed by `next_cursor`, give every
//! asset once and in order; `site`, `group` and `state` keep to what they
//! name; a bad parameter is a JSON 400 that names it.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use throughline_tests::*;

const PER_SITE: usize = 1200;

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut toml = String::from(
        "[[groups]]\nid = \"g-even\"\nkind = \"line\"\n\n[[groups]]\nid = \"g-odd\"\nkind = \"line\"\n",
    );
    for site in ["site-a", "site-b"] {
        for i in 0..PER_SITE {
            let group = if i % 2 == 0 { "g-even" } else { "g-odd" };
            toml.push_str(&format!(
                "\n[[assets]]\nsite = \"{site}\"\nid = \"a-{i:04}\"\nkind = \"line\"\ngroup = \"{group}\"\nrated_capacity = 3600\n"
            ));
        }
    }
    let path = dir.join("aggregator.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// GET with its status.
async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}")))
}

/// Follow `next_cursor` from the first page of `query`; returns every
/// asset as `site/asset` and the size of each page.
async fn walk(http: &str, query: &str) -> (Vec<String>, Vec<usize>) {
    let (mut all, mut sizes) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{http}/api/v1/assets?{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (code, page) = get(&url).await;
        assert_eq!(code, 200, "{url}: {page}");
        let assets = page["assets"].as_array().unwrap();
        sizes.push(assets.len());
        all.extend(
            assets
                .iter()
                .map(|a| format!("{}/{}", a["site"].as_str().unwrap(), a["asset"].as_str().unwrap())),
        );
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => return (all, sizes),
        }
    }
    panic!("more than 100 pages for {query}");
}

#[tokio::test]
async fn assets_come_in_bounded_pages_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (agg, mqtt) = start_plant_on_free_port(dir.path(), &config);
    agg.wait_mqtt_connected().await;
    let http = agg.http.clone();

    // Two assets report down.
    let client = raw_client(mqtt, &unique("pages"));
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (site, asset, seq) in [("site-a", "a-0007", 1), ("site-b", "a-0003", 2)] {
        let samples = json!([{"ts": ts, "state": "down", "reason": "jam", "output": 1.0}]);
        publish_telemetry(&client, site, "gw-p", asset, seq, samples).await;
    }
    let url = format!("{http}/api/v1/assets?state=down");
    let down = wait_for("both assets down", || async {
        let (_, v) = get(&url).await;
        let names: Vec<String> = v["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}/{}", a["site"].as_str().unwrap(), a["asset"].as_str().unwrap()))
            .collect();
        if names.len() == 2 {
            Ok(names)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(down, ["site-a/a-0007", "site-b/a-0003"]);

    // The default page is bounded; the pages give every asset once, in order.
    let (all, sizes) = walk(&http, "").await;
    assert_eq!(sizes, [1000, 1000, 400]);
    let expected: Vec<String> = ["site-a", "site-b"]
        .iter()
        .flat_map(|s| (0..PER_SITE).map(move |i| format!("{s}/a-{i:04}")))
        .collect();
    assert_eq!(all, expected);
    let (small, sizes) = walk(&http, "limit=700").await;
    assert_eq!(sizes, [700, 700, 700, 300]);
    assert_eq!(small, expected);

    // The default page is bounded in bytes too (2,400 assets were one body).
    let first = reqwest::get(format!("{http}/api/v1/assets")).await.unwrap().bytes().await.unwrap();
    eprintln!("default page of 1000 assets: {} bytes", first.len());
    assert!(first.len() < 600_000, "{} bytes", first.len());

    // Filters, alone and together, across pages.
    let (b, _) = walk(&http, "site=site-b").await;
    assert_eq!(b.len(), PER_SITE);
    assert!(b.iter().all(|n| n.starts_with("site-b/")));
    let (odd_a, sizes) = walk(&http, "site=site-a&group=g-odd&limit=250").await;
    assert_eq!(sizes, [250, 250, 100]);
    let odd: Vec<String> = (1..PER_SITE).step_by(2).map(|i| format!("site-a/a-{i:04}")).collect();
    assert_eq!(odd_a, odd);
    let (unknown, _) = walk(&http, "state=unknown").await;
    let unknown: BTreeSet<String> = unknown.into_iter().collect();
    assert_eq!(unknown.len(), 2 * PER_SITE - 2);
    assert!(!unknown.contains("site-a/a-0007") && !unknown.contains("site-b/a-0003"));
    let (none, sizes) = walk(&http, "site=site-c").await;
    assert!(none.is_empty() && sizes == [0], "{sizes:?}");

    // Bad parameters: a JSON 400 in the API's one error shape, naming them.
    for (query, names) in [
        ("limit=0", "`limit`"),
        ("limit=1001", "`limit`"),
        ("limit=ten", "`limit`"),
        ("state=runing", "`state`"),
        ("site=a%20b", "`site`"),
        ("cursor=zz", "`cursor`"),
        ("sate=down", "sate"),
    ] {
        let (code, v) = get(&format!("{http}/api/v1/assets?{query}")).await;
        assert_eq!(code, 400, "{query}: {v}");
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{query}: {v}"));
        assert!(msg.contains(names), "{query}: {msg}");
    }
}
