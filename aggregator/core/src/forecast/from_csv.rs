//! The CSV reader of forecast files: a header, then one row per line.

use std::collections::HashMap;

use super::{
    check_group, check_unit, cut, demand_message, demand_ok, echo, finish, parse_time, uplift_message,
    uplift_ok, Candidate, Collector, ImportError, Refusal, COLUMNS,
};
use crate::model::{AssetKind, ForecastRow};

/// Parse a CSV forecast. `groups` maps each configured group id to its kind
/// (lines plan in pieces, feeders in kWh).
///
/// The header must be `group,start,end,demand,unit,uplift_pct` (names trimmed,
/// any case); `uplift_pct` may be left out of the header, and an empty
/// `uplift_pct` field means 0. Fields are trimmed; empty lines (and lines of
/// nothing but blanks and commas) are skipped. A wrong header is reported
/// once, on its line, and nothing else is parsed.
///
/// All or nothing: `Ok` with every row in file order, or `Err` with the
/// errors found (not just the first: up to [`super::MAX_REPORTED`] in line
/// order, and their count).
pub fn parse_csv(text: &str, groups: &HashMap<String, AssetKind>) -> Result<Vec<ForecastRow>, Refusal> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut errors = Collector::default();
    let mut header: Option<usize> = None; // number of columns once the header is read
    let mut rows: Vec<(usize, ForecastRow)> = Vec::new();
    let mut lines = LineOf::new(text);

    for result in reader.records() {
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(1, |p| lines.at(p.byte()));
                errors.push(ImportError::new(line, "", format!("unreadable CSV: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(1, |p| lines.at(p.byte()));
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let Some(width) = header else {
            match check_header(&record) {
                Ok(n) => header = Some(n),
                Err(message) => return Err(Refusal::one(ImportError::new(line, "", message))),
            }
            continue;
        };
        if record.len() != width {
            // `...,12,000,pieces`: a demand written with a thousands separator
            // splits into two fields.
            let digits = |i: usize| {
                record.get(i).is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
            };
            let hint = if record.len() == width + 1
                && digits(3)
                && record.get(4).is_some_and(|f| f.len() == 3)
                && digits(4)
            {
                " (a demand with a thousands separator? write 12000, not 12,000)"
            } else {
                ""
            };
            errors.push(ImportError::new(
                line,
                "",
                format!(
                    "expected {width} fields ({}), found {}{hint}",
                    COLUMNS[..width].join(","),
                    record.len()
                ),
            ));
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let candidate = Candidate {
            line,
            group: check_group(field(0), groups),
            start: parse_time(field(1)),
            end: parse_time(field(2)),
            demand: csv_number(field(3), demand_ok).ok_or_else(|| {
                let raw = field(3).trim();
                let grouped = raw.contains([',', ' ', '\'', '_'])
                    && raw.chars().all(|c| c.is_ascii_digit() || ",. '_".contains(c));
                let hint = if grouped {
                    " (no thousands separators: write 12000, with `.` for decimals)"
                } else {
                    ""
                };
                format!("{}{hint}", demand_message(&echo(field(3))))
            }),
            unit: check_unit(field(4)),
            uplift: if width < COLUMNS.len() || field(5).is_empty() {
                Ok(0.0)
            } else {
                csv_number(field(5), uplift_ok).ok_or_else(|| uplift_message(&echo(field(5))))
            },
        };
        if let Some(row) = candidate.finish(&mut errors) {
            rows.push((line, row));
        }
    }
    if header.is_none() {
        return Err(Refusal::one(ImportError::new(1, "", "no forecast rows: the file is empty")));
    }
    finish(rows, errors, 1)
}

/// Check a CSV header; returns the number of columns (5 or 6).
fn check_header(record: &csv::StringRecord) -> Result<usize, String> {
    let names: Vec<String> = record.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
    let n = names.len();
    if (n == COLUMNS.len() || n == COLUMNS.len() - 1) && names.iter().zip(COLUMNS).all(|(a, b)| a == b) {
        return Ok(n);
    }
    let found = cut(&record.iter().map(str::trim).collect::<Vec<_>>().join(","));
    let hint = if n == 1 && found.contains(';') { " (fields must be separated by commas)" } else { "" };
    Err(format!(
        "expected header `{}` (uplift_pct may be left out), found `{found}`{hint}",
        COLUMNS.join(",")
    ))
}

/// A CSV number that passes `ok`.
fn csv_number(raw: &str, ok: fn(f64) -> bool) -> Option<f64> {
    raw.parse::<f64>().ok().filter(|v| ok(*v))
}

/// Line numbers (from 1) of byte offsets, counted from the `\n`s before
/// them, so they do not depend on the line endings (the CSV reader's own
/// count gave the first data row of a CRLF file the header's number).
/// Offsets come in increasing order; each is counted from the last one.
struct LineOf<'a> {
    text: &'a [u8],
    byte: usize,
    line: usize,
}

impl<'a> LineOf<'a> {
    fn new(text: &'a str) -> Self {
        LineOf { text: text.as_bytes(), byte: 0, line: 1 }
    }

    fn at(&mut self, byte: u64) -> usize {
        let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        // The reader gives a record after blank lines the offset where it
        // started skipping them: a record never starts with a line end.
        while byte < self.text.len() && matches!(self.text[byte], b'\r' | b'\n') {
            byte += 1;
        }
        if byte < self.byte {
            // Not expected; count from the start rather than guess.
            self.byte = 0;
            self.line = 1;
        }
        self.line += self.text[self.byte..byte].iter().filter(|&&b| b == b'\n').count();
        self.byte = byte;
        self.line
    }
}
