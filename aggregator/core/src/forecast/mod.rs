//! Forecast import: parse and validate CSV or JSON, all or nothing. The
//! checks of a row are here; each format has its own reader
//! (`from_csv`, `from_json`).
//!
//! Marketing hands over demand per capacity group and time bucket. An import
//! either yields every row, or every problem found in the file, each located
//! by line and column so the person who owns the file can fix it in one pass.
//!
//! Both formats carry the same fields:
//!
//! | field        | meaning                                                        |
//! |--------------|----------------------------------------------------------------|
//! | `group`      | a configured capacity group                                    |
//! | `start`      | bucket start, RFC 3339 or a plain date (midnight UTC)          |
//! | `end`        | bucket end (exclusive), after `start`                          |
//! | `demand`     | finite number >= 0, before uplift                              |
//! | `unit`       | `pieces` for groups of lines, `kWh` for groups of feeders      |
//! | `uplift_pct` | optional campaign uplift in percent, > -100; absent means 0    |
//!
//! Buckets of one group must not overlap (`[start, end)`; touching is fine).

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};

use crate::model::{AssetKind, ForecastRow, Unit};

mod from_csv;
mod from_json;

pub use from_csv::parse_csv;
pub use from_json::parse_json;

/// The columns of a forecast, in CSV header order; `uplift_pct` may be omitted.
const COLUMNS: [&str; 6] = ["group", "start", "end", "demand", "unit", "uplift_pct"];

/// The accepted JSON document shapes, for messages.
const SHAPE: &str = "an array of forecast rows or an object {\"rows\": [...]}";

/// One problem in an import, located for the person who fixes the file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportError {
    /// 1-based line in the file. CSV: the header is line 1. JSON: the line
    /// where the offending record starts (line 1 for problems with the whole
    /// document), or the line serde_json reports for syntax errors.
    pub line: usize,
    /// Column / field name (`group`, `start`, `end`, `demand`, `unit`,
    /// `uplift_pct`), or "" when it concerns the whole row or file.
    pub column: String,
    /// What is wrong, and what was found.
    pub message: String,
}

impl ImportError {
    fn new(line: usize, column: &str, message: impl Into<String>) -> ImportError {
        ImportError { line, column: column.to_string(), message: message.into() }
    }
}

impl fmt::Display for ImportError {
    /// `line 3, column demand: must be a number >= 0, found "-5"`; the column
    /// part is left out when the problem concerns the whole row or file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ImportError {}

/// How many problems an import reports; the rest are counted. A file of a
/// million bad lines gives a short answer, in bounded memory.
pub const MAX_REPORTED: usize = 100;

/// How many characters of a value from the file a message quotes.
pub const MAX_ECHO: usize = 100;

/// Why a file was refused: its first [`MAX_REPORTED`] problems in line
/// order, and how many there were in all. Derefs to the listed problems.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    errors: Vec<ImportError>,
    total: usize,
}

impl Refusal {
    fn one(e: ImportError) -> Refusal {
        Refusal { errors: vec![e], total: 1 }
    }

    /// Every problem found, listed or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The listed problems (the first [`MAX_REPORTED`] by line).
    pub fn errors(&self) -> &[ImportError] {
        &self.errors
    }
}

impl std::ops::Deref for Refusal {
    type Target = [ImportError];
    fn deref(&self) -> &[ImportError] {
        &self.errors
    }
}

/// Problems as they are found: the first [`MAX_REPORTED`] by line are
/// kept (stable, so column order within a line stays), the rest counted.
#[derive(Debug, Default)]
struct Collector {
    kept: Vec<ImportError>,
    total: usize,
}

impl Collector {
    fn push(&mut self, e: ImportError) {
        self.total += 1;
        self.kept.push(e);
        if self.kept.len() >= 2 * MAX_REPORTED {
            self.trim();
        }
    }

    /// Problems found so far (kept or only counted).
    fn len(&self) -> usize {
        self.total
    }

    fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn trim(&mut self) {
        self.kept.sort_by_key(|e| e.line);
        self.kept.truncate(MAX_REPORTED);
    }

