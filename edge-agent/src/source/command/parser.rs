//! The line parser: one line of the program's output to a checked sample.
//! Pure: no I/O, the clock passed in.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use throughline_shared::message::MAX_REASON_LEN;
use throughline_shared::{AssetState, Limits, Sample};

/// Longest excerpt of a bad line in the log, in characters.
const EXCERPT_CHARS: usize = 120;

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
    // The aggregator's default bounds: a line it would refuse would take
    // its whole batch with it.
    let Limits { max_future, max_past, .. } = Limits::default();
    if ts > now + max_future {
        return Err(format!(
            "`ts` {} is more than {} minutes ahead of this machine's clock",
            ts.to_rfc3339(),
            max_future.num_minutes()
        ));
    }
    if ts < now - max_past {
        return Err(format!(
            "`ts` {} is more than {} days behind this machine's clock",
            ts.to_rfc3339(),
            max_past.num_days()
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
pub(super) fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    truncate_chars(text.trim_end(), EXCERPT_CHARS)
}

pub(super) fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
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
        assert!(parse(r#"{"ts":"2026-10-24T08:00:00Z","output":1}"#).is_ok(), "30 days behind");
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
            (r#"{"ts":"1970-01-01T00:00:00Z","output":1}"#, "more than 30 days behind this machine's clock"),
            (r#"{"ts":"2026-10-24T07:59:59Z","output":1}"#, "behind this machine's clock"),
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
}
