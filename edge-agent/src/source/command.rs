//! `command` source: runs a program that prints samples as JSON lines on its
//! standard output, one object per line:
//!
//! ```text
//! {"output": 120455, "state": "running", "load_kw": 42.5}
//! {"ts": "2026-11-23T08:00:06.120Z", "state": "down", "reason": "jam"}
//! ```
//!
//! The fields are those of a protocol v1 sample: `ts` (RFC 3339 with an
//! offset; absent means "now"), `output`, `state`, `reason` and `load_kw`,
//! with at least one measurement. A line is checked by the rules the
//! aggregator applies to a sample (see `docs/protocol.md`), so a bad line is
//! refused here, with its line number and the reason, instead of making the
//! aggregator refuse a whole envelope later. Bad lines are logged, counted
//! and shown in the source's health; the other lines go on.
//!
//! Two modes:
//! - `periodic`: the program is started every `interval_ms`, prints one or
//!   more lines and exits. A run that takes longer than `timeout_ms` is
//!   killed. Runs never overlap.
//! - `long-running`: the program is started once and prints lines as long
//!   as it runs. When it exits it is started again after `restart_delay_ms`;
//!   the delay doubles (up to 60 s) while it keeps failing within a minute.
//!
//! The program gets no standard input; its standard error is logged at
//! debug level and its last line is quoted in health errors. It runs in a
//! process group of its own, and the whole group is killed when the agent
//! stops, when a periodic run times out, and when the program exits but
//! leaves something behind that still holds its output open.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use throughline_shared::message::MAX_REASON_LEN;
use throughline_shared::{AssetState, Limits, Sample};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::source::{Health, Sink};

/// Longest line accepted on standard output, in bytes (without the newline).
/// A longer line is refused; only this much of it is ever held in memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest excerpt of a bad line in the log, in characters.
const EXCERPT_CHARS: usize = 120;
/// Standard error lines are kept up to this many bytes.
const STDERR_LINE_BYTES: usize = 4096;
/// Longest quote of standard error in a health error, in characters.
const STDERR_QUOTE_CHARS: usize = 200;

const DEFAULT_INTERVAL_MS: u64 = 1000;
const MIN_INTERVAL_MS: u64 = 100;
const DEFAULT_TIMEOUT_MS: u64 = 5000;
const MIN_TIMEOUT_MS: u64 = 100;
const DEFAULT_RESTART_DELAY_MS: u64 = 1000;
const MIN_RESTART_DELAY_MS: u64 = 100;
/// Longest wait before a restart, and the run time after which a
/// long-running program counts as healthy again (its delay starts over).
const MAX_RESTART_DELAY_MS: u64 = 60_000;

/// After the program exits, how long its output may stay open (held by
/// something it started) before that is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for a killed program to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// How the program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandMode {
    /// Started every `interval_ms`; prints its lines and exits.
    #[default]
    Periodic,
    /// Started once and kept running; restarted when it exits.
    LongRunning,
}

impl CommandMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandMode::Periodic => "periodic",
            CommandMode::LongRunning => "long-running",
        }
    }
}

/// Settings of a `type = "command"` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program to run (absolute path, or a name looked up in PATH).
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `periodic` (default) or `long-running`.
    #[serde(default)]
    pub mode: CommandMode,
    /// Periodic: start the program this often, in milliseconds (default
    /// 1000, at least 100).
    pub interval_ms: Option<u64>,
    /// Periodic: kill a run that takes longer than this, in milliseconds
    /// (default 5000, at least 100).
    pub timeout_ms: Option<u64>,
    /// Long-running: wait this long before starting the program again after
    /// it exited, in milliseconds (default 1000, 100..=60000). Doubles, up
    /// to 60 s, while the program keeps exiting within a minute.
    pub restart_delay_ms: Option<u64>,
    /// Environment variables set for the program, on top of the agent's own.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Directory the program runs in (default: the agent's).
    pub working_dir: Option<PathBuf>,
}

