//! Agent restarts keep `seq` increasing; a killed agent's last will marks
//! it offline.

use serde_json::Value;
use throughline_tests::*;

async fn agent_view(http: &str, agent: &str) -> Option<Value> {
    let v = get_json(&format!("{http}/api/v1/agents")).await;
    v["agents"].as_array()?.iter().find(|a| a["agent"] == agent).cloned()
}

/// Wait until the agent's highest seq is above `above` and it is online.
async fn wait_seq_above(http: &str, agent: &str, above: u64) -> Value {
    wait_for(&format!("{agent} online with seq above {above}"), || async {
        match agent_view(http, agent).await {
            Some(a) if a["online"] == true && a["last_seq"].as_u64().unwrap_or(0) > above + 2 => Ok(a),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn wait_offline(http: &str, agent: &str) {
    wait_for(&format!("{agent} offline"), || async {
        match agent_view(http, agent).await {
            Some(a) if a["online"] == false => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

#[tokio::test]
async fn restarts_keep_seq_increasing_and_last_will_marks_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agg, mqtt) = start_embedded_aggregator(dir.path());
    let http = agg.http.clone();
    let agent = "gw-life";
    let cfg = write_agent_config(
        dir.path(),
        agent,
        "plant-life",
        &format!("mqtt://127.0.0.1:{mqtt}"),
        &[SimLine { id: "line-1", rate_per_hour: 3600.0, stop: None }],
    );

    // First run, clean stop.
    let mut a = start_agent(&cfg);
    let first = wait_seq_above(&http, agent, 0).await;
    a.stop();
    wait_offline(&http, agent).await;
    let after_first = agent_view(&http, agent).await.unwrap();
    let seq1 = after_first["last_seq"].as_u64().unwrap();
    assert!(seq1 >= first["last_seq"].as_u64().unwrap());

    // Second run continues exactly where the first stopped: no gap, no repeat.
    let mut a = start_agent(&cfg);
    let v = wait_seq_above(&http, agent, seq1).await;
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["seq_missing"], 0, "a clean restart skips no numbers: {v}");

    // Killed: the broker publishes the last will; the agent goes offline.
    a.signal("KILL");
    a.wait_exit();
    wait_offline(&http, agent).await;
    let metrics = get_text(&format!("{http}/metrics")).await;
    assert_eq!(
        metric(&metrics, "throughline_agent_online{site=\"plant-life\",agent=\"gw-life\"}"),
        Some(0.0),
        "{metrics}"
    );
    let seq2 = agent_view(&http, agent).await.unwrap()["last_seq"].as_u64().unwrap();

    // After a crash the agent resumes above everything it used. Envelopes
    // delivered in the last second before the kill may come again from the
    // spool (their PUBACK was not yet recorded); the aggregator counts them
    // as duplicates and drops them. The numbers of the reserved block it
    // skips (at most 63) it announces in its status: not missing, not lost.
    let mut a = start_agent(&cfg);
    let v = wait_seq_above(&http, agent, seq2).await;
    assert!(v["duplicates"].as_u64().unwrap() <= 64, "only spool replays are repeated: {v}");
    assert_eq!((v["seq_missing"].as_u64(), v["seq_lost"].as_u64()), (Some(0), Some(0)), "{v}");
    assert!(v["seq_skipped_announced"].as_u64().unwrap() < 64, "at most one reserved block: {v}");
    a.stop();
    agg.proc.stop();
}
