//! `count`: the ceiling. A subscriber that does nothing with a message but
//! count it (the client library acknowledges it), serving the count as
//! `bench_messages_total N` over a bare-bones HTTP server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rumqttc::{Event, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::mqtt;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The broker.
    #[arg(long)]
    pub broker: SocketAddr,
    /// Topic filter to count.
    #[arg(long, default_value = "throughline/v1/+/+/+/telemetry")]
    pub filter: String,
    /// Where to serve the count (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http: SocketAddr,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let count = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind(a.http).await?;
    let addr = listener.local_addr()?;
    let served = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = served.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let body = format!("bench_messages_total {n}\n");
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all((head + &body).as_bytes()).await;
            });
        }
    });

    let id = format!("bench-count-{}", std::process::id());
    let (client, mut eventloop) = mqtt::client(&id, a.broker, 100, 16);
    client.subscribe(&a.filter, QoS::AtLeastOnce).await?;
    mqtt::connected(&mut eventloop, 1).await?;
    println!("listening http=http://{addr}");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            e = eventloop.poll() => {
                if let Event::Incoming(Packet::Publish(_)) = e? {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(())
}