impl CommandConfig {
    /// Validation problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.program.trim().is_empty() {
            p.push(format!("{key}.program: must not be empty"));
        } else if self.program.contains('\0') {
            p.push(format!("{key}.program: must not contain a NUL character"));
        }
        for (i, arg) in self.args.iter().enumerate() {
            if arg.contains('\0') {
                p.push(format!("{key}.args[{i}]: must not contain a NUL character"));
            }
        }
        let keys = [
            ("interval_ms", self.interval_ms, CommandMode::Periodic, MIN_INTERVAL_MS, u64::MAX),
            ("timeout_ms", self.timeout_ms, CommandMode::Periodic, MIN_TIMEOUT_MS, u64::MAX),
            (
                "restart_delay_ms",
                self.restart_delay_ms,
                CommandMode::LongRunning,
                MIN_RESTART_DELAY_MS,
                MAX_RESTART_DELAY_MS,
            ),
        ];
        for (name, value, mode, min, max) in keys {
            let Some(ms) = value else { continue };
            if mode != self.mode {
                p.push(format!(
                    "{key}.{name}: only used with mode = \"{}\", this source is \"{}\"",
                    mode.as_str(),
                    self.mode.as_str()
                ));
            } else if ms < min {
                p.push(format!("{key}.{name}: must be at least {min}"));
            } else if ms > max {
                p.push(format!("{key}.{name}: must be at most {max}"));
            }
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                p.push(format!("{key}.env: variable name {name:?} must be non-empty, without `=` or NUL"));
            }
            if value.contains('\0') {
                p.push(format!("{key}.env.{name}: must not contain a NUL character"));
            }
        }
        if self.working_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            p.push(format!("{key}.working_dir: must not be empty"));
        }
        p
    }

    /// Periodic: time between starts of the program.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS))
    }

    /// Periodic: longest run before the program is killed.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// Long-running: first wait before a restart.
    pub fn restart_delay(&self) -> Duration {
        Duration::from_millis(self.restart_delay_ms.unwrap_or(DEFAULT_RESTART_DELAY_MS))
    }
}

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

// The fields a line may carry; anything else is refused, so that a typo
// (`load` for `load_kw`) does not go unnoticed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    ts: Option<String>,
    output: Option<f64>,
    state: Option<String>,
    reason: Option<String>,
    load_kw: Option<f64>,
}

/// Parse and check one output line (without its newline) into a sample; a
/// line without `ts` is stamped `now`. The error is the reason, for logs
/// and health.
pub fn parse_line(line: &[u8], now: DateTime<Utc>) -> Result<Sample, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?.trim();
    if !text.starts_with('{') {
        return Err("not a JSON object".to_string());
    }
    let raw: RawLine = serde_json::from_str(text).map_err(json_error)?;
    let ts = match &raw.ts {
        None => now,
        Some(ts) => DateTime::parse_from_rfc3339(ts)
            .map_err(|e| format!("`ts` {ts:?} is not RFC 3339 with an offset ({e})"))?
            .with_timezone(&Utc),
    };
    let max_future = Limits::default().max_future;
    if ts > now + max_future {
        return Err(format!(
            "`ts` {} is more than {} minutes ahead of this machine's clock",
            ts.to_rfc3339(),
            max_future.num_minutes()
        ));
    }
    if raw.output.is_none() && raw.state.is_none() && raw.reason.is_none() && raw.load_kw.is_none() {
        return Err("none of `output`, `state`, `reason`, `load_kw` is present".to_string());
    }
    for (name, value) in [("output", raw.output), ("load_kw", raw.load_kw)] {
        match value {
            Some(v) if !v.is_finite() => return Err(format!("`{name}` is not finite")),
            Some(v) if v < 0.0 => return Err(format!("`{name}` is {v}, below 0")),
            _ => {}
        }
    }
    let state =
        match &raw.state {
            None => None,
            Some(s) => Some(AssetState::parse(s).ok_or_else(|| {
                format!("`state` {s:?} is not one of running, idle, down, setup, maintenance")
            })?),
        };
    if raw.reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
        return Err(format!("`reason` is longer than {MAX_REASON_LEN} characters"));
    }
    Ok(Sample { ts, output: raw.output, state, reason: raw.reason, load_kw: raw.load_kw })
}

/// A JSON error without serde's "at line 1 column N" (the line is ours to number).
fn json_error(e: serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    match e.classify() {
        serde_json::error::Category::Data => format!("{message} (column {})", e.column()),
        _ => format!("not valid JSON: {message} (column {})", e.column()),
    }
}

/// The start of a line for the log, at most [`EXCERPT_CHARS`] characters.
fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    truncate_chars(text.trim_end(), EXCERPT_CHARS)
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// One line read by a [`LineReader`], without its `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// The line, or its first `max` bytes when it is too long.
    bytes: Vec<u8>,
    /// The line was longer than `max` bytes.
    too_long: bool,
}

