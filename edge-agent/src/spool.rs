//! Store-and-forward spool: every envelope is written here before it is
//! published and stays at least until the broker's PUBACK; the newest
//! `keep_delivered` delivered ones stay longer, for the aggregator to ask
//! for again should a broker lose them (a crash before it saved them).
//!
//! # On disk
//! `state_dir/spool/` holds segment files named after the id of their first
//! record (`0000000000000000.seg`, 16 hex digits) and `cursor`, the id of the
//! first record not yet acknowledged (rewritten on each sync and at a clean
//! stop; a stale cursor only means some acknowledged records are sent again,
//! which the aggregator drops as duplicates).
//!
//! Records are in the format of [`throughline_shared::record`] (a header
//! with magic, length, CRC-32 and id; the body is the topic and the
//! envelope JSON), only ever appended. On open every segment is scanned: a
//! record whose header or checksum does not match (a write torn by a power
//! loss, a flipped bit) is skipped with a warning and counted, never
//! replayed; the scan looks for the next valid record after it. A torn tail
//! of the newest segment is cut off so new records follow the last good one.
//!
//! # Bounds
//! The spool holds at most `max_bytes`. When an append would pass it, the
//! oldest segment goes if everything in it was delivered (delivered records
//! are only kept while there is room); otherwise either the oldest segment is
//! deleted (`drop-oldest`, the default: the freshest data matters most to a
//! planner) and its unacknowledged records counted as dropped, or the new
//! record is refused and counted (`refuse-new`).
//!
//! # Delivered records kept
//! A segment whose records are all acknowledged is deleted once the newest
//! `keep_delivered` acknowledged records lie in later segments, so at least
//! that many (up to one segment more) stay on disk, below the cursor, across
//! restarts too. They are never sent on their own: only
//! [`Spool::delivered_in`] finds them (by the `seq` inside the envelope) and
//! [`Spool::read_kept`] reads one back, for a resend request. Each segment
//! knows the lowest and highest `seq` in it, so a request reads only the
//! segments that can hold its range.
//!
//! # Durability
//! Each append is one `write` of the whole record to the segment file, so a
//! crash of the agent (even SIGKILL) loses nothing that was appended: the
//! data is in the kernel's page cache. Power loss can lose what was not yet
//! `fsync`ed: with `fsync = "interval"` (the default) at most
//! `fsync_interval_ms` of envelopes; with `fsync = "batch"` none that were
//! appended (each envelope, i.e. each batch of samples, is synced before it
//! is published). One write per envelope rather than per sample, and one
//! fsync per interval, keeps an SD card's wear low.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use throughline_shared::message::SpoolHealth;
use throughline_shared::record::{self, encode, find_next, read_at, HEADER};

const CURSOR_FILE: &str = "cursor";

/// What to do when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Delete the oldest segment (its records are counted as dropped).
    #[default]
    DropOldest,
    /// Refuse the new record (counted as refused).
    RefuseNew,
}

/// When appended records are forced to the storage device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// Every `fsync_interval_ms` while there is unsynced data.
    #[default]
    Interval,
    /// After every envelope, before it is published.
    Batch,
}

/// `[spool]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Most bytes on disk. Default 256 MiB: about 3 days of a 10-asset agent
    /// at 1 Hz, a few percent of a small SD card.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Size at which a new segment file is started. Default 4 MiB.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    #[serde(default)]
    pub when_full: WhenFull,
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// With `fsync = "interval"`: the longest unsynced data waits, in ms.
    #[serde(default = "default_fsync_interval")]
    pub fsync_interval_ms: u64,
    /// Delivered envelopes kept (at least; whole segments go) for the
    /// aggregator's resend requests after a broker lost what it had
    /// acknowledged. Counted in envelopes, as resend requests name them by
    /// `seq`. Default 10,000: about 17 minutes of a 10-asset agent sending
    /// an envelope per asset a second, far more than a broker's autosave
    /// interval; within `max_bytes`, which they give up first. 0 keeps none.
    #[serde(default = "default_keep_delivered")]
    pub keep_delivered: u64,
}

