//! From register words to a [`Sample`]: which registers to read, how words
//! combine into values, counter wrap-around, and the state and reason maps.
//! No I/O here, so all of it is tested with plain values.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use throughline_shared::{AssetState, Sample};

use super::config::{ModbusAsset, Table, WordOrder};

/// Most registers one read request may ask for (Modbus limit).
pub const MAX_READ: u16 = 125;

/// Where one value lives: `words` registers from `address` in `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub table: Table,
    pub address: u16,
    pub words: u16,
}

/// One read request: `count` registers from `address` in `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub table: Table,
    pub address: u16,
    pub count: u16,
}

impl Block {
    /// Last register of the block.
    pub fn last(&self) -> u32 {
        self.address as u32 + self.count as u32 - 1
    }
}

/// The read requests for `spans`: spans of the same table that overlap or
/// touch share one request (up to [`MAX_READ`] registers). Gaps are never
/// bridged, since a device may refuse to read registers it does not have.
pub fn blocks(spans: &[Span]) -> Vec<Block> {
    let mut spans = spans.to_vec();
    spans.sort_by_key(|s| (s.table, s.address));
    let mut out: Vec<Block> = Vec::new();
    for s in spans {
        let end = s.address as u32 + s.words as u32;
        if let Some(b) = out.last_mut() {
            let b_end = b.address as u32 + b.count as u32;
            let merged = end.max(b_end) - b.address as u32;
            if b.table == s.table && s.address as u32 <= b_end && merged <= MAX_READ as u32 {
                b.count = merged as u16;
                continue;
            }
        }
        out.push(Block { table: s.table, address: s.address, count: s.words });
    }
    out
}

/// Registers read in one poll of one asset.
#[derive(Debug, Default)]
pub struct Registers {
    read: Vec<(Block, Vec<u16>)>,
}

impl Registers {
    /// Record the answer to `block`.
    pub fn insert(&mut self, block: Block, words: Vec<u16>) {
        self.read.push((block, words));
    }

    /// The words of `span`, if a block read covers it.
    pub fn get(&self, span: Span) -> Option<&[u16]> {
        self.read.iter().find_map(|(b, words)| {
            let start = span.address.checked_sub(b.address)? as usize;
            let end = start + span.words as usize;
            (b.table == span.table && end <= words.len()).then(|| &words[start..end])
        })
    }
}

/// The unsigned value of `words` (1 to 4 registers) in `order`.
pub fn combine(words: &[u16], order: WordOrder) -> u64 {
    let fold = |v: u64, w: &u16| (v << 16) | *w as u64;
    match order {
        WordOrder::HighFirst => words.iter().fold(0, fold),
        WordOrder::LowFirst => words.iter().rev().fold(0, fold),
    }
}

/// `raw` of `words` registers read as two's complement.
pub fn signed(raw: u64, words: usize) -> i64 {
    let unused = 64 - 16 * words.clamp(1, 4) as u32;
    ((raw << unused) as i64) >> unused
}

/// An output counter extended past the wrap-around of its register.
#[derive(Debug, Clone)]
pub struct Counter {
    bits: u32,
    last_raw: Option<u64>,
    /// Sum of the wraps seen since the last reset.
    base: u128,
}

impl Counter {
    /// A counter of a `bits`-wide register (16, 32 or 64).
    pub fn new(bits: u32) -> Counter {
        Counter { bits, last_raw: None, base: 0 }
    }

    /// The extended count for the next raw register value. A 16 or 32-bit
    /// value that dropped by more than half the register's range wrapped
    /// around (and the count goes on); a smaller drop, or any drop of a
    /// 64-bit value, is a reset (the raw value is the count again).
    pub fn next(&mut self, raw: u64) -> u128 {
        if let Some(last) = self.last_raw {
            if raw < last {
                if self.bits < 64 && last - raw > 1u64 << (self.bits - 1) {
                    self.base += 1u128 << self.bits;
                } else {
                    self.base = 0;
                }
            }
        }
        self.last_raw = Some(raw);
        self.base + raw as u128
    }
}

