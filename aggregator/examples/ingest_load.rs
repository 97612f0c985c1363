//! Ingest load for benchmarks (bench/ingest-sink.sh): publishes telemetry
//! envelopes to an aggregator's broker as fast as QoS 1 allows and reports
//! how long the aggregator took to ingest every sample, read from its
//! `/metrics`; optionally also how long until its InfluxDB sink had written
//! every point.
//!
//! ```sh
//! cargo run --release -p throughline-aggregator --example ingest_load -- \
//!     --mqtt 127.0.0.1:1883 --http http://127.0.0.1:8080 [--messages 20000 --samples 50 --assets 10] [--sink]
//! ```
//! Prints one line: `samples=N ingest_secs=S samples_per_sec=R`, with
//! `--sink` followed by `sink_secs=T sink_written=W sink_dropped=D`.
//!
//! `ingest_load --null-server 127.0.0.1:PORT` instead serves a write endpoint
//! that reads each body and answers 204 (a database that costs nothing), to
//! tell the aggregator's own cost of the sink from the database's.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, QoS};

#[derive(Debug, Parser)]
struct Args {
    /// The aggregator's broker.
    #[arg(long, required_unless_present = "null_server")]
    mqtt: Option<std::net::SocketAddr>,
    /// The aggregator's HTTP base URL.
    #[arg(long, required_unless_present = "null_server")]
    http: Option<String>,
    /// Serve a null InfluxDB write endpoint on this address until killed.
    #[arg(long)]
    null_server: Option<std::net::SocketAddr>,
    /// Envelopes to publish.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Samples per envelope.
    #[arg(long, default_value_t = 50)]
    samples: u64,
    /// Assets the envelopes are spread over (round robin), one agent.
    #[arg(long, default_value_t = 10)]
    assets: u64,
    /// Also wait until the InfluxDB sink has written every point.
    #[arg(long)]
    sink: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if let Some(addr) = a.null_server {
        return null_server(addr).await;
    }
    let (mqtt, http_base) = (a.mqtt.expect("--mqtt"), a.http.clone().expect("--http"));
    let total = a.messages * a.samples;
    // Event time: 100 ms between an asset's samples, ending a minute ago.
    let per_asset = total.div_ceil(a.assets) as i64;
    let start = chrono::Utc::now() - chrono::Duration::milliseconds(per_asset * 100 + 60_000);
    let mut next = vec![0i64; a.assets as usize];
    let payloads: Vec<(String, String)> = (0..a.messages)
        .map(|m| {
            let asset = (m % a.assets) as usize;
            let samples: Vec<String> = (0..a.samples)
                .map(|_| {
                    let i = next[asset];
                    next[asset] += 1;
                    let ts = (start + chrono::Duration::milliseconds(i * 100))
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    format!(
                        r#"{{"ts":"{ts}","output":{},"state":"running","load_kw":{}}}"#,
                        i * 2,
                        40.0 + (i % 10) as f64 * 0.5
                    )
                })
                .collect();
            (
                format!("throughline/v1/bench-site/bench-agent/asset-{asset:03}/telemetry"),
                format!(
                    r#"{{"v":1,"agent":"bench-agent","seq":{},"samples":[{}]}}"#,
                    m + 1,
                    samples.join(",")
                ),
            )
        })
        .collect();

    let http = reqwest::Client::new();
    let metrics_url = format!("{}/metrics", http_base.trim_end_matches('/'));
    let read = |name: &'static str| {
        let http = http.clone();
        let url = metrics_url.clone();
        async move {
            let text = http.get(&url).send().await?.text().await?;
            Ok::<f64, anyhow::Error>(
                text.lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0.0),
            )
        }
    };
    let before = read("throughline_samples_ingested_total").await.context("reading /metrics")?;

    let mut opts = MqttOptions::new("ingest-load", mqtt.ip().to_string(), mqtt.port());
    opts.set_max_packet_size(4 << 20, 4 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    });

    let t0 = Instant::now();
    for (topic, payload) in payloads {
        client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
    }
    let deadline = t0 + Duration::from_secs(600);
    loop {
        let n = read("throughline_samples_ingested_total").await?;
        if n - before >= total as f64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {} of {total} samples ingested after 10 minutes", n - before);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest = t0.elapsed().as_secs_f64();
    let mut line =
        format!("samples={total} ingest_secs={ingest:.4} samples_per_sec={:.0}", total as f64 / ingest);
    if a.sink {
        // One point per sample plus each asset's first state; each is
        // either written or dropped (buffer full) in the end.
        let points = (total + a.assets) as f64;
        let (written, dropped) = loop {
            let w = read("throughline_influx_points_written_total").await?;
            let d = read("throughline_influx_points_dropped_total{reason=\"buffer_full\"}").await?
                + read("throughline_influx_points_dropped_total{reason=\"rejected\"}").await?;
            if w + d >= points {
                break (w, d);
            }
            if Instant::now() > deadline {
                bail!("the sink wrote {w} and dropped {d} of {points} points in 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        line += &format!(
            " sink_secs={:.4} sink_written={written} sink_dropped={dropped}",
            t0.elapsed().as_secs_f64()
        );
    }
    println!("{line}");
    client.disconnect().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    Ok(())
}

/// Answer every write with 204 after reading its body.
async fn null_server(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    async fn write(body: axum::body::Bytes) -> axum::http::StatusCode {
        std::hint::black_box(body.len());
        axum::http::StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/api/v2/write", axum::routing::post(write))
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