fn default_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_segment_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_fsync_interval() -> u64 {
    1000
}
fn default_keep_delivered() -> u64 {
    10_000
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: default_max_bytes(),
            segment_bytes: default_segment_bytes(),
            when_full: WhenFull::default(),
            fsync: FsyncPolicy::default(),
            fsync_interval_ms: default_fsync_interval(),
            keep_delivered: default_keep_delivered(),
        }
    }
}

impl SpoolConfig {
    /// Validation problems under `[spool]`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.segment_bytes < 4096 {
            p.push("spool.segment_bytes: must be at least 4096".into());
        }
        if self.max_bytes < 2 * self.segment_bytes {
            p.push("spool.max_bytes: must be at least twice spool.segment_bytes".into());
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval_ms == 0 {
            p.push("spool.fsync_interval_ms: must be > 0 (or use fsync = \"batch\")".into());
        }
        p
    }
}

/// Spool errors: the file and what failed.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {what}: {source}")]
pub struct SpoolError {
    pub path: PathBuf,
    pub what: &'static str,
    pub source: std::io::Error,
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError { path: path.to_path_buf(), what, source }
}

/// A record read back for publishing.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A delivered record kept on disk, as [`Spool::delivered_in`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The envelope's `seq`.
    pub seq: u64,
    id: u64,
    pos: Pos,
}

/// Result of [`Spool::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Stored(u64),
    Refused,
}

#[derive(Debug)]
struct Segment {
    /// Id in the file name: the first id written to it.
    name_id: u64,
    path: PathBuf,
    file: File,
    /// Bytes of complete records (a torn tail of an older segment is not counted).
    bytes: u64,
    /// Valid records in it.
    count: u64,
    /// Of those, acknowledged by the broker.
    acked: u64,
    /// Byte offsets of corrupt regions' starts and their ends, to skip when reading.
    bad: Vec<(u64, u64)>,
    /// Lowest and highest envelope `seq` in it.
    seqs: Option<(u64, u64)>,
}

impl Segment {
    fn note_seq(&mut self, seq: Option<u64>) {
        if let Some(q) = seq {
            self.seqs = Some(self.seqs.map_or((q, q), |(lo, hi)| (lo.min(q), hi.max(q))));
        }
    }

    /// Everything in it was acknowledged.
    fn delivered(&self) -> bool {
        self.acked >= self.count
    }
}

/// Position of a record: segment name id and byte offset (segments are
/// named in increasing order, so positions compare in record order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    seg: u64,
    off: u64,
}

/// The spool (see the module docs).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    next_id: u64,
    /// Next record to send.
    cursor: Pos,
    /// Sent, not yet acknowledged: id and position, in send order.
    inflight: VecDeque<(u64, Pos)>,
    /// Acknowledged out of order while an older record is still in flight:
    /// not sent again after a rewind.
    acked_ahead: BTreeSet<u64>,
    dirty: bool,
    last_sync: Instant,
    health: SpoolHealth,
    buf: Vec<u8>,
}