/// What an asset's register map became, ready to turn register words into
/// samples. Keeps the counter's wrap-around state between polls.
#[derive(Debug)]
pub struct AssetReader {
    /// The asset's index in the config.
    pub index: usize,
    /// Unit id override.
    pub unit_id: Option<u8>,
    /// The read requests of one poll.
    pub blocks: Vec<Block>,
    output: Option<(Span, WordOrder, f64, Counter)>,
    state: Option<(Span, HashMap<u16, AssetState>, Option<AssetState>)>,
    reason: Option<(Span, HashMap<u16, String>)>,
    load: Option<(Span, WordOrder, bool, f64, f64)>,
}

impl AssetReader {
    /// The reader of asset number `index`, whose map passed validation
    /// (entries that would not have are left out).
    pub fn new(index: usize, asset: &ModbusAsset) -> AssetReader {
        let output = asset.output.as_ref().map(|o| {
            let span = Span { table: o.table, address: o.address, words: o.words as u16 };
            (span, o.word_order, o.scale, Counter::new(16 * o.words as u32))
        });
        let state = asset.state.as_ref().map(|s| {
            let map =
                s.map.iter().filter_map(|(k, v)| Some((k.parse().ok()?, AssetState::parse(v)?))).collect();
            (Span { table: s.table, address: s.address, words: 1 }, map, s.default)
        });
        let reason = asset.reason.as_ref().map(|r| {
            let map = r.map.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.clone()))).collect();
            (Span { table: r.table, address: r.address, words: 1 }, map)
        });
        let load = asset.load.as_ref().map(|l| {
            let span = Span { table: l.table, address: l.address, words: l.words as u16 };
            (span, l.word_order, l.signed, l.scale, l.offset)
        });
        let spans: Vec<Span> = [output.as_ref().map(|o| o.0), state.as_ref().map(|s| s.0)]
            .into_iter()
            .chain([reason.as_ref().map(|r| r.0), load.as_ref().map(|l| l.0)])
            .flatten()
            .collect();
        AssetReader { index, unit_id: asset.unit_id, blocks: blocks(&spans), output, state, reason, load }
    }

    /// The sample of this poll's registers, stamped `ts` (none when nothing
    /// could be decoded), and the problems found, each naming the key of
    /// the register map.
    pub fn sample(&mut self, regs: &Registers, ts: DateTime<Utc>) -> (Option<Sample>, Vec<String>) {
        let key = format!("assets[{}].source", self.index);
        let mut problems = Vec::new();
        let mut missing = |what: &str, span: Span| {
            problems.push(format!("{key}.{what}: {} register {} was not read", span.table, span.address))
        };
        let mut sample = Sample::at(ts);
        if let Some((span, order, scale, counter)) = &mut self.output {
            match regs.get(*span) {
                Some(words) => {
                    sample.output = Some(tidy(counter.next(combine(words, *order)) as f64 * *scale))
                }
                None => missing("output", *span),
            }
        }
        let mut unmapped_state = None;
        if let Some((span, map, default)) = &self.state {
            match regs.get(*span) {
                Some(words) => match map.get(&words[0]).copied().or(*default) {
                    Some(state) => sample.state = Some(state),
                    None => unmapped_state = Some((words[0], *span)),
                },
                None => missing("state", *span),
            }
        }
        if let Some((span, map)) = &self.reason {
            match regs.get(*span) {
                Some(words) => sample.reason = reason(map, words[0]),
                None => missing("reason", *span),
            }
        }
        if let Some((span, order, is_signed, scale, offset)) = &self.load {
            match regs.get(*span) {
                Some(words) => {
                    let raw = combine(words, *order);
                    let value = if *is_signed { signed(raw, words.len()) as f64 } else { raw as f64 };
                    sample.load_kw = Some(tidy((value * *scale + *offset).max(0.0)));
                }
                None => missing("load", *span),
            }
        }
        if let Some((value, span)) = unmapped_state {
            problems.push(format!(
                "{key}.state: value {value} of {} register {} is not in the map (and no `default`)",
                span.table, span.address
            ));
        }
        // A reason explains a stop; the register may still hold the last one.
        if sample.state == Some(AssetState::Running) {
            sample.reason = None;
        }
        let empty = sample.output.is_none()
            && sample.state.is_none()
            && sample.reason.is_none()
            && sample.load_kw.is_none();
        ((!empty).then_some(sample), problems)
    }
}

