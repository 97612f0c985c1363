//! The shipped Grafana dashboard (deploy/grafana/throughline.json) is
//! well-formed and queries only what the InfluxDB sink writes: its
//! measurements, tags and fields as the sink's constants define them, which
//! docs/timeseries.md documents. Renaming a field breaks this test until the
//! dashboard and the documentation follow.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use throughline_aggregator::sink::influx::{
    FIELDS, MEASUREMENT, STATE_FIELDS, STATE_MEASUREMENT, STATE_TAGS, TAGS,
};

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The quoted strings after each `needle` (`r._field == "x"` gives `x`).
fn quoted_after(text: &str, needle: &str) -> Vec<String> {
    text.match_indices(needle)
        .filter_map(|(i, _)| {
            let rest = text[i + needle.len()..].trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// Columns a Flux predicate reads as `r.name` (record members).
fn record_members(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    text.match_indices("r.")
        .filter(|(i, _)| *i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        .map(|(i, _)| {
            text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn the_dashboard_queries_only_the_documented_schema() {
    let dash: Value = serde_json::from_str(&repo_file("deploy/grafana/throughline.json"))
        .expect("deploy/grafana/throughline.json is not valid JSON");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["uid"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 3, "throughput, downtime and load at least");

    let measurements = [MEASUREMENT, STATE_MEASUREMENT];
    let fields: BTreeSet<&str> = FIELDS.iter().chain(STATE_FIELDS.iter()).copied().collect();
    let columns: BTreeSet<String> = TAGS
        .iter()
        .chain(STATE_TAGS.iter())
        .map(|t| t.to_string())
        .chain(["_measurement", "_field", "_value", "_time"].map(String::from))
        .collect();
    let check_query = |what: &str, q: &str, needs_field: bool| {
        let ms = quoted_after(q, "r._measurement ==");
        assert!(!ms.is_empty(), "{what}: names no measurement:\n{q}");
        for m in &ms {
            assert!(measurements.contains(&m.as_str()), "{what}: unknown measurement `{m}`");
        }
        let fs = quoted_after(q, "r._field ==");
        assert!(!needs_field || !fs.is_empty(), "{what}: names no field:\n{q}");
        for f in &fs {
            assert!(fields.contains(f.as_str()), "{what}: field `{f}` is not in the sink's schema");
        }
        for c in record_members(q) {
            assert!(columns.contains(&c), "{what}: column `{c}` is not a tag of the sink's schema");
        }
        ms
    };

    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{title}: duplicate id");
        assert!(p["type"].as_str().is_some(), "{title}: no type");
        assert_eq!(p["datasource"]["type"], "influxdb", "{title}");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        let targets = p["targets"].as_array().filter(|t| !t.is_empty()).expect("targets");
        for t in targets {
            assert!(t["refId"].as_str().is_some(), "{title}: refId");
            let q = t["query"].as_str().expect("a Flux query");
            assert!(
                q.contains("from(bucket: \"${bucket}\")") && q.contains("v.timeRangeStart"),
                "{title}:\n{q}"
            );
            used.extend(check_query(title, q, true));
        }
    }
    assert!(used.contains(MEASUREMENT), "no panel reads {MEASUREMENT}");

    let vars = dash["templating"]["list"].as_array().expect("templating");
    let names: Vec<_> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    for want in ["datasource", "bucket", "site", "asset"] {
        assert!(names.contains(&want), "variable {want} missing: {names:?}");
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        check_query(v["name"].as_str().unwrap(), v["query"].as_str().expect("variable query"), false);
    }
}

#[test]
fn the_schema_document_names_every_measurement_tag_and_field() {
    let doc = repo_file("docs/timeseries.md");
    let section = doc
        .split("## InfluxDB line protocol")
        .nth(1)
        .expect("docs/timeseries.md has a `## InfluxDB line protocol` section");
    let section = section.split("\n## ").next().unwrap();
    for name in [MEASUREMENT, STATE_MEASUREMENT]
        .iter()
        .chain(TAGS.iter())
        .chain(STATE_TAGS.iter())
        .chain(FIELDS.iter())
        .chain(STATE_FIELDS.iter())
    {
        assert!(section.contains(&format!("`{name}`")), "docs/timeseries.md does not document `{name}`");
    }
}