impl Spool {
    /// Open (or create) the spool in `dir`, scanning what is there.
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir, "creating the directory"))?;
        let names = record::segment_files(dir).map_err(io_err(dir, "listing"))?;
        let resume = read_cursor(&dir.join(CURSOR_FILE));
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            config,
            segments: VecDeque::new(),
            next_id: resume.unwrap_or(0),
            cursor: Pos { seg: 0, off: 0 },
            inflight: VecDeque::new(),
            acked_ahead: BTreeSet::new(),
            dirty: false,
            last_sync: Instant::now(),
            health: SpoolHealth::default(),
            buf: Vec::new(),
        };
        let last = names.len().saturating_sub(1);
        for (i, (name_id, path)) in names.into_iter().enumerate() {
            let seg = spool.scan(name_id, path, i == last, resume)?;
            spool.segments.push_back(seg);
        }
        // Drop segments that hold nothing left to send and are not kept
        // (never the newest, kept for appends).
        while spool.segments.len() > 1 && spool.segments[0].delivered() && spool.beyond_keep(0) {
            let seg = spool.segments.pop_front().expect("non-empty");
            let _ = std::fs::remove_file(&seg.path);
        }
        spool.cursor = match spool.segments.front() {
            Some(s) => Pos { seg: s.name_id, off: 0 },
            None => Pos { seg: spool.next_id, off: 0 },
        };
        // Skip what the cursor file says was acknowledged.
        if let Some(resume) = resume {
            while let Some((record_id, next)) = spool.peek_id()? {
                if record_id >= resume {
                    break;
                }
                spool.cursor = next;
            }
        }
        spool.refresh_health();
        if spool.health.records > 0 || spool.health.corrupt > 0 {
            tracing::info!(
                records = spool.health.records,
                bytes = spool.health.bytes,
                corrupt = spool.health.corrupt,
                kept = spool.health.kept,
                "spool holds envelopes from before; they are sent first, in order"
            );
        }
        Ok(spool)
    }

    /// Scan one segment file: count valid records, note corrupt regions,
    /// cut a torn tail off the newest segment.
    fn scan(
        &mut self,
        name_id: u64,
        path: PathBuf,
        newest: bool,
        resume: Option<u64>,
    ) -> Result<Segment, SpoolError> {
        let file =
            OpenOptions::new().read(true).append(true).open(&path).map_err(io_err(&path, "opening"))?;
        let len = file.metadata().map_err(io_err(&path, "reading its size"))?.len();
        let mut seg =
            Segment { name_id, path, file, bytes: len, count: 0, acked: 0, bad: Vec::new(), seqs: None };
        let mut off = 0;
        let mut good_end = 0;
        while off < len {
            match read_at(&seg.file, off, len, &mut self.buf) {
                Ok((id, next)) => {
                    seg.count += 1;
                    if resume.is_some_and(|r| id < r) {
                        seg.acked += 1;
                    }
                    seg.note_seq(envelope_seq(record::parts(&self.buf).1));
                    self.next_id = self.next_id.max(id + 1);
                    off = next;
                    good_end = next;
                }
                Err(_) => {
                    self.health.corrupt += 1;
                    match find_next(&seg.file, off + 1, len, &mut self.buf) {
                        Some(next) => {
                            tracing::warn!(segment = %seg.path.display(), offset = off, skipped_bytes = next - off, "corrupt spool record skipped");
                            seg.bad.push((off, next));
                            off = next;
                        }
                        None => {
                            tracing::warn!(segment = %seg.path.display(), offset = off, skipped_bytes = len - off, "torn or corrupt spool tail skipped");
                            break;
                        }
                    }
                }
            }
        }
        if good_end < len {
            if newest {
                seg.file.set_len(good_end).map_err(io_err(&seg.path, "cutting a torn tail"))?;
                seg.file.sync_all().map_err(io_err(&seg.path, "syncing"))?;
            }
            seg.bytes = good_end;
            seg.bad.retain(|(start, _)| *start < good_end);
        }
        Ok(seg)
    }

    /// Append one record. Written to the file at once (safe from a crash of
    /// the agent); forced to the device per the fsync policy.
    pub fn append(&mut self, topic: &str, payload: &[u8]) -> Result<Appended, SpoolError> {
        let size = (HEADER + 2 + topic.len() + payload.len()) as u64;
        while self.total_bytes() + size > self.config.max_bytes {
            // Delivered records kept for resends make room first.
            if self.segments.len() > 1 && self.segments[0].delivered() {
                self.drop_oldest();
                continue;
            }
            match self.config.when_full {
                WhenFull::RefuseNew => {
                    self.health.refused += 1;
                    if self.health.refused == 1 || self.health.refused % 1000 == 0 {
                        tracing::warn!(
                            refused = self.health.refused,
                            max_bytes = self.config.max_bytes,
                            "spool full: new envelopes refused (when_full = refuse-new)"
                        );
                    }
                    return Ok(Appended::Refused);
                }
                WhenFull::DropOldest => {
                    if self.segments.len() < 2 {
                        // Only the segment being written: start a new one so the old can go.
                        if self.segments.front().is_some_and(|s| s.count > 0) {
                            self.rotate()?;
                            continue;
                        }
                        break;
                    }
                    self.drop_oldest();
                }
            }
        }
        if self.segments.back().is_none_or(|s| s.bytes >= self.config.segment_bytes) {
            self.rotate()?;
        }
        let id = self.next_id;
        self.next_id += 1;
        encode(&mut self.buf, id, topic, payload);
        let seg = self.segments.back_mut().expect("a segment after rotate");
        seg.file.write_all(&self.buf).map_err(io_err(&seg.path, "appending"))?;
        seg.bytes += self.buf.len() as u64;
        seg.count += 1;
        seg.note_seq(envelope_seq(payload));
        self.dirty = true;
        if self.config.fsync == FsyncPolicy::Batch {
            self.sync()?;
        }
        Ok(Appended::Stored(id))
    }

    fn rotate(&mut self) -> Result<(), SpoolError> {
        if self.dirty {
            self.sync()?;
        }
        let path = self.dir.join(record::segment_name(self.next_id));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "creating a segment"))?;
        // Make the new file's name durable too.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir, "syncing the directory"))?;
        if self.segments.is_empty() || self.cursor_at_end() {
            self.cursor = Pos { seg: self.next_id, off: 0 };
        }
        self.segments.push_back(Segment {
            name_id: self.next_id,
            path,
            file,
            bytes: 0,
            count: 0,
            acked: 0,
            bad: Vec::new(),
            seqs: None,
        });
        self.release();
        Ok(())
    }

    fn cursor_at_end(&self) -> bool {
        match self.segments.back() {
            Some(last) => self.cursor.seg == last.name_id && self.cursor.off >= last.bytes,
            None => true,
        }
    }

    fn drop_oldest(&mut self) {
        let seg = self.segments.pop_front().expect("two segments");
        let lost = seg.count.saturating_sub(seg.acked);
        self.health.dropped += lost;
        self.inflight.retain(|(_, p)| p.seg != seg.name_id);
        if self.cursor.seg == seg.name_id {
            self.cursor = Pos { seg: self.segments[0].name_id, off: 0 };
        }
        let _ = std::fs::remove_file(&seg.path);
        if lost == 0 {
            tracing::debug!(kept = seg.acked, "spool full: delivered envelopes kept for resends deleted");
            return;
        }
        tracing::warn!(
            dropped = lost,
            dropped_total = self.health.dropped,
            max_bytes = self.config.max_bytes,
            "spool full: oldest envelopes dropped (when_full = drop-oldest)"
        );
    }

    /// Whether the segment at `i` lies outside the keep window: the newest
    /// `keep_delivered` acknowledged records are all in later segments.
    fn beyond_keep(&self, i: usize) -> bool {
        let later: u64 = self.segments.iter().skip(i + 1).map(|s| s.acked).sum();
        later >= self.config.keep_delivered
    }

    /// Force appended data to the device and record the cursor.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some(seg) = self.segments.back() {
            seg.file.sync_data().map_err(io_err(&seg.path, "syncing"))?;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        self.write_cursor();
        Ok(())
    }

    /// With the interval policy: sync if unsynced data is older than the interval.
    pub fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        if self.dirty && self.last_sync.elapsed() >= Duration::from_millis(self.config.fsync_interval_ms) {
            self.sync()?;
        }
        Ok(())
    }

    /// When the next interval sync is due, if there is unsynced data.
    pub fn sync_deadline(&self) -> Option<Instant> {
        self.dirty.then(|| self.last_sync + Duration::from_millis(self.config.fsync_interval_ms))
    }

    /// Id and end position of the record at the cursor, skipping corrupt regions.
    fn peek_id(&mut self) -> Result<Option<(u64, Pos)>, SpoolError> {
        Ok(self.read_next()?.map(|(r, next)| (r.id, next)))
    }

    fn read_next(&mut self) -> Result<Option<(Record, Pos)>, SpoolError> {
        loop {
            let Some(i) = self.segments.iter().position(|s| s.name_id == self.cursor.seg) else {
                // The cursor's segment is gone (dropped): go to the oldest.
                match self.segments.front() {
                    Some(s) if s.name_id > self.cursor.seg => {
                        self.cursor = Pos { seg: s.name_id, off: 0 };
                        continue;
                    }
                    _ => return Ok(None),
                }
            };
            let seg = &mut self.segments[i];
            if let Some(&(_, end)) = seg.bad.iter().find(|(start, _)| *start == self.cursor.off) {
                self.cursor.off = end;
                continue;
            }
            if self.cursor.off >= seg.bytes {
                match self.segments.get(i + 1) {
                    Some(next) => {
                        self.cursor = Pos { seg: next.name_id, off: 0 };
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            match read_at(&seg.file, self.cursor.off, seg.bytes, &mut self.buf) {
                Ok((id, next)) => {
                    let record = record_from(id, &self.buf);
                    return Ok(Some((record, Pos { seg: seg.name_id, off: next })));
                }
                Err(_) => {
                    // Damaged since the scan: note the region, skip to the next good record.
                    self.health.corrupt += 1;
                    tracing::warn!(segment = %seg.path.display(), offset = self.cursor.off, "corrupt spool record skipped");
                    let end = find_next(&seg.file, self.cursor.off + 1, seg.bytes, &mut self.buf)
                        .unwrap_or(seg.bytes);
                    seg.bad.push((self.cursor.off, end));
                    seg.count = seg.count.saturating_sub(1);
                    self.cursor.off = end;
                }
            }
        }
    }

    /// The next record to publish, if any; it counts as in flight until
    /// [`Spool::ack`] or [`Spool::rewind`].
    pub fn next_unsent(&mut self) -> Result<Option<Record>, SpoolError> {
        loop {
            let Some((record, next)) = self.read_next()? else { return Ok(None) };
            self.cursor = next;
            if self.acked_ahead.remove(&record.id) {
                continue;
            }
            let at = Pos { seg: next.seg, off: next.off - HEADER as u64 - record_len(&record) };
            self.inflight.push_back((record.id, at));
            return Ok(Some(record));
        }
    }

    /// The broker acknowledged record `id`.
    pub fn ack(&mut self, id: u64) {
        let Some(i) = self.inflight.iter().position(|(r, _)| *r == id) else { return };
        let (_, pos) = self.inflight.remove(i).expect("found");
        if let Some(seg) = self.segments.iter_mut().find(|s| s.name_id == pos.seg) {
            seg.acked += 1;
        }
        if i > 0 {
            self.acked_ahead.insert(id);
        }
        match self.inflight.front() {
            Some(&(oldest, _)) => self.acked_ahead.retain(|a| *a > oldest),
            None => self.acked_ahead.clear(),
        }
        self.release();
    }

    /// Delete segments that are fully sent and acknowledged and not kept
    /// (never the one being written).
    fn release(&mut self) {
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            let passed = self.cursor.seg != first.name_id;
            if !(passed
                && first.delivered()
                && !self.inflight.iter().any(|(_, p)| p.seg == first.name_id)
                && self.beyond_keep(0))
            {
                break;
            }
            let seg = self.segments.pop_front().expect("non-empty");
            if let Err(e) = std::fs::remove_file(&seg.path) {
                tracing::warn!(segment = %seg.path.display(), error = %e, "could not delete a delivered spool segment");
            }
        }
    }

    /// Everything in flight is sent again, from the oldest (after a reconnect
    /// on which the broker kept no session).
    pub fn rewind(&mut self) {
        if let Some(&(_, pos)) = self.inflight.front() {
            self.cursor = pos;
        }
        self.inflight.clear();
    }

    /// Records in flight (sent, not acknowledged).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Records not yet acknowledged (in flight or waiting).
    pub fn unacked(&self) -> u64 {
        self.segments.iter().map(|s| s.count - s.acked).sum()
    }

    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Delivered records still on disk, kept for resends.
    pub fn kept(&self) -> u64 {
        self.segments.iter().map(|s| s.acked).sum()
    }

    /// The highest envelope `seq` on disk (after a crash: the last one the
    /// agent used, unless it was never spooled).
    pub fn newest_seq(&self) -> Option<u64> {
        self.segments.iter().filter_map(|s| s.seqs.map(|(_, hi)| hi)).max()
    }

    /// Acknowledged records whose envelope `seq` lies in `seqs`, oldest
    /// first, at most `limit`, skipping those for which `skip` holds.
    /// Records not yet acknowledged are left out: they are on their way
    /// anyway. Reads only the segments whose `seq` range meets `seqs`.
    pub fn delivered_in(
        &mut self,
        seqs: RangeInclusive<u64>,
        limit: usize,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Vec<Kept>, SpoolError> {
        let mut found = Vec::new();
        for i in 0..self.segments.len() {
            if found.len() >= limit {
                break;
            }
            let seg = &self.segments[i];
            let Some((lo, hi)) = seg.seqs else { continue };
            if seg.acked == 0 || hi < *seqs.start() || lo > *seqs.end() {
                continue;
            }
            let mut off = 0;
            while off < seg.bytes && found.len() < limit {
                if let Some(&(_, end)) = seg.bad.iter().find(|(start, _)| *start == off) {
                    off = end;
                    continue;
                }
                let Ok((id, next)) = read_at(&seg.file, off, seg.bytes, &mut self.buf) else {
                    // Damaged since the scan: the reader that sends records notes it.
                    off = find_next(&seg.file, off + 1, seg.bytes, &mut self.buf).unwrap_or(seg.bytes);
                    continue;
                };
                let pos = Pos { seg: seg.name_id, off };
                off = next;
                let Some(seq) = envelope_seq(record::parts(&self.buf).1) else { continue };
                if seqs.contains(&seq) && !skip(seq) && self.is_acked(id, pos) {
                    found.push(Kept { seq, id, pos });
                }
            }
        }
        Ok(found)
    }

    /// Whether the record `id` at `pos` has been acknowledged: sent (before
    /// the cursor) and no longer in flight, or acknowledged ahead of a rewind.
    fn is_acked(&self, id: u64, pos: Pos) -> bool {
        self.acked_ahead.contains(&id) || (pos < self.cursor && !self.inflight.iter().any(|(r, _)| *r == id))
    }

    /// Read a record [`Spool::delivered_in`] found; `None` if it is no
    /// longer on disk (its segment made room since).
    pub fn read_kept(&mut self, k: &Kept) -> Result<Option<Record>, SpoolError> {
        let Some(seg) = self.segments.iter().find(|s| s.name_id == k.pos.seg) else { return Ok(None) };
        match read_at(&seg.file, k.pos.off, seg.bytes, &mut self.buf) {
            Ok((id, _)) if id == k.id => Ok(Some(record_from(id, &self.buf))),
            _ => Ok(None),
        }
    }

    fn refresh_health(&mut self) {
        self.health.records = self.unacked();
        self.health.bytes = self.total_bytes();
        self.health.kept = self.kept();
    }

    /// Counters for the status message and logs.
    pub fn health(&mut self) -> SpoolHealth {
        self.refresh_health();
        self.health
    }

    /// The id of the first record not yet acknowledged.
    fn first_unacked(&mut self) -> u64 {
        if let Some(&(id, _)) = self.inflight.front() {
            return id;
        }
        let saved = self.cursor;
        let id = self.read_next().ok().flatten().map(|(r, _)| r.id).unwrap_or(self.next_id);
        self.cursor = saved;
        id
    }

    fn write_cursor(&mut self) {
        let id = self.first_unacked();
        let tmp = self.dir.join("cursor.tmp");
        let result = std::fs::write(&tmp, format!("{id}\n"))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(CURSOR_FILE)));
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not record the spool cursor (some envelopes may be sent twice after a restart)");
        }
    }

    /// Sync and record the cursor; with nothing left to send and nothing
    /// to keep (`keep_delivered = 0`), delete the last segment too so the
    /// spool is empty on disk. Kept records stay for the next start.
    pub fn close(mut self) -> Result<SpoolHealth, SpoolError> {
        self.rewind();
        self.sync()?;
        if self.unacked() == 0 && self.config.keep_delivered == 0 {
            for seg in self.segments.drain(..) {
                let _ = std::fs::remove_file(&seg.path);
            }
        }
        Ok(self.health())
    }
}

fn record_len(r: &Record) -> u64 {
    (2 + r.topic.len() + r.payload.len()) as u64
}

fn record_from(id: u64, buf: &[u8]) -> Record {
    let (topic, payload) = record::parts(buf);
    Record { id, topic: topic.to_string(), payload: payload.to_vec() }
}

/// The `seq` of an envelope as the agent encodes it (`"seq":N`). Only a key
/// can hold those bytes: a quote inside a JSON string is escaped, and only
/// the envelope's top level has a `seq` key.
pub fn envelope_seq(payload: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = payload[at..].iter().skip_while(|b| b.is_ascii_whitespace());
    let mut n: Option<u64> = None;
    for &b in digits.take_while(|b| b.is_ascii_digit()) {
        n = Some(n.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(b - b'0'))?);
    }
    n
}

fn read_cursor(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests;
