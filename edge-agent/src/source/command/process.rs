//! Running the program: spawn, read its output, time it out, restart it,
//! kill its process group.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::BufReader;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::config::{CommandConfig, CommandMode, MAX_RESTART_DELAY_MS};
use super::parser::{excerpt, parse_line, truncate_chars};
use super::reader::{Line, LineReader, MAX_LINE_BYTES};
use crate::source::{Health, Sink};

/// Standard error lines are kept up to this many bytes.
const STDERR_LINE_BYTES: usize = 4096;
/// Longest quote of standard error in a health error, in characters.
const STDERR_QUOTE_CHARS: usize = 200;

/// After the program exits, how long its output may stay open (held by
/// something it started) before that is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for a killed program to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// Run the command source of asset number `asset` (id `asset_id`) until the agent stops.
pub async fn run(asset: usize, asset_id: String, config: CommandConfig, sink: Sink, health: Arc<Health>) {
    tracing::info!(
        asset = %asset_id, program = %config.program, mode = config.mode.as_str(), "command source starting"
    );
    let mut runner = Runner {
        asset,
        health_name: format!("command:{asset_id}"),
        asset_id,
        config,
        sink,
        health,
        bad_lines: 0,
    };
    match runner.config.mode {
        CommandMode::Periodic => runner.periodic().await,
        CommandMode::LongRunning => runner.long_running().await,
    }
    tracing::debug!(asset = %runner.asset_id, bad_lines = runner.bad_lines, "command source stopped");
}

/// What one run of the program came to (unless the agent stopped it).
#[derive(Debug, Default)]
struct RunReport {
    /// Why the run failed: not started, timed out, non-zero exit.
    failure: Option<String>,
    /// Valid lines.
    samples: u64,
    /// Refused lines.
    bad: u64,
}

#[derive(Debug)]
struct Runner {
    asset: usize,
    asset_id: String,
    health_name: String,
    config: CommandConfig,
    sink: Sink,
    health: Arc<Health>,
    /// Refused lines since the source started.
    bad_lines: u64,
}

