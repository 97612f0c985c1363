//! `modbus-tcp` source: one task per device polls the registers of all the
//! assets read from it (`tokio-modbus`).
//!
//! - [`config`]: `[[devices]]` and the assets' register maps, validated.
//! - [`decode`]: which registers to read, and from register words to samples
//!   (word order, scaling, counter wrap-around, state and reason maps).
//! - this file: the device task (connect, poll, reconnect).
//!
//! Every `poll_ms` the task reads each asset's registers (registers that
//! touch share one request), each request bounded by `timeout_ms`, and sends
//! one sample per asset. A failed connection, a timeout or a broken answer
//! drops the connection; the task reconnects by itself after a backoff of
//! 0.5 s doubling to 30 s. An exception answer of the device (e.g. a wrong
//! address) fails only that asset's reading and keeps the connection. Each
//! outcome goes to [`Health`] as `modbus:<device id>`: failing with the
//! error, or ok after a poll without problems.

pub mod config;
pub mod decode;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use throughline_shared::Sample;
use tokio::net::TcpStream;
use tokio_modbus::client::{tcp, Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{Request, Response, Slave};

pub use config::{ModbusAsset, ModbusDevice};

use crate::source::{Health, Sink};
use config::Table;
use decode::{AssetReader, Block, Registers};

/// First wait before reconnecting; doubles after each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait before reconnecting.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Poll `device` for `assets` (index in the config, register map) until the agent stops.
pub async fn run_device(
    device: ModbusDevice,
    assets: Vec<(usize, ModbusAsset)>,
    sink: Sink,
    health: Arc<Health>,
) {
    let name = format!("modbus:{}", device.id);
    let stop = sink.stopping().clone();
    let mut readers: Vec<AssetReader> = assets.iter().map(|(i, a)| AssetReader::new(*i, a)).collect();
    let timeout = Duration::from_millis(device.timeout_ms);
    let mut ticks = tokio::time::interval(Duration::from_millis(device.poll_ms));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = BACKOFF_MIN;
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = connect(&device, timeout) => c,
        };
        match connected {
            Err(e) => health.report(&name, Err(e)),
            Ok(mut ctx) => {
                tracing::debug!(device = %device.id, host = %device.host, port = device.port, "connected");
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = ticks.tick() => {}
                    }
                    let polled = tokio::select! {
                        _ = stop.cancelled() => return,
                        p = poll(&mut ctx, device.unit_id, &mut readers, timeout) => p,
                    };
                    let Polled { samples, problems } = match polled {
                        Ok(p) => p,
                        Err(e) => {
                            health.report(&name, Err(e));
                            break;
                        }
                    };
                    backoff = BACKOFF_MIN;
                    health.report(&name, if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) });
                    for (asset, sample) in samples {
                        if !sink.send(asset, sample).await {
                            return;
                        }
                    }
                }
            }
        }
        // Dropping the context closed the connection; wait, then reconnect.
        let wait = backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tracing::debug!(device = %device.id, wait_ms = wait.as_millis() as u64, "reconnecting after a pause");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Open a connection to `device`, name lookup included, within `timeout`.
async fn connect(device: &ModbusDevice, timeout: Duration) -> Result<Context, String> {
    let target = format!("{}:{}", device.host, device.port);
    let stream = tokio::time::timeout(timeout, TcpStream::connect((device.host.as_str(), device.port)))
        .await
        .map_err(|_| format!("connect to {target}: no connection within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("connect to {target}: {e}"))?;
    // Requests are small and each waits for its answer.
    let _ = stream.set_nodelay(true);
    Ok(tcp::attach_slave(stream, Slave(device.unit_id)))
}

/// What one poll of all the device's assets gave.
#[derive(Debug, Default)]
struct Polled {
    /// `(asset index, sample)`.
    samples: Vec<(usize, Sample)>,
    /// Problems of single assets (exception answers, unmapped values).
    problems: Vec<String>,
}

/// Read every asset once. `Err` is a failure of the connection (the caller
/// drops it); the problems of single assets are in [`Polled::problems`].
async fn poll(
    ctx: &mut Context,
    unit_id: u8,
    readers: &mut [AssetReader],
    timeout: Duration,
) -> Result<Polled, String> {
    let mut out = Polled::default();
    'assets: for reader in readers.iter_mut() {
        let unit = reader.unit_id.unwrap_or(unit_id);
        ctx.set_slave(Slave(unit));
        let mut regs = Registers::default();
        for block in &reader.blocks {
            match read(ctx, *block, unit, timeout).await? {
                Ok(words) => regs.insert(*block, words),
                Err(refused) => {
                    out.problems.push(format!("assets[{}].source: {refused}", reader.index));
                    continue 'assets;
                }
            }
        }
        let (sample, problems) = reader.sample(&regs, Utc::now());
        out.problems.extend(problems);
        out.samples.extend(sample.map(|s| (reader.index, s)));
    }
    Ok(out)
}

/// Read one block. The outer `Err` is a failure of the connection (timeout,
/// I/O, a malformed answer); the inner one an exception answer of the device.
async fn read(
    ctx: &mut Context,
    block: Block,
    unit: u8,
    timeout: Duration,
) -> Result<Result<Vec<u16>, String>, String> {
    let request = match block.table {
        Table::Holding => Request::ReadHoldingRegisters(block.address, block.count),
        Table::Input => Request::ReadInputRegisters(block.address, block.count),
    };
    let what = format!("{} registers {}..={} of unit {unit}", block.table, block.address, block.last());
    let answer = tokio::time::timeout(timeout, ctx.call(request))
        .await
        .map_err(|_| format!("reading {what}: no answer within {} ms", timeout.as_millis()))?;
    match answer {
        Ok(Ok(Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words)))
            if words.len() == block.count as usize =>
        {
            Ok(Ok(words))
        }
        Ok(Ok(other)) => Err(format!("reading {what}: unexpected answer {other:?}")),
        Ok(Err(exception)) => Ok(Err(format!("reading {what}: the device answered `{exception}`"))),
        Err(tokio_modbus::Error::Transport(e)) if e.raw_os_error() == Some(0) => {
            Err(format!("reading {what}: the device closed the connection"))
        }
        Err(tokio_modbus::Error::Transport(e)) => Err(format!("reading {what}: connection lost: {e}")),
        Err(e) => Err(format!("reading {what}: {e}")),
    }
}