    fn into_refusal(mut self) -> Refusal {
        self.trim();
        Refusal { errors: self.kept, total: self.total }
    }
}

/// A value from the file as a message quotes it: Debug-quoted, cut to
/// [`MAX_ECHO`] characters (`…` marks the cut).
fn echo(raw: &str) -> String {
    match raw.char_indices().nth(MAX_ECHO) {
        None => format!("{raw:?}"),
        Some((cut, _)) => format!("{:?}…", &raw[..cut]),
    }
}

/// A name from the file (a group, a JSON key), cut to [`MAX_ECHO`] characters.
fn cut(raw: &str) -> String {
    match raw.char_indices().nth(MAX_ECHO) {
        None => raw.to_string(),
        Some((i, _)) => format!("{}…", &raw[..i]),
    }
}

/// Parse a time given as RFC 3339 (`2026-11-23T06:00:00Z`, offsets allowed)
/// or as a plain date `2026-11-23` (= midnight UTC). Surrounding blanks are
/// ignored. The error explains the accepted forms and quotes the input.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(
            "is empty; expected an RFC 3339 time like 2026-11-23T06:00:00Z or a date like 2026-11-23".into(),
        );
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN).and_utc());
    }
    let no_zone = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .any(|f| NaiveDateTime::parse_from_str(t, f).is_ok());
    if no_zone {
        return Err(format!(
            "has no time zone; add `Z` for UTC or an offset like +01:00 (found {})",
            echo(t)
        ));
    }
    Err(format!(
        "expected an RFC 3339 time like 2026-11-23T06:00:00Z or a date like 2026-11-23, found {}",
        echo(t)
    ))
}

/// A row with every field checked on its own; [`Candidate::finish`] adds the
/// checks between fields and reports.
struct Candidate {
    line: usize,
    group: Result<(String, AssetKind), String>,
    start: Result<DateTime<Utc>, String>,
    end: Result<DateTime<Utc>, String>,
    demand: Result<f64, String>,
    unit: Result<Unit, String>,
    uplift: Result<f64, String>,
}

impl Candidate {
    /// Push every problem of this row onto `errors`, in column order, and
    /// return the row if there was none.
    fn finish(self, errors: &mut Collector) -> Option<ForecastRow> {
        let before = errors.len();
        let line = self.line;
        let mut report = |column: &str, message: String| errors.push(ImportError::new(line, column, message));

        if let Err(m) = &self.group {
            report("group", m.clone());
        }
        if let Err(m) = &self.start {
            report("start", m.clone());
        }
        match (&self.start, &self.end) {
            (_, Err(m)) => report("end", m.clone()),
            (Ok(s), Ok(e)) if e <= s => {
                report("end", format!("must be after start {}, found {}", fmt_time(*s), fmt_time(*e)))
            }
            _ => {}
        }
        if let Err(m) = &self.demand {
            report("demand", m.clone());
        }
        match (&self.group, &self.unit) {
            (_, Err(m)) => report("unit", m.clone()),
            (Ok((g, kind)), Ok(u)) if *u != Unit::of(*kind) => report(
                "unit",
                format!(
                    "unit {} does not match group `{g}`, which plans {} in {}",
                    u.as_str(),
                    kind_plural(*kind),
                    Unit::of(*kind).as_str()
                ),
            ),
            _ => {}
        }
        if let Err(m) = &self.uplift {
            report("uplift_pct", m.clone());
        }
        if let (Ok(d), Ok(u)) = (&self.demand, &self.uplift) {
            let effective = d * (1.0 + u / 100.0);
            if !effective.is_finite() {
                report(
                    "demand",
                    format!(
                        "demand {d} with uplift {u} % is not a finite number (effective demand {effective})"
                    ),
                );
            }
        }
        if errors.len() != before {
            return None;
        }
        match (self.group, self.start, self.end, self.demand, self.unit, self.uplift) {
            (Ok((group, _)), Ok(start), Ok(end), Ok(demand), Ok(unit), Ok(uplift_pct)) => {
                Some(ForecastRow { group, start, end, demand, unit, uplift_pct })
            }
            _ => None,
        }
    }
}