/// Splits a byte stream into lines, holding at most `max` bytes of a line:
/// the rest of a longer line is skipped, and the line is marked too long.
/// Cancel safe: a partly read line is kept in the reader, not the future.
#[derive(Debug)]
struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    too_long: bool,
    /// Part of a line has been read.
    pending: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, max, buf: Vec::new(), too_long: false, pending: false }
    }

    /// The next line; `None` at the end of the stream. A last line without
    /// a newline counts as a line.
    async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(if self.pending { Some(self.take()) } else { None });
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let part = &available[..newline.unwrap_or(available.len())];
            let room = self.max.saturating_sub(self.buf.len());
            if part.len() > room {
                self.too_long = true;
            }
            self.buf.extend_from_slice(&part[..part.len().min(room)]);
            self.pending = true;
            let used = part.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        self.pending = false;
        Line { bytes: std::mem::take(&mut self.buf), too_long: std::mem::replace(&mut self.too_long, false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn parse(line: &str) -> Result<Sample, String> {
        parse_line(line.as_bytes(), now())
    }

    #[test]
    fn good_lines_become_samples() {
        let s =
            parse(r#"{"ts":"2026-11-23T07:59:58.5+01:00","output":120455,"state":"running","load_kw":42.5}"#)
                .unwrap();
        assert_eq!(s.ts, DateTime::parse_from_rfc3339("2026-11-23T06:59:58.5Z").unwrap());
        assert_eq!((s.output, s.state, s.load_kw), (Some(120455.0), Some(AssetState::Running), Some(42.5)));
        let s = parse(r#"  {"state": "down", "reason": "jam", "output": null}  "#).unwrap();
        assert_eq!(s.ts, now(), "no ts: stamped now");
        assert_eq!((s.state, s.reason.as_deref(), s.output), (Some(AssetState::Down), Some("jam"), None));
    }

    #[test]
    fn bad_lines_are_refused_with_the_reason() {
        let cases = [
            (r#"{"ts":"2026-11-23T08:00:00Z"}"#, "none of `output`"),
            ("{}", "none of `output`"),
            (r#"{"output":null}"#, "none of `output`"),
            (r#"{"state":"broken"}"#, "`state` \"broken\" is not one of"),
            (r#"{"ts":"2026-11-23T08:00:00","output":1}"#, "not RFC 3339"),
            (r#"{"ts":"yesterday","output":1}"#, "not RFC 3339"),
            (r#"{"ts":1700000000,"output":1}"#, "invalid type: integer"),
            (r#"{"ts":"2026-11-23T08:10:00Z","output":1}"#, "ahead of this machine's clock"),
            (r#"{"load_kw":-0.5}"#, "`load_kw` is -0.5, below 0"),
            (r#"{"output":-1}"#, "`output` is -1, below 0"),
            (r#"{"output":"12"}"#, "invalid type: string"),
            (r#"{"output":1e999}"#, "not valid JSON"),
            (r#"{"output":1,"output":2}"#, "duplicate field `output`"),
            (r#"{"load":5}"#, "unknown field `load`"),
            (r#"{"output": 1"#, "not valid JSON"),
            ("output=1", "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("42", "not a JSON object"),
        ];
        for (line, want) in cases {
            let e = parse(line).expect_err(line);
            assert!(e.contains(want), "{line}: {e}");
            assert!(!e.contains("at line 1"), "{line}: {e}");
        }
        let long_reason = format!(r#"{{"state":"down","reason":"{}"}}"#, "x".repeat(65));
        assert!(parse(&long_reason).unwrap_err().contains("longer than 64 characters"));
        assert!(parse(&format!(r#"{{"state":"down","reason":"{}"}}"#, "é".repeat(64))).is_ok());
        assert_eq!(parse_line(b"{\"output\":1,\"reason\":\"\xff\"}", now()).unwrap_err(), "not UTF-8");
    }

    #[test]
    fn excerpt_is_short() {
        assert_eq!(excerpt(b"short line\n"), "short line");
        let e = excerpt("ä".repeat(500).as_bytes());
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with('…'));
    }

    async fn lines(input: &[u8], chunk: usize, max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(BufReader::with_capacity(chunk, input), max);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            assert!(line.bytes.len() <= max, "at most `max` bytes of a line are kept");
            lines.push(line);
        }
        lines
    }

    #[tokio::test]
    async fn long_lines_are_flagged_without_being_kept() {
        let mut input = b"a\r\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1000));
        input.extend(b"\nbb\nlast");
        for chunk in [3, 8192] {
            let got = lines(&input, chunk, 16).await;
            let text: Vec<(&[u8], bool)> = got.iter().map(|l| (&l.bytes[..], l.too_long)).collect();
            assert_eq!(
                text,
                vec![
                    (&b"a\r"[..], false),
                    (&b""[..], false),
                    (&[b'x'; 16][..], true),
                    (&b"bb"[..], false),
                    (&b"last"[..], false)
                ],
                "chunk {chunk}"
            );
        }
        assert!(lines(b"", 8, 16).await.is_empty());
        assert!(!lines(&[b'y'; 16], 8, 16).await[0].too_long, "exactly max is fine");
    }

    #[test]
    fn agent_config_reports_command_problems_under_the_asset() {
        let text = "agent = \"gw\"\nsite = \"s\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
                    [[assets]]\nid = \"a\"\n[assets.source]\ntype = \"command\"\nprogram = \"/bin/true\"\n\
                    [[assets]]\nid = \"b\"\n[assets.source]\ntype = \"command\"\nprogram = \"\"\n\
                    mode = \"long-running\"\ninterval_ms = 10\n";
        let path = std::path::Path::new("a.toml");
        let e = crate::config::AgentConfig::from_toml(text, path).unwrap_err().to_string();
        assert!(e.contains("assets[1].source.program: must not be empty"), "{e}");
        assert!(e.contains("assets[1].source.interval_ms: only used with mode = \"periodic\""), "{e}");
        assert!(!e.contains("assets[0]"), "{e}");
        let typo = text.replace("program = \"/bin/true\"", "program = \"/bin/true\"\nintervall_ms = 5");
        let e = crate::config::AgentConfig::from_toml(&typo, path).unwrap_err().to_string();
        assert!(e.contains("intervall_ms"), "{e}");
    }

    fn config(extra: &str) -> CommandConfig {
        toml::from_str(&format!("program = \"/usr/bin/reader\"\n{extra}")).unwrap()
    }

    #[test]
    fn config_defaults() {
        let c = config("");
        assert_eq!(c.mode, CommandMode::Periodic);
        assert_eq!(c.interval(), Duration::from_millis(1000));
        assert_eq!(c.timeout(), Duration::from_millis(5000));
        assert_eq!(c.restart_delay(), Duration::from_millis(1000));
        assert!(c.problems("s").is_empty());
        let c = config("mode = \"long-running\"\nrestart_delay_ms = 60000\nargs = [\"-v\"]\nworking_dir = \"/tmp\"\n[env]\nA = \"1\"");
        assert!(c.problems("s").is_empty(), "{:?}", c.problems("s"));
        assert_eq!(c.mode, CommandMode::LongRunning);
        assert!(toml::from_str::<CommandConfig>("program = \"x\"\nmode = \"daily\"").is_err());
        assert!(toml::from_str::<CommandConfig>("program = \"x\"\ninterval = 5").is_err());
    }

    #[test]
    fn config_problems_name_their_keys() {
        let c: CommandConfig = toml::from_str(
            "program = \" \"\nargs = [\"ok\", \"a\\u0000b\"]\ninterval_ms = 50\ntimeout_ms = 99\n\
             restart_delay_ms = 500\nworking_dir = \"\"\n[env]\n\"A=B\" = \"1\"\nC = \"x\\u0000\"",
        )
        .unwrap();
        let p = c.problems("assets[2].source");
        for want in [
            "assets[2].source.program: must not be empty",
            "assets[2].source.args[1]: must not contain a NUL",
            "assets[2].source.interval_ms: must be at least 100",
            "assets[2].source.timeout_ms: must be at least 100",
            "assets[2].source.restart_delay_ms: only used with mode = \"long-running\"",
            "assets[2].source.env: variable name \"A=B\"",
            "assets[2].source.env.C: must not contain a NUL",
            "assets[2].source.working_dir: must not be empty",
        ] {
            assert!(p.iter().any(|x| x.starts_with(want)), "{want} in {p:#?}");
        }
        assert_eq!(p.len(), 8, "{p:#?}");

        let c = config(
            "mode = \"long-running\"\ninterval_ms = 1000\ntimeout_ms = 1000\nrestart_delay_ms = 60001",
        );
        let p = c.problems("k");
        assert_eq!(
            p,
            vec![
                "k.interval_ms: only used with mode = \"periodic\", this source is \"long-running\"",
                "k.timeout_ms: only used with mode = \"periodic\", this source is \"long-running\"",
                "k.restart_delay_ms: must be at most 60000",
            ]
        );
    }
}