/// The reason code of register value `value`.
pub fn reason(map: &HashMap<u16, String>, value: u16) -> Option<String> {
    match map.get(&value) {
        Some(r) => Some(r.clone()),
        None if value == 0 => None,
        None => Some(format!("code-{value}")),
    }
}

/// Drop the noise of binary fractions (`123.4`, not `123.40000000000001`).
fn tidy(x: f64) -> f64 {
    let r = (x * 1e6).round() / 1e6;
    if r.is_finite() {
        r
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(table: Table, address: u16, words: u16) -> Span {
        Span { table, address, words }
    }

    #[test]
    fn words_combine_in_either_order() {
        assert_eq!(combine(&[0x1234], WordOrder::HighFirst), 0x1234);
        assert_eq!(combine(&[0x0001, 0x0002], WordOrder::HighFirst), 0x0001_0002);
        assert_eq!(combine(&[0x0002, 0x0001], WordOrder::LowFirst), 0x0001_0002);
        assert_eq!(combine(&[1, 2, 3, 4], WordOrder::HighFirst), 0x0001_0002_0003_0004);
        assert_eq!(combine(&[4, 3, 2, 1], WordOrder::LowFirst), 0x0001_0002_0003_0004);
        assert_eq!(combine(&[0xFFFF; 4], WordOrder::LowFirst), u64::MAX);
    }

    #[test]
    fn signed_values_are_twos_complement_of_their_width() {
        assert_eq!(signed(0xFFFF, 1), -1);
        assert_eq!(signed(0x7FFF, 1), 32767);
        assert_eq!(signed(0x8000, 1), -32768);
        assert_eq!(signed(0xFFFF_FFFE, 2), -2);
        assert_eq!(signed(0x0000_FFFF, 2), 65535);
        assert_eq!(signed(u64::MAX, 4), -1);
    }

    #[test]
    fn a_wrap_counts_on_and_a_small_drop_is_a_reset() {
        let mut c = Counter::new(16);
        assert_eq!(c.next(65530), 65530);
        assert_eq!(c.next(5), 65541, "wrapped: 6 to 65535, then 0..=5 is +11");
        assert_eq!(c.next(40), 65576);
        assert_eq!(c.next(20), 20, "a drop of 20 is a reset");
        assert_eq!(c.next(30), 30);
        // Exactly half the range is not yet a wrap.
        let mut c = Counter::new(16);
        c.next(32768);
        assert_eq!(c.next(0), 0);
        let mut c = Counter::new(32);
        c.next(u32::MAX as u64 - 1);
        assert_eq!(c.next(1), u32::MAX as u128 + 2, "32-bit wrap");
        c.next(100);
        assert_eq!(c.next(50), 50, "32-bit reset");
        let mut c = Counter::new(64);
        c.next(u64::MAX);
        assert_eq!(c.next(3), 3, "64-bit counters do not wrap: any drop is a reset");
    }

    #[test]
    fn touching_spans_share_a_request_gaps_and_tables_do_not() {
        let b = blocks(&[
            span(Table::Holding, 12, 1),
            span(Table::Holding, 10, 2),
            span(Table::Input, 12, 2),
            span(Table::Holding, 14, 1),
            span(Table::Holding, 11, 1),
        ]);
        assert_eq!(
            b,
            vec![
                Block { table: Table::Holding, address: 10, count: 3 },
                Block { table: Table::Holding, address: 14, count: 1 },
                Block { table: Table::Input, address: 12, count: 2 },
            ]
        );
        let long =
            blocks(&[span(Table::Holding, 0, 4), span(Table::Holding, 4, 4), span(Table::Holding, 122, 4)]);
        assert_eq!(long.len(), 2, "a request stays within 125 registers: {long:?}");
        let mut regs = Registers::default();
        regs.insert(b[0], vec![7, 8, 9]);
        assert_eq!(regs.get(span(Table::Holding, 11, 2)), Some(&[8, 9][..]));
        assert_eq!(regs.get(span(Table::Holding, 12, 2)), None);
        assert_eq!(regs.get(span(Table::Input, 10, 1)), None);
    }

    fn reader(toml_text: &str) -> AssetReader {
        let asset: ModbusAsset = toml::from_str(toml_text).unwrap();
        assert!(asset.problems("k").is_empty(), "{:?}", asset.problems("k"));
        AssetReader::new(3, &asset)
    }

    fn poll(r: &mut AssetReader, holding: &[u16]) -> (Option<Sample>, Vec<String>) {
        let mut regs = Registers::default();
        regs.insert(
            Block { table: Table::Holding, address: 0, count: holding.len() as u16 },
            holding.to_vec(),
        );
        r.sample(&regs, DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap())
    }

    #[test]
    fn state_and_reason_maps() {
        let mut r = reader(
            r#"
device = "d"
state = { address = 0, map = { "0" = "down", "1" = "running", "2" = "setup" } }
reason = { address = 1, map = { "3" = "jam" } }
"#,
        );
        assert_eq!(r.blocks, vec![Block { table: Table::Holding, address: 0, count: 2 }]);
        let s = poll(&mut r, &[0, 3]).0.unwrap();
        assert_eq!((s.state, s.reason.as_deref()), (Some(AssetState::Down), Some("jam")));
        let s = poll(&mut r, &[2, 9]).0.unwrap();
        assert_eq!((s.state, s.reason.as_deref()), (Some(AssetState::Setup), Some("code-9")));
        let s = poll(&mut r, &[0, 0]).0.unwrap();
        assert_eq!((s.state, s.reason), (Some(AssetState::Down), None), "0 is no reason");
        let s = poll(&mut r, &[1, 3]).0.unwrap();
        assert_eq!((s.state, s.reason), (Some(AssetState::Running), None), "no reason while running");
        let (s, problems) = poll(&mut r, &[7, 3]);
        let s = s.unwrap();
        assert_eq!((s.state, s.reason.as_deref()), (None, Some("jam")));
        assert_eq!(
            problems,
            vec![
                "assets[3].source.state: value 7 of holding register 0 is not in the map (and no `default`)"
            ]
        );
        let mut only_state = reader("device = \"d\"\nstate = { address = 0, map = { \"1\" = \"running\" } }");
        assert_eq!(poll(&mut only_state, &[5]).0, None, "no sample without any field");
        let mut with_default = reader(
            "device = \"d\"\nstate = { address = 0, map = { \"1\" = \"running\" }, default = \"idle\" }",
        );
        let (s, problems) = poll(&mut with_default, &[5]);
        assert_eq!((s.unwrap().state, problems.len()), (Some(AssetState::Idle), 0));
    }

    #[test]
    fn output_and_load_are_scaled() {
        let mut r = reader(
            r#"
device = "d"
output = { address = 0, words = 2, word_order = "low-first", scale = 0.001 }
load = { address = 2, words = 2, signed = true, scale = 0.1, offset = 2.5 }
"#,
        );
        let s = poll(&mut r, &[0x0002, 0x0001, 0, 1234]).0.unwrap();
        assert_eq!(s.output, Some(65.538));
        assert_eq!(s.load_kw, Some(125.9));
        let s = poll(&mut r, &[0x0002, 0x0001, 0xFFFF, 0xFFF0]).0.unwrap();
        assert_eq!(s.load_kw, Some(0.9), "-16 * 0.1 + 2.5");
        let s = poll(&mut r, &[0x0002, 0x0001, 0xFFFF, 0xFF00]).0.unwrap();
        assert_eq!(s.load_kw, Some(0.0), "below 0 is published as 0");
        let (s, problems) = r.sample(&Registers::default(), Utc::now());
        assert!(s.is_none());
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