/// Add overlap errors, then decide: every row, or the first problems in
/// line order and their count.
/// `header_lines` is 1 for CSV (a header-only file has no rows), 0 for JSON.
fn finish(
    rows: Vec<(usize, ForecastRow)>,
    mut errors: Collector,
    header_lines: usize,
) -> Result<Vec<ForecastRow>, Refusal> {
    overlaps(&rows, &mut errors);
    if errors.is_empty() && rows.is_empty() {
        let what = if header_lines > 0 {
            "no forecast rows: the file has only a header"
        } else {
            "no forecast rows"
        };
        errors.push(ImportError::new(1, "", what));
    }
    if errors.is_empty() {
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    } else {
        Err(errors.into_refusal())
    }
}

/// One error per row that overlaps a row of its group on an earlier line,
/// naming that line. Sort-and-sweep in O(n log n) whatever the file holds
/// (a million copies of one bucket too): each row is checked against the
/// row reaching furthest among those starting before it, which it overlaps
/// if it overlaps any of them; of the two, the later line is reported.
fn overlaps(rows: &[(usize, ForecastRow)], errors: &mut Collector) {
    let mut by_group: HashMap<&str, Vec<(usize, &ForecastRow)>> = HashMap::new();
    for (line, row) in rows {
        by_group.entry(row.group.as_str()).or_default().push((*line, row));
    }
    // later line -> earliest earlier line found overlapping it
    let mut first_clash: HashMap<usize, (usize, &ForecastRow, &ForecastRow)> = HashMap::new();
    for list in by_group.values_mut() {
        list.sort_by_key(|(line, r)| (r.start, *line));
        let mut reach: Option<(usize, &ForecastRow)> = None;
        for &(line_b, b) in list.iter() {
            match reach {
                Some((line_a, a)) if b.start < a.end => {
                    let ((early, er), (late, lr)) =
                        if line_a < line_b { ((line_a, a), (line_b, b)) } else { ((line_b, b), (line_a, a)) };
                    let entry = first_clash.entry(late).or_insert((early, er, lr));
                    if early < entry.0 {
                        *entry = (early, er, lr);
                    }
                    if b.end > a.end {
                        reach = Some((line_b, b));
                    }
                }
                _ => reach = Some((line_b, b)),
            }
        }
    }
    for (late, (early, er, lr)) in first_clash {
        let what = if er.start == lr.start && er.end == lr.end { "duplicates" } else { "overlaps" };
        errors.push(ImportError::new(
            late,
            "start",
            format!(
                "bucket {} .. {} {what} line {early} ({} .. {}) of group `{}`",
                fmt_time(lr.start),
                fmt_time(lr.end),
                fmt_time(er.start),
                fmt_time(er.end),
                lr.group
            ),
        ));
    }
}

fn check_group(raw: &str, groups: &HashMap<String, AssetKind>) -> Result<(String, AssetKind), String> {
    let g = raw.trim();
    if let Some(kind) = groups.get(g) {
        return Ok((g.to_string(), *kind));
    }
    let mut known: Vec<&str> = groups.keys().map(String::as_str).collect();
    known.sort_unstable();
    let known = if known.is_empty() {
        "no groups are configured".to_string()
    } else {
        format!("known groups: {}", known.join(", "))
    };
    if g.is_empty() {
        Err(format!("must not be empty; {known}"))
    } else {
        Err(format!("unknown group `{}`; {known}", cut(g)))
    }
}

fn check_unit(raw: &str) -> Result<Unit, String> {
    Unit::parse(raw).ok_or_else(|| format!("must be `pieces` or `kWh`, found {}", echo(raw.trim())))
}

