//! The JSON reader of forecast files. It walks the parsed document (the one
//! place in the core that holds untyped JSON) so that every problem can be
//! named by field and located by the line its record starts on.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    check_group, check_unit, cut, demand_message, demand_ok, echo, finish, parse_time, uplift_message,
    uplift_ok, Candidate, Collector, ImportError, Refusal, COLUMNS, SHAPE,
};
use crate::model::{AssetKind, ForecastRow};

/// Parse a JSON forecast: either an array of objects with the fields
/// `group`, `start`, `end`, `demand`, `unit` and optionally `uplift_pct`, or
/// an object `{"rows": [...]}` holding such an array (other keys of that
/// object are ignored).
///
/// The same checks as [`super::parse_csv`] apply, plus types: `group`, `start`,
/// `end` and `unit` must be strings, `demand` a JSON number, `uplift_pct` a
/// JSON number, `null` or absent (= 0). Unknown fields in a row are refused,
/// so a misspelt `uplift` does not silently drop a campaign. Errors carry the
/// line where the offending record starts; a syntax error is reported once,
/// with the line serde_json gives.
///
/// A key given twice in one object (`"demand": -1, "demand": 5`) is a
/// syntax error, as in the telemetry codec: the file is refused rather than
/// taking either value.
///
/// All or nothing: `Ok` with every row in document order, or `Err` with the
/// errors found (up to [`super::MAX_REPORTED`] in line order, and their count).
pub fn parse_json(text: &str, groups: &HashMap<String, AssetKind>) -> Result<Vec<ForecastRow>, Refusal> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Refusal::one(ImportError::new(1, "", "no forecast rows: the file is empty")));
    }
    let doc: Value = match serde_json::from_str::<Strict>(text) {
        Ok(v) => v.0,
        Err(e) => return Err(Refusal::one(json_syntax_error(&e))),
    };
    let records = match &doc {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("rows") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(Refusal::one(ImportError::new(
                    1,
                    "",
                    format!("`rows` must be an array of forecast rows, found {}", describe(other)),
                )))
            }
            None => {
                return Err(Refusal::one(ImportError::new(
                    1,
                    "",
                    format!("expected {SHAPE}, found an object without `rows`"),
                )))
            }
        },
        other => {
            return Err(Refusal::one(ImportError::new(
                1,
                "",
                format!("expected {SHAPE}, found {}", describe(other)),
            )))
        }
    };
    if records.is_empty() {
        return Err(Refusal::one(ImportError::new(1, "", "no forecast rows")));
    }
    let lines = record_lines(text);
    let mut errors = Collector::default();
    let mut rows = Vec::new();
    for (i, record) in records.iter().enumerate() {
        // The scan agrees with serde_json on valid JSON; line 1 is a fallback only.
        let line = lines.get(i).copied().unwrap_or(1);
        let Value::Object(obj) = record else {
            errors.push(ImportError::new(
                line,
                "",
                format!(
                    "each row must be an object with group, start, end, demand, unit \
                     and optionally uplift_pct, found {}",
                    describe(record)
                ),
            ));
            continue;
        };
        let unknown_before = errors.len();
        for key in obj.keys().filter(|k| !COLUMNS.contains(&k.as_str())) {
            errors.push(ImportError::new(
                line,
                "",
                format!("unknown field `{}`; expected {}", cut(key), COLUMNS.join(", ")),
            ));
        }
        let get = |name: &str| obj.get(name).ok_or_else(|| "is missing".to_string());
        let candidate = Candidate {
            line,
            group: get("group").and_then(|v| json_str(v, "a string")).and_then(|s| check_group(s, groups)),
            start: get("start")
                .and_then(|v| json_str(v, "a string (RFC 3339 time or date)"))
                .and_then(parse_time),
            end: get("end")
                .and_then(|v| json_str(v, "a string (RFC 3339 time or date)"))
                .and_then(parse_time),
            demand: get("demand").and_then(|v| match v {
                Value::Number(n) => {
                    n.as_f64().filter(|x| demand_ok(*x)).ok_or_else(|| demand_message(&n.to_string()))
                }
                other => Err(format!("must be a JSON number >= 0, found {}", describe(other))),
            }),
            unit: get("unit").and_then(|v| json_str(v, "a string (`pieces` or `kWh`)")).and_then(check_unit),
            uplift: match obj.get("uplift_pct") {
                None | Some(Value::Null) => Ok(0.0),
                Some(Value::Number(n)) => {
                    n.as_f64().filter(|x| uplift_ok(*x)).ok_or_else(|| uplift_message(&n.to_string()))
                }
                Some(other) => {
                    Err(format!("must be a JSON number > -100 (percent) or null, found {}", describe(other)))
                }
            },
        };
        let unknown_fields = errors.len() != unknown_before;
        if let Some(row) = candidate.finish(&mut errors) {
            // A row with unknown fields is refused too, so it takes no part in overlap checks.
            if !unknown_fields {
                rows.push((line, row));
            }
        }
    }
    finish(rows, errors, 0)
}