impl Runner {
    async fn periodic(&mut self) {
        let mut ticks = tokio::time::interval(self.config.interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopping = self.sink.stopping().clone();
        loop {
            tokio::select! {
                _ = stopping.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Some(report) = self.run_once(Some(self.config.timeout())).await else { return };
            let failure = report.failure.or_else(|| {
                (report.samples == 0 && report.bad == 0)
                    .then(|| "exited without printing a sample".to_string())
            });
            if let Some(e) = failure {
                self.health.report(&self.health_name, Err(e));
            }
        }
    }

    async fn long_running(&mut self) {
        let base = self.config.restart_delay();
        let max = Duration::from_millis(MAX_RESTART_DELAY_MS);
        let mut delay = base;
        let stopping = self.sink.stopping().clone();
        loop {
            let started = Instant::now();
            let Some(report) = self.run_once(None).await else { return };
            let ran = started.elapsed();
            if ran > max {
                delay = base;
            }
            let why = report.failure.unwrap_or_else(|| "exited with status 0".to_string());
            tracing::warn!(
                asset = %self.asset_id, ran_ms = ran.as_millis() as u64, restart_in_ms = delay.as_millis() as u64,
                reason = %why, "long-running command ended; restarting"
            );
            self.health.report(&self.health_name, Err(why));
            tokio::select! {
                _ = stopping.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(max.max(base));
        }
    }

    fn command(&self) -> Command {
        let c = &self.config;
        let mut cmd = Command::new(&c.program);
        cmd.args(&c.args)
            .envs(&c.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        if let Some(dir) = &c.working_dir {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Start the program once and handle its output until it exits (and its
    /// output is closed), times out, or the agent stops (`None`).
    async fn run_once(&mut self, timeout: Option<Duration>) -> Option<RunReport> {
        let mut report = RunReport::default();
        let mut child = match self.command().spawn() {
            Ok(child) => child,
            Err(e) => {
                report.failure = Some(format!("cannot start `{}`: {e}", self.config.program));
                return Some(report);
            }
        };
        let pid = child.id();
        tracing::debug!(asset = %self.asset_id, pid, "command started");
        let mut out =
            LineReader::new(BufReader::new(child.stdout.take().expect("stdout is piped")), MAX_LINE_BYTES);
        let mut err =
            LineReader::new(BufReader::new(child.stderr.take().expect("stderr is piped")), STDERR_LINE_BYTES);
        let (mut out_open, mut err_open) = (true, true);
        let mut status: Option<std::io::Result<ExitStatus>> = None;
        let mut last_stderr: Option<String> = None;
        let mut line_no = 0u64;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let deadline = tokio::time::sleep_until(timeout.map_or(far, |t| Instant::now() + t));
        let grace = tokio::time::sleep_until(far);
        tokio::pin!(deadline, grace);
        let stopping = self.sink.stopping().clone();

        while status.is_none() || out_open || err_open {
            tokio::select! {
                _ = stopping.cancelled() => {
                    terminate(&mut child, pid).await;
                    return None;
                }
                _ = &mut deadline, if timeout.is_some() => {
                    terminate(&mut child, pid).await;
                    let ms = timeout.unwrap_or_default().as_millis();
                    report.failure = Some(quote_stderr(format!("timed out after {ms} ms; killed"), &last_stderr));
                    return Some(report);
                }
                _ = &mut grace, if status.is_some() => {
                    // It exited, but something it started still holds its output open.
                    tracing::debug!(asset = %self.asset_id, pid, "output still open after exit; killing the process group");
                    kill_group(pid).await;
                    break;
                }
                line = out.next_line(), if out_open => match line {
                    Ok(Some(line)) => {
                        line_no += 1;
                        if !self.handle_line(line_no, line, &mut report).await {
                            terminate(&mut child, pid).await;
                            return None;
                        }
                    }
                    Ok(None) => out_open = false,
                    Err(e) => {
                        tracing::debug!(asset = %self.asset_id, error = %e, "reading the command's output failed");
                        out_open = false;
                    }
                },
                line = err.next_line(), if err_open => match line {
                    Ok(Some(line)) => {
                        let text = String::from_utf8_lossy(&line.bytes);
                        let text = text.trim();
                        if !text.is_empty() {
                            tracing::debug!(asset = %self.asset_id, stderr = %text, "command stderr");
                            last_stderr = Some(truncate_chars(text, STDERR_QUOTE_CHARS));
                        }
                    }
                    Ok(None) | Err(_) => err_open = false,
                },
                exit = child.wait(), if status.is_none() => {
                    status = Some(exit);
                    grace.as_mut().reset(Instant::now() + EXIT_GRACE);
                }
            }
        }

        match status {
            Some(Ok(s)) if s.success() => {}
            Some(Ok(s)) => report.failure = Some(quote_stderr(describe_exit(s), &last_stderr)),
            Some(Err(e)) => report.failure = Some(format!("waiting for the program failed: {e}")),
            None => {}
        }
        Some(report)
    }

    /// Check one output line and send it on; `false` once the agent stops.
    async fn handle_line(&mut self, n: u64, line: Line, report: &mut RunReport) -> bool {
        let parsed = if line.too_long {
            Err(format!("longer than {MAX_LINE_BYTES} bytes"))
        } else {
            let text = line.bytes.strip_suffix(b"\r").unwrap_or(&line.bytes);
            if text.iter().all(u8::is_ascii_whitespace) {
                return true;
            }
            parse_line(text, Utc::now())
        };
        match parsed {
            Ok(sample) => {
                report.samples += 1;
                self.health.report(&self.health_name, Ok(()));
                self.sink.send(self.asset, sample).await
            }
            Err(reason) => {
                report.bad += 1;
                self.bad_lines += 1;
                tracing::warn!(
                    asset = %self.asset_id, line = n, excerpt = ?excerpt(&line.bytes), %reason,
                    bad_lines = self.bad_lines, "command printed a bad line; skipped"
                );
                self.health.report(&self.health_name, Err(format!("line {n}: {reason}")));
                true
            }
        }
    }
}

/// Kill the program and whatever else runs in its process group, and reap it.
async fn terminate(child: &mut Child, pid: Option<u32>) {
    if let Err(e) = child.start_kill() {
        tracing::debug!(pid, error = %e, "killing the command failed (it may have exited)");
    }
    kill_group(pid).await;
    if tokio::time::timeout(REAP_WAIT, child.wait()).await.is_err() {
        tracing::warn!(pid, "killed command not reaped in time");
    }
}

/// Kill every process in the process group led by `pid` (best effort).
async fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    if !cfg!(unix) {
        return;
    }
    // No signal API without unsafe code in this crate: the shell's `kill`
    // builtin signals the group (negative pid).
    let killer = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -s KILL -- -{pid} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(REAP_WAIT, killer).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::debug!(pid, error = %e, "cannot run /bin/sh to kill the process group"),
        Err(_) => tracing::debug!(pid, "killing the process group timed out"),
    }
}

fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    format!("ended: {status}")
}

fn quote_stderr(message: String, last_stderr: &Option<String>) -> String {
    match last_stderr {
        Some(line) => format!("{message} (stderr: {line})"),
        None => message,
    }
}