fn demand_ok(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

fn uplift_ok(v: f64) -> bool {
    v.is_finite() && v > -100.0
}

/// `found` is how the value appears in the file (quoted for CSV text).
fn demand_message(found: &str) -> String {
    format!("must be a number >= 0, found {found}")
}

fn uplift_message(found: &str) -> String {
    format!("must be empty or a number > -100 (percent), found {found}")
}

fn kind_plural(kind: AssetKind) -> &'static str {
    match kind {
        AssetKind::Line => "lines",
        AssetKind::Feeder => "feeders",
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> HashMap<String, AssetKind> {
        HashMap::from([
            ("family-a".to_string(), AssetKind::Line),
            ("region-north".to_string(), AssetKind::Feeder),
        ])
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn located(errors: &[ImportError]) -> Vec<(usize, &str)> {
        errors.iter().map(|e| (e.line, e.column.as_str())).collect()
    }

    #[test]
    fn csv_with_uplift_dates_and_rfc3339_times() {
        let text = "group,start,end,demand,unit,uplift_pct\n\
                    family-a,2026-11-23,2026-11-24,1200,pieces,10\n\
                    family-a, 2026-11-24T00:00:00Z , 2026-11-24T06:00:00+01:00 ,300.5,pcs,\n\
                    region-north,2026-11-23T06:00:00+01:00,2026-11-23T07:00:00+01:00,80,KWH,-20\n";
        let rows = parse_csv(text, &groups()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            ForecastRow {
                group: "family-a".into(),
                start: t("2026-11-23T00:00:00Z"),
                end: t("2026-11-24T00:00:00Z"),
                demand: 1200.0,
                unit: Unit::Pieces,
                uplift_pct: 10.0,
            }
        );
        assert!((rows[0].effective_demand() - 1320.0).abs() < 1e-9);
        assert_eq!(rows[1].end, t("2026-11-24T05:00:00Z"));
        assert_eq!(rows[1].uplift_pct, 0.0);
        assert_eq!(rows[1].hours(), 5.0);
        assert_eq!(rows[2].start, t("2026-11-23T05:00:00Z"));
        assert_eq!(rows[2].unit, Unit::KWh);
        assert_eq!(rows[2].uplift_pct, -20.0);
    }

    #[test]
    fn csv_without_uplift_column_any_case_blank_lines_crlf_bom() {
        let text = "\u{feff} Group , START,End,demand,Unit\r\n\r\n\
                    family-a,2026-11-23,2026-11-24,5,pieces\r\n\
                    \r\n   \r\n,,,,\r\n\
                    family-a,2026-11-24,2026-11-25,0,pieces\r\n";
        let rows = parse_csv(text, &groups()).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.uplift_pct == 0.0));
        assert_eq!(rows[1].demand, 0.0);
    }

    /// The same file with LF and with CRLF endings: the same line numbers
    /// (with CRLF the first data row was reported as line 1, the header's).
    #[test]
    fn line_numbers_do_not_depend_on_line_endings() {
        let lf = "group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,x,pieces\n\nfamily-a,2026-11-24,2026-11-25,y,pieces\n";
        let crlf = lf.replace('\n', "\r\n");
        for text in [lf.to_string(), crlf] {
            let lines: Vec<usize> =
                parse_csv(&text, &groups()).unwrap_err().errors().iter().map(|e| e.line).collect();
            assert_eq!(lines, [2, 4], "{text:?}");
        }
    }

    #[test]
    fn units_in_any_case_and_a_thousands_separator_explained() {
        let text = "group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,5,Pieces\nregion-north,2026-11-23,2026-11-24,5,KWH\nfamily-a,2026-11-24,2026-11-25,5,PCS\n";
        assert_eq!(parse_csv(text, &groups()).unwrap().len(), 3);
        let split = "group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,12,000,pieces\n";
        let e = parse_csv(split, &groups()).unwrap_err();
        assert!(e.errors()[0].message.contains("thousands separator"), "{}", e.errors()[0]);
        let quoted = "group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,\"12,000\",pieces\n";
        let e = parse_csv(quoted, &groups()).unwrap_err();
        assert!(e.errors()[0].message.contains("no thousands separators"), "{}", e.errors()[0]);
    }

    #[test]
    fn csv_touching_buckets_and_other_groups_do_not_overlap() {
        let text = "group,start,end,demand,unit\n\
                    family-a,2026-11-23T00:00:00Z,2026-11-23T08:00:00Z,1,pieces\n\
                    family-a,2026-11-23T08:00:00Z,2026-11-23T16:00:00Z,1,pieces\n\
                    region-north,2026-11-23T00:00:00Z,2026-11-23T08:00:00Z,1,kWh\n";
        assert_eq!(parse_csv(text, &groups()).unwrap().len(), 3);
    }

    #[test]
    fn bad_csv_reports_every_problem_and_returns_nothing() {
        let text = "group,start,end,demand,unit,uplift_pct\n\
                    family-a,2026-11-23,2026-11-24,100,pieces,\n\
                    family-a,2026-11-25,2026-11-26,100,pieces\n\
                    family-a,2026-13-45,2026-11-24,100,pieces,\n\
                    family-a,2026-11-25,2026-11-26,-5,pieces,\n\
                    family-z,2026-11-25,2026-11-26,5,pieces,\n\
                    family-a,2026-11-27,2026-11-28,5,kWh,\n\
                    region-north,2026-11-24,2026-11-23,5,kWh,\n\
                    family-a,2026-11-23T12:00:00Z,2026-11-23T18:00:00Z,5,pieces,\n\
                    family-a,2026-11-23T12:00:00Z,2026-11-23T18:00:00Z,5,pieces,\n\
                    nope,yesterday,,lots,kg,-100\n\
                    family-a,2026-11-29,2026-11-30,NaN,pieces,inf\n";
        let errors = parse_csv(text, &groups()).unwrap_err();
        assert_eq!(
            located(&errors),
            vec![
                (3, ""),
                (4, "start"),
                (5, "demand"),
                (6, "group"),
                (7, "unit"),
                (8, "end"),
                (9, "start"),
                (10, "start"),
                (11, "group"),
                (11, "start"),
                (11, "end"),
                (11, "demand"),
                (11, "unit"),
                (11, "uplift_pct"),
                (12, "demand"),
                (12, "uplift_pct"),
            ],
            "{errors:#?}"
        );
        let msg = |line: usize, column: &str| {
            errors.iter().find(|e| e.line == line && e.column == column).map(|e| e.message.clone()).unwrap()
        };
        assert_eq!(msg(3, ""), "expected 6 fields (group,start,end,demand,unit,uplift_pct), found 5");
        assert!(msg(4, "start").contains("\"2026-13-45\""));
        assert_eq!(msg(5, "demand"), "must be a number >= 0, found \"-5\"");
        assert_eq!(msg(6, "group"), "unknown group `family-z`; known groups: family-a, region-north");
        assert_eq!(msg(7, "unit"), "unit kWh does not match group `family-a`, which plans lines in pieces");
        assert_eq!(msg(8, "end"), "must be after start 2026-11-24T00:00:00Z, found 2026-11-23T00:00:00Z");
        assert_eq!(
            msg(9, "start"),
            "bucket 2026-11-23T12:00:00Z .. 2026-11-23T18:00:00Z overlaps line 2 \
             (2026-11-23T00:00:00Z .. 2026-11-24T00:00:00Z) of group `family-a`"
        );
        // Line 10 overlaps line 2 and duplicates line 9: the earliest line is named.
        assert!(msg(10, "start").contains("overlaps line 2 "), "{}", msg(10, "start"));
        assert_eq!(msg(11, "end"), parse_time("").unwrap_err());
        assert_eq!(msg(11, "unit"), "must be `pieces` or `kWh`, found \"kg\"");
        assert_eq!(msg(11, "uplift_pct"), "must be empty or a number > -100 (percent), found \"-100\"");
        assert_eq!(msg(12, "demand"), "must be a number >= 0, found \"NaN\"");
        assert_eq!(
            errors[3].to_string(),
            "line 6, column group: unknown group `family-z`; known groups: family-a, region-north"
        );
    }

    #[test]
    fn csv_overlap_is_reported_on_the_later_line_even_if_it_starts_earlier() {
        let text = "group,start,end,demand,unit\n\
                    region-north,2026-11-23T06:00:00Z,2026-11-23T12:00:00Z,1,kWh\n\
                    region-north,2026-11-23T00:00:00Z,2026-11-23T07:00:00Z,1,kWh\n\
                    region-north,2026-11-23T06:00:00Z,2026-11-23T12:00:00Z,1,kWh\n";
        let errors = parse_csv(text, &groups()).unwrap_err();
        assert_eq!(located(&errors), vec![(3, "start"), (4, "start")]);
        assert!(errors[0].message.contains("overlaps line 2"), "{}", errors[0]);
        assert!(errors[1].message.contains("duplicates line 2"), "{}", errors[1]);
    }

    #[test]
    fn wrong_header_is_one_error_and_nothing_else_is_parsed() {
        let text = "group,begin,end,demand,unit\nnope,x,y,z,kg\n";
        let errors = parse_csv(text, &groups()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column.as_str()), (1, ""));
        assert_eq!(
            errors[0].message,
            "expected header `group,start,end,demand,unit,uplift_pct` (uplift_pct may be left out), \
             found `group,begin,end,demand,unit`"
        );
        // Out of order, extra column, semicolons.
        for bad in ["start,group,end,demand,unit\n", "group,start,end,demand,unit,uplift_pct,note\n"] {
            assert_eq!(parse_csv(bad, &groups()).unwrap_err().len(), 1, "{bad}");
        }
        let errors = parse_csv("group;start;end;demand;unit\n", &groups()).unwrap_err();
        assert!(errors[0].message.contains("separated by commas"), "{}", errors[0]);
    }

    #[test]
    fn empty_or_header_only_csv_has_no_rows() {
        for text in ["", "\n\n", "group,start,end,demand,unit,uplift_pct\n", "group,start,end,demand,unit"] {
            let errors = parse_csv(text, &groups()).unwrap_err();
            assert_eq!(located(&errors), vec![(1, "")], "{text:?}");
            assert!(errors[0].message.starts_with("no forecast rows"), "{}", errors[0]);
        }
    }

    #[test]
    fn csv_quoted_multiline_field_keeps_line_numbers() {
        let text = "group,start,end,demand,unit\n\
                    \"family-a\",2026-11-23,2026-11-24,\"1\n2\",pieces\n\
                    family-a,2026-11-24,2026-11-25,x,pieces\n";
        let errors = parse_csv(text, &groups()).unwrap_err();
        assert_eq!(located(&errors), vec![(2, "demand"), (4, "demand")]);
    }

    const GOOD_ROWS: &str = r#"[
  {"group": "family-a", "start": "2026-11-23", "end": "2026-11-24",
   "demand": 1200, "unit": "pieces", "uplift_pct": 10},
  {"group": "region-north", "start": "2026-11-23T06:00:00Z", "end": "2026-11-23T07:00:00+00:00",
   "demand": 80.5, "unit": "kWh", "uplift_pct": null},
  {"group": "region-north", "start": "2026-11-23T07:00:00Z", "end": "2026-11-23T08:00:00Z",
   "demand": 0, "unit": "kWh"}
]"#;

    #[test]
    fn json_array_and_rows_object() {
        let rows = parse_json(GOOD_ROWS, &groups()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].uplift_pct, 10.0);
        assert_eq!(rows[0].end, t("2026-11-24T00:00:00Z"));
        assert_eq!(rows[1].demand, 80.5);
        assert_eq!(rows[1].uplift_pct, 0.0);
        assert_eq!(rows[2].uplift_pct, 0.0);

        let wrapped = format!("{{\"source\": \"marketing\", \"rows\": {GOOD_ROWS}}}");
        assert_eq!(parse_json(&wrapped, &groups()).unwrap(), rows);
        let csv_rows = parse_csv(
            "group,start,end,demand,unit,uplift_pct\n\
             family-a,2026-11-23,2026-11-24,1200,pieces,10\n\
             region-north,2026-11-23T06:00:00Z,2026-11-23T07:00:00Z,80.5,kWh,\n\
             region-north,2026-11-23T07:00:00Z,2026-11-23T08:00:00Z,0,kWh,\n",
            &groups(),
        )
        .unwrap();
        assert_eq!(csv_rows, rows);
    }

    #[test]
    fn bad_json_rows_are_located_by_their_starting_line() {
        let text = r#"{"rows": [
  {"group": "family-a", "start": "2026-11-23", "end": "2026-11-24", "demand": 1, "unit": "pieces"},
  {"group": "family-a", "start": "2026-11-23", "end": "2026-11-24",
   "demand": "5", "unit": "pieces"},
  {"group": "family-a", "start": 20261123, "end": "2026-11-22", "demand": -1,
   "unit": "kWh", "uplift": 5},
  {"group": "region-north",
   "end": "2026-11-24", "demand": 1, "unit": "kWh", "uplift_pct": "5"},
  "family-a,2026-11-23",
  {"group": "family-a", "start": "2026-11-23T12:00:00Z", "end": "2026-11-23T13:00:00Z",
   "demand": 1, "unit": "pieces", "note": "tricky \"}]\" text"}
]}"#;
        let errors = parse_json(text, &groups()).unwrap_err();
        assert_eq!(
            located(&errors),
            vec![
                (3, "demand"),
                (5, ""),
                (5, "start"),
                (5, "demand"),
                (5, "unit"),
                (7, "start"),
                (7, "uplift_pct"),
                (9, ""),
                (10, ""),
            ],
            "{errors:#?}"
        );
        assert_eq!(errors[0].message, "must be a JSON number >= 0, found string \"5\"");
        assert!(errors[1].message.starts_with("unknown field `uplift`"), "{}", errors[1]);
        assert_eq!(errors[2].message, "must be a string (RFC 3339 time or date), found number 20261123");
        assert_eq!(errors[3].message, "must be a number >= 0, found -1");
        assert_eq!(errors[5].message, "is missing");
        assert!(errors[7].message.starts_with("each row must be an object"), "{}", errors[7]);
        assert!(errors[8].message.starts_with("unknown field `note`"), "{}", errors[8]);

        // Overlap in JSON: on the later record's line.
        let row =
            r#"{"group":"family-a","start":"2026-11-23","end":"2026-11-24","demand":1,"unit":"pieces"}"#;
        let text = format!("[\n{row},\n\n{row}]");
        let errors = parse_json(&text, &groups()).unwrap_err();
        assert_eq!(located(&errors), vec![(4, "start")]);
        assert!(errors[0].message.contains("duplicates line 2"), "{}", errors[0]);
    }

    #[test]
    fn json_syntax_shape_and_empty_errors() {
        let errors = parse_json("[\n  {\"group\": \"family-a\",\n  \"start\": }\n]", &groups()).unwrap_err();
        assert_eq!(located(&errors), vec![(3, "")]);
        assert!(errors[0].message.starts_with("invalid JSON (column"), "{}", errors[0]);
        assert!(!errors[0].message.contains("at line"), "{}", errors[0]);

        for (text, want) in [
            ("", "no forecast rows"),
            ("[]", "no forecast rows"),
            ("{\"rows\": []}", "no forecast rows"),
            ("{\"row\": []}", "without `rows`"),
            ("{\"rows\": {}}", "`rows` must be an array"),
            ("42", "found number 42"),
        ] {
            let errors = parse_json(text, &groups()).unwrap_err();
            assert_eq!(located(&errors), vec![(1, "")], "{text}");
            assert!(errors[0].message.contains(want), "{text}: {}", errors[0]);
        }
    }

    #[test]
    fn parse_time_accepts_rfc3339_and_dates() {
        assert_eq!(t("2026-11-23").to_rfc3339(), "2026-11-23T00:00:00+00:00");
        assert_eq!(t(" 2026-11-23T06:00:00Z "), t("2026-11-23T07:00:00+01:00"));
        assert_eq!(t("2026-11-23T06:00:00.250-02:30"), t("2026-11-23T08:30:00.250Z"));
        assert_eq!(t("2026-11-23t06:00:00z"), t("2026-11-23T06:00:00Z"));
        for bad in ["", "yesterday", "2026-02-30", "23.11.2026", "2026-11-23T25:00:00Z", "2026-11-23T06:00"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        assert!(parse_time("2026-11-23T06:00:00").unwrap_err().contains("no time zone"));
        assert!(parse_time("nope").unwrap_err().contains("\"nope\""));
    }

    #[test]
    fn a_file_of_bad_lines_lists_the_first_hundred_and_counts_all() {
        let mut text = String::from("group,start,end,demand,unit\n");
        for _ in 0..5000 {
            text.push_str("x,,,,\n");
        }
        let r = parse_csv(&text, &groups()).unwrap_err();
        // Each line: group, start, end, demand and unit are wrong.
        assert_eq!(r.total(), 5000 * 5);
        assert_eq!(r.len(), MAX_REPORTED);
        assert_eq!((r[0].line, r[0].column.as_str()), (2, "group"));
        assert_eq!((r[99].line, r[99].column.as_str()), (21, "unit"), "the first by line, in column order");
    }

    #[test]
    fn echoed_values_are_cut_to_a_hundred_characters() {
        let long = "9".repeat(10_000);
        let text = format!("group,start,end,demand,unit\nfamily-a,2026-11-23,2026-11-24,-{long},pieces\n{long},{long},2026-11-24,1,{long}\n");
        let r = parse_csv(&text, &groups()).unwrap_err();
        assert_eq!(r.total(), 4, "{r:#?}");
        for e in r.errors() {
            assert!(e.message.chars().count() < MAX_ECHO + 200, "{} chars: {}", e.message.len(), e.message);
        }
        assert!(r[0].message.ends_with("…"), "{}", r[0].message);
        let json = format!("[{{\"group\":\"family-a\",\"start\":\"{long}\",\"end\":\"2026-11-24\",\"demand\":1,\"unit\":\"pieces\",\"{long}\":1}}]");
        let r = parse_json(&json, &groups()).unwrap_err();
        assert!(r.iter().all(|e| e.message.len() < MAX_ECHO + 200), "{r:#?}");
    }

    #[test]
    fn many_copies_of_one_bucket_are_each_reported_once_against_the_first() {
        let row = "family-a,2026-11-23,2026-11-24,5,pieces\n";
        let text = format!("group,start,end,demand,unit\n{}", row.repeat(50_000));
        let r = parse_csv(&text, &groups()).unwrap_err();
        assert_eq!(r.total(), 49_999);
        assert_eq!(r[0].line, 3);
        assert!(r.iter().all(|e| e.message.contains("duplicates line 2")), "{:?}", r[0]);
    }

    #[test]
    fn json_with_a_key_twice_is_refused() {
        let text = r#"[{"group":"family-a","start":"2026-11-23","end":"2026-11-24","demand":-1,
  "demand":5,"unit":"pieces"}]"#;
        let r = parse_json(text, &groups()).unwrap_err();
        assert_eq!(located(&r), vec![(2, "")]);
        assert!(r[0].message.contains("duplicate key `demand`"), "{}", r[0]);
        let nested = r#"{"rows": [], "rows": [{"group":"family-a","start":"2026-11-23","end":"2026-11-24","demand":5,"unit":"pieces"}]}"#;
        assert!(parse_json(nested, &groups()).unwrap_err()[0].message.contains("duplicate key `rows`"));
    }

    #[test]
    fn demand_times_uplift_that_overflows_is_refused() {
        let text =
            "group,start,end,demand,unit,uplift_pct\nfamily-a,2026-11-23,2026-11-24,1e308,pieces,1e300\n";
        let r = parse_csv(text, &groups()).unwrap_err();
        assert_eq!(located(&r), vec![(2, "demand")]);
        assert!(r[0].message.contains("not a finite number"), "{}", r[0]);
        let ok = "group,start,end,demand,unit,uplift_pct\nfamily-a,2026-11-23,2026-11-24,1e300,pieces,50\n";
        assert!(parse_csv(ok, &groups()).is_ok());
    }

    #[test]
    fn import_error_display() {
        let e = ImportError::new(3, "demand", "must be a number >= 0, found \"-5\"");
        assert_eq!(e.to_string(), "line 3, column demand: must be a number >= 0, found \"-5\"");
        assert_eq!(ImportError::new(1, "", "no forecast rows").to_string(), "line 1: no forecast rows");
    }
}