/// A JSON document read like `serde_json::Value`, except that an object
/// with the same key twice is an error (serde_json's own `Value` keeps the
/// last one).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{}` in one object",
                    cut(&key)
                )));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// A JSON string field, or an error naming the expected type.
fn json_str<'v>(v: &'v Value, expected: &str) -> Result<&'v str, String> {
    v.as_str().ok_or_else(|| format!("must be {expected}, found {}", describe(v)))
}

/// A JSON value as a short description for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", echo(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn json_syntax_error(e: &serde_json::Error) -> ImportError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let bare = full.strip_suffix(&suffix).unwrap_or(&full);
    ImportError::new(e.line().max(1), "", format!("invalid JSON (column {}): {bare}", e.column()))
}

/// The 1-based line on which each forecast record starts: the elements of
/// the top-level array, or of the array under the top-level `rows` key (a
/// document with a key twice has been refused before). Only called on text
/// serde_json has accepted, so the scan can be simple.
fn record_lines(text: &str) -> Vec<usize> {
    let mut s = Scanner { bytes: text.as_bytes(), pos: 0, line: 1 };
    s.skip_ws();
    match s.peek() {
        Some(b'[') => s.element_lines(),
        Some(b'{') => {
            let mut found = Vec::new();
            s.pos += 1;
            loop {
                s.skip_ws();
                if s.peek() != Some(b'"') {
                    break; // `}` (empty object) or unexpected: stop
                }
                let key_start = s.pos;
                s.skip_string();
                let key: Option<String> =
                    text.get(key_start..s.pos).and_then(|k| serde_json::from_str(k).ok());
                s.skip_ws();
                if s.peek() == Some(b':') {
                    s.pos += 1;
                }
                s.skip_ws();
                if key.as_deref() == Some("rows") && s.peek() == Some(b'[') {
                    found = s.element_lines();
                } else {
                    s.skip_value();
                }
                s.skip_ws();
                if s.peek() == Some(b',') {
                    s.pos += 1;
                } else {
                    break;
                }
            }
            found
        }
        _ => Vec::new(),
    }
}

/// A forward-only walk over valid JSON text that counts lines.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    /// At `"`: move past the closing quote.
    fn skip_string(&mut self) {
        self.bump();
        while let Some(b) = self.bump() {
            match b {
                b'\\' => {
                    self.bump();
                }
                b'"' => return,
                _ => {}
            }
        }
    }

    /// Move past one value of any kind.
    fn skip_value(&mut self) {
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'[' | b'{') => {
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.skip_string();
                            continue;
                        }
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    self.bump();
                    if depth == 0 {
                        return;
                    }
                }
            }
            _ => {
                // Number or literal: up to the next delimiter.
                let end = |b: u8| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n');
                while self.peek().is_some_and(|b| !end(b)) {
                    self.bump();
                }
            }
        }
    }

    /// At `[`: the line of each element, moving past the closing `]`.
    fn element_lines(&mut self) -> Vec<usize> {
        let mut lines = Vec::new();
        self.bump();
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b']') => {
                    self.bump();
                    break;
                }
                Some(b',') => {
                    self.bump();
                }
                Some(_) => {
                    lines.push(self.line);
                    let before = self.pos;
                    self.skip_value();
                    if self.pos == before {
                        break; // not valid JSON after all; never loop forever
                    }
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_follow_the_top_level_elements() {
        let text = "[1,\n2,\n\n[3,\n4],\"a\\\"\\n\"\n,{}]";
        assert_eq!(serde_json::from_str::<Value>(text).unwrap().as_array().unwrap().len(), 5);
        assert_eq!(record_lines(text), vec![1, 2, 4, 5, 6]);
        assert_eq!(record_lines("{\"x\": [1,\n2],\n \"rows\":\n [\n{},\n{}]}"), vec![5, 6]);
    }
}
